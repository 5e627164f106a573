//! AWS Organizations events that end an account's membership: the account closed
//! (`CloseAccountResult`), removed by the management account (`RemoveAccountFromOrganization`),
//! left by itself (`LeaveOrganization`), or departed for any of these reasons
//! (`AccountDepartedOrganization`). Each becomes an [`OffboardingRequest`]; a call that failed
//! (a CloudTrail API call with `errorCode`) or a closure that did not succeed offboards nothing
//! and is ignored with its reason.
//!
//! Shapes (AWS Organizations user guide, "Logging API calls with AWS CloudTrail"):
//! - `CloseAccountResult`: detail-type `AWS Service Event via CloudTrail`,
//!   `detail.serviceEventDetails.closeAccountStatus` `{accountId, state, requestedTimestamp,
//!   completedTimestamp}`; only `state` `SUCCEEDED` offboards.
//! - `RemoveAccountFromOrganization`: detail-type `AWS API Call via CloudTrail`, the account in
//!   `detail.requestParameters.accountId`, made by the management account.
//! - `LeaveOrganization`: detail-type `AWS API Call via CloudTrail`, no parameters: the
//!   account leaving is the caller, `detail.userIdentity.accountId` (the event is recorded in
//!   the member account: it reaches the management account's bus only if forwarded).
//! - `AccountDepartedOrganization`: a membership event in the management account's history,
//!   documented only by its `departedMethod` (`Left`, `Removed`, `Cleaned`: closed 90 days
//!   earlier) and `departedTime`; its account is read from `serviceEventDetails.accountId`
//!   (or `serviceEventDetails.<status>.accountId`), and an event without one is ignored
//!   saying so.

use super::json::{echo, Fields};
use super::limits;
use super::{
    DecodeError, Decoded, Departure, Envelope, OffboardingRequest, CLOUDTRAIL_API_CALL,
    CLOUDTRAIL_SERVICE_EVENT,
};

fn ignored(reason: String) -> Result<Decoded, DecodeError> {
    Ok(Decoded::Ignored { reason })
}

fn offboard(
    envelope: &Envelope<'_>,
    departure: Departure,
    account_id: String,
) -> Result<Decoded, DecodeError> {
    Ok(Decoded::Offboard(OffboardingRequest {
        event_id: envelope.id.to_owned(),
        departure,
        replay_name: envelope.replay_name.map(str::to_owned),
        time: envelope.time.map(str::to_owned),
        account_id,
    }))
}

/// The Organizations events this module decides, by `detail.eventName`.
pub(crate) fn decides(detail_type: &str, name: &str) -> bool {
    match name {
        "CloseAccountResult" => detail_type == CLOUDTRAIL_SERVICE_EVENT,
        "RemoveAccountFromOrganization" | "LeaveOrganization" => detail_type == CLOUDTRAIL_API_CALL,
        "AccountDepartedOrganization" => true,
        _ => false,
    }
}

/// Decodes one of the events [`decides`] accepts (named `name`).
pub(crate) fn decode(envelope: &Envelope<'_>, name: &str) -> Result<Decoded, DecodeError> {
    match name {
        "CloseAccountResult" => close_account_result(envelope),
        "RemoveAccountFromOrganization" | "LeaveOrganization" => api_call(envelope, name),
        _ => departed(envelope),
    }
}

fn close_account_result(envelope: &Envelope<'_>) -> Result<Decoded, DecodeError> {
    let details_at = envelope.detail.at("serviceEventDetails");
    let details = Fields::of(envelope.detail.req("serviceEventDetails")?, &details_at)?;
    let status_at = details.at("closeAccountStatus");
    let status = Fields::of(details.req("closeAccountStatus")?, &status_at)?;
    let state = status.req_str("state")?;
    if state != "SUCCEEDED" {
        let account = status
            .opt_str("accountId")
            .ok()
            .flatten()
            .map(|a| format!(" for account {}", echo(a)))
            .unwrap_or_default();
        return ignored(format!(
            "Organizations CloseAccountResult{account} is {} (only SUCCEEDED offboards)",
            echo(state)
        ));
    }
    let account_id = limits::account_id(&status.at("accountId"), status.req_str("accountId")?)?;
    offboard(envelope, Departure::Closed, account_id)
}

fn api_call(envelope: &Envelope<'_>, name: &str) -> Result<Decoded, DecodeError> {
    let detail = &envelope.detail;
    if let Some(code) = detail.opt_str("errorCode")? {
        let message = detail
            .opt_str("errorMessage")
            .ok()
            .flatten()
            .map(|m| format!(": {}", echo(m)))
            .unwrap_or_default();
        return ignored(format!(
            "Organizations {name} failed ({}{message}); no account left the organization",
            echo(code)
        ));
    }
    let (departure, holder, key) = if name == "LeaveOrganization" {
        (Departure::Left, "userIdentity", "accountId")
    } else {
        (Departure::Removed, "requestParameters", "accountId")
    };
    let holder_at = detail.at(holder);
    let fields = Fields::of(detail.req(holder)?, &holder_at)?;
    let (at, account) = (fields.at(key), fields.req_str(key)?);
    let account_id = limits::account_id(&at, account)?;
    offboard(envelope, departure, account_id)
}

fn departed(envelope: &Envelope<'_>) -> Result<Decoded, DecodeError> {
    let details_at = envelope.detail.at("serviceEventDetails");
    let Some(value) = envelope.detail.get("serviceEventDetails") else {
        return ignored(
            "Organizations AccountDepartedOrganization names no account (no serviceEventDetails); \
             its account is offboarded by its CloseAccountResult, RemoveAccountFromOrganization \
             or LeaveOrganization event, or by the reconciler's audit"
                .to_owned(),
        );
    };
    let details = Fields::of(value, &details_at)?;
    // The account at the top of the details, or in its one status object.
    let nested = details
        .map()
        .iter()
        .filter_map(|(k, v)| v.as_object().map(|_| (k.as_str(), v)))
        .collect::<Vec<_>>();
    let key = match (details.get("accountId"), nested.as_slice()) {
        (Some(_), _) => None,
        (None, [(key, _)]) => Some(*key),
        _ => {
            return ignored(format!(
                "Organizations AccountDepartedOrganization names no account at \
                 {details_at}.accountId; its account is offboarded by its CloseAccountResult, \
                 RemoveAccountFromOrganization or LeaveOrganization event, or by the \
                 reconciler's audit"
            ))
        }
    };
    let nested_at;
    let holder = match key {
        None => details,
        Some(key) => {
            nested_at = details.at(key);
            Fields::of(details.req(key)?, &nested_at)?
        }
    };
    let account_id = limits::account_id(&holder.at("accountId"), holder.req_str("accountId")?)?;
    let method = holder.opt_str("departedMethod")?.map(str::to_owned);
    offboard(envelope, Departure::Departed { method }, account_id)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::{decode, Accept, Decoded, Departure};

    fn sample(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or(Value::Null)
    }

    fn offboard(event: &Value) -> (String, Departure) {
        match decode(event, &Accept::default()) {
            Ok(Decoded::Offboard(r)) => (r.account_id, r.departure),
            other => panic!("not an offboarding: {other:?}"),
        }
    }

    fn ignored(event: &Value) -> String {
        match decode(event, &Accept::default()) {
            Ok(Decoded::Ignored { reason }) => reason,
            other => panic!("not ignored: {other:?}"),
        }
    }

    #[test]
    fn the_samples_offboard_their_account() {
        let close = sample(include_str!(
            "fixtures/organizations-close-account-result.json"
        ));
        assert_eq!(offboard(&close), ("555555555555".into(), Departure::Closed));
        let removed = sample(include_str!("fixtures/organizations-remove-account.json"));
        assert_eq!(
            offboard(&removed),
            ("666666666666".into(), Departure::Removed)
        );
    }

    #[test]
    fn leaving_is_the_callers_and_a_failed_call_offboards_nothing() {
        let mut left = sample(include_str!("fixtures/organizations-remove-account.json"));
        left["detail"]["eventName"] = json!("LeaveOrganization");
        left["detail"]["requestParameters"] = Value::Null;
        left["detail"]["userIdentity"]["accountId"] = json!("777777777777");
        assert_eq!(offboard(&left), ("777777777777".into(), Departure::Left));
        left["detail"]["errorCode"] = json!("ConstraintViolationException");
        assert!(ignored(&left).contains("ConstraintViolationException"));
    }

    #[test]
    fn a_closure_that_did_not_succeed_or_names_a_bad_account_is_not_acted_on() {
        let mut close = sample(include_str!(
            "fixtures/organizations-close-account-result.json"
        ));
        let status = "/detail/serviceEventDetails/closeAccountStatus";
        if let Some(s) = close.pointer_mut(status) {
            s["state"] = json!("FAILED");
        }
        assert!(ignored(&close).contains("only SUCCEEDED offboards"));
        if let Some(s) = close.pointer_mut(status) {
            s["state"] = json!("SUCCEEDED");
            s["accountId"] = json!("12ab");
        }
        let err = decode(&close, &Accept::default()).expect_err("bad account id");
        assert!(
            err.reason
                .starts_with("detail.serviceEventDetails.closeAccountStatus.accountId"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn a_departure_names_its_account_or_is_ignored_saying_so() {
        let mut departed = sample(include_str!(
            "fixtures/organizations-close-account-result.json"
        ));
        departed["detail"]["eventName"] = json!("AccountDepartedOrganization");
        departed["detail"]["serviceEventDetails"] = json!({
            "accountDepartedOrganizationStatus": {
                "accountId": "888888888888", "departedMethod": "Cleaned"
            }
        });
        assert_eq!(
            offboard(&departed),
            (
                "888888888888".into(),
                Departure::Departed {
                    method: Some("Cleaned".into())
                }
            )
        );
        departed["detail"]["serviceEventDetails"] = json!({ "departedTime": "x" });
        assert!(ignored(&departed).contains("names no account"));
    }
}
