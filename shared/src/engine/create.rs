//! Creating a step's resource while holding the claim's lease: look it up when an earlier
//! attempt may have sent a create, create it with the generation's ClientToken, adopt one
//! that exists, wait for readiness, announce and record `READY`.
//!
//! Invariants: a create is only ever sent with the generation's token and the generation's
//! first request (so a retried create is the same call); a step recorded CREATED is never
//! created again, only checked for readiness; every write is fenced by the lease (or, once
//! CREATED, by the generation and resource read with the claim).

use std::time::{Duration, SystemTime};

use tracing::info;

use super::timing::from_epoch_ms;
use super::{record_arn, Engine, How, Outcome, REPLY_MARGIN};
use crate::announce::Subject;
use crate::error::StepError;
use crate::ledger::{Applied, Lease, Origin, Record, Status};
use crate::rebuild;
use crate::revision::Revision;
use crate::step::{Existing, Plan, Readiness, Step, CONFLICT};

/// Time a readiness wait leaves for announcing and recording after it.
const FINISH_RESERVE: Duration = Duration::from_secs(3);

const FIRST_READINESS_DELAY: Duration = Duration::from_millis(100);
const MAX_READINESS_DELAY: Duration = Duration::from_secs(2);

/// Clocks of the service and of the functions may disagree this much: a resource created
/// less than this before the step's first attempt may still be an earlier attempt's.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

impl Engine {
    /// The step is held by this delivery: obtain the resource (look up, create), wait for
    /// it, announce it and record it, all fenced by the lease. The resource is made as the
    /// generation's first claimant asked (whichever request holds the lease now); what this
    /// request asks beyond that is then applied as an update.
    pub(super) async fn acquired<S: Step>(
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
    pub(super) async fn settle<S: Step>(
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
        let e = self.settings.grace(since, record.attempt, e);
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
    pub(super) async fn announce_late(
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
