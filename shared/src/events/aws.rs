//! AWS Control Tower and AWS Organizations lifecycle events (CloudTrail service events).
//!
//! Control Tower's 13 lifecycle events are decoded with `aws_lambda_events`' typed
//! `controltower` structs. `CreateManagedAccount` / `UpdateManagedAccount` with state
//! `SUCCEEDED` onboard their account; every other lifecycle event is ignored with a reason
//! naming it and saying why ([`Lifecycle::not_onboarding`]). The crate's structs are stricter
//! than real events in places (they require `accountId`, `message` and both timestamps, which
//! an `IN_PROGRESS` or `FAILED` status may leave out) and their errors name no field, so a
//! managed-account status they refuse is read by path, as before they were used: the
//! outcome, every limit and every error message stay what they were.
//! Organizations has no typed event in the crate: `CreateAccountResult` is read by path.

use aws_lambda_events::controltower::{
    BaselineStatus, GuardrailStatus, LandingZoneStatus, ManagedAccountStatus,
    OrganizationalUnitRegistrationStatus, PrecheckOrganizationalUnitStatus, ServiceEventDetails,
};
use serde::Deserialize;
use serde_json::Value;

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

/// Control Tower's 13 lifecycle events (AWS Control Tower user guide, "Lifecycle events"):
/// `detail.eventName`, each with its `serviceEventDetails` status in `aws_lambda_events`'
/// [`ServiceEventDetails`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    CreateManagedAccount,
    UpdateManagedAccount,
    EnableGuardrail,
    DisableGuardrail,
    SetupLandingZone,
    UpdateLandingZone,
    RegisterOrganizationalUnit,
    DeregisterOrganizationalUnit,
    PrecheckOrganizationalUnit,
    EnableBaseline,
    ResetEnabledBaseline,
    UpdateEnabledBaseline,
    DisableBaseline,
}

impl Lifecycle {
    pub(crate) const ALL: [Lifecycle; 13] = [
        Lifecycle::CreateManagedAccount,
        Lifecycle::UpdateManagedAccount,
        Lifecycle::EnableGuardrail,
        Lifecycle::DisableGuardrail,
        Lifecycle::SetupLandingZone,
        Lifecycle::UpdateLandingZone,
        Lifecycle::RegisterOrganizationalUnit,
        Lifecycle::DeregisterOrganizationalUnit,
        Lifecycle::PrecheckOrganizationalUnit,
        Lifecycle::EnableBaseline,
        Lifecycle::ResetEnabledBaseline,
        Lifecycle::UpdateEnabledBaseline,
        Lifecycle::DisableBaseline,
    ];

    /// Its `detail.eventName`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lifecycle::CreateManagedAccount => "CreateManagedAccount",
            Lifecycle::UpdateManagedAccount => "UpdateManagedAccount",
            Lifecycle::EnableGuardrail => "EnableGuardrail",
            Lifecycle::DisableGuardrail => "DisableGuardrail",
            Lifecycle::SetupLandingZone => "SetupLandingZone",
            Lifecycle::UpdateLandingZone => "UpdateLandingZone",
            Lifecycle::RegisterOrganizationalUnit => "RegisterOrganizationalUnit",
            Lifecycle::DeregisterOrganizationalUnit => "DeregisterOrganizationalUnit",
            Lifecycle::PrecheckOrganizationalUnit => "PrecheckOrganizationalUnit",
            Lifecycle::EnableBaseline => "EnableBaseline",
            Lifecycle::ResetEnabledBaseline => "ResetEnabledBaseline",
            Lifecycle::UpdateEnabledBaseline => "UpdateEnabledBaseline",
            Lifecycle::DisableBaseline => "DisableBaseline",
        }
    }

    fn named(name: &str) -> Option<Lifecycle> {
        Lifecycle::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The key of its status under `serviceEventDetails` (`createManagedAccountStatus`, ...).
    pub(crate) fn status_key(self) -> String {
        let name = self.name();
        let mut key = name[..1].to_ascii_lowercase();
        key.push_str(&name[1..]);
        key.push_str("Status");
        key
    }

    /// Why an event of this kind onboards no account (`None` for the two that onboard the
    /// account of a `SUCCEEDED` status). Nothing offboards: the project has no such step.
    pub(crate) fn not_onboarding(self) -> Option<&'static str> {
        Some(match self {
            Lifecycle::CreateManagedAccount | Lifecycle::UpdateManagedAccount => return None,
            Lifecycle::EnableGuardrail => {
                "it enables a control on organizational units and creates no account"
            }
            Lifecycle::DisableGuardrail => {
                "it disables a control on organizational units; no account comes or goes"
            }
            Lifecycle::SetupLandingZone => {
                "it sets up the landing zone and its shared accounts (log archive, audit), which are Control Tower's own, not vended accounts; onboard one with an Account Onboarding Requested event if it should have an instance"
            }
            Lifecycle::UpdateLandingZone => {
                "it updates the landing zone; the shared accounts it names already exist"
            }
            Lifecycle::RegisterOrganizationalUnit => {
                "it extends governance to an organizational unit and names no account; accounts already in it are onboarded by request (onboarding backfill)"
            }
            Lifecycle::DeregisterOrganizationalUnit => {
                "it removes governance from an organizational unit; its accounts stay in the organization and keep their instances (nothing is offboarded)"
            }
            Lifecycle::PrecheckOrganizationalUnit => {
                "it only checks an organizational unit before registration; nothing changes"
            }
            Lifecycle::EnableBaseline => {
                "it enables a baseline on a target (an organizational unit or a shared account) and creates no account"
            }
            Lifecycle::ResetEnabledBaseline => {
                "it re-applies an enabled baseline to its target and creates no account"
            }
            Lifecycle::UpdateEnabledBaseline => {
                "it changes an enabled baseline's version or parameters and creates no account"
            }
            Lifecycle::DisableBaseline => {
                "it removes a baseline from its target; the target's accounts stay in the organization and keep their instances (nothing is offboarded)"
            }
        })
    }

    /// The typed status when `details` is this event's variant.
    fn status(self, details: ServiceEventDetails) -> Option<Status> {
        use Lifecycle as E;
        use ServiceEventDetails as D;
        Some(match (self, details) {
            (E::CreateManagedAccount, D::CreateManagedAccountStatus(s))
            | (E::UpdateManagedAccount, D::UpdateManagedAccountStatus(s)) => Status::Account(s),
            (E::EnableGuardrail, D::EnableGuardrailStatus(s))
            | (E::DisableGuardrail, D::DisableGuardrailStatus(s)) => Status::Guardrail(s),
            (E::SetupLandingZone, D::SetupLandingZoneStatus(s))
            | (E::UpdateLandingZone, D::UpdateLandingZoneStatus(s)) => Status::LandingZone(s),
            (E::RegisterOrganizationalUnit, D::RegisterOrganizationalUnitStatus(s))
            | (E::DeregisterOrganizationalUnit, D::DeregisterOrganizationalUnitStatus(s)) => {
                Status::OrganizationalUnit(s)
            }
            (E::PrecheckOrganizationalUnit, D::PrecheckOrganizationalUnitStatus(s)) => {
                Status::Precheck(s)
            }
            (E::EnableBaseline, D::EnableBaselineStatus(s))
            | (E::ResetEnabledBaseline, D::ResetEnabledBaselineStatus(s))
            | (E::UpdateEnabledBaseline, D::UpdateEnabledBaselineStatus(s))
            | (E::DisableBaseline, D::DisableBaselineStatus(s)) => Status::Baseline(Box::new(s)),
            _ => return None,
        })
    }
}

/// A lifecycle event's status, as `aws_lambda_events` types it.
#[derive(Debug)]
pub(crate) enum Status {
    Account(ManagedAccountStatus),
    Guardrail(GuardrailStatus),
    LandingZone(LandingZoneStatus),
    OrganizationalUnit(OrganizationalUnitRegistrationStatus),
    Precheck(PrecheckOrganizationalUnitStatus),
    Baseline(Box<BaselineStatus>),
}

/// `serviceEventDetails` through the crate's [`ServiceEventDetails`]; the variant must be
/// the event's own. The error says why not (bounded; serde's message names no path).
pub(crate) fn typed_status(event: Lifecycle, details: &Value) -> Result<Status, String> {
    let decoded = ServiceEventDetails::deserialize(details).map_err(|e| text(&e.to_string()))?;
    event
        .status(decoded)
        .ok_or_else(|| format!("it holds no {}", event.status_key()))
}

pub(crate) fn control_tower(envelope: &Envelope<'_>) -> Result<Decoded, DecodeError> {
    let Some(name) = event_name(envelope)? else {
        return ignored(format!(
            "Control Tower event of detail-type {} is not an account lifecycle event",
            echo(envelope.detail_type)
        ));
    };
    let Some(event) = Lifecycle::named(name) else {
        return ignored(format!(
            "Control Tower event {} does not create or update a managed account (it is none of Control Tower's 13 lifecycle events)",
            echo(name)
        ));
    };
    let Some(why) = event.not_onboarding() else {
        return managed_account(envelope, event);
    };
    // Never an error, whatever its details hold: it asks for nothing either way.
    let summary = match envelope.detail.get("serviceEventDetails") {
        None => Err("it has no serviceEventDetails".to_owned()),
        Some(details) => typed_status(event, details),
    };
    ignored(match summary {
        Ok(status) => format!(
            "Control Tower {} ({}) is not an onboarding event: {why}",
            event.name(),
            summarize(&status)
        ),
        Err(shape) => format!(
            "Control Tower {} is not an onboarding event: {why} (its details are not the documented shape: {shape})",
            event.name()
        ),
    })
}

/// `CreateManagedAccount` / `UpdateManagedAccount`: read through the crate's
/// [`ManagedAccountStatus`]; a status the crate refuses is read by path instead
/// ([`managed_account_by_path`]), which names the field of any error and accepts the
/// partial statuses real events carry (an `IN_PROGRESS` or `FAILED` status without
/// `accountId`, without `completedTimestamp`). Both readers reach the same outcome on every
/// status the crate accepts (tested).
fn managed_account(envelope: &Envelope<'_>, event: Lifecycle) -> Result<Decoded, DecodeError> {
    let typed = envelope
        .detail
        .get("serviceEventDetails")
        .map(|details| typed_status(event, details));
    match typed {
        Some(Ok(Status::Account(status))) => managed_account_typed(envelope, event, &status),
        _ => managed_account_by_path(envelope, event),
    }
}

/// The decision from the crate's typed status. Its account strings still go through the
/// project's limits, under the same paths as [`managed_account_by_path`].
fn managed_account_typed(
    envelope: &Envelope<'_>,
    event: Lifecycle,
    status: &ManagedAccountStatus,
) -> Result<Decoded, DecodeError> {
    let name = event.name();
    if status.state != "SUCCEEDED" {
        return ignored(not_succeeded(
            name,
            &status.state,
            Some(&status.account.account_id),
            Some(&status.message),
        ));
    }
    let account_at = super::json::join(
        &super::json::join(
            &envelope.detail.at("serviceEventDetails"),
            &event.status_key(),
        ),
        "account",
    );
    let account_id = limits::account_id(
        &super::json::join(&account_at, "accountId"),
        &status.account.account_id,
    )?;
    let account_name = limits::account_name(
        &super::json::join(&account_at, "accountName"),
        &status.account.account_name,
    )?;
    Ok(Decoded::Request(OnboardingRequest::bare(
        envelope,
        Origin::ControlTower {
            event_name: name.to_owned(),
        },
        account_id,
        Some(account_name),
    )))
}

/// The decision read field by field (the decoder's reader before the typed structs, kept
/// for its field-named errors and its tolerance of partial statuses).
pub(crate) fn managed_account_by_path(
    envelope: &Envelope<'_>,
    event: Lifecycle,
) -> Result<Decoded, DecodeError> {
    let name = event.name();
    let status_key = event.status_key();
    let details_at = envelope.detail.at("serviceEventDetails");
    let details = Fields::of(envelope.detail.req("serviceEventDetails")?, &details_at)?;
    let status_at = details.at(&status_key);
    let status = Fields::of(details.req(&status_key)?, &status_at)?;
    let state = status.req_str("state")?;
    let account_at = status.at("account");
    let account = status
        .get("account")
        .map(|v| Fields::of(v, &account_at))
        .transpose()?;
    if state != "SUCCEEDED" {
        let account_id = account.and_then(|a| a.opt_str("accountId").ok().flatten());
        let message = status.opt_str("message").ok().flatten();
        return ignored(not_succeeded(name, state, account_id, message));
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

/// The reason an `IN_PROGRESS` / `FAILED` managed-account status is ignored.
fn not_succeeded(
    name: &str,
    state: &str,
    account_id: Option<&str>,
    message: Option<&str>,
) -> String {
    let account_id = account_id
        .map(|id| format!(" for account {}", echo(id)))
        .unwrap_or_default();
    let message = message
        .map(|m| format!(": {}", text(m)))
        .unwrap_or_default();
    format!(
        "Control Tower {name}{account_id} is {} (only SUCCEEDED onboards){message}",
        echo(state)
    )
}

/// At most this many items of a list in a summary.
const SUMMARY_ITEMS: usize = 3;

/// `"a", "b", "c" and 2 more`: each item echoed (bounded), at most [`SUMMARY_ITEMS`] of them.
fn list(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    if total == 0 {
        return "none".to_owned();
    }
    let shown: Vec<String> = items.take(SUMMARY_ITEMS).collect();
    let more = total - shown.len();
    if more == 0 {
        shown.join(", ")
    } else {
        format!("{} and {more} more", shown.join(", "))
    }
}

fn ou(name: &str, id: &str) -> String {
    format!("{} ({})", echo(name), echo(id))
}

/// What a non-onboarding lifecycle event did, for its ignore reason (every value bounded).
fn summarize(status: &Status) -> String {
    match status {
        Status::Account(s) => format!(
            "{}: account {}",
            echo(&s.state),
            echo(&s.account.account_id)
        ),
        Status::Guardrail(s) => format!(
            "{}: {} on {}",
            echo(&s.state),
            list(s.guardrails.iter().map(|g| echo(&g.guardrail_id))),
            list(
                s.organizational_units
                    .iter()
                    .map(|u| ou(&u.organizational_unit_name, &u.organizational_unit_id))
            )
        ),
        Status::LandingZone(s) => format!(
            "{}: accounts {}",
            echo(&s.state),
            list(s.accounts.iter().map(|a| format!(
                "{} ({})",
                echo(&a.account_name),
                echo(&a.account_id)
            )))
        ),
        Status::OrganizationalUnit(s) => format!(
            "{}: organizational unit {}",
            echo(&s.state),
            ou(
                &s.organizational_unit.organizational_unit_name,
                &s.organizational_unit.organizational_unit_id
            )
        ),
        Status::Precheck(s) => format!(
            "{}: organizational unit {}, {} account(s)",
            echo(&s.state),
            ou(
                &s.organizational_unit.organizational_unit_name,
                &s.organizational_unit.organizational_unit_id
            ),
            s.accounts.len()
        ),
        Status::Baseline(s) => {
            let b = &s.enabled_baseline_details;
            format!(
                "{}: baseline {} on {}",
                echo(&b.status_summary.status),
                text(&b.baseline_identifier),
                text(&b.target_identifier)
            )
        }
    }
}

pub(crate) fn organizations(envelope: &Envelope<'_>) -> Result<Decoded, DecodeError> {
    // Departures come as service events and as API calls (the other detail-types carry
    // `eventName` too).
    if let Some(name) = envelope
        .detail
        .get("eventName")
        .and_then(serde_json::Value::as_str)
    {
        if super::departure::decides(envelope.detail_type, name) {
            return super::departure::decode(envelope, name);
        }
    }
    let Some(name) = event_name(envelope)? else {
        return ignored(format!(
            "Organizations event of detail-type {} is not an account creation result or departure",
            echo(envelope.detail_type)
        ));
    };
    if name != "CreateAccountResult" {
        return ignored(format!(
            "Organizations event {} is not CreateAccountResult, CloseAccountResult or a departure",
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
