//! Typed decoding of every payload and event the onboarding functions accept.
//!
//! A function receives either one EventBridge event (a rule targets the function) or an SQS
//! batch whose bodies are EventBridge events (a rule targets a queue, standard or FIFO).
//! [`invocation`] / [`invocation_from_slice`] tell the two apart; [`decode`] (an event) and
//! [`decode_body`] (an SQS body) turn one event into a [`Decoded`]:
//!
//! | source | detail-type | what | result |
//! |---|---|---|---|
//! | [`Accept::source`] (`identity-onboarding`) | [`Accept::detail_type`] (`Account Onboarding Requested`) | the project's own request, `detail.schemaVersion` `"1"` | [`Decoded::Request`] |
//! | `aws.controltower` | `AWS Service Event via CloudTrail` | `CreateManagedAccount` / `UpdateManagedAccount`, state `SUCCEEDED` | [`Decoded::Request`] |
//! | `aws.controltower` | any | any other state (`IN_PROGRESS`, `FAILED`), the other 11 lifecycle events, any other event | [`Decoded::Ignored`] |
//! | `aws.organizations` | `AWS Service Event via CloudTrail` | `CreateAccountResult`, state `SUCCEEDED` | [`Decoded::Request`] |
//! | `aws.organizations` | any | any other state (`FAILED`, ...), any other event | [`Decoded::Ignored`] |
//! | anything else | | | [`DecodeError`] |
//!
//! Control Tower's 13 lifecycle events are decoded with `aws_lambda_events`' typed
//! `controltower` structs (see `aws.rs` for where they are stricter than real events, and how
//! today's decisions and messages are kept). Control Tower and Organizations events other
//! than the ones acted on are *ignored*, not errors, with a reason naming the event and why it
//! onboards nothing: a broad EventBridge rule (`"source": ["aws.controltower"]`) legitimately
//! delivers them. A lifecycle event that onboards nothing is ignored even when its details
//! are malformed (the reason says so). An event that claims to be one we act on but is malformed
//! (a `CreateManagedAccount` without its status, a `SUCCEEDED` status without an account id)
//! is an error. The project's own events are strict: unknown fields anywhere in `detail`
//! are rejected (a typo must not silently drop a provider); unknown *envelope* fields are
//! accepted (EventBridge adds `version`, `account`, `time`, `region`, `resources`, ...).
//!
//! Errors are permanent ([`DecodeError`]): retrying the same input cannot succeed. Their
//! reason names the field (`detail.accountId: expected 12 digits, got "12ab"`), echoes at
//! most 64 characters of any value, and never echoes a value under a secret key
//! (`client_secret`, `private_key`, or any key that looks like one).
//!
//! Size limits: an SQS body (one event) at most [`MAX_EVENT_BYTES`] (256 KiB, EventBridge's
//! event size limit); a raw invocation payload at most [`MAX_PAYLOAD_BYTES`] (6 MiB, Lambda's
//! synchronous payload limit); nesting is bounded by serde_json's recursion limit (128).
//! Every string kept in an [`OnboardingRequest`] is bounded by its own field limit.
//! Nothing here panics on input.

mod aws;
mod departure;
mod invocation;
pub(crate) mod json;
mod limits;
mod own;
mod provider;

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::revision::{normalize_time, Revision};

pub use invocation::{invocation, invocation_from_slice, Invocation, SqsRecord};
pub use limits::{
    ACCOUNT_NAME_CHARS, DETAIL_VALUE_MAX_CHARS, INSTANCE_NAME_CHARS, MAX_INSTANCE_TAGS,
    MAX_PROVIDER_TAGS, PORTAL_ARN_CHARS, PROVIDER_NAME_CHARS, SECRET_ID_CHARS, TAG_KEY_CHARS,
    TAG_VALUE_CHARS,
};
pub use provider::ProviderType;

use json::{check_len, Fields};

/// Default `source` of the project's own events (env `EVENT_SOURCE`).
pub const DEFAULT_EVENT_SOURCE: &str = "identity-onboarding";
/// Default `detail-type` of onboarding requests (env `REQUEST_DETAIL_TYPE`).
pub const DEFAULT_REQUEST_DETAIL_TYPE: &str = "Account Onboarding Requested";
/// The only schema version of the request detail this decoder reads.
pub const SCHEMA_VERSION: &str = "1";
/// Largest SQS body accepted: one EventBridge event is at most 256 KiB.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Largest raw invocation payload accepted: Lambda's 6 MiB synchronous invocation limit.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Longest envelope `id` / `replay-name` accepted (EventBridge uses UUIDs and names of at most 64).
pub const MAX_ENVELOPE_STRING_CHARS: usize = 256;

pub const CONTROL_TOWER_SOURCE: &str = "aws.controltower";
pub const ORGANIZATIONS_SOURCE: &str = "aws.organizations";
pub const CLOUDTRAIL_SERVICE_EVENT: &str = "AWS Service Event via CloudTrail";
pub const CLOUDTRAIL_API_CALL: &str = "AWS API Call via CloudTrail";

/// Which of the project's own events are onboarding requests (from `EVENT_SOURCE` and
/// `REQUEST_DETAIL_TYPE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accept {
    pub source: String,
    pub detail_type: String,
}

impl Default for Accept {
    fn default() -> Self {
        Accept {
            source: DEFAULT_EVENT_SOURCE.to_owned(),
            detail_type: DEFAULT_REQUEST_DETAIL_TYPE.to_owned(),
        }
    }
}

impl Accept {
    pub fn new(source: impl Into<String>, detail_type: impl Into<String>) -> Self {
        Accept {
            source: source.into(),
            detail_type: detail_type.into(),
        }
    }
}

/// A permanent decoding failure; `reason` names the field and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    pub reason: String,
}

impl DecodeError {
    pub fn new(reason: impl Into<String>) -> Self {
        DecodeError {
            reason: reason.into(),
        }
    }
}

/// The outcome of decoding one event.
// One value per event, moved once: boxing the request would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// Onboard this account.
    Request(OnboardingRequest),
    /// The account closed or left the organization: retire its steps.
    Offboard(OffboardingRequest),
    /// A well-formed event that asks for nothing (Control Tower `IN_PROGRESS` / `FAILED`,
    /// Organizations `FAILED`, other Control Tower / Organizations events): acknowledge it and
    /// log `reason`.
    Ignored { reason: String },
}

/// Where a request came from.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Origin {
    /// The project's own `Account Onboarding Requested` event.
    OnboardingRequested,
    /// Control Tower `CreateManagedAccount` / `UpdateManagedAccount` (the `event_name`).
    ControlTower { event_name: String },
    /// Organizations `CreateAccountResult`.
    Organizations,
}

/// One account to onboard, validated.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OnboardingRequest {
    /// The EventBridge event `id` (the same across SQS redeliveries of one event).
    pub event_id: String,
    pub origin: Origin,
    /// `replay-name` when the event comes from an archive replay.
    pub replay_name: Option<String>,
    /// The envelope's `time` (`YYYY-MM-DDTHH:MM:SS[.f]Z`; an archive replay keeps it): orders
    /// requests for the same step (see [`crate::revision`]).
    pub time: Option<String>,
    /// 12 digits.
    pub account_id: String,
    /// 1-50 characters, no control characters.
    pub account_name: Option<String>,
    /// The account's Identity Center instance; defaults (no name, no tags) when not given.
    pub instance: InstanceSpec,
    /// The web identity provider to create on a WorkSpaces Web portal, if any.
    pub web_identity_provider: Option<WebIdentityProviderSpec>,
}

impl OnboardingRequest {
    /// This request's place in time among the requests for one step.
    pub fn revision(&self) -> Revision {
        Revision::at(self.time.as_deref(), &self.event_id)
    }
}

/// How an account stopped being one to onboard.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Departure {
    /// Organizations `CloseAccountResult` `SUCCEEDED`: the account is `SUSPENDED` (AWS may
    /// reopen it within 90 days).
    Closed,
    /// `RemoveAccountFromOrganization` by the management account.
    Removed,
    /// `LeaveOrganization` by the account itself.
    Left,
    /// `AccountDepartedOrganization`, with its `departedMethod` when given.
    Departed { method: Option<String> },
    /// The reconciler found the account in this Organizations `State` (`SUSPENDED`,
    /// `PENDING_CLOSURE`, `CLOSED`) or no longer in the organization.
    Found { state: String },
}

impl Departure {
    /// The event (or finding) that says so.
    pub fn event_name(&self) -> &'static str {
        match self {
            Departure::Closed => "CloseAccountResult",
            Departure::Removed => "RemoveAccountFromOrganization",
            Departure::Left => "LeaveOrganization",
            Departure::Departed { .. } => "AccountDepartedOrganization",
            Departure::Found { .. } => "DescribeAccount",
        }
    }
}

/// An account whose steps are retired: it closed or left the organization.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OffboardingRequest {
    /// The EventBridge event `id` (or the reconciler's run id).
    pub event_id: String,
    pub departure: Departure,
    pub replay_name: Option<String>,
    /// The envelope's `time`: a request newer than it reopens the account's steps.
    pub time: Option<String>,
    /// 12 digits.
    pub account_id: String,
}

impl OffboardingRequest {
    /// Why the account's steps are retired, in a sentence.
    pub fn reason(&self) -> String {
        let what = match &self.departure {
            Departure::Closed => {
                "the account was closed (Organizations CloseAccountResult)".to_owned()
            }
            Departure::Removed => {
                "the account was removed from the organization (RemoveAccountFromOrganization)"
                    .to_owned()
            }
            Departure::Left => "the account left the organization (LeaveOrganization)".to_owned(),
            Departure::Departed { method } => format!(
                "the account departed the organization (AccountDepartedOrganization, method {})",
                method.as_deref().unwrap_or("not given")
            ),
            Departure::Found { state } => {
                format!("Organizations DescribeAccount says the account is {state}")
            }
        };
        format!(
            "account {} retired: {what}, event {}{}",
            self.account_id,
            self.event_id,
            self.time
                .as_deref()
                .map(|t| format!(" at {t}"))
                .unwrap_or_default()
        )
    }
}

/// The account instance of IAM Identity Center.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct InstanceSpec {
    /// SSO Admin `NameType`: `^[\w+=,.@-]+$`, at most 255 characters.
    pub name: Option<String>,
    /// At most 75 tags (SSO Admin `TagList`).
    pub tags: BTreeMap<String, String>,
    /// Tags the request removes (given as `null`): a tag the project set goes.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub removed_tags: BTreeSet<String>,
}

/// A WorkSpaces Web identity provider. Holds no secret: the secret's keys
/// ([`ProviderType::secret_keys`]) are read from Secrets Manager `secret_id`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WebIdentityProviderSpec {
    pub portal_arn: String,
    /// The account owning the portal (from the ARN).
    pub portal_account_id: String,
    pub provider_name: String,
    pub provider_type: ProviderType,
    /// Non-secret `identityProviderDetails`.
    pub details: BTreeMap<String, String>,
    /// Present exactly when the type has secret keys (absent for SAML).
    pub secret_id: Option<String>,
    /// At most 200 tags (WorkSpaces Web `TagList`).
    pub tags: BTreeMap<String, String>,
    /// Tags the request removes (given as `null`).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub removed_tags: BTreeSet<String>,
}

/// The envelope fields every decoder needs.
pub(crate) struct Envelope<'a> {
    pub id: &'a str,
    pub detail_type: &'a str,
    pub detail: Fields<'a>,
    pub replay_name: Option<&'a str>,
    pub time: Option<&'a str>,
}

/// Decodes one EventBridge event (see the module documentation for what is accepted).
pub fn decode(event: &Value, accept: &Accept) -> Result<Decoded, DecodeError> {
    let fields = Fields::of(event, "")?;
    let id = fields.req_str("id")?;
    if id.trim().is_empty() {
        return Err(DecodeError::new("id: must not be empty"));
    }
    check_len("id", id, 1, MAX_ENVELOPE_STRING_CHARS)?;
    let source = fields.req_str("source")?;
    let detail_type = fields.req_str("detail-type")?;
    let detail = Fields::of(fields.req("detail")?, "detail")?;
    let replay_name = fields.opt_str("replay-name")?;
    if let Some(name) = replay_name {
        check_len("replay-name", name, 1, MAX_ENVELOPE_STRING_CHARS)?;
    }
    let time = fields.opt_str("time")?;
    if let Some(time) = time {
        if normalize_time(time).is_none() {
            return Err(DecodeError::new(format!(
                "time: expected a UTC time like 2026-11-30T12:00:00Z, got {}",
                json::echo(time)
            )));
        }
    }
    let envelope = Envelope {
        id,
        detail_type,
        detail,
        replay_name,
        time,
    };
    if source == accept.source {
        if detail_type == accept.detail_type {
            return own::decode(&envelope);
        }
        return Err(DecodeError::new(format!(
            "detail-type: {} is not accepted from source {} (expected {})",
            json::echo(detail_type),
            json::echo(source),
            json::echo(&accept.detail_type)
        )));
    }
    match source {
        CONTROL_TOWER_SOURCE => aws::control_tower(&envelope),
        ORGANIZATIONS_SOURCE => aws::organizations(&envelope),
        _ => Err(DecodeError::new(format!(
            "source: {} is not accepted (expected {}, {CONTROL_TOWER_SOURCE:?} or {ORGANIZATIONS_SOURCE:?})",
            json::echo(source),
            json::echo(&accept.source)
        ))),
    }
}

/// Decodes an SQS message body holding one EventBridge event: at most [`MAX_EVENT_BYTES`],
/// valid JSON, then [`decode`].
pub fn decode_body(body: &str, accept: &Accept) -> Result<Decoded, DecodeError> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::new(format!(
            "body: {} bytes exceeds the {MAX_EVENT_BYTES}-byte limit of an EventBridge event",
            body.len()
        )));
    }
    if body.trim().is_empty() {
        return Err(DecodeError::new(
            "body: empty (expected an EventBridge event as JSON)",
        ));
    }
    let event: Value = serde_json::from_str(body)
        .map_err(|e| DecodeError::new(format!("body: not valid JSON: {e}")))?;
    decode(&event, accept)
}

impl OnboardingRequest {
    /// A request with default instance settings and no provider (the AWS-originated events).
    pub(crate) fn bare(
        envelope: &Envelope<'_>,
        origin: Origin,
        account_id: String,
        account_name: Option<String>,
    ) -> Self {
        OnboardingRequest {
            event_id: envelope.id.to_owned(),
            origin,
            replay_name: envelope.replay_name.map(str::to_owned),
            time: envelope.time.map(str::to_owned),
            account_id,
            account_name,
            instance: InstanceSpec::default(),
            web_identity_provider: None,
        }
    }
}
