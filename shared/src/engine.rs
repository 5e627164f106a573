//! The one runner every step goes through:
//! plan -> claim -> (reconcile on a later attempt) -> create with the ledger's ClientToken ->
//! record -> wait for readiness -> announce.
//!
//! Every path either finishes the step, records a permanent failure (and announces it), or
//! returns a retryable error so the delivery comes back; nothing is dropped.

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tracing::{field, info, warn, Instrument};

use crate::announce::{Announcer, Subject};
use crate::error::StepError;
use crate::events::OnboardingRequest;
use crate::ledger::{
    request_hash, Claim, ClaimRequest, ErrorReason, Failure, Lease, Ledger, Record, StepKey,
};
use crate::step::{Plan, Readiness, Step};
use crate::telemetry::Tally;

/// Time kept free before the invocation's deadline for recording and replying.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);
const FIRST_READINESS_DELAY: Duration = Duration::from_millis(100);
const MAX_READINESS_DELAY: Duration = Duration::from_secs(2);

/// How a delivery ended for one step, when it did not need to be retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The request does not ask for this step.
    Skipped(String),
    /// The step became ready in this delivery.
    Ready { arn: String, how: How },
    /// The step was already ready: a duplicate, acknowledged.
    Duplicate { arn: String },
    /// The step failed permanently (now or earlier): recorded and announced.
    Failed(ErrorReason),
    /// Same key, different request: refused, announced, the ledger item left as it was.
    Rejected(ErrorReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// This delivery's create call made the resource.
    Created,
    /// An earlier attempt had made it (its response was lost); this one found and adopted it.
    Adopted,
    /// An earlier delivery created it; this one saw it become ready.
    Settled,
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
                how: How::Adopted, ..
            } => t.adopted = 1,
            Outcome::Ready {
                how: How::Settled, ..
            } => {}
            Outcome::Duplicate { .. } => t.duplicates = 1,
            Outcome::Failed(_) => t.failures = 1,
            Outcome::Rejected(_) => t.rejected = 1,
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
                how: How::Settled, ..
            } => "ready",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Failed(_) => "failed",
            Outcome::Rejected(_) => "rejected",
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

    /// Runs `step` for one delivery of `request`. Boxed: the step's SDK futures are deep, and
    /// one allocation per delivery keeps every caller's future small.
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
                let result = self.claimed(step, &plan, request, deadline).await;
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

    async fn claimed<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        request: &OnboardingRequest,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, StepError> {
        let hash = request_hash(&plan.canonical);
        let claim = self
            .ledger
            .claim(
                &plan.key,
                &ClaimRequest {
                    request_hash: &hash,
                    event_id: &request.event_id,
                    lease: self.settings.lease,
                    deadline,
                },
            )
            .await?;
        let subject = Subject {
            step: S::NAME,
            account_id: plan.account_id.as_deref(),
            request_event_id: &request.event_id,
        };
        match claim {
            Claim::Ready(record) => {
                let arn = record_arn(&record)?;
                if record
                    .request_hash
                    .as_deref()
                    .is_some_and(|stored| stored != hash)
                {
                    // A finished step stays as it was made: another pipeline's view of the
                    // same account (or a changed request) does not fail a healthy account.
                    warn!(arn = %arn, "step already done with different parameters; this request's differences were not applied");
                }
                if !record.announced {
                    let announce =
                        self.announcer
                            .ready(S::READY_DETAIL_TYPE, &subject, &arn, &record.token);
                    self.announce_late(&plan.key, announce).await?;
                }
                Ok(Outcome::Duplicate { arn })
            }
            Claim::Failed(record) => {
                let reason = record.last_error.clone().unwrap_or_else(|| ErrorReason {
                    retryable: false,
                    code: "Failed".into(),
                    message: "failed earlier; no reason was recorded".into(),
                });
                if !record.announced {
                    let announce = self.announcer.failed(&subject, &reason);
                    self.announce_late(&plan.key, announce).await?;
                }
                Ok(Outcome::Failed(reason))
            }
            Claim::Mismatch(record) => {
                let reason = ErrorReason {
                    retryable: false,
                    code: "RequestMismatch".into(),
                    message: format!(
                        "{} was already requested with different parameters (attempt {}, status {}); \
                         use the original parameters, or `onboarding retry` after a failure",
                        plan.key, record.attempt, record.status
                    ),
                };
                // The item belongs to the original request: announce, never overwrite it.
                self.announcer.failed(&subject, &reason).await?;
                Ok(Outcome::Rejected(reason))
            }
            Claim::InProgress { lease_expires_at } => {
                let secs = lease_expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .as_secs_f32();
                Err(StepError::retryable(
                    "InProgressElsewhere",
                    format!(
                        "{} is being handled by another delivery (lease ends in {secs:.1}s)",
                        plan.key
                    ),
                ))
            }
            Claim::Created(record) => {
                let arn = record_arn(&record)?;
                record_token(&record.token, record.attempt);
                let api = step.connect(&plan.input).await?;
                match self.wait_ready(step, &api, &arn, deadline).await {
                    Ok(Settled::Ready) => {
                        self.announcer
                            .ready(S::READY_DETAIL_TYPE, &subject, &arn, &record.token)
                            .await?;
                        self.ledger.promote_ready(&plan.key, &arn).await?;
                        Ok(Outcome::Ready {
                            arn,
                            how: How::Settled,
                        })
                    }
                    Ok(Settled::Pending(status)) => Err(not_ready(&arn, &status)),
                    Ok(Settled::Failed(e)) | Err(e) if !e.is_retryable() => {
                        self.announcer.failed(&subject, e.reason()).await?;
                        self.ledger.fail_created(&plan.key, e.reason()).await?;
                        Ok(Outcome::Failed(e.reason().clone()))
                    }
                    Ok(Settled::Failed(e)) | Err(e) => Err(e),
                }
            }
            Claim::Acquired(lease) => {
                record_token(&lease.token, lease.attempt);
                let reconcile = lease.attempt > 1 || lease.generation > 0;
                let (api, arn, how) = match self.create(step, plan, reconcile, &lease.token).await {
                    Ok(created) => created,
                    Err(e) => return self.give_up(&lease, &subject, e).await,
                };
                let settled = if step.ready_on_create() {
                    Ok(Settled::Ready)
                } else {
                    self.wait_ready(step, &api, &arn, deadline).await
                };
                match settled {
                    // Announce first, then one write that records READY and announced: two
                    // writes for a first pass, and a crash in between re-announces.
                    Ok(Settled::Ready) => {
                        let announced = self
                            .announcer
                            .ready(S::READY_DETAIL_TYPE, &subject, &arn, &lease.token)
                            .await;
                        if let Err(e) = announced {
                            self.release(&lease, &e).await;
                            return Err(e);
                        }
                        self.ledger.mark_ready(&lease, &arn).await?;
                        Ok(Outcome::Ready { arn, how })
                    }
                    Ok(Settled::Failed(e)) => self.give_up(&lease, &subject, e).await,
                    // Not ready in time (or the check failed for now): record what exists so
                    // later deliveries only check readiness.
                    Ok(Settled::Pending(status)) => {
                        self.ledger.mark_created(&lease, &arn).await?;
                        Err(not_ready(&arn, &status))
                    }
                    Err(e) if e.is_retryable() => {
                        self.ledger.mark_created(&lease, &arn).await?;
                        Err(e)
                    }
                    Err(e) => self.give_up(&lease, &subject, e).await,
                }
            }
        }
    }

    /// A failure while holding the lease: permanent ones are announced, then recorded (one
    /// write); retryable ones release the lease for the next delivery.
    async fn give_up(
        &self,
        lease: &Lease,
        subject: &Subject<'_>,
        e: StepError,
    ) -> Result<Outcome, StepError> {
        if e.is_retryable() {
            self.release(lease, &e).await;
            return Err(e);
        }
        if let Err(announce_err) = self.announcer.failed(subject, e.reason()).await {
            self.release(lease, &announce_err).await;
            return Err(announce_err);
        }
        self.ledger
            .fail(lease, Failure::Permanent, e.reason())
            .await?;
        Ok(Outcome::Failed(e.reason().clone()))
    }

    /// Releases the lease so the next delivery takes over at once with the same token. If
    /// this write fails too, the lease simply expires.
    async fn release(&self, lease: &Lease, e: &StepError) {
        if let Err(ledger_err) = self
            .ledger
            .fail(lease, Failure::Retryable, e.reason())
            .await
        {
            warn!(error = %ledger_err, "could not release the lease; it will expire");
        }
    }

    /// Connects, reconciles when an earlier attempt may have created the resource, else
    /// creates it with the ledger's token.
    async fn create<S: Step>(
        &self,
        step: &S,
        plan: &Plan<S::Input>,
        reconcile: bool,
        token: &str,
    ) -> Result<(S::Api, String, How), StepError> {
        let api = step.connect(&plan.input).await?;
        if reconcile {
            if let Some(arn) = step.lookup(&api, &plan.input).await? {
                info!(arn = %arn, "adopting the resource an earlier attempt created");
                return Ok((api, arn, How::Adopted));
            }
        }
        let arn = step.create(&api, &plan.input, token).await?;
        Ok((api, arn, How::Created))
    }

    /// Checks readiness until the resource is ready or failed, or the wait is over.
    async fn wait_ready<S: Step>(
        &self,
        step: &S,
        api: &S::Api,
        arn: &str,
        deadline: Option<SystemTime>,
    ) -> Result<Settled, StepError> {
        let mut until = SystemTime::now() + self.settings.ready_wait;
        if let Some(end) = deadline.and_then(|d| d.checked_sub(DEADLINE_MARGIN)) {
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

    /// Re-announces a finished step whose record says it was never announced (written
    /// before announcing was part of the completion write, or edited by hand).
    async fn announce_late(
        &self,
        key: &StepKey,
        announce: impl std::future::Future<Output = Result<(), StepError>>,
    ) -> Result<(), StepError> {
        announce.await?;
        self.ledger.mark_announced(key).await?;
        Ok(())
    }
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
