//! Every expression the ledger sends, built by small pure functions so a test can check that
//! each one uses exactly the name and value placeholders it defines (real DynamoDB rejects
//! unused `ExpressionAttributeValues`; moto does not).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::record::{ErrorReason, Status};
use super::schema::*;

/// An update and/or condition (or key condition, or filter) expression with its placeholders.
#[derive(Debug, Default, Clone)]
pub(crate) struct Expressions {
    pub update: Option<String>,
    pub condition: Option<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expressions {
    /// The `#placeholder` of attribute `attr`, registered.
    fn n(&mut self, attr: &str) -> String {
        let placeholder: String = std::iter::once('#')
            .chain(attr.chars().filter(|c| c.is_ascii_alphanumeric()))
            .collect();
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    /// The `:label` placeholder of `value`, registered.
    fn v(&mut self, label: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{label}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub fn names_opt(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub fn values_opt(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn num(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Inputs of a claim.
pub(crate) struct ClaimInput<'a> {
    /// Token of generation 0, used only when the item does not exist yet.
    pub first_token: &'a str,
    pub request_hash: &'a str,
    pub event_id: &'a str,
    pub owner: &'a str,
    pub now_ms: u64,
    pub lease_expires_ms: u64,
    pub ttl_secs: u64,
}

/// Claim: create the item, or take over an `IN_PROGRESS` item whose lease expired and whose
/// request hash is unset or equal.
pub(crate) fn claim(input: &ClaimInput<'_>) -> Expressions {
    let mut e = Expressions::default();
    let (pk, status, attention, token) = (e.n(PK), e.n(STATUS), e.n(ATTENTION), e.n(CLIENT_TOKEN));
    let (generation, attempt, owner, lease) = (
        e.n(GENERATION),
        e.n(ATTEMPT),
        e.n(LEASE_OWNER),
        e.n(LEASE_EXPIRES_AT),
    );
    let (expires, first, updated, events, hash, announced) = (
        e.n(EXPIRES_AT),
        e.n(FIRST_ATTEMPT_AT),
        e.n(UPDATED_AT),
        e.n(RECENT_EVENTS),
        e.n(REQUEST_HASH),
        e.n(ANNOUNCED),
    );
    let in_progress = e.v("inprogress", s(Status::InProgress.as_str()));
    let first_token = e.v("token", s(input.first_token));
    let zero = e.v("zero", num(0));
    let one = e.v("one", num(1));
    let owner_v = e.v("owner", s(input.owner));
    let lease_v = e.v("lease", num(input.lease_expires_ms));
    let ttl = e.v("ttl", num(input.ttl_secs));
    let now = e.v("now", num(input.now_ms));
    let empty = e.v("nolist", AttributeValue::L(Vec::new()));
    let event = e.v("event", AttributeValue::L(vec![s(input.event_id)]));
    let hash_v = e.v("hash", s(input.request_hash));
    let no = e.v("no", AttributeValue::Bool(false));
    e.update = Some(format!(
        "SET {status} = {in_progress}, {attention} = {in_progress}, \
         {token} = if_not_exists({token}, {first_token}), \
         {generation} = if_not_exists({generation}, {zero}), \
         {attempt} = if_not_exists({attempt}, {zero}) + {one}, \
         {owner} = {owner_v}, {lease} = {lease_v}, {expires} = {ttl}, \
         {first} = if_not_exists({first}, {now}), {updated} = {now}, \
         {events} = list_append(if_not_exists({events}, {empty}), {event}), \
         {hash} = {hash_v}, {announced} = if_not_exists({announced}, {no})"
    ));
    e.condition = Some(format!(
        "attribute_not_exists({pk}) OR ({status} = {in_progress} AND {lease} <= {now} \
         AND (attribute_not_exists({hash}) OR {hash} = {hash_v}))"
    ));
    e
}

/// `IN_PROGRESS` held by `owner` -> `CREATED` or `READY`, with the resource ARN. Completed
/// items lose their TTL; `READY` items also leave the attention index. The engine announces
/// before it records `READY` or `FAILED`, so those writes also mark the outcome announced:
/// one write instead of two, and a crash in between re-announces (at least once).
pub(crate) fn complete(owner: &str, to: Status, arn: &str, now_ms: u64) -> Expressions {
    let mut e = Expressions::default();
    let (status, lease_owner, resource, updated, expires, attention) = (
        e.n(STATUS),
        e.n(LEASE_OWNER),
        e.n(RESOURCE_ARN),
        e.n(UPDATED_AT),
        e.n(EXPIRES_AT),
        e.n(ATTENTION),
    );
    let in_progress = e.v("inprogress", s(Status::InProgress.as_str()));
    let owner_v = e.v("owner", s(owner));
    let to_v = e.v("to", s(to.as_str()));
    let arn_v = e.v("arn", s(arn));
    let now = e.v("now", num(now_ms));
    e.update = Some(if to == Status::Ready {
        let (announced, yes) = (e.n(ANNOUNCED), e.v("yes", AttributeValue::Bool(true)));
        format!(
            "SET {status} = {to_v}, {resource} = {arn_v}, {updated} = {now}, {announced} = {yes} \
             REMOVE {expires}, {attention}"
        )
    } else {
        format!(
            "SET {status} = {to_v}, {attention} = {to_v}, {resource} = {arn_v}, \
             {updated} = {now} REMOVE {expires}"
        )
    });
    e.condition = Some(format!(
        "{status} = {in_progress} AND {lease_owner} = {owner_v}"
    ));
    e
}

/// `CREATED` with `arn` -> `READY` (no lease needed: the transition is monotonic).
pub(crate) fn promote(arn: &str, now_ms: u64) -> Expressions {
    let mut e = Expressions::default();
    let (status, resource, updated, attention) = (
        e.n(STATUS),
        e.n(RESOURCE_ARN),
        e.n(UPDATED_AT),
        e.n(ATTENTION),
    );
    let created = e.v("created", s(Status::Created.as_str()));
    let ready = e.v("ready", s(Status::Ready.as_str()));
    let arn_v = e.v("arn", s(arn));
    let now = e.v("now", num(now_ms));
    let (announced, yes) = (e.n(ANNOUNCED), e.v("yes", AttributeValue::Bool(true)));
    e.update = Some(format!(
        "SET {status} = {ready}, {updated} = {now}, {announced} = {yes} REMOVE {attention}"
    ));
    e.condition = Some(format!("{status} = {created} AND {resource} = {arn_v}"));
    e
}

/// The lease holder gives up permanently: `IN_PROGRESS` -> `FAILED` with a TTL.
pub(crate) fn fail_permanent(
    owner: &str,
    reason: &ErrorReason,
    now_ms: u64,
    ttl_secs: u64,
) -> Expressions {
    let mut e = Expressions::default();
    e.update = Some(set_failed(&mut e, reason, now_ms, ttl_secs));
    let (status, lease_owner) = (e.n(STATUS), e.n(LEASE_OWNER));
    let in_progress = e.v("inprogress", s(Status::InProgress.as_str()));
    let owner_v = e.v("owner", s(owner));
    e.condition = Some(format!(
        "{status} = {in_progress} AND {lease_owner} = {owner_v}"
    ));
    e
}

/// The one `FAILED` record, whoever writes it: status, attention, reason, TTL, and
/// `announced` (the engine announces before it records a failure).
fn set_failed(e: &mut Expressions, reason: &ErrorReason, now_ms: u64, ttl_secs: u64) -> String {
    let (status, attention, last_error, updated, expires, announced) = (
        e.n(STATUS),
        e.n(ATTENTION),
        e.n(LAST_ERROR),
        e.n(UPDATED_AT),
        e.n(EXPIRES_AT),
        e.n(ANNOUNCED),
    );
    let failed = e.v("failed", s(Status::Failed.as_str()));
    let reason_v = e.v("reason", reason.to_attribute());
    let now = e.v("now", num(now_ms));
    let ttl = e.v("ttl", num(ttl_secs));
    let yes = e.v("yes", AttributeValue::Bool(true));
    format!(
        "SET {status} = {failed}, {attention} = {failed}, {last_error} = {reason_v}, \
         {updated} = {now}, {expires} = {ttl}, {announced} = {yes}"
    )
}

/// The lease holder gives up for now: stays `IN_PROGRESS`, the error is recorded and the
/// lease expires at once so the next delivery takes over without waiting.
pub(crate) fn fail_retryable(owner: &str, reason: &ErrorReason, now_ms: u64) -> Expressions {
    let mut e = Expressions::default();
    let (status, lease_owner, lease, last_error, updated) = (
        e.n(STATUS),
        e.n(LEASE_OWNER),
        e.n(LEASE_EXPIRES_AT),
        e.n(LAST_ERROR),
        e.n(UPDATED_AT),
    );
    let in_progress = e.v("inprogress", s(Status::InProgress.as_str()));
    let owner_v = e.v("owner", s(owner));
    let reason_v = e.v("reason", reason.to_attribute());
    let now = e.v("now", num(now_ms));
    e.update = Some(format!(
        "SET {last_error} = {reason_v}, {lease} = {now}, {updated} = {now}"
    ));
    e.condition = Some(format!(
        "{status} = {in_progress} AND {lease_owner} = {owner_v}"
    ));
    e
}

/// Readiness reported a terminal failure: `CREATED` -> `FAILED` with a TTL.
pub(crate) fn fail_created(reason: &ErrorReason, now_ms: u64, ttl_secs: u64) -> Expressions {
    let mut e = Expressions::default();
    e.update = Some(set_failed(&mut e, reason, now_ms, ttl_secs));
    let status = e.n(STATUS);
    let created = e.v("created", s(Status::Created.as_str()));
    e.condition = Some(format!("{status} = {created}"));
    e
}

/// A `READY` or `FAILED` step's outcome has been announced.
pub(crate) fn announce() -> Expressions {
    let mut e = Expressions::default();
    let (status, announced) = (e.n(STATUS), e.n(ANNOUNCED));
    let yes = e.v("yes", AttributeValue::Bool(true));
    let ready = e.v("ready", s(Status::Ready.as_str()));
    let failed = e.v("failed", s(Status::Failed.as_str()));
    e.update = Some(format!("SET {announced} = {yes}"));
    e.condition = Some(format!("{status} IN ({ready}, {failed})"));
    e
}

/// An operator's retry of a `FAILED` step in generation `current`: a new generation and
/// token, `IN_PROGRESS` with an expired lease, attempt 0, no request hash, no TTL.
pub(crate) fn retry(current: u32, token: &str, now_ms: u64) -> Expressions {
    let mut e = Expressions::default();
    let (status, attention, generation, client_token, attempt, lease, updated) = (
        e.n(STATUS),
        e.n(ATTENTION),
        e.n(GENERATION),
        e.n(CLIENT_TOKEN),
        e.n(ATTEMPT),
        e.n(LEASE_EXPIRES_AT),
        e.n(UPDATED_AT),
    );
    let (announced, hash, expires, lease_owner, resource, last_error) = (
        e.n(ANNOUNCED),
        e.n(REQUEST_HASH),
        e.n(EXPIRES_AT),
        e.n(LEASE_OWNER),
        e.n(RESOURCE_ARN),
        e.n(LAST_ERROR),
    );
    let failed = e.v("failed", s(Status::Failed.as_str()));
    let in_progress = e.v("inprogress", s(Status::InProgress.as_str()));
    let current_v = e.v("current", num(u64::from(current)));
    let next_v = e.v("next", num(u64::from(current) + 1));
    let token_v = e.v("token", s(token));
    let zero = e.v("zero", num(0));
    let now = e.v("now", num(now_ms));
    let no = e.v("no", AttributeValue::Bool(false));
    e.update = Some(format!(
        "SET {status} = {in_progress}, {attention} = {in_progress}, {generation} = {next_v}, \
         {client_token} = {token_v}, {attempt} = {zero}, {lease} = {now}, {updated} = {now}, \
         {announced} = {no} \
         REMOVE {hash}, {expires}, {lease_owner}, {resource}, {last_error}"
    ));
    e.condition = Some(format!(
        "{status} = {failed} AND {generation} = {current_v}"
    ));
    e
}

/// Key condition of one scope's steps.
pub(crate) fn scope_query(scope: &str) -> Expressions {
    let mut e = Expressions::default();
    let pk = e.n(PK);
    let scope_v = e.v("scope", s(scope));
    e.condition = Some(format!("{pk} = {scope_v}"));
    e
}

/// Key condition on the attention index.
pub(crate) fn attention_query(status: Status) -> Expressions {
    let mut e = Expressions::default();
    let attention = e.n(ATTENTION);
    let status_v = e.v("status", s(status.as_str()));
    e.condition = Some(format!("{attention} = {status_v}"));
    e
}

/// Scan filter of one status.
pub(crate) fn status_filter(status: Status) -> Expressions {
    let mut e = Expressions::default();
    let status_n = e.n(STATUS);
    let status_v = e.v("status", s(status.as_str()));
    e.condition = Some(format!("{status_n} = {status_v}"));
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every `#name` / `:value` placeholder in `text`.
    fn placeholders(text: &str, sigil: char) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == sigil {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                found.insert(chars[i..j].iter().collect());
                i = j;
            } else {
                i += 1;
            }
        }
        found
    }

    fn all() -> Vec<(&'static str, Expressions)> {
        let reason = ErrorReason {
            retryable: false,
            code: "ValidationException".into(),
            message: "bad".into(),
        };
        let input = ClaimInput {
            first_token: "t",
            request_hash: "h",
            event_id: "e",
            owner: "o",
            now_ms: 1,
            lease_expires_ms: 2,
            ttl_secs: 3,
        };
        vec![
            ("claim", claim(&input)),
            ("complete created", complete("o", Status::Created, "arn", 1)),
            ("complete ready", complete("o", Status::Ready, "arn", 1)),
            ("promote", promote("arn", 1)),
            ("fail permanent", fail_permanent("o", &reason, 1, 2)),
            ("fail retryable", fail_retryable("o", &reason, 1)),
            ("fail created", fail_created(&reason, 1, 2)),
            ("announce", announce()),
            ("retry", retry(0, "t", 1)),
            ("scope query", scope_query("account#1")),
            ("attention query", attention_query(Status::Failed)),
            ("status filter", status_filter(Status::Ready)),
        ]
    }

    #[test]
    fn every_expression_uses_exactly_the_placeholders_it_defines() {
        for (label, e) in all() {
            let text = format!(
                "{} {}",
                e.update.as_deref().unwrap_or(""),
                e.condition.as_deref().unwrap_or("")
            );
            let used_names = placeholders(&text, '#');
            let used_values = placeholders(&text, ':');
            let defined_names: BTreeSet<String> = e.names.keys().cloned().collect();
            let defined_values: BTreeSet<String> = e.values.keys().cloned().collect();
            assert_eq!(used_names, defined_names, "{label}: names");
            assert_eq!(used_values, defined_values, "{label}: values");
        }
    }

    #[test]
    fn placeholders_are_valid_and_map_to_schema_names() {
        for (label, e) in all() {
            for (placeholder, attr) in &e.names {
                assert!(
                    placeholder[1..].chars().all(|c| c.is_ascii_alphanumeric()),
                    "{label}: {placeholder}"
                );
                let again: String = attr.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
                assert_eq!(&placeholder[1..], again, "{label}");
            }
            for placeholder in e.values.keys() {
                assert!(
                    placeholder[1..].chars().all(|c| c.is_ascii_alphanumeric()),
                    "{label}: {placeholder}"
                );
            }
        }
    }

    #[test]
    fn no_attribute_is_both_set_and_removed() {
        for (label, e) in all() {
            let Some(update) = e.update else { continue };
            if let Some((set, remove)) = update.split_once(" REMOVE ") {
                for removed in placeholders(remove, '#') {
                    assert!(
                        !set.contains(&format!("{removed} =")),
                        "{label}: {removed} set and removed"
                    );
                }
            }
        }
    }

    #[test]
    fn ready_leaves_the_attention_index_and_completed_items_lose_their_ttl() {
        let ready = complete("o", Status::Ready, "arn", 1)
            .update
            .unwrap_or_default();
        assert!(ready.contains("REMOVE #expiresat, #attention"), "{ready}");
        let created = complete("o", Status::Created, "arn", 1)
            .update
            .unwrap_or_default();
        assert!(created.contains("#attention = :to"), "{created}");
        assert!(created.contains("REMOVE #expiresat"), "{created}");
    }
}
