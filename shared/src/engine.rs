//! The one runner every step goes through:
//! plan -> claim -> (look up when an earlier create may have been sent) -> create with the
//! ledger's ClientToken (a create that finds the resource there looks it up) -> wait for
//! readiness -> announce -> record.
//!
//! Every path either finishes the step, records a permanent failure (and then announces it),
//! or returns a retryable error so the delivery comes back; nothing is dropped. A target that
//! is not reachable *yet* (a new account's member role, a write still propagating) is retried
//! with growing delays during a grace window from the step's first attempt, and recorded as a
//! permanent failure only after it.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use futures::future::BoxFuture;
use tracing::{field, info, warn, Instrument};

use crate::announce::{Announcer, Subject};
use crate::error::StepError;
use crate::events::{OffboardingRequest, OnboardingRequest};
use crate::ledger::{
    request_hash, update_token, Applied, Claim, ClaimRequest, ErrorReason, Fields, Lease, Ledger,
    LedgerError, Origin, Record, Release, Retirement, Status, StepKey, UpdateClaim, UpdateEnd,
    UpdateLease,
};
use crate::rebuild;
use crate::revision::Revision;
use crate::step::{Existing, Plan, Readiness, Step, CONFLICT};
use crate::telemetry::Tally;

/// Time kept free before the invocation's deadline for the reply itself.
const REPLY_MARGIN: Duration = Duration::from_millis(1500);
/// Time kept free before the end of any lease a delivery takes, for the call in flight when
/// its work is cut (and the clocks of two holders), capped at a tenth of the lease.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// Time a readiness wait leaves for announcing and recording after it.
const FINISH_RESERVE: Duration = Duration::from_secs(3);
const FIRST_READINESS_DELAY: Duration = Duration::from_millis(100);
const MAX_READINESS_DELAY: Duration = Duration::from_secs(2);
/// Clocks of the service and of the functions may disagree this much: a resource created
/// less than this before the step's first attempt may still be an earlier attempt's.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// The earliest a delivery that found its step held comes back (see [`recheck_in`]).
const MIN_RECHECK: Duration = Duration::from_secs(5);

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

/// The error code of a resource the service no longer knows.
const NOT_FOUND: &str = "ResourceNotFoundException";

fn epoch_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

impl From<Origin> for How {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::Created => How::Created,
            Origin::Adopted => How::Adopted,
            Origin::PreExisting => How::PreExisting,
        }
    }
}

impl Outcome {
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        match self {
            Outcome::Skipped(_) => t.skipped = 1,
            Outcome::Ready {
                how: How::Created, ..
            } => t.created = 1,
            Outcome::Ready {
                how: How::Adopted | How::PreExisting,
                ..
            } => t.adopted = 1,
            Outcome::Ready {
                how: How::Settled, ..
            } => {}
            Outcome::Duplicate { .. } => t.duplicates = 1,
            Outcome::Updated { .. } => t.updated = 1,
            Outcome::Failed(_) => t.failures = 1,
            Outcome::Rejected(_) => t.rejected = 1,
            Outcome::Retired { .. } => t.duplicates = 1,
            Outcome::Offboarded { retired, .. } => t.retired = retired.len() as u32,
        }
        t
    }

    fn label(&self) -> &'static str {
        match self {
            Outcome::Skipped(_) => "skipped",
            Outcome::Ready {
                how: How::Created, ..
            } => "created",
            Outcome::Ready {
                how: How::Adopted, ..
            } => "adopted",
            Outcome::Ready {
                how: How::PreExisting,
                ..
            } => "pre-existing",
            Outcome::Ready {
                how: How::Settled, ..
            } => "ready",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Updated { .. } => "updated",
            Outcome::Failed(_) => "failed",
            Outcome::Rejected(_) => "rejected",
            Outcome::Retired { .. } => "retired",
            Outcome::Offboarded { .. } => "offboarded",
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

impl EngineSettings {
    /// The delay before attempt `attempt + 1` while not reachable yet:
    /// `min(retry_base * 2^(attempt-1), retry_max)`, jittered down by up to 20% so a burst of
    /// new accounts does not come back at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let full = self
            .retry_base
            .saturating_mul(1u32 << doublings)
            .min(self.retry_max);
        // Jitter from the v4 UUID generator's randomness: no extra dependency.
        let unit = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        full.mul_f64(1.0 - 0.2 * unit)
    }
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
        let span = tracing::info_span!(
            "step",
            step = S::NAME,
            account_id = field::Empty,
            event_id = %request.event_id,
            client_token = field::Empty,
            attempt = field::Empty,
        );
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
                let work = self.claimed(step, &plan, request, deadline);
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
                "DeadlineReached",
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
    ) -> Result<Outcome, StepError> {
        let hash = request_hash(&plan.canonical);
        let revision = request.revision();
        let claim = self
            .ledger
            .claim_with(
                &plan.key,
                &ClaimRequest {
                    request_hash: &hash,
                    event_id: &request.event_id,
                    lease: self.settings.lease,
                    deadline,
                },
                Some(Applied {
                    state: &plan.desired,
                    revision: &revision,
                }),
            )
            .await?;
        // A retired step whose account was reopened: a new generation, claimed again.
        let claim = match claim {
            Claim::Retired(record) if reopens(&record, &revision) => {
                self.reopened(plan, request, &hash, &revision, record, deadline)
                    .await?
            }
            other => other,
        };
        let subject = Subject {
            step: S::NAME,
            account_id: plan.account_id.as_deref(),
            request_event_id: &request.event_id,
        };
        match claim {
            Claim::Retired(record) => self.retired(&subject, record).await,
            Claim::Ready(record) => {
                if !record.announced {
                    let arn = record_arn(&record)?;
                    let announce = self.announcer.ready(
                        S::READY_DETAIL_TYPE,
                        &subject,
                        &arn,
                        &record.token,
                        record.origin,
                    );
                    self.announce_late(&record, announce).await?;
                }
                self.converge(step, plan, &subject, record, &revision, deadline)
                    .await
            }
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
                self.want(plan, &record, &revision).await?;
                let now = SystemTime::now();
                let left = lease_expires_at.duration_since(now).unwrap_or_default();
                let held_for = record
                    .updated_at
                    .and_then(|claimed| now.duration_since(from_epoch_ms(claimed)).ok())
                    .unwrap_or_default();
                Err(StepError::retryable(
                    "InProgressElsewhere",
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
            Claim::Created(record) => {
                self.settle(step, plan, &subject, record, &revision, deadline)
                    .await
            }
            Claim::Acquired(lease) => {
                self.acquired(step, plan, &subject, lease, &revision, deadline)
                    .await
            }
        }
    }

    /// The step is held by this delivery: obtain the resource (look up, create), wait for
    /// it, announce it and record it, all fenced by the lease. The resource is made as the
    /// generation's first claimant asked (whichever request holds the lease now); what this
    /// request asks beyond that is then applied as an update.
    async fn acquired<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        subject: &Subject<'_>,
        lease: Lease,
        revision: &Revision,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, StepError> {
        record_token(&lease.token, lease.attempt);
        let first = match first_request(step, plan, &lease) {
            Ok(first) => first,
            Err(e) => return self.give_up(&lease, subject, e, false).await,
        };
        let (made, made_revision) = match &first {
            Some((made, made_revision)) => (made, made_revision),
            None => (plan, revision),
        };
        let outcome = self
            .obtained(step, made, made_revision, subject, &lease, deadline)
            .await?;
        match outcome {
            // What this request or a newer one recorded meanwhile asks beyond what was made
            // is applied now (nothing to do, and no request, when it is what was made).
            Obtained::Ready(record) => {
                let how = record.origin.map_or(How::Created, How::from);
                match self
                    .converge(step, plan, subject, *record, revision, deadline)
                    .await?
                {
                    Outcome::Duplicate { arn } => Ok(Outcome::Ready { arn, how }),
                    other => Ok(other),
                }
            }
            Obtained::Done(outcome) => Ok(outcome),
        }
    }

    /// [`Engine::acquired`] for the request the resource is made with (`plan` at `revision`).
    async fn obtained<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        revision: &Revision,
        subject: &Subject<'_>,
        lease: &Lease,
        deadline: Option<SystemTime>,
    ) -> Result<Obtained, StepError> {
        let mut sent = false;
        let (api, arn, origin) = match self.obtain(step, plan, lease, &mut sent).await {
            Ok(obtained) => obtained,
            Err(e) => {
                return self
                    .give_up(lease, subject, e, sent)
                    .await
                    .map(Obtained::Done)
            }
        };
        // A resource that was there before us is brought to what the request asks. One we
        // adopted was made by this generation's create: with these very parameters.
        if origin == Origin::PreExisting && !plan.desired.is_empty() {
            let aligned = self
                .align(
                    step,
                    plan,
                    &api,
                    &arn,
                    &lease.key,
                    lease.generation,
                    lease.salt.as_deref(),
                    revision,
                )
                .await;
            if let Err(e) = aligned {
                return self
                    .give_up(lease, subject, e, true)
                    .await
                    .map(Obtained::Done);
            }
        }
        let applied = Applied {
            state: &plan.desired,
            revision,
        };
        let settled = if step.ready_on_create() {
            Ok(Settled::Ready)
        } else {
            self.wait_ready(step, &api, &arn, deadline).await
        };
        let announce_ready = || {
            self.announcer.ready(
                S::READY_DETAIL_TYPE,
                subject,
                &arn,
                &lease.token,
                Some(origin),
            )
        };
        match settled {
            // Adopted on what a lookup saw, or created by a holder whose lease is running
            // out (it stalled; another delivery may take the step over and record another
            // outcome): record first, fenced by the lease, so a holder that lost its lease
            // announces nothing; then announce and mark it.
            Ok(Settled::Ready) if origin != Origin::Created || !self.lease_fresh(lease) => {
                let record = self
                    .ledger
                    .mark_ready_unannounced(lease, &arn, origin, &applied)
                    .await?;
                announce_ready().await?;
                self.ledger
                    .mark_announced(&lease.key, lease.generation)
                    .await?;
                Ok(Obtained::Ready(Box::new(record)))
            }
            // Announce first, then one write that records READY and announced: two writes
            // for a first pass, and a crash in between re-announces. Safe while the lease
            // has time left: nobody else can take the step over before it ends.
            Ok(Settled::Ready) => {
                let announced = announce_ready().await;
                if let Err(e) = announced {
                    self.release(lease, &e, true).await;
                    return Err(e);
                }
                let record = self
                    .ledger
                    .mark_ready(lease, &arn, origin, &applied)
                    .await?;
                Ok(Obtained::Ready(Box::new(record)))
            }
            Ok(Settled::Failed(e)) => self
                .give_up(lease, subject, e, true)
                .await
                .map(Obtained::Done),
            // Not ready in time (or the check failed for now): record what exists so later
            // deliveries only check readiness.
            Ok(Settled::Pending(status)) => {
                self.ledger
                    .mark_created(lease, &arn, origin, &applied)
                    .await?;
                Err(not_ready(&arn, &status))
            }
            Err(e) if e.is_retryable() => {
                self.ledger
                    .mark_created(lease, &arn, origin, &applied)
                    .await?;
                Err(e)
            }
            Err(e) => self
                .give_up(lease, subject, e, true)
                .await
                .map(Obtained::Done),
        }
    }

    /// Connects; looks the resource up when an earlier attempt may have sent a create; else
    /// creates it with the lease's token, and looks it up when the create says it exists.
    /// `sent` tells the caller whether a create call went out.
    async fn obtain<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        lease: &Lease,
        sent: &mut bool,
    ) -> Result<(S::Api, String, Origin), StepError> {
        let api = step.connect(&plan.input).await?;
        if lease.may_have_sent {
            if let Some(found) = step.lookup(&api, &plan.input).await? {
                let (arn, origin) = adopt(found, lease, true)?;
                return Ok((api, arn, origin));
            }
        }
        *sent = true;
        match step.create(&api, &plan.input, &lease.token).await {
            Ok(arn) => Ok((api, arn, Origin::Created)),
            Err(e) if step.says_exists(&e) => match step.lookup(&api, &plan.input).await? {
                Some(found) => {
                    let (arn, origin) = adopt(found, lease, lease.may_have_sent)?;
                    Ok((api, arn, origin))
                }
                // AWS documents Conflict as a concurrent write that has not propagated.
                None if e.code() == CONFLICT => Err(StepError::not_yet(
                    "ConflictNotPropagated",
                    format!(
                        "{}; a lookup finds no resource yet (a write still propagating)",
                        e.reason().message
                    ),
                )),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// The CREATED path: the resource exists; check readiness, never create again. Every
    /// write here is fenced on the generation and resource read with the claim.
    async fn settle<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        subject: &Subject<'_>,
        record: Record,
        revision: &Revision,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, StepError> {
        let arn = record_arn(&record)?;
        record_token(&record.token, record.attempt);
        let settled = match step.connect(&plan.input).await {
            Ok(api) => self.wait_ready(step, &api, &arn, deadline).await,
            Err(e) => Err(e),
        };
        let e = match settled {
            Ok(Settled::Ready) => {
                self.announcer
                    .ready(
                        S::READY_DETAIL_TYPE,
                        subject,
                        &arn,
                        &record.token,
                        record.origin,
                    )
                    .await?;
                self.ledger
                    .promote_ready(&plan.key, record.generation, &arn)
                    .await?;
                // What this request asks beyond the creator's is applied now.
                let ready = Record {
                    status: Status::Ready,
                    ..record
                };
                return match self
                    .converge(step, plan, subject, ready, revision, deadline)
                    .await?
                {
                    Outcome::Duplicate { arn } => Ok(Outcome::Ready {
                        arn,
                        how: How::Settled,
                    }),
                    other => Ok(other),
                };
            }
            Ok(Settled::Pending(status)) => {
                self.want(plan, &record, revision).await?;
                return Err(not_ready(&arn, &status));
            }
            Ok(Settled::Failed(e)) | Err(e) => e,
        };
        // Unreachable since it became CREATED for longer than the window: permanent.
        let since = record.updated_at.map_or(SystemTime::now(), from_epoch_ms);
        let e = self.grace(since, record.attempt, e);
        if e.is_retryable() {
            return Err(e);
        }
        if self
            .ledger
            .fail_created(&plan.key, record.generation, &arn, e.reason())
            .await?
        {
            self.announce_failure(&plan.key, record.generation, subject, e.reason())
                .await?;
        }
        Ok(Outcome::Failed(e.reason().clone()))
    }

    /// A request for a READY step. Older than (or equal to) the applied revision: a duplicate,
    /// never a rollback. Newer: its fields (only those it specifies) over the applied state
    /// are the wanted state; if that differs, the update is claimed (one conditional write),
    /// made, announced "<Step> Updated" and recorded, fenced by the update's lease. A pending
    /// update newer than this request is carried on instead.
    async fn converge<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        subject: &Subject<'_>,
        record: Record,
        revision: &Revision,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, StepError> {
        let arn = record_arn(&record)?;
        let state = record.state.clone().unwrap_or_default();
        let pending = record
            .wanted
            .clone()
            .zip(record.wanted_revision.clone())
            .filter(|(_, pending)| pending > revision);
        let (wanted, target) = match pending {
            // Recorded while the step was created, it holds only the fields it specifies.
            Some((newer, target)) => (overlay(&state, &newer), target),
            None => {
                if record
                    .applied_revision
                    .as_ref()
                    .is_some_and(|a| a >= revision)
                {
                    if overlay(&state, &plan.desired) != state {
                        info!(applied = %record.applied_revision.as_ref().map(Revision::as_str).unwrap_or(""),
                            request = %revision, "an older request than the applied one: not applied");
                    }
                    return Ok(Outcome::Duplicate { arn });
                }
                (overlay(&state, &plan.desired), revision.clone())
            }
        };
        if wanted == state && record.wanted.is_none() {
            // Newer, but it asks for nothing the resource does not have.
            return Ok(Outcome::Duplicate { arn });
        }
        let update = self
            .ledger
            .claim_update(&record, &wanted, &target, self.settings.lease, deadline)
            .await?;
        let lease = match update {
            UpdateClaim::Acquired(lease) => lease,
            UpdateClaim::Busy { lease_expires_at } => {
                let left = lease_expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                return Err(StepError::retryable(
                    "UpdateInProgressElsewhere",
                    format!("{} is being updated by another delivery", plan.key),
                )
                .after(left + Duration::from_secs(1)));
            }
            UpdateClaim::Moved(now) => {
                return Err(StepError::retryable(
                    "ChangedMeanwhile",
                    format!(
                        "{} changed while this request was compared with it (now {} at {}); \
                         it is compared again on the next delivery",
                        plan.key,
                        now.status,
                        now.applied_revision
                            .as_ref()
                            .map(Revision::as_str)
                            .unwrap_or("-")
                    ),
                )
                .after(Duration::from_secs(1)))
            }
        };
        // An earlier holder's update that never ended may have landed, wholly or in part
        // (several calls: a name, tags): the recorded state is then no base to compute calls
        // from. Every wanted value is set again and every key either state names is in play.
        let base = record
            .update_owner
            .is_some()
            .then(|| unknown_base(&state, record.wanted.as_ref()));
        self.apply_update(step, plan, subject, &arn, &state, base, lease)
            .await
    }

    /// A request newer than any the step being created knows (`record`, as the claim read
    /// it) is recorded as the wanted one, so whoever makes the step READY applies it (a
    /// delivery, or the reconciler re-driving the step). Its delivery still comes back, in
    /// case that never happens before its message would otherwise be gone.
    async fn want(
        &self,
        plan: &Plan<impl Send + Sync>,
        record: &Record,
        revision: &Revision,
    ) -> Result<(), StepError> {
        let known = [
            &record.requested_revision,
            &record.wanted_revision,
            &record.applied_revision,
        ]
        .into_iter()
        .flatten()
        .max();
        // A request that specifies nothing (Control Tower's) has nothing to apply.
        if plan.desired.is_empty() || known.is_some_and(|known| known >= revision) {
            return Ok(());
        }
        if self
            .ledger
            .want(&plan.key, record.generation, &plan.desired, revision)
            .await?
        {
            info!(revision = %revision, "a newer request recorded as wanted while the step is created");
        }
        Ok(())
    }

    /// The drift audit of one READY step (`record`, re-planned from `request`): is the
    /// resource still there, and does it still hold the applied state? Drift is recorded
    /// (a write only when the finding changes) and announced once ("Onboarding Drift
    /// Detected"); with `repair`, a resource that is gone is created again as a new
    /// generation, and one that changed is brought back by an update, both through the
    /// same claims and fences as any delivery.
    pub async fn audit<S: Step>(
        &self,
        step: &S,
        request: &OnboardingRequest,
        record: Record,
        repair: bool,
        deadline: Option<SystemTime>,
    ) -> Result<Audit, StepError> {
        let key = record.key.clone();
        self.bounded(
            &key,
            deadline,
            self.audit_held(step, request, record, repair, deadline),
        )
        .await
    }

    async fn audit_held<S: Step>(
        &self,
        step: &S,
        request: &OnboardingRequest,
        record: Record,
        repair: bool,
        deadline: Option<SystemTime>,
    ) -> Result<Audit, StepError> {
        if record.update_owner.is_some() || record.wanted.is_some() {
            // An update is in flight: the resource may already hold what the ledger does
            // not yet; the update's holder (or the reconciler) finishes it first.
            return Ok(Audit::Deferred);
        }
        let plan = step
            .plan(request)
            .map_err(|why| StepError::permanent("NotRebuildable", why))?;
        let arn = record_arn(&record)?;
        let state = record.state.clone().unwrap_or_default();
        let subject = Subject {
            step: S::NAME,
            account_id: plan.account_id.as_deref(),
            request_event_id: &request.event_id,
        };
        let observed = async {
            let api = step.connect(&plan.input).await?;
            let gone = match step.readiness(&api, &arn).await {
                Ok(Readiness::Ready | Readiness::Pending(_)) => false,
                Ok(Readiness::Failed(_)) => true,
                Err(e) if e.code() == NOT_FOUND => true,
                Err(e) => return Err(e),
            };
            if gone {
                return Ok((true, Fields::new(), Vec::new()));
            }
            let now = step
                .current(&api, &plan.input, &arn, &state, &state)
                .await?;
            let changed: Vec<String> = changed_fields(&now, &state)
                .into_iter()
                .filter(|f| state.contains_key(f) && !S::UNOBSERVABLE.contains(&f.as_str()))
                .collect();
            Ok((false, now, changed))
        }
        .await;
        let (gone, now, changed) = match observed {
            Ok(found) => found,
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                // Refused (a permission the member role lacks, ...): recorded on the step,
                // which stays READY with its applied state, so `onboarding status` shows why
                // it is not audited; the reconciler counts it apart from audited steps.
                let finding = serde_json::json!({
                    "refused": { "code": e.code(), "message": e.reason().message },
                });
                let known = record
                    .drift
                    .as_ref()
                    .is_some_and(|d| d.get("refused") == finding.get("refused"));
                if !known {
                    let mut stored = finding;
                    stored["at"] = serde_json::json!(epoch_ms_now());
                    self.ledger
                        .record_audit(&record, Some(&stored.to_string()))
                        .await?;
                }
                return Err(e);
            }
        };
        if !gone && changed.is_empty() {
            if record.drift.is_some() {
                self.ledger.record_audit(&record, None).await?;
            }
            return Ok(Audit::Clean);
        }
        let finding = serde_json::json!({ "gone": gone, "changed": changed });
        let known = record.drift.as_ref().is_some_and(|d| {
            d.get("gone") == finding.get("gone") && d.get("changed") == finding.get("changed")
        });
        if !known {
            let mut stored = finding.clone();
            stored["at"] = serde_json::json!(epoch_ms_now());
            if !self
                .ledger
                .record_audit(&record, Some(&stored.to_string()))
                .await?
            {
                // The step moved on (a delivery or an operator): nothing to report.
                return Ok(Audit::Clean);
            }
            self.announcer
                .drift(&subject, &arn, gone, &changed, repair)
                .await?;
            warn!(arn = %arn, gone, changed = ?changed, "drift detected");
        }
        let repaired = if !repair {
            None
        } else if gone {
            match self.ledger.repair(&record).await {
                Ok(_) => Some(self.run(step, request, deadline).await?),
                // Another repairer (or a delivery, an operator) moved the step on since this
                // audit read it: theirs is the repair.
                Err(LedgerError::NotAllowed(why)) => {
                    info!(key = %record.key, reason = %why, "not repaired");
                    None
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            let revision = record
                .applied_revision
                .clone()
                .unwrap_or_else(|| request.revision());
            match self
                .ledger
                .claim_update(&record, &state, &revision, self.settings.lease, deadline)
                .await?
            {
                UpdateClaim::Acquired(lease) => Some(
                    self.apply_update(step, &plan, &subject, &arn, &now, None, lease)
                        .await?,
                ),
                UpdateClaim::Busy { .. } | UpdateClaim::Moved(_) => None,
            }
        };
        Ok(Audit::Drift {
            gone,
            changed,
            repaired,
        })
    }

    /// Holding the update: bring the resource from `state` to the lease's wanted state. A
    /// holder after the first reads the resource and calls only if it still differs (an
    /// earlier holder's call may have landed with its response lost).
    #[allow(clippy::too_many_arguments)]
    async fn apply_update<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        subject: &Subject<'_>,
        arn: &str,
        state: &Fields,
        base: Option<Fields>,
        lease: UpdateLease,
    ) -> Result<Outcome, StepError> {
        if lease.wanted == *state && base.is_none() {
            // A newer request that asks for what is there: only its revision is recorded.
            self.ledger.end_update(&lease, UpdateEnd::Applied).await?;
            return Ok(Outcome::Duplicate {
                arn: arn.to_string(),
            });
        }
        let token = update_token(
            &lease.key,
            lease.generation,
            &lease.revision,
            lease.salt.as_deref(),
        );
        let from = base.as_ref().unwrap_or(state);
        let made = async {
            let api = step.connect(&plan.input).await?;
            let needed = lease.attempt <= 1
                || step
                    .current(&api, &plan.input, arn, from, &lease.wanted)
                    .await?
                    != lease.wanted;
            if needed {
                step.update(&api, &plan.input, arn, from, &lease.wanted, &token)
                    .await?;
            }
            Ok::<(), StepError>(())
        }
        .await;
        if let Err(e) = made {
            // Not reachable yet (the member role gone, say): the update has the grace window
            // of the step it updates, from the first attempt of the pending work (kept across
            // releases); past it, it is refused like any refusal, never retried forever.
            let waited = SystemTime::now()
                .duration_since(lease.first_attempt_at)
                .unwrap_or_default();
            let window = self.settings.member_role_grace;
            let past_window = e.is_not_yet() && waited >= window;
            let e = if e.is_not_yet() && !past_window {
                let delay = self.settings.backoff(lease.attempt);
                e.after(delay)
            } else {
                e
            };
            if e.is_retryable() && !past_window {
                let end = UpdateEnd::Released {
                    reason: e.reason(),
                    retry_after: e.retry_after().map(|d| SystemTime::now() + d),
                };
                if let Err(ledger_err) = self.ledger.end_update(&lease, end).await {
                    warn!(error = %ledger_err, "could not release the update; its lease will expire");
                }
                return Err(e);
            }
            // Refused for good: recorded first (fenced), then announced; the step stays READY.
            let message = if past_window {
                format!(
                    "the update of {} to revision {} was not possible for {} after its first \
                     attempt, past the grace window of {} (MEMBER_ROLE_GRACE_SECONDS): {}; \
                     the resource keeps its applied state: fix the cause, then send the \
                     request again",
                    plan.key,
                    lease.revision,
                    human(waited),
                    human(window),
                    e.reason().message
                )
            } else {
                format!(
                    "the update of {} to revision {} was refused: {}; the resource keeps its \
                     applied state",
                    plan.key,
                    lease.revision,
                    e.reason().message
                )
            };
            let reason = ErrorReason {
                retryable: false,
                code: e.code().to_string(),
                message,
            };
            self.ledger
                .end_update(&lease, UpdateEnd::Refused(&reason))
                .await?;
            self.announcer.failed(subject, &reason).await?;
            return Ok(Outcome::Rejected(reason));
        }
        let changed = changed_fields(state, &lease.wanted);
        let announced = self
            .announcer
            .updated(
                S::UPDATED_DETAIL_TYPE,
                subject,
                arn,
                &lease.revision,
                &changed,
            )
            .await;
        if let Err(e) = announced {
            let end = UpdateEnd::Released {
                reason: e.reason(),
                retry_after: None,
            };
            if let Err(ledger_err) = self.ledger.end_update(&lease, end).await {
                warn!(error = %ledger_err, "could not release the update; its lease will expire");
            }
            return Err(e);
        }
        self.ledger.end_update(&lease, UpdateEnd::Applied).await?;
        info!(arn = %arn, revision = %lease.revision, changed = ?changed, "resource updated");
        Ok(Outcome::Updated {
            arn: arn.to_string(),
            changed,
        })
    }

    /// Brings a resource that was there already (adopted, pre-existing) to the request's
    /// fields, if it differs.
    #[allow(clippy::too_many_arguments)]
    async fn align<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        api: &S::Api,
        arn: &str,
        key: &StepKey,
        generation: u32,
        salt: Option<&str>,
        revision: &Revision,
    ) -> Result<(), StepError> {
        let now = step
            .current(api, &plan.input, arn, &Fields::new(), &plan.desired)
            .await?;
        if now != plan.desired {
            let token = update_token(key, generation, revision, salt);
            step.update(api, &plan.input, arn, &now, &plan.desired, &token)
                .await?;
        }
        Ok(())
    }

    /// Whether `lease` has time left to announce before it could be taken over: a quarter
    /// of a lease's length, at most 5 s.
    fn lease_fresh(&self, lease: &Lease) -> bool {
        let margin = (self.settings.lease / 4).min(Duration::from_secs(5));
        SystemTime::now() + margin < lease.expires_at
    }

    /// Not reachable yet: retryable with a growing delay inside the grace window from
    /// `since`, permanent after it with a message that says so. Other errors pass unchanged.
    fn grace(&self, since: SystemTime, attempt: u32, e: StepError) -> StepError {
        if !e.is_not_yet() {
            return e;
        }
        let waited = SystemTime::now().duration_since(since).unwrap_or_default();
        let window = self.settings.member_role_grace;
        if waited < window {
            let delay = self.settings.backoff(attempt);
            return e.after(delay);
        }
        let message = format!(
            "{} - still so {} after the first attempt, past the grace window of {} \
             (MEMBER_ROLE_GRACE_SECONDS); recorded as failed: fix the cause, then \
             `onboarding retry`",
            e.reason().message,
            human(waited),
            human(window),
        );
        e.into_permanent(message)
    }

    /// A failure while holding the lease. Retryable (or not reachable yet, inside the grace
    /// window): release the lease with the earliest retry. Permanent: record FAILED (fenced:
    /// a holder that lost its lease records and announces nothing), then announce.
    async fn give_up(
        &self,
        lease: &Lease,
        subject: &Subject<'_>,
        e: StepError,
        sent: bool,
    ) -> Result<Outcome, StepError> {
        let e = spread_throttling(
            self.grace(lease.first_attempt_at, lease.attempt, e),
            lease.attempt,
        );
        if e.is_retryable() {
            self.release(lease, &e, sent).await;
            return Err(e);
        }
        self.ledger.fail_permanent(lease, e.reason()).await?;
        self.announce_failure(&lease.key, lease.generation, subject, e.reason())
            .await?;
        Ok(Outcome::Failed(e.reason().clone()))
    }

    /// Announces a recorded failure and marks it announced. If either fails, the delivery is
    /// retried and finds the unannounced failure (the `Claim::Failed` path announces it).
    async fn announce_failure(
        &self,
        key: &StepKey,
        generation: u32,
        subject: &Subject<'_>,
        reason: &ErrorReason,
    ) -> Result<(), StepError> {
        self.announcer.failed(subject, reason).await?;
        self.ledger.mark_announced(key, generation).await?;
        Ok(())
    }

    /// Releases the lease so the next delivery takes over with the same token, recording
    /// when to retry and whether a create was sent. If this write fails, the lease expires.
    async fn release(&self, lease: &Lease, e: &StepError, sent: bool) {
        let how = Release {
            retry_after: e.retry_after().map(|d| SystemTime::now() + d),
            create_sent: sent,
        };
        if let Err(ledger_err) = self.ledger.release(lease, e.reason(), how).await {
            warn!(error = %ledger_err, "could not release the lease; it will expire");
        }
    }

    /// Checks readiness until the resource is ready or failed, or the wait is over. The wait
    /// leaves time before the deadline to announce and record; with no time left it makes a
    /// single check.
    async fn wait_ready<S: Step>(
        &self,
        step: &S,
        api: &S::Api,
        arn: &str,
        deadline: Option<SystemTime>,
    ) -> Result<Settled, StepError> {
        let mut until = SystemTime::now() + self.settings.ready_wait;
        if let Some(end) = deadline.and_then(|d| d.checked_sub(REPLY_MARGIN + FINISH_RESERVE)) {
            until = until.min(end);
        }
        let mut delay = FIRST_READINESS_DELAY;
        loop {
            match step.readiness(api, arn).await? {
                Readiness::Ready => return Ok(Settled::Ready),
                Readiness::Failed(e) => return Ok(Settled::Failed(e)),
                Readiness::Pending(status) => {
                    if SystemTime::now() + delay > until {
                        return Ok(Settled::Pending(status));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_READINESS_DELAY);
                }
            }
        }
    }

    /// Announces a finished step whose record says it was not announced yet (a crash or a
    /// failed PutEvents after the record was written), then marks it, in its generation.
    async fn announce_late(
        &self,
        record: &Record,
        announce: impl std::future::Future<Output = Result<(), StepError>>,
    ) -> Result<(), StepError> {
        announce.await?;
        self.ledger
            .mark_announced(&record.key, record.generation)
            .await?;
        Ok(())
    }
}

/// What a lookup found, as the step's resource and its origin. `earlier_send`: an earlier
/// attempt may have sent a create, so a resource made since the first attempt is ours.
fn adopt(
    found: Existing,
    lease: &Lease,
    earlier_send: bool,
) -> Result<(String, Origin), StepError> {
    match found {
        Existing::Matches { arn, created_at } => {
            let since_first_attempt =
                created_at.is_none_or(|t| t + CLOCK_SKEW >= lease.first_attempt_at);
            let origin = if earlier_send && since_first_attempt {
                Origin::Adopted
            } else {
                Origin::PreExisting
            };
            info!(arn = %arn, origin = origin.as_str(), "adopting the existing resource");
            Ok((arn, origin))
        }
        Existing::Conflicts(e) => Err(e),
    }
}

/// A throttled attempt comes back after a growing, jittered delay (2 s doubling to 2 min,
/// each between half and all of it) rather than the queue's fixed visibility timeout, so a
/// burst of records spreads out instead of returning together.
fn spread_throttling(e: StepError, attempt: u32) -> StepError {
    if !e.is_retryable() || e.retry_after().is_some() || !crate::error::is_throttling(e.code()) {
        return e;
    }
    let full = Duration::from_secs(2)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(Duration::from_secs(120));
    let unit = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    e.after(full.mul_f64(0.5 + 0.5 * unit))
}

/// When a delivery that found its step held comes back: after about as long as the holder
/// has held it (a holder that claimed a second ago is likely done in a few; one that has
/// worked for a minute may work for another), at least [`MIN_RECHECK`], never later than
/// just after the lease ends, jittered (0.8-1.0x) so that the waiters of a burst spread out.
fn recheck_in(held_for: Duration, lease_left: Duration) -> Duration {
    let unit = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    held_for
        .max(MIN_RECHECK)
        .mul_f64(0.8 + 0.2 * unit)
        .min(lease_left + Duration::from_secs(1))
}

/// What a resource may be in after an unfinished update from `state` towards `pending`:
/// every field unknown, and a map field (tags, details) with the keys of both, each unknown,
/// so that an update from it sets every wanted value and removes every key either state named
/// that is no longer wanted. Unknown is a string no request can hold (a NUL character).
fn unknown_base(state: &Fields, pending: Option<&Fields>) -> Fields {
    let unknown = || serde_json::Value::String("\u{0}unknown".into());
    let mut base = Fields::new();
    for (field, value) in state.iter().chain(pending.into_iter().flatten()) {
        let merged = match (value, base.get(field)) {
            (serde_json::Value::Object(keys), seen) => {
                let mut all = match seen {
                    Some(serde_json::Value::Object(seen)) => seen.clone(),
                    _ => serde_json::Map::new(),
                };
                all.extend(keys.keys().map(|k| (k.clone(), unknown())));
                serde_json::Value::Object(all)
            }
            _ => unknown(),
        };
        base.insert(field.clone(), merged);
    }
    base
}

/// `state` with every field `request` specifies taken from it.
fn overlay(state: &Fields, request: &Fields) -> Fields {
    let mut merged = state.clone();
    for (field, value) in request {
        merged.insert(field.clone(), value.clone());
    }
    merged
}

/// The fields whose values differ between two states.
fn changed_fields(before: &Fields, after: &Fields) -> Vec<String> {
    let mut names: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

fn from_epoch_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// `2h 0m`, `5m 3s`, `4.2s`: durations in messages.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h {}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The plan of the request this generation's create is made with, when it is not this
/// request's: the first claimant's, rebuilt from the ledger. Sending other parameters with
/// the generation's token would be refused (IdempotentParameterMismatch), and a lookup for
/// other parameters would take our own resource for someone else's.
fn first_request<S: Step>(
    step: &S,
    plan: &Plan<S::Input>,
    lease: &Lease,
) -> Result<Option<FirstRequest<S::Input>>, StepError> {
    let Some((fields, revision)) = &lease.requested else {
        return Ok(None);
    };
    if *fields == plan.desired {
        return Ok(None);
    }
    let rebuilt = |why: String| {
        StepError::permanent(
            "NotRebuildable",
            format!(
                "{} is being created for request {revision}, which cannot be rebuilt from \
                 the ledger: {why}",
                lease.key
            ),
        )
    };
    let request = rebuild::request_from::<S>(&lease.key, fields, revision).map_err(rebuilt)?;
    let first = step.plan(&request).map_err(rebuilt)?;
    Ok(Some((first, revision.clone())))
}

/// The plan of a generation's first request, and its revision.
type FirstRequest<I> = (Plan<I>, Revision);

/// How holding the lease ended: the resource recorded `READY` (the item as written), or
/// another outcome (retry, failure) already recorded.
enum Obtained {
    Ready(Box<Record>),
    Done(Outcome),
}

/// Where a readiness wait ended.
enum Settled {
    Ready,
    Failed(StepError),
    Pending(String),
}

fn not_ready(arn: &str, status: &str) -> StepError {
    StepError::retryable(
        "NotReady",
        format!("{arn} is {status}; readiness is checked again on the next delivery"),
    )
}

fn record_token(token: &str, attempt: u32) {
    let span = tracing::Span::current();
    span.record("client_token", token);
    span.record("attempt", attempt);
}

fn record_arn(record: &Record) -> Result<String, StepError> {
    record.resource_arn.clone().ok_or_else(|| {
        StepError::permanent(
            "LedgerCorrupt",
            format!(
                "{} is {} but has no resource ARN",
                record.key, record.status
            ),
        )
    })
}

/// A request newer than the retirement of `record` reopens it (a closed account reopened
/// within AWS's 90 days and sent to onboarding again); an older one (a late redelivery, an
/// archive replay) is acknowledged as retired.
fn reopens(record: &Record, revision: &Revision) -> bool {
    record
        .retired_revision
        .as_ref()
        .is_some_and(|retired| revision > retired)
}

/// The end of an account's life: its departure retires its steps, a retired step refuses
/// every older request, and a newer one reopens it as a new generation.
impl Engine {
    /// An account closed or left the organization: retire `step`'s steps of that account.
    /// The step's own key for the account (when the step is keyed by account alone) is
    /// retired even if no request reached it yet, so a late request is refused; steps keyed
    /// further (a portal's providers) are found with one Query of the account's scope. Each
    /// retirement is recorded (fenced: never over a request newer than the departure), then
    /// announced "Account Offboarded", then marked announced; a retirement recorded earlier
    /// and not yet announced is announced now. Steps of the organization are not the
    /// account's: nothing to retire.
    pub async fn retire<S: Step>(
        &self,
        step: &S,
        request: &OffboardingRequest,
    ) -> Result<Outcome, StepError> {
        let reason = request.reason();
        let scope = StepKey::account(&request.account_id, S::NAME).scope;
        let own_key = step
            .plan(&OnboardingRequest {
                event_id: request.event_id.clone(),
                origin: crate::events::Origin::Organizations,
                replay_name: None,
                time: request.time.clone(),
                account_id: request.account_id.clone(),
                account_name: None,
                instance: Default::default(),
                web_identity_provider: None,
            })
            .ok()
            .map(|plan| plan.key);
        let mut keys = Vec::new();
        match own_key {
            Some(key) if key.scope == scope => keys.push(key),
            Some(_) => {
                info!(outcome = "skipped", reason = %reason, "the organization's step outlives its member accounts");
                return Ok(Outcome::Skipped(format!(
                    "{} belongs to the organization, not to account {}: nothing to retire",
                    S::NAME,
                    request.account_id
                )));
            }
            None => {
                let prefix = format!("{}#", S::NAME);
                for record in self.ledger.get(&scope).await? {
                    if record.key.step.starts_with(&prefix) {
                        keys.push(record.key);
                    }
                }
            }
        }
        let revision = Revision::at(request.time.as_deref(), &request.event_id);
        let why = serde_json::json!({
            "event": request.departure.event_name(),
            "eventId": request.event_id,
            "time": request.time,
            "departure": request.departure,
            "reason": reason,
        });
        let subject = Subject {
            step: S::NAME,
            account_id: Some(&request.account_id),
            request_event_id: &request.event_id,
        };
        let (mut retired, mut kept) = (Vec::new(), Vec::new());
        for key in keys {
            match self.ledger.retire(&key, &revision, &why).await? {
                Retirement::Retired(record) | Retirement::Already(record) => {
                    if !record.announced {
                        let details = record.retired.clone().unwrap_or_default();
                        let announce = self.announcer.offboarded(
                            &subject,
                            record.resource_arn.as_deref(),
                            &details,
                        );
                        self.announce_late(&record, announce).await?;
                    }
                    info!(key = %key, reason = %reason, "step retired");
                    retired.push(key.to_string());
                }
                Retirement::Newer(record) => {
                    info!(key = %key, status = %record.status,
                        "not retired: the step knows a request newer than the departure");
                    kept.push(key.to_string());
                }
            }
        }
        Ok(Outcome::Offboarded {
            retired,
            kept,
            reason,
        })
    }

    /// A delivery for a retired step: acknowledged with why (its retirement announced if an
    /// earlier delivery recorded it and crashed before announcing); nothing is created.
    async fn retired(&self, subject: &Subject<'_>, record: Record) -> Result<Outcome, StepError> {
        let details = record.retired.clone().unwrap_or_default();
        if !record.announced {
            let announce =
                self.announcer
                    .offboarded(subject, record.resource_arn.as_deref(), &details);
            self.announce_late(&record, announce).await?;
        }
        let why = details
            .get("reason")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("its account closed or left the organization");
        Ok(Outcome::Retired {
            reason: format!(
                "{} is RETIRED ({why}); a request newer than the retirement starts it again",
                record.key
            ),
        })
    }

    /// Reopens a retired step for a request newer than its retirement (a new generation
    /// that looks the old resource up before creating) and claims it again.
    async fn reopened(
        &self,
        plan: &crate::step::Plan<impl Send + Sync>,
        request: &OnboardingRequest,
        hash: &str,
        revision: &Revision,
        record: Record,
        deadline: Option<SystemTime>,
    ) -> Result<Claim, StepError> {
        if self.ledger.reopen(&record).await? {
            info!(key = %record.key, generation = record.generation + 1,
                "retired step reopened by a newer request");
        }
        Ok(self
            .ledger
            .claim_with(
                &plan.key,
                &ClaimRequest {
                    request_hash: hash,
                    event_id: &request.event_id,
                    lease: self.settings.lease,
                    deadline,
                },
                Some(Applied {
                    state: &plan.desired,
                    revision,
                }),
            )
            .await?)
    }
}
