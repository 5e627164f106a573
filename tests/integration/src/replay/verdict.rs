//! The verdict, computed from what the stand-ins hold at the end, never from the harness's
//! own view of what it did: the emulator's resources, a full scan of the ledger, the events
//! captured from the bus, the queues' dead-letter lists, and the log of ledger writes as
//! DynamoDB answered them.
//!
//! What each key must come to is the plan's ([`plan::expectations`]): derived from the
//! requests (decoded with the project's decoder, keyed with the steps' key rules) and the
//! emulator organization. Beyond "exactly one resource per key, nothing lost, nothing stuck,
//! every READY and FAILED step announced", it fails on:
//! - any FAILED step of an account whose member role appeared inside the grace window (in its
//!   first half, measured from the step's first attempt: a step whose first AssumeRole came
//!   so late that the role appeared after that is reported, FAILED as designed), and a "not
//!   reachable yet" failure recorded before the window was over;
//! - a not-propagated CreateInstance Conflict that does not end READY (one met after the
//!   window, when the step had been retried past it for other reasons, is reported);
//! - any adoption of a foreign provider (ledger or event), any change to one (type, details,
//!   tags, an Updated event), its conflict not recorded as `ForeignResourceConflict` naming it;
//! - any Ready event or READY step for a resource that we neither made nor found already
//!   satisfying the request; a pre-existing resource not labelled `pre-existing` (a provider
//!   has no creation date: after an attempt that may have created it, a matching one may be
//!   `adopted`). A resource we made but labelled `pre-existing` is reported, not failed
//!   ([`ORIGIN_LABELS_FAIL`]);
//! - any valid request in a dead-letter list;
//! - any "Onboarding Step Failed" event for a key that ends READY (the run makes no operator
//!   retries), and more failure events for a key than its one failure plus the re-announcements
//!   the ledger called for (a delivery that found the failure recorded but not yet announced);
//! - any stale ledger write: a holder's write applied after another claim had taken the step
//!   (or its update) over, any write but the announced flag and the update writes applied
//!   after the step was READY (after FAILED: any but the flag), two terminal writes for one
//!   key, a new generation; and any Delete call;
//! - for the revisions population, from the emulator's resources and their `history` of
//!   states: a resource not in the state of its latest revision at the end (instance name and
//!   the project's tags; provider type, details, the client secret of the latest `secretId`,
//!   the project's tags, read through the SDK), a state of an older revision after a newer one
//!   was reached (provider states, fingerprinted, compared as "left, then came back"), more
//!   UpdateInstance / UpdateIdentityProvider calls than the key has own revisions, a revision
//!   applied by an update and never announced "<Step> Updated", and a ledger whose applied
//!   revision is not the latest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use identity_emulator::{Config as EmulatorConfig, Counters};
use onboarding::announce::{
    ACCOUNT_OFFBOARDED_DETAIL_TYPE, DRIFT_DETECTED_DETAIL_TYPE, STEP_FAILED_DETAIL_TYPE,
};
use onboarding::ledger::{Origin, Record, Status};
use serde_json::Value;

use super::chaos::{LedgerWrite, WriteKind};
use super::plan::{self, Expect, Expectations, Original, Population, Timing};
use super::queue::DeadLetter;

pub use super::plan::{APPROVAL, INSTANCE, WEB};

/// Whether a resource made during the run but labelled `pre-existing` (in the ledger; in a
/// Ready event it is always only reported) fails the run. Off: the engine labels what a
/// holder finds after its create met a Conflict by that holder's own view of earlier creates,
/// and a create by a holder that had lost its lease is not recorded as sent (its ending write
/// is refused, and a later attempt that settles overwrites `settled_attempt`), so under the
/// run's stale holders and injected Conflicts such labels occur about once per run. They are
/// listed in the report; the resource itself is checked to be ours either way.
const ORIGIN_LABELS_FAIL: bool = false;
/// The code of a create Conflict after which no resource is found (not propagated yet).
const NOT_PROPAGATED: &str = onboarding::error::code::CONFLICT_NOT_PROPAGATED;

pub fn ready_detail_type(step: &str) -> &'static str {
    match step {
        INSTANCE => "Identity Center Instance Ready",
        APPROVAL => "Approval Identity Source Ready",
        _ => "Web Identity Provider Ready",
    }
}

/// A foreign provider as its owner reads it at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderNow {
    pub provider_type: String,
    pub details: BTreeMap<String, String>,
    /// None when the tags could not be listed.
    pub tags: Option<BTreeMap<String, String>>,
}

/// Everything the verdict looks at.
pub struct Evidence<'a> {
    pub seed: u64,
    pub started: Instant,
    pub timing: &'a Timing,
    pub originals: &'a [Original],
    pub expect: &'a Expectations,
    pub emulator_config: &'a EmulatorConfig,
    pub emulator_state: &'a Value,
    pub counters: &'a Counters,
    pub ledger: &'a [Record],
    pub emitted: &'a [Value],
    /// Event id (originals and archive replays) -> index of the original.
    pub origin_of: &'a HashMap<String, usize>,
    /// Every ledger write that reached DynamoDB.
    pub writes: &'a [LedgerWrite],
    /// Each provider a request names, by key, as GetIdentityProvider and
    /// ListTagsForResource show it at the end.
    pub foreign_now: &'a HashMap<String, Result<ProviderNow, String>>,
    /// Account -> epoch ms of the first AssumeRole into it the role answered (the emulator's
    /// role clock had started by then: a late role had appeared `after_ms` later at the latest).
    pub first_assume: &'a HashMap<String, u64>,
    pub dead_letters: &'a [DeadLetter],
    /// The stranded variant: valid requests run out of receives or are dropped on purpose
    /// (the reconciler, or the dead-letter queue, must account for each).
    pub stranded: bool,
    /// SQS messages sent per (queue, origin).
    pub sqs_sent: &'a HashMap<(&'static str, usize), u64>,
    /// Messages neither acked nor dead-lettered (should be none).
    pub unsettled: usize,
    /// Whether every expected key was READY or FAILED before the archive replay, and the
    /// control-plane calls and resources the replay made.
    pub terminal_before_replay: bool,
    /// The ledger and the dead-letter lists when the deliveries were over, before the
    /// archive replay (which could repair a loss and hide it).
    pub ledger_before_replay: &'a [Record],
    pub dead_before_replay: &'a [DeadLetter],
    pub replay_calls: BTreeMap<String, u64>,
    pub replay_created: u64,
    /// The wall-clock time of `started` (the emulator's history is in wall-clock time).
    pub started_at: std::time::SystemTime,
}

/// A resource the emulator holds.
struct Resource {
    seeded: bool,
}

fn list<'v>(state: &'v Value, account: &str, kind: &str) -> Vec<&'v Value> {
    state["accounts"][account][kind]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Every instance (but the organization's), identity source and identity provider, by ARN.
fn resources(state: &Value) -> HashMap<String, Resource> {
    let mut out = HashMap::new();
    for account in state["accounts"]
        .as_object()
        .into_iter()
        .flat_map(|a| a.values())
    {
        let kinds = [
            ("instances", "instance_arn"),
            ("identity_sources", "identity_source_arn"),
            ("identity_providers", "identity_provider_arn"),
        ];
        for (kind, arn) in kinds {
            for r in account[kind].as_array().into_iter().flatten() {
                if r["organization"] == true {
                    continue;
                }
                if let Some(a) = r[arn].as_str() {
                    out.insert(
                        a.to_string(),
                        Resource {
                            seeded: r["seeded"] == true,
                        },
                    );
                }
            }
        }
    }
    out
}

/// The portal and provider name of a web identity provider key (split at the first `#`
/// after the step name: an ARN holds none, a provider name may).
fn portal_and_name(x: &Expect) -> (&str, &str) {
    x.key
        .step
        .strip_prefix("web-identity-provider#")
        .and_then(|rest| rest.split_once('#'))
        .unwrap_or(("", ""))
}

/// The emulator's resources for a key: (ARN, status, seeded).
fn found_for(state: &Value, x: &Expect) -> Vec<(String, String, bool)> {
    let account = x.key.account_id().unwrap_or_default();
    let triple = |v: &Value, arn: &str, status: &str| {
        (
            v[arn].as_str().unwrap_or("").to_string(),
            v[status].as_str().unwrap_or("ACTIVE").to_string(),
            v["seeded"] == true,
        )
    };
    match x.step {
        INSTANCE => list(state, account, "instances")
            .into_iter()
            .filter(|i| i["organization"] != true)
            .map(|i| triple(i, "instance_arn", "status"))
            .collect(),
        APPROVAL => state["accounts"]
            .as_object()
            .into_iter()
            .flat_map(|accounts| accounts.values())
            .flat_map(|a| a["identity_sources"].as_array().into_iter().flatten())
            .map(|s| triple(s, "identity_source_arn", "status"))
            .collect(),
        _ => {
            let (portal, provider) = portal_and_name(x);
            list(state, account, "identity_providers")
                .into_iter()
                .filter(|p| p["portal_arn"] == portal && p["identity_provider_name"] == provider)
                .map(|p| triple(p, "identity_provider_arn", "no status"))
                .collect()
        }
    }
}

fn origin_of_event(v: &Value) -> Option<&str> {
    v["detail"]["origin"].as_str()
}

fn at(started: Instant, t: Instant) -> String {
    format!(
        "+{:.3}s",
        t.saturating_duration_since(started).as_secs_f64()
    )
}

/// Per population: keys, READY, FAILED.
#[derive(Default)]
struct Tally {
    keys: u64,
    ready: u64,
    failed: u64,
}

/// Every violation, each naming the key, what was expected, what was found and the seed.
pub fn check(e: &Evidence<'_>) -> (Vec<String>, String) {
    let x = e.expect;
    let seed = e.seed;
    let mut failures = Vec::new();
    let mut fail = |msg: String| failures.push(format!("{msg} [seed {seed}]"));
    let ledger: HashMap<String, &Record> =
        e.ledger.iter().map(|r| (r.key.to_string(), r)).collect();
    let dead_by: HashMap<(&str, usize), Vec<&DeadLetter>> =
        e.dead_letters.iter().fold(HashMap::new(), |mut m, d| {
            m.entry((d.queue, d.origin)).or_default().push(d);
            m
        });
    let state = e.emulator_state;
    let held = resources(state);
    let invalid: HashSet<usize> = x.invalid.iter().copied().collect();
    let label = |k: &Expect| e.originals[k.origins[0]].label.as_str();

    // The emitted events, by the key they are about.
    let mut ready_by_key: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut failed_by_key: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut updated_by_key: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut rejections = Vec::new();
    for v in e.emitted {
        let detail_type = v["detail-type"].as_str().unwrap_or_default();
        let step = v["detail"]["step"].as_str().unwrap_or_default();
        let event_id = v["detail"]["requestEventId"].as_str().unwrap_or_default();
        let failed = detail_type == STEP_FAILED_DETAIL_TYPE;
        let updated = detail_type.ends_with(" Updated");
        if !failed && !updated && !detail_type.ends_with(" Ready") {
            continue;
        }
        if failed && step == "event" {
            rejections.push(v);
            continue;
        }
        let Some((name, _)) = x.key_of_event(step, event_id, e.origin_of) else {
            fail(format!(
                "EVENT FOR NO REQUEST: a \"{detail_type}\" event of step {step} names request {event_id:?}, which asks for no such step: {}",
                v["detail"]
            ));
            continue;
        };
        let name = name.as_str();
        if failed {
            failed_by_key.entry(name).or_default().push(v);
        } else if updated {
            updated_by_key.entry(name).or_default().push(v);
        } else {
            ready_by_key.entry(name).or_default().push(v);
        }
    }

    // Claims that found a key FAILED and not yet announced (each may announce it again).
    let mut late_failure_reads: HashMap<&str, u64> = HashMap::new();
    for w in e.writes {
        if w.kind == WriteKind::Claim && w.seen && w.found == Some((Status::Failed, false)) {
            *late_failure_reads.entry(w.key.as_str()).or_default() += 1;
        }
    }

    // Steps that retried a Conflict that had not propagated (released with that code).
    let conflicted: HashSet<&str> = e
        .writes
        .iter()
        .filter(|w| w.applied && w.code.as_deref() == Some(NOT_PROPAGATED))
        .map(|w| w.key.as_str())
        .collect();
    let mut conflicts_ready = 0;
    let mut conflicts_late = Vec::new();
    let mut orphaned = Vec::new();
    let mut roles_late = Vec::new();
    let mut mislabelled = Vec::new();

    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut dead_lettered_valid = Vec::new();
    let mut reannounced = 0u64;
    let mut revision_stats = RevisionStats::default();
    let mut departure_stats = DepartureStats::default();
    let mut ready = 0;
    let mut failed = 0;

    for (name, k) in &x.keys {
        let population = k.population;
        let tally = tallies
            .entry(population_group(population).to_string())
            .or_default();
        tally.keys += 1;
        let account = k.key.account_id().unwrap_or_default();
        let dead: Vec<&DeadLetter> = k
            .origins
            .iter()
            .flat_map(|o| dead_by.get(&(k.step, *o)).cloned().unwrap_or_default())
            .collect();
        if !dead.is_empty() {
            dead_lettered_valid.push(format!(
                "{name}: {} message(s) dead-lettered, last error: {}",
                dead.len(),
                dead[0].last_error
            ));
        }
        let Some(rec) = ledger.get(name) else {
            if dead.is_empty() {
                fail(format!(
                    "LOST: {name} ({}, from {}) has no ledger item and no dead-lettered message; expected {}",
                    population.name(), label(k), k.want()
                ));
            }
            continue;
        };
        let reason = rec.last_error.as_ref();
        let code = reason.map(|r| r.code.as_str()).unwrap_or_default();
        let waited = rec
            .updated_at
            .zip(rec.first_attempt_at)
            .map(|(u, f)| Duration::from_millis(u.saturating_sub(f)));
        // A Conflict met after the grace window is permanent by design: the step had been
        // retried past the window for other reasons first (the run's delays are seconds).
        let late_conflict = rec.status == Status::Failed
            && code == NOT_PROPAGATED
            && waited.is_some_and(|w| w >= e.timing.grace);
        if conflicted.contains(name.as_str()) && rec.status == Status::Ready {
            conflicts_ready += 1;
        }
        // When a late role had appeared at the latest, measured from the step's first attempt:
        // the emulator starts the role's clock at the first AssumeRole into the account.
        let role_appeared = match population {
            Population::LateRole { after_ms } => e
                .first_assume
                .get(account)
                .zip(rec.first_attempt_at)
                .map(|(t, first)| Duration::from_millis((t + after_ms).saturating_sub(first))),
            _ => None,
        };
        match rec.status {
            Status::InProgress | Status::Created => {
                fail(format!(
                    "STUCK: {name} ({}) is {} (attempt {}, lease owner {:?}, last error {:?}) after every lease expired; expected {}",
                    population.name(), rec.status, rec.attempt, rec.lease_owner, rec.last_error, k.want()
                ));
                continue;
            }
            Status::Failed if late_conflict && population.want() == Status::Ready => {
                conflicts_late.push(format!(
                    "{name} ({}): {:.1}s after its first attempt; its history: {}",
                    population.name(),
                    waited.unwrap_or_default().as_secs_f64(),
                    history(e.writes, name)
                ));
            }
            // The role appeared in the second half of the window or after it: the step's
            // first AssumeRole came that late (it had been retried for other reasons first).
            Status::Failed
                if code == onboarding::error::code::MEMBER_ROLE_UNAVAILABLE
                    && role_appeared.is_some_and(|a| a > e.timing.grace / 2) =>
            {
                roles_late.push(format!(
                    "{name}: the role appeared {:.1}s after the step's first attempt; its history: {}",
                    role_appeared.unwrap_or_default().as_secs_f64(),
                    history(e.writes, name)
                ));
            }
            Status::Failed if matches!(population, Population::LateRole { .. }) => {
                fail(format!(
                    "LATE ROLE FAILED: {name} (from {}): the account's member role appeared {} after the first AssumeRole into the account (by {} after the step's first attempt), inside the grace window of {}, yet the step is FAILED ({code}: {}); expected READY; its history: {}",
                    label(k),
                    match population {
                        Population::LateRole { after_ms } => format!("{after_ms} ms"),
                        _ => String::new(),
                    },
                    role_appeared.map_or("?".to_string(), |a| format!("{:.1}s", a.as_secs_f64())),
                    plan::secs(e.timing.grace),
                    reason.map(|r| r.message.as_str()).unwrap_or_default(),
                    history(e.writes, name)
                ));
            }
            Status::Ready if population == Population::ForeignProvider => {
                fail(format!(
                    "FOREIGN ADOPTION: {name} (from {}) is READY with {:?} (origin {:?}): the portal's provider of that name is another team's and differs from the request; expected FAILED ForeignResourceConflict",
                    label(k), rec.resource_arn, rec.origin
                ));
            }
            s if s != k.want() => {
                fail(format!(
                    "WRONG OUTCOME: {name} ({}, from {}) is {s} with last error {:?}; expected {}",
                    population.name(),
                    label(k),
                    rec.last_error,
                    k.want()
                ));
            }
            _ => {}
        }
        // A new generation comes only from a newer request reopening a retired step (or an
        // operator's retry or a drift repair, which the run never calls for).
        let reopened = e
            .writes
            .iter()
            .filter(|w| w.applied && w.kind == WriteKind::Reopen && w.key == *name)
            .count() as u32;
        // The step itself keeps the evidence of its last reopening: its retirement as history
        // and a request newer than it (the write log has been seen to miss a reopening's
        // write; the ledger's own record is what counts then).
        let reopened_per_ledger = reopened_per_ledger(rec);
        if rec.generation != reopened && !(reopened_per_ledger && rec.generation == reopened + 1) {
            fail(format!(
                "STALE WRITE: {name} is in generation {} after {reopened} reopening(s) (a new generation needs a reopening; the run has no drift to repair and makes no operator retry); its writes: {}",
                rec.generation,
                e.writes
                    .iter()
                    .filter(|w| w.key == *name)
                    .map(|w| format!("{:?}{}", w.kind, if w.applied { "" } else { "(not applied)" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let arn = rec.resource_arn.as_deref();
        // Exactly one resource per key, and it is the one the ledger names.
        let found = found_for(state, k);
        let excused = late_conflict
            || (code == onboarding::error::code::MEMBER_ROLE_UNAVAILABLE
                && role_appeared.is_some_and(|a| a > e.timing.grace / 2));
        let want_resources = if excused && rec.status == Status::Failed {
            0
        } else if k.want() == Status::Ready || !population.unreachable() {
            1
        } else {
            0
        };
        // A holder that stalled past its lease may send its create after another delivery
        // recorded the step FAILED: no fence reaches a call already on its way. Its resource
        // then exists beside the failure (an operator's retry adopts it); what must not
        // follow is a write or a Ready event, and its refused completion write shows it.
        let stale_orphan = rec.status == Status::Failed
            && want_resources == 0
            && found.len() == 1
            && made_after_failure(e.writes, name);
        if stale_orphan {
            orphaned.push(format!(
                "{name}: {} made by a stalled holder after the step was FAILED ({code}); its history: {}",
                found[0].0,
                history(e.writes, name)
            ));
        } else if found.len() != want_resources
            && !(population == Population::Departed && found.len() <= 1)
        {
            // A departed account's step may have been made before its retirement, or by a
            // holder whose create was on its way (check_departure judges when it was made).
            fail(format!(
                "DUPLICATE OR MISSING RESOURCE: {name} ({}): the emulator holds {} resource(s) {:?}; expected exactly {want_resources} (ledger: {} {:?})",
                population.name(), found.len(), found, rec.status, arn
            ));
        } else if let Some((res_arn, status, seeded)) = found.first() {
            // A step that failed on readiness or on a conflict names its resource only in
            // its reason.
            let named_in_reason = rec.status == Status::Failed
                && arn.is_none()
                && reason.is_some_and(|r| r.message.contains(res_arn.as_str()));
            let retired_unmade = rec.status == Status::Retired && arn.is_none();
            if Some(res_arn.as_str()) != arn && !named_in_reason && !retired_unmade {
                fail(format!(
                    "LEDGER/RESOURCE MISMATCH: {name} ({}, from {}): the ledger records {} {arn:?} (attempt {}, last error {:?}), the emulator holds {res_arn} ({status})",
                    population.name(), label(k), rec.status, rec.attempt, rec.last_error
                ));
            }
            if rec.status == Status::Ready && status != "ACTIVE" {
                fail(format!(
                    "NOT READY: {name} is READY in the ledger but {res_arn} is {status}"
                ));
            }
            if *seeded != population.seeded() {
                fail(format!(
                    "WRONG RESOURCE: {name} ({}): {res_arn} {}; expected {}",
                    population.name(),
                    if *seeded {
                        "existed before the run"
                    } else {
                        "was made during the run"
                    },
                    if population.seeded() {
                        "the one that existed before the run, and none made by us"
                    } else {
                        "one made by us"
                    }
                ));
            }
        }
        let step_failures: Vec<&Value> = failed_by_key
            .get(name.as_str())
            .cloned()
            .unwrap_or_default();
        let ready_events: Vec<&Value> =
            ready_by_key.get(name.as_str()).cloned().unwrap_or_default();
        match rec.status {
            Status::Ready => {
                ready += 1;
                tally.ready += 1;
                // A provider carries no creation date: after an attempt that may have created
                // it, the engine cannot tell a matching provider from its own lost create.
                let unknowable = population == Population::MatchingProvider
                    && rec.create_may_have_been_sent()
                    && rec.origin == Some(Origin::Adopted);
                let wrong = format!(
                    "{name} ({}) is READY with origin {:?} ({arn:?}); expected {:?}",
                    population.name(),
                    rec.origin.map(|o| o.as_str()),
                    population
                        .origins()
                        .iter()
                        .map(|o| o.as_str())
                        .collect::<Vec<_>>()
                );
                match rec.origin {
                    Some(o) if population.origins().contains(&o) || unknowable => {}
                    // One we made, labelled as found: reported unless ORIGIN_LABELS_FAIL.
                    Some(Origin::PreExisting) if !population.seeded() && !ORIGIN_LABELS_FAIL => {
                        mislabelled.push(format!("ledger: {wrong}"));
                    }
                    _ => fail(format!("WRONG ORIGIN: {wrong}")),
                }
                let wanted_type = ready_detail_type(k.step);
                let events: Vec<&&Value> = ready_events
                    .iter()
                    .filter(|v| v["detail-type"] == wanted_type)
                    .collect();
                // A reopened step's earlier generation announced its own Ready (its token).
                let current = |v: &&&Value| v["detail"]["clientToken"] == rec.token.as_str();
                if !events.iter().any(&current) {
                    fail(format!(
                        "NEVER ANNOUNCED: {name} is READY ({arn:?}, generation {}) but no \"{wanted_type}\" event was emitted for its generation (token {})",
                        rec.generation, rec.token
                    ));
                }
                for v in events {
                    if v["detail"]["resourceArn"].as_str() != arn
                        || (!current(&v) && rec.generation == 0)
                        || (k.step != APPROVAL && v["detail"]["accountId"] != account)
                    {
                        fail(format!(
                            "WRONG ANNOUNCEMENT: {name}: an event announced {} with token {} for account {}; the ledger holds {arn:?} with token {}",
                            v["detail"]["resourceArn"], v["detail"]["clientToken"], v["detail"]["accountId"], rec.token
                        ));
                    }
                }
                for v in &step_failures {
                    fail(format!(
                        "FAILURE ANNOUNCED FOR A READY STEP: {name} ({}) is READY ({arn:?}), yet an \"Onboarding Step Failed\" event names it ({}: {}); the run makes no operator retries",
                        population.name(),
                        v["detail"]["reason"]["code"],
                        v["detail"]["reason"]["message"]
                    ));
                }
            }
            Status::Failed => {
                failed += 1;
                tally.failed += 1;
                match reason {
                    Some(r) if !r.message.is_empty() && !r.retryable => {}
                    other => fail(format!(
                        "FAILED WITHOUT A REASON: {name} is FAILED with last error {other:?}"
                    )),
                }
                let codes = population.codes();
                if !codes.is_empty() && !codes.contains(&code) {
                    fail(format!(
                        "WRONG FAILURE: {name} ({}) is FAILED with {code} ({}); expected {}",
                        population.name(),
                        reason.map(|r| r.message.as_str()).unwrap_or_default(),
                        codes.join(" or ")
                    ));
                }
                // "Not reachable yet" is permanent only after the grace window.
                if (code == onboarding::error::code::MEMBER_ROLE_UNAVAILABLE
                    || code == NOT_PROPAGATED)
                    && waited.is_none_or(|w| w < e.timing.grace)
                {
                    fail(format!(
                        "FAILED INSIDE THE GRACE WINDOW: {name} ({}) was recorded FAILED {code} {} after its first attempt; the window is {}",
                        population.name(),
                        waited.map_or("an unknown time".to_string(), |w| format!("{:.1}s", w.as_secs_f64())),
                        plan::secs(e.timing.grace)
                    ));
                }
                if step_failures.is_empty() {
                    fail(format!(
                        "FAILURE NEVER ANNOUNCED: {name} is FAILED ({code}) but no \"Onboarding Step Failed\" event names it"
                    ));
                }
                let late = late_failure_reads.get(name.as_str()).copied().unwrap_or(0);
                let n = step_failures.len() as u64;
                reannounced += n.saturating_sub(1);
                if n > 1 + late {
                    fail(format!(
                        "FAILURE ANNOUNCED MORE THAN ONCE: {name} ({}): {n} \"Onboarding Step Failed\" events; one comes from the delivery that recorded the failure, and one more only from each delivery that found it recorded but not yet announced ({late})",
                        population.name()
                    ));
                }
                for v in &ready_events {
                    fail(format!(
                        "{}: {name} ({}) is FAILED ({code}) but a \"{}\" event announced {} (origin {:?})",
                        if population == Population::ForeignProvider {
                            "FOREIGN ADOPTION ANNOUNCED"
                        } else {
                            "READY ANNOUNCED FOR A FAILED STEP"
                        },
                        population.name(),
                        v["detail-type"].as_str().unwrap_or_default(),
                        v["detail"]["resourceArn"],
                        origin_of_event(v)
                    ));
                }
            }
            _ => {}
        }
        if population == Population::ForeignProvider {
            check_foreign(e, name, k, rec, &found, &mut fail);
        }
        check_departure(
            e,
            name,
            k,
            rec,
            &found,
            &step_failures,
            &mut departure_stats,
            &mut fail,
        );
        if let Some(revs) = &k.revisions {
            let updated = updated_by_key
                .get(name.as_str())
                .cloned()
                .unwrap_or_default();
            check_revisions(
                e,
                name,
                k,
                revs,
                rec,
                &updated,
                &ready_events,
                &mut revision_stats,
                &mut fail,
            );
        }
    }

    // Every Ready event: a resource we made, or one found already satisfying its request.
    // Its origin label should say which; a label that does not is reported, not failed: a
    // holder that lost its lease announces before its fenced write is refused, and the
    // engine labels what such a holder finds by that holder's view.
    for (name, events) in &ready_by_key {
        let Some(k) = x.keys.get(*name) else { continue };
        for v in events {
            let arn = v["detail"]["resourceArn"].as_str().unwrap_or_default();
            let origin = origin_of_event(v);
            match held.get(arn) {
                None => fail(format!(
                    "READY FOR A RESOURCE THAT DOES NOT EXIST: {name}: a \"{}\" event announced {arn:?}, which the emulator does not hold",
                    v["detail-type"].as_str().unwrap_or_default()
                )),
                Some(r) if r.seeded && !k.population.seeded() => fail(format!(
                    "ANNOUNCED A RESOURCE WE DID NOT MAKE: {name} ({}): {arn} existed before the run, yet a Ready event announced it (origin {origin:?})",
                    k.population.name()
                )),
                Some(r) if r.seeded && k.population == Population::ForeignProvider => {
                    // Reported above (FOREIGN ADOPTION ANNOUNCED).
                }
                Some(r) => {
                    let want: &[&str] = if r.seeded {
                        &["pre-existing"]
                    } else {
                        &["created", "adopted"]
                    };
                    let unknowable = r.seeded
                        && origin == Some("adopted")
                        && ledger
                            .get(*name)
                            .is_some_and(|rec| rec.create_may_have_been_sent());
                    if !origin.is_some_and(|o| want.contains(&o)) && !unknowable {
                        mislabelled.push(format!(
                            "event: {name} ({}): a Ready event announced {arn} with origin {origin:?}, but it {} (ledger origin {:?})",
                            k.population.name(),
                            if r.seeded { "existed before the run" } else { "was made during the run" },
                            ledger.get(*name).and_then(|rec| rec.origin).map(|o| o.as_str())
                        ));
                    }
                }
            }
        }
    }

    // A newer request updates a READY step it describes differently; nothing else is
    // updated, least of all another team's provider.
    for (name, events) in &updated_by_key {
        let record = ledger.get(*name);
        let status = record.map(|r| r.status);
        let foreign = x
            .keys
            .get(*name)
            .is_some_and(|k| k.population == Population::ForeignProvider);
        // Updates are fenced on READY: a step that ends RETIRED in the generation it was
        // updated in was READY when the update applied (its account closed after it).
        let retired_after = record.is_some_and(|r| {
            r.status == Status::Retired
                && events.iter().all(|v| {
                    v["detail"]["generation"]
                        .as_u64()
                        .is_some_and(|g| g <= u64::from(r.generation))
                })
        });
        if (status != Some(Status::Ready) && !retired_after) || foreign {
            fail(format!(
                "UPDATED A STEP THAT IS NOT OURS AND READY: {name} ({status:?}{}): {} \"Updated\" event(s), e.g. {}",
                if foreign { ", a foreign provider" } else { "" },
                events.len(),
                events[0]["detail"]
            ));
        }
    }
    let updates: usize = updated_by_key.values().map(Vec::len).sum();

    let outbox = check_outbox(e, &ledger, &ready_by_key, &updated_by_key, &mut fail);
    check_writes(e, &mut fail);

    // A valid request never ends in a dead-letter list (unless the run strands it).
    for d in e.dead_letters.iter().filter(|_| !e.stranded) {
        if !invalid.contains(&d.origin) {
            fail(format!(
                "DEAD-LETTERED VALID REQUEST: {} ({}, message {}{}) went to the dead-letter list after {} receives; last error: {}",
                e.originals[d.origin].label,
                d.queue,
                d.message_id,
                if d.direct { ", delivered directly" } else { "" },
                d.receives,
                d.last_error
            ));
        }
    }

    // Zero requests lost: once every delivery was acknowledged or dead-lettered, each key
    // is finished, or a message for it is in a dead-letter list.
    let before: HashMap<String, &Record> = e
        .ledger_before_replay
        .iter()
        .map(|r| (r.key.to_string(), r))
        .collect();
    for (name, k) in &x.keys {
        let status = before.get(name).map(|r| r.status);
        if matches!(
            status,
            Some(Status::Ready) | Some(Status::Failed) | Some(Status::Retired)
        ) {
            continue;
        }
        let dead = e
            .dead_before_replay
            .iter()
            .any(|d| d.queue == k.step && k.origins.contains(&d.origin));
        if !dead {
            fail(format!(
                "LOST: every delivery of {} was acknowledged, yet {name} was {} (expected {}) before the archive replay",
                label(k),
                status.map_or("absent from the ledger".to_string(), |s| s.to_string()),
                k.want()
            ));
        }
    }

    // Nothing exists that no request asked for, but the mark a departure leaves for a step
    // keyed further than the account (a retired placeholder at the step's name alone: a
    // later request for another of its keys is refused by it), announced to nobody.
    let departure_mark = |r: &onboarding::ledger::Record| {
        r.status == Status::Retired
            && r.resource_arn.is_none()
            && r.key.step == "web-identity-provider"
            && r.announced
    };
    for r in e.ledger {
        if !x.keys.contains_key(&r.key.to_string()) && !departure_mark(r) {
            fail(format!(
                "UNEXPECTED LEDGER ITEM: {} ({}) belongs to no request",
                r.key, r.status
            ));
        }
    }
    let wanted_accounts: HashSet<&str> = x
        .keys
        .values()
        .filter(|k| k.step == INSTANCE)
        .filter_map(|k| k.key.account_id())
        .collect();
    let wanted_providers: HashSet<String> = x
        .keys
        .values()
        .filter(|k| k.step == WEB)
        .map(|k| format!("{}/{}", k.key.account_id().unwrap_or_default(), k.key.step))
        .collect();
    if let Some(accounts) = state["accounts"].as_object() {
        for (account, resources) in accounts {
            let instances = resources["instances"]
                .as_array()
                .map(|a| a.iter().filter(|i| i["organization"] != true).count())
                .unwrap_or(0);
            if instances > 0 && !wanted_accounts.contains(account.as_str()) {
                fail(format!(
                    "UNEXPECTED RESOURCE: account {account} holds {instances} instance(s) but no request onboards it"
                ));
            }
            for p in resources["identity_providers"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let id = format!(
                    "{account}/{WEB}#{}#{}",
                    p["portal_arn"].as_str().unwrap_or(""),
                    p["identity_provider_name"].as_str().unwrap_or("")
                );
                if !wanted_providers.contains(&id) {
                    fail(format!(
                        "UNEXPECTED RESOURCE: identity provider {id} belongs to no request"
                    ));
                }
            }
        }
    }
    // Onboarding never deletes anything.
    for (op, n) in &e.counters.calls {
        if op.starts_with("Delete") && *n > 0 {
            fail(format!(
                "DELETED A RESOURCE: {n} {op} call(s); onboarding never deletes"
            ));
        }
    }

    // Invalid events: never dropped. Through SQS every copy ends in the dead-letter list with
    // its reason; delivered directly, each is announced as rejected.
    for &i in &x.invalid {
        let o = &e.originals[i];
        for queue in [INSTANCE, APPROVAL, WEB] {
            let sent = e.sqs_sent.get(&(queue, i)).copied().unwrap_or(0);
            let dead = dead_by
                .get(&(queue, i))
                .map_or(0, |d| d.iter().filter(|d| !d.direct).count())
                as u64;
            if dead != sent {
                fail(format!(
                    "LOST INVALID EVENT: {} sent {sent} time(s) to the {queue} queue, {dead} in its dead-letter list",
                    o.label
                ));
            }
        }
        if o.direct {
            let id = o
                .event
                .as_ref()
                .map(|v| v["id"].clone())
                .unwrap_or(Value::Null);
            let n = rejections
                .iter()
                .filter(|v| v["detail"]["requestEventId"] == id)
                .count();
            // The stranded variant may drop a crashed direct delivery: then it is in the
            // target's dead-letter queue instead.
            let dropped = e.stranded
                && [INSTANCE, APPROVAL, WEB].iter().any(|q| {
                    dead_by
                        .get(&(*q, i))
                        .is_some_and(|d| d.iter().any(|d| d.direct))
                });
            if n == 0 && !dropped {
                fail(format!(
                    "UNANNOUNCED INVALID EVENT: {} was delivered directly and never announced as rejected",
                    o.label
                ));
            }
        }
    }
    for d in e.dead_letters {
        if d.last_error.trim().is_empty() {
            fail(format!(
                "DEAD LETTER WITHOUT A REASON: message {} on {}",
                d.message_id, d.queue
            ));
        }
    }
    if e.unsettled > 0 {
        fail(format!(
            "LOST MESSAGES: {} message(s) neither handled nor dead-lettered",
            e.unsettled
        ));
    }
    // The stranded variant drops messages for good: a request whose every message was
    // dropped before the ledger knew it is the archive replay's to make (a key absent from
    // the ledger) or to apply (a newer revision), as a DLQ redrive would.
    let absent_before = x
        .keys
        .keys()
        .filter(|k| {
            !e.ledger_before_replay
                .iter()
                .any(|r| &r.key.to_string() == *k)
        })
        .count() as u64;
    let may_create = if e.stranded { absent_before } else { 0 };
    if e.replay_created > may_create {
        fail(format!(
            "REPLAY CREATED: the archive replay created {} new resource(s){}",
            e.replay_created,
            if e.stranded {
                format!(", more than the {absent_before} key(s) absent from the ledger before it")
            } else {
                String::new()
            }
        ));
    }
    let replay_calls: u64 = e.replay_calls.values().sum();
    if e.terminal_before_replay && replay_calls > 0 && !e.stranded {
        fail(format!(
            "REPLAY NOT A DUPLICATE: every step was finished before the archive replay, yet it made {replay_calls} control-plane call(s) {:?} (a duplicate must make none)",
            e.replay_calls
        ));
    }

    let populations = tallies
        .iter()
        .map(|(p, t)| format!("{p} {} ({} READY, {} FAILED)", t.keys, t.ready, t.failed))
        .collect::<Vec<_>>()
        .join(", ");
    let summary = format!(
        "keys: {} expected ({ready} READY, {failed} FAILED); invalid events: {}; dead-lettered valid requests: {}{}\n\
         \x20 keys by population: {populations}\n\
         \x20 failure re-announcements (a delivery found the failure recorded, not yet announced): {reannounced}; Updated events: {updates} for {} keys\n\
         \x20 not-propagated Conflicts: {} steps retried one, {conflicts_ready} of them READY, {} met one after the grace window (FAILED, as designed){}\n\
         \x20 late roles that appeared in the second half of the window or after it (their step's first AssumeRole came late; FAILED as designed): {}{}\n\
         \x20 revisions population: {} keys ({} instances, {} providers) from {} own revisions; {} update calls (UpdateInstance / UpdateIdentityProvider) applied {} revisions, {} of them announced Updated, {} superseded before their update ended (a newer revision's Updated event covers them), {} keys whose latest revision was dead-lettered (stranded variant)\n\
         \x20 announcements: {} Ready event(s) repeated with the same detail; {} updates recorded as changing the applied state ({} announced), {} refusals, {} drift findings recorded; {} finished step(s) not marked announced at the end; {} READY resources compared with their ledger item\n\
         \x20 departures: {} keys of departed accounts, {} RETIRED ({} announced \"Account Offboarded\", {} re-announcements of the same retirement), {} READY in a reopened generation; {} resource(s) made while the closure was being recorded (a create on its way)\n\
         \x20 findings (reported, not failed): {} origin label(s) calling a resource made during the run pre-existing (or the like){}; {} resource(s) made by a stalled holder after its step was recorded FAILED{}",
        x.keys.len(),
        x.invalid.len(),
        dead_lettered_valid.len(),
        first_five(&dead_lettered_valid),
        updated_by_key.len(),
        conflicted.len(),
        conflicts_late.len(),
        first_five(&conflicts_late),
        roles_late.len(),
        first_five(&roles_late),
        revision_stats.keys,
        revision_stats.instances,
        revision_stats.keys - revision_stats.instances,
        revision_stats.revisions,
        revision_stats.update_calls,
        revision_stats.applied,
        revision_stats.announced,
        revision_stats.superseded,
        revision_stats.dropped,
        outbox.ready_repeats,
        outbox.updates_recorded,
        outbox.updates_announced,
        outbox.refusals_recorded,
        outbox.drift_recorded,
        outbox.unmarked,
        outbox.compared,
        departure_stats.keys,
        departure_stats.retired,
        departure_stats.announced,
        departure_stats.repeats,
        departure_stats.reopened,
        departure_stats.in_flight,
        mislabelled.len(),
        first_five(&mislabelled),
        orphaned.len(),
        first_five(&orphaned)
    );
    (failures, summary)
}

/// Whether a holder of `key` tried to record a resource (a refused completion write) after
/// the step's failure had been written.
fn made_after_failure(writes: &[LedgerWrite], key: &str) -> bool {
    let failed = writes
        .iter()
        .filter(|w| w.key == key && w.applied)
        .filter(|w| matches!(w.kind, WriteKind::FailPermanent | WriteKind::FailCreated))
        .map(|w| w.answered)
        .min();
    failed.is_some_and(|failed| {
        writes.iter().any(|w| {
            w.key == key
                && !w.applied
                && matches!(w.kind, WriteKind::Ready | WriteKind::Created)
                && w.sent > failed
        })
    })
}

/// A key's claims and how its attempts ended, from the ledger writes, timed from its first
/// claim: `claim +0.000s, MemberRoleUnavailable +0.100s, busy +1.2s, ...` (`busy`: a claim
/// that found the step held by another delivery).
fn history(writes: &[LedgerWrite], key: &str) -> String {
    let mine: Vec<&LedgerWrite> = writes.iter().filter(|w| w.key == key).collect();
    let Some(first) = mine.iter().map(|w| w.answered).min() else {
        return "(no write logged)".to_string();
    };
    let mut entries: Vec<(Instant, String)> = mine
        .iter()
        .filter_map(|w| {
            let what = match (w.kind, w.applied, &w.code) {
                (WriteKind::Claim, true, _) => "claim".to_string(),
                (WriteKind::Claim, false, _) if w.seen => match w.found {
                    Some((Status::InProgress, _)) => "busy".to_string(),
                    _ => return None,
                },
                (WriteKind::Release | WriteKind::FailPermanent, true, Some(code)) => code.clone(),
                (WriteKind::Created | WriteKind::Ready, true, _) => format!("{:?}", w.kind),
                _ => return None,
            };
            Some((w.answered, what))
        })
        .collect();
    entries.sort_by_key(|(t, _)| *t);
    let shown: Vec<String> = entries
        .iter()
        .take(20)
        .map(|(t, what)| format!("{what} {}", at(first, *t)))
        .collect();
    let more = entries.len().saturating_sub(shown.len());
    format!(
        "{}{}",
        shown.join(", "),
        if more > 0 {
            format!(", ... {more} more")
        } else {
            String::new()
        }
    )
}

fn population_group(p: Population) -> &'static str {
    match p {
        Population::New => "new",
        Population::LateRole { .. } => "late role",
        Population::PreExistingInstance => "pre-existing instance",
        Population::MatchingProvider => "matching provider",
        Population::ForeignProvider => "foreign provider",
        Population::RoleRefused => "role refused",
        Population::InstanceFails => "instance fails",
        Population::UnknownPortal => "unknown portal",
        Population::Departed => "departed",
        Population::Reopened => "reopened",
    }
}

/// A foreign provider: the failure names it, and it is exactly as its owner made it.
fn check_foreign(
    e: &Evidence<'_>,
    name: &str,
    k: &Expect,
    rec: &Record,
    found: &[(String, String, bool)],
    fail: &mut impl FnMut(String),
) {
    let (portal, provider) = portal_and_name(k);
    let seeded = e
        .emulator_config
        .accounts
        .iter()
        .flat_map(|a| a.portals.iter())
        .filter(|p| p.portal_arn == portal)
        .flat_map(|p| p.identity_providers.iter())
        .find(|p| p.name == provider);
    let Some(seeded) = seeded else {
        fail(format!(
            "PLAN: {name} is in the foreign provider population but its portal has no such provider"
        ));
        return;
    };
    let Some((arn, _, true)) = found.first() else {
        fail(format!(
            "FOREIGN PROVIDER GONE: {name}: the portal no longer holds the provider another team made ({found:?})"
        ));
        return;
    };
    if rec.status == Status::Failed {
        let named = rec
            .last_error
            .as_ref()
            .is_some_and(|r| r.message.contains(arn.as_str()));
        if !named {
            fail(format!(
                "FOREIGN CONFLICT NOT NAMED: {name}: the failure ({:?}) does not name the existing provider {arn}",
                rec.last_error
            ));
        }
    }
    // As the emulator lists it, and as its owner reads it.
    let listed = list(
        e.emulator_state,
        k.key.account_id().unwrap_or_default(),
        "identity_providers",
    )
    .into_iter()
    .find(|p| p["identity_provider_arn"] == arn.as_str());
    let keys: Vec<&str> = seeded.details.keys().map(String::as_str).collect();
    let listed_ok = listed.is_some_and(|p| {
        p["identity_provider_type"] == seeded.provider_type.as_str()
            && p["detail_keys"]
                .as_array()
                .map(|a| {
                    let mut k: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                    k.sort_unstable();
                    k
                })
                .unwrap_or_default()
                == keys
    });
    let read_ok = match e.foreign_now.get(name) {
        Some(Ok(now)) => {
            now.provider_type == seeded.provider_type
                && now.details == seeded.details
                && now.tags.as_ref().is_none_or(BTreeMap::is_empty)
        }
        Some(Err(why)) => {
            fail(format!(
                "FOREIGN PROVIDER UNREADABLE: {name}: GetIdentityProvider {arn}: {why}"
            ));
            true
        }
        None => true,
    };
    if !listed_ok || !read_ok {
        fail(format!(
            "FOREIGN PROVIDER CHANGED: {name}: {arn} is no longer the untagged {} provider with details {keys:?} its owner made (listed: {listed:?}; read: {:?})",
            seeded.provider_type,
            e.foreign_now.get(name).map(|r| r
                .as_ref()
                .map(|p| (&p.provider_type, p.details.keys().collect::<Vec<_>>(), &p.tags)))
        ));
    }
}

/// Whether the step itself shows it was reopened: its retirement kept as history, a request
/// newer than it known (requested, applied or desired), and no longer RETIRED.
fn reopened_per_ledger(r: &onboarding::ledger::Record) -> bool {
    r.status != Status::Retired
        && r.retired_revision.as_ref().is_some_and(|retired| {
            [
                r.requested_revision.as_ref(),
                r.applied_revision.as_ref(),
                r.desired.newest(),
            ]
            .into_iter()
            .flatten()
            .any(|known| known > retired)
        })
}

/// No stale write of any kind, from the log of ledger writes as DynamoDB answered them.
/// Two writes are ordered only when one was answered before the other was sent.
fn check_writes(e: &Evidence<'_>, fail: &mut impl FnMut(String)) {
    let mut by_key: BTreeMap<&str, Vec<&LedgerWrite>> = BTreeMap::new();
    for w in e.writes {
        by_key.entry(w.key.as_str()).or_default().push(w);
        match w.kind {
            WriteKind::Unknown => fail(format!(
                "UNKNOWN LEDGER WRITE: an UpdateItem on {} the replay cannot classify (the ledger's expressions changed: teach chaos::write_info)",
                w.key
            )),
            WriteKind::OperatorRetry => fail(format!(
                "STALE WRITE: an operator's retry of {} at {}; the run makes none",
                w.key,
                at(e.started, w.sent)
            )),
            WriteKind::Repair if w.applied => fail(format!(
                "FALSE DRIFT REPAIR: {} was restarted as a new generation by a drift repair at {}; nothing changes a resource behind the project's back in this run",
                w.key,
                at(e.started, w.sent)
            )),
            _ => {}
        }
    }
    for (key, writes) in by_key {
        let mut applied: Vec<&LedgerWrite> = writes.iter().copied().filter(|w| w.applied).collect();
        applied.sort_by_key(|w| w.answered);
        // A holder's write after another claim took the step (or its update) over.
        for (claim_kind, held) in [
            (WriteKind::Claim, WriteKind::leased as fn(WriteKind) -> bool),
            (WriteKind::UpdateClaim, WriteKind::update_leased),
        ] {
            let claims: Vec<&LedgerWrite> = applied
                .iter()
                .copied()
                .filter(|w| w.kind == claim_kind)
                .collect();
            for w in applied.iter().filter(|w| held(w.kind)) {
                let Some(owner) = &w.owner else { continue };
                let Some(mine) = claims.iter().find(|c| c.owner.as_ref() == Some(owner)) else {
                    continue;
                };
                if let Some(other) = claims.iter().find(|c| {
                    c.owner.as_ref() != Some(owner) && mine.answered < c.sent && c.answered < w.sent
                }) {
                    fail(format!(
                        "STALE WRITE: {key}: {:?} by the holder that claimed it at {} was applied (sent {}) after another delivery had claimed it at {}",
                        w.kind,
                        at(e.started, mine.answered),
                        at(e.started, w.sent),
                        at(e.started, other.answered)
                    ));
                }
            }
        }
        // Each generation (split where a reopening, a repair or a retry starts the next):
        // READY and FAILED are final: one terminal write, then only the announced flag (and,
        // on a READY step, the update writes, the audit's record, a merge of the desired
        // state); RETIRED: only the announced flag, a merge, or the reopening.
        let mut generations: Vec<Vec<&LedgerWrite>> = vec![Vec::new()];
        // A step the ledger shows reopened (its retirement kept as history, a newer request
        // recorded) whose reopening's write the log missed: its first claim after the
        // retirement, or after the generation finished when the retirement's write was
        // missed too (every response of a write lost: the log cannot tell it applied),
        // starts the next generation. A claim cannot apply to a finished or retired step
        // (its condition), so only a new generation explains it.
        let reopened = e
            .ledger
            .iter()
            .any(|r| r.key.to_string() == key && reopened_per_ledger(r));
        let mut ended = false;
        for w in applied {
            let unlogged_reopening = reopened && ended && w.kind == WriteKind::Claim;
            if w.kind.new_generation() || unlogged_reopening {
                generations.push(Vec::new());
                ended = false;
            }
            ended |= w.kind == WriteKind::Retire || w.kind.terminal();
            if let Some(g) = generations.last_mut() {
                g.push(w);
            }
        }
        for applied in generations {
            let terminal: Vec<&LedgerWrite> = applied
                .iter()
                .copied()
                .filter(|w| w.kind.terminal())
                .collect();
            if terminal.len() > 1 {
                fail(format!(
                    "STALE WRITE: {key}: {} writes made it READY or FAILED in one generation ({:?})",
                    terminal.len(),
                    terminal.iter().map(|w| w.kind).collect::<Vec<_>>()
                ));
            }
            if let Some(t) = terminal.first().copied() {
                let ready = matches!(t.kind, WriteKind::Ready | WriteKind::Promote);
                let allowed = |k: WriteKind| {
                    if ready {
                        k.after_ready()
                    } else {
                        k.after_failed()
                    }
                };
                for w in applied
                    .iter()
                    .filter(|w| !allowed(w.kind) && !std::ptr::eq(**w, t) && t.answered < w.sent)
                {
                    fail(format!(
                        "STALE WRITE: {key}: {:?} applied at {} after {:?} had finished the step at {}",
                        w.kind,
                        at(e.started, w.answered),
                        t.kind,
                        at(e.started, t.answered)
                    ));
                }
            }
            if let Some(r) = applied.iter().find(|w| w.kind == WriteKind::Retire) {
                for w in applied
                    .iter()
                    .filter(|w| !w.kind.after_failed() && r.answered < w.sent)
                {
                    fail(format!(
                        "WRITE TO A RETIRED STEP: {key}: {:?} applied at {} after the step was retired at {}",
                        w.kind,
                        at(e.started, w.answered),
                        at(e.started, r.answered)
                    ));
                }
            }
        }
    }
}

/// The calls of `operation` a resource's history shows: entries of one SDK operation call
/// (the same `amz-sdk-invocation-id`: its attempts, retried after a response was lost once
/// the call had committed) count once.
fn update_calls(history: &[Value], operation: &str) -> u64 {
    let mut calls: HashSet<String> = HashSet::new();
    let mut unnamed = 0u64;
    for s in history.iter().filter(|s| s["operation"] == operation) {
        match s["invocation"].as_str() {
            Some(id) => {
                calls.insert(id.to_string());
            }
            None => unnamed += 1,
        }
    }
    calls.len() as u64 + unnamed
}

/// What the revisions population came to, for the report.
#[derive(Default)]
struct RevisionStats {
    keys: u64,
    instances: u64,
    /// Own revisions of those keys.
    revisions: u64,
    /// UpdateInstance / UpdateIdentityProvider calls in the resources' histories.
    update_calls: u64,
    /// Revisions an update brought a resource to (instances: each; providers: the latest).
    applied: u64,
    announced: u64,
    /// Reached by an update that never ended, then superseded by an announced newer one.
    superseded: u64,
    /// Keys whose latest revision the stranded variant dead-lettered (not checked).
    dropped: u64,
}

/// A key of the revisions population: it ends in the state of its latest revision, never
/// went back to an older revision's state, took at most one update call per own revision,
/// and every revision an update applied was announced "<Step> Updated" (or, reached by an
/// update that never ended, superseded by a newer revision that was).
#[allow(clippy::too_many_arguments)]
fn check_revisions(
    e: &Evidence<'_>,
    name: &str,
    k: &Expect,
    revs: &plan::Revisions,
    rec: &Record,
    updated: &[&Value],
    ready: &[&Value],
    stats: &mut RevisionStats,
    fail: &mut impl FnMut(String),
) {
    if rec.status != Status::Ready {
        return; // reported as a wrong outcome above
    }
    stats.keys += 1;
    stats.revisions += revs.own() as u64;
    let Some(latest) = revs.list.iter().rev().find(|r| !r.fields.is_empty()) else {
        return;
    };
    // The stranded variant drops messages for good: when the latest revision was not applied
    // and its message for this step (the archive replay's too) is in a dead-letter list,
    // applying it is a DLQ redrive's to do, as for any other request it drops.
    let latest_applied = rec
        .applied_revision
        .as_ref()
        .is_some_and(|r| r.time() == latest.revision.time());
    if e.stranded
        && !latest_applied
        && e.dead_letters
            .iter()
            .any(|d| d.queue == k.step && d.origin == latest.origin)
    {
        stats.dropped += 1;
        return;
    }
    let account = k.key.account_id().unwrap_or_default();
    let project_keys = revs.tag_keys();
    let project_tags = |tags: &Value| -> BTreeMap<String, String> {
        tags.as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| project_keys.contains(*key))
            .map(|(key, v)| (key.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    };
    // The per-field merge: each tag key the requests name, present with the newest value
    // or absent when the newest request naming it removed it (`null`).
    let wanted_tags: BTreeMap<String, String> = revs
        .wanted_map("tags")
        .into_iter()
        .filter_map(|(key, v)| Some((key, v.as_str()?.to_string())))
        .collect();
    // The revisions an Updated event of the key announced (by the original it names), or a
    // Ready event: a holder that adopted the resource another request's create had made
    // brings it to its own request before the step is first READY, and announces Ready.
    // A CLI replay of a request is the same request (its fields and time) under a new id:
    // whichever of the two a step names, it announced that request.
    let same_request = |a: usize, b: usize| {
        let rev = |o: usize| revs.list.iter().find(|r| r.origin == o);
        a == b
            || rev(a).zip(rev(b)).is_some_and(|(x, y)| {
                x.fields == y.fields && x.revision.time() == y.revision.time()
            })
    };
    let announced = |origin: usize| {
        updated.iter().any(|v| {
            v["detail"]["revision"]["eventId"]
                .as_str()
                .and_then(|id| e.origin_of.get(id))
                .is_some_and(|o| same_request(*o, origin))
        }) || ready.iter().any(|v| {
            v["detail"]["requestEventId"]
                .as_str()
                .and_then(|id| e.origin_of.get(id))
                .is_some_and(|o| same_request(*o, origin))
        })
    };
    for v in updated {
        let known = v["detail"]["revision"]["eventId"]
            .as_str()
            .and_then(|id| e.origin_of.get(id))
            .and_then(|o| revs.index_of(*o))
            .is_some_and(|i| !revs.list[i].fields.is_empty());
        if !known {
            fail(format!(
                "UPDATED BY NO OWN REVISION: {name}: an Updated event names {}, which is none of the key's own requests",
                v["detail"]["revision"]
            ));
        }
    }
    // Each Updated event names the fields it changed, and each really changed: some state
    // of the resource's history differs from the one before it in that field (a provider's
    // details and tags are fingerprinted: its tag keys, or the fingerprint).
    let owner = k.key.account_id().unwrap_or_default();
    let resource_history: Vec<Value> = if k.step == INSTANCE {
        list(e.emulator_state, owner, "instances")
            .into_iter()
            .find(|i| i["organization"] != true)
            .and_then(|i| i["history"].as_array().cloned())
            .unwrap_or_default()
    } else {
        let (portal, provider) = portal_and_name(k);
        list(e.emulator_state, owner, "identity_providers")
            .into_iter()
            .find(|p| p["portal_arn"] == portal && p["identity_provider_name"] == provider)
            .and_then(|p| p["history"].as_array().cloned())
            .unwrap_or_default()
    };
    let differs = |label: &str, a: &Value, b: &Value| -> bool {
        if k.step == INSTANCE {
            match label.split_once('.') {
                Some(("tags", key)) => a["tags"][key] != b["tags"][key],
                _ if label == "name" || label == "tags" => a[label] != b[label],
                _ => a["name"] != b["name"] || a["tags"] != b["tags"],
            }
        } else {
            let has = |s: &Value, key: &str| {
                s["tag_keys"]
                    .as_array()
                    .is_some_and(|keys| keys.iter().any(|k| k == key))
            };
            let fingerprint = a["fingerprint"] != b["fingerprint"];
            match label.split_once('.') {
                Some(("tags", key)) => has(a, key) != has(b, key) || fingerprint,
                _ => fingerprint,
            }
        }
    };
    for v in updated {
        let changed: Vec<&str> = v["detail"]["changed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if changed.is_empty() {
            fail(format!(
                "UPDATED NOTHING: {name}: an Updated event names no changed field (a no-op is not announced): {}",
                v["detail"]
            ));
        }
        for label in changed {
            let really = resource_history
                .windows(2)
                .any(|pair| differs(label, &pair[0], &pair[1]));
            if !really {
                fail(format!(
                    "UPDATED A FIELD THAT DID NOT CHANGE: {name}: an Updated event (revision {}) names {label:?}, which no state of the resource's history changed",
                    v["detail"]["revision"]
                ));
            }
        }
    }
    // The ledger holds the latest revision as applied (an archive replay of it keeps its time).
    let applied_time = rec.applied_revision.as_ref().map(|r| r.time().to_string());
    if applied_time.as_deref() != Some(latest.revision.time()) {
        fail(format!(
            "LEDGER NOT AT THE LATEST REVISION: {name}: applied revision {:?}; the latest is {}",
            rec.applied_revision.as_ref().map(|r| r.as_str()),
            latest.revision
        ));
    }
    let describe = |h: &[Value]| -> String {
        h.iter()
            .map(|s| {
                format!(
                    "v{} {} {}",
                    s["version"],
                    s["operation"].as_str().unwrap_or_default(),
                    if k.step == INSTANCE {
                        format!("{}", s["name"])
                    } else {
                        s["fingerprint"].as_str().unwrap_or_default().to_string()
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if k.step == INSTANCE {
        stats.instances += 1;
        let Some(now) = list(e.emulator_state, account, "instances")
            .into_iter()
            .find(|i| i["organization"] != true)
        else {
            return; // reported as a missing resource above
        };
        let wanted_name = revs.wanted.get("name").cloned().unwrap_or(Value::Null);
        let tags_now = project_tags(&now["tags"]);
        if now["name"] != wanted_name || tags_now != wanted_tags {
            fail(format!(
                "NOT THE PER-FIELD MERGE: {name}: the instance is named {} with the project's tags {tags_now:?}; the merge of its requests (latest {}, {}) wants {wanted_name} and {wanted_tags:?}",
                now["name"],
                latest.revision,
                e.originals[latest.origin].label
            ));
        }
        let history: Vec<Value> = now["history"].as_array().cloned().unwrap_or_default();
        // Each state by the revision whose name it bears (the Control Tower event's create
        // names none: the oldest).
        let mut reached: Option<usize> = None;
        let mut rolled_back = false;
        let updates = update_calls(&history, "UpdateInstance");
        for s in &history {
            let op = s["operation"].as_str().unwrap_or_default();
            let index = if s["name"].is_null() {
                Some(0)
            } else {
                revs.list
                    .iter()
                    .position(|r| r.fields.get("name") == Some(&s["name"]))
            };
            let Some(index) = index else {
                fail(format!(
                    "STATE OF NO REVISION: {name}: history entry v{} ({op}) names the instance {}, which no request of the key asks for; history: {}",
                    s["version"], s["name"], describe(&history)
                ));
                continue;
            };
            match reached {
                Some(r) if index < r && rolled_back => {}
                Some(r) if index < r => {
                    rolled_back = true;
                    fail(format!(
                    "ROLLED BACK: {name}: history entry v{} ({op}) is the state of revision {} ({}) after revision {} ({}) had been reached; history: {}",
                    s["version"],
                    revs.list[index].revision,
                    e.originals[revs.list[index].origin].label,
                    revs.list[r].revision,
                    e.originals[revs.list[r].origin].label,
                    describe(&history)
                ))
                }
                Some(r) if index == r => {}
                _ => {
                    reached = Some(index);
                    // Reached by an update: the revision was applied, and announced; or an
                    // unfinished update's state, superseded by a newer revision whose update
                    // announced the resource's state (its changes counted from the last
                    // recorded state, so they include this one's).
                    if op != "CreateInstance" && !revs.list[index].fields.is_empty() {
                        stats.applied += 1;
                        if announced(revs.list[index].origin) {
                            stats.announced += 1;
                        } else if revs.list[index + 1..]
                            .iter()
                            .any(|later| announced(later.origin))
                        {
                            stats.superseded += 1;
                        } else {
                            fail(format!(
                                "UPDATE NEVER ANNOUNCED: {name}: revision {} ({}) was applied ({op}, history entry v{}) but no \"Identity Center Instance Updated\" (nor Ready) event names it; Updated events: {:?}",
                                revs.list[index].revision,
                                e.originals[revs.list[index].origin].label,
                                s["version"],
                                updated.iter().map(|v| &v["detail"]["revision"]).collect::<Vec<_>>()
                            ));
                        }
                    }
                }
            }
        }
        stats.update_calls += updates;
        if updates > revs.own() as u64 {
            fail(format!(
                "TOO MANY UPDATES: {name}: {updates} UpdateInstance calls for {} own revisions; history: {}",
                revs.own(),
                describe(&history)
            ));
        }
        return;
    }
    // A provider: its details and tags are fingerprinted in the emulator's state; read
    // through the SDK.
    let (portal, provider) = portal_and_name(k);
    let Some(now) = list(e.emulator_state, account, "identity_providers")
        .into_iter()
        .find(|p| p["portal_arn"] == portal && p["identity_provider_name"] == provider)
    else {
        return; // reported as a missing resource above
    };
    let mut wanted_details: BTreeMap<String, String> = revs
        .wanted_map("details")
        .into_iter()
        .filter_map(|(key, v)| Some((key, v.as_str()?.to_string())))
        .collect();
    if let Some(secret) = revs.wanted.get("secretId").and_then(Value::as_str) {
        let value = plan::SECRETS
            .iter()
            .find(|(id, _)| *id == secret)
            .map_or("?", |(_, v)| *v);
        wanted_details.insert("client_secret".to_string(), value.to_string());
    }
    let wanted_type = revs
        .wanted
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match e.foreign_now.get(name) {
        Some(Ok(read)) => {
            let tags_now = read.tags.as_ref().map(|t| {
                t.iter()
                    .filter(|(key, _)| project_keys.contains(*key))
                    .map(|(key, v)| (key.clone(), v.clone()))
                    .collect::<BTreeMap<_, _>>()
            });
            if read.provider_type != wanted_type
                || read.details != wanted_details
                || tags_now.as_ref() != Some(&wanted_tags)
            {
                let hide = |d: &BTreeMap<String, String>| {
                    d.iter()
                        .map(|(key, v)| {
                            let shown = if key == "client_secret" {
                                format!(
                                    "secret of {} chars ending {:?}",
                                    v.len(),
                                    &v[v.len().saturating_sub(8)..]
                                )
                            } else {
                                v.clone()
                            };
                            (key.clone(), shown)
                        })
                        .collect::<BTreeMap<_, _>>()
                };
                fail(format!(
                    "NOT THE PER-FIELD MERGE: {name}: the provider is {} {:?} with the project's tags {tags_now:?}; the merge of its requests (latest {}, {}) wants {wanted_type} {:?} and {wanted_tags:?}",
                    read.provider_type,
                    hide(&read.details),
                    latest.revision,
                    e.originals[latest.origin].label,
                    hide(&wanted_details)
                ));
            }
        }
        Some(Err(why)) => fail(format!(
            "PROVIDER UNREADABLE: {name}: GetIdentityProvider: {why}"
        )),
        None => fail(format!(
            "PROVIDER UNREAD: {name}: the run did not read the provider back"
        )),
    }
    let history: Vec<Value> = now["history"].as_array().cloned().unwrap_or_default();
    let fingerprint = |s: &Value| s["fingerprint"].as_str().unwrap_or_default().to_string();
    // Each revision's details differ, so a state left behind never comes back.
    let mut left: HashSet<String> = HashSet::new();
    for pair in history.windows(2) {
        let (before, after) = (fingerprint(&pair[0]), fingerprint(&pair[1]));
        if before != after {
            left.insert(before);
            if left.contains(&after) {
                fail(format!(
                    "ROLLED BACK: {name}: history entry v{} ({}) returns to a state the provider had left (fingerprint {after}); history: {}",
                    pair[1]["version"],
                    pair[1]["operation"].as_str().unwrap_or_default(),
                    describe(&history)
                ));
            }
        }
    }
    let updates = update_calls(&history, "UpdateIdentityProvider");
    stats.update_calls += updates;
    if updates > revs.own() as u64 {
        fail(format!(
            "TOO MANY UPDATES: {name}: {updates} UpdateIdentityProvider calls for {} own revisions; history: {}",
            revs.own(),
            describe(&history)
        ));
    }
    // Changed after its create: the latest revision was applied by an update, and announced.
    let changed = history
        .first()
        .zip(history.last())
        .is_some_and(|(a, b)| fingerprint(a) != fingerprint(b));
    if changed {
        stats.applied += 1;
        if announced(latest.origin) {
            stats.announced += 1;
        } else {
            fail(format!(
                "UPDATE NEVER ANNOUNCED: {name}: the provider was updated to its latest revision {} ({}) but no \"Web Identity Provider Updated\" (nor Ready) event names it; Updated events: {:?}",
                latest.revision,
                e.originals[latest.origin].label,
                updated.iter().map(|v| &v["detail"]["revision"]).collect::<Vec<_>>()
            ));
        }
    }
}

/// The first five lines of a finding list, each on its own indented line of the report.
fn first_five(items: &[String]) -> String {
    items.iter().take(5).map(|d| format!("\n    {d}")).collect()
}

/// What the announcement checks found, for the report.
#[derive(Default)]
struct OutboxStats {
    /// Ready events repeated with the same detail (one outcome announced again: at least once).
    ready_repeats: u64,
    /// Updates recorded as changing the applied state, and those announced.
    updates_recorded: u64,
    updates_announced: u64,
    refusals_recorded: u64,
    drift_recorded: u64,
    /// Finished steps whose outcome is recorded as not yet announced at the end.
    unmarked: u64,
    /// READY steps whose resource was compared with the ledger's applied state.
    compared: u64,
}

/// The detail-types of the project's events whose kind the verdict knows.
fn known_detail_type(detail_type: &str) -> bool {
    detail_type.ends_with(" Ready")
        || detail_type.ends_with(" Updated")
        || detail_type == STEP_FAILED_DETAIL_TYPE
        || detail_type == DRIFT_DETECTED_DETAIL_TYPE
        || detail_type == ACCOUNT_OFFBOARDED_DETAIL_TYPE
}

/// The state writes of a key that may have been applied just before `w`: sent before `w` was
/// answered, and with no other state write certainly between them (answered after it was
/// sent, and before `w` was sent). The log orders two writes only when one was answered
/// before the other was sent: an answer can reach its task late (a loaded scheduler), after
/// a later write's answer, so the order of answers alone is not the order DynamoDB applied.
fn immediate_predecessors<'a>(w: &LedgerWrite, all: &[&'a LedgerWrite]) -> Vec<&'a LedgerWrite> {
    let others = || all.iter().copied().filter(|x| !std::ptr::eq(*x, w));
    others()
        .filter(|x| x.sent < w.answered)
        .filter(|x| {
            !others().any(|y| !std::ptr::eq(y, *x) && x.answered < y.sent && y.answered < w.sent)
        })
        .collect()
}

/// Every recorded outcome is announced at least once (from the log of applied ledger
/// writes: updates that changed the applied state, refused updates, drift), with at most
/// one Ready per generation (the same Ready again is a re-announcement; two different ones
/// are two announcements of one outcome), nothing drifts in a run where nothing changes
/// resources behind the project's back, and every READY step's resource holds exactly the
/// applied state its ledger item records.
#[allow(clippy::too_many_arguments)]
fn check_outbox(
    e: &Evidence<'_>,
    ledger: &HashMap<String, &Record>,
    ready_by_key: &HashMap<&str, Vec<&Value>>,
    updated_by_key: &HashMap<&str, Vec<&Value>>,
    fail: &mut impl FnMut(String),
) -> OutboxStats {
    let x = e.expect;
    let mut stats = OutboxStats::default();
    // At most one Ready per generation (a generation is its ClientToken).
    for (name, events) in ready_by_key {
        let mut by_token: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for v in events {
            by_token
                .entry(v["detail"]["clientToken"].as_str().unwrap_or_default())
                .or_default()
                .push(v);
        }
        for (token, events) in by_token {
            let distinct: std::collections::BTreeSet<String> =
                events.iter().map(|v| v["detail"].to_string()).collect();
            stats.ready_repeats += (events.len() - distinct.len()) as u64;
            if distinct.len() > 1 {
                fail(format!(
                    "MORE THAN ONE READY IN A GENERATION: {name}: {} different Ready events for the generation of token {token}: {}",
                    distinct.len(),
                    events
                        .iter()
                        .map(|v| format!(
                            "(request {}, origin {}, {})",
                            v["detail"]["requestEventId"],
                            v["detail"]["origin"],
                            v["detail"]["resourceArn"]
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    // Nothing is changed behind the project's back in this run: any drift is a false one.
    for v in e.emitted {
        if v["detail-type"] == DRIFT_DETECTED_DETAIL_TYPE {
            fail(format!(
                "FALSE DRIFT: an \"Onboarding Drift Detected\" event in a run where nothing changes a resource behind the project's back: {}",
                v["detail"]
            ));
        }
    }
    // The events that are neither Ready, Updated, Failed, drift nor offboarding, by step:
    // a refused update's own detail-type among them.
    let refusals: Vec<&Value> = e
        .emitted
        .iter()
        .filter(|v| !known_detail_type(v["detail-type"].as_str().unwrap_or_default()))
        .collect();
    let mut by_key: BTreeMap<&str, Vec<&LedgerWrite>> = BTreeMap::new();
    for w in e.writes.iter().filter(|w| w.applied) {
        by_key.entry(w.key.as_str()).or_default().push(w);
    }
    for (key, mut writes) in by_key {
        writes.sort_by_key(|w| w.answered);
        let k = x.keys.get(key);
        let origins: HashSet<usize> = k
            .map(|k| k.origins.iter().copied().collect())
            .unwrap_or_default();
        let names_key = |v: &Value| {
            let step_ok = k.is_some_and(|k| v["detail"]["step"] == k.step);
            let ids = [
                v["detail"]["requestEventId"].as_str(),
                v["detail"]["revision"]["eventId"].as_str(),
            ];
            step_ok
                && ids
                    .iter()
                    .flatten()
                    .any(|id| e.origin_of.get(*id).is_some_and(|o| origins.contains(o)))
        };
        let state_of = |w: &LedgerWrite| {
            w.state
                .as_deref()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
        };
        let state_writes: Vec<&LedgerWrite> = writes
            .iter()
            .copied()
            .filter(|w| {
                matches!(
                    w.kind,
                    WriteKind::Ready | WriteKind::Created | WriteKind::UpdateApplied
                )
            })
            .collect();
        for w in writes {
            match w.kind {
                WriteKind::UpdateApplied => {
                    let state = state_of(w);
                    let changed = state.is_some()
                        && immediate_predecessors(w, &state_writes)
                            .iter()
                            .all(|p| state_of(p) != state);
                    if !changed {
                        continue;
                    }
                    stats.updates_recorded += 1;
                    let event_id = w.revision.as_deref().map(|r| {
                        onboarding::revision::Revision::parse(r)
                            .event_id()
                            .to_string()
                    });
                    let updated = updated_by_key.get(key).cloned().unwrap_or_default();
                    let announced = updated.iter().any(|v| match &event_id {
                        Some(id) => v["detail"]["revision"]["eventId"] == id.as_str(),
                        None => true,
                    });
                    if announced {
                        stats.updates_announced += 1;
                    } else {
                        fail(format!(
                            "RECORDED, NEVER ANNOUNCED: {key}: an update to revision {:?} was recorded (the applied state changed) but no \"Updated\" event names it; Updated events: {:?}",
                            w.revision,
                            updated.iter().map(|v| &v["detail"]["revision"]).collect::<Vec<_>>()
                        ));
                    }
                }
                WriteKind::UpdateRefused => {
                    stats.refusals_recorded += 1;
                    if !refusals.iter().any(|v| names_key(v)) {
                        fail(format!(
                            "REFUSAL NEVER ANNOUNCED: {key}: an update (revision {:?}, {}) was recorded refused, but no event of a refusal's own detail-type names it (a READY step's refused update is not \"Onboarding Step Failed\")",
                            w.revision,
                            w.code.as_deref().unwrap_or("no code")
                        ));
                    }
                }
                WriteKind::Audit if w.drift.is_some() => {
                    stats.drift_recorded += 1;
                    let account = k.and_then(|k| k.key.account_id());
                    let announced = e.emitted.iter().any(|v| {
                        v["detail-type"] == DRIFT_DETECTED_DETAIL_TYPE
                            && k.is_some_and(|k| v["detail"]["step"] == k.step)
                            && (account.is_none() || v["detail"]["accountId"].as_str() == account)
                    });
                    if !announced {
                        fail(format!(
                            "RECORDED, NEVER ANNOUNCED: {key}: the audit recorded drift {:?} but no \"Onboarding Drift Detected\" event names the step",
                            w.drift
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    // The end: finished steps recorded as announced (reported), and every READY step's
    // resource exactly in the applied state its item records.
    for (name, k) in &x.keys {
        let Some(rec) = ledger.get(name) else {
            continue;
        };
        if matches!(rec.status, Status::Ready | Status::Failed | Status::Retired) && !rec.announced
        {
            stats.unmarked += 1;
        }
        if rec.status != Status::Ready {
            continue;
        }
        let Some(applied) = &rec.state else { continue };
        let account = k.key.account_id().unwrap_or_default();
        let mut differs = Vec::new();
        if k.step == INSTANCE {
            let Some(now) = list(e.emulator_state, account, "instances")
                .into_iter()
                .find(|i| i["organization"] != true)
            else {
                continue;
            };
            stats.compared += 1;
            if let Some(name_wanted) = applied.get("name") {
                if &now["name"] != name_wanted {
                    differs.push(format!("name {} (ledger {name_wanted})", now["name"]));
                }
            }
            compare_map(applied.get("tags"), &now["tags"], "tags", &mut differs);
        } else if k.step == WEB {
            let Some(Ok(now)) = e.foreign_now.get(name) else {
                continue;
            };
            stats.compared += 1;
            if let Some(t) = applied.get("type").and_then(Value::as_str) {
                if now.provider_type != t {
                    differs.push(format!("type {} (ledger {t})", now.provider_type));
                }
            }
            let details: serde_json::Map<String, Value> = now
                .details
                .iter()
                .filter(|(key, _)| key.as_str() != "client_secret")
                .map(|(key, v)| (key.clone(), Value::from(v.as_str())))
                .collect();
            compare_map(
                applied.get("details"),
                &Value::Object(details),
                "details",
                &mut differs,
            );
            if let Some(secret) = applied.get("secretId").and_then(Value::as_str) {
                let want = plan::SECRETS
                    .iter()
                    .find(|(id, _)| *id == secret)
                    .map(|(_, v)| *v);
                if want.is_some() && now.details.get("client_secret").map(String::as_str) != want {
                    differs.push(format!("the client secret is not the value of {secret}"));
                }
            }
            match &now.tags {
                Some(tags) => {
                    let tags: serde_json::Map<String, Value> = tags
                        .iter()
                        .map(|(key, v)| (key.clone(), Value::from(v.as_str())))
                        .collect();
                    compare_map(
                        applied.get("tags"),
                        &Value::Object(tags),
                        "tags",
                        &mut differs,
                    );
                }
                None if applied.get("tags").is_some() => {
                    differs.push("tags unreadable".to_string())
                }
                None => {}
            }
        }
        if !differs.is_empty() {
            fail(format!(
                "RESOURCE DIFFERS FROM THE LEDGER: {name} ({}) is READY with applied state {} (revision {:?}) but its resource has {}",
                k.population.name(),
                Value::Object(applied.clone()),
                rec.applied_revision.as_ref().map(|r| r.as_str()),
                differs.join(", ")
            ));
        }
    }
    stats
}

/// Each key of the recorded map `recorded` (a JSON null: the key must be absent) against
/// the resource's map `now`.
fn compare_map(recorded: Option<&Value>, now: &Value, what: &str, differs: &mut Vec<String>) {
    let Some(recorded) = recorded.and_then(Value::as_object) else {
        return;
    };
    for (key, want) in recorded {
        let have = now.get(key).filter(|v| !v.is_null());
        match (want.is_null(), have) {
            (true, Some(have)) => differs.push(format!("{what}.{key} = {have} (ledger: removed)")),
            (false, None) => differs.push(format!("{what}.{key} absent (ledger {want})")),
            (false, Some(have)) if have != want => {
                differs.push(format!("{what}.{key} = {have} (ledger {want})"))
            }
            _ => {}
        }
    }
}

/// What the closure population came to, for the report.
#[derive(Default)]
struct DepartureStats {
    keys: u64,
    retired: u64,
    announced: u64,
    repeats: u64,
    reopened: u64,
    in_flight: u64,
}

/// How long after the closure was recorded a create may still land: one on its way when
/// the retirement was written (no fence reaches a call already sent). A holder that had
/// claimed the step before may create until its lease ends.
const IN_FLIGHT: Duration = Duration::from_secs(1);

/// Epoch milliseconds of `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (the emulator's history times).
fn epoch_ms_of(iso: &str) -> Option<u64> {
    let b = iso.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| iso.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let millis = if b.get(19) == Some(&b'.') {
        n(20..23)?
    } else {
        0
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + millis;
    u64::try_from(ms).ok()
}

/// A key of a departed account. RETIRED: by one of the account's departures, announced
/// "Account Offboarded" (the same retirement each time it is announced again), no failure
/// announced that was not recorded before the retirement, and no resource of the key made
/// after the account's closure was recorded (beyond a create already on its way). A key
/// that was never retired announces no offboarding; a reopened one is READY (checked with
/// every key: one resource, its generation's Ready).
/// The logged writes of step `name`, in the order their answers came, for a failure message.
fn writes_of(e: &Evidence<'_>, name: &str) -> String {
    e.writes
        .iter()
        .filter(|w| w.key == name)
        .map(|w| {
            format!(
                "{:?}{}",
                w.kind,
                if w.applied { "" } else { "(not applied)" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[allow(clippy::too_many_arguments)]
fn check_departure(
    e: &Evidence<'_>,
    name: &str,
    k: &Expect,
    rec: &Record,
    found: &[(String, String, bool)],
    step_failures: &[&Value],
    stats: &mut DepartureStats,
    fail: &mut impl FnMut(String),
) {
    if k.departures.is_empty() {
        return;
    }
    stats.keys += 1;
    let account = k.key.account_id().unwrap_or_default();
    let offboarded: Vec<&Value> = e
        .emitted
        .iter()
        .filter(|v| {
            v["detail-type"] == ACCOUNT_OFFBOARDED_DETAIL_TYPE
                && v["detail"]["step"] == k.step
                && v["detail"]["accountId"] == account
                && match (
                    v["detail"]["resourceArn"].as_str(),
                    rec.resource_arn.as_deref(),
                ) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        })
        .collect();
    let retires: Vec<&LedgerWrite> = e
        .writes
        .iter()
        .filter(|w| w.applied && w.kind == WriteKind::Retire && w.key == name)
        .collect();
    let wall = |t: Instant| {
        let since = t.saturating_duration_since(e.started);
        e.started_at
            .checked_add(since)
            .and_then(|w| w.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64)
    };
    // A retirement is recorded if a logged write made it or the step keeps it as history
    // (a write whose log entry the harness could not tell applied, a reopened step).
    if retires.is_empty() && rec.retired.is_none() && !offboarded.is_empty() {
        fail(format!(
            "OFFBOARDED WITHOUT A RETIREMENT: {name} ({}) was never recorded RETIRED, yet {} \"Account Offboarded\" event(s) name it: {}; its writes: {}",
            k.population.name(),
            offboarded.len(),
            offboarded[0]["detail"],
            writes_of(e, name)
        ));
    }
    if rec.status == Status::Retired {
        stats.retired += 1;
        // By one of the account's departures, or by its archive replay (the same event at
        // its own time, under a new id).
        let by_departure = rec.retired_revision.as_ref().is_some_and(|r| {
            let origin = e.origin_of.get(r.event_id());
            k.departures.iter().any(|(i, d)| {
                d.time() == r.time() && (d.event_id() == r.event_id() || origin == Some(i))
            })
        });
        if !by_departure {
            fail(format!(
                "RETIRED BY NO DEPARTURE: {name} is RETIRED at revision {:?}, none of its account's departures ({})",
                rec.retired_revision.as_ref().map(|r| r.as_str()),
                k.departures
                    .iter()
                    .map(|(i, r)| format!("{r} from {}", e.originals[*i].label))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if offboarded.is_empty() {
            fail(format!(
                "RETIREMENT NEVER ANNOUNCED: {name} ({}) is RETIRED ({:?}, marked announced: {}) but no \"Account Offboarded\" event names it; its writes: {}",
                k.population.name(),
                rec.retired,
                rec.announced,
                writes_of(e, name)
            ));
        } else {
            stats.announced += 1;
            let distinct: std::collections::BTreeSet<String> = offboarded
                .iter()
                .map(|v| v["detail"]["retired"].to_string())
                .collect();
            stats.repeats += (offboarded.len() - distinct.len()) as u64;
            if distinct.len() > 1 {
                fail(format!(
                    "RETIREMENT ANNOUNCED MORE THAN ONCE: {name}: {} \"Account Offboarded\" events announce {} different retirements: {}",
                    offboarded.len(),
                    distinct.len(),
                    distinct.into_iter().collect::<Vec<_>>().join(" / ")
                ));
            }
        }
        // A failure announced for the step must have been recorded before it was retired.
        let retired_at = retires.iter().map(|w| w.answered).min();
        let failed_before = e.writes.iter().any(|w| {
            w.applied
                && w.key == name
                && matches!(w.kind, WriteKind::FailPermanent | WriteKind::FailCreated)
                && retired_at.is_some_and(|r| w.answered < r)
        });
        if !step_failures.is_empty() && !failed_before {
            fail(format!(
                "FAILURE ANNOUNCED FOR A RETIRED STEP: {name} ({}) is RETIRED and no failure was recorded before its retirement, yet {} \"Onboarding Step Failed\" event(s) name it ({})",
                k.population.name(),
                step_failures.len(),
                step_failures[0]["detail"]["reason"]["code"]
            ));
        }
    }
    if rec.status == Status::Ready && rec.generation > 0 {
        stats.reopened += 1;
    }
    // Nothing made after the account's closure was recorded by the step's function (its
    // first retirement of a step of this kind: each function learns of the departure from
    // its own delivery), unless a request newer than the closure asks for the step.
    if k.population != Population::Departed {
        return;
    }
    let kind = StepKeyOf(name).kind();
    let closed = e
        .writes
        .iter()
        .filter(|w| {
            w.applied
                && w.kind == WriteKind::Retire
                && StepKeyOf(&w.key).account() == Some(account)
                && StepKeyOf(&w.key).kind() == kind
        })
        .map(|w| w.answered)
        .min();
    let Some(closed) = closed else { return };
    let closed_ms = wall(closed);
    for (arn, _, seeded) in found {
        if *seeded {
            continue;
        }
        let made = e.emulator_state["history"][arn.as_str()]
            .as_array()
            .and_then(|h| {
                h.iter().find(|s| {
                    s["operation"]
                        .as_str()
                        .is_some_and(|o| o.starts_with("Create"))
                })
            })
            .and_then(|s| s["at"].as_str())
            .and_then(epoch_ms_of);
        let Some(made) = made else { continue };
        // A holder that acquired the step before the closure was recorded may create within
        // its lease: it learns of the retirement only when its fenced completion is refused.
        let held_from = e
            .writes
            .iter()
            .filter(|w| {
                w.applied && w.kind == WriteKind::Claim && w.key == name && w.answered <= closed
            })
            .map(|w| wall(w.answered))
            .max();
        let on_its_way =
            held_from.is_some_and(|claimed| made <= claimed + super::LEASE.as_millis() as u64);
        if made > closed_ms + IN_FLIGHT.as_millis() as u64 && !on_its_way {
            fail(format!(
                "CREATED AFTER THE CLOSURE WAS RECORDED: {name} ({}): {arn} was made {:.3}s after the account's closure was recorded (the departure is newer than every request for the step)",
                k.population.name(),
                (made - closed_ms) as f64 / 1000.0
            ));
        } else if made > closed_ms {
            stats.in_flight += 1;
        }
    }
}

/// The account of a logged write's key (`account#<id>/<step>`).
struct StepKeyOf<'a>(&'a str);

impl<'a> StepKeyOf<'a> {
    fn account(&self) -> Option<&str> {
        self.0
            .strip_prefix("account#")
            .and_then(|rest| rest.split('/').next())
    }

    /// The step's name (`web-identity-provider` of `.../web-identity-provider#<portal>#<name>`).
    fn kind(&self) -> &'a str {
        let step = self.0.split_once('/').map_or(self.0, |(_, step)| step);
        step.split_once('#').map_or(step, |(kind, _)| kind)
    }
}
