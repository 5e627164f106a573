//! A model-based test of the ledger's state machine against moto (the real aws-sdk-dynamodb
//! client over HTTP).
//!
//! Random sequences of operations by three simulated holders (each remembers the lease it last
//! acquired and the generation and ARN it last read, both possibly stale): claims (two request
//! hashes, short or long leases, alone or racing), completions, create-sent releases,
//! retryable and permanent failures, lease expiry (sleeps), `promote_ready` / `fail_created`,
//! `mark_announced`, operator retries, retirements (an account's closure, newer or older
//! than what the step applied), reopenings (with the retirement read, or a stale one) and
//! crashes. After every operation the stored item is
//! read back (consistent read, a separate client) and checked against a model of the item and
//! against the ledger's invariants; a failure prints the seed and the operation log.
//!
//! `LEDGER_MODEL_SEED=<seed>` repeats a run (the seed is printed at the start);
//! `LEDGER_MODEL_SEQUENCE=<n>` runs only sequence n of it; `LEDGER_MODEL_SEQUENCES` and
//! `LEDGER_MODEL_OPS` change the size (default 40 sequences of 40 operations);
//! `LEDGER_MODEL_VERBOSE=1` prints every sequence's operation log.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use integration_tests::moto::{dynamodb, ledger_table, moto};
use onboarding::ledger::{
    client_token, schema, Applied, Claim, ClaimRequest, ErrorReason, Failure, Fields, Lease,
    Ledger, LedgerError, Origin, Record, Release, Retirement, Status, StepKey, RETRY_LEASE_MARGIN,
};
use onboarding::revision::Revision;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Item = HashMap<String, AttributeValue>;

const HOLDERS: usize = 3;
const SHORT: Duration = Duration::from_millis(150);
/// Long enough to outlast the operations around it, short enough to expire within a sequence
/// (an operator's retry never takes over an `IN_PROGRESS` step in this test).
const LONG: Duration = Duration::from_millis(600);
/// A sleep past a short lease.
const PAST_SHORT: Duration = Duration::from_millis(170);
const HASHES: [&str; 2] = ["hash-payments", "hash-payments-renamed"];
const ARNS: [&str; 2] = [
    "arn:aws:sso:::instance/ssoins-aaaaaaaaaaaaaaaa",
    "arn:aws:sso:::instance/ssoins-bbbbbbbbbbbbbbbb",
];
const ORIGINS: [Origin; 3] = [Origin::Created, Origin::Adopted, Origin::PreExisting];
/// Sequences run at once (distinct keys; moto serialises DynamoDB requests anyway, this
/// overlaps the sleeps).
const PARALLEL: usize = 4;

// The invariants, as reported.
const ONE_LEASE: &str = "at most one live lease per key";
const FENCE: &str = "only the current lease holder's fenced writes apply";
const UNCHANGED: &str = "a refused write changes nothing";
const READY_FINAL: &str = "READY never regresses";
const GENERATION: &str = "generations only grow, by exactly 1 per operator retry";
const TOKEN: &str = "the client token is client_token(key, generation, salt), the salt fixed when the item is created";
const ATTEMPT: &str = "attempt grows by 1 per acquired claim and is reset to 0 by retry";
const CREATED_FENCE: &str =
    "promote_ready / fail_created apply only to the generation and ARN read";
const ANNOUNCE: &str =
    "an outcome is marked announced only in its own status and generation (never a retirement recorded since)";
const CLAIM: &str = "a claim acquires exactly the claimable steps";
const RETRY: &str = "an operator retry applies only to FAILED (or long-abandoned) steps";
const RETIRE: &str =
    "a retirement applies only over no newer request and no retirement; a reopening only to the retirement read";
const SHAPE: &str = "the attention index and the TTL follow the status";
const MODEL: &str = "the stored item matches the model";
const LEDGER: &str = "ledger calls do not fail";

#[derive(Debug)]
struct Violation {
    invariant: &'static str,
    detail: String,
}

fn ensure(
    ok: bool,
    invariant: &'static str,
    detail: impl FnOnce() -> String,
) -> Result<(), Violation> {
    if ok {
        Ok(())
    } else {
        Err(Violation {
            invariant,
            detail: detail(),
        })
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    epoch_ms(SystemTime::now())
}

fn short_id(owner: Option<&str>) -> String {
    owner.map_or_else(|| "-".to_owned(), |o| o.chars().take(8).collect())
}

fn reason(code: &str, retryable: bool) -> ErrorReason {
    ErrorReason {
        retryable,
        code: code.to_owned(),
        message: format!("{code} (model test)"),
    }
}

/// One operation of a sequence (see [`Run::next_op`]).
#[derive(Clone, Copy, Debug)]
enum Op {
    Claim {
        holder: usize,
        key: usize,
        hash: usize,
        short: bool,
    },
    /// Every holder claims at once.
    RaceClaim {
        key: usize,
        hash: usize,
        short: bool,
    },
    Complete {
        holder: usize,
        key: usize,
        ready: bool,
        arn: usize,
        origin: Origin,
    },
    /// `release` with `create_sent` (the attempt sent a create whose outcome is unknown).
    CreateSent {
        holder: usize,
        key: usize,
        retry_after: bool,
    },
    /// A retryable failure: `fail(Retryable)` or `release` with nothing sent.
    Release {
        holder: usize,
        key: usize,
        via_fail: bool,
    },
    FailPermanent {
        holder: usize,
        key: usize,
        via_fail: bool,
    },
    /// With the generation and ARN the holder last read (`arn` if it read none).
    Promote {
        holder: usize,
        key: usize,
        arn: usize,
    },
    FailCreated {
        holder: usize,
        key: usize,
        arn: usize,
    },
    /// The outcome the holder announced (READY or FAILED), with the generation it last read.
    Announce {
        holder: usize,
        key: usize,
        ready: bool,
    },
    /// An operator's `onboarding retry`.
    Retry { key: usize },
    /// The account closed: `newer` than the revision the model's completions apply, or older.
    Retire { key: usize, newer: bool },
    /// A newer request reopens a retired step, with the retirement as stored or a stale one.
    Reopen { key: usize, stale: bool },
    /// The holder forgets its leases and what it read.
    Crash { holder: usize },
    /// Past a short lease.
    Sleep,
}

/// What the ledger is expected to hold for a key (the stored item's fields that matter).
#[derive(Clone, Debug, PartialEq)]
struct Model {
    status: Status,
    generation: u32,
    attempt: u32,
    request_hash: Option<String>,
    lease_owner: Option<String>,
    lease_expires_at: Option<u64>,
    resource_arn: Option<String>,
    origin: Option<Origin>,
    announced: bool,
    create_sent: bool,
    settled_attempt: u32,
    retry_after: Option<u64>,
    /// Code of the last error.
    last_error: Option<String>,
    /// A TTL is set.
    ttl: bool,
    recent_events: Vec<String>,
    first_attempt_at: Option<u64>,
    /// An applied revision is recorded.
    applied: bool,
    retired_revision: Option<String>,
    /// The revision of the generation's recorded request (set by a reopening here).
    requested_revision: Option<String>,
}

impl Model {
    fn observe(r: &Record) -> Model {
        Model {
            status: r.status,
            generation: r.generation,
            attempt: r.attempt,
            request_hash: r.request_hash.clone(),
            lease_owner: r.lease_owner.clone(),
            lease_expires_at: r.lease_expires_at,
            resource_arn: r.resource_arn.clone(),
            origin: r.origin,
            announced: r.announced,
            create_sent: r.create_sent,
            settled_attempt: r.settled_attempt,
            retry_after: r.retry_after,
            last_error: r.last_error.as_ref().map(|e| e.code.clone()),
            ttl: r.expires_at.is_some(),
            recent_events: r.recent_events.clone(),
            first_attempt_at: r.first_attempt_at,
            applied: r.applied_revision.is_some(),
            retired_revision: r.retired_revision.as_ref().map(|v| v.as_str().to_owned()),
            requested_revision: r.requested_revision.as_ref().map(|v| v.as_str().to_owned()),
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} gen {} attempt {} owner {} lease {} hash {} arn {} announced {}",
            self.status,
            self.generation,
            self.attempt,
            short_id(self.lease_owner.as_deref()),
            self.lease_expires_at
                .map_or_else(|| "-".to_owned(), |ms| ms.to_string()),
            self.request_hash.as_deref().unwrap_or("-"),
            self.resource_arn
                .as_deref()
                .map_or("-", |a| &a[a.len() - 4..]),
            self.announced,
        )
    }
}

fn summary(m: Option<&Model>) -> String {
    m.map_or_else(|| "no item".to_owned(), Model::summary)
}

/// What a write is expected to do, predicted from the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Applies (`Ok`, or `Ok(true)`).
    Applied,
    /// The same write applied before: `Ok` (or `Ok(false)`), nothing changes.
    Repeat,
    LostLease,
    NotAllowed,
}

/// What a write returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    Ok,
    /// `fail_created` found the failure recorded already.
    OkFalse,
    LostLease,
    NotAllowed,
}

fn got<T>(
    call: &str,
    result: Result<T, LedgerError>,
    ok: impl Fn(T) -> Got,
) -> Result<Got, Violation> {
    match result {
        Ok(v) => Ok(ok(v)),
        Err(LedgerError::LostLease { .. }) => Ok(Got::LostLease),
        Err(LedgerError::NotAllowed(_)) => Ok(Got::NotAllowed),
        Err(e) => Err(Violation {
            invariant: LEDGER,
            detail: format!("{call}: {e}"),
        }),
    }
}

/// Whether `got` is what `expect` allows (`repeat_ok`: what a repeat returns).
fn agrees(expect: Expect, got: Got, repeat_ok: Got) -> bool {
    match expect {
        Expect::Applied => got == Got::Ok,
        Expect::Repeat => got == repeat_ok,
        Expect::LostLease => got == Got::LostLease,
        Expect::NotAllowed => got == Got::NotAllowed,
    }
}

/// How an operation may change the item (checked against the item read after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// Nothing changes (a refused or repeated write).
    Unchanged,
    /// `n` claims acquired the step.
    Acquired(u32),
    /// An operator's retry applied.
    Retried,
    /// A write other than a claim or a retry applied.
    Write,
    /// `mark_announced` for this generation applied.
    Announced(u32),
    /// A retirement applied.
    Retired,
}

/// A holder's memory: the lease it last acquired and what it last read, per key.
#[derive(Clone, Debug)]
struct Holder {
    lease: Vec<Option<Lease>>,
    /// Generation and ARN last read (from a refused claim, or its own completion).
    seen: Vec<Option<(u32, Option<String>)>>,
}

impl Holder {
    fn new(keys: usize) -> Holder {
        Holder {
            lease: vec![None; keys],
            seen: vec![None; keys],
        }
    }
}

struct KeyState {
    key: StepKey,
    model: Option<Model>,
    /// The stored item as last read.
    item: Option<Item>,
    /// Owner of the fenced writes that applied in each (generation, attempt).
    writers: HashMap<(u32, u32), String>,
}

#[derive(Clone, Debug, Default)]
struct Stats {
    ops: usize,
    skipped: usize,
    acquired: usize,
    claims_refused: usize,
    fenced_applied: usize,
    stale_fenced_refused: usize,
    created_path_applied: usize,
    created_path_refused: usize,
    /// `promote_ready` / `fail_created` of a CREATED step with the right ARN but an older
    /// generation (the case the generation fence exists for).
    stale_generation_same_arn: usize,
    retries: usize,
    retries_refused: usize,
    retired: usize,
    retire_refused: usize,
    reopened: usize,
    reopen_refused: usize,
    announced: usize,
    announce_refused: usize,
    reached_ready: usize,
    sleeps: usize,
    crashes: usize,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.ops += o.ops;
        self.skipped += o.skipped;
        self.acquired += o.acquired;
        self.claims_refused += o.claims_refused;
        self.fenced_applied += o.fenced_applied;
        self.stale_fenced_refused += o.stale_fenced_refused;
        self.created_path_applied += o.created_path_applied;
        self.created_path_refused += o.created_path_refused;
        self.stale_generation_same_arn += o.stale_generation_same_arn;
        self.retries += o.retries;
        self.retries_refused += o.retries_refused;
        self.retired += o.retired;
        self.retire_refused += o.retire_refused;
        self.reopened += o.reopened;
        self.reopen_refused += o.reopen_refused;
        self.announced += o.announced;
        self.announce_refused += o.announce_refused;
        self.reached_ready += o.reached_ready;
        self.sleeps += o.sleeps;
        self.crashes += o.crashes;
    }
}

/// Checks a claim that acquired the step and returns the model after it.
#[allow(clippy::too_many_arguments)]
fn acquired(
    key: &StepKey,
    before: Option<&Model>,
    lease: &Lease,
    hash: &str,
    event: &str,
    lease_len: Duration,
    t0: u64,
    t1: u64,
) -> Result<Model, Violation> {
    let lease_ms = u64::try_from(lease_len.as_millis()).unwrap_or(u64::MAX);
    let expires = epoch_ms(lease.expires_at);
    // The claim's clock reading: the lease runs exactly `lease_len` from it.
    let start = expires.saturating_sub(lease_ms);
    ensure(t0 <= start && start <= t1, CLAIM, || {
        format!("lease starts at {start}, outside the call ({t0}..={t1})")
    })?;
    ensure(
        lease.salt.is_some()
            && lease.token == client_token(key, lease.generation, lease.salt.as_deref()),
        TOKEN,
        || {
            format!(
                "lease token {} in generation {} with salt {:?}",
                lease.token, lease.generation, lease.salt
            )
        },
    )?;
    let Some(m) = before else {
        ensure(lease.generation == 0, GENERATION, || {
            format!("first claim in generation {}", lease.generation)
        })?;
        ensure(lease.attempt == 1, ATTEMPT, || {
            format!("first claim is attempt {}", lease.attempt)
        })?;
        return Ok(Model {
            status: Status::InProgress,
            generation: 0,
            attempt: 1,
            request_hash: Some(hash.to_owned()),
            lease_owner: Some(lease.owner.clone()),
            lease_expires_at: Some(expires),
            resource_arn: None,
            origin: None,
            announced: false,
            create_sent: false,
            settled_attempt: 0,
            retry_after: None,
            last_error: None,
            ttl: true,
            recent_events: vec![event.to_owned()],
            first_attempt_at: Some(start),
            applied: false,
            retired_revision: None,
            requested_revision: None,
        });
    };
    ensure(m.status == Status::InProgress, CLAIM, || {
        format!("acquired a {} step ({})", m.status, m.summary())
    })?;
    // Any request may take over a step nobody holds (a newer request is never refused).
    let _ = hash;
    let previous = m.lease_expires_at.unwrap_or(0);
    ensure(previous <= start, ONE_LEASE, || {
        format!(
            "acquired at {start} by {} while the lease of {} ran until {previous} ({} ms later)",
            short_id(Some(&lease.owner)),
            short_id(m.lease_owner.as_deref()),
            previous - start
        )
    })?;
    ensure(lease.generation == m.generation, GENERATION, || {
        format!(
            "a claim moved generation {} to {}",
            m.generation, lease.generation
        )
    })?;
    ensure(lease.attempt == m.attempt + 1, ATTEMPT, || {
        format!("attempt {} after {}", lease.attempt, m.attempt)
    })?;
    let may_have_sent = m.create_sent || m.settled_attempt + 1 < lease.attempt;
    ensure(lease.may_have_sent == may_have_sent, MODEL, || {
        format!(
            "lease.may_have_sent {} (create_sent {}, settled attempt {}, attempt {})",
            lease.may_have_sent, m.create_sent, m.settled_attempt, lease.attempt
        )
    })?;
    let mut next = m.clone();
    next.attempt += 1;
    next.request_hash = Some(hash.to_owned());
    next.lease_owner = Some(lease.owner.clone());
    next.lease_expires_at = Some(expires);
    next.ttl = true;
    next.recent_events.push(event.to_owned());
    next.first_attempt_at = next.first_attempt_at.or(Some(start));
    Ok(next)
}

/// Checks a claim that did not acquire the step against the model before it.
fn refused(before: Option<&Model>, claim: &Claim, hash: &str, t0: u64) -> Result<(), Violation> {
    let Some(m) = before else {
        return Err(Violation {
            invariant: CLAIM,
            detail: format!("a claim of a step with no item was refused: {claim:?}"),
        });
    };
    let _ = hash;
    let record_agrees = |r: &Record, status: Status| {
        m.status == status && r.generation == m.generation && r.resource_arn == m.resource_arn
    };
    let ok = match claim {
        Claim::Acquired(_) => false,
        Claim::InProgress {
            lease_expires_at, ..
        } => {
            let until = epoch_ms(*lease_expires_at);
            m.status == Status::InProgress && m.lease_expires_at == Some(until) && until > t0
        }
        Claim::Ready(r) => record_agrees(r, Status::Ready),
        Claim::Created(r) => record_agrees(r, Status::Created),
        Claim::Failed(r) => record_agrees(r, Status::Failed),
        Claim::Retired(r) => record_agrees(r, Status::Retired),
    };
    ensure(ok, CLAIM, || {
        format!(
            "claim with {hash} at {t0} refused as {} while the step is {}",
            describe_claim(claim),
            m.summary()
        )
    })
}

fn describe_claim(claim: &Claim) -> String {
    match claim {
        Claim::Acquired(l) => format!(
            "Acquired(gen {} attempt {} owner {} until {})",
            l.generation,
            l.attempt,
            short_id(Some(&l.owner)),
            epoch_ms(l.expires_at)
        ),
        Claim::InProgress {
            lease_expires_at, ..
        } => {
            format!("InProgress(until {})", epoch_ms(*lease_expires_at))
        }
        Claim::Ready(r) => format!("Ready(gen {})", r.generation),
        Claim::Created(r) => format!("Created(gen {})", r.generation),
        Claim::Failed(r) => format!("Failed(gen {})", r.generation),
        Claim::Retired(r) => format!("Retired(gen {})", r.generation),
    }
}

/// The model of `IN_PROGRESS` -> `status` written by `complete`.
fn predict_complete(m: Option<&Model>, lease: &Lease, to: Status, arn: &str) -> Expect {
    match m {
        Some(m) if m.lease_owner.as_deref() == Some(lease.owner.as_str()) => {
            if m.status == Status::InProgress {
                Expect::Applied
            } else if m.resource_arn.as_deref() == Some(arn)
                && (m.status == to || (to == Status::Created && m.status == Status::Ready))
            {
                Expect::Repeat
            } else {
                Expect::LostLease
            }
        }
        _ => Expect::LostLease,
    }
}

fn holds(m: Option<&Model>, lease: &Lease) -> bool {
    m.is_some_and(|m| {
        m.status == Status::InProgress && m.lease_owner.as_deref() == Some(lease.owner.as_str())
    })
}

/// One sequence against its own keys.
struct Run {
    ledger: Ledger,
    reader: Client,
    table: String,
    keys: Vec<KeyState>,
    holders: Vec<Holder>,
    stats: Stats,
}

impl Run {
    async fn read(&self, k: usize) -> Result<Option<Item>, Violation> {
        let key = &self.keys[k].key;
        self.reader
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key(schema::PK, AttributeValue::S(key.scope.clone()))
            .key(schema::SK, AttributeValue::S(key.step.clone()))
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| Violation {
                invariant: LEDGER,
                detail: format!("GetItem: {e:?}"),
            })
    }

    fn decode(item: Option<&Item>) -> Result<Option<Record>, Violation> {
        item.map(Record::from_item)
            .transpose()
            .map_err(|e| Violation {
                invariant: MODEL,
                detail: format!("stored item does not decode: {e}"),
            })
    }

    /// Reads the item after an operation, checks every invariant against the item before it,
    /// and records the item and the `expected` model (which the item must match).
    async fn settle(
        &mut self,
        k: usize,
        expected: Option<Model>,
        effect: Effect,
    ) -> Result<(), Violation> {
        let after_item = self.read(k).await?;
        self.check(k, after_item, expected, effect)
    }

    fn check(
        &mut self,
        k: usize,
        after_item: Option<Item>,
        expected: Option<Model>,
        effect: Effect,
    ) -> Result<(), Violation> {
        let state = &self.keys[k];
        let before_item = state.item.as_ref();
        let before = Self::decode(before_item)?;
        let after = Self::decode(after_item.as_ref())?;
        if effect == Effect::Unchanged {
            ensure(after_item.as_ref() == before_item, UNCHANGED, || {
                format!("before: {before_item:?}\nafter: {after_item:?}")
            })?;
        }
        match (&before, &after) {
            (Some(_), None) => {
                return Err(Violation {
                    invariant: MODEL,
                    detail: "the item disappeared".into(),
                })
            }
            (None, None) => {}
            (None, Some(a)) if effect == Effect::Retired => {
                ensure(a.token_salt.is_some(), TOKEN, || {
                    "a tombstone without a salt".into()
                })?;
                ensure(a.generation == 0 && a.attempt == 0, GENERATION, || {
                    format!(
                        "retired tombstone in generation {} attempt {}",
                        a.generation, a.attempt
                    )
                })?;
            }
            (None, Some(a)) => {
                let Effect::Acquired(n) = effect else {
                    return Err(Violation {
                        invariant: CLAIM,
                        detail: format!("an item appeared without a claim ({effect:?})"),
                    });
                };
                ensure(a.generation == 0, GENERATION, || {
                    format!("new item in generation {}", a.generation)
                })?;
                ensure(a.token_salt.is_some(), TOKEN, || {
                    "a new item without a salt".into()
                })?;
                ensure(a.attempt == n, ATTEMPT, || {
                    format!("new item at attempt {} after {n} claims", a.attempt)
                })?;
            }
            (Some(b), Some(a)) => {
                ensure(a.token_salt == b.token_salt, TOKEN, || {
                    format!(
                        "salt {:?} -> {:?} after {effect:?}",
                        b.token_salt, a.token_salt
                    )
                })?;
                if b.status == Status::Ready && effect != Effect::Retired {
                    ensure(
                        a.status == Status::Ready
                            && a.generation == b.generation
                            && a.resource_arn == b.resource_arn
                            && (a.announced || !b.announced),
                        READY_FINAL,
                        || {
                            format!(
                                "READY gen {} {:?} became {} gen {} {:?} (announced {})",
                                b.generation,
                                b.resource_arn,
                                a.status,
                                a.generation,
                                a.resource_arn,
                                a.announced
                            )
                        },
                    )?;
                }
                let generation = if effect == Effect::Retried {
                    b.generation + 1
                } else {
                    b.generation
                };
                ensure(a.generation == generation, GENERATION, || {
                    format!(
                        "generation {} -> {} after {effect:?}",
                        b.generation, a.generation
                    )
                })?;
                ensure(
                    (a.token == b.token) == (a.generation == b.generation),
                    TOKEN,
                    || {
                        format!(
                            "token {} -> {} while generation {} -> {}",
                            b.token, a.token, b.generation, a.generation
                        )
                    },
                )?;
                let attempt = match effect {
                    Effect::Acquired(n) => b.attempt + n,
                    Effect::Retried => 0,
                    _ => b.attempt,
                };
                ensure(a.attempt == attempt, ATTEMPT, || {
                    format!("attempt {} -> {} after {effect:?}", b.attempt, a.attempt)
                })?;
                if matches!(a.status, Status::Failed | Status::Retired) && a.announced {
                    let kept = b.status == a.status && b.announced && b.generation == a.generation;
                    ensure(
                        kept || effect == Effect::Announced(a.generation),
                        ANNOUNCE,
                        || {
                            format!(
                                "{} gen {} marked announced by {effect:?} (before: {} gen {} \
                                 announced {})",
                                a.status, a.generation, b.status, b.generation, b.announced
                            )
                        },
                    )?;
                }
            }
        }
        if let (Some(a), Some(item)) = (&after, &after_item) {
            ensure(
                a.token == client_token(&a.key, a.generation, a.token_salt.as_deref()),
                TOKEN,
                || {
                    format!(
                        "token {} in generation {} with salt {:?}",
                        a.token, a.generation, a.token_salt
                    )
                },
            )?;
            let attention = match item.get(schema::ATTENTION) {
                Some(AttributeValue::S(s)) => Some(s.as_str()),
                _ => None,
            };
            // A READY step is in the index only while something is outstanding (its Ready
            // not yet announced, an update owed): never left out while unannounced.
            let shaped = match a.status {
                Status::Ready if !a.announced => attention == Some("UPDATING"),
                Status::Ready => matches!(attention, None | Some("UPDATING")),
                // In the index until its "Account Offboarded" is announced.
                Status::Retired if !a.announced => attention == Some("RETIRED"),
                Status::Retired => matches!(attention, None | Some("RETIRED")),
                s => attention == Some(s.as_str()),
            };
            ensure(shaped, SHAPE, || {
                format!(
                    "{} item (announced {}) with attention {attention:?}",
                    a.status, a.announced
                )
            })?;
            let ttl_allowed = matches!(a.status, Status::InProgress | Status::Failed);
            ensure(ttl_allowed || a.expires_at.is_none(), SHAPE, || {
                format!("{} item with a TTL", a.status)
            })?;
            ensure(
                a.status != Status::Failed || a.expires_at.is_some(),
                SHAPE,
                || "FAILED item without a TTL".to_owned(),
            )?;
            // At most one holder holds a live lease: the stored owner, while it has not expired.
            let now = now_ms();
            let live: Vec<usize> = (0..self.holders.len())
                .filter(|&h| {
                    self.holders[h].lease[k].as_ref().is_some_and(|l| {
                        a.status == Status::InProgress
                            && a.lease_owner.as_deref() == Some(l.owner.as_str())
                            && a.lease_expires_at.is_some_and(|ms| ms > now)
                            && epoch_ms(l.expires_at) > now
                    })
                })
                .collect();
            ensure(live.len() <= 1, ONE_LEASE, || {
                format!("holders {live:?} all hold live leases")
            })?;
        }
        let observed = after.as_ref().map(Model::observe);
        ensure(observed == expected, MODEL, || {
            format!("expected {expected:#?}\nstored {observed:#?}")
        })?;
        let state = &mut self.keys[k];
        state.item = after_item;
        state.model = expected;
        if effect != Effect::Unchanged
            && state.model.as_ref().map(|m| m.status) == Some(Status::Ready)
            && before.map(|b| b.status) != Some(Status::Ready)
        {
            self.stats.reached_ready += 1;
        }
        Ok(())
    }

    /// Records the owner of an applied fenced write: two holders never both write in one lease.
    fn fenced_writer(&mut self, k: usize, m: &Model, owner: &str) -> Result<(), Violation> {
        let earlier = self.keys[k]
            .writers
            .entry((m.generation, m.attempt))
            .or_insert_with(|| owner.to_owned());
        ensure(earlier == owner, ONE_LEASE, || {
            format!(
                "{} and {} both wrote in generation {} attempt {}",
                short_id(Some(earlier)),
                short_id(Some(owner)),
                m.generation,
                m.attempt
            )
        })
    }

    fn lease_context(&self, holder: usize, k: usize, lease: &Lease) -> String {
        format!(
            "holder {holder} lease (gen {} attempt {} owner {}); stored {}",
            lease.generation,
            lease.attempt,
            short_id(Some(&lease.owner)),
            summary(self.keys[k].model.as_ref())
        )
    }

    /// A holder that remembers a lease of key `k`: mostly the current holder, else a stale one.
    fn fenced_holder(&self, rng: &mut StdRng, k: usize) -> Option<usize> {
        let model = self.keys[k].model.as_ref();
        let with_lease: Vec<usize> = (0..HOLDERS)
            .filter(|&h| self.holders[h].lease[k].is_some())
            .collect();
        let current = with_lease.iter().copied().find(|&h| {
            self.holders[h].lease[k]
                .as_ref()
                .is_some_and(|l| holds(model, l))
        });
        match current {
            Some(h) if rng.gen_bool(0.75) => Some(h),
            _ if with_lease.is_empty() => None,
            _ => Some(with_lease[rng.gen_range(0..with_lease.len())]),
        }
    }

    /// The next operation: drawn from the seed, aimed at the state (a fenced write goes to a
    /// holder that remembers a lease, mostly the current one; with none, a claim instead).
    fn next_op(&self, rng: &mut StdRng) -> Op {
        let key = rng.gen_range(0..self.keys.len());
        let holder = rng.gen_range(0..HOLDERS);
        // Mostly the same ARN: a step's resource often keeps its ARN across generations (one
        // instance per account), which is what the generation fence is for.
        let arn = usize::from(rng.gen_bool(0.2));
        let hash = usize::from(rng.gen_bool(0.1));
        let short = rng.gen_bool(0.5);
        let claim = Op::Claim {
            holder,
            key,
            hash,
            short,
        };
        let pick = rng.gen_range(0..100);
        let fenced = if (23..57).contains(&pick) {
            match self.fenced_holder(rng, key) {
                Some(h) => h,
                None => return claim,
            }
        } else {
            holder
        };
        match pick {
            0..=19 => claim,
            20..=22 => Op::RaceClaim { key, hash, short },
            23..=36 => Op::Complete {
                holder: fenced,
                key,
                ready: rng.gen_bool(0.15),
                arn,
                origin: ORIGINS[rng.gen_range(0..ORIGINS.len())],
            },
            37..=42 => Op::CreateSent {
                holder: fenced,
                key,
                retry_after: rng.gen_bool(0.5),
            },
            43..=48 => Op::Release {
                holder: fenced,
                key,
                via_fail: rng.gen_bool(0.5),
            },
            49..=56 => Op::FailPermanent {
                holder: fenced,
                key,
                via_fail: rng.gen_bool(0.5),
            },
            57..=63 => Op::Promote { holder, key, arn },
            64..=73 => Op::FailCreated { holder, key, arn },
            74..=79 => Op::Announce {
                holder,
                key,
                ready: rng.gen_bool(0.5),
            },
            80..=86 => Op::Retry { key },
            87..=88 => Op::Retire {
                key,
                newer: rng.gen_bool(0.7),
            },
            89 => Op::Reopen {
                key,
                stale: rng.gen_bool(0.3),
            },
            90..=92 => Op::Crash { holder },
            _ => Op::Sleep,
        }
    }

    async fn step(&mut self, n: usize, op: Op) -> Result<String, Violation> {
        self.stats.ops += 1;
        match op {
            Op::Claim {
                holder,
                key,
                hash,
                short,
            } => self.claim(n, holder, key, hash, short).await,
            Op::RaceClaim { key, hash, short } => self.race(n, key, hash, short).await,
            Op::Complete {
                holder,
                key,
                ready,
                arn,
                origin,
            } => self.complete(holder, key, ready, ARNS[arn], origin).await,
            Op::CreateSent {
                holder,
                key,
                retry_after,
            } => {
                let how = Release {
                    retry_after: retry_after.then(|| SystemTime::now() + Duration::from_secs(30)),
                    create_sent: true,
                };
                self.release(holder, key, how, false).await
            }
            Op::Release {
                holder,
                key,
                via_fail,
            } => {
                self.release(holder, key, Release::default(), via_fail)
                    .await
            }
            Op::FailPermanent {
                holder,
                key,
                via_fail,
            } => self.fail_permanent(holder, key, via_fail).await,
            Op::Promote { holder, key, arn } => self.created_path(holder, key, arn, true).await,
            Op::FailCreated { holder, key, arn } => {
                self.created_path(holder, key, arn, false).await
            }
            Op::Announce { holder, key, ready } => {
                let status = if ready { Status::Ready } else { Status::Failed };
                self.announce(holder, key, status).await
            }
            Op::Retry { key } => self.retry(key).await,
            Op::Retire { key, newer } => self.retire(key, newer).await,
            Op::Reopen { key, stale } => self.reopen(key, stale).await,
            Op::Crash { holder } => {
                self.stats.crashes += 1;
                let keys = self.keys.len();
                self.holders[holder] = Holder::new(keys);
                Ok("forgot its leases".into())
            }
            Op::Sleep => {
                self.stats.sleeps += 1;
                tokio::time::sleep(PAST_SHORT).await;
                Ok(format!("slept {} ms", PAST_SHORT.as_millis()))
            }
        }
    }

    async fn claim(
        &mut self,
        n: usize,
        holder: usize,
        k: usize,
        hash: usize,
        short: bool,
    ) -> Result<String, Violation> {
        let lease_len = if short { SHORT } else { LONG };
        let event = format!("op{n}-h{holder}");
        let req = ClaimRequest {
            request_hash: HASHES[hash],
            event_id: &event,
            lease: lease_len,
            deadline: None,
        };
        let t0 = now_ms();
        let result = self.ledger.claim(&self.keys[k].key, &req).await;
        let t1 = now_ms();
        let claim = result.map_err(|e| Violation {
            invariant: LEDGER,
            detail: format!("claim: {e}"),
        })?;
        let before = self.keys[k].model.clone();
        let outcome = describe_claim(&claim);
        match claim {
            Claim::Acquired(lease) => {
                let model = acquired(
                    &self.keys[k].key,
                    before.as_ref(),
                    &lease,
                    HASHES[hash],
                    &event,
                    lease_len,
                    t0,
                    t1,
                )?;
                self.stats.acquired += 1;
                self.holders[holder].seen[k] = Some((lease.generation, None));
                self.holders[holder].lease[k] = Some(lease);
                self.settle(k, Some(model), Effect::Acquired(1)).await?;
            }
            other => {
                refused(before.as_ref(), &other, HASHES[hash], t0)?;
                self.stats.claims_refused += 1;
                if let Claim::Ready(r) | Claim::Created(r) | Claim::Failed(r) = &other {
                    self.holders[holder].seen[k] = Some((r.generation, r.resource_arn.clone()));
                }
                self.settle(k, before, Effect::Unchanged).await?;
            }
        }
        Ok(outcome)
    }

    /// Every holder claims at once: the leases acquired never overlap.
    async fn race(
        &mut self,
        n: usize,
        k: usize,
        hash: usize,
        short: bool,
    ) -> Result<String, Violation> {
        let lease_len = if short { SHORT } else { LONG };
        let events: Vec<String> = (0..HOLDERS).map(|h| format!("op{n}-h{h}")).collect();
        let key = self.keys[k].key.clone();
        let t0 = now_ms();
        let results = futures::future::join_all(events.iter().map(|event| {
            let ledger = self.ledger.clone();
            let key = key.clone();
            async move {
                let req = ClaimRequest {
                    request_hash: HASHES[hash],
                    event_id: event,
                    lease: lease_len,
                    deadline: None,
                };
                ledger.claim(&key, &req).await
            }
        }))
        .await;
        let t1 = now_ms();
        let mut claims = Vec::new();
        for (h, result) in results.into_iter().enumerate() {
            claims.push((
                h,
                result.map_err(|e| Violation {
                    invariant: LEDGER,
                    detail: format!("claim: {e}"),
                })?,
            ));
        }
        let outcome = claims
            .iter()
            .map(|(h, c)| format!("h{h}: {}", describe_claim(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut wins: Vec<(usize, Lease)> = claims
            .iter()
            .filter_map(|(h, c)| match c {
                Claim::Acquired(l) => Some((*h, l.clone())),
                _ => None,
            })
            .collect();
        wins.sort_by_key(|(_, l)| l.attempt);
        // The leases acquired, in order: each starts after the one before it ended.
        let mut states = vec![self.keys[k].model.clone()];
        for (h, lease) in &wins {
            let last = states.last().cloned().flatten();
            let model = acquired(
                &key,
                last.as_ref(),
                lease,
                HASHES[hash],
                &events[*h],
                lease_len,
                t0,
                t1,
            )?;
            states.push(Some(model));
        }
        // Each refusal agrees with the step as it stood at some point of the race.
        for (h, claim) in &claims {
            if matches!(claim, Claim::Acquired(_)) {
                continue;
            }
            let mut why = None;
            let agrees =
                states
                    .iter()
                    .any(|s| match refused(s.as_ref(), claim, HASHES[hash], t0) {
                        Ok(()) => true,
                        Err(v) => {
                            why = Some(v);
                            false
                        }
                    });
            if !agrees {
                return Err(why.unwrap_or(Violation {
                    invariant: CLAIM,
                    detail: format!("holder {h}: {}", describe_claim(claim)),
                }));
            }
            if let Claim::Ready(r) | Claim::Created(r) | Claim::Failed(r) = claim {
                self.holders[*h].seen[k] = Some((r.generation, r.resource_arn.clone()));
            }
        }
        self.stats.acquired += wins.len();
        self.stats.claims_refused += HOLDERS - wins.len();
        let count = u32::try_from(wins.len()).unwrap_or(u32::MAX);
        for (h, lease) in wins {
            self.holders[h].seen[k] = Some((lease.generation, None));
            self.holders[h].lease[k] = Some(lease);
        }
        let model = states.pop().flatten();
        let effect = if count == 0 {
            Effect::Unchanged
        } else {
            Effect::Acquired(count)
        };
        self.settle(k, model, effect).await?;
        Ok(outcome)
    }

    async fn complete(
        &mut self,
        holder: usize,
        k: usize,
        ready: bool,
        arn: &str,
        origin: Origin,
    ) -> Result<String, Violation> {
        let Some(lease) = self.holders[holder].lease[k].clone() else {
            self.stats.skipped += 1;
            return Ok("skipped: no lease".into());
        };
        let to = if ready {
            Status::Ready
        } else {
            Status::Created
        };
        let before = self.keys[k].model.clone();
        let expect = predict_complete(before.as_ref(), &lease, to, arn);
        let context = self.lease_context(holder, k, &lease);
        let (state, revision) = (
            Fields::new(),
            Revision::parse("2026-11-30T00:00:00.000Z#model"),
        );
        let applied = Applied {
            state: &state,
            revision: &revision,
        };
        let result = if ready {
            self.ledger
                .mark_ready(&lease, arn, origin, &applied)
                .await
                .map(drop)
        } else {
            self.ledger
                .mark_created(&lease, arn, origin, &applied)
                .await
        };
        let call = if ready { "mark_ready" } else { "mark_created" };
        let got = got(call, result, |()| Got::Ok)?;
        ensure(agrees(expect, got, Got::Ok), FENCE, || {
            format!("{call} by {context}: expected {expect:?}, got {got:?}")
        })?;
        if expect == Expect::Applied {
            let m = before
                .clone()
                .unwrap_or_else(|| unreachable!("a held step exists"));
            self.fenced_writer(k, &m, &lease.owner)?;
            self.stats.fenced_applied += 1;
            let mut next = m;
            next.status = to;
            next.resource_arn = Some(arn.to_owned());
            next.origin = Some(origin);
            next.ttl = false;
            next.retry_after = None;
            // Recorded unannounced: announced after, then marked.
            next.announced = false;
            next.applied = true;
            self.holders[holder].seen[k] = Some((lease.generation, Some(arn.to_owned())));
            self.settle(k, Some(next), Effect::Write).await?;
        } else {
            if expect == Expect::LostLease {
                self.stats.stale_fenced_refused += 1;
            }
            self.settle(k, before, Effect::Unchanged).await?;
        }
        Ok(format!("{call}({}) -> {got:?}", &arn[arn.len() - 4..]))
    }

    async fn release(
        &mut self,
        holder: usize,
        k: usize,
        how: Release,
        via_fail: bool,
    ) -> Result<String, Violation> {
        let Some(lease) = self.holders[holder].lease[k].clone() else {
            self.stats.skipped += 1;
            return Ok("skipped: no lease".into());
        };
        let before = self.keys[k].model.clone();
        let expect = if holds(before.as_ref(), &lease) {
            Expect::Applied
        } else {
            Expect::LostLease
        };
        let context = self.lease_context(holder, k, &lease);
        let code = if how.create_sent {
            "CreateSent"
        } else {
            "ThrottlingException"
        };
        let why = reason(code, true);
        let t0 = now_ms();
        let result = if via_fail {
            self.ledger.fail(&lease, Failure::Retryable, &why).await
        } else {
            self.ledger.release(&lease, &why, how).await
        };
        let t1 = now_ms();
        let call = if via_fail {
            "fail(Retryable)"
        } else {
            "release"
        };
        let got = got(call, result, |()| Got::Ok)?;
        ensure(agrees(expect, got, Got::Ok), FENCE, || {
            format!("{call} by {context}: expected {expect:?}, got {got:?}")
        })?;
        if expect == Expect::Applied {
            let m = before
                .clone()
                .unwrap_or_else(|| unreachable!("a held step exists"));
            self.fenced_writer(k, &m, &lease.owner)?;
            self.stats.fenced_applied += 1;
            let after_item = self.read(k).await?;
            let stored = Self::decode(after_item.as_ref())?.and_then(|r| r.lease_expires_at);
            // The lease ends at once (the call's clock reading).
            ensure(stored.is_some_and(|ms| t0 <= ms && ms <= t1), MODEL, || {
                format!("released lease ends at {stored:?}, not within {t0}..={t1}")
            })?;
            let mut next = m;
            next.last_error = Some(code.to_owned());
            next.lease_expires_at = stored;
            next.settled_attempt = lease.attempt;
            next.create_sent = next.create_sent || how.create_sent || lease.may_have_sent;
            next.retry_after = how.retry_after.map(epoch_ms);
            self.check(k, after_item, Some(next), Effect::Write)?;
        } else {
            self.stats.stale_fenced_refused += 1;
            self.settle(k, before, Effect::Unchanged).await?;
        }
        Ok(format!("{call} -> {got:?}"))
    }

    async fn fail_permanent(
        &mut self,
        holder: usize,
        k: usize,
        via_fail: bool,
    ) -> Result<String, Violation> {
        let Some(lease) = self.holders[holder].lease[k].clone() else {
            self.stats.skipped += 1;
            return Ok("skipped: no lease".into());
        };
        let before = self.keys[k].model.clone();
        let expect = match before.as_ref() {
            m if holds(m, &lease) => Expect::Applied,
            Some(m)
                if m.status == Status::Failed
                    && m.lease_owner.as_deref() == Some(lease.owner.as_str()) =>
            {
                Expect::Repeat
            }
            _ => Expect::LostLease,
        };
        let context = self.lease_context(holder, k, &lease);
        let why = reason("AccessDeniedException", false);
        let result = if via_fail {
            self.ledger.fail(&lease, Failure::Permanent, &why).await
        } else {
            self.ledger.fail_permanent(&lease, &why).await
        };
        let call = if via_fail {
            "fail(Permanent)"
        } else {
            "fail_permanent"
        };
        let got = got(call, result, |()| Got::Ok)?;
        ensure(agrees(expect, got, Got::Ok), FENCE, || {
            format!("{call} by {context}: expected {expect:?}, got {got:?}")
        })?;
        if expect == Expect::Applied {
            let m = before
                .clone()
                .unwrap_or_else(|| unreachable!("a held step exists"));
            self.fenced_writer(k, &m, &lease.owner)?;
            self.stats.fenced_applied += 1;
            let mut next = m;
            next.status = Status::Failed;
            next.last_error = Some("AccessDeniedException".into());
            next.ttl = true;
            next.announced = false;
            next.retry_after = None;
            self.settle(k, Some(next), Effect::Write).await?;
        } else {
            if expect == Expect::LostLease {
                self.stats.stale_fenced_refused += 1;
            }
            self.settle(k, before, Effect::Unchanged).await?;
        }
        Ok(format!("{call} -> {got:?}"))
    }

    /// What a holder believes the step's generation and ARN are (`arn` if it read none).
    fn belief(&self, holder: usize, k: usize, arn: usize) -> (u32, String) {
        let h = &self.holders[holder];
        match (&h.seen[k], &h.lease[k]) {
            (Some((g, Some(a))), _) => (*g, a.clone()),
            (Some((g, None)), _) => (*g, ARNS[arn].to_owned()),
            (None, Some(l)) => (l.generation, ARNS[arn].to_owned()),
            (None, None) => (0, ARNS[arn].to_owned()),
        }
    }

    /// `promote_ready` (or `fail_created`) with the generation and ARN the holder read.
    async fn created_path(
        &mut self,
        holder: usize,
        k: usize,
        arn: usize,
        promote: bool,
    ) -> Result<String, Violation> {
        let (generation, arn) = self.belief(holder, k, arn);
        let before = self.keys[k].model.clone();
        let expect = match before.as_ref() {
            None => Expect::NotAllowed,
            Some(m) => {
                let read_right =
                    m.generation == generation && m.resource_arn.as_deref() == Some(arn.as_str());
                if m.status == Status::Created
                    && m.resource_arn.as_deref() == Some(arn.as_str())
                    && m.generation != generation
                {
                    self.stats.stale_generation_same_arn += 1;
                }
                let done = if promote {
                    Status::Ready
                } else {
                    Status::Failed
                };
                if m.status == Status::Created && read_right {
                    Expect::Applied
                } else if m.status == done && read_right {
                    Expect::Repeat
                } else {
                    Expect::LostLease
                }
            }
        };
        let key = self.keys[k].key.clone();
        let (call, got, repeat_ok) = if promote {
            let result = self.ledger.promote_ready(&key, generation, &arn).await;
            (
                "promote_ready",
                got("promote_ready", result, |_| Got::Ok)?,
                Got::Ok,
            )
        } else {
            let why = reason("CREATE_FAILED", false);
            let result = self.ledger.fail_created(&key, generation, &arn, &why).await;
            let got = got("fail_created", result, |applied| {
                if applied {
                    Got::Ok
                } else {
                    Got::OkFalse
                }
            })?;
            ("fail_created", got, Got::OkFalse)
        };
        let stored = summary(before.as_ref());
        ensure(agrees(expect, got, repeat_ok), CREATED_FENCE, || {
            format!(
                "{call}(gen {generation}, {arn}) by holder {holder} on {stored}: expected \
                 {expect:?}, got {got:?}"
            )
        })?;
        if expect == Expect::Applied {
            self.stats.created_path_applied += 1;
            let mut next = before.unwrap_or_else(|| unreachable!("a CREATED step exists"));
            if promote {
                // Recorded first, announced after (by the promoter alone).
                next.status = Status::Ready;
                next.announced = false;
            } else {
                next.status = Status::Failed;
                next.last_error = Some("CREATE_FAILED".into());
                next.ttl = true;
                next.announced = false;
            }
            next.retry_after = None;
            self.settle(k, Some(next), Effect::Write).await?;
        } else {
            if expect == Expect::LostLease {
                self.stats.created_path_refused += 1;
            }
            self.settle(k, before, Effect::Unchanged).await?;
        }
        Ok(format!(
            "{call}(gen {generation}, {}) -> {got:?}",
            &arn[arn.len() - 4..]
        ))
    }

    async fn announce(
        &mut self,
        holder: usize,
        k: usize,
        status: Status,
    ) -> Result<String, Violation> {
        let (generation, _) = self.belief(holder, k, 0);
        let before = self.keys[k].model.clone();
        let expect = match before.as_ref() {
            Some(m) if m.status == status && m.generation == generation => Expect::Applied,
            _ => Expect::NotAllowed,
        };
        let key = self.keys[k].key.clone();
        let result = self.ledger.mark_announced(&key, generation, status).await;
        let got = got("mark_announced", result, |()| Got::Ok)?;
        let stored = summary(before.as_ref());
        ensure(agrees(expect, got, Got::Ok), ANNOUNCE, || {
            format!(
                "mark_announced({status}, gen {generation}) by holder {holder} on {stored}: \
                 expected {expect:?}, got {got:?}"
            )
        })?;
        if expect == Expect::Applied {
            self.stats.announced += 1;
            let mut next = before.unwrap_or_else(|| unreachable!("a finished step exists"));
            next.announced = true;
            self.settle(k, Some(next), Effect::Announced(generation))
                .await?;
        } else {
            self.stats.announce_refused += 1;
            self.settle(k, before, Effect::Unchanged).await?;
        }
        Ok(format!(
            "mark_announced({status}, gen {generation}) -> {got:?}"
        ))
    }

    async fn retry(&mut self, k: usize) -> Result<String, Violation> {
        let before = self.keys[k].model.clone();
        let margin = u64::try_from(RETRY_LEASE_MARGIN.as_millis()).unwrap_or(u64::MAX);
        let key = self.keys[k].key.clone();
        let t0 = now_ms();
        let result = self.ledger.retry(&key).await;
        let t1 = now_ms();
        let expect = match before.as_ref() {
            Some(m) if m.status == Status::Failed => Expect::Applied,
            Some(m) if m.status == Status::InProgress => match m.lease_expires_at {
                Some(ms) if ms + margin <= t0 => Expect::Applied,
                Some(ms) if ms + margin > t1 => Expect::NotAllowed,
                None => Expect::NotAllowed,
                // The lease passed the margin during the call: either answer is right.
                Some(_) if result.is_ok() => Expect::Applied,
                Some(_) => Expect::NotAllowed,
            },
            _ => Expect::NotAllowed,
        };
        let returned = result.as_ref().ok().cloned();
        let got = got("retry", result, |_| Got::Ok)?;
        let stored = summary(before.as_ref());
        ensure(agrees(expect, got, Got::Ok), RETRY, || {
            format!("retry on {stored}: expected {expect:?}, got {got:?}")
        })?;
        if expect == Expect::Applied {
            self.stats.retries += 1;
            let m = before.unwrap_or_else(|| unreachable!("a retried step exists"));
            let after_item = self.read(k).await?;
            let after = Self::decode(after_item.as_ref())?;
            ensure(
                returned.as_ref().map(Model::observe) == after.as_ref().map(Model::observe),
                MODEL,
                || format!("retry returned {returned:?}, stored {after:?}"),
            )?;
            let mut next = m.clone();
            next.status = Status::InProgress;
            next.generation = m.generation + 1;
            next.attempt = 0;
            next.lease_expires_at = Some(0);
            next.announced = false;
            next.create_sent = m.status == Status::InProgress
                && m.attempt > 0
                && (m.create_sent || m.settled_attempt < m.attempt);
            if !next.create_sent {
                next.requested_revision = None;
            }
            next.settled_attempt = 0;
            next.request_hash = None;
            next.ttl = false;
            next.lease_owner = None;
            next.resource_arn = None;
            next.last_error = None;
            next.first_attempt_at = None;
            next.origin = None;
            next.retry_after = None;
            self.check(k, after_item, Some(next), Effect::Retried)?;
        } else {
            self.stats.retries_refused += 1;
            self.settle(k, before, Effect::Unchanged).await?;
        }
        Ok(format!("retry -> {got:?}"))
    }

    /// The revision every completion of the model applies.
    const APPLIED: &'static str = "2026-11-30T00:00:00.000Z#model";

    async fn retire(&mut self, k: usize, newer: bool) -> Result<String, Violation> {
        let revision = if newer {
            "2026-12-01T00:00:00.000Z#close"
        } else {
            "2026-11-01T00:00:00.000Z#close-old"
        };
        let before = self.keys[k].model.clone();
        let expect = match before.as_ref() {
            None => true,
            Some(m) => {
                m.status != Status::Retired
                    && m.retired_revision.as_deref().is_none_or(|r| r < revision)
                    && m.requested_revision.as_deref().is_none_or(|r| r < revision)
                    && (!m.applied || Self::APPLIED < revision)
            }
        };
        let key = self.keys[k].key.clone();
        let why = serde_json::json!({ "event": "CloseAccountResult", "reason": "model" });
        let result = self
            .ledger
            .retire(&key, &Revision::parse(revision), &why)
            .await
            .map_err(|e| Violation {
                invariant: LEDGER,
                detail: format!("retire: {e}"),
            })?;
        let applied = matches!(result, Retirement::Retired(_));
        let stored = summary(before.as_ref());
        ensure(applied == expect, RETIRE, || {
            format!("retire({revision}) on {stored}: expected applied {expect}, got {result:?}")
        })?;
        if let Retirement::Already(r) | Retirement::Newer(r) = &result {
            let status = before.as_ref().map(|m| m.status);
            ensure(
                Some(r.status) == status
                    && matches!(result, Retirement::Already(_)) == (r.status == Status::Retired),
                RETIRE,
                || format!("retire refused as {result:?} while the step is {stored}"),
            )?;
        }
        if applied {
            self.stats.retired += 1;
            let mut next = before.unwrap_or(Model {
                status: Status::Retired,
                generation: 0,
                attempt: 0,
                request_hash: None,
                lease_owner: None,
                lease_expires_at: None,
                resource_arn: None,
                origin: None,
                announced: false,
                create_sent: false,
                settled_attempt: 0,
                retry_after: None,
                last_error: None,
                ttl: false,
                recent_events: Vec::new(),
                first_attempt_at: None,
                applied: false,
                retired_revision: None,
                requested_revision: None,
            });
            next.status = Status::Retired;
            next.retired_revision = Some(revision.to_owned());
            next.announced = false;
            next.ttl = false;
            next.retry_after = None;
            self.settle(k, Some(next), Effect::Retired).await?;
        } else {
            self.stats.retire_refused += 1;
            self.settle(k, before, Effect::Unchanged).await?;
        }
        Ok(format!("retire({revision}) -> applied {applied}"))
    }

    async fn reopen(&mut self, k: usize, stale: bool) -> Result<String, Violation> {
        let before = self.keys[k].model.clone();
        let Some(mut record) = Self::decode(self.keys[k].item.as_ref())? else {
            self.stats.skipped += 1;
            return Ok("skipped: no item".into());
        };
        if record.status != Status::Retired {
            self.stats.skipped += 1;
            return Ok("skipped: not retired".into());
        }
        if stale {
            record.retired_revision = Some(Revision::parse("2026-01-01T00:00:00.000Z#stale"));
        }
        let reopening = Revision::parse("2027-01-01T00:00:00.000Z#reopening");
        let request = Applied {
            state: &Fields::new(),
            revision: &reopening,
        };
        let result = self.ledger.reopen(&record, request).await;
        let got = got("reopen", result, |applied| {
            if applied {
                Got::Ok
            } else {
                Got::OkFalse
            }
        })?;
        let expect = if stale { Got::OkFalse } else { Got::Ok };
        let stored = summary(before.as_ref());
        ensure(got == expect, RETIRE, || {
            format!("reopen (stale {stale}) on {stored}: expected {expect:?}, got {got:?}")
        })?;
        if got == Got::Ok {
            self.stats.reopened += 1;
            let m = before.unwrap_or_else(|| unreachable!("a retired step exists"));
            let mut next = m.clone();
            next.status = Status::InProgress;
            next.generation = m.generation + 1;
            next.attempt = 0;
            next.lease_expires_at = Some(0);
            next.announced = false;
            next.create_sent = m.resource_arn.is_some() || m.attempt > 0;
            next.requested_revision = Some(reopening.as_str().to_owned());
            next.settled_attempt = 0;
            next.request_hash = None;
            next.lease_owner = None;
            next.resource_arn = None;
            next.last_error = None;
            next.first_attempt_at = None;
            next.origin = None;
            self.settle(k, Some(next), Effect::Retried).await?;
        } else {
            self.stats.reopen_refused += 1;
            self.settle(k, before, Effect::Unchanged).await?;
        }
        Ok(format!("reopen (stale {stale}) -> {got:?}"))
    }
}

struct Sequence {
    index: usize,
    seed: u64,
    keys: usize,
    ops: usize,
}

fn sequence(master: u64, index: usize, ops: usize) -> Sequence {
    let seed = master ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let keys = if seed % 10 < 7 { 1 } else { 2 };
    Sequence {
        index,
        seed,
        keys,
        ops,
    }
}

/// Runs one sequence; on a violation, the report with the seed and the operation log.
async fn run_sequence(
    ledger: Ledger,
    table: String,
    master: u64,
    seq: Sequence,
) -> Result<Stats, String> {
    let reader = dynamodb(&moto().await.url, None);
    let keys = (0..seq.keys)
        .map(|k| KeyState {
            key: StepKey::account(
                &format!("{:012}", 200_000_000_000 + seq.index),
                if k == 0 {
                    "identity-center-instance"
                } else {
                    "approval-identity-source"
                },
            ),
            model: None,
            item: None,
            writers: HashMap::new(),
        })
        .collect();
    let mut run = Run {
        ledger,
        reader,
        table,
        keys,
        holders: vec![Holder::new(seq.keys); HOLDERS],
        stats: Stats::default(),
    };
    let mut rng = StdRng::seed_from_u64(seq.seed);
    let mut log = String::new();
    for n in 0..seq.ops {
        let op = run.next_op(&mut rng);
        let _ = write!(log, "#{n:02} {op:?}");
        match run.step(n, op).await {
            Ok(outcome) => {
                let states: Vec<String> =
                    run.keys.iter().map(|s| summary(s.model.as_ref())).collect();
                let _ = writeln!(log, "\n      -> {outcome}\n      => {}", states.join(" | "));
            }
            Err(v) => {
                let _ = writeln!(log, "\n      !! VIOLATION");
                return Err(format!(
                    "invariant violated: {}\n{}\n\nreproduce: LEDGER_MODEL_SEED={master} \
                     LEDGER_MODEL_SEQUENCE={} (sequence seed {}, {} key(s))\noperation log:\n{log}",
                    v.invariant, v.detail, seq.index, seq.seed, seq.keys
                ));
            }
        }
    }
    if std::env::var_os("LEDGER_MODEL_VERBOSE").is_some() {
        eprintln!("sequence {} ({} key(s)):\n{log}", seq.index, seq.keys);
    }
    Ok(run.stats)
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(e) => panic!("{name}={value:?} is not a number: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_state_machine_keeps_its_invariants_under_random_operations() {
    let master = env_number("LEDGER_MODEL_SEED").unwrap_or_else(rand::random);
    let count = env_number("LEDGER_MODEL_SEQUENCES").unwrap_or(40) as usize;
    let ops = env_number("LEDGER_MODEL_OPS").unwrap_or(40) as usize;
    let only = env_number("LEDGER_MODEL_SEQUENCE").map(|n| n as usize);
    eprintln!(
        "ledger model: seed {master} ({count} sequences x {ops} operations, {HOLDERS} holders); \
         reproduce with LEDGER_MODEL_SEED={master}"
    );
    let (ledger, _requests, table) = ledger_table("ledger-model").await;
    let started = Instant::now();
    let indices: Vec<usize> = match only {
        Some(i) => vec![i],
        None => (0..count).collect(),
    };
    let results: Vec<Result<Stats, String>> = futures::stream::iter(indices)
        .map(|i| {
            run_sequence(
                ledger.clone(),
                table.clone(),
                master,
                sequence(master, i, ops),
            )
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut total = Stats::default();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(stats) => total.add(&stats),
            Err(report) => failures.push(report),
        }
    }
    eprintln!(
        "ledger model: {} operations in {:?}: {total:#?}",
        total.ops,
        started.elapsed()
    );
    if let Some(first) = failures.first() {
        panic!(
            "{} of the sequences of seed {master} broke an invariant; the first:\n{first}",
            failures.len()
        );
    }
}
