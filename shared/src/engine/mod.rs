//! The one runner every step goes through. It does four things to a step's resource:
//!
//! - **create** (`create.rs`): plan -> claim -> (look up when an earlier create may have
//!   been sent) -> create with the ledger's ClientToken (a create that finds the resource
//!   there looks it up) -> wait for readiness -> announce -> record;
//! - **update** (`update.rs`): a request newer than a READY step's applied revision puts
//!   its fields over the applied state; a difference is claimed as an update, made with the
//!   revision's update token, announced and recorded;
//! - **audit** (`audit.rs`): is a READY step's resource still there and still in the
//!   applied state; drift is recorded, announced once and, on request, repaired through the
//!   same claims;
//! - **retire** (`retire.rs`): an account's departure retires its steps; a newer request
//!   reopens one as a new generation.
//!
//! A delivery runs in phases: [`Engine::run`] plans and bounds the work by the deadline and
//! the lease; `claimed` (here) dispatches on what the claim found (retired, ready, failed,
//! held elsewhere, created, acquired); the create path (a `Delivery`) holds the lease, the
//! update path the update's lease. `timing.rs` says when to come back (backoff, grace
//! window, throttling spread, recheck); `outcome.rs` ends a held step that cannot finish
//! (release, or record the failure and announce it) and names outcomes.
//!
//! Every path either finishes the step, records a permanent failure (and then announces it),
//! or returns a retryable error so the delivery comes back; nothing is dropped. A target that
//! is not reachable *yet* (a new account's member role, a write still propagating) is retried
//! with growing delays during a grace window from the step's first attempt, and recorded as a
//! permanent failure only after it. Every ledger write of a holder is fenced by its lease.

mod audit;
mod create;
mod outcome;
mod retire;
mod timing;
mod update;

pub use audit::AuditRun;

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use futures::future::BoxFuture;
use tracing::{field, info, warn, Instrument};

use crate::announce::{Announcer, Subject};
use crate::error::{code, StepError};
use crate::events::OnboardingRequest;
use crate::ledger::{
    request_hash, Applied, Claim, ClaimRequest, ErrorReason, Ledger, Origin, Record, StepKey,
};
use crate::revision::Revision;
use crate::step::{Plan, Step};

use crate::clock::from_epoch_ms;
use retire::reopens;
use timing::recheck_in;

/// Time kept free before the invocation's deadline for the reply itself.
const REPLY_MARGIN: Duration = Duration::from_millis(1500);

/// Time kept free before the end of any lease a delivery takes, for the call in flight when
/// its work is cut (and the clocks of two holders), capped at a tenth of the lease.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// How a delivery ended for one step, when it did not need to be retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The request does not ask for this step.
    Skipped(String),
    /// The step became ready in this delivery.
    Ready { arn: String, how: How },
    /// The step was already ready: a duplicate (or an older request, or one that asks for
    /// nothing new), acknowledged.
    Duplicate { arn: String },
    /// A newer request changed the ready resource: `changed` names the fields.
    Updated { arn: String, changed: Vec<String> },
    /// The step failed permanently (now or earlier): recorded and announced.
    Failed(ErrorReason),
    /// A newer request the service refused to apply: announced; the resource keeps its
    /// applied state and the step stays READY.
    Rejected(ErrorReason),
    /// The step is retired (its account closed or left the organization): acknowledged with
    /// the reason, nothing created.
    Retired { reason: String },
    /// An account's departure retired these steps (`retired`: their keys); `kept`: steps that
    /// know a request newer than the departure (a reopened account), left as they are.
    Offboarded {
        retired: Vec<String>,
        kept: Vec<String>,
        reason: String,
    },
}

/// What the drift audit found on a READY step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audit {
    /// Still there, still in the applied state.
    Clean,
    /// Deleted (`gone`) or changed (`changed` names the fields) behind the project's back;
    /// `repaired` is the outcome of the repair when repair is on.
    Drift {
        gone: bool,
        changed: Vec<String>,
        repaired: Option<Outcome>,
    },
    /// Not audited this time: an update of the step is in flight.
    Deferred,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// This delivery's create call made the resource.
    Created,
    /// An earlier attempt had made it (its response was lost); this one found and adopted it.
    Adopted,
    /// It was there before the step's first attempt and is what the request asks for.
    PreExisting,
    /// An earlier delivery created or adopted it; this one saw it become ready.
    Settled,
}

impl How {
    /// As the handler's reply and the logs name it (an origin as the ledger stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            How::Created => Origin::Created.as_str(),
            How::Adopted => Origin::Adopted.as_str(),
            How::PreExisting => Origin::PreExisting.as_str(),
            How::Settled => "settled",
        }
    }
}

impl From<Origin> for How {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::Created => How::Created,
            Origin::Adopted => How::Adopted,
            Origin::PreExisting => How::PreExisting,
        }
    }
}

#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Lease on a claimed step; capped by the invocation's deadline.
    pub lease: Duration,
    /// How long one delivery waits for a created resource to become ready before handing
    /// the wait back to the queue.
    pub ready_wait: Duration,
    /// How long "not reachable yet" is retried, from the step's first attempt.
    pub member_role_grace: Duration,
    /// First delay of the growing backoff while not reachable yet.
    pub retry_base: Duration,
    /// Longest delay of that backoff.
    pub retry_max: Duration,
}

#[derive(Clone)]
pub struct Engine {
    ledger: Ledger,
    announcer: Announcer,
    settings: EngineSettings,
}

impl Engine {
    pub fn new(ledger: Ledger, announcer: Announcer, settings: EngineSettings) -> Self {
        Self {
            ledger,
            announcer,
            settings,
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn announcer(&self) -> &Announcer {
        &self.announcer
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The same engine signing its ledger and announcer calls with `credentials` (a
    /// function's role, where one process runs several functions).
    pub fn signing_as(&self, credentials: SharedCredentialsProvider) -> Engine {
        Engine::new(
            self.ledger.signing_as(credentials.clone()),
            self.announcer.signing_as(credentials),
            self.settings.clone(),
        )
    }

    /// Runs `step` for one delivery of `request`, finishing before `deadline` (less a
    /// margin for the reply): whatever is still running then is abandoned as retryable, its
    /// lease (capped by the deadline) left to expire. Boxed: the step's SDK futures are deep,
    /// and one allocation per delivery keeps every caller's future small.
    pub fn run<'a, S: Step>(
        &'a self,
        step: &'a S,
        request: &'a OnboardingRequest,
        deadline: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<Outcome, StepError>> {
        self.run_as(step, request, deadline, true)
    }

    /// [`Engine::run`]; with `asks` false, `request` (rebuilt from the ledger) makes a new
    /// generation with its fields but is never merged into the desired state as a request
    /// (see [`Engine::resume`]).
    fn run_as<'a, S: Step>(
        &'a self,
        step: &'a S,
        request: &'a OnboardingRequest,
        deadline: Option<SystemTime>,
        asks: bool,
    ) -> BoxFuture<'a, Result<Outcome, StepError>> {
        let span = step_span::<S>(request);
        Box::pin(
            async move {
                let plan = match step.plan(request) {
                    Ok(plan) => plan,
                    Err(why) => {
                        info!(outcome = "skipped", reason = %why, "step not requested");
                        return Ok(Outcome::Skipped(why));
                    }
                };
                if let Some(account) = &plan.account_id {
                    tracing::Span::current().record("account_id", account.as_str());
                }
                let work = self.claimed(step, &plan, request, deadline, asks);
                let result = self.bounded(&plan.key, deadline, work).await;
                match &result {
                    Ok(outcome) => {
                        info!(outcome = outcome.label(), detail = ?outcome, "step handled")
                    }
                    Err(e) => warn!(outcome = "retry", error = %e, "step will be retried"),
                }
                result
            }
            .instrument(span),
        )
    }

    /// Carries on what a READY step (`record`, as just read) still owes, for the reconciler:
    /// its Ready announcement, an update whose holder died. It asks nothing itself: the
    /// request rebuilt from the ledger (`request`) only says which resource. (The applied
    /// state it is rebuilt from mixes fields of several requests; merged as one request at
    /// the applied revision, it would undo a field that a request older than that revision,
    /// delivered late, asks for.)
    pub fn resume<'a, S: Step>(
        &'a self,
        step: &'a S,
        request: &'a OnboardingRequest,
        record: Record,
        deadline: Option<SystemTime>,
    ) -> BoxFuture<'a, Result<Outcome, StepError>> {
        let span = step_span::<S>(request);
        Box::pin(
            async move {
                let plan = step
                    .plan(request)
                    .map_err(|why| StepError::permanent(code::NOT_REBUILDABLE, why))?;
                let revision = request.revision();
                let subject = subject_of::<S>(&plan, request);
                let delivery = Delivery {
                    engine: self,
                    step,
                    plan: &plan,
                    subject: &subject,
                    revision: &revision,
                    deadline,
                    asks: false,
                };
                self.bounded(&plan.key, deadline, delivery.ready(record))
                    .await
            }
            .instrument(span),
        )
    }

    /// Runs `work` (one step, holding whatever lease it takes) no longer than its holder
    /// may act: before the invocation's reply is due (deadline less [`REPLY_MARGIN`]) and
    /// before any lease it takes can expire. Every lease it takes lasts at least
    /// `settings.lease` from now (or to the deadline, which ends sooner), so cutting the work
    /// at now + lease less [`LEASE_MARGIN`] keeps every call inside its holder's lease, for
    /// every caller: deliveries, the reconciler, `sweep` (no deadline at all), audits and
    /// their repairs. Cut, not renewed: a renewal would cost a write before every call. What
    /// is cut is retryable; its lease expires and the next holder continues.
    async fn bounded<T>(
        &self,
        key: &StepKey,
        deadline: Option<SystemTime>,
        work: impl std::future::Future<Output = Result<T, StepError>>,
    ) -> Result<T, StepError> {
        let lease = self.settings.lease;
        let lease_end = SystemTime::now() + lease.saturating_sub(LEASE_MARGIN.min(lease / 10));
        let (end, what) = match deadline.and_then(|d| d.checked_sub(REPLY_MARGIN)) {
            Some(reply) if reply < lease_end => (reply, "the invocation's deadline"),
            _ => (lease_end, "the end of its lease"),
        };
        let left = end.duration_since(SystemTime::now()).unwrap_or_default();
        match tokio::time::timeout(left, work).await {
            Ok(result) => result,
            Err(_) => Err(StepError::retryable(
                code::DEADLINE_REACHED,
                format!("{key} was not finished before {what}; the next delivery continues it"),
            )),
        }
    }

    async fn claimed<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        request: &OnboardingRequest,
        deadline: Option<SystemTime>,
        asks: bool,
    ) -> Result<Outcome, StepError> {
        let hash = request_hash(&plan.canonical);
        let revision = request.revision();
        let subject = subject_of::<S>(plan, request);
        let delivery = Delivery {
            engine: self,
            step,
            plan,
            subject: &subject,
            revision: &revision,
            deadline,
            asks,
        };
        let claim = match delivery.claim(&hash).await? {
            // A retired step whose account was reopened: a new generation, claimed again.
            Claim::Retired(record) if reopens(&record, &revision) => {
                delivery.reopened(&hash, record).await?
            }
            other => other,
        };
        match claim {
            Claim::Retired(record) => self.retired(&subject, record).await,
            Claim::Ready(record) => delivery.ready(record).await,
            Claim::Failed(record) => {
                let reason = record.last_error.clone().unwrap_or_else(|| ErrorReason {
                    retryable: false,
                    code: "Failed".into(),
                    message: "failed earlier; no reason was recorded".into(),
                });
                if !record.announced {
                    let announce = self.announcer.failed(&subject, &reason);
                    self.announce_late(&record, announce).await?;
                }
                Ok(Outcome::Failed(reason))
            }
            Claim::InProgress {
                lease_expires_at,
                record,
            } => {
                // Recorded, so that whoever holds the step applies it: nothing asked is lost.
                let record = Box::new(delivery.merge(*record).await?);
                let now = SystemTime::now();
                let left = lease_expires_at.duration_since(now).unwrap_or_default();
                let held_for = record
                    .updated_at
                    .and_then(|claimed| now.duration_since(from_epoch_ms(claimed)).ok())
                    .unwrap_or_default();
                Err(StepError::retryable(
                    code::IN_PROGRESS_ELSEWHERE,
                    format!(
                        "{} is being handled by another delivery (held for {:.1}s, lease ends \
                         in {:.1}s)",
                        plan.key,
                        held_for.as_secs_f32(),
                        left.as_secs_f32()
                    ),
                )
                .after(recheck_in(held_for, left)))
            }
            Claim::Created(record) => delivery.finish_created(record).await,
            Claim::Acquired(lease) => delivery.create(lease).await,
        }
    }
}

/// One delivery's work on one step: the step, the plan of the request (at `revision`) and
/// the subject announced, bounded by the invocation's `deadline`. Its methods are the
/// phases: create (`create.rs`), update (`update.rs`).
struct Delivery<'a, S: Step> {
    engine: &'a Engine,
    step: &'a S,
    plan: &'a Plan<S::Input>,
    subject: &'a Subject<'a>,
    revision: &'a Revision,
    deadline: Option<SystemTime>,
    /// Whether the request's fields are merged into the desired state: a request's are; a
    /// request the reconciler rebuilds from the ledger asks nothing (see [`Engine::resume`]).
    asks: bool,
}

impl<S: Step> Clone for Delivery<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: Step> Copy for Delivery<'_, S> {}

impl<S: Step> Delivery<'_, S> {
    /// A READY step: its Ready announced if it was recorded and not announced (its holder
    /// died, or its PutEvents failed), then marked; then brought to its desired state.
    async fn ready(&self, mut record: Record) -> Result<Outcome, StepError> {
        let engine = self.engine;
        if !record.announced {
            let arn = record_arn(&record)?;
            engine
                .announcer
                .ready(
                    S::READY_DETAIL_TYPE,
                    &self
                        .subject
                        .of_generation(record.requested_revision.as_ref()),
                    &arn,
                    &record.token,
                    record.origin,
                )
                .await?;
            record = engine.ledger.mark_ready_announced(&record).await?;
        }
        self.converge(record).await
    }

    /// Claims the step for this request (whose canonical form hashes to `request_hash`):
    /// one conditional write, which also records the generation's first request and merges
    /// what it asks into the desired state.
    async fn claim(&self, request_hash: &str) -> Result<Claim, StepError> {
        let claim = self
            .engine
            .ledger
            .claim_with(
                &self.plan.key,
                &ClaimRequest {
                    request_hash,
                    event_id: self.subject.request_event_id,
                    lease: self.engine.settings.lease,
                    deadline: self.deadline,
                },
                Some(Applied {
                    state: &self.plan.desired,
                    revision: self.revision,
                }),
            )
            .await?;
        Ok(claim)
    }
}

fn record_arn(record: &Record) -> Result<String, StepError> {
    record.resource_arn.clone().ok_or_else(|| {
        StepError::permanent(
            code::LEDGER_CORRUPT,
            format!(
                "{} is {} but has no resource ARN",
                record.key, record.status
            ),
        )
    })
}

/// The span of one step's work for `request`; the account, token and attempt are recorded
/// once known.
fn step_span<S: Step>(request: &OnboardingRequest) -> tracing::Span {
    tracing::info_span!(
        "step",
        step = S::NAME,
        account_id = field::Empty,
        event_id = %request.event_id,
        client_token = field::Empty,
        attempt = field::Empty,
    )
}

/// Who an announcement of `plan`'s step for `request` is about.
fn subject_of<'a, S: Step>(
    plan: &'a Plan<S::Input>,
    request: &'a OnboardingRequest,
) -> Subject<'a> {
    Subject {
        step: S::NAME,
        account_id: plan.account_id.as_deref(),
        request_event_id: &request.event_id,
    }
}
