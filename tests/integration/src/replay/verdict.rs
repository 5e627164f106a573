//! The verdict, computed from what the stand-ins hold at the end, never from the harness's
//! own view of what it did: the emulator's resources, a full scan of the ledger, the events
//! captured from the bus, and the queues' dead-letter lists.
//!
//! What each request should come to is derived from the request itself (decoded with the
//! project's decoder, planned with the steps' key rules) and the emulator organization:
//! a healthy account ends READY; a refused role, a failing instance or an unknown portal
//! ends FAILED with a reason.

use std::collections::{BTreeMap, HashMap, HashSet};

use identity_emulator::Config as EmulatorConfig;
use onboarding::events::{decode_body, Accept, Decoded};
use onboarding::ledger::{Record, Status, StepKey};
use serde_json::Value;

use super::plan::Original;
use super::queue::DeadLetter;

pub const INSTANCE: &str = "identity-center-instance";
pub const APPROVAL: &str = "approval-identity-source";
pub const WEB: &str = "web-identity-provider";

pub fn ready_detail_type(step: &str) -> &'static str {
    match step {
        INSTANCE => "Identity Center Instance Ready",
        APPROVAL => "Approval Identity Source Ready",
        _ => "Web Identity Provider Ready",
    }
}

/// What one key must end as.
#[derive(Debug)]
pub struct Expect {
    pub key: StepKey,
    /// The function (queue) owning the step.
    pub step: &'static str,
    pub want: Status,
    /// Why it must fail, when it must.
    pub why: Option<&'static str>,
    pub origins: Vec<usize>,
}

/// Everything the verdict looks at.
pub struct Evidence<'a> {
    pub seed: u64,
    pub originals: &'a [Original],
    pub emulator_config: &'a EmulatorConfig,
    pub emulator_state: &'a Value,
    pub ledger: &'a [Record],
    pub emitted: &'a [Value],
    pub dead_letters: &'a [DeadLetter],
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
}

/// The expected keys of every decodable request, and the indexes of invalid events.
pub fn expectations(
    originals: &[Original],
    config: &EmulatorConfig,
) -> (BTreeMap<String, Expect>, Vec<usize>) {
    let accept = Accept::default();
    let refused = |account: &str| {
        config
            .accounts
            .iter()
            .any(|a| a.account_id == account && !a.refused_roles.is_empty())
    };
    let failing = |account: &str| {
        config
            .accounts
            .iter()
            .any(|a| a.account_id == account && a.instance_failure.is_some())
    };
    let portal_exists = |arn: &str| {
        config
            .accounts
            .iter()
            .any(|a| a.portals.iter().any(|p| p.portal_arn == arn))
    };
    let mut keys: BTreeMap<String, Expect> = BTreeMap::new();
    let mut invalid = Vec::new();
    let mut add = |key: StepKey, step, want, why, origin| {
        keys.entry(key.to_string())
            .or_insert_with(|| Expect {
                key,
                step,
                want,
                why,
                origins: Vec::new(),
            })
            .origins
            .push(origin);
    };
    for (i, o) in originals.iter().enumerate() {
        match decode_body(&o.body, &accept) {
            Ok(Decoded::Request(r)) => {
                let account = r.account_id.as_str();
                let (want, why) = if refused(account) {
                    (Status::Failed, Some("the member role is refused"))
                } else if failing(account) {
                    (Status::Failed, Some("instance creation fails"))
                } else {
                    (Status::Ready, None)
                };
                add(StepKey::account(account, INSTANCE), INSTANCE, want, why, i);
                add(
                    StepKey::org(config.organization_instance_arn(), APPROVAL),
                    APPROVAL,
                    Status::Ready,
                    None,
                    i,
                );
                if let Some(p) = &r.web_identity_provider {
                    let (want, why) = if refused(&p.portal_account_id) {
                        (Status::Failed, Some("the member role is refused"))
                    } else if !portal_exists(&p.portal_arn) {
                        (Status::Failed, Some("the portal does not exist"))
                    } else {
                        (Status::Ready, None)
                    };
                    let step = format!("{WEB}#{}#{}", p.portal_arn, p.provider_name);
                    add(
                        StepKey::account(&p.portal_account_id, &step),
                        WEB,
                        want,
                        why,
                        i,
                    );
                }
            }
            Ok(Decoded::Ignored { .. }) => {}
            Err(_) => invalid.push(i),
        }
    }
    (keys, invalid)
}

fn list<'v>(state: &'v Value, account: &str, kind: &str) -> Vec<&'v Value> {
    state["accounts"][account][kind]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Every violation, each naming the key, what was expected, what was found and the seed.
pub fn check(e: &Evidence<'_>) -> (Vec<String>, String) {
    let (keys, invalid) = expectations(e.originals, e.emulator_config);
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
    let ready_events: Vec<&Value> = e
        .emitted
        .iter()
        .filter(|v| {
            v["detail-type"]
                .as_str()
                .is_some_and(|t| t.ends_with(" Ready"))
        })
        .collect();
    let failed_events: Vec<&Value> = e
        .emitted
        .iter()
        .filter(|v| v["detail-type"] == "Onboarding Step Failed")
        .collect();
    let mut dead_lettered_valid = Vec::new();
    let mut ready = 0;
    let mut failed = 0;

    for (name, x) in &keys {
        let account = x.key.account_id().unwrap_or_default();
        let dead: Vec<&DeadLetter> = x
            .origins
            .iter()
            .flat_map(|o| dead_by.get(&(x.step, *o)).cloned().unwrap_or_default())
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
                    "LOST: {name} (from {}) has no ledger item and no dead-lettered message; expected {}",
                    e.originals[x.origins[0]].label, x.want
                ));
            }
            continue;
        };
        match rec.status {
            Status::InProgress | Status::Created => {
                fail(format!(
                    "STUCK: {name} is {} (attempt {}, lease owner {:?}, last error {:?}) after every lease expired; expected {}",
                    rec.status, rec.attempt, rec.lease_owner, rec.last_error, x.want
                ));
                continue;
            }
            s if s != x.want => {
                fail(format!(
                    "WRONG OUTCOME: {name} (from {}) is {s} with last error {:?}; expected {}{}",
                    e.originals[x.origins[0]].label,
                    rec.last_error,
                    x.want,
                    x.why.map(|w| format!(" ({w})")).unwrap_or_default()
                ));
            }
            _ => {}
        }
        let arn = rec.resource_arn.as_deref();
        // Exactly one resource per key, and it is the one the ledger names.
        let pair = |v: &Value, arn: &str, status: &str| {
            (
                v[arn].as_str().unwrap_or("").to_string(),
                v[status].as_str().unwrap_or("ACTIVE").to_string(),
            )
        };
        let found: Vec<(String, String)> = match x.step {
            INSTANCE => list(state, account, "instances")
                .into_iter()
                .filter(|i| i["organization"] != true)
                .map(|i| pair(i, "instance_arn", "status"))
                .collect(),
            APPROVAL => state["accounts"]
                .as_object()
                .into_iter()
                .flat_map(|accounts| accounts.values())
                .flat_map(|a| a["identity_sources"].as_array().into_iter().flatten())
                .map(|s| pair(s, "identity_source_arn", "status"))
                .collect(),
            _ => {
                let (portal, provider) = x
                    .key
                    .step
                    .strip_prefix("web-identity-provider#")
                    .and_then(|rest| rest.rsplit_once('#'))
                    .unwrap_or(("", ""));
                list(state, account, "identity_providers")
                    .into_iter()
                    .filter(|p| {
                        p["portal_arn"] == portal && p["identity_provider_name"] == provider
                    })
                    .map(|p| pair(p, "identity_provider_arn", "no status"))
                    .collect()
            }
        };
        let refused_role = x.why == Some("the member role is refused")
            || x.why == Some("the portal does not exist");
        let want_resources = if x.want == Status::Ready || !refused_role {
            1
        } else {
            0
        };
        if found.len() != want_resources {
            fail(format!(
                "DUPLICATE OR MISSING RESOURCE: {name}: the emulator holds {} resource(s) {:?}; expected exactly {want_resources} (ledger: {} {:?})",
                found.len(), found, rec.status, arn
            ));
        } else if let Some((res_arn, status)) = found.first() {
            // A step that failed on readiness may name its resource only in its reason.
            let named_in_reason = rec.status == Status::Failed
                && arn.is_none()
                && rec
                    .last_error
                    .as_ref()
                    .is_some_and(|r| r.message.contains(res_arn.as_str()));
            if Some(res_arn.as_str()) != arn && !named_in_reason {
                fail(format!(
                    "LEDGER/RESOURCE MISMATCH: {name} (from {}): the ledger records {} {arn:?} (attempt {}, last error {:?}), the emulator holds {res_arn} ({status})",
                    e.originals[x.origins[0]].label, rec.status, rec.attempt, rec.last_error
                ));
            }
            if rec.status == Status::Ready && status != "ACTIVE" {
                fail(format!(
                    "NOT READY: {name} is READY in the ledger but {res_arn} is {status}"
                ));
            }
        }
        match rec.status {
            Status::Ready => {
                ready += 1;
                let step_events: Vec<&&Value> = ready_events
                    .iter()
                    .filter(|v| {
                        v["detail-type"] == ready_detail_type(x.step)
                            && v["detail"]["step"] == x.step
                            && (x.step == APPROVAL || v["detail"]["accountId"] == account)
                            && (x.step != WEB
                                || found.is_empty()
                                || v["detail"]["resourceArn"]
                                    .as_str()
                                    .is_some_and(|a| Some(a) == arn))
                    })
                    .collect();
                if step_events.is_empty() {
                    fail(format!(
                        "NEVER ANNOUNCED: {name} is READY ({arn:?}) but no \"{}\" event was emitted",
                        ready_detail_type(x.step)
                    ));
                }
                for v in step_events {
                    if v["detail"]["resourceArn"].as_str() != arn
                        || v["detail"]["clientToken"].as_str() != Some(rec.token.as_str())
                    {
                        fail(format!(
                            "WRONG ANNOUNCEMENT: {name}: an event announced {} with token {}; the ledger holds {arn:?} with token {}",
                            v["detail"]["resourceArn"], v["detail"]["clientToken"], rec.token
                        ));
                    }
                }
            }
            Status::Failed => {
                failed += 1;
                match &rec.last_error {
                    Some(r) if !r.message.is_empty() && !r.retryable => {}
                    other => fail(format!(
                        "FAILED WITHOUT A REASON: {name} is FAILED with last error {other:?}"
                    )),
                }
                let announced = failed_events.iter().any(|v| {
                    v["detail"]["step"] == x.step
                        && (x.step == APPROVAL || v["detail"]["accountId"] == account)
                });
                if !announced {
                    fail(format!(
                        "FAILURE NEVER ANNOUNCED: {name} is FAILED ({:?}) but no \"Onboarding Step Failed\" event names it",
                        rec.last_error.as_ref().map(|r| &r.code)
                    ));
                }
            }
            _ => {}
        }
    }

    // Zero requests lost: once every delivery was acknowledged or dead-lettered, each key
    // is finished, or a message for it is in a dead-letter list.
    let before: HashMap<String, &Record> = e
        .ledger_before_replay
        .iter()
        .map(|r| (r.key.to_string(), r))
        .collect();
    for (name, x) in &keys {
        let status = before.get(name).map(|r| r.status);
        if matches!(status, Some(Status::Ready) | Some(Status::Failed)) {
            continue;
        }
        let dead = e
            .dead_before_replay
            .iter()
            .any(|d| d.queue == x.step && x.origins.contains(&d.origin));
        if !dead {
            fail(format!(
                "LOST: every delivery of {} was acknowledged, yet {name} was {} (expected {}) before the archive replay",
                e.originals[x.origins[0]].label,
                status.map_or("absent from the ledger".to_string(), |s| s.to_string()),
                x.want
            ));
        }
    }

    // Nothing exists that no request asked for.
    for r in e.ledger {
        if !keys.contains_key(&r.key.to_string()) {
            fail(format!(
                "UNEXPECTED LEDGER ITEM: {} ({}) belongs to no request",
                r.key, r.status
            ));
        }
    }
    let wanted_accounts: HashSet<&str> = keys
        .values()
        .filter(|x| x.step == INSTANCE)
        .filter_map(|x| x.key.account_id())
        .collect();
    let wanted_providers: HashSet<String> = keys
        .values()
        .filter(|x| x.step == WEB)
        .map(|x| format!("{}/{}", x.key.account_id().unwrap_or_default(), x.key.step))
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

    // Invalid events: never dropped. Through SQS every copy ends in the dead-letter list with
    // its reason; delivered directly, each is announced as rejected.
    for &i in &invalid {
        let o = &e.originals[i];
        for queue in [INSTANCE, APPROVAL, WEB] {
            let sent = e.sqs_sent.get(&(queue, i)).copied().unwrap_or(0);
            let dead = dead_by.get(&(queue, i)).map_or(0, Vec::len) as u64;
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
            let n = failed_events
                .iter()
                .filter(|v| v["detail"]["requestEventId"] == id)
                .count();
            if n == 0 {
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
    if e.replay_created > 0 {
        fail(format!(
            "REPLAY CREATED: the archive replay created {} new resource(s)",
            e.replay_created
        ));
    }
    let replay_calls: u64 = e.replay_calls.values().sum();
    if e.terminal_before_replay && replay_calls > 0 {
        fail(format!(
            "REPLAY NOT A DUPLICATE: every step was finished before the archive replay, yet it made {replay_calls} control-plane call(s) {:?} (a duplicate must make none)",
            e.replay_calls
        ));
    }

    let summary = format!(
        "keys: {} expected ({ready} READY, {failed} FAILED); invalid events: {}; dead-lettered valid requests: {}{}",
        keys.len(),
        invalid.len(),
        dead_lettered_valid.len(),
        dead_lettered_valid
            .iter()
            .take(5)
            .map(|d| format!("\n    {d}"))
            .collect::<String>()
    );
    (failures, summary)
}
