//! Creating a step's resource while holding the claim's lease: look it up when an earlier
//! attempt may have sent a create, create it with the generation's ClientToken, adopt one
//! that exists, wait for readiness, announce and record `READY`.
//!
//! Invariants: a create is only ever sent with the generation's token and the generation's
//! first request (so a retried create is the same call); a step recorded CREATED is never
//! created again, only checked for readiness; every write is fenced by the lease (or, once
//! CREATED, by the generation and resource read with the claim).
//!
//! The phases are methods of [`Delivery`] (one delivery's step, plan, subject, revision and
//! deadline): `create` (the lease is ours) -> `make_ready` -> `find_or_create`, `wait_ready`;
//! `finish_created` for a step an earlier delivery created. Both end in the update path.

use std::time::{Duration, SystemTime};

use tracing::info;

use super::{record_arn, Delivery, Engine, How, Outcome, REPLY_MARGIN};
use crate::clock::from_epoch_ms;
use crate::desired::Desired;
use crate::error::{code, StepError};
use crate::ledger::{update_token, Applied, Lease, Origin, Record, Status};
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

impl<S: Step> Delivery<'_, S> {
    /// The step is held by this delivery: make the resource (look up, create), wait for
    /// it, announce it and record it, all fenced by the lease. The resource is made as the
    /// generation's first claimant asked (whichever request holds the lease now); what this
    /// request asks beyond that is then applied as an update.
    pub(super) async fn create(&self, lease: Lease) -> Result<Outcome, StepError> {
        let engine = self.engine;
        record_token(&lease.token, lease.attempt);
        // An item of an account that departed after this request was made: retired, never
        // created (one read, on the create path of steps keyed further than an account).
        if lease.generation == 0 {
            if let Some(outcome) = engine
                .departed::<S>(&lease.key, self.revision, self.subject)
                .await?
            {
                return Ok(outcome);
            }
        }
        let first = match first_request(self.step, self.plan, &lease) {
            Ok(first) => first,
            Err(e) => return engine.give_up(&lease, self.subject, e, false).await,
        };
        let made = match &first {
            Some((plan, revision)) => Delivery {
                plan,
                revision,
                ..*self
            },
            None => *self,
        };
        match made.make_ready(&lease).await? {
            // What this request or a newer one recorded meanwhile asks beyond what was made
            // is applied now (nothing to do, and no request, when it is what was made).
            Made::Ready(record) => {
                let how = record.origin.map_or(How::Created, How::from);
                match Box::pin(self.converge(*record)).await? {
                    Outcome::Duplicate { arn } => Ok(Outcome::Ready { arn, how }),
                    other => Ok(other),
                }
            }
            Made::Done(outcome) => Ok(outcome),
        }
    }

    /// Brings a resource that was there already to the request's fields, if it differs. One
    /// adopted as an earlier attempt's was made with these very parameters: only what can be
    /// read is compared (a secret cannot be, and re-sending it would be a call for nothing).
    /// One that was there before us may hold someone else's secret: what the request asks is
    /// sent whenever the request names a field that cannot be read.
    async fn align(
        &self,
        lease: &Lease,
        api: &S::Api,
        arn: &str,
        origin: Origin,
    ) -> Result<(), StepError> {
        let Delivery {
            step,
            plan,
            revision,
            ..
        } = *self;
        let now = step
            .current(api, &plan.input, arn, &Default::default(), &plan.desired)
            .await?;
        // What it should hold: what is there with the request's fields set, removals done.
        let wanted = Desired::of(&plan.desired, revision).target(&now);
        let readable = |f: &crate::ledger::Fields| {
            let mut f = f.clone();
            f.retain(|name, _| !S::UNOBSERVABLE.contains(&name.as_str()));
            f
        };
        let differs = match origin {
            Origin::Adopted => readable(&now) != readable(&wanted),
            _ => now != wanted,
        };
        if differs {
            let token = update_token(
                &lease.key,
                lease.generation,
                revision.as_str(),
                lease.salt.as_deref(),
            );
            step.update(api, &plan.input, arn, &now, &wanted, &token)
                .await?;
        }
        Ok(())
    }

    /// [`Delivery::create`] for the request the resource is made with: find or create it,
    /// bring a pre-existing one to the request, wait for readiness, announce and record.
    async fn make_ready(&self, lease: &Lease) -> Result<Made, StepError> {
        let Delivery {
            engine,
            step,
            plan,
            subject,
            revision,
            ..
        } = *self;
        let mut sent = false;
        let (api, arn, origin) = match self.find_or_create(lease, &mut sent).await {
            Ok(found) => found,
            Err(e) => {
                return engine
                    .give_up(lease, subject, e, sent)
                    .await
                    .map(Made::Done)
            }
        };
        // A resource that was there before us is brought to what the request asks; so is one
        // adopted as an earlier attempt's (made less than the clock skew before our first
        // attempt, it may be someone else's that matched): read, and updated only if it
        // differs.
        if origin != Origin::Created && !plan.desired.is_empty() {
            let aligned = self.align(lease, &api, &arn, origin).await;
            if let Err(e) = aligned {
                return engine
                    .give_up(lease, subject, e, true)
                    .await
                    .map(Made::Done);
            }
        }
        // What the resource holds once made: the request's fields, its removals done.
        let made_state = Desired::of(&plan.desired, revision).target(&Default::default());
        let applied = Applied {
            state: &made_state,
            revision,
        };
        let readiness = if step.ready_on_create() {
            Ok(Readiness::Ready)
        } else {
            self.wait_ready(&api, &arn).await
        };
        let generation = subject.of_generation(lease.requested.as_ref().map(|(_, r)| r));
        let announce_ready = || {
            engine.announcer.ready(
                S::READY_DETAIL_TYPE,
                &generation,
                &arn,
                &lease.token,
                Some(origin),
            )
        };
        match readiness {
            // Recorded first, fenced by the lease, so a holder that lost its lease announces
            // nothing; then announced, then marked (leaving the attention index in the same
            // write). A crash in between leaves it unannounced in the attention index, for
            // the next delivery or the reconciler: announced at least once, never before it
            // is recorded.
            Ok(Readiness::Ready) => {
                let record = engine
                    .ledger
                    .mark_ready(lease, &arn, origin, &applied)
                    .await?;
                announce_ready().await?;
                let record = engine.ledger.mark_ready_announced(&record).await?;
                Ok(Made::Ready(Box::new(record)))
            }
            Ok(Readiness::Failed(e)) => engine
                .give_up(lease, subject, e, true)
                .await
                .map(Made::Done),
            // Not ready in time (or the check failed for now): record what exists so later
            // deliveries only check readiness.
            Ok(Readiness::Pending(status)) => {
                engine
                    .ledger
                    .mark_created(lease, &arn, origin, &applied)
                    .await?;
                Err(not_ready(&arn, &status))
            }
            Err(e) if e.is_retryable() => {
                engine
                    .ledger
                    .mark_created(lease, &arn, origin, &applied)
                    .await?;
                Err(e)
            }
            Err(e) => engine
                .give_up(lease, subject, e, true)
                .await
                .map(Made::Done),
        }
    }

    /// Connects; looks the resource up when an earlier attempt may have sent a create; else
    /// creates it with the lease's token, and looks it up when the create says it exists.
    /// `sent` tells the caller whether a create call went out.
    async fn find_or_create(
        &self,
        lease: &Lease,
        sent: &mut bool,
    ) -> Result<(S::Api, String, Origin), StepError> {
        let (step, input) = (self.step, &self.plan.input);
        let api = step.connect(input).await?;
        if lease.may_have_sent {
            if let Some(found) = step.lookup(&api, input).await? {
                let (arn, origin) = adopt(found, lease, true)?;
                return Ok((api, arn, origin));
            }
        }
        *sent = true;
        match step.create(&api, input, &lease.token).await {
            Ok(arn) => Ok((api, arn, Origin::Created)),
            Err(e) if step.says_exists(&e) => match step.lookup(&api, input).await? {
                Some(found) => {
                    let (arn, origin) = adopt(found, lease, lease.may_have_sent)?;
                    Ok((api, arn, origin))
                }
                // AWS documents Conflict as a concurrent write that has not propagated.
                None if e.code() == CONFLICT => Err(StepError::not_yet(
                    code::CONFLICT_NOT_PROPAGATED,
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
    pub(super) async fn finish_created(&self, record: Record) -> Result<Outcome, StepError> {
        let Delivery {
            engine,
            step,
            plan,
            subject,
            ..
        } = *self;
        let arn = record_arn(&record)?;
        record_token(&record.token, record.attempt);
        let readiness = match step.connect(&plan.input).await {
            Ok(api) => self.wait_ready(&api, &arn).await,
            Err(e) => Err(e),
        };
        let e = match readiness {
            Ok(Readiness::Ready) => {
                // Recorded first, then announced by the one delivery whose write promoted it
                // (one Ready per generation); a crash in between leaves it unannounced in the
                // attention index, for the next delivery or the reconciler.
                let promoted = engine
                    .ledger
                    .promote_ready(&record.key, record.generation, &arn)
                    .await?;
                let mut ready = Record {
                    status: Status::Ready,
                    announced: false,
                    attention: Some(String::from("UPDATING")),
                    ..record
                };
                if promoted {
                    engine
                        .announcer
                        .ready(
                            S::READY_DETAIL_TYPE,
                            &subject.of_generation(ready.requested_revision.as_ref()),
                            &arn,
                            &ready.token,
                            ready.origin,
                        )
                        .await?;
                    ready = engine.ledger.mark_ready_announced(&ready).await?;
                }
                // What this request asks beyond the creator's is applied now.
                return match Box::pin(self.converge(ready)).await? {
                    Outcome::Duplicate { arn } => Ok(Outcome::Ready {
                        arn,
                        how: How::Settled,
                    }),
                    other => Ok(other),
                };
            }
            Ok(Readiness::Pending(status)) => {
                self.merge(record).await?;
                return Err(not_ready(&arn, &status));
            }
            Ok(Readiness::Failed(e)) | Err(e) => e,
        };
        // Unreachable since it became CREATED for longer than the window: permanent.
        let since = record.updated_at.map_or(SystemTime::now(), from_epoch_ms);
        let e = engine.settings.grace(since, record.attempt, e);
        if e.is_retryable() {
            return Err(e);
        }
        if engine
            .ledger
            .fail_created(&plan.key, record.generation, &arn, e.reason())
            .await?
        {
            engine
                .announce_failure(&plan.key, record.generation, subject, e.reason())
                .await?;
        }
        Ok(Outcome::Failed(e.reason().clone()))
    }

    /// Checks readiness until the resource is ready or failed, or the wait is over. The wait
    /// leaves time before the deadline to announce and record; with no time left it makes a
    /// single check.
    async fn wait_ready(&self, api: &S::Api, arn: &str) -> Result<Readiness, StepError> {
        let mut until = SystemTime::now() + self.engine.settings.ready_wait;
        let reserve = REPLY_MARGIN + FINISH_RESERVE;
        if let Some(end) = self.deadline.and_then(|d| d.checked_sub(reserve)) {
            until = until.min(end);
        }
        let mut delay = FIRST_READINESS_DELAY;
        loop {
            match self.step.readiness(api, arn).await? {
                Readiness::Pending(status) => {
                    if SystemTime::now() + delay > until {
                        return Ok(Readiness::Pending(status));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_READINESS_DELAY);
                }
                done => return Ok(done),
            }
        }
    }
}

impl Engine {
    /// Announces a finished step whose record says it was not announced yet (a crash or a
    /// failed PutEvents after the record was written), then marks it, in its generation.
    pub(super) async fn announce_late(
        &self,
        record: &Record,
        announce: impl std::future::Future<Output = Result<(), StepError>>,
    ) -> Result<(), StepError> {
        announce.await?;
        if record.status == Status::Retired {
            self.ledger
                .mark_retirement_announced(&record.key, record.generation)
                .await?;
        } else {
            self.ledger
                .mark_announced(&record.key, record.generation, record.status)
                .await?;
        }
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
            code::NOT_REBUILDABLE,
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

/// How making the resource ended: recorded `READY` (the item as written), or another
/// outcome (retry, failure) already recorded.
enum Made {
    Ready(Box<Record>),
    Done(Outcome),
}

fn not_ready(arn: &str, status: &str) -> StepError {
    StepError::retryable(
        code::NOT_READY,
        format!("{arn} is {status}; readiness is checked again on the next delivery"),
    )
}

fn record_token(token: &str, attempt: u32) {
    let span = tracing::Span::current();
    span.record("client_token", token);
    span.record("attempt", attempt);
}
