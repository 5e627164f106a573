//! The faults the replay injects besides the emulator's own: DynamoDB throttling, errors and
//! lost responses (an SDK interceptor on the engine's ledger client), worker crashes at the
//! worst points, and slow lease holders that lose their lease.
//!
//! A "crash" kills the whole invocation the way a dying Lambda process does: the code that
//! reaches a crash point fires the invocation's [`CrashSignal`] (a task-local set by the
//! worker) and the worker drops the invocation's future at once; its messages come back after
//! the visibility timeout, and the ledger claim it held stays until its lease expires.
//!
//! The ledger interceptor also keeps a log of every UpdateItem the engine sent that reached
//! DynamoDB ([`LedgerWrite`]): what kind of write it was, for which key and lease owner, when
//! it was sent and answered, and whether DynamoDB applied it (its real answer, before any
//! injected fault replaced it). The verdict finds stale writes in it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemInput};
use aws_sdk_eventbridge::operation::put_events::PutEventsInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeDeserializationInterceptorContextMut,
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use onboarding::error::StepError;
use onboarding::events::OnboardingRequest;
use onboarding::ledger::{Ledger, Record, Status, StepKey};
use onboarding::step::{Existing, Fields as StateFields, Plan, Readiness, Step};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::queue::SimQueue;

pub const CRASH_AFTER_CREATE: &str = "after the create call returned, before the ledger write";
pub const CRASH_BEFORE_PUT_EVENTS: &str =
    "before PutEvents (the resource exists; the ledger may say CREATED or READY)";
pub const CRASH_AFTER_PUT_EVENTS: &str = "after PutEvents, before the ledger write";
pub const CRASH_BEFORE_ANNOUNCED_FLAG: &str = "after PutEvents, before the announced flag";
pub const CRASH_BEFORE_WRITE: &str = "before a ledger write (nothing written)";
pub const CRASH_AFTER_WRITE: &str = "after a ledger write applied, before its answer";
pub const KILLED: &str = "killed at a random point";
pub const TIMED_OUT: &str = "invocation timed out";

/// How long a stalled holder waits for another delivery to take its step over.
const LEASE_STALL_LIMIT: Duration = Duration::from_secs(8);

/// Probabilities of each injected fault.
#[derive(Clone, Debug)]
pub struct Rates {
    /// Per create call: crash right after the create returned.
    pub crash_after_create: f64,
    /// Per create call: the holder stalls past its lease, a duplicate takes the step over,
    /// then the stale holder creates (same token) and tries to record it.
    pub stale_create: f64,
    /// Per create call: the holder stalls past its lease, a duplicate takes over, then the
    /// stale holder sees a permanent error and tries to record a failure.
    pub stale_conflict: f64,
    /// Per PutEvents: crash just before it.
    pub crash_before_put_events: f64,
    /// Per PutEvents: crash right after it succeeded (the completion write not yet done).
    pub crash_after_put_events: f64,
    /// Per "announced" ledger write: crash just before it (the event was already sent).
    pub crash_before_announced_flag: f64,
    /// Per ledger UpdateItem: crash just before it is sent / right after DynamoDB applied
    /// it (the answer never seen). Reconciler and `sweep` runs crash here too.
    pub crash_before_write: f64,
    pub crash_after_write: f64,
    /// Per PutEvents: the call returns an error and nothing is put on the bus (no crash):
    /// the whole call fails, or every entry comes back failed in a 200 answer.
    pub put_events_error: f64,
    pub put_events_entries_failed: f64,
    /// Per invocation (and per reconciler or `sweep` run): killed after a random 0-400 ms.
    pub kill: f64,
    /// Per DynamoDB attempt: throttled / 500 before anything is written (the SDK retries).
    pub ddb_throttle: f64,
    pub ddb_server_error: f64,
    /// Per DynamoDB attempt: written, then the response is lost (a 500 instead).
    pub ddb_lost_response: f64,
    /// Per DynamoDB operation: every attempt throttled (the ledger is unavailable).
    pub ddb_outage: f64,
    /// Per DynamoDB operation: every attempt written, every response lost.
    pub ddb_lost_all: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            crash_after_create: 0.04,
            stale_create: 0.03,
            stale_conflict: 0.03,
            crash_before_put_events: 0.03,
            crash_after_put_events: 0.03,
            crash_before_announced_flag: 0.03,
            crash_before_write: 0.01,
            crash_after_write: 0.01,
            put_events_error: 0.03,
            put_events_entries_failed: 0.02,
            kill: 0.015,
            ddb_throttle: 0.03,
            ddb_server_error: 0.02,
            ddb_lost_response: 0.02,
            ddb_outage: 0.01,
            ddb_lost_all: 0.01,
        }
    }
}

/// Counters of what was injected (diagnosis and the report; never the verdict).
#[derive(Debug, Default)]
pub struct Injected {
    pub ddb_throttled: AtomicU64,
    pub ddb_server_errors: AtomicU64,
    pub ddb_lost_responses: AtomicU64,
    pub ddb_outages: AtomicU64,
    pub ddb_lost_all: AtomicU64,
    pub stale_takeovers: AtomicU64,
    pub stale_without_takeover: AtomicU64,
    pub stale_conflicts: AtomicU64,
    pub stale_creates: AtomicU64,
    pub put_events_failed: AtomicU64,
    pub put_events_entries_failed: AtomicU64,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Injected {
    pub fn summary(&self) -> String {
        format!(
            "ledger: {} throttled + {} 5xx attempts (not written), {} lost responses after the write, \
             {} operations fully unavailable, {} operations written with every response lost; \
             stale holders: {} taken over ({} then created with the same token, {} then hit a \
             permanent error), {} not taken over in time; PutEvents: {} calls failed, {} \
             answered with every entry failed (nothing put on the bus, no crash)",
            get(&self.ddb_throttled),
            get(&self.ddb_server_errors),
            get(&self.ddb_lost_responses),
            get(&self.ddb_outages),
            get(&self.ddb_lost_all),
            get(&self.stale_takeovers),
            get(&self.stale_creates),
            get(&self.stale_conflicts),
            get(&self.stale_without_takeover),
            get(&self.put_events_failed),
            get(&self.put_events_entries_failed),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Crashes

/// Fired by whatever reaches a crash point inside one invocation.
#[derive(Debug, Default)]
pub struct CrashSignal {
    fired: AtomicBool,
    point: Mutex<Option<&'static str>>,
    notify: tokio::sync::Notify,
}

impl CrashSignal {
    pub fn fire(&self, point: &'static str) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            if let Ok(mut p) = self.point.lock() {
                *p = Some(point);
            }
        }
        self.notify.notify_one();
    }

    pub fn fired(&self) -> Option<&'static str> {
        if self.fired.load(Ordering::SeqCst) {
            self.point.lock().ok().and_then(|p| *p)
        } else {
            None
        }
    }

    pub async fn wait(&self) {
        self.notify.notified().await
    }
}

tokio::task_local! {
    /// The crash signal of the invocation the current task is running.
    pub static CRASH: Arc<CrashSignal>;
}

/// Fires the current invocation's crash signal; false outside an invocation.
fn crash_here(point: &'static str) -> bool {
    CRASH.try_with(|s| s.fire(point)).is_ok()
}

// ---------------------------------------------------------------------------------------
// Shared control

/// What the fault injectors share: the seeded RNG, the switch, the counters, and what a
/// stalled holder needs to provoke a takeover (the queues and the original events).
pub struct Control {
    rng: Mutex<StdRng>,
    pub rates: Rates,
    enabled: AtomicBool,
    pub injected: Injected,
    /// A ledger client without faults, to watch a stalled holder's item.
    watcher: Ledger,
    queues: HashMap<&'static str, Arc<SimQueue>>,
    /// Event id -> (origin index, body) of every event delivered.
    bodies: Mutex<HashMap<String, (usize, String)>>,
    /// Keys whose stale holder is about to create: the new holder waits for it.
    stale: Mutex<HashSet<String>>,
    sequence: AtomicU64,
    /// Create calls per step, for the faults every run forces (see [`forced`]).
    creates: Mutex<HashMap<&'static str, u64>>,
    /// Every ledger write that reached DynamoDB, in the order of their answers.
    writes: Mutex<Vec<LedgerWrite>>,
    /// Account -> epoch ms of the first AssumeRole into it that the role answered.
    first_assume: Mutex<HashMap<String, u64>>,
}

/// What a ledger UpdateItem does, told from its expressions (`onboarding::ledger::writes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// Creates the item or takes over an expired lease.
    Claim,
    /// The lease holder records the resource: CREATED, or READY (announced).
    Created,
    Ready,
    /// The lease holder records a permanent failure.
    FailPermanent,
    /// The lease holder gives up for now (IN_PROGRESS, lease released).
    Release,
    /// CREATED -> READY, fenced on generation and resource.
    Promote,
    /// CREATED -> FAILED, fenced on generation and resource.
    FailCreated,
    /// The outcome was announced.
    Announced,
    /// A newer request takes a READY step's update lease.
    UpdateClaim,
    /// The update's holder records the new applied state, refuses the revision for good, or
    /// releases the update lease for a later delivery.
    UpdateApplied,
    UpdateRefused,
    UpdateReleased,
    /// A claim's bookkeeping: the oldest of its recent events dropped (conditioned on the
    /// list's length; it changes nothing else, so it is allowed in any status).
    TrimEvents,
    /// An operator's retry (a new generation, from FAILED or a stuck step).
    OperatorRetry,
    /// A drift repair: a READY step restarted as a new generation.
    Repair,
    /// The audit's record of what it found (drift, or the applied state it read).
    Audit,
    /// A request's fields merged into the desired state.
    Desired,
    /// The account closed or left the organization: the step is RETIRED.
    Retire,
    /// A retired step reopened by a newer request (a new generation).
    Reopen,
    /// None of the above: the harness does not know this write.
    Unknown,
}

impl WriteKind {
    /// Makes the step READY or FAILED.
    pub fn terminal(self) -> bool {
        matches!(
            self,
            WriteKind::Ready
                | WriteKind::FailPermanent
                | WriteKind::Promote
                | WriteKind::FailCreated
        )
    }

    /// Conditioned on the (create) lease owner.
    pub fn leased(self) -> bool {
        matches!(
            self,
            WriteKind::Created | WriteKind::Ready | WriteKind::FailPermanent | WriteKind::Release
        )
    }

    /// Conditioned on the update lease owner.
    pub fn update_leased(self) -> bool {
        matches!(
            self,
            WriteKind::UpdateApplied | WriteKind::UpdateRefused | WriteKind::UpdateReleased
        )
    }

    /// Allowed on a READY step: the announced flag, the update writes, the audit's record,
    /// a merge of the desired state, and a retirement.
    pub fn after_ready(self) -> bool {
        matches!(
            self,
            WriteKind::Announced
                | WriteKind::UpdateClaim
                | WriteKind::Audit
                | WriteKind::Desired
                | WriteKind::Retire
                | WriteKind::TrimEvents
        ) || self.update_leased()
    }

    /// Allowed on a FAILED or RETIRED step: the announced flag, a merge of the desired
    /// state, a retirement and a claim's trim of its recent events.
    pub fn after_failed(self) -> bool {
        matches!(
            self,
            WriteKind::Announced | WriteKind::Desired | WriteKind::Retire | WriteKind::TrimEvents
        )
    }

    /// Starts a new generation: what was final before it is not final after it.
    pub fn new_generation(self) -> bool {
        matches!(
            self,
            WriteKind::Reopen | WriteKind::Repair | WriteKind::OperatorRetry
        )
    }
}

/// One UpdateItem attempt that reached DynamoDB.
#[derive(Clone, Debug)]
pub struct LedgerWrite {
    /// `scope/step`, as `StepKey` displays it.
    pub key: String,
    pub kind: WriteKind,
    /// The lease owner it was written by (claims) or conditioned on (lease holders' writes).
    pub owner: Option<String>,
    pub sent: Instant,
    pub answered: Instant,
    /// DynamoDB applied it (HTTP 200), whether or not the engine got that answer.
    pub applied: bool,
    /// The engine got this answer (no injected fault replaced it).
    pub seen: bool,
    /// A claim whose condition failed: the stored item's status and announced flag, as the
    /// engine read them.
    pub found: Option<(Status, bool)>,
    /// The error code a release or a failure records.
    pub code: Option<String>,
    /// The applied state and revision a completion or an update's end records (as stored).
    pub state: Option<String>,
    pub revision: Option<String>,
    /// What an audit records as drift (as stored).
    pub drift: Option<String>,
}

/// The key, kind and owner of a ledger UpdateItem.
#[derive(Clone, Debug)]
struct WriteInfo {
    key: String,
    kind: WriteKind,
    owner: Option<String>,
    code: Option<String>,
    state: Option<String>,
    revision: Option<String>,
    drift: Option<String>,
}

impl Storable for WriteInfo {
    type Storer = StoreReplace<Self>;
}

/// When the current attempt was sent.
#[derive(Clone, Copy, Debug)]
struct AttemptSent(Instant);

impl Storable for AttemptSent {
    type Storer = StoreReplace<Self>;
}

/// The current attempt's entry in the write log.
#[derive(Clone, Copy, Debug)]
struct Logged(usize);

impl Storable for Logged {
    type Storer = StoreReplace<Self>;
}

fn write_info(input: &UpdateItemInput) -> WriteInfo {
    let values = input.expression_attribute_values();
    let has = |k: &str| values.is_some_and(|v| v.contains_key(k));
    let string = |k: &str| {
        values
            .and_then(|v| v.get(k))
            .and_then(|a| a.as_s().ok())
            .cloned()
    };
    let update = input.update_expression().unwrap_or("");
    let condition = input.condition_expression().unwrap_or("");
    // Each write by the placeholders only it uses (shared/src/ledger/writes.rs).
    let kind = if update.starts_with("SET #announced ")
        || update.starts_with("REMOVE #outbox[0]")
        || update.starts_with("REMOVE #attention")
    {
        // An announcement marked (a flag, an outbox entry sent), or a step with nothing
        // outstanding leaving the attention index.
        WriteKind::Announced
    } else if has(":len") {
        WriteKind::TrimEvents
    } else if has(":why") {
        WriteKind::Retire
    } else if has(":retired") && has(":next") {
        WriteKind::Reopen
    } else if has(":version") && has(":lease") {
        WriteKind::UpdateClaim
    } else if has(":event") && condition.contains("attribute_not_exists") {
        WriteKind::Claim
    } else if has(":desired") && has(":newest") {
        WriteKind::Desired
    } else if has(":next") {
        match string(":from") {
            Some(from) if from == Status::Ready.as_str() => WriteKind::Repair,
            _ => WriteKind::OperatorRetry,
        }
    } else if has(":owner") && has(":ready") {
        // Fenced on the update owner of a READY step.
        if has(":state") {
            WriteKind::UpdateApplied
        } else if has(":refused") {
            WriteKind::UpdateRefused
        } else {
            WriteKind::UpdateReleased
        }
    } else if has(":owner") {
        match string(":to") {
            Some(to) if to == Status::Ready.as_str() => WriteKind::Ready,
            Some(to) if to == Status::Created.as_str() => WriteKind::Created,
            Some(_) => WriteKind::Unknown,
            None if has(":failed") => WriteKind::FailPermanent,
            None if has(":attempt") => WriteKind::Release,
            None => WriteKind::Unknown,
        }
    } else if has(":created") {
        if has(":failed") {
            WriteKind::FailCreated
        } else if has(":ready") {
            WriteKind::Promote
        } else {
            WriteKind::Unknown
        }
    } else if has(":ready") && has(":generation") {
        WriteKind::Audit
    } else {
        WriteKind::Unknown
    };
    let part = |name: &str| {
        input
            .key()
            .and_then(|k| k.get(name))
            .and_then(|a| a.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let code = values
        .and_then(|v| v.get(":reason"))
        .and_then(|r| r.as_m().ok())
        .and_then(|m| m.get("code"))
        .and_then(|c| c.as_s().ok())
        .cloned();
    WriteInfo {
        key: format!("{}/{}", part("pk"), part("sk")),
        kind,
        owner: string(":owner"),
        code,
        state: string(":state"),
        revision: string(":revision"),
        drift: string(":drift"),
    }
}

/// A fault chosen for one create call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CreateFault {
    None,
    StaleCreate,
    StaleConflict,
    CrashAfterCreate,
}

/// Faults forced on the n-th create call of each step (counting from 0), so that every run
/// exercises each scenario whatever the draws: the organization's single identity source
/// always gets a stale holder.
fn forced(n: u64) -> CreateFault {
    match n {
        0 | 4 | 11 | 23 | 47 => CreateFault::StaleCreate,
        2 | 7 | 17 | 37 => CreateFault::StaleConflict,
        1 | 9 | 29 => CreateFault::CrashAfterCreate,
        _ => CreateFault::None,
    }
}

impl Control {
    pub fn new(
        seed: u64,
        rates: Rates,
        watcher: Ledger,
        queues: HashMap<&'static str, Arc<SimQueue>>,
    ) -> Arc<Self> {
        Arc::new(Control {
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed_c4a0_5eed_c4a0)),
            rates,
            enabled: AtomicBool::new(true),
            injected: Injected::default(),
            watcher,
            queues,
            bodies: Mutex::new(HashMap::new()),
            stale: Mutex::new(HashSet::new()),
            sequence: AtomicU64::new(0),
            creates: Mutex::new(HashMap::new()),
            writes: Mutex::new(Vec::new()),
            first_assume: Mutex::new(HashMap::new()),
        })
    }

    /// Account -> epoch ms of the first AssumeRole of any step into it that the role answered
    /// (credentials or AccessDenied): the account's role clock had started by then.
    pub fn first_assume(&self) -> HashMap<String, u64> {
        self.first_assume
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// The ledger writes that reached DynamoDB so far.
    pub fn writes(&self) -> Vec<LedgerWrite> {
        self.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn log_write(&self, write: LedgerWrite) -> usize {
        let mut w = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        w.push(write);
        w.len() - 1
    }

    fn set_found(&self, index: usize, found: (Status, bool)) {
        if let Some(w) = self
            .writes
            .lock()
            .ok()
            .as_mut()
            .and_then(|w| w.get_mut(index))
        {
            w.found = Some(found);
        }
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    pub fn register(&self, event_id: &str, origin: usize, body: &str) {
        if let Ok(mut b) = self.bodies.lock() {
            b.insert(event_id.to_string(), (origin, body.to_string()));
        }
    }

    /// True with probability `p` (never while disabled).
    pub fn draw(&self, p: f64) -> bool {
        if p <= 0.0 || !self.enabled.load(Ordering::Relaxed) {
            return false;
        }
        self.rng.lock().map(|mut r| r.gen_bool(p)).unwrap_or(false)
    }

    pub fn uniform(&self, max_ms: u64) -> Duration {
        let ms = self
            .rng
            .lock()
            .map(|mut r| r.gen_range(0..=max_ms))
            .unwrap_or(0);
        Duration::from_millis(ms)
    }

    /// The fault of this create call of `step`: forced, else drawn.
    fn create_fault(&self, step: &'static str) -> CreateFault {
        if !self.enabled.load(Ordering::Relaxed) {
            return CreateFault::None;
        }
        let n = self
            .creates
            .lock()
            .map(|mut c| {
                let e = c.entry(step).or_default();
                *e += 1;
                *e - 1
            })
            .unwrap_or(u64::MAX);
        match forced(n) {
            CreateFault::None if self.draw(self.rates.stale_create) => CreateFault::StaleCreate,
            CreateFault::None if self.draw(self.rates.stale_conflict) => CreateFault::StaleConflict,
            CreateFault::None if self.draw(self.rates.crash_after_create) => {
                CreateFault::CrashAfterCreate
            }
            f => f,
        }
    }

    fn stale_begin(&self, key: &StepKey) {
        if let Ok(mut s) = self.stale.lock() {
            s.insert(key.to_string());
        }
    }

    fn stale_end(&self, key: &StepKey) {
        if let Ok(mut s) = self.stale.lock() {
            s.remove(&key.to_string());
        }
    }

    /// A new holder lets the stale holder's create land first (at most 3 s): that is the
    /// order in which only a deterministic ClientToken keeps one resource.
    async fn after_stale_holder(&self, key: &StepKey) {
        let key = key.to_string();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && self.stale.lock().map(|s| s.contains(&key)).unwrap_or(false)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stalls a holder of `key` until another delivery has taken the step over (a copy of
    /// the event is put on `queue` at once). True when it was taken over.
    async fn stall_until_taken_over(&self, queue: &str, key: &StepKey, event_id: &str) -> bool {
        let Ok(Some(mine)) = self.watcher.get_step(key).await else {
            return false;
        };
        let original = self
            .bodies
            .lock()
            .ok()
            .and_then(|b| b.get(event_id).cloned());
        let (Some(q), Some((origin, body))) = (self.queues.get(queue), original) else {
            return false;
        };
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        q.inject(format!("injected-{n}-{event_id}"), body, origin);
        let until = Instant::now() + LEASE_STALL_LIMIT;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Ok(Some(now)) = self.watcher.get_step(key).await {
                if now.status != Status::InProgress || now.lease_owner != mine.lease_owner {
                    return true;
                }
            }
        }
        false
    }
}

// ---------------------------------------------------------------------------------------
// The step wrapper

/// A step that delegates to the real one and injects crashes and stalls around `create`.
pub struct Chaos<S> {
    inner: S,
    ctl: Arc<Control>,
}

impl<S> Chaos<S> {
    pub fn new(inner: S, ctl: Arc<Control>) -> Self {
        Chaos { inner, ctl }
    }
}

/// The real step's input, tagged with its key and event (for the injected takeover).
pub struct Tagged<I> {
    inner: I,
    key: StepKey,
    event_id: String,
}

impl<S: Step> Step for Chaos<S> {
    const NAME: &'static str = S::NAME;
    const READY_DETAIL_TYPE: &'static str = S::READY_DETAIL_TYPE;
    const UPDATED_DETAIL_TYPE: &'static str = S::UPDATED_DETAIL_TYPE;
    type Input = Tagged<S::Input>;
    type Api = S::Api;

    fn plan(&self, request: &OnboardingRequest) -> Result<Plan<Self::Input>, String> {
        let plan = self.inner.plan(request)?;
        Ok(Plan {
            key: plan.key.clone(),
            account_id: plan.account_id,
            canonical: plan.canonical,
            desired: plan.desired,
            input: Tagged {
                inner: plan.input,
                key: plan.key,
                event_id: request.event_id.clone(),
            },
        })
    }

    fn request_from(
        key: &StepKey,
        fields: &StateFields,
        request: OnboardingRequest,
    ) -> Result<OnboardingRequest, String> {
        S::request_from(key, fields, request)
    }

    async fn connect(&self, input: &Self::Input) -> Result<S::Api, StepError> {
        let connected = self.inner.connect(&input.inner).await;
        // An answer of the role itself (credentials, or AccessDenied) proves the emulator
        // had started the account's role clock by now (a throttled call does not start it).
        let answered = match &connected {
            Ok(_) => true,
            Err(e) => e.code() == onboarding::error::code::MEMBER_ROLE_UNAVAILABLE,
        };
        if let (true, Some(account), Ok(mut first)) = (
            answered,
            input.key.account_id(),
            self.ctl.first_assume.lock(),
        ) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            first.entry(account.to_string()).or_insert(now);
        }
        connected
    }

    async fn lookup(
        &self,
        api: &S::Api,
        input: &Self::Input,
    ) -> Result<Option<Existing>, StepError> {
        self.inner.lookup(api, &input.inner).await
    }

    async fn current(
        &self,
        api: &S::Api,
        input: &Self::Input,
        arn: &str,
        applied: &StateFields,
        wanted: &StateFields,
    ) -> Result<StateFields, StepError> {
        self.inner
            .current(api, &input.inner, arn, applied, wanted)
            .await
    }

    async fn update(
        &self,
        api: &S::Api,
        input: &Self::Input,
        arn: &str,
        applied: &StateFields,
        wanted: &StateFields,
        token: &str,
    ) -> Result<(), StepError> {
        self.inner
            .update(api, &input.inner, arn, applied, wanted, token)
            .await
    }

    async fn create(
        &self,
        api: &S::Api,
        input: &Self::Input,
        client_token: &str,
    ) -> Result<String, StepError> {
        let ctl = &self.ctl;
        let fault = ctl.create_fault(S::NAME);
        let stale_conflict = fault == CreateFault::StaleConflict;
        if fault == CreateFault::StaleCreate || stale_conflict {
            ctl.stale_begin(&input.key);
            let taken = ctl
                .stall_until_taken_over(S::NAME, &input.key, &input.event_id)
                .await;
            if !taken {
                ctl.stale_end(&input.key);
                ctl.injected
                    .stale_without_takeover
                    .fetch_add(1, Ordering::Relaxed);
                return Err(StepError::retryable(
                    "Stalled",
                    "the holder stalled and was not taken over",
                ));
            }
            ctl.injected.stale_takeovers.fetch_add(1, Ordering::Relaxed);
            if stale_conflict {
                ctl.stale_end(&input.key);
                ctl.injected.stale_conflicts.fetch_add(1, Ordering::Relaxed);
                // What a stale holder sees when the new holder's resource already exists
                // and the API is not idempotent for it: its failure must not be recorded.
                return Err(StepError::permanent(
                    "ConflictException",
                    format!("stale holder of {}: the resource exists", input.key),
                ));
            }
            ctl.injected.stale_creates.fetch_add(1, Ordering::Relaxed);
            let result = self.inner.create(api, &input.inner, client_token).await;
            ctl.stale_end(&input.key);
            return result;
        }
        ctl.after_stale_holder(&input.key).await;
        let result = self.inner.create(api, &input.inner, client_token).await;
        if result.is_ok()
            && fault == CreateFault::CrashAfterCreate
            && crash_here(CRASH_AFTER_CREATE)
        {
            std::future::pending::<()>().await;
        }
        result
    }

    async fn readiness(&self, api: &S::Api, arn: &str) -> Result<Readiness, StepError> {
        self.inner.readiness(api, arn).await
    }

    fn ready_on_create(&self) -> bool {
        self.inner.ready_on_create()
    }
}

// ---------------------------------------------------------------------------------------
// DynamoDB faults

/// What happens to every attempt of one DynamoDB operation.
#[derive(Clone, Copy, Debug, Default)]
struct OperationFate {
    outage: bool,
    lose_all: bool,
}

impl Storable for OperationFate {
    type Storer = StoreReplace<Self>;
}

/// What happens to one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AttemptFate {
    Pass,
    /// Not written; a 400 ThrottlingException.
    Throttle,
    /// Not written; a 500.
    ServerError,
    /// Written; the response replaced by a 500.
    LoseResponse,
}

impl Storable for AttemptFate {
    type Storer = StoreReplace<Self>;
}

/// An interceptor on the engine's DynamoDB client. Faults "before the write" turn the request
/// into a harmless ListTables and answer with the error; "lost responses" let the request
/// through and replace what came back. The SDK sees real HTTP error responses and applies
/// its own retry policy to them.
#[derive(Clone)]
pub struct LedgerFaults(pub Arc<Control>);

impl std::fmt::Debug for LedgerFaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerFaults")
    }
}

impl Intercept for LedgerFaults {
    fn name(&self) -> &'static str {
        "ReplayLedgerFaults"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ctl = &self.0;
        let announced_flag = context
            .input()
            .downcast_ref::<UpdateItemInput>()
            .and_then(|i| i.update_expression())
            .is_some_and(|u| u.starts_with("SET #announced "));
        if announced_flag
            && ctl.draw(ctl.rates.crash_before_announced_flag)
            && crash_here(CRASH_BEFORE_ANNOUNCED_FLAG)
        {
            return Err("the worker crashed".into());
        }
        let write = context.input().downcast_ref::<UpdateItemInput>().is_some();
        if write && ctl.draw(ctl.rates.crash_before_write) && crash_here(CRASH_BEFORE_WRITE) {
            return Err("the worker crashed".into());
        }
        let fate = OperationFate {
            outage: ctl.draw(ctl.rates.ddb_outage),
            lose_all: ctl.draw(ctl.rates.ddb_lost_all),
        };
        if fate.outage {
            ctl.injected.ddb_outages.fetch_add(1, Ordering::Relaxed);
        } else if fate.lose_all {
            ctl.injected.ddb_lost_all.fetch_add(1, Ordering::Relaxed);
        }
        cfg.interceptor_state().store_put(fate);
        if let Some(input) = context.input().downcast_ref::<UpdateItemInput>() {
            cfg.interceptor_state().store_put(write_info(input));
        }
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ctl = &self.0;
        let op = cfg.load::<OperationFate>().copied().unwrap_or_default();
        let fate = if op.outage {
            AttemptFate::Throttle
        } else if op.lose_all {
            AttemptFate::LoseResponse
        } else if ctl.draw(ctl.rates.ddb_throttle) {
            ctl.injected.ddb_throttled.fetch_add(1, Ordering::Relaxed);
            AttemptFate::Throttle
        } else if ctl.draw(ctl.rates.ddb_server_error) {
            ctl.injected
                .ddb_server_errors
                .fetch_add(1, Ordering::Relaxed);
            AttemptFate::ServerError
        } else if ctl.draw(ctl.rates.ddb_lost_response) {
            ctl.injected
                .ddb_lost_responses
                .fetch_add(1, Ordering::Relaxed);
            AttemptFate::LoseResponse
        } else {
            AttemptFate::Pass
        };
        if matches!(fate, AttemptFate::Throttle | AttemptFate::ServerError) {
            let request = context.request_mut();
            request
                .headers_mut()
                .insert("x-amz-target", "DynamoDB_20120810.ListTables");
            request.headers_mut().insert("content-length", "2");
            *request.body_mut() = SdkBody::from("{}");
        }
        cfg.interceptor_state().store_put(fate);
        cfg.interceptor_state()
            .store_put(AttemptSent(Instant::now()));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let fate = cfg.load::<AttemptFate>().copied();
        // A write that reached DynamoDB: log it with DynamoDB's real answer.
        if matches!(
            fate,
            Some(AttemptFate::Pass) | Some(AttemptFate::LoseResponse)
        ) {
            if let Some(info) = cfg.load::<WriteInfo>().cloned() {
                let now = Instant::now();
                let index = self.0.log_write(LedgerWrite {
                    key: info.key,
                    kind: info.kind,
                    owner: info.owner,
                    sent: cfg.load::<AttemptSent>().map_or(now, |s| s.0),
                    answered: now,
                    applied: context.response().status().as_u16() == 200,
                    seen: fate == Some(AttemptFate::Pass),
                    found: None,
                    code: info.code,
                    state: info.state,
                    revision: info.revision,
                    drift: info.drift,
                });
                cfg.interceptor_state().store_put(Logged(index));
                let ctl = &self.0;
                if context.response().status().as_u16() == 200
                    && ctl.draw(ctl.rates.crash_after_write)
                    && crash_here(CRASH_AFTER_WRITE)
                {
                    return Err("the worker crashed".into());
                }
            }
        }
        let (status, code) = match fate {
            Some(AttemptFate::Throttle) => (400, "ThrottlingException"),
            Some(AttemptFate::ServerError) | Some(AttemptFate::LoseResponse) => {
                (500, "InternalServerError")
            }
            _ => return Ok(()),
        };
        let body = format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected by the replay"}}"#
        );
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).map_err(|e| format!("{e}"))?,
            SdkBody::from(body),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        *context.response_mut() = response;
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // What a refused claim read, as the engine got it.
        if cfg.load::<AttemptFate>().copied() != Some(AttemptFate::Pass) {
            return Ok(());
        }
        let Some(Logged(index)) = cfg.load::<Logged>().copied() else {
            return Ok(());
        };
        let found = context
            .output_or_error()
            .err()
            .and_then(|e| e.as_operation_error())
            .and_then(|e| e.downcast_ref::<UpdateItemError>())
            .and_then(|e| match e {
                UpdateItemError::ConditionalCheckFailedException(f) => f.item(),
                _ => None,
            })
            .and_then(|item| Record::from_item(item).ok());
        if let Some(r) = found {
            self.0.set_found(index, (r.status, r.announced));
        }
        Ok(())
    }
}

/// An interceptor on the announcer's EventBridge client: crashes just before PutEvents and
/// just after a successful one, and PutEvents failures without a crash: the call returns an
/// error before anything is sent, or it is answered (200) with every entry failed while
/// nothing reaches the bus (the request is turned into a harmless ListEventBuses).
#[derive(Clone)]
pub struct AnnounceCrashes(pub Arc<Control>);

impl std::fmt::Debug for AnnounceCrashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnnounceCrashes")
    }
}

/// A PutEvents call answered with this many entries, every one failed.
#[derive(Clone, Copy, Debug)]
struct EntriesFail(usize);

impl Storable for EntriesFail {
    type Storer = StoreReplace<Self>;
}

impl Intercept for AnnounceCrashes {
    fn name(&self) -> &'static str {
        "ReplayAnnounceCrashes"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ctl = &self.0;
        let Some(input) = context.input().downcast_ref::<PutEventsInput>() else {
            return Ok(());
        };
        if ctl.draw(ctl.rates.crash_before_put_events) && crash_here(CRASH_BEFORE_PUT_EVENTS) {
            return Err("the worker crashed".into());
        }
        if ctl.draw(ctl.rates.put_events_error) {
            ctl.injected
                .put_events_failed
                .fetch_add(1, Ordering::Relaxed);
            return Err("PutEvents failed (injected by the replay; nothing was sent)".into());
        }
        if ctl.draw(ctl.rates.put_events_entries_failed) {
            ctl.injected
                .put_events_entries_failed
                .fetch_add(1, Ordering::Relaxed);
            cfg.interceptor_state()
                .store_put(EntriesFail(input.entries().len()));
        }
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<EntriesFail>().is_some() {
            let request = context.request_mut();
            request
                .headers_mut()
                .insert("x-amz-target", "AWSEvents.ListEventBuses");
            request.headers_mut().insert("content-length", "2");
            *request.body_mut() = SdkBody::from("{}");
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(EntriesFail(n)) = cfg.load::<EntriesFail>().copied() else {
            return Ok(());
        };
        let entries = (0..n)
            .map(|_| {
                serde_json::json!({
                    "ErrorCode": "InternalFailure",
                    "ErrorMessage": "injected by the replay"
                })
            })
            .collect::<Vec<_>>();
        let body = serde_json::json!({ "FailedEntryCount": n, "Entries": entries }).to_string();
        let mut response = HttpResponse::new(
            StatusCode::try_from(200).map_err(|e| format!("{e}"))?,
            SdkBody::from(body),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        *context.response_mut() = response;
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ctl = &self.0;
        if cfg.load::<EntriesFail>().is_none()
            && matches!(context.output_or_error(), Some(Ok(_)))
            && ctl.draw(ctl.rates.crash_after_put_events)
            && crash_here(CRASH_AFTER_PUT_EVENTS)
        {
            return Err("the worker crashed".into());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Reasons of failed records

/// The handler reports a batch's failed records by id only; the reason is in its warn/error
/// log line. This layer keeps the last reason per message id (for the dead-letter list) and
/// counts refused stale writes (for the report).
#[derive(Clone, Default)]
pub struct Reasons {
    by_message: Arc<Mutex<HashMap<String, String>>>,
    pub lost_leases: Arc<AtomicU64>,
}

impl Reasons {
    pub fn take(&self, message_id: &str) -> Option<String> {
        self.by_message.lock().ok()?.remove(message_id)
    }
}

#[derive(Default)]
struct Fields {
    message_id: Option<String>,
    error: Option<String>,
    reason: Option<String>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message_id" => self.message_id = Some(format!("{value:?}")),
            "error" => self.error = Some(format!("{value:?}")),
            "reason" => self.reason = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Reasons {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut f = Fields::default();
        event.record(&mut f);
        if f.error
            .as_deref()
            .is_some_and(|e| e.contains("was lost: another attempt took the step over"))
            && f.message_id.is_none()
        {
            self.lost_leases.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(id), Some(why)) = (f.message_id, f.error.or(f.reason)) {
            if let Ok(mut m) = self.by_message.lock() {
                m.insert(id, why);
            }
        }
    }
}

/// Installs the reason-capturing layer (warnings and errors only) once per process.
pub fn reasons() -> Reasons {
    static REASONS: std::sync::OnceLock<Reasons> = std::sync::OnceLock::new();
    REASONS
        .get_or_init(|| {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            let reasons = Reasons::default();
            tracing_subscriber::registry()
                .with(tracing_subscriber::filter::LevelFilter::WARN)
                .with(reasons.clone())
                .try_init()
                .ok();
            reasons
        })
        .clone()
}
