//! AWS Control Tower and AWS Organizations lifecycle events (CloudTrail service events).

use super::json::{echo, Fields};
use super::limits;
use super::{DecodeError, Decoded, Envelope, OnboardingRequest, Origin, CLOUDTRAIL_SERVICE_EVENT};

/// Longest AWS status message kept in an [`Decoded::Ignored`] reason.
const MESSAGE_CHARS: usize = 256;

fn ignored(reason: String) -> Result<Decoded, DecodeError> {
    Ok(Decoded::Ignored { reason })
}

/// A short, quoted text from an AWS event for an ignore reason.
fn text(s: &str) -> String {
    let head: String = s.chars().take(MESSAGE_CHARS).collect();
    if head.len() < s.len() {
        format!("{head:?}...")
    } else {
        format!("{head:?}")
    }
}

/// `detail.eventName`, for events of the CloudTrail service-event kind; `None` (ignored)
/// for other detail-types.
fn event_name<'a>(envelope: &Envelope<'a>) -> Result<Option<&'a str>, DecodeError> {
    if envelope.detail_type != CLOUDTRAIL_SERVICE_EVENT {
        return Ok(None);
    }
    envelope.detail.req_str("eventName").map(Some)
}

pub(crate) fn control_tower(envelope: &Envelope<'_>) -> Result<Decoded, DecodeError> {
    let Some(name) = event_name(envelope)? else {
        return ignored(format!(
            "Control Tower event of detail-type {} is not an account lifecycle event",
            echo(envelope.detail_type)
        ));
    };
    let status_key = match name {
        "CreateManagedAccount" => "createManagedAccountStatus",
        "UpdateManagedAccount" => "updateManagedAccountStatus",
        other => {
            return ignored(format!(
                "Control Tower event {} does not create or update a managed account",
                echo(other)
            ))
        }
    };
    let details_at = envelope.detail.at("serviceEventDetails");
    let details = Fields::of(envelope.detail.req("serviceEventDetails")?, &details_at)?;
    let status_at = details.at(status_key);
    let status = Fields::of(details.req(status_key)?, &status_at)?;
    let state = status.req_str("state")?;
    let account_at = status.at("account");
    let account = status
        .get("account")
        .map(|v| Fields::of(v, &account_at))
        .transpose()?;
    if state != "SUCCEEDED" {
        let account_id = account
            .and_then(|a| a.opt_str("accountId").ok().flatten())
            .map(|id| format!(" for account {}", echo(id)))
            .unwrap_or_default();
        let message = status
            .opt_str("message")
            .ok()
            .flatten()
            .map(|m| format!(": {}", text(m)))
            .unwrap_or_default();
        return ignored(format!(
            "Control Tower {name}{account_id} is {} (only SUCCEEDED onboards){message}",
            echo(state)
        ));
    }
    let account = account.ok_or_else(|| DecodeError::new(format!("{account_at}: missing")))?;
    let account_id = limits::account_id(&account.at("accountId"), account.req_str("accountId")?)?;
    let account_name = account
        .opt_str("accountName")?
        .map(|s| limits::account_name(&account.at("accountName"), s))
        .transpose()?;
    Ok(Decoded::Request(OnboardingRequest::bare(
        envelope,
        Origin::ControlTower {
            event_name: name.to_owned(),
        },
        account_id,
        account_name,
    )))
}

pub(crate) fn organizations(envelope: &Envelope<'_>) -> Result<Decoded, DecodeError> {
    let Some(name) = event_name(envelope)? else {
        return ignored(format!(
            "Organizations event of detail-type {} is not an account creation result",
            echo(envelope.detail_type)
        ));
    };
    if name != "CreateAccountResult" {
        return ignored(format!(
            "Organizations event {} is not CreateAccountResult",
            echo(name)
        ));
    }
    let details_at = envelope.detail.at("serviceEventDetails");
    let details = Fields::of(envelope.detail.req("serviceEventDetails")?, &details_at)?;
    let status_at = details.at("createAccountStatus");
    let status = Fields::of(details.req("createAccountStatus")?, &status_at)?;
    let state = status.req_str("state")?;
    if state != "SUCCEEDED" {
        let reason = status
            .opt_str("failureReason")
            .ok()
            .flatten()
            .map(|r| format!(": {}", text(r)))
            .unwrap_or_default();
        let account_name = status
            .opt_str("accountName")
            .ok()
            .flatten()
            .map(|n| format!(" of account {}", echo(n)))
            .unwrap_or_default();
        return ignored(format!(
            "Organizations CreateAccountResult{account_name} is {} (only SUCCEEDED onboards){reason}",
            echo(state)
        ));
    }
    let account_id = limits::account_id(&status.at("accountId"), status.req_str("accountId")?)?;
    let account_name = status
        .opt_str("accountName")?
        .map(|s| limits::account_name(&status.at("accountName"), s))
        .transpose()?;
    Ok(Decoded::Request(OnboardingRequest::bare(
        envelope,
        Origin::Organizations,
        account_id,
        account_name,
    )))
}
