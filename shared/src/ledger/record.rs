//! Ledger items as Rust values, and their decoding from DynamoDB attributes.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;

use super::error::LedgerError;
use super::key::StepKey;
use super::schema;
use crate::desired::Desired;
use crate::revision::Revision;

/// Where a step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Claimed (a lease, possibly expired), resource not yet created.
    InProgress,
    /// The resource was created but is not ready yet.
    Created,
    /// Done.
    Ready,
    /// Failed permanently; an operator's retry starts a new generation.
    Failed,
    /// The account closed or left the organization: final, out of every index, never
    /// re-driven, audited or repaired. A newer request (a reopened account) starts a new
    /// generation.
    Retired,
}

impl Status {
    /// The value stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Created => "CREATED",
            Status::Ready => "READY",
            Status::Failed => "FAILED",
            Status::Retired => "RETIRED",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of the four the ledger knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown step status {0:?} (expected IN_PROGRESS, CREATED, READY, FAILED or RETIRED)")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "IN_PROGRESS" => Ok(Status::InProgress),
            "CREATED" => Ok(Status::Created),
            "READY" => Ok(Status::Ready),
            "FAILED" => Ok(Status::Failed),
            "RETIRED" => Ok(Status::Retired),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// How a step's resource came to be ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// This step's create call made it.
    Created,
    /// An earlier attempt's create made it; its response was lost, a lookup found it.
    Adopted,
    /// It was there before the step's first attempt and is what the request asks for.
    PreExisting,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Created => "created",
            Origin::Adopted => "adopted",
            Origin::PreExisting => "pre-existing",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Origin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "created" => Ok(Origin::Created),
            "adopted" => Ok(Origin::Adopted),
            "pre-existing" => Ok(Origin::PreExisting),
            other => Err(format!(
                "unknown origin {other:?} (expected created, adopted or pre-existing)"
            )),
        }
    }
}

/// Why a step failed (stored on the item; never holds secrets).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorReason {
    pub retryable: bool,
    pub code: String,
    pub message: String,
}

/// Longest error code and message kept in the ledger (characters).
const MAX_CODE_CHARS: usize = 128;
const MAX_MESSAGE_CHARS: usize = 1024;

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

impl ErrorReason {
    /// The stored form: a map, code and message truncated to bounded lengths.
    pub(crate) fn to_attribute(&self) -> AttributeValue {
        AttributeValue::M(HashMap::from([
            (
                schema::ERROR_RETRYABLE.to_owned(),
                AttributeValue::Bool(self.retryable),
            ),
            (
                schema::ERROR_CODE.to_owned(),
                AttributeValue::S(truncate(&self.code, MAX_CODE_CHARS)),
            ),
            (
                schema::ERROR_MESSAGE.to_owned(),
                AttributeValue::S(truncate(&self.message, MAX_MESSAGE_CHARS)),
            ),
        ]))
    }
}

/// How a lease holder's failure ends the attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The step is `FAILED` until an operator retries it.
    Permanent,
    /// The step stays `IN_PROGRESS`; the lease is released so the next delivery takes over.
    Retryable,
}

/// One ledger item. Times are epoch milliseconds, except `expires_at` (epoch seconds).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Record {
    pub key: StepKey,
    pub status: Status,
    /// The ClientToken of the current generation.
    pub token: String,
    /// What every token of the item is derived from; `None` on an item written before
    /// salts existed (its tokens are derived without one).
    pub token_salt: Option<String>,
    pub request_hash: Option<String>,
    pub generation: u32,
    pub attempt: u32,
    pub resource_arn: Option<String>,
    pub last_error: Option<ErrorReason>,
    pub announced: bool,
    pub lease_owner: Option<String>,
    /// Epoch milliseconds.
    pub lease_expires_at: Option<u64>,
    /// Epoch milliseconds.
    pub first_attempt_at: Option<u64>,
    /// Epoch milliseconds.
    pub updated_at: Option<u64>,
    /// TTL, epoch seconds: set only while `IN_PROGRESS` and when `FAILED`.
    pub expires_at: Option<u64>,
    /// Ids of the events whose deliveries acquired the step, oldest first.
    pub recent_events: Vec<String>,
    /// The account of an `account#` scope.
    pub account_id: Option<String>,
    pub origin: Option<Origin>,
    /// An attempt of this generation sent (or may have sent) a create call.
    pub create_sent: bool,
    /// The last attempt whose holder recorded how it ended.
    pub settled_attempt: u32,
    /// Epoch milliseconds: the earliest time to try a retryable step again.
    pub retry_after: Option<u64>,
    /// The applied state: the fields requests specified, as last applied (no secrets).
    pub state: Option<serde_json::Map<String, serde_json::Value>>,
    pub applied_revision: Option<Revision>,
    /// What the requests ask, field by field (see [`crate::desired`]); on an item written
    /// before the desired state existed, derived from its applied and pending states.
    pub desired: Desired,
    /// Bumped by every change of `desired` and every repair; 0 when never written.
    pub desired_version: u64,
    /// Whether `desired` is stored (else it was derived, and its first write creates it).
    pub desired_stored: bool,
    /// The desired version the held update brings the resource to.
    pub update_version: Option<u64>,
    /// The desired version whose update was refused for good.
    pub refused_version: Option<u64>,
    /// Announcements recorded and not yet sent, oldest first (JSON of
    /// [`crate::announce::Event`]).
    pub outbox: Vec<String>,
    /// The attention index's partition the step is in (`None`: not in it).
    pub attention: Option<String>,
    pub update_owner: Option<String>,
    /// Epoch milliseconds.
    pub update_lease_expires_at: Option<u64>,
    pub update_attempt: u32,
    /// Epoch milliseconds: when the pending update was first claimed (kept across
    /// releases; gone once the update ends).
    pub update_first_attempt_at: Option<u64>,
    /// What the generation's first claimant asked, and its revision: what every holder of
    /// the generation creates with (and what re-driving rebuilds).
    pub requested: Option<serde_json::Map<String, serde_json::Value>>,
    pub requested_revision: Option<Revision>,
    /// Drift the audit found: `{"at": epoch ms, "gone": bool, "changed": [fields]}`.
    pub drift: Option<serde_json::Map<String, serde_json::Value>>,
    /// Epoch milliseconds: when the audit last checked the step.
    pub audited_at: Option<u64>,
    /// Why and when the step was retired (JSON: `at`, `event`, `eventId`, `time`, `reason`),
    /// kept after a reopening as the step's history.
    pub retired: Option<serde_json::Map<String, serde_json::Value>>,
    /// The revision of the closure or departure that retired the step.
    pub retired_revision: Option<Revision>,
}

impl Record {
    /// A `READY` step whose resource does not hold the desired state yet, and whose desired
    /// state was not refused: an update is owed.
    pub fn update_pending(&self) -> bool {
        self.status == Status::Ready
            && self.refused_version != Some(self.desired_version)
            && self
                .desired
                .pending(self.state.as_ref().unwrap_or(&Default::default()))
    }

    /// Whether an update lease is held at `now_ms` (a holder whose lease ended leaves its
    /// fields behind until the step settles).
    pub fn update_held(&self, now_ms: u64) -> bool {
        self.update_owner.is_some() && self.update_lease_expires_at.is_some_and(|ms| now_ms < ms)
    }

    /// Whether a `READY` step owes nothing but what its outbox holds: its Ready announced, no
    /// update held at `now_ms` or pending. Such a step leaves the attention index once its
    /// outbox is sent.
    pub fn owes_only_its_outbox(&self, now_ms: u64) -> bool {
        self.status == Status::Ready
            && self.announced
            && !self.update_held(now_ms)
            && !self.update_pending()
    }

    /// The desired version as a fence: `None` while none was ever written (versions count
    /// from 1).
    pub fn seen_version(&self) -> Option<u64> {
        (self.desired_version > 0).then_some(self.desired_version)
    }

    /// Whether an attempt before `attempt` may have sent a create call: one said so, or one
    /// ended without saying (a crash, a lost lease).
    pub fn create_may_have_been_sent(&self) -> bool {
        self.create_sent || self.settled_attempt + 1 < self.attempt
    }
}

type Item = HashMap<String, AttributeValue>;

struct Decoder<'a> {
    item: &'a Item,
    key: String,
}

impl<'a> Decoder<'a> {
    fn corrupt(&self, reason: String) -> LedgerError {
        LedgerError::Corrupt {
            key: self.key.clone(),
            reason,
        }
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, LedgerError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(self.corrupt(format!("attribute {name} is not a string"))),
        }
    }

    fn required_string(&self, name: &str) -> Result<&'a str, LedgerError> {
        self.string(name)?
            .ok_or_else(|| self.corrupt(format!("attribute {name} is missing")))
    }

    fn number(&self, name: &str) -> Result<Option<u64>, LedgerError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(n)) => n.parse::<u64>().map(Some).map_err(|_| {
                self.corrupt(format!("attribute {name} is not a non-negative integer"))
            }),
            Some(_) => Err(self.corrupt(format!("attribute {name} is not a number"))),
        }
    }

    fn required_u32(&self, name: &str) -> Result<u32, LedgerError> {
        let n = self
            .number(name)?
            .ok_or_else(|| self.corrupt(format!("attribute {name} is missing")))?;
        u32::try_from(n).map_err(|_| self.corrupt(format!("attribute {name} is out of range")))
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, LedgerError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.corrupt(format!("attribute {name} is not a boolean"))),
        }
    }

    fn error_reason(&self) -> Result<Option<ErrorReason>, LedgerError> {
        let map = match self.item.get(schema::LAST_ERROR) {
            None | Some(AttributeValue::Null(_)) => return Ok(None),
            Some(AttributeValue::M(map)) => map,
            Some(_) => {
                return Err(self.corrupt(format!("attribute {} is not a map", schema::LAST_ERROR)))
            }
        };
        let inner = Decoder {
            item: map,
            key: self.key.clone(),
        };
        Ok(Some(ErrorReason {
            retryable: inner.boolean(schema::ERROR_RETRYABLE)?.unwrap_or(false),
            code: inner
                .string(schema::ERROR_CODE)?
                .unwrap_or_default()
                .to_owned(),
            message: inner
                .string(schema::ERROR_MESSAGE)?
                .unwrap_or_default()
                .to_owned(),
        }))
    }

    /// The stored desired state; on an item written before it existed, what was applied
    /// (at the applied revision) with any pending update over it (at its revision).
    fn desired(&self) -> Result<Desired, LedgerError> {
        if let Some(stored) = self.string(schema::DESIRED)? {
            return Desired::from_json(stored).map_err(|e| self.corrupt(e));
        }
        let mut desired = Desired::default();
        let fields = |name: &str, revision: &str| -> Result<Option<Desired>, LedgerError> {
            let (Some(fields), Some(revision)) = (self.json_map(name)?, self.string(revision)?)
            else {
                return Ok(None);
            };
            Ok(Some(Desired::of(&fields, &Revision::parse(revision))))
        };
        for legacy in [
            fields(schema::STATE, schema::APPLIED_REVISION)?,
            fields(schema::WANTED, schema::WANTED_REVISION)?,
        ]
        .into_iter()
        .flatten()
        {
            desired.merge(&legacy);
        }
        Ok(desired)
    }

    /// A JSON object stored as a string.
    fn json_map(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, LedgerError> {
        match self.string(name)? {
            None => Ok(None),
            Some(text) => match serde_json::from_str(text) {
                Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
                _ => Err(self.corrupt(format!("attribute {name} is not a JSON object"))),
            },
        }
    }

    fn string_list(&self, name: &str) -> Result<Vec<String>, LedgerError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
            Some(AttributeValue::L(items)) => items
                .iter()
                .map(|v| match v {
                    AttributeValue::S(s) => Ok(s.clone()),
                    _ => Err(self.corrupt(format!("attribute {name} holds a non-string"))),
                })
                .collect(),
            Some(_) => Err(self.corrupt(format!("attribute {name} is not a list"))),
        }
    }
}

/// The `<scope>/<step>` of an item, as far as it can be read (for error messages).
pub(crate) fn describe_key(item: &Item) -> String {
    let part = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => "?".to_owned(),
    };
    format!("{}/{}", part(schema::PK), part(schema::SK))
}

impl Record {
    /// Decodes a ledger item. A missing or ill-typed attribute is [`LedgerError::Corrupt`].
    pub fn from_item(item: &Item) -> Result<Record, LedgerError> {
        let d = Decoder {
            item,
            key: describe_key(item),
        };
        let key = StepKey {
            scope: d.required_string(schema::PK)?.to_owned(),
            step: d.required_string(schema::SK)?.to_owned(),
        };
        let status = d
            .required_string(schema::STATUS)?
            .parse::<Status>()
            .map_err(|e| d.corrupt(e.to_string()))?;
        Ok(Record {
            status,
            token: d.required_string(schema::CLIENT_TOKEN)?.to_owned(),
            token_salt: d.string(schema::TOKEN_SALT)?.map(str::to_owned),
            request_hash: d.string(schema::REQUEST_HASH)?.map(str::to_owned),
            generation: d.required_u32(schema::GENERATION)?,
            attempt: d.required_u32(schema::ATTEMPT)?,
            resource_arn: d.string(schema::RESOURCE_ARN)?.map(str::to_owned),
            last_error: d.error_reason()?,
            announced: d.boolean(schema::ANNOUNCED)?.unwrap_or(false),
            lease_owner: d.string(schema::LEASE_OWNER)?.map(str::to_owned),
            lease_expires_at: d.number(schema::LEASE_EXPIRES_AT)?,
            first_attempt_at: d.number(schema::FIRST_ATTEMPT_AT)?,
            updated_at: d.number(schema::UPDATED_AT)?,
            expires_at: d.number(schema::EXPIRES_AT)?,
            recent_events: d.string_list(schema::RECENT_EVENTS)?,
            account_id: key.account_id().map(str::to_owned),
            origin: d
                .string(schema::ORIGIN)?
                .map(str::parse::<Origin>)
                .transpose()
                .map_err(|e| d.corrupt(e))?,
            create_sent: d.boolean(schema::CREATE_SENT)?.unwrap_or(false),
            settled_attempt: d
                .number(schema::SETTLED_ATTEMPT)?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                .unwrap_or(0),
            retry_after: d.number(schema::RETRY_AFTER)?,
            state: d.json_map(schema::STATE)?,
            applied_revision: d.string(schema::APPLIED_REVISION)?.map(Revision::parse),
            desired: d.desired()?,
            desired_version: d.number(schema::DESIRED_VERSION)?.unwrap_or(0),
            desired_stored: item.contains_key(schema::DESIRED),
            update_version: d.number(schema::UPDATE_VERSION)?,
            refused_version: d.number(schema::REFUSED_VERSION)?,
            update_owner: d.string(schema::UPDATE_OWNER)?.map(str::to_owned),
            update_lease_expires_at: d.number(schema::UPDATE_LEASE_EXPIRES_AT)?,
            update_attempt: d
                .number(schema::UPDATE_ATTEMPT)?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                .unwrap_or(0),
            update_first_attempt_at: d.number(schema::UPDATE_FIRST_ATTEMPT_AT)?,
            requested: d.json_map(schema::REQUESTED)?,
            requested_revision: d.string(schema::REQUESTED_REVISION)?.map(Revision::parse),
            drift: d.json_map(schema::DRIFT)?,
            attention: d.string(schema::ATTENTION)?.map(str::to_owned),
            outbox: d.string_list(schema::OUTBOX)?,
            audited_at: d.number(schema::AUDITED_AT)?,
            retired: d.json_map(schema::RETIRED)?,
            retired_revision: d.string(schema::RETIRED_REVISION)?.map(Revision::parse),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }
    fn n(v: u64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    fn full_item() -> Item {
        let reason = ErrorReason {
            retryable: true,
            code: "ThrottlingException".into(),
            message: "slow down".into(),
        };
        HashMap::from([
            (schema::PK.to_owned(), s("account#123456789012")),
            (schema::SK.to_owned(), s("identity-center-instance")),
            (schema::STATUS.to_owned(), s("CREATED")),
            (schema::CLIENT_TOKEN.to_owned(), s("tok")),
            (schema::REQUEST_HASH.to_owned(), s("abc")),
            (schema::GENERATION.to_owned(), n(1)),
            (schema::ATTEMPT.to_owned(), n(2)),
            (schema::RESOURCE_ARN.to_owned(), s("arn:x")),
            (schema::LAST_ERROR.to_owned(), reason.to_attribute()),
            (schema::ANNOUNCED.to_owned(), AttributeValue::Bool(false)),
            (schema::LEASE_OWNER.to_owned(), s("owner")),
            (schema::LEASE_EXPIRES_AT.to_owned(), n(1_700_000_000_000)),
            (schema::FIRST_ATTEMPT_AT.to_owned(), n(1_600_000_000_000)),
            (schema::UPDATED_AT.to_owned(), n(1_700_000_000_001)),
            (
                schema::RECENT_EVENTS.to_owned(),
                AttributeValue::L(vec![s("e1"), s("e2")]),
            ),
        ])
    }

    #[test]
    fn status_round_trips() {
        for status in [
            Status::InProgress,
            Status::Created,
            Status::Ready,
            Status::Failed,
            Status::Retired,
        ] {
            assert_eq!(status.to_string().parse::<Status>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::String(status.to_string()))
            );
        }
        assert!("ready".parse::<Status>().is_err());
    }

    #[test]
    fn decodes_a_full_item() {
        let record = Record::from_item(&full_item()).expect("valid item");
        assert_eq!(
            record.key,
            StepKey::account("123456789012", "identity-center-instance")
        );
        assert_eq!(record.status, Status::Created);
        assert_eq!(record.generation, 1);
        assert_eq!(record.attempt, 2);
        assert_eq!(record.resource_arn.as_deref(), Some("arn:x"));
        assert_eq!(
            record.last_error.as_ref().map(|e| e.code.as_str()),
            Some("ThrottlingException")
        );
        assert_eq!(record.recent_events, vec!["e1", "e2"]);
        assert_eq!(record.account_id.as_deref(), Some("123456789012"));
        assert_eq!(record.expires_at, None);
    }

    #[test]
    fn missing_or_ill_typed_attributes_are_corrupt() {
        for (name, value) in [
            (schema::STATUS, None),
            (schema::STATUS, Some(s("DONE"))),
            (schema::CLIENT_TOKEN, None),
            (schema::GENERATION, Some(s("1"))),
            (schema::ATTEMPT, Some(n(u64::from(u32::MAX) + 1))),
            (schema::ATTEMPT, Some(AttributeValue::N("-1".into()))),
            (
                schema::LEASE_EXPIRES_AT,
                Some(AttributeValue::N("1.5".into())),
            ),
            (schema::ANNOUNCED, Some(s("yes"))),
            (schema::RECENT_EVENTS, Some(AttributeValue::L(vec![n(1)]))),
            (schema::LAST_ERROR, Some(s("oops"))),
        ] {
            let mut item = full_item();
            match value {
                Some(v) => item.insert(name.to_owned(), v),
                None => item.remove(name),
            };
            match Record::from_item(&item) {
                Err(LedgerError::Corrupt { key, reason }) => {
                    assert_eq!(key, "account#123456789012/identity-center-instance");
                    assert!(reason.contains(name), "{reason}");
                }
                other => panic!("{name}: expected Corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_reason_is_bounded() {
        let reason = ErrorReason {
            retryable: false,
            code: "C".repeat(500),
            message: "é".repeat(5000),
        };
        let mut item = full_item();
        item.insert(schema::LAST_ERROR.to_owned(), reason.to_attribute());
        let stored = Record::from_item(&item)
            .ok()
            .and_then(|r| r.last_error)
            .expect("decoded");
        assert_eq!(stored.code.chars().count(), MAX_CODE_CHARS);
        assert_eq!(stored.message.chars().count(), MAX_MESSAGE_CHARS);
    }
}
