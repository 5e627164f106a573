//! The event replay and fault torture run.
//!
//! Drives the three real handlers (`Handler::handle`, the code path Lambda runs) against moto
//! and the identity emulator over HTTP, the way AWS delivers events to them: one rule fans
//! every event out to three queues (one per function); each event reaches each queue 1-4
//! times, shuffled; K workers per queue receive batches of up to 10; failed records come
//! back after a backoff and go to a dead-letter list after `maxReceiveCount`; some events
//! are delivered directly by the rule instead (a failed invocation is retried the same way).
//! Afterwards an archive replay delivers every event again with a new id and a `replay-name`.
//!
//! The organization holds the populations of [`plan`]: new accounts, accounts whose member
//! role appears during the run (inside the grace window), accounts with an instance from
//! before the run, portals that already carry a provider of the requested name (another
//! team's, or exactly the requested one), and accounts and portals that must fail. A failed
//! SQS record that asks to come back later (the grace window's backoff, a lease held
//! elsewhere) gets its delay through the queue's [`onboarding::redelivery::Redelivery`]; direct
//! deliveries are retried by the queue's own backoff.
//!
//! Time runs in one of two modes ([`plan::Timing`], `REPLAY_TIMING`):
//! - compressed (`make test`): grace window 20 s, backoff 200 ms doubling to 2 s, late roles
//!   after 0.5-3 s, maxReceiveCount 24 (16 receives outlast the window, + 8 spare);
//! - realistic (`make replay`): production's 7200 s / 60 s / 1800 s with a minute as a second
//!   (120 s, 1 s doubling to 30 s), late roles after 1-20 s ("minutes"), the 2 s lease being
//!   production's 120 s at that scale, maxReceiveCount 18 (10 + 8, as template.yaml's 10 + 2).
//!
//! The default is compressed, realistic when `REPLAY_N` is set (as `make replay` does).
//!
//! Meanwhile the emulator throttles, fails, loses responses after committing and adds
//! latency; the ledger's DynamoDB client is throttled, fails and loses responses after
//! writing; workers crash right after a create call returned (before any ledger write),
//! right before PutEvents, right after PutEvents (before the completion write, or before the
//! announced flag of a late announcement) and at random points; lease holders stall until
//! another delivery has taken their step over, then try to write. Every fault comes from a seeded RNG; the seed is printed first.
//!
//! The stranded variant ([`Options::stranded`]) gives each message 4 receives, drops a fifth
//! of failed deliveries for good, keeps new instances in progress for 5 s and runs the
//! reconciler alongside the deliveries, then until nothing is left unfinished (K runs).
//!
//! The burst mode ([`Options::burst`]) feeds the messages at a backfill's pace against the
//! emulator's request-rate quotas, scaled so that they bind.
//!
//! The verdict ([`verdict`]) is computed from the emulator's resources, the ledger, the
//! emitted events and the dead-letter lists.

pub mod chaos;
pub mod plan;
pub mod queue;
pub mod verdict;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use identity_emulator::{Counters, FaultConfig, FaultRule, QuotaConfig};
use onboarding::announce::Announcer;
use onboarding::aws::MemberAccess;
use onboarding::engine::{Engine, EngineSettings};
use onboarding::error::StepError;
use onboarding::handler::Handler;
use onboarding::ledger::{Ledger, Record};
use onboarding::organizations::Organizations;
use onboarding::reconcile::{ReconcileSettings, Reconciler};
use onboarding::redelivery::Redelivery;
use onboarding::step::Step;
use onboarding::steps::{ApprovalIdentitySource, IdentityCenterInstance, WebIdentityProvider};
use onboarding::telemetry::Tally;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::deliveries::{failed_ids, sqs_batch_from, Record as SqsRecord};
use crate::iam;
use crate::stack::{Stack, REGION, SOURCE};
use chaos::{AnnounceCrashes, Chaos, Control, LedgerFaults, Rates, CRASH};
use plan::Timing;
use queue::{Message, QueueSettings, SimQueue};

/// Lease on a claimed step (scaled down from the default 120 s). A holder's work is cut at
/// its lease's end, and the records of one invocation share one PutEvents (each waits for
/// the batch's announcements): the lease must outlast a batch's slowest record under the
/// injected faults, as 120 s does the functions' invocations.
pub const LEASE: Duration = Duration::from_secs(5);
/// A Lambda invocation's time limit.
pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(20);

/// Size, seed and concurrency of a run.
#[derive(Clone, Debug)]
pub struct Options {
    pub requests: usize,
    pub seed: u64,
    /// Concurrent workers per queue (each with a batch of up to 10 in flight).
    pub workers: usize,
    pub rates: Rates,
    pub timing: Timing,
    /// The stranded variant: messages run out after a few receives or are dropped for good,
    /// instances take longer to become active than the messages last, and the reconciler
    /// runs alongside the deliveries; afterwards it runs until nothing is left (K runs).
    pub stranded: bool,
    /// The burst mode: the emulator meters every API at [`BURST_QUOTA_SCALE`] of its
    /// documented (or assumed) rate, so that the quotas bind at this size; the functions'
    /// clients retry as deployed (the standard mode), no throttling is injected, and
    /// the messages arrive at [`BURST_RATE`] events a second (the backfill bench's `--rate`).
    pub burst: bool,
}

impl Options {
    /// `REPLAY_N` (else `default_requests`), `REPLAY_SEED` (else random), `REPLAY_WORKERS`
    /// (else 8), `REPLAY_TIMING` (see [`Timing::from_env`]; panics on an unknown mode).
    pub fn from_env(default_requests: usize) -> Options {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Options {
            requests: var("REPLAY_N")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default_requests),
            seed: var("REPLAY_SEED")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(rand::random),
            workers: var("REPLAY_WORKERS")
                .and_then(|v| v.trim().parse().ok())
                .filter(|w| *w > 0)
                .unwrap_or(8),
            rates: Rates::default(),
            timing: Timing::from_env().unwrap_or_else(|e| panic!("{e}")),
            stranded: false,
            burst: false,
        }
    }

    /// The environment that reproduces this run's requests, copies, order and rates.
    pub fn reproduce(&self) -> String {
        format!(
            "REPLAY_SEED={} REPLAY_N={} REPLAY_TIMING={}{}",
            self.seed,
            self.requests,
            self.timing.name(),
            if self.stranded {
                " (the stranded test)"
            } else if self.burst {
                " (the burst test)"
            } else {
                ""
            }
        )
    }
}

/// The end of a run: the printed report and every verdict violation.
pub struct Run {
    pub report: String,
    pub failures: Vec<String>,
}

/// What the workers counted (the report, never the verdict).
#[derive(Default)]
struct Stats {
    invocations: u64,
    records: u64,
    direct: u64,
    replay_records: u64,
    tally: Tally,
    crashes: BTreeMap<&'static str, u64>,
    /// Reconciler and `sweep --repair` runs: started, and crashed by point.
    runs: BTreeMap<&'static str, u64>,
    run_crashes: BTreeMap<String, u64>,
}

struct Shared {
    ctl: Arc<Control>,
    reasons: chaos::Reasons,
    stats: Mutex<Stats>,
    replay_phase: AtomicBool,
}

impl Shared {
    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Ended {
    Reply(Result<(Value, Tally), StepError>),
    Crashed(&'static str),
}

/// One invocation, crashable: dropped the moment something fires its crash signal, killed
/// at a random time for a few, and cut at the invocation timeout.
async fn invoke<S: Step>(handler: &Handler<Chaos<S>>, payload: Value, shared: &Shared) -> Ended {
    let signal = Arc::new(chaos::CrashSignal::default());
    let kill = shared
        .ctl
        .draw(shared.ctl.rates.kill)
        .then(|| shared.ctl.uniform(400));
    let deadline = SystemTime::now() + INVOCATION_TIMEOUT;
    let run = CRASH.scope(
        signal.clone(),
        tokio::time::timeout(INVOCATION_TIMEOUT, handler.handle(payload, Some(deadline))),
    );
    let killer = async {
        match kill {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        biased;
        _ = signal.wait() => Ended::Crashed(signal.fired().unwrap_or(chaos::KILLED)),
        _ = killer => Ended::Crashed(chaos::KILLED),
        r = run => match (r, signal.fired()) {
            (_, Some(point)) => Ended::Crashed(point),
            (Ok(reply), None) => Ended::Reply(reply),
            (Err(_), None) => Ended::Crashed(chaos::TIMED_OUT),
        },
    };
    if let Ended::Crashed(point) = &ended {
        *shared.stats().crashes.entry(point).or_default() += 1;
    }
    ended
}

/// One reconciler (or `sweep --repair`) run, crashable as an invocation is: dropped the
/// moment something fires its crash signal (at a ledger write, around PutEvents, before the
/// announced flag), or killed at a random time. `None` when it crashed or failed.
async fn run_crashable(
    reconciler: &Reconciler,
    what: &'static str,
    deadline: Option<SystemTime>,
    shared: &Shared,
) -> Option<onboarding::reconcile::Report> {
    *shared.stats().runs.entry(what).or_default() += 1;
    let signal = Arc::new(chaos::CrashSignal::default());
    let kill = shared
        .ctl
        .draw(shared.ctl.rates.kill)
        .then(|| shared.ctl.uniform(400));
    let run = CRASH.scope(signal.clone(), reconciler.run(deadline, false));
    let killer = async {
        match kill {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    let crashed = |point: &'static str| {
        *shared
            .stats()
            .run_crashes
            .entry(format!("{what}: {point}"))
            .or_default() += 1;
        None
    };
    tokio::select! {
        biased;
        _ = signal.wait() => crashed(signal.fired().unwrap_or(chaos::KILLED)),
        _ = killer => crashed(chaos::KILLED),
        r = run => match (r, signal.fired()) {
            (_, Some(point)) => crashed(point),
            (Ok(report), None) => Some(report),
            // A run that fails (a throttled index read) is the next run's to redo.
            (Err(_), None) => None,
        },
    }
}

/// Receives and handles batches until the queue is drained.
async fn worker<S: Step>(
    handler: Arc<Handler<Chaos<S>>>,
    queue: Arc<SimQueue>,
    shared: Arc<Shared>,
) {
    loop {
        let messages = queue.receive(10);
        if messages.is_empty() {
            if queue.is_drained() {
                return;
            }
            let wait = queue
                .next_visible_in()
                .unwrap_or(Duration::from_millis(20))
                .clamp(Duration::from_millis(2), Duration::from_millis(50));
            tokio::time::sleep(wait).await;
            continue;
        }
        let (direct, batch): (Vec<Message>, Vec<Message>) =
            messages.into_iter().partition(|m| m.direct);
        {
            let mut s = shared.stats();
            s.invocations += direct.len() as u64 + u64::from(!batch.is_empty());
            s.records += (direct.len() + batch.len()) as u64;
            s.direct += direct.len() as u64;
            if shared.replay_phase.load(Ordering::Relaxed) {
                s.replay_records += (direct.len() + batch.len()) as u64;
            }
        }
        let sqs = async {
            if batch.is_empty() {
                return;
            }
            let records: Vec<SqsRecord> = batch
                .iter()
                .map(|m| SqsRecord {
                    message_id: m.id.clone(),
                    body: m.body.clone(),
                    group_id: None,
                    receive_count: m.receives,
                })
                .collect();
            match invoke(&handler, sqs_batch_from(&queue.arn, &records), &shared).await {
                Ended::Reply(Ok((reply, tally))) => {
                    shared.stats().tally.add(tally);
                    let failed = failed_ids(&reply);
                    for m in batch {
                        if failed.contains(&m.id) {
                            let why = shared.reasons.take(&m.id).unwrap_or_else(|| {
                                "reported in batchItemFailures (no reason logged)".into()
                            });
                            queue.fail(m, why);
                        } else {
                            queue.ack(m);
                        }
                    }
                }
                Ended::Reply(Err(e)) => {
                    for m in batch {
                        queue.fail(m, format!("the whole batch failed: {e}"));
                    }
                }
                Ended::Crashed(point) => {
                    for m in batch {
                        queue.lost(m, point);
                    }
                }
            }
        };
        let directs = futures::future::join_all(direct.into_iter().map(|m| {
            let handler = &handler;
            let shared = &shared;
            let queue = &queue;
            async move {
                let payload: Value = serde_json::from_str(&m.body).unwrap_or(Value::Null);
                match invoke(handler, payload, shared).await {
                    Ended::Reply(Ok((_, tally))) => {
                        shared.stats().tally.add(tally);
                        queue.ack(m);
                    }
                    Ended::Reply(Err(e)) => {
                        shared.stats().tally.retries += 1;
                        queue.fail(m, e.to_string());
                    }
                    Ended::Crashed(point) => queue.lost(m, point),
                }
            }
        }));
        futures::join!(sqs, directs);
    }
}

fn spawn_workers<S: Step + 'static>(
    n: usize,
    handler: &Arc<Handler<Chaos<S>>>,
    queue: &Arc<SimQueue>,
    shared: &Arc<Shared>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    for _ in 0..n {
        tasks.push(tokio::spawn(worker(
            handler.clone(),
            queue.clone(),
            shared.clone(),
        )));
    }
}

fn total_calls(c: &Counters) -> BTreeMap<String, u64> {
    c.calls.clone()
}

fn total_created(c: &Counters) -> u64 {
    c.creates.values().map(|x| x.created).sum()
}

/// Scans the whole ledger table (every page).
async fn scan_ledger(stack: &Stack) -> Result<Vec<Record>, String> {
    let client = aws_sdk_dynamodb::Client::new(&stack.config);
    let mut records = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(&stack.table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| format!("scanning the ledger: {e:?}"))?;
        for item in out.items() {
            records.push(Record::from_item(item).map_err(|e| e.to_string())?);
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(records),
        }
    }
}

/// The burst mode: events a second (each to the three queues), the backfill bench's `--rate`.
const BURST_RATE: f64 = 100.0;
/// The burst mode: the emulator's quotas at this share of their rates (bursts as they are):
/// the management account's AssumeRole at 4 a second, which 150 accounts' steps exceed.
const BURST_QUOTA_SCALE: f64 = 0.04;

/// The stranded variant: receives per message (a few, where the grace window needs many).
const STRANDED_RECEIVES: u32 = 4;
/// The stranded variant: share of failed deliveries whose message is dropped for good.
const STRANDED_DROP_RATE: f64 = 0.2;
/// The stranded variant: how long a new instance stays `CREATE_IN_PROGRESS`, longer than
/// its message's receives last.
const STRANDED_ACTIVATION: Duration = Duration::from_secs(5);
/// The stranded variant: the reconciler function's time limit (it stops starting work 30 s
/// before it, as in production).
const RECONCILER_TIMEOUT: Duration = Duration::from_secs(50);
/// The stranded variant: the reconciler's schedule (15 minutes in production).
const RECONCILE_EVERY: Duration = Duration::from_secs(1);
/// `onboarding sweep --repair` by hand, alongside the scheduled reconciler: every so often.
const SWEEP_EVERY: Duration = Duration::from_secs(3);

/// The stranded variant: runs after the deliveries, beyond the grace window's seconds (a run
/// a second), before a step still not final is a violation.
const SPARE_RECONCILER_RUNS: u32 = 70;

/// After the deliveries: the reconciler runs on its schedule until no step is left that is
/// not final, K runs. Every step the ledger knows must then be READY or FAILED.
async fn finish_stranded(
    reconciler: &onboarding::reconcile::Reconciler,
    (runs, redriven_during): (u32, u32),
    grace: Duration,
    failures: &mut Vec<String>,
    seed: u64,
) -> String {
    let mut k = 0u32;
    let (mut redriven, mut finished) = (0u32, 0u32);
    let mut left = usize::MAX;
    let mut last_lines = String::new();
    let max_runs = grace.as_secs() as u32 + SPARE_RECONCILER_RUNS;
    while k < max_runs {
        k += 1;
        let deadline = SystemTime::now() + RECONCILER_TIMEOUT;
        match reconciler.run(Some(deadline), false).await {
            Ok(report) => {
                redriven += report.redriven;
                finished += report.finished;
                left = report.attention - report.failed as usize;
                last_lines = report
                    .steps
                    .iter()
                    .filter(|l| l.action != "audit")
                    .map(|l| format!("{} {} {}: {}", l.key, l.status, l.action, l.result))
                    .collect::<Vec<_>>()
                    .join("; ");
                if left == 0 {
                    break;
                }
            }
            Err(e) => eprintln!("reconciler run {k} failed (the next one redoes it): {e}"),
        }
        tokio::time::sleep(RECONCILE_EVERY).await;
    }
    if left != 0 {
        failures.push(format!(
            "STUCK: {left} step(s) still not final after {k} reconciler runs (the last run: {last_lines}) [seed {seed}]"
        ));
    }
    format!(
        "{runs} reconciler runs alongside the deliveries ({redriven_during} re-drives); after \
         them K = {k} run(s) until no step was left unfinished ({redriven} re-drives, \
         {finished} finished), {left} left"
    )
}

/// Runs the whole replay; the report and the verdict's violations.
pub async fn run(opts: &Options) -> Run {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let seed = opts.seed;
    let timing = &opts.timing;
    println!(
        "replay: seed {seed} (reproduce with {}), {} workers per queue\n  timing: {}",
        opts.reproduce(),
        opts.workers,
        timing.describe()
    );
    let reasons = chaos::reasons();
    let mut rng = StdRng::seed_from_u64(seed);
    let events_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let plan = match plan::generate(opts.requests, &mut rng, &events_dir, timing) {
        Ok(plan) => plan,
        Err(e) => {
            return Run {
                report: String::new(),
                failures: vec![format!("cannot build the plan: {e}")],
            }
        }
    };
    let mut plan = plan;
    if opts.stranded {
        plan.emulator.instance_activation_ms = STRANDED_ACTIVATION.as_millis() as u64;
    }
    let emulator_config = plan.emulator.clone();
    let stack = Arc::new(Stack::start_unobserved("replay", plan.emulator.clone()).await);
    for (id, secret) in plan::SECRETS {
        stack
            .put_secret(id, &json!({ "client_secret": secret }))
            .await;
    }

    // Every AWS client of the functions retries as deployed (`onboarding::aws::retries`:
    // the standard mode, 3 attempts), its backoff scaled down like the lease and the queue
    // timings.
    let config = stack
        .config
        .to_builder()
        .retry_config(
            onboarding::aws::retries()
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(400)),
        )
        .build();
    let queue_settings = QueueSettings {
        visibility_timeout: Duration::from_millis(1000),
        first_backoff: timing.first_backoff,
        max_backoff: timing.max_backoff,
        max_receive_count: timing.max_receive_count(),
        direct_max_receive_count: timing.direct_max_receive_count(),
        drop_rate: 0.0,
    };
    let queue_settings = if opts.stranded {
        QueueSettings {
            max_receive_count: STRANDED_RECEIVES,
            direct_max_receive_count: STRANDED_RECEIVES,
            drop_rate: STRANDED_DROP_RATE,
            ..queue_settings
        }
    } else {
        queue_settings
    };
    let queues: HashMap<&'static str, Arc<SimQueue>> =
        [verdict::INSTANCE, verdict::APPROVAL, verdict::WEB]
            .into_iter()
            .map(|n| (n, Arc::new(SimQueue::new(n, queue_settings.clone()))))
            .collect();
    let watcher = Ledger::new(
        aws_sdk_dynamodb::Client::new(&stack.config),
        stack.table.clone(),
    );
    let ctl = Control::new(seed, opts.rates.clone(), watcher, queues.clone());

    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(stack.ledger_requests.clone())
            .interceptor(LedgerFaults(ctl.clone()))
            .build(),
    );
    let eventbridge = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&config)
            .interceptor(AnnounceCrashes(ctl.clone()))
            .build(),
    );
    let engine = Engine::new(
        Ledger::new(dynamodb, stack.table.clone()),
        Announcer::new(eventbridge, stack.bus.clone(), SOURCE.into()),
        EngineSettings {
            lease: LEASE,
            ready_wait: Duration::from_millis(600),
            member_role_grace: timing.grace,
            retry_base: timing.retry_base,
            retry_max: timing.retry_max,
        },
    );
    let accept = stack.settings.accept.clone();
    let role = stack.settings.member_role_name.clone();
    // Each handler delays its failed records on its own queue.
    let redelivery = |name: &str| -> Arc<dyn Redelivery> { queues[name].clone() };
    let instance = Arc::new(
        Handler::new(
            engine.signing_as(iam::credentials(iam::INSTANCE_ROLE)),
            Chaos::new(
                IdentityCenterInstance::new(MemberAccess::new(
                    &iam::config_as(&config, iam::INSTANCE_ROLE),
                    role.as_str(),
                    "aws",
                )),
                ctl.clone(),
            ),
            accept.clone(),
        )
        .with_redelivery(redelivery(verdict::INSTANCE)),
    );
    let approval = Arc::new(
        Handler::new(
            engine.signing_as(iam::credentials(iam::APPROVAL_ROLE)),
            Chaos::new(
                ApprovalIdentitySource::new(
                    aws_sdk_mpa::Client::new(&iam::config_as(&config, iam::APPROVAL_ROLE)),
                    stack.organization_instance_arn.clone(),
                    REGION.into(),
                ),
                ctl.clone(),
            ),
            accept.clone(),
        )
        .with_redelivery(redelivery(verdict::APPROVAL)),
    );
    let web = Arc::new(
        Handler::new(
            engine.signing_as(iam::credentials(iam::WEB_ROLE)),
            Chaos::new(
                WebIdentityProvider::new(
                    MemberAccess::new(
                        &iam::config_as(&config, iam::WEB_ROLE),
                        role.as_str(),
                        "aws",
                    ),
                    aws_sdk_secretsmanager::Client::new(&iam::config_as(&config, iam::WEB_ROLE)),
                ),
                ctl.clone(),
            ),
            accept,
        )
        .with_redelivery(redelivery(verdict::WEB)),
    );

    // The emulator's faults: 10% throttling, 5% server errors, 2% lost responses after the
    // operation committed, added latency; creates a little slower; 4% of CreateInstance calls
    // answer ConflictException for a write that has not propagated (nothing done: the step
    // finds no instance, retries inside the grace window, and must end READY).
    // In the burst mode the quotas throttle, not a fixed share of calls.
    let throttle_rate = if opts.burst { 0.0 } else { 0.10 };
    let emulator_rule = |latency_ms| FaultRule {
        throttle_rate,
        server_error_rate: 0.05,
        commit_then_fail_rate: 0.01,
        commit_then_drop_rate: 0.01,
        latency_ms,
        max_faults: None,
        ..FaultRule::default()
    };
    let mut faults = FaultConfig::new(seed).with_rule("*", emulator_rule(2));
    for op in [
        "CreateInstance",
        "CreateIdentitySource",
        "CreateIdentityProvider",
    ] {
        let mut rule = emulator_rule(15);
        if op == "CreateInstance" {
            rule.conflict_rate = 0.04;
        }
        faults = faults.with_rule(op, rule);
    }
    stack.emulator.set_faults(faults);
    if opts.burst {
        stack
            .emulator
            .set_quotas(Some(QuotaConfig::documented().scaled(BURST_QUOTA_SCALE)));
    }

    // Captured events, drained while the run goes on.
    let emitted = Arc::new(Mutex::new(Vec::<Value>::new()));
    let stop_drain = Arc::new(AtomicBool::new(false));
    let drain = {
        let (stack, emitted, stop) = (stack.clone(), emitted.clone(), stop_drain.clone());
        tokio::spawn(async move {
            loop {
                let stopping = stop.load(Ordering::SeqCst);
                let batch = stack.emitted().await;
                if let Ok(mut e) = emitted.lock() {
                    e.extend(batch);
                }
                if stopping {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };

    let shared = Arc::new(Shared {
        ctl: ctl.clone(),
        reasons: reasons.clone(),
        stats: Mutex::new(Stats::default()),
        replay_phase: AtomicBool::new(false),
    });
    let mut sqs_sent: HashMap<(&'static str, usize), u64> = HashMap::new();
    // Event id -> original, for the events the functions emit (they name the request).
    let mut origin_of: HashMap<String, usize> = HashMap::new();
    for (i, o) in plan.originals.iter().enumerate() {
        if let Some(id) = o.event.as_ref().and_then(|e| e["id"].as_str()) {
            ctl.register(id, i, &o.body);
            origin_of.insert(id.to_string(), i);
        }
    }
    // Each queue's copies, shuffled; sent interleaved across the queues, as one rule fans
    // each event out to all three.
    let feeds: Vec<(&'static str, Vec<(usize, u32)>)> =
        [verdict::INSTANCE, verdict::APPROVAL, verdict::WEB]
            .into_iter()
            .map(|name| (name, plan::deliveries(&plan.originals, &mut rng)))
            .collect();
    let longest = feeds.iter().map(|(_, d)| d.len()).max().unwrap_or(0);
    let sends: Vec<(&'static str, String, usize)> = (0..longest)
        .flat_map(|i| {
            feeds.iter().filter_map(move |(name, d)| {
                d.get(i)
                    .map(|(origin, copy)| (*name, format!("{name}-{origin}-{copy}"), *origin))
            })
        })
        .collect();
    for (name, _, origin) in &sends {
        if !plan.originals[*origin].direct {
            *sqs_sent.entry((*name, *origin)).or_default() += 1;
        }
    }
    let feeder = if opts.burst {
        // Paced: the queues stay open until the last message is sent.
        for queue in queues.values() {
            queue.set_feeding(true);
        }
        let queues = queues.clone();
        let bodies: Vec<(String, bool)> = plan
            .originals
            .iter()
            .map(|o| (o.body.clone(), o.direct))
            .collect();
        Some(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            for (i, (name, id, origin)) in sends.into_iter().enumerate() {
                // BURST_RATE events a second, each to the three queues.
                let due = started + Duration::from_secs_f64(i as f64 / 3.0 / BURST_RATE);
                tokio::time::sleep_until(due).await;
                let (body, direct) = &bodies[origin];
                queues[name].send(id, body.clone(), *direct, origin);
            }
            for queue in queues.values() {
                queue.set_feeding(false);
            }
            started.elapsed()
        }))
    } else {
        for (name, id, origin) in sends {
            let o = &plan.originals[origin];
            queues[name].send(id, o.body.clone(), o.direct, origin);
        }
        None
    };
    let mut send = |queue: &Arc<SimQueue>, id: String, body: &str, direct: bool, origin: usize| {
        if !direct {
            *sqs_sent.entry((queue.name, origin)).or_default() += 1;
        }
        queue.send(id, body.to_string(), direct, origin);
    };

    let phase = |shared: Arc<Shared>| {
        let mut tasks = Vec::new();
        spawn_workers(
            opts.workers,
            &instance,
            &queues[verdict::INSTANCE],
            &shared,
            &mut tasks,
        );
        spawn_workers(
            opts.workers,
            &approval,
            &queues[verdict::APPROVAL],
            &shared,
            &mut tasks,
        );
        spawn_workers(
            opts.workers,
            &web,
            &queues[verdict::WEB],
            &shared,
            &mut tasks,
        );
        futures::future::join_all(tasks)
    };
    let mut failures = Vec::new();
    // The scheduled reconciler (every variant but the burst), alongside the deliveries, and
    // an operator's `onboarding sweep --repair` beside it: the CLI builds the reconciler
    // with a whole day's audit interval and drift repair on, and runs it with no deadline
    // (cli/src/sweep.rs); here with the operator's policy and the run's engine (its faults
    // and crashes, its scaled lease). Both crash as invocations do.
    let reconciler = (!opts.burst).then(|| {
        Arc::new(stack.reconciler_with(
            engine.clone(),
            ReconcileSettings {
                interval: Duration::from_secs(60),
                repair_drift: false,
                stuck_after: timing.grace,
            },
        ))
    });
    let sweep = (!opts.burst).then(|| {
        let operator = iam::config_as(&config, iam::OPERATOR);
        Arc::new(
            Reconciler::new(
                engine.signing_as(iam::credentials(iam::OPERATOR)),
                IdentityCenterInstance::new(MemberAccess::new(&operator, role.as_str(), "aws")),
                WebIdentityProvider::new(
                    MemberAccess::new(&operator, role.as_str(), "aws"),
                    aws_sdk_secretsmanager::Client::new(&operator),
                ),
                Some(ApprovalIdentitySource::new(
                    aws_sdk_mpa::Client::new(&operator),
                    stack.organization_instance_arn.clone(),
                    REGION.into(),
                )),
                ReconcileSettings {
                    interval: Duration::from_secs(24 * 3600),
                    repair_drift: true,
                    stuck_after: timing.grace,
                },
            )
            .with_organizations(Organizations::new(&operator)),
        )
    });
    let deliveries_over = Arc::new(AtomicBool::new(false));
    let alongside = reconciler.clone().map(|reconciler| {
        let (over, shared) = (deliveries_over.clone(), shared.clone());
        tokio::spawn(async move {
            let (mut runs, mut redriven) = (0u32, 0u32);
            while !over.load(Ordering::SeqCst) {
                let deadline = SystemTime::now() + RECONCILER_TIMEOUT;
                let run = run_crashable(&reconciler, "reconciler", Some(deadline), &shared);
                if let Some(report) = run.await {
                    redriven += report.redriven;
                }
                runs += 1;
                tokio::time::sleep(RECONCILE_EVERY).await;
            }
            (runs, redriven)
        })
    });
    let sweeping = sweep.clone().map(|sweep| {
        let (over, shared) = (deliveries_over.clone(), shared.clone());
        tokio::spawn(async move {
            while !over.load(Ordering::SeqCst) {
                tokio::time::sleep(SWEEP_EVERY).await;
                run_crashable(&sweep, "sweep --repair", None, &shared).await;
            }
        })
    });
    for r in phase(shared.clone()).await {
        if let Err(e) = r {
            failures.push(format!("a worker task failed: {e} [seed {seed}]"));
        }
    }
    deliveries_over.store(true, Ordering::SeqCst);
    let main_wall = started.elapsed();
    let burst = match feeder {
        Some(feeder) => {
            let fed = feeder.await.unwrap_or_default();
            let c = stack.emulator.counters();
            let refused: Vec<String> = c
                .throttled
                .iter()
                .map(|(op, n)| format!("{op} {n}"))
                .collect();
            Some(format!(
                "burst: messages fed at {BURST_RATE} events/s in {:.1}s; quotas at \
                 {BURST_QUOTA_SCALE}x the documented rates refused {} call(s) ({})",
                fed.as_secs_f64(),
                c.throttled.values().sum::<u64>(),
                refused.join(", "),
            ))
        }
        None => None,
    };

    // Leases expire; is every step finished before the archive replay?
    tokio::time::sleep(LEASE + Duration::from_millis(200)).await;
    let during = match alongside {
        Some(alongside) => alongside.await.unwrap_or_default(),
        None => (0, 0),
    };
    if let Some(sweeping) = sweeping {
        if let Err(e) = sweeping.await {
            failures.push(format!("the sweep task failed: {e} [seed {seed}]"));
        }
    }
    let mut stranded = match &reconciler {
        Some(reconciler) if opts.stranded => {
            Some(finish_stranded(reconciler, during, timing.grace, &mut failures, seed).await)
        }
        _ => None,
    };
    let expect = plan::expectations(&plan.originals, &emulator_config);
    let keys = &expect.keys;
    let before = match scan_ledger(&stack).await {
        Ok(r) => r,
        Err(e) => {
            failures.push(e);
            Vec::new()
        }
    };
    let finished: HashMap<String, bool> = before
        .iter()
        .map(|r| {
            (
                r.key.to_string(),
                matches!(
                    r.status,
                    onboarding::ledger::Status::Ready
                        | onboarding::ledger::Status::Failed
                        | onboarding::ledger::Status::Retired
                ),
            )
        })
        .collect();
    let terminal_before_replay = keys
        .keys()
        .all(|k| finished.get(k).copied().unwrap_or(false));
    let counters_before = stack.emulator.counters();
    let dead_before_replay: Vec<queue::DeadLetter> =
        queues.values().flat_map(|q| q.dead_letters()).collect();

    // The archive replay: every event again, new id, replay-name.
    shared.replay_phase.store(true, Ordering::SeqCst);
    let replay_name = format!("identity-onboarding-replay-{seed}");
    for (i, o) in plan.originals.iter().enumerate() {
        let Some(event) = &o.event else { continue };
        let again = plan::replayed(event, &mut rng, &replay_name);
        let body = again.to_string();
        if let Some(id) = again["id"].as_str() {
            ctl.register(id, i, &body);
            origin_of.insert(id.to_string(), i);
        }
        for (name, queue) in &queues {
            send(queue, format!("{name}-{i}-replay"), &body, o.direct, i);
        }
    }
    for r in phase(shared.clone()).await {
        if let Err(e) = r {
            failures.push(format!("a worker task failed: {e} [seed {seed}]"));
        }
    }
    // What the archive replay's own stranded messages left is the reconciler's again.
    if let (Some(reconciler), Some(line)) = (reconciler.as_deref(), &mut stranded) {
        let again = finish_stranded(reconciler, (0, 0), timing.grace, &mut failures, seed).await;
        line.push_str(&format!("\n  after the archive replay: {again}"));
    }
    let counters_after = stack.emulator.counters();
    let calls_before = total_calls(&counters_before);
    let replay_calls: BTreeMap<String, u64> = total_calls(&counters_after)
        .into_iter()
        .map(|(op, n)| {
            let diff = n - calls_before.get(&op).copied().unwrap_or(0);
            (op, diff)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let replay_created = total_created(&counters_after) - total_created(&counters_before);

    // Quiet: no more faults; every lease expires; the last events are drained.
    ctl.set_enabled(false);
    stack.emulator.set_faults(FaultConfig::new(seed));
    tokio::time::sleep(LEASE + Duration::from_millis(200)).await;
    // The scheduled reconciler's next run, without faults: whatever was recorded and not
    // marked announced is its to announce (the outbox), before the verdict counts events.
    let mut quiet_run = String::new();
    if let Some(reconciler) = &reconciler {
        let deadline = SystemTime::now() + RECONCILER_TIMEOUT;
        quiet_run = match reconciler.run(Some(deadline), false).await {
            Ok(r) => format!(
                "\n  the quiet reconciler run: {} in the attention index, {} re-driven, {} audited, {} drift",
                r.attention, r.redriven, r.audited, r.drift
            ),
            Err(e) => {
                failures.push(format!("the quiet reconciler run failed: {e} [seed {seed}]"));
                String::new()
            }
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop_drain.store(true, Ordering::SeqCst);
    if let Err(e) = drain.await {
        failures.push(format!("draining the emitted events failed: {e}"));
    }
    let emitted: Vec<Value> = emitted.lock().map(|e| e.clone()).unwrap_or_default();
    let ledger = match scan_ledger(&stack).await {
        Ok(r) => r,
        Err(e) => {
            failures.push(e);
            Vec::new()
        }
    };
    let state = stack.emulator.state();
    let dead_letters: Vec<queue::DeadLetter> =
        queues.values().flat_map(|q| q.dead_letters()).collect();
    let unsettled: usize = queues.values().map(|q| q.counts().3).sum();
    let foreign_now = read_foreign_providers(&stack, &expect, &state).await;
    let counters = stack.emulator.counters();
    let writes = ctl.writes();
    // The first AssumeRole into each account, by anyone (a delivery, the reconciler, an
    // operator's sweep): the emulator starts a late role's clock there.
    let mut first_assume = ctl.first_assume();
    for (account, ms) in stack.emulator.role_clocks() {
        let first = first_assume.entry(account).or_insert(ms);
        *first = (*first).min(ms);
    }

    let (violations, summary) = verdict::check(&verdict::Evidence {
        seed,
        started,
        timing,
        originals: &plan.originals,
        expect: &expect,
        emulator_config: &emulator_config,
        emulator_state: &state,
        counters: &counters,
        ledger: &ledger,
        emitted: &emitted,
        origin_of: &origin_of,
        writes: &writes,
        foreign_now: &foreign_now,
        first_assume: &first_assume,
        dead_letters: &dead_letters,
        stranded: opts.stranded,
        sqs_sent: &sqs_sent,
        unsettled,
        terminal_before_replay,
        ledger_before_replay: &before,
        dead_before_replay: &dead_before_replay,
        replay_calls: replay_calls.clone(),
        replay_created,
        started_at,
    });
    failures.extend(violations);

    // The report.
    let stats = shared.stats();
    let creates = [
        "CreateInstance",
        "CreateIdentitySource",
        "CreateIdentityProvider",
    ];
    let create_calls: u64 = creates.iter().map(|op| counters.calls(op)).sum();
    let created: u64 = creates.iter().map(|op| counters.created(op)).sum();
    let returned_existing: u64 = creates
        .iter()
        .map(|op| counters.returned_existing(op))
        .sum();
    let emulator_faults = counters.faults.values().fold((0, 0, 0), |acc, f| {
        (
            acc.0 + f.throttled,
            acc.1 + f.server_errors,
            acc.2 + f.commit_then_fail + f.commit_then_drop,
        )
    });
    let ddb = stack.ledger_requests.get();
    let enqueued: u64 = queues.values().map(|q| q.counts().0).sum();
    let injected: u64 = queues.values().map(|q| q.counts().1).sum();
    let generated = plan.originals.len();
    let crashes = stats
        .crashes
        .iter()
        .map(|(p, n)| format!("\n    {n:>5}  {p}"))
        .chain(
            stats
                .run_crashes
                .iter()
                .map(|(p, n)| format!("\n    {n:>5}  {p}")),
        )
        .collect::<String>();
    let runs = stats
        .runs
        .iter()
        .map(|(what, n)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ");
    let dlq_by_queue = queues
        .iter()
        .map(|(n, q)| format!("{n} {}", q.dead_letters().len()))
        .collect::<Vec<_>>()
        .join(", ");
    let delays =
        queues
            .values()
            .map(|q| q.delays())
            .fold(queue::Delays::default(), |mut all, d| {
                all.applied += d.applied;
                all.refused += d.refused;
                all.on_acked += d.on_acked;
                all.refusals.extend(d.refusals);
                all.shortest = all.shortest.min(d.shortest).or(all.shortest.or(d.shortest));
                all.longest = all.longest.max(d.longest);
                all
            });
    let redelivered = format!(
        "{} failed records came back after the delay their handler set ({}-{}), {} delays refused{}, {} set on records then acknowledged",
        delays.applied,
        delays.shortest.map_or("-".into(), |d| format!("{:.2}s", d.as_secs_f64())),
        delays.longest.map_or("-".into(), |d| format!("{:.2}s", d.as_secs_f64())),
        delays.refused,
        delays
            .refusals
            .iter()
            .map(|r| format!(" [{r}]"))
            .collect::<String>(),
        delays.on_acked,
    );
    let conflicts = counters.faults("CreateInstance").conflicts;
    let applied_writes = writes.iter().filter(|w| w.applied).count();
    // How long steps took from their first attempt to READY or FAILED (against the window).
    let lifetimes = |status: onboarding::ledger::Status| {
        let mut ms: Vec<u64> = before
            .iter()
            .filter(|r| r.status == status)
            .filter_map(|r| Some(r.updated_at?.saturating_sub(r.first_attempt_at?)))
            .collect();
        ms.sort_unstable();
        let at = |p: usize| {
            ms.get((ms.len() * p / 100).min(ms.len().saturating_sub(1)))
                .map_or("-".to_string(), |ms| format!("{:.1}s", *ms as f64 / 1000.0))
        };
        format!("median {}, p95 {}, max {}", at(50), at(95), at(100))
    };
    let lifetime = format!(
        "first attempt to READY: {}; to FAILED: {} (grace window {})",
        lifetimes(onboarding::ledger::Status::Ready),
        lifetimes(onboarding::ledger::Status::Failed),
        plan::secs(timing.grace)
    );
    let report = format!(
        "replay report (seed {seed}, {} timing)\n\
         \x20 timing: {}\n\
         \x20 input: {} generated requests + events/ = {generated} events; {enqueued} messages on 3 queues ({} direct deliveries), {injected} injected takeover copies\n\
         \x20 deliveries: {} records in {} invocations ({} in the archive replay)\n\
         \x20 outcomes: {} created, {} adopted, {} duplicates suppressed, {} retries, {} permanent failures, {} rejected, {} skipped\n\
         \x20 create calls: {create_calls} -> {created} resources ({returned_existing} answered from the ClientToken)\n\
         \x20 dead-letter entries: {} ({dlq_by_queue})\n\
         \x20 DynamoDB requests: {ddb} ({:.2} per delivered record)\n\
         \x20 emulator faults: {} throttled, {} server errors, {} lost responses after commit, {conflicts} CreateInstance conflicts (not propagated)\n\
         \x20 redelivery: {redelivered}\n\
         \x20 {lifetime}\n\
         \x20 {}\n\
         \x20 refused stale writes (lost lease): {}; ledger writes logged: {} ({applied_writes} applied)\n\
         \x20 reconciler runs alongside the deliveries: {runs}{quiet_run}\n\
         \x20 crashes:{crashes}\n\
         \x20 archive replay: {} control-plane calls, {replay_created} new resources\n\
         \x20 {summary}{}\n\
         \x20 wall time: {:.1}s ({:.1}s before the archive replay)\n\
         \x20 verdict: {}",
        timing.name(),
        timing.describe(),
        opts.requests,
        stats.direct,
        stats.records,
        stats.invocations,
        stats.replay_records,
        stats.tally.created,
        stats.tally.adopted,
        stats.tally.duplicates,
        stats.tally.retries,
        stats.tally.failures,
        stats.tally.rejected,
        stats.tally.skipped,
        dead_letters.len(),
        ddb as f64 / stats.records.max(1) as f64,
        emulator_faults.0,
        emulator_faults.1,
        emulator_faults.2,
        ctl.injected.summary(),
        reasons.lost_leases.load(Ordering::Relaxed),
        writes.len(),
        replay_calls.values().sum::<u64>(),
        stranded
            .map(|line| format!("stranded: {line}"))
            .into_iter()
            .chain(burst)
            .map(|line| format!("\n  {line}"))
            .collect::<String>(),
        started.elapsed().as_secs_f64(),
        main_wall.as_secs_f64(),
        if failures.is_empty() {
            "PASS".to_string()
        } else {
            format!("FAIL ({} violations)", failures.len())
        },
    );
    Run { report, failures }
}

/// Each provider a request names, as its owner reads it now (GetIdentityProvider and
/// ListTagsForResource in its account), by key: foreign ones must be untouched, ours must
/// hold what the ledger records.
async fn read_foreign_providers(
    stack: &Stack,
    expect: &plan::Expectations,
    state: &Value,
) -> HashMap<String, Result<verdict::ProviderNow, String>> {
    let mut out = HashMap::new();
    for (name, x) in &expect.keys {
        if x.step != plan::WEB {
            continue;
        }
        let account = x.key.account_id().unwrap_or_default();
        let (portal, provider) = x
            .key
            .step
            .strip_prefix("web-identity-provider#")
            .and_then(|rest| rest.split_once('#'))
            .unwrap_or(("", ""));
        let arn = state["accounts"][account]["identity_providers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["portal_arn"] == portal && p["identity_provider_name"] == provider)
            .and_then(|p| p["identity_provider_arn"].as_str());
        let Some(arn) = arn else { continue };
        let client = aws_sdk_workspacesweb::Client::new(&stack.config_in(account).await);
        let read = client
            .get_identity_provider()
            .identity_provider_arn(arn)
            .send()
            .await;
        let now = match read {
            Ok(out) => match out.identity_provider() {
                Some(p) => {
                    let tags = client
                        .list_tags_for_resource()
                        .resource_arn(arn)
                        .send()
                        .await
                        .ok()
                        .map(|t| {
                            t.tags()
                                .iter()
                                .map(|t| (t.key().to_string(), t.value().to_string()))
                                .collect()
                        });
                    Ok(verdict::ProviderNow {
                        provider_type: p
                            .identity_provider_type()
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_default(),
                        details: p
                            .identity_provider_details()
                            .map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                            .unwrap_or_default(),
                        tags,
                    })
                }
                None => Err("no identity provider in the answer".to_string()),
            },
            Err(e) => Err(format!(
                "{}",
                aws_sdk_workspacesweb::error::DisplayErrorContext(&e)
            )),
        };
        out.insert(name.clone(), now);
    }
    out
}
