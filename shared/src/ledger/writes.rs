//! Every expression the ledger sends, built by small pure functions so a test can check that
//! each one uses exactly the name and value placeholders it defines (real DynamoDB rejects
//! unused `ExpressionAttributeValues`; moto does not).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::record::{ErrorReason, Origin, Status};
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
    /// What the request asks (its fields as JSON) and its revision: kept, if the generation
    /// has none yet, as what the generation's create is made with (and for re-driving).
    pub requested: Option<(&'a str, &'a str)>,
    /// The request's desired state (stored JSON) and its revision: the item's desired state
    /// if it has none yet (a new item: nothing asked is lost, at no extra write). An item
    /// that has one merges the request in with [`record_desired`].
    pub desired: Option<(&'a str, &'a str)>,
    /// Token of generation 0 (derived from `salt`), used only when the item does not exist
    /// yet.
    pub first_token: &'a str,
    /// A new salt, kept only when the item has none (it is created by this write).
    pub salt: &'a str,
    pub request_hash: &'a str,
    pub event_id: &'a str,
    pub owner: &'a str,
    pub now_ms: u64,
    pub lease_expires_ms: u64,
    pub ttl_secs: u64,
}

/// Claim: create the item, or take over an `IN_PROGRESS` item whose lease expired, whatever
/// request it was claimed for (the request hash is overwritten; `requested`, the generation's
/// first request, is kept).
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
    let salt = e.n(TOKEN_SALT);
    let salt_v = e.v("salt", s(input.salt));
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
    let requested = match input.requested {
        Some((fields, revision)) => {
            let (requested_n, revision_n) = (e.n(REQUESTED), e.n(REQUESTED_REVISION));
            let fields_v = e.v("requested", s(fields));
            let revision_v = e.v("requestedrevision", s(revision));
            // The first claimant of a generation fixes what its create is made with: every
            // later holder sends the same parameters with the generation's token.
            format!(
                ", {requested_n} = if_not_exists({requested_n}, {fields_v}), \
                 {revision_n} = if_not_exists({revision_n}, {revision_v})"
            )
        }
        None => String::new(),
    };
    let desired = match input.desired {
        Some((fields, revision)) => {
            let (desired_n, version_n, revision_n) =
                (e.n(DESIRED), e.n(DESIRED_VERSION), e.n(DESIRED_REVISION));
            let fields_v = e.v("desired", s(fields));
            let revision_v = e.v("desiredrevision", s(revision));
            format!(
                ", {desired_n} = if_not_exists({desired_n}, {fields_v}), \
                 {revision_n} = if_not_exists({revision_n}, {revision_v}), \
                 {version_n} = if_not_exists({version_n}, {one})"
            )
        }
        None => String::new(),
    };
    e.update = Some(format!(
        "SET {status} = {in_progress}, {attention} = {in_progress}, \
         {token} = if_not_exists({token}, {first_token}), \
         {salt} = if_not_exists({salt}, {salt_v}), \
         {generation} = if_not_exists({generation}, {zero}), \
         {attempt} = if_not_exists({attempt}, {zero}) + {one}, \
         {owner} = {owner_v}, {lease} = {lease_v}, {expires} = {ttl}, \
         {first} = if_not_exists({first}, {now}), {updated} = {now}, \
         {events} = list_append(if_not_exists({events}, {empty}), {event}), \
         {hash} = {hash_v}, {announced} = if_not_exists({announced}, {no}){requested}{desired}"
    ));
    // Any request may take over a claim nobody holds: a newer request is not refused while
    // a step is created; what it asks beyond the creator's request is applied as an update.
    e.condition = Some(format!(
        "attribute_not_exists({pk}) OR ({status} = {in_progress} AND {lease} <= {now})"
    ));
    e
}

/// Keeps the last `keep` of the `len` recent events a claim read (each acquiring claim
/// appends one; a step claimed again and again would otherwise grow without bound).
/// Conditioned on the length read, so a claim in between makes it a no-op.
pub(crate) fn trim_events(len: usize, keep: usize) -> Expressions {
    let mut e = Expressions::default();
    let events = e.n(RECENT_EVENTS);
    let len_v = e.v("len", num(len as u64));
    let removed = (0..len.saturating_sub(keep))
        .map(|i| format!("{events}[{i}]"))
        .collect::<Vec<_>>()
        .join(", ");
    e.update = Some(format!("REMOVE {removed}"));
    e.condition = Some(format!("size({events}) = {len_v}"));
    e
}

/// What a completion records the resource was made as: the state of the fields the request
/// specified (canonical JSON, no secrets) and the request's revision.
pub(crate) struct AppliedInput<'a> {
    pub state: &'a str,
    pub revision: &'a str,
    /// The step's slot in the daily drift audit: (hour, minute of the day).
    pub audit_slot: (u32, u32),
}

/// `IN_PROGRESS` held by `owner` -> `CREATED` or `READY`, with the resource ARN, its origin
/// and the applied state. Completed items lose their TTL; `READY` items also leave the
/// attention index. The engine announces before it records `READY`, so that write also
/// marks the outcome announced: one write instead of two, and a crash in between
/// re-announces (at least once).
pub(crate) fn complete(
    owner: &str,
    to: Status,
    arn: &str,
    origin: Origin,
    applied: &AppliedInput<'_>,
    now_ms: u64,
) -> Expressions {
    let mut e = Expressions::default();
    let (status, lease_owner, resource, updated, expires, attention, origin_n, retry_after) = (
        e.n(STATUS),
        e.n(LEASE_OWNER),
        e.n(RESOURCE_ARN),
        e.n(UPDATED_AT),
        e.n(EXPIRES_AT),
        e.n(ATTENTION),
        e.n(ORIGIN),
        e.n(RETRY_AFTER),
    );
    let (state, revision) = (e.n(STATE), e.n(APPLIED_REVISION));
    let in_progress = e.v("inprogress", s(Status::InProgress.as_str()));
    let owner_v = e.v("owner", s(owner));
    let to_v = e.v("to", s(to.as_str()));
    let arn_v = e.v("arn", s(arn));
    let origin_v = e.v("origin", s(origin.as_str()));
    let state_v = e.v("state", s(applied.state));
    let revision_v = e.v("revision", s(applied.revision));
    let now = e.v("now", num(now_ms));
    let common = format!(
        "{resource} = {arn_v}, {origin_n} = {origin_v}, {state} = {state_v}, \
         {revision} = {revision_v}, {updated} = {now}"
    );
    e.update = Some(if to == Status::Ready {
        let (announced, no) = (e.n(ANNOUNCED), e.v("no", AttributeValue::Bool(false)));
        let updating = e.v("updating", s(UPDATING));
        let audit = audit_slot(&mut e, applied.audit_slot);
        format!(
            "SET {status} = {to_v}, {common}, {announced} = {no}, {audit}, \
             {attention} = {updating} REMOVE {expires}, {retry_after}"
        )
    } else {
        format!(
            "SET {status} = {to_v}, {attention} = {to_v}, {common} REMOVE {expires}, {retry_after}"
        )
    });
    e.condition = Some(format!(
        "{status} = {in_progress} AND {lease_owner} = {owner_v}"
    ));
    e
}

/// `audit_hour = h, audit_minute = m`: a `READY` step joins the sparse audit index.
fn audit_slot(e: &mut Expressions, (hour, minute): (u32, u32)) -> String {
    let (hour_n, minute_n) = (e.n(AUDIT_HOUR), e.n(AUDIT_MINUTE));
    let hour_v = e.v("audithour", num(u64::from(hour)));
    let minute_v = e.v("auditminute", num(u64::from(minute)));
    format!("{hour_n} = {hour_v}, {minute_n} = {minute_v}")
}

/// The fence of every write on the `CREATED` path: still `CREATED`, in the generation and
/// with the resource the writer read (an operator's retry in between changes both).
fn created_fence(e: &mut Expressions, generation: u32, arn: &str) -> String {
    let (status, resource, generation_n) = (e.n(STATUS), e.n(RESOURCE_ARN), e.n(GENERATION));
    let created = e.v("created", s(Status::Created.as_str()));
    let arn_v = e.v("arn", s(arn));
    let generation_v = e.v("generation", num(u64::from(generation)));
    format!("{status} = {created} AND {resource} = {arn_v} AND {generation_n} = {generation_v}")
}

/// What a merge writes: the desired state read (its version, and whether it was stored at
/// all), and the merged one.
pub(crate) struct DesiredInput<'a> {
    pub status: Status,
    pub generation: u32,
    /// The version read; `None`: the item had no desired state stored.
    pub seen_version: Option<u64>,
    pub desired: &'a str,
    pub newest: &'a str,
    /// A `READY` step whose resource does not hold the merged state: it joins the attention
    /// index, so the reconciler applies it if no delivery does.
    pub outstanding: bool,
}

/// A request's fields merged into the desired state ([`crate::desired::Desired::merge`]):
/// the merged state, version + 1. Conditioned on the version read (a concurrent merge makes
/// the merger read and merge again), the status and the generation.
pub(crate) fn record_desired(input: &DesiredInput<'_>) -> Expressions {
    let mut e = Expressions::default();
    let (status, generation_n, desired, version, newest) = (
        e.n(STATUS),
        e.n(GENERATION),
        e.n(DESIRED),
        e.n(DESIRED_VERSION),
        e.n(DESIRED_REVISION),
    );
    let (wanted, wanted_rev) = (e.n(WANTED), e.n(WANTED_REVISION));
    let status_v = e.v("status", s(input.status.as_str()));
    let generation_v = e.v("generation", num(u64::from(input.generation)));
    let desired_v = e.v("desired", s(input.desired));
    let newest_v = e.v("newest", s(input.newest));
    let seen = input.seen_version.unwrap_or(0);
    let next_v = e.v("next", num(seen + 1));
    let seen_cond = match input.seen_version {
        Some(v) => {
            let seen_v = e.v("seen", num(v));
            format!("{version} = {seen_v}")
        }
        None => format!("attribute_not_exists({version})"),
    };
    let attention = if input.outstanding {
        let (attention, updating) = (e.n(ATTENTION), e.v("updating", s(UPDATING)));
        format!(", {attention} = {updating}")
    } else {
        String::new()
    };
    // `updated_at` stays the holder's claim time (waiters pace their rechecks by it).
    e.update = Some(format!(
        "SET {desired} = {desired_v}, {version} = {next_v}, {newest} = {newest_v}{attention} \
         REMOVE {wanted}, {wanted_rev}"
    ));
    e.condition = Some(format!(
        "{status} = {status_v} AND {generation_n} = {generation_v} AND {seen_cond}"
    ));
    e
}

/// `CREATED` with `arn` in `generation` -> `READY`, not yet announced (recorded, then
/// announced, then marked): in the attention index until [`settle`] takes it out.
pub(crate) fn promote(generation: u32, arn: &str, audit: (u32, u32), now_ms: u64) -> Expressions {
    let mut e = Expressions::default();
    e.condition = Some(created_fence(&mut e, generation, arn));
    let (status, updated, attention, retry_after) = (
        e.n(STATUS),
        e.n(UPDATED_AT),
        e.n(ATTENTION),
        e.n(RETRY_AFTER),
    );
    let ready = e.v("ready", s(Status::Ready.as_str()));
    let now = e.v("now", num(now_ms));
    let (announced, no) = (e.n(ANNOUNCED), e.v("no", AttributeValue::Bool(false)));
    let updating = e.v("updating", s(UPDATING));
    let audit = audit_slot(&mut e, audit);
    e.update = Some(format!(
        "SET {status} = {ready}, {updated} = {now}, {announced} = {no}, {audit}, \
         {attention} = {updating} REMOVE {retry_after}"
    ));
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

/// The one `FAILED` record, whoever writes it: status, attention, reason, TTL, and not yet
/// announced: a failure is recorded (fenced) before it is announced, so a writer that lost
/// its fence never announces one.
fn set_failed(e: &mut Expressions, reason: &ErrorReason, now_ms: u64, ttl_secs: u64) -> String {
    let (status, attention, last_error, updated, expires, announced, retry_after) = (
        e.n(STATUS),
        e.n(ATTENTION),
        e.n(LAST_ERROR),
        e.n(UPDATED_AT),
        e.n(EXPIRES_AT),
        e.n(ANNOUNCED),
        e.n(RETRY_AFTER),
    );
    let failed = e.v("failed", s(Status::Failed.as_str()));
    let reason_v = e.v("reason", reason.to_attribute());
    let now = e.v("now", num(now_ms));
    let ttl = e.v("ttl", num(ttl_secs));
    let no = e.v("no", AttributeValue::Bool(false));
    format!(
        "SET {status} = {failed}, {attention} = {failed}, {last_error} = {reason_v}, \
         {updated} = {now}, {expires} = {ttl}, {announced} = {no} REMOVE {retry_after}"
    )
}

/// How a lease holder that gives up for now ends its attempt.
pub(crate) struct ReleaseInput<'a> {
    pub owner: &'a str,
    pub attempt: u32,
    pub reason: &'a ErrorReason,
    pub now_ms: u64,
    /// Earliest retry (epoch ms), if the holder asks for one.
    pub retry_after_ms: Option<u64>,
    /// This attempt sent a create, or an earlier one may have: sticky for the generation.
    pub create_sent: bool,
}

/// The lease holder gives up for now: stays `IN_PROGRESS`, the error, the earliest retry and
/// whether a create may have been sent are recorded, and the lease expires at once so the
/// next delivery takes over without waiting.
pub(crate) fn fail_retryable(input: &ReleaseInput<'_>) -> Expressions {
    let mut e = Expressions::default();
    let (status, lease_owner, lease, last_error, updated, settled, retry_after) = (
        e.n(STATUS),
        e.n(LEASE_OWNER),
        e.n(LEASE_EXPIRES_AT),
        e.n(LAST_ERROR),
        e.n(UPDATED_AT),
        e.n(SETTLED_ATTEMPT),
        e.n(RETRY_AFTER),
    );
    let in_progress = e.v("inprogress", s(Status::InProgress.as_str()));
    let owner_v = e.v("owner", s(input.owner));
    let reason_v = e.v("reason", input.reason.to_attribute());
    let now = e.v("now", num(input.now_ms));
    let attempt_v = e.v("attempt", num(u64::from(input.attempt)));
    let mut set = format!(
        "SET {last_error} = {reason_v}, {lease} = {now}, {updated} = {now}, {settled} = {attempt_v}"
    );
    if input.create_sent {
        let (sent, yes) = (e.n(CREATE_SENT), e.v("yes", AttributeValue::Bool(true)));
        set.push_str(&format!(", {sent} = {yes}"));
    }
    e.update = Some(match input.retry_after_ms {
        Some(ms) => {
            let after = e.v("after", num(ms));
            format!("{set}, {retry_after} = {after}")
        }
        None => format!("{set} REMOVE {retry_after}"),
    });
    e.condition = Some(format!(
        "{status} = {in_progress} AND {lease_owner} = {owner_v}"
    ));
    e
}

/// A permanent failure on the `CREATED` path (readiness failed, the resource is gone, the
/// account is unreachable for good): `CREATED` -> `FAILED` with a TTL, fenced on the
/// generation and resource the writer read.
pub(crate) fn fail_created(
    generation: u32,
    arn: &str,
    reason: &ErrorReason,
    now_ms: u64,
    ttl_secs: u64,
) -> Expressions {
    let mut e = Expressions::default();
    e.update = Some(set_failed(&mut e, reason, now_ms, ttl_secs));
    e.condition = Some(created_fence(&mut e, generation, arn));
    e
}

/// A `RETIRED` step's "Account Offboarded" in `generation` was announced: marked, and the
/// step leaves the attention index.
pub(crate) fn announce_retirement(generation: u32) -> Expressions {
    let mut e = Expressions::default();
    let (status, announced, generation_n, attention) =
        (e.n(STATUS), e.n(ANNOUNCED), e.n(GENERATION), e.n(ATTENTION));
    let yes = e.v("yes", AttributeValue::Bool(true));
    let retired = e.v("retired", s(Status::Retired.as_str()));
    let generation_v = e.v("generation", num(u64::from(generation)));
    e.update = Some(format!("SET {announced} = {yes} REMOVE {attention}"));
    e.condition = Some(format!(
        "{status} = {retired} AND {generation_n} = {generation_v}"
    ));
    e
}

/// A `READY` or `FAILED` step's outcome in `generation` has been announced: conditioned on
/// the status that was announced, so a late mark (its writer slowed after announcing Ready)
/// never marks a retirement recorded since, whose "Account Offboarded" is still owed.
pub(crate) fn announce(generation: u32, announced_status: Status) -> Expressions {
    let mut e = Expressions::default();
    let (status, announced, generation_n) = (e.n(STATUS), e.n(ANNOUNCED), e.n(GENERATION));
    let yes = e.v("yes", AttributeValue::Bool(true));
    let status_v = e.v("status", s(announced_status.as_str()));
    let generation_v = e.v("generation", num(u64::from(generation)));
    e.update = Some(format!("SET {announced} = {yes}"));
    e.condition = Some(format!(
        "{status} = {status_v} AND {generation_n} = {generation_v}"
    ));
    e
}

/// A `READY` step of `generation` with nothing outstanding (its outcome announced, its
/// desired state applied at the version read, no update held) leaves the attention index;
/// with `announced`, the write also marks its Ready announced (the announcement and the
/// settling in one write). Conditioned on all of it: anything merged or claimed since keeps
/// the step in the index.
pub(crate) fn settle(
    generation: u32,
    seen_version: Option<u64>,
    announced: bool,
    now_ms: u64,
) -> Expressions {
    let mut e = Expressions::default();
    let (mut condition, removed) = settled(&mut e, generation, seen_version, now_ms);
    let outbox = e.n(OUTBOX);
    let zero = e.v("zero", num(0));
    condition =
        format!("{condition} AND (attribute_not_exists({outbox}) OR size({outbox}) = {zero})");
    let (announced_n, yes) = (e.n(ANNOUNCED), e.v("yes", AttributeValue::Bool(true)));
    e.update = Some(if announced {
        format!("SET {announced_n} = {yes} REMOVE {removed}")
    } else {
        condition = format!("{condition} AND {announced_n} = {yes}");
        format!("REMOVE {removed}")
    });
    e.condition = Some(condition);
    e
}

/// A `READY` step of `generation` whose resource already holds its whole desired state (at
/// the version read): a newer request asked only what it holds (a removal of a tag it does
/// not have, a value a newer request had set first), so the applied revision is the desired
/// state's newest (`newest`). Conditioned on no update lease held at `now_ms` and on the
/// applied revision being older: it never moves back.
pub(crate) fn advance_applied(
    generation: u32,
    seen_version: Option<u64>,
    newest: &str,
    now_ms: u64,
) -> Expressions {
    let mut e = Expressions::default();
    let (status, generation_n, owner, lease, applied) = (
        e.n(STATUS),
        e.n(GENERATION),
        e.n(UPDATE_OWNER),
        e.n(UPDATE_LEASE_EXPIRES_AT),
        e.n(APPLIED_REVISION),
    );
    let ready = e.v("ready", s(Status::Ready.as_str()));
    let generation_v = e.v("generation", num(u64::from(generation)));
    let newest_v = e.v("newest", s(newest));
    let now = e.v("now", num(now_ms));
    let seen = version_is(&mut e, seen_version);
    e.update = Some(format!("SET {applied} = {newest_v}"));
    e.condition = Some(format!(
        "{status} = {ready} AND {generation_n} = {generation_v} AND {seen} \
         AND (attribute_not_exists({owner}) OR {lease} <= {now}) \
         AND (attribute_not_exists({applied}) OR {applied} < {newest_v})"
    ));
    e
}

/// What settling requires of a `READY` step of `generation`, but its outbox and its
/// announced flag: its desired state applied at the version read, no update lease held at
/// `now_ms`; and what it removes: the attention index entry and the update fields a holder
/// that released its lease (or lost it) with nothing left owed leaves behind.
fn settled(
    e: &mut Expressions,
    generation: u32,
    seen_version: Option<u64>,
    now_ms: u64,
) -> (String, String) {
    let (status, generation_n, attention, owner, lease) = (
        e.n(STATUS),
        e.n(GENERATION),
        e.n(ATTENTION),
        e.n(UPDATE_OWNER),
        e.n(UPDATE_LEASE_EXPIRES_AT),
    );
    let stale = [UPDATE_ATTEMPT, UPDATE_FIRST_ATTEMPT_AT, UPDATE_VERSION]
        .map(|n| e.n(n))
        .join(", ");
    let now = e.v("now", num(now_ms));
    let ready = e.v("ready", s(Status::Ready.as_str()));
    let generation_v = e.v("generation", num(u64::from(generation)));
    let seen = version_is(e, seen_version);
    (
        format!(
            "{status} = {ready} AND {generation_n} = {generation_v} AND {seen} \
             AND (attribute_not_exists({owner}) OR {lease} <= {now})"
        ),
        format!("{attention}, {owner}, {lease}, {stale}"),
    )
}

/// Inputs of a retirement.
pub(crate) struct RetireInput<'a> {
    /// The closure's or departure's revision: it retires only a step that knows no newer
    /// request (a reopened account's request is newer) and no retirement as new.
    pub revision: &'a str,
    /// Why (JSON: the event, its id and time, a sentence).
    pub why: &'a str,
    /// Token of generation 0 (derived from `salt`), for a step retired before any request
    /// reached it.
    pub first_token: &'a str,
    /// A new salt, kept only when the item has none (it is created by this write).
    pub salt: &'a str,
    pub now_ms: u64,
}

/// The account closed or left the organization: any step that is not `RETIRED` and knows no
/// request newer than the closure -> `RETIRED`, not yet announced (recorded, then
/// announced, then marked). A step that does not exist yet is written as a retired
/// tombstone, so a late request is refused rather than creating in a closed account.
/// Leaves the attention and audit indexes, loses its TTL, its lease fences (every
/// completion is conditioned on `IN_PROGRESS`, every update write on `READY`) and its
/// pending update.
pub(crate) fn retire(input: &RetireInput<'_>) -> Expressions {
    let mut e = Expressions::default();
    let (pk, status, retired, retired_rev, announced, updated) = (
        e.n(PK),
        e.n(STATUS),
        e.n(RETIRED),
        e.n(RETIRED_REVISION),
        e.n(ANNOUNCED),
        e.n(UPDATED_AT),
    );
    let (token, generation, attempt) = (e.n(CLIENT_TOKEN), e.n(GENERATION), e.n(ATTEMPT));
    let (requested_rev, applied, wanted_rev, desired_rev) = (
        e.n(REQUESTED_REVISION),
        e.n(APPLIED_REVISION),
        e.n(WANTED_REVISION),
        e.n(DESIRED_REVISION),
    );
    let removed = [
        AUDIT_HOUR,
        AUDIT_MINUTE,
        EXPIRES_AT,
        RETRY_AFTER,
        DRIFT,
        WANTED,
        UPDATE_OWNER,
        UPDATE_LEASE_EXPIRES_AT,
        UPDATE_ATTEMPT,
        UPDATE_FIRST_ATTEMPT_AT,
        UPDATE_VERSION,
    ]
    .map(|n| e.n(n))
    .join(", ");
    let retired_v = e.v("retired", s(Status::Retired.as_str()));
    let why_v = e.v("why", s(input.why));
    let revision_v = e.v("revision", s(input.revision));
    let no = e.v("no", AttributeValue::Bool(false));
    let now = e.v("now", num(input.now_ms));
    let token_v = e.v("token", s(input.first_token));
    let (salt, salt_v) = (e.n(TOKEN_SALT), e.v("salt", s(input.salt)));
    let zero = e.v("zero", num(0));
    // In the attention index until its "Account Offboarded" is announced.
    let attention = e.n(ATTENTION);
    e.update = Some(format!(
        "SET {status} = {retired_v}, {retired} = {why_v}, {retired_rev} = {revision_v}, \
         {attention} = {retired_v}, \
         {announced} = {no}, {updated} = {now}, {token} = if_not_exists({token}, {token_v}), \
         {salt} = if_not_exists({salt}, {salt_v}), \
         {generation} = if_not_exists({generation}, {zero}), \
         {attempt} = if_not_exists({attempt}, {zero}) \
         REMOVE {removed}, {wanted_rev}"
    ));
    let older = |attr: &str| format!("(attribute_not_exists({attr}) OR {attr} < {revision_v})");
    e.condition = Some(format!(
        "attribute_not_exists({pk}) OR ({status} <> {retired_v} AND {} AND {} AND {} AND {} \
         AND {})",
        older(&retired_rev),
        older(&requested_rev),
        older(&applied),
        older(&wanted_rev),
        older(&desired_rev),
    ));
    e
}

/// The start of generation + 1 from `generation` (an operator's retry, a repair, a
/// reopening): `IN_PROGRESS` and in the attention index, its own token, attempt 0, a lease
/// that expired at the epoch (no machine's clock is written into it), nothing announced,
/// and whether a create may have been sent (the new generation then looks the resource up
/// before creating). Returns the SET assignments and the condition `generation = current`.
fn next_generation(
    e: &mut Expressions,
    generation: u32,
    token: &str,
    create_sent: bool,
    now_ms: u64,
) -> (String, String) {
    let (status, attention, generation_n, client_token, attempt, lease, updated) = (
        e.n(STATUS),
        e.n(ATTENTION),
        e.n(GENERATION),
        e.n(CLIENT_TOKEN),
        e.n(ATTEMPT),
        e.n(LEASE_EXPIRES_AT),
        e.n(UPDATED_AT),
    );
    let (announced, sent, settled) = (e.n(ANNOUNCED), e.n(CREATE_SENT), e.n(SETTLED_ATTEMPT));
    let in_progress = e.v("inprogress", s(Status::InProgress.as_str()));
    let current_v = e.v("current", num(u64::from(generation)));
    let next_v = e.v("next", num(u64::from(generation) + 1));
    let token_v = e.v("token", s(token));
    let zero = e.v("zero", num(0));
    let now = e.v("now", num(now_ms));
    let no = e.v("no", AttributeValue::Bool(false));
    let sent_v = e.v("sent", AttributeValue::Bool(create_sent));
    (
        format!(
            "{status} = {in_progress}, {attention} = {in_progress}, {generation_n} = {next_v}, \
             {client_token} = {token_v}, {attempt} = {zero}, {lease} = {zero}, \
             {updated} = {now}, {announced} = {no}, {sent} = {sent_v}, {settled} = {zero}"
        ),
        format!("{generation_n} = {current_v}"),
    )
}

/// What a reopening starts from: the retired step as read.
pub(crate) struct ReopenInput<'a> {
    pub generation: u32,
    pub retired_revision: &'a str,
    /// The new generation's token.
    pub token: &'a str,
    /// The retired generation had (or may have had) a resource: the new generation looks it
    /// up before creating (a reopened account keeps its resources).
    pub create_sent: bool,
    /// The request that reopens it (its fields as JSON, its revision): the new generation's
    /// request, recorded by this write, so whoever takes the generation over (a redelivery,
    /// the reconciler) makes what that request asks, never a request of its own invention.
    pub requested: (&'a str, &'a str),
    pub now_ms: u64,
}

/// A request newer than the retirement (the account was reopened): generation + 1,
/// `IN_PROGRESS` with a lease that expired at the epoch, attempt 0, as an operator's retry
/// starts one; the retirement stays as history, and its revision keeps refusing a replay of
/// the old closure. Conditioned on the retirement read.
pub(crate) fn reopen(input: &ReopenInput<'_>) -> Expressions {
    let mut e = Expressions::default();
    let (set, same_generation) = next_generation(
        &mut e,
        input.generation,
        input.token,
        input.create_sent,
        input.now_ms,
    );
    let (status, retired_rev) = (e.n(STATUS), e.n(RETIRED_REVISION));
    let (requested, requested_rev) = (e.n(REQUESTED), e.n(REQUESTED_REVISION));
    let removed = [
        REQUEST_HASH,
        LEASE_OWNER,
        LAST_ERROR,
        FIRST_ATTEMPT_AT,
        ORIGIN,
        RESOURCE_ARN,
    ]
    .map(|n| e.n(n))
    .join(", ");
    let retired_v = e.v("retired", s(Status::Retired.as_str()));
    let seen_v = e.v("seen", s(input.retired_revision));
    let (fields, revision) = input.requested;
    let requested_v = e.v("requested", s(fields));
    let requested_rev_v = e.v("requestedrevision", s(revision));
    e.update = Some(format!(
        "SET {set}, {requested} = {requested_v}, {requested_rev} = {requested_rev_v} \
         REMOVE {removed}"
    ));
    e.condition = Some(format!(
        "{status} = {retired_v} AND {same_generation} AND {retired_rev} = {seen_v}"
    ));
    e
}

/// What an operator's retry starts from: the step as the operator read it.
pub(crate) struct RetryInput<'a> {
    pub status: Status,
    pub generation: u32,
    pub attempt: u32,
    pub token: &'a str,
    /// An earlier attempt may have created the resource: the new generation looks it up first.
    pub create_sent: bool,
    pub now_ms: u64,
}

/// An operator's retry of a `FAILED` step, or of an `IN_PROGRESS` one nobody holds, in
/// generation `current`: a new generation and token, `IN_PROGRESS` with a lease that expired
/// at the epoch (no clock of the operator's machine is written into the lease), attempt 0,
/// a new first attempt, no request hash, no TTL. Conditioned on the status, generation and
/// attempt the operator read, so it never overtakes a delivery that moved the step on.
pub(crate) fn retry(input: &RetryInput<'_>) -> Expressions {
    let mut e = Expressions::default();
    let (set, same_generation) = next_generation(
        &mut e,
        input.generation,
        input.token,
        input.create_sent,
        input.now_ms,
    );
    let (status, attempt) = (e.n(STATUS), e.n(ATTEMPT));
    // A new generation bounds its own pending work afresh, and no holder of the previous
    // generation's update ends anything of it.
    let mut removed = vec![
        REQUEST_HASH,
        EXPIRES_AT,
        LEASE_OWNER,
        RESOURCE_ARN,
        LAST_ERROR,
        FIRST_ATTEMPT_AT,
        ORIGIN,
        RETRY_AFTER,
        AUDIT_HOUR,
        AUDIT_MINUTE,
        DRIFT,
        UPDATE_FIRST_ATTEMPT_AT,
        UPDATE_OWNER,
        UPDATE_LEASE_EXPIRES_AT,
        UPDATE_ATTEMPT,
        UPDATE_VERSION,
    ];
    // A create that may have been sent was made with the generation's request: the new
    // generation looks for that resource, so it keeps the request. Else the next claimant's
    // request is the new generation's.
    if !input.create_sent {
        removed.extend([REQUESTED, REQUESTED_REVISION]);
    }
    let removed = removed
        .into_iter()
        .map(|n| e.n(n))
        .collect::<Vec<_>>()
        .join(", ");
    let from = e.v("from", s(input.status.as_str()));
    let attempt_v = e.v("attempt", num(u64::from(input.attempt)));
    e.update = Some(format!("SET {set} REMOVE {removed}"));
    e.condition = Some(format!(
        "{status} = {from} AND {same_generation} AND {attempt} = {attempt_v}"
    ));
    e
}

/// Status of the attention index while an update is pending on a `READY` step.
pub(crate) const UPDATING: &str = "UPDATING";

/// Inputs of an update claim.
pub(crate) struct UpdateClaimInput<'a> {
    pub generation: u32,
    /// The desired version read (`None`: no desired state stored).
    pub seen: Option<u64>,
    /// A repair: the version is bumped, so the repair's calls are new calls.
    pub bump: bool,
    /// A request's fields merged into the desired state read (stored JSON, newest
    /// revision): recorded by this same write, the version bumped (an update costs no
    /// separate merge).
    pub merged: Option<(&'a str, &'a str)>,
    pub attempt: u32,
    pub now_ms: u64,
    pub lease_expires_ms: u64,
}

/// Takes the update lease of a `READY` step in `generation` to bring its resource to the
/// desired version read (one more for a repair). Conditioned on that version (a merge in
/// between makes the claimer read again) and on no live update lease.
pub(crate) fn claim_update(input: &UpdateClaimInput<'_>, owner: &str) -> Expressions {
    let mut e = Expressions::default();
    let (status, generation, lease) = (e.n(STATUS), e.n(GENERATION), e.n(UPDATE_LEASE_EXPIRES_AT));
    let (update_version, owner_n, attempt, attention, updated) = (
        e.n(UPDATE_VERSION),
        e.n(UPDATE_OWNER),
        e.n(UPDATE_ATTEMPT),
        e.n(ATTENTION),
        e.n(UPDATED_AT),
    );
    let ready = e.v("ready", s(Status::Ready.as_str()));
    let generation_v = e.v("generation", num(u64::from(input.generation)));
    let now = e.v("now", num(input.now_ms));
    let seen = match input.seen {
        Some(v) => {
            let (version_n, seen_v) = (e.n(DESIRED_VERSION), e.v("seen", num(v)));
            format!("{version_n} = {seen_v}")
        }
        None => format!("attribute_not_exists({})", e.n(DESIRED_VERSION)),
    };
    e.condition = Some(format!(
        "{status} = {ready} AND {generation} = {generation_v} AND {seen} \
         AND (attribute_not_exists({lease}) OR {lease} <= {now})"
    ));
    let bumped = input.bump || input.merged.is_some();
    let version = input.seen.unwrap_or(0) + u64::from(bumped);
    let version_v = e.v("version", num(version));
    let mut bump = if bumped {
        format!(", {} = {version_v}", e.n(DESIRED_VERSION))
    } else {
        String::new()
    };
    if let Some((desired, newest)) = input.merged {
        let (desired_n, newest_n) = (e.n(DESIRED), e.n(DESIRED_REVISION));
        let (desired_v, newest_v) = (e.v("desired", s(desired)), e.v("newest", s(newest)));
        bump = format!("{bump}, {desired_n} = {desired_v}, {newest_n} = {newest_v}");
    }
    let owner_v = e.v("owner", s(owner));
    let lease_v = e.v("lease", num(input.lease_expires_ms));
    let attempt_v = e.v("attempt", num(u64::from(input.attempt)));
    let updating = e.v("updating", s(UPDATING));
    // The pending work's first attempt: kept by every later holder (and by a newer
    // version taking over the pending update), so the grace window never restarts.
    let first = e.n(UPDATE_FIRST_ATTEMPT_AT);
    e.update = Some(format!(
        "SET {update_version} = {version_v}, {owner_n} = {owner_v}, {lease} = {lease_v}, \
         {attempt} = {attempt_v}, {attention} = {updating}, {updated} = {now}, \
         {first} = if_not_exists({first}, {now}){bump}"
    ));
    e
}

/// The fence of every write by an update's holder: still `READY` in its generation, still
/// its lease.
fn update_fence(e: &mut Expressions, owner: &str, generation: u32) -> String {
    let (status, owner_n, generation_n) = (e.n(STATUS), e.n(UPDATE_OWNER), e.n(GENERATION));
    let ready = e.v("ready", s(Status::Ready.as_str()));
    let owner_v = e.v("owner", s(owner));
    let generation_v = e.v("generation", num(u64::from(generation)));
    format!("{status} = {ready} AND {owner_n} = {owner_v} AND {generation_n} = {generation_v}")
}

/// How an update's holder ends it.
pub(crate) enum UpdateEnd<'a> {
    /// Applied: the desired state of `version` is the new applied state (the audit's last
    /// finding, against the old one, goes).
    Applied {
        state: &'a str,
        revision: &'a str,
        /// Its announcement, into the outbox (none when nothing changed).
        event: Option<&'a str>,
    },
    /// Refused for good: the version is not retried (until a newer request changes the
    /// desired state), the state stays, the reason is recorded.
    Refused {
        version: u64,
        reason: &'a ErrorReason,
        event: &'a str,
    },
    /// Not now: the lease is released at once, the desired state stays for the next holder.
    Released {
        reason: &'a ErrorReason,
        retry_after_ms: Option<u64>,
    },
}

/// Ends the update held by `owner` in `generation` as `end` says.
pub(crate) fn end_update(
    owner: &str,
    generation: u32,
    end: &UpdateEnd<'_>,
    now_ms: u64,
) -> Expressions {
    let mut e = Expressions::default();
    let fence = update_fence(&mut e, owner, generation);
    let (updated, last_error, retry_after) = (e.n(UPDATED_AT), e.n(LAST_ERROR), e.n(RETRY_AFTER));
    let now = e.v("now", num(now_ms));
    // What ends with the update. The step stays in the attention index: its outcome is in
    // the outbox until sent ([`mark_sent`] takes it out).
    let finished = |e: &mut Expressions| {
        [
            UPDATE_OWNER,
            UPDATE_LEASE_EXPIRES_AT,
            UPDATE_ATTEMPT,
            UPDATE_FIRST_ATTEMPT_AT,
            UPDATE_VERSION,
        ]
        .map(|n| e.n(n))
        .join(", ")
    };
    e.update = Some(match end {
        UpdateEnd::Applied {
            state,
            revision,
            event,
        } => {
            let (state_n, applied) = (e.n(STATE), e.n(APPLIED_REVISION));
            let state_v = e.v("state", s(*state));
            let revision_v = e.v("revision", s(*revision));
            let outbox = match event {
                Some(event) => format!(", {}", outbox_append(&mut e, event)),
                None => String::new(),
            };
            let removed = finished(&mut e);
            // What an audit found against the state this one replaces no longer stands: the
            // next audit compares with the new state, and a drift it finds is a new finding
            // (announced again), not one already reported.
            let drift = e.n(DRIFT);
            format!(
                "SET {state_n} = {state_v}, {applied} = {revision_v}, {updated} = {now}{outbox} \
                 REMOVE {removed}, {last_error}, {retry_after}, {drift}"
            )
        }
        UpdateEnd::Refused {
            version,
            reason,
            event,
        } => {
            let refused = e.n(REFUSED_VERSION);
            let refused_v = e.v("refused", num(*version));
            let reason_v = e.v("reason", reason.to_attribute());
            let outbox = outbox_append(&mut e, event);
            let removed = finished(&mut e);
            format!(
                "SET {refused} = {refused_v}, {last_error} = {reason_v}, {updated} = {now}, \
                 {outbox} REMOVE {removed}, {retry_after}"
            )
        }
        UpdateEnd::Released {
            reason,
            retry_after_ms,
        } => {
            let lease = e.n(UPDATE_LEASE_EXPIRES_AT);
            let reason_v = e.v("reason", reason.to_attribute());
            let set = format!("SET {lease} = {now}, {last_error} = {reason_v}, {updated} = {now}");
            match retry_after_ms {
                Some(ms) => {
                    let after = e.v("after", num(*ms));
                    format!("{set}, {retry_after} = {after}")
                }
                None => format!("{set} REMOVE {retry_after}"),
            }
        }
    });
    e.condition = Some(fence);
    e
}

/// `outbox = outbox + [event]`: an announcement recorded with its outcome.
fn outbox_append(e: &mut Expressions, event: &str) -> String {
    let outbox = e.n(OUTBOX);
    let empty = e.v("nooutbox", AttributeValue::L(Vec::new()));
    let event_v = e.v("outboxevent", AttributeValue::L(vec![s(event)]));
    format!("{outbox} = list_append(if_not_exists({outbox}, {empty}), {event_v})")
}

/// The oldest announcement in a `READY` (or since retired) step's outbox (`entry`, as read)
/// was sent: it is removed, conditioned on still being the oldest (another sender may have
/// removed it). A retirement keeps the generation and the outbox: what the step recorded
/// before it is still announced.
/// With `settle` (the desired version read, and the time), the step also leaves the
/// attention index, conditioned on it being the last entry and on [`settle`]'s conditions.
pub(crate) fn mark_sent(
    generation: u32,
    entry: &str,
    settle: Option<(Option<u64>, u64)>,
) -> Expressions {
    let mut e = Expressions::default();
    let outbox = e.n(OUTBOX);
    let entry_v = e.v("entry", s(entry));
    let (condition, update) = match settle {
        None => {
            let (status, generation_n) = (e.n(STATUS), e.n(GENERATION));
            let ready = e.v("ready", s(Status::Ready.as_str()));
            let retired = e.v("retired", s(Status::Retired.as_str()));
            let generation_v = e.v("generation", num(u64::from(generation)));
            (
                format!("{status} IN ({ready}, {retired}) AND {generation_n} = {generation_v}"),
                format!("REMOVE {outbox}[0]"),
            )
        }
        Some((seen, now_ms)) => {
            let (condition, removed) = settled(&mut e, generation, seen, now_ms);
            let announced = e.n(ANNOUNCED);
            let (one, yes) = (e.v("one", num(1)), e.v("yes", AttributeValue::Bool(true)));
            (
                format!("{condition} AND size({outbox}) = {one} AND {announced} = {yes}"),
                format!("REMOVE {outbox}[0], {removed}"),
            )
        }
    };
    e.update = Some(update);
    e.condition = Some(format!("{condition} AND {outbox}[0] = {entry_v}"));
    e
}

/// `desired_version = seen`, or none written yet.
fn version_is(e: &mut Expressions, seen: Option<u64>) -> String {
    match seen {
        Some(v) => {
            let (version, seen_v) = (e.n(DESIRED_VERSION), e.v("seen", num(v)));
            format!("{version} = {seen_v}")
        }
        None => format!("attribute_not_exists({})", e.n(DESIRED_VERSION)),
    }
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
pub(crate) fn attention_query(partition: &str) -> Expressions {
    let mut e = Expressions::default();
    let attention = e.n(ATTENTION);
    let status_v = e.v("status", s(partition));
    e.condition = Some(format!("{attention} = {status_v}"));
    e
}

/// Key condition on the audit index: one hour's partition, a range of minutes of the day.
pub(crate) fn audit_query(hour: u32, from_minute: u32, to_minute: u32) -> Expressions {
    let mut e = Expressions::default();
    let (hour_n, minute_n) = (e.n(AUDIT_HOUR), e.n(AUDIT_MINUTE));
    let hour_v = e.v("hour", num(u64::from(hour)));
    let from_v = e.v("from", num(u64::from(from_minute)));
    let to_v = e.v("to", num(u64::from(to_minute)));
    e.condition = Some(format!(
        "{hour_n} = {hour_v} AND {minute_n} BETWEEN {from_v} AND {to_v}"
    ));
    e
}

/// The audit's finding on a `READY` step of `generation` whose applied revision it read
/// was `applied`: the drift (JSON, with its announcement when it is new) or none. Conditioned on what the audit compared with
/// (the generation, the applied revision) and on no update having started since, so a
/// finding made from a stale read (the audit index is eventually consistent) is dropped.
pub(crate) fn record_audit(
    generation: u32,
    (applied, seen_version): (Option<&str>, Option<u64>),
    finding: Option<(&str, Option<&str>)>,
    now_ms: u64,
) -> Expressions {
    let mut e = Expressions::default();
    let (status, generation_n, drift_n, audited) =
        (e.n(STATUS), e.n(GENERATION), e.n(DRIFT), e.n(AUDITED_AT));
    let (applied_n, owner_n) = (e.n(APPLIED_REVISION), e.n(UPDATE_OWNER));
    let ready = e.v("ready", s(Status::Ready.as_str()));
    let generation_v = e.v("generation", num(u64::from(generation)));
    let now = e.v("now", num(now_ms));
    let seen = match applied {
        Some(applied) => {
            let applied_v = e.v("applied", s(applied));
            format!("{applied_n} = {applied_v}")
        }
        None => format!("attribute_not_exists({applied_n})"),
    };
    // The desired version too: an update that applied an older request's field leaves the
    // applied (newest) revision as it was, and bumps the version.
    let version = version_is(&mut e, seen_version);
    e.condition = Some(format!(
        "{status} = {ready} AND {generation_n} = {generation_v} AND {seen} AND {version} \
         AND attribute_not_exists({owner_n})"
    ));
    e.update = Some(match finding {
        Some((drift, None)) => {
            let drift_v = e.v("drift", s(drift));
            format!("SET {drift_n} = {drift_v}, {audited} = {now}")
        }
        // A new finding: its announcement into the outbox, the step into the attention
        // index until it is sent.
        Some((drift, Some(event))) => {
            let drift_v = e.v("drift", s(drift));
            let outbox = outbox_append(&mut e, event);
            let (attention, updating) = (e.n(ATTENTION), e.v("updating", s(UPDATING)));
            format!(
                "SET {drift_n} = {drift_v}, {audited} = {now}, {outbox}, \
                 {attention} = {updating}"
            )
        }
        None => format!("SET {audited} = {now} REMOVE {drift_n}"),
    });
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

    static REASON: ErrorReason = ErrorReason {
        retryable: false,
        code: String::new(),
        message: String::new(),
    };

    const APPLIED: AppliedInput<'static> = AppliedInput {
        state: "{}",
        revision: "r",
        audit_slot: (1, 61),
    };

    fn update_claim(seen: Option<u64>, bump: bool) -> UpdateClaimInput<'static> {
        UpdateClaimInput {
            generation: 0,
            seen,
            bump,
            merged: None,
            attempt: 1,
            now_ms: 1,
            lease_expires_ms: 2,
        }
    }

    fn applied() -> UpdateEnd<'static> {
        UpdateEnd::Applied {
            state: "{}",
            revision: "r",
            event: Some("{}"),
        }
    }

    fn release(retry_after_ms: Option<u64>, create_sent: bool) -> ReleaseInput<'static> {
        ReleaseInput {
            owner: "o",
            attempt: 1,
            reason: &REASON,
            now_ms: 1,
            retry_after_ms,
            create_sent,
        }
    }

    fn all() -> Vec<(&'static str, Expressions)> {
        let reason = ErrorReason {
            retryable: false,
            code: "ValidationException".into(),
            message: "bad".into(),
        };
        let input = ClaimInput {
            requested: Some(("{}", "r")),
            desired: Some(("[]", "r")),
            first_token: "t",
            salt: "s",
            request_hash: "h",
            event_id: "e",
            owner: "o",
            now_ms: 1,
            lease_expires_ms: 2,
            ttl_secs: 3,
        };
        vec![
            ("claim", claim(&input)),
            (
                "claim without what was requested",
                claim(&ClaimInput {
                    requested: None,
                    desired: None,
                    ..input
                }),
            ),
            (
                "complete created",
                complete("o", Status::Created, "arn", Origin::Created, &APPLIED, 1),
            ),
            (
                "complete ready",
                complete("o", Status::Ready, "arn", Origin::Adopted, &APPLIED, 1),
            ),
            (
                "claim update",
                claim_update(&update_claim(Some(3), false), "o"),
            ),
            (
                "claim first update",
                claim_update(&update_claim(None, false), "o"),
            ),
            (
                "claim repair",
                claim_update(&update_claim(Some(3), true), "o"),
            ),
            (
                "claim update with a merge",
                claim_update(
                    &UpdateClaimInput {
                        merged: Some(("[]", "r")),
                        ..update_claim(None, false)
                    },
                    "o",
                ),
            ),
            ("update applied", end_update("o", 0, &applied(), 1)),
            (
                "update applied, nothing changed",
                end_update(
                    "o",
                    0,
                    &UpdateEnd::Applied {
                        state: "{}",
                        revision: "r",
                        event: None,
                    },
                    1,
                ),
            ),
            (
                "update refused",
                end_update(
                    "o",
                    0,
                    &UpdateEnd::Refused {
                        version: 2,
                        reason: &REASON,
                        event: "{}",
                    },
                    1,
                ),
            ),
            (
                "record desired",
                record_desired(&DesiredInput {
                    status: Status::Ready,
                    generation: 0,
                    seen_version: Some(1),
                    desired: "[]",
                    newest: "r",
                    outstanding: true,
                }),
            ),
            (
                "record first desired",
                record_desired(&DesiredInput {
                    status: Status::InProgress,
                    generation: 0,
                    seen_version: None,
                    desired: "[]",
                    newest: "r",
                    outstanding: false,
                }),
            ),
            (
                "update released",
                end_update(
                    "o",
                    0,
                    &UpdateEnd::Released {
                        reason: &REASON,
                        retry_after_ms: Some(2),
                    },
                    1,
                ),
            ),
            (
                "update released now",
                end_update(
                    "o",
                    0,
                    &UpdateEnd::Released {
                        reason: &REASON,
                        retry_after_ms: None,
                    },
                    1,
                ),
            ),
            ("promote", promote(0, "arn", (0, 5), 1)),
            ("fail permanent", fail_permanent("o", &reason, 1, 2)),
            ("release", fail_retryable(&release(None, false))),
            ("release later", fail_retryable(&release(Some(5), false))),
            ("release sent", fail_retryable(&release(Some(5), true))),
            ("fail created", fail_created(1, "arn", &reason, 1, 2)),
            ("announce", announce(0, Status::Ready)),
            ("announce retirement", announce_retirement(0)),
            ("trim recent events", trim_events(23, 20)),
            ("settle", settle(0, Some(2), false, 1)),
            ("advance applied", advance_applied(0, Some(2), "r", 1)),
            ("settle announced", settle(0, None, true, 1)),
            (
                "retire",
                retire(&RetireInput {
                    revision: "r",
                    why: "{}",
                    first_token: "t",
                    salt: "s",
                    now_ms: 1,
                }),
            ),
            (
                "reopen",
                reopen(&ReopenInput {
                    generation: 0,
                    retired_revision: "r",
                    token: "t",
                    create_sent: true,
                    requested: ("{}", "r2"),
                    now_ms: 1,
                }),
            ),
            (
                "retry",
                retry(&RetryInput {
                    status: Status::Failed,
                    generation: 0,
                    attempt: 2,
                    token: "t",
                    create_sent: true,
                    now_ms: 1,
                }),
            ),
            ("scope query", scope_query("account#1")),
            ("attention query", attention_query("FAILED")),
            ("audit query", audit_query(3, 180, 194)),
            (
                "drift found",
                record_audit(0, (Some("r"), Some(3)), Some(("{}", Some("{}"))), 1),
            ),
            (
                "drift known",
                record_audit(0, (Some("r"), None), Some(("{}", None)), 1),
            ),
            ("sent", mark_sent(0, "{}", None)),
            ("sent, the last", mark_sent(0, "{}", Some((Some(2), 1)))),
            (
                "sent, the last, no version",
                mark_sent(0, "{}", Some((None, 1))),
            ),
            ("no drift", record_audit(0, (None, None), None, 1)),
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
    fn ready_stays_in_the_attention_index_until_announced_and_completed_items_lose_their_ttl() {
        let ready = complete("o", Status::Ready, "arn", Origin::Created, &APPLIED, 1)
            .update
            .unwrap_or_default();
        assert!(ready.contains("#attention = :updating"), "{ready}");
        assert!(ready.contains("#announced = :no"), "{ready}");
        assert!(ready.contains("REMOVE #expiresat"), "{ready}");
        let created = complete("o", Status::Created, "arn", Origin::Created, &APPLIED, 1)
            .update
            .unwrap_or_default();
        assert!(created.contains("#attention = :to"), "{created}");
        assert!(created.contains("REMOVE #expiresat"), "{created}");
    }

    #[test]
    fn only_the_write_that_creates_an_item_fixes_its_salt_and_first_token() {
        let claimed = claim(&ClaimInput {
            requested: None,
            desired: None,
            first_token: "t",
            salt: "s",
            request_hash: "h",
            event_id: "e",
            owner: "o",
            now_ms: 1,
            lease_expires_ms: 2,
            ttl_secs: 3,
        });
        let retired = retire(&RetireInput {
            revision: "r",
            why: "{}",
            first_token: "t",
            salt: "s",
            now_ms: 1,
        });
        for (label, e) in [("claim", claimed), ("retire", retired)] {
            let update = e.update.unwrap_or_default();
            assert!(
                update.contains("#tokensalt = if_not_exists(#tokensalt, :salt)"),
                "{label}: {update}"
            );
            assert!(
                update.contains("#clienttoken = if_not_exists(#clienttoken, :token)"),
                "{label}: {update}"
            );
            assert_eq!(e.values.get(":salt"), Some(&s("s")), "{label}");
        }
    }

    #[test]
    fn a_pending_update_keeps_its_first_attempt_until_it_ends() {
        let claimed = claim_update(&update_claim(Some(1), false), "o")
            .update
            .unwrap_or_default();
        assert!(
            claimed.contains("#updatefirstattemptat = if_not_exists(#updatefirstattemptat, :now)"),
            "{claimed}"
        );
        let end = |end: &UpdateEnd<'_>| end_update("o", 0, end, 1).update.unwrap_or_default();
        let released = end(&UpdateEnd::Released {
            reason: &REASON,
            retry_after_ms: Some(2),
        });
        assert!(!released.contains("#updatefirstattemptat"), "{released}");
        for ended in [
            end(&applied()),
            end(&UpdateEnd::Refused {
                version: 2,
                reason: &REASON,
                event: "{}",
            }),
        ] {
            let (_, removed) = ended.split_once(" REMOVE ").unwrap_or_default();
            assert!(removed.contains("#updatefirstattemptat"), "{ended}");
        }
    }

    #[test]
    fn retirement_leaves_every_index_but_attention_until_announced_and_keeps_no_ttl() {
        let e = retire(&RetireInput {
            revision: "r",
            why: "{}",
            first_token: "t",
            salt: "s",
            now_ms: 1,
        });
        let update = e.update.unwrap_or_default();
        let (set, removed) = update.split_once(" REMOVE ").unwrap_or_default();
        for attr in ["#audithour", "#auditminute", "#expiresat", "#drift"] {
            assert!(removed.contains(attr), "{attr} not removed: {update}");
            assert!(!set.contains(&format!("{attr} =")), "{attr} set: {update}");
        }
        assert!(set.contains("#announced = :no"), "{update}");
        assert!(set.contains("#attention = :retired"), "{update}");
        let marked = announce_retirement(0).update.unwrap_or_default();
        assert!(marked.contains("REMOVE #attention"), "{marked}");
        let condition = e.condition.unwrap_or_default();
        // Never over a retirement, never over a request newer than the closure.
        for attr in [
            "#retiredrevision",
            "#requestedrevision",
            "#appliedrevision",
            "#wantedrevision",
            "#desiredrevision",
        ] {
            assert!(
                condition.contains(&format!("{attr} < :revision")),
                "{attr}: {condition}"
            );
        }
        assert!(condition.contains("#status <> :retired"), "{condition}");
    }

    #[test]
    fn a_reopening_is_fenced_on_the_retirement_read() {
        let e = reopen(&ReopenInput {
            generation: 3,
            retired_revision: "r",
            token: "t",
            create_sent: true,
            requested: ("{}", "r2"),
            now_ms: 1,
        });
        assert_eq!(
            e.condition.as_deref(),
            Some("#status = :retired AND #generation = :current AND #retiredrevision = :seen")
        );
        let update = e.update.unwrap_or_default();
        assert!(update.contains("#generation = :next"), "{update}");
        assert!(
            update.contains("#requested = :requested")
                && update.contains("#requestedrevision = :requestedrevision"),
            "the reopening request is the new generation's: {update}"
        );
        assert!(
            !update.contains("#retired,") && !update.contains("#retired "),
            "{update}"
        );
    }
}
