//! The idempotency ledger: one DynamoDB item per onboarding step, claimed with one
//! conditional write, completed under a lease (fencing), never expiring once done.
//!
//! The engine claims a step with [`Ledger::claim_with`] (which also records the generation's
//! first request and merges its desired state); a duplicate of a finished step costs exactly
//! one request and no read (`ReturnValuesOnConditionCheckFailure=ALL_OLD`). The holder of
//! the lease creates the resource with [`Lease::token`] (deterministic, see
//! [`client_token`]) and records the outcome, fenced on the lease: [`Ledger::mark_created`],
//! [`Ledger::mark_ready`] (recorded, not yet announced), [`Ledger::release`] (retryable) or
//! [`Ledger::fail_permanent`]. A `CREATED` step ends with [`Ledger::promote_ready`] or
//! [`Ledger::fail_created`]. An outcome is announced after it is recorded, then marked
//! ([`Ledger::mark_ready_announced`], [`Ledger::settle`]). A later request's fields are
//! merged with [`Ledger::record_desired`] and applied under an update lease
//! ([`Ledger::claim_update`], [`Ledger::end_update`], whose event waits in the step's outbox
//! until [`Ledger::mark_sent`]).

mod batch;
pub mod counter;
pub mod error;
pub mod hash;
pub mod key;
pub mod record;
pub mod schema;
pub mod token;
mod writes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::{epoch_ms, from_epoch_ms};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use uuid::Uuid;

pub use batch::Statuses;
pub use counter::RequestCounter;
pub use error::LedgerError;
pub use hash::{canonical_json, request_hash};
pub use key::StepKey;
pub use record::{ErrorReason, Failure, Origin, Record, Status, UnknownStatus};
pub use token::{call_token, client_token, new_salt, update_token};

use crate::desired::Desired;
use crate::revision::Revision;
use writes::Expressions;

/// A step's fields as requests specify them (see [`crate::step::Plan::desired`]).
pub use crate::desired::Fields;

/// A state or request as the ledger stores it: its fields as one JSON object.
fn fields_json(fields: &Fields) -> String {
    serde_json::Value::Object(fields.clone()).to_string()
}

/// TTL of a claim that is never completed (from its last claim).
pub const ABANDONED_CLAIM_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// TTL of a failed step (from its failure): after it, a new request starts afresh.
pub const FAILED_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long ago an `IN_PROGRESS` step's lease must have expired, by the operator's clock,
/// before `onboarding retry` takes it over (room for clocks that disagree).
pub const RETRY_LEASE_MARGIN: Duration = Duration::from_secs(60);

/// What a claim asks for.
#[derive(Clone, Copy, Debug)]
pub struct ClaimRequest<'a> {
    /// [`request_hash`] of the step's canonical request.
    pub request_hash: &'a str,
    /// Id of the event being processed (kept in the item's recent events).
    pub event_id: &'a str,
    /// How long the claim is held.
    pub lease: Duration,
    /// The invocation's deadline: the lease never outlives it.
    pub deadline: Option<SystemTime>,
}

/// The outcome of a claim.
#[derive(Clone, Debug)]
pub enum Claim {
    /// The caller holds the step: create the resource with `lease.token`.
    Acquired(Lease),
    /// Duplicate of a finished step (the ARN is in `resource_arn`).
    Ready(Record),
    /// Created but not ready: check readiness, never create again.
    Created(Record),
    /// Someone else holds a live lease (for this request or another): try again later.
    /// `record` is the item as stored.
    InProgress {
        lease_expires_at: SystemTime,
        record: Box<Record>,
    },
    /// Failed permanently (reason in `last_error`) until an operator retries it.
    Failed(Record),
    /// The account closed or left the organization (why in `retired`): acknowledge, never
    /// create; a request newer than the retirement reopens it ([`Ledger::reopen`]).
    Retired(Record),
}

/// The outcome of [`Ledger::retire`].
#[derive(Clone, Debug)]
pub enum Retirement {
    /// Retired by this write, not yet announced: announce it, then mark it announced.
    Retired(Record),
    /// Retired earlier (by this closure or another): announce it if it is not yet.
    Already(Record),
    /// The step knows a request newer than the closure (the account was reopened and
    /// onboarded again): left as it is.
    Newer(Record),
}

/// A held claim. Every completion or failure write is fenced on `owner`.
#[derive(Clone, Debug)]
pub struct Lease {
    pub key: StepKey,
    /// The ClientToken to create the resource with.
    pub token: String,
    /// The item's token salt (`None`: written before salts existed): what this generation's
    /// update tokens are derived from.
    pub salt: Option<String>,
    /// 1 for the first claim of a generation; more means an earlier attempt may have created
    /// the resource: look it up before creating.
    pub attempt: u32,
    pub generation: u32,
    pub owner: String,
    pub expires_at: SystemTime,
    /// The first claim of this generation: the grace window for "not reachable yet" starts here.
    pub first_attempt_at: SystemTime,
    /// An earlier attempt of this generation may have sent a create: look the resource up
    /// before creating (and adopt only what is provably ours or provably what was asked).
    pub may_have_sent: bool,
    /// What this generation's create is made with: the first claimant's request (its fields
    /// and revision), whichever request holds the lease now.
    pub requested: Option<(Fields, Revision)>,
}

impl Lease {
    fn from_record(record: Record, owner: String) -> Lease {
        Lease {
            may_have_sent: record.create_may_have_been_sent(),
            requested: record.requested.zip(record.requested_revision),
            expires_at: from_epoch_ms(record.lease_expires_at.unwrap_or(0)),
            first_attempt_at: from_epoch_ms(record.first_attempt_at.unwrap_or(0)),
            token: record.token,
            salt: record.token_salt,
            attempt: record.attempt,
            generation: record.generation,
            owner,
            key: record.key,
        }
    }
}

/// The state a resource was created or updated to: the fields requests specified (never a
/// secret value) and the revision of the request that asked for it.
#[derive(Clone, Copy, Debug)]
pub struct Applied<'a> {
    pub state: &'a Fields,
    pub revision: &'a Revision,
}

/// A held update of a `READY` step: bring the resource to `wanted`. Every write that ends it
/// is fenced on `owner`.
#[derive(Clone, Debug)]
pub struct UpdateLease {
    pub key: StepKey,
    pub generation: u32,
    pub owner: String,
    /// 1 for the first holder of this version; more means an earlier holder may have
    /// called the service: read the resource before calling.
    pub attempt: u32,
    /// The desired version this update brings the resource to: what its tokens are
    /// derived from.
    pub version: u64,
    /// The resource's state once updated: the desired state over the applied one.
    pub wanted: Fields,
    /// The applied state when the update was claimed (as the claim wrote it).
    pub state: Fields,
    /// The newest revision in the desired state.
    pub revision: Revision,
    pub expires_at: SystemTime,
    /// The item's token salt (`None`: written before salts existed): what the update's
    /// token is derived from.
    pub salt: Option<String>,
    /// When the pending update was first claimed (by any holder, of any revision): its
    /// grace window runs from here.
    pub first_attempt_at: SystemTime,
}

/// What an update claim ([`Ledger::claim_update`]) brings the resource to.
#[derive(Clone, Copy, Debug)]
pub enum UpdateKind<'a> {
    /// The desired state as read (recorded earlier, not yet applied).
    Pending,
    /// The desired state read with a request merged in: recorded by the claim itself.
    Merged(&'a Desired),
    /// The desired state as read, as a new version: drift found by the audit is repaired
    /// with new calls, never a replay of the update that last set these fields.
    Repair,
}

/// The outcome of [`Ledger::claim_update`].
#[derive(Clone, Debug)]
pub enum UpdateClaim {
    Acquired(UpdateLease),
    /// Another delivery holds the update: try again later.
    Busy {
        lease_expires_at: SystemTime,
    },
    /// The step changed since it was read (another update applied, a newer one pending):
    /// read it again.
    Moved(Box<Record>),
}

/// How an update's holder ends it ([`Ledger::end_update`]).
#[derive(Clone, Copy, Debug)]
pub enum UpdateEnd<'a> {
    /// The resource is in the wanted state: it becomes the applied state; its
    /// announcement (JSON of [`crate::announce::Event`]; none when nothing changed) goes
    /// into the outbox.
    Applied(Option<&'a str>),
    /// The service refused the change for good: the desired version is not retried, the
    /// applied state stays, the reason is recorded, its announcement goes into the outbox.
    Refused(&'a ErrorReason, &'a str),
    /// Not now: the lease is released at once; the wanted state waits for the next holder.
    Released {
        reason: &'a ErrorReason,
        retry_after: Option<SystemTime>,
    },
}

/// How a lease holder that gives up for now ends its attempt ([`Ledger::release`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Release {
    /// The earliest time the step should be tried again (honoured by whoever re-drives it).
    pub retry_after: Option<SystemTime>,
    /// This attempt sent a create call (its outcome unknown or failed).
    pub create_sent: bool,
}

/// What [`Ledger::mark_sent`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The entry was removed; the step stays in the attention index (something else is
    /// outstanding, or may be).
    Removed,
    /// The entry was the last thing outstanding: removed, and the step left the index.
    Settled,
    /// It was no longer the oldest entry: another sender removed it first.
    NotFirst,
}

/// How many of the events that acquired a step its item keeps (the newest).
pub const RECENT_EVENTS_KEPT: usize = 20;

/// The ledger table.
#[derive(Clone, Debug)]
pub struct Ledger {
    client: Client,
    table: Arc<str>,
}

type Item = HashMap<String, AttributeValue>;

enum Written {
    Applied(Option<Item>),
    ConditionFailed(Option<Item>),
}

/// The step's place in the daily drift audit: a minute of the day derived from its key (so
/// audits spread evenly over the day), as (hour, minute of the day).
pub fn audit_slot(key: &StepKey) -> (u32, u32) {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}/{}", key.scope, key.step).as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let minute = n % 1440;
    (minute / 60, minute)
}

fn ttl_secs(now: SystemTime, ttl: Duration) -> u64 {
    epoch_ms(now) / 1000 + ttl.as_secs()
}

impl Ledger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Ledger {
            client,
            table: Arc::from(table.into()),
        }
    }

    /// The table this ledger writes to.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The same ledger (client settings, interceptors, table) signing with `credentials`.
    pub fn signing_as(&self, credentials: SharedCredentialsProvider) -> Ledger {
        let config = self
            .client
            .config()
            .to_builder()
            .credentials_provider(credentials)
            .build();
        Ledger {
            client: Client::from_conf(config),
            table: self.table.clone(),
        }
    }

    fn key_attributes(key: &StepKey) -> Item {
        HashMap::from([
            (schema::PK.to_owned(), AttributeValue::S(key.scope.clone())),
            (schema::SK.to_owned(), AttributeValue::S(key.step.clone())),
        ])
    }

    /// One conditional UpdateItem; returns the new item (when asked) or the old one on a
    /// failed condition.
    async fn update(
        &self,
        key: &StepKey,
        e: &Expressions,
        return_new: bool,
    ) -> Result<Written, LedgerError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Self::key_attributes(key)))
            .set_update_expression(e.update.clone())
            .set_condition_expression(e.condition.clone())
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .return_values(if return_new {
                ReturnValue::AllNew
            } else {
                ReturnValue::None
            })
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Written::Applied(out.attributes)),
            Err(err) => {
                if let Some(UpdateItemError::ConditionalCheckFailedException(failed)) =
                    err.as_service_error()
                {
                    return Ok(Written::ConditionFailed(failed.item.clone()));
                }
                Err(error::classify("UpdateItem", err))
            }
        }
    }

    /// Claims `key` with exactly one UpdateItem. See [`Claim`] for the outcomes.
    pub async fn claim(&self, key: &StepKey, req: &ClaimRequest<'_>) -> Result<Claim, LedgerError> {
        self.claim_with(key, req, None).await
    }

    /// [`Ledger::claim`], recording in the same write what the request asks (`requested`:
    /// its fields and revision) when it is the generation's first to acquire the step: what
    /// the generation's create is made with by every holder ([`Lease::requested`]), and what
    /// re-drives the step without its message.
    pub async fn claim_with(
        &self,
        key: &StepKey,
        req: &ClaimRequest<'_>,
        requested: Option<Applied<'_>>,
    ) -> Result<Claim, LedgerError> {
        let now = SystemTime::now();
        let now_ms = epoch_ms(now);
        let mut lease_end = now.checked_add(req.lease).unwrap_or(now);
        if let Some(deadline) = req.deadline {
            lease_end = lease_end.min(deadline);
        }
        let owner = Uuid::new_v4().to_string();
        // Kept only if this write creates the item; an existing item keeps its salt and its
        // token (one written before salts keeps its unsalted token: never re-derived).
        let salt = new_salt();
        let first_token = client_token(key, 0, Some(&salt));
        let requested_json = requested.map(|r| fields_json(r.state));
        // A new item's desired state is this request's, written by the claim itself.
        let desired_json = requested
            .map(|r| Desired::of(r.state, r.revision))
            .filter(|d| !d.is_empty())
            .map(|d| d.to_json());
        let e = writes::claim(&writes::ClaimInput {
            requested: requested_json
                .as_deref()
                .zip(requested.map(|r| r.revision.as_str())),
            desired: desired_json
                .as_deref()
                .zip(requested.map(|r| r.revision.as_str())),
            first_token: &first_token,
            salt: &salt,
            request_hash: req.request_hash,
            event_id: req.event_id,
            owner: &owner,
            now_ms,
            lease_expires_ms: epoch_ms(lease_end),
            ttl_secs: ttl_secs(now, ABANDONED_CLAIM_TTL),
        });
        match self.update(key, &e, true).await? {
            Written::Applied(Some(item)) => {
                let record = Record::from_item(&item)?;
                if record.recent_events.len() > RECENT_EVENTS_KEPT {
                    // Best effort: a failed trim is retried by the next claim.
                    let trim = writes::trim_events(record.recent_events.len(), RECENT_EVENTS_KEPT);
                    if let Err(e) = self.update(key, &trim, false).await {
                        tracing::warn!(key = %key, error = %e, "recent events not trimmed");
                    }
                }
                Ok(Claim::Acquired(Lease::from_record(record, owner)))
            }
            Written::Applied(None) => Err(LedgerError::Corrupt {
                key: key.to_string(),
                reason: "claim returned no attributes".into(),
            }),
            Written::ConditionFailed(Some(old)) => {
                classify_claim(Record::from_item(&old)?, &owner, now_ms)
            }
            Written::ConditionFailed(None) => Err(LedgerError::Corrupt {
                key: key.to_string(),
                reason: "claim condition failed without the stored item".into(),
            }),
        }
    }

    async fn complete(
        &self,
        lease: &Lease,
        to: Status,
        arn: &str,
        origin: Origin,
        applied: &Applied<'_>,
    ) -> Result<Record, LedgerError> {
        let state = fields_json(applied.state);
        let e = writes::complete(
            &lease.owner,
            to,
            arn,
            origin,
            &writes::AppliedInput {
                state: &state,
                revision: applied.revision.as_str(),
                audit_slot: audit_slot(&lease.key),
            },
            epoch_ms(SystemTime::now()),
        );
        match self.update(&lease.key, &e, true).await? {
            Written::Applied(Some(item)) => Record::from_item(&item),
            Written::Applied(None) => Err(LedgerError::Corrupt {
                key: lease.key.to_string(),
                reason: "completion returned no attributes".into(),
            }),
            Written::ConditionFailed(old) => {
                // The same write already applied (an SDK retry after a lost response)?
                match old.as_ref().map(Record::from_item).transpose()? {
                    Some(r)
                        if r.lease_owner.as_deref() == Some(lease.owner.as_str())
                            && r.resource_arn.as_deref() == Some(arn)
                            && (r.status == to
                                || (to == Status::Created && r.status == Status::Ready)) =>
                    {
                        Ok(r)
                    }
                    _ => Err(LedgerError::LostLease {
                        key: lease.key.to_string(),
                    }),
                }
            }
        }
    }

    /// `IN_PROGRESS` held by `lease` -> `CREATED` (the resource exists but is not ready yet).
    /// [`LedgerError::LostLease`] (nothing written) if another attempt took the step over.
    pub async fn mark_created(
        &self,
        lease: &Lease,
        arn: &str,
        origin: Origin,
        applied: &Applied<'_>,
    ) -> Result<(), LedgerError> {
        self.complete(lease, Status::Created, arn, origin, applied)
            .await
            .map(drop)
    }

    /// `IN_PROGRESS` held by `lease` -> `READY`, not yet announced and in the attention
    /// index: recorded before it is announced, so a holder that lost its lease announces
    /// nothing, and a holder that dies before announcing leaves it for the next delivery or
    /// the reconciler. [`Ledger::mark_ready_announced`] follows the announcement. Returns the
    /// item as written.
    pub async fn mark_ready(
        &self,
        lease: &Lease,
        arn: &str,
        origin: Origin,
        applied: &Applied<'_>,
    ) -> Result<Record, LedgerError> {
        self.complete(lease, Status::Ready, arn, origin, applied)
            .await
    }

    /// `CREATED` with `arn` in `generation` -> `READY`. No lease needed
    /// (the change is monotonic), but fenced on the generation and ARN read: a delivery that
    /// saw an older generation's resource never promotes the current one. `Ok(true)` if this
    /// write promoted it, `Ok(false)` if the step is already `READY` with that ARN in that
    /// generation (another delivery promoted it): only the promoter announces Ready, so a
    /// generation is announced Ready once (again only after a crash before its mark).
    pub async fn promote_ready(
        &self,
        key: &StepKey,
        generation: u32,
        arn: &str,
    ) -> Result<bool, LedgerError> {
        let e = writes::promote(
            generation,
            arn,
            audit_slot(key),
            epoch_ms(SystemTime::now()),
        );
        match self.update(key, &e, false).await? {
            Written::Applied(_) => Ok(true),
            Written::ConditionFailed(None) => Err(LedgerError::NotAllowed(format!(
                "{key} has no ledger entry; nothing to promote"
            ))),
            Written::ConditionFailed(Some(old)) => {
                let r = Record::from_item(&old)?;
                let same = r.resource_arn.as_deref() == Some(arn) && r.generation == generation;
                if same && r.status == Status::Ready {
                    Ok(false)
                } else {
                    Err(LedgerError::LostLease {
                        key: format!(
                            "{key} (now {} generation {} with resource {:?}; expected CREATED \
                             generation {generation} with {arn})",
                            r.status, r.generation, r.resource_arn
                        ),
                    })
                }
            }
        }
    }

    /// Ends the held attempt with a failure (fenced on the lease). `Permanent`: `FAILED` with
    /// `reason` and a TTL. `Retryable`: stays `IN_PROGRESS`, `reason` recorded, the lease
    /// expires now so the next delivery takes over at once with the same token.
    pub async fn fail(
        &self,
        lease: &Lease,
        failure: Failure,
        reason: &ErrorReason,
    ) -> Result<(), LedgerError> {
        match failure {
            Failure::Permanent => self.fail_permanent(lease, reason).await,
            Failure::Retryable => self.release(lease, reason, Release::default()).await,
        }
    }

    /// Gives up for now (see [`Failure::Retryable`]) and records `how`: the earliest retry
    /// and whether a create was sent. Whether an earlier attempt may have sent one is kept.
    pub async fn release(
        &self,
        lease: &Lease,
        reason: &ErrorReason,
        how: Release,
    ) -> Result<(), LedgerError> {
        let e = writes::fail_retryable(&writes::ReleaseInput {
            owner: &lease.owner,
            attempt: lease.attempt,
            reason,
            now_ms: epoch_ms(SystemTime::now()),
            retry_after_ms: how.retry_after.map(epoch_ms),
            create_sent: how.create_sent || lease.may_have_sent,
        });
        self.fenced(lease, &e, Failure::Retryable).await
    }

    /// `IN_PROGRESS` held by `lease` -> `FAILED`, not yet announced.
    pub async fn fail_permanent(
        &self,
        lease: &Lease,
        reason: &ErrorReason,
    ) -> Result<(), LedgerError> {
        let now = SystemTime::now();
        let e = writes::fail_permanent(
            &lease.owner,
            reason,
            epoch_ms(now),
            ttl_secs(now, FAILED_TTL),
        );
        self.fenced(lease, &e, Failure::Permanent).await
    }

    async fn fenced(
        &self,
        lease: &Lease,
        e: &Expressions,
        failure: Failure,
    ) -> Result<(), LedgerError> {
        match self.update(&lease.key, e, false).await? {
            Written::Applied(_) => Ok(()),
            Written::ConditionFailed(old) => {
                let repeat = failure == Failure::Permanent
                    && match old.as_ref().map(Record::from_item).transpose()? {
                        Some(r) => {
                            r.status == Status::Failed
                                && r.lease_owner.as_deref() == Some(lease.owner.as_str())
                        }
                        None => false,
                    };
                if repeat {
                    Ok(())
                } else {
                    Err(LedgerError::LostLease {
                        key: lease.key.to_string(),
                    })
                }
            }
        }
    }

    /// `CREATED` with `arn` in `generation` -> `FAILED`, not yet announced. Fenced like
    /// [`Ledger::promote_ready`]: `Ok(false)` if that generation already failed (another
    /// delivery recorded it; it announces), [`LedgerError::LostLease`] if the step moved on.
    pub async fn fail_created(
        &self,
        key: &StepKey,
        generation: u32,
        arn: &str,
        reason: &ErrorReason,
    ) -> Result<bool, LedgerError> {
        let now = SystemTime::now();
        let e = writes::fail_created(
            generation,
            arn,
            reason,
            epoch_ms(now),
            ttl_secs(now, FAILED_TTL),
        );
        match self.update(key, &e, false).await? {
            Written::Applied(_) => Ok(true),
            Written::ConditionFailed(None) => Err(LedgerError::NotAllowed(format!(
                "{key} has no ledger entry; nothing to fail"
            ))),
            Written::ConditionFailed(Some(old)) => {
                let r = Record::from_item(&old)?;
                if r.status == Status::Failed
                    && r.generation == generation
                    && r.resource_arn.as_deref() == Some(arn)
                {
                    Ok(false)
                } else {
                    Err(LedgerError::LostLease {
                        key: format!(
                            "{key} (now {} generation {}; expected CREATED generation \
                             {generation} with {arn})",
                            r.status, r.generation
                        ),
                    })
                }
            }
        }
    }

    /// A `READY` step (`seen`, as read) with nothing outstanding leaves the attention index;
    /// with `announced`, its Ready is marked announced in the same write. `false` (nothing
    /// written) if something is outstanding after all (a merge, an update claimed, the
    /// outcome not announced): the step stays in the index for whoever does it.
    pub async fn settle(&self, seen: &Record, announced: bool) -> Result<bool, LedgerError> {
        let e = writes::settle(
            seen.generation,
            seen.seen_version(),
            announced,
            epoch_ms(SystemTime::now()),
        );
        Ok(matches!(
            self.update(&seen.key, &e, false).await?,
            Written::Applied(_)
        ))
    }

    /// A `READY` step (`seen`, as read) whose resource holds its whole desired state while
    /// the applied revision is older than the desired state's newest: the applied revision
    /// becomes that newest (one write; none when there is nothing to advance). Returns the
    /// step as it now stands as far as this write knows (as read, if it moved on meanwhile).
    pub async fn advance_applied(&self, seen: Record) -> Result<Record, LedgerError> {
        let Some(newest) = seen.desired.newest().cloned() else {
            return Ok(seen);
        };
        let behind = seen.applied_revision.as_ref().is_none_or(|a| *a < newest);
        // Held only when the resource holds the desired state (not when an update of it was
        // refused: that desired state is not applied).
        let holds = !seen
            .desired
            .pending(seen.state.as_ref().unwrap_or(&Default::default()));
        if seen.status != Status::Ready || !behind || !holds {
            return Ok(seen);
        }
        let e = writes::advance_applied(
            seen.generation,
            seen.seen_version(),
            newest.as_str(),
            epoch_ms(SystemTime::now()),
        );
        Ok(match self.update(&seen.key, &e, false).await? {
            Written::Applied(_) => Record {
                applied_revision: Some(newest),
                ..seen
            },
            Written::ConditionFailed(_) => seen,
        })
    }

    /// Records that a `READY` step's (`seen`, as read) Ready was announced, leaving the
    /// attention index in the same write when nothing else is owed. Returns the step as it
    /// now stands (as far as this write knows).
    pub async fn mark_ready_announced(&self, seen: &Record) -> Result<Record, LedgerError> {
        let settled = self.settle(seen, true).await?;
        if !settled {
            self.mark_announced(&seen.key, seen.generation, Status::Ready)
                .await?;
        }
        Ok(Record {
            announced: true,
            attention: if settled {
                None
            } else {
                seen.attention.clone()
            },
            ..seen.clone()
        })
    }

    /// Records that a `RETIRED` step's "Account Offboarded" in `generation` was announced;
    /// the step leaves the attention index. `false` if it is no longer that retirement.
    pub async fn mark_retirement_announced(
        &self,
        key: &StepKey,
        generation: u32,
    ) -> Result<bool, LedgerError> {
        let e = writes::announce_retirement(generation);
        Ok(matches!(
            self.update(key, &e, false).await?,
            Written::Applied(_)
        ))
    }

    /// Records that a step's outcome (`status`: `READY` or `FAILED`) in `generation` was
    /// announced. Refused if the step is no longer that outcome: its new one (a retirement,
    /// a retry's generation) is its writer's to announce, so the delivery is retried and
    /// reads it again.
    pub async fn mark_announced(
        &self,
        key: &StepKey,
        generation: u32,
        status: Status,
    ) -> Result<(), LedgerError> {
        match self
            .update(key, &writes::announce(generation, status), false)
            .await?
        {
            Written::Applied(_) => Ok(()),
            Written::ConditionFailed(None) => Err(LedgerError::NotAllowed(format!(
                "{key} has no ledger entry; nothing to announce"
            ))),
            Written::ConditionFailed(Some(old)) => {
                let r = Record::from_item(&old)?;
                Err(LedgerError::NotAllowed(format!(
                    "{key} is {} in generation {}: its {status} of generation {generation} is \
                     no longer its outcome, nothing to mark",
                    r.status, r.generation
                )))
            }
        }
    }

    /// Merges a request's desired state (`request`) into the step's (`seen`, as read): one
    /// conditional write if it changes anything, none otherwise. A concurrent merge is read
    /// and merged again (the merge is commutative: the order never matters). Returns the
    /// step with the merged desired state, or `None` if the step moved on (another status or
    /// generation: its new holder reads the desired state itself).
    pub async fn record_desired(
        &self,
        seen: &Record,
        request: &Desired,
    ) -> Result<Option<Record>, LedgerError> {
        let mut current = seen.clone();
        for _ in 0..8 {
            let mut merged = current.desired.clone();
            if !merged.merge(request) && current.desired_stored {
                return Ok(Some(current));
            }
            let state = current.state.clone().unwrap_or_default();
            let json = merged.to_json();
            let newest = merged.newest().map(Revision::as_str).unwrap_or("");
            let e = writes::record_desired(&writes::DesiredInput {
                status: current.status,
                generation: current.generation,
                seen_version: current.seen_version(),
                desired: &json,
                newest,
                outstanding: current.status == Status::Ready && merged.pending(&state),
            });
            match self.update(&current.key, &e, true).await? {
                Written::Applied(Some(item)) => return Record::from_item(&item).map(Some),
                Written::Applied(None) | Written::ConditionFailed(None) => return Ok(None),
                Written::ConditionFailed(Some(old)) => {
                    let now = Record::from_item(&old)?;
                    if now.status != current.status || now.generation != current.generation {
                        return Ok(None);
                    }
                    current = now;
                }
            }
        }
        Err(LedgerError::Unavailable(format!(
            "{}: the desired state kept changing while this request was merged in",
            seen.key
        )))
    }

    /// The account of `key` closed or left the organization (`revision`: the event's; `why`:
    /// JSON of the event, its id and time, and a sentence): one conditional write. See
    /// [`Retirement`]. A step no request reached yet is written as a retired tombstone.
    pub async fn retire(
        &self,
        key: &StepKey,
        revision: &Revision,
        why: &serde_json::Value,
    ) -> Result<Retirement, LedgerError> {
        let mut why = why.clone();
        let now_ms = epoch_ms(SystemTime::now());
        if let Some(map) = why.as_object_mut() {
            map.insert("at".into(), serde_json::json!(now_ms));
        }
        let why = why.to_string();
        // As in a claim: kept only if this write creates the item (a retired tombstone).
        let salt = new_salt();
        let first_token = client_token(key, 0, Some(&salt));
        let e = writes::retire(&writes::RetireInput {
            revision: revision.as_str(),
            why: &why,
            first_token: &first_token,
            salt: &salt,
            now_ms,
        });
        match self.update(key, &e, true).await? {
            Written::Applied(Some(item)) => Ok(Retirement::Retired(Record::from_item(&item)?)),
            Written::Applied(None) => Err(LedgerError::Corrupt {
                key: key.to_string(),
                reason: "retirement returned no attributes".into(),
            }),
            Written::ConditionFailed(Some(old)) => {
                let r = Record::from_item(&old)?;
                Ok(if r.status == Status::Retired {
                    Retirement::Already(r)
                } else {
                    Retirement::Newer(r)
                })
            }
            Written::ConditionFailed(None) => Err(LedgerError::Corrupt {
                key: key.to_string(),
                reason: "retirement condition failed without the stored item".into(),
            }),
        }
    }

    /// A retired step (`retired`, as read) whose account was reopened and sent a request
    /// newer than the retirement (`request`): generation + 1, `IN_PROGRESS` and free to claim,
    /// with that request recorded as the generation's, looking up the old resource before
    /// creating when the retired generation had one. `false` (nothing written) if the step
    /// changed since it was read (another delivery reopened it).
    pub async fn reopen(
        &self,
        retired: &Record,
        request: Applied<'_>,
    ) -> Result<bool, LedgerError> {
        let Some(seen) = &retired.retired_revision else {
            return Err(LedgerError::Corrupt {
                key: retired.key.to_string(),
                reason: "RETIRED without retired_revision".into(),
            });
        };
        let next = retired.generation.checked_add(1).ok_or_else(|| {
            LedgerError::NotAllowed(format!("{} has exhausted its generations", retired.key))
        })?;
        let token = client_token(&retired.key, next, retired.token_salt.as_deref());
        let requested = fields_json(request.state);
        let e = writes::reopen(&writes::ReopenInput {
            generation: retired.generation,
            retired_revision: seen.as_str(),
            token: &token,
            create_sent: retired.resource_arn.is_some() || retired.attempt > 0,
            requested: (&requested, request.revision.as_str()),
            now_ms: epoch_ms(SystemTime::now()),
        });
        Ok(matches!(
            self.update(&retired.key, &e, false).await?,
            Written::Applied(_)
        ))
    }

    /// Takes the update of a `READY` step (`current`, as read) to its desired state, with
    /// one conditional write; with `repair`, a new version of the same desired state (drift
    /// found by the audit: the repair is a new call, not a replay of the last one). See
    /// [`UpdateClaim`].
    pub async fn claim_update(
        &self,
        current: &Record,
        kind: UpdateKind<'_>,
        lease: Duration,
        deadline: Option<SystemTime>,
    ) -> Result<UpdateClaim, LedgerError> {
        let repair = matches!(kind, UpdateKind::Repair);
        let merged = match kind {
            UpdateKind::Merged(desired) => Some(desired),
            _ => None,
        };
        let merged_json = merged.map(|d| {
            let newest = d.newest().map(Revision::as_str).unwrap_or("").to_owned();
            (d.to_json(), newest)
        });
        let now = SystemTime::now();
        let mut lease_end = now.checked_add(lease).unwrap_or(now);
        if let Some(deadline) = deadline {
            lease_end = lease_end.min(deadline);
        }
        let owner = Uuid::new_v4().to_string();
        let seen = current.seen_version();
        let version = seen.unwrap_or(0) + u64::from(repair || merged.is_some());
        // Holders of the same version count up: a later one reads before calling.
        let attempt = if current.update_version == Some(version) {
            current.update_attempt.saturating_add(1)
        } else {
            1
        };
        let state = current.state.clone().unwrap_or_default();
        let e = writes::claim_update(
            &writes::UpdateClaimInput {
                generation: current.generation,
                seen,
                bump: repair,
                merged: merged_json.as_ref().map(|(d, n)| (d.as_str(), n.as_str())),
                attempt,
                now_ms: epoch_ms(now),
                lease_expires_ms: epoch_ms(lease_end),
            },
            &owner,
        );
        match self.update(&current.key, &e, true).await? {
            Written::Applied(item) => {
                let written = item.as_ref().map(Record::from_item).transpose()?;
                Ok(UpdateClaim::Acquired(UpdateLease {
                    // As written (the same one request): an earlier holder's first attempt, kept;
                    // the applied state as it is now (an earlier holder may have recorded it).
                    first_attempt_at: written
                        .as_ref()
                        .and_then(|r| r.update_first_attempt_at)
                        .map_or(now, from_epoch_ms),
                    state: written
                        .and_then(|r| r.state)
                        .unwrap_or_else(|| state.clone()),
                    key: current.key.clone(),
                    generation: current.generation,
                    owner,
                    attempt,
                    version,
                    wanted: merged.unwrap_or(&current.desired).target(&state),
                    revision: merged
                        .unwrap_or(&current.desired)
                        .newest()
                        .or(current.applied_revision.as_ref())
                        .cloned()
                        .unwrap_or_else(|| Revision::parse("")),
                    expires_at: lease_end,
                    // A READY item's salt never changes (only a claim or a retirement writes
                    // one, and neither applies to a READY item that stays READY).
                    salt: current.token_salt.clone(),
                }))
            }
            Written::ConditionFailed(None) => Err(LedgerError::NotAllowed(format!(
                "{} has no ledger entry; nothing to update",
                current.key
            ))),
            Written::ConditionFailed(Some(old)) => {
                let old = Record::from_item(&old)?;
                match old.update_lease_expires_at {
                    Some(ms) if ms > epoch_ms(now) && old.status == Status::Ready => {
                        Ok(UpdateClaim::Busy {
                            lease_expires_at: from_epoch_ms(ms),
                        })
                    }
                    _ => Ok(UpdateClaim::Moved(Box::new(old))),
                }
            }
        }
    }

    /// Ends the update held by `lease` (fenced on its owner and generation), recording the
    /// announcement of an applied or refused update in the step's outbox in the same write:
    /// [`LedgerError::LostLease`] if another holder took it over or a new generation began,
    /// nothing written. Returns the step as written (`None` for a release).
    pub async fn end_update(
        &self,
        lease: &UpdateLease,
        end: UpdateEnd<'_>,
    ) -> Result<Option<Record>, LedgerError> {
        let wanted_json = fields_json(&lease.wanted);
        let (write, returned) = match end {
            UpdateEnd::Applied(event) => (
                writes::UpdateEnd::Applied {
                    state: &wanted_json,
                    revision: lease.revision.as_str(),
                    event,
                },
                true,
            ),
            UpdateEnd::Refused(reason, event) => (
                writes::UpdateEnd::Refused {
                    version: lease.version,
                    reason,
                    event,
                },
                true,
            ),
            UpdateEnd::Released {
                reason,
                retry_after,
            } => (
                writes::UpdateEnd::Released {
                    reason,
                    retry_after_ms: retry_after.map(epoch_ms),
                },
                false,
            ),
        };
        let e = writes::end_update(
            &lease.owner,
            lease.generation,
            &write,
            epoch_ms(SystemTime::now()),
        );
        match self.update(&lease.key, &e, returned).await? {
            Written::Applied(item) => item.as_ref().map(Record::from_item).transpose(),
            Written::ConditionFailed(_) => Err(LedgerError::LostLease {
                key: format!("{} (update to version {})", lease.key, lease.version),
            }),
        }
    }

    /// All steps of one scope (one Query, more only if the scope exceeds 1 MB).
    pub async fn get(&self, scope: &str) -> Result<Vec<Record>, LedgerError> {
        self.query(None, &writes::scope_query(scope)).await
    }

    /// One step (consistent read).
    pub async fn get_step(&self, key: &StepKey) -> Result<Option<Record>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .consistent_read(true)
            .set_key(Some(Self::key_attributes(key)))
            .send()
            .await
            .map_err(|err| error::classify("GetItem", err))?;
        out.item.as_ref().map(Record::from_item).transpose()
    }

    /// Steps with `status`: the sparse `attention` index for `IN_PROGRESS`, `CREATED` and
    /// `FAILED` (eventually consistent, oldest change first); a Scan for `READY` and
    /// `RETIRED` (in no index).
    pub async fn list(&self, status: Status) -> Result<Vec<Record>, LedgerError> {
        if !matches!(status, Status::Ready | Status::Retired) {
            // The index can lag the table; report only what still matches.
            let records = self.attention(status.as_str()).await?;
            return Ok(records.into_iter().filter(|r| r.status == status).collect());
        }
        let e = writes::status_filter(status);
        let mut items = self
            .client
            .scan()
            .table_name(self.table.as_ref())
            .set_filter_expression(e.condition.clone())
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .into_paginator()
            .items()
            .send();
        let mut records = Vec::new();
        while let Some(item) = items.next().await {
            let item = item.map_err(|err| error::classify("Scan", err))?;
            records.push(Record::from_item(&item)?);
        }
        Ok(records)
    }

    /// Every step in one partition of the attention index (`IN_PROGRESS`, `CREATED`,
    /// `FAILED`, or `UPDATING` for READY steps with a pending update), oldest change first.
    /// Costs reads in proportion to what needs attention, never to the table.
    pub async fn attention(&self, partition: &str) -> Result<Vec<Record>, LedgerError> {
        let e = writes::attention_query(partition);
        self.query(Some(schema::ATTENTION_INDEX), &e).await
    }

    /// The `READY` steps whose audit minute of the day is in `from..=to` (within one hour).
    pub async fn audit_slots(
        &self,
        hour: u32,
        from_minute: u32,
        to_minute: u32,
    ) -> Result<Vec<Record>, LedgerError> {
        let e = writes::audit_query(hour, from_minute, to_minute);
        let records = self.query(Some(schema::AUDIT_INDEX), &e).await?;
        Ok(records
            .into_iter()
            .filter(|r| r.status == Status::Ready)
            .collect())
    }

    /// Every item a Query finds, page after page: on the table (a consistent read), or on
    /// `index` (global secondary indexes are read eventually consistent).
    async fn query(
        &self,
        index: Option<&str>,
        e: &Expressions,
    ) -> Result<Vec<Record>, LedgerError> {
        let mut items = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .set_index_name(index.map(str::to_owned))
            .set_consistent_read(index.is_none().then_some(true))
            .set_key_condition_expression(e.condition.clone())
            .set_expression_attribute_names(e.names_opt())
            .set_expression_attribute_values(e.values_opt())
            .into_paginator()
            .items()
            .send();
        let mut records = Vec::new();
        while let Some(item) = items.next().await {
            let item = item.map_err(|err| error::classify("Query", err))?;
            records.push(Record::from_item(&item)?);
        }
        Ok(records)
    }

    /// Records what the audit found on the `READY` step it read as `seen`: `drift` (JSON), or
    /// none (clears an earlier finding). `false` if the step moved on meanwhile (another
    /// generation, another applied revision, an update begun).
    pub async fn record_audit(
        &self,
        seen: &Record,
        finding: Option<(&str, Option<&str>)>,
    ) -> Result<Option<Record>, LedgerError> {
        let e = writes::record_audit(
            seen.generation,
            (
                seen.applied_revision.as_ref().map(|r| r.as_str()),
                seen.seen_version(),
            ),
            finding,
            epoch_ms(SystemTime::now()),
        );
        match self.update(&seen.key, &e, true).await? {
            Written::Applied(Some(item)) => Record::from_item(&item).map(Some),
            Written::Applied(None) | Written::ConditionFailed(_) => Ok(None),
        }
    }

    /// The oldest announcement in a `READY` step's outbox (`entry`; `seen`, the step as
    /// read) was sent: it is removed, and with it the step leaves the attention index when
    /// nothing else is outstanding (one write).
    pub async fn mark_sent(&self, seen: &Record, entry: &str) -> Result<Sent, LedgerError> {
        let now_ms = epoch_ms(SystemTime::now());
        if seen.outbox.len() == 1 && seen.owes_only_its_outbox(now_ms) {
            let settle = Some((seen.seen_version(), now_ms));
            let e = writes::mark_sent(seen.generation, entry, settle);
            if let Written::Applied(_) = self.update(&seen.key, &e, false).await? {
                return Ok(Sent::Settled);
            }
        }
        let e = writes::mark_sent(seen.generation, entry, None);
        Ok(match self.update(&seen.key, &e, false).await? {
            Written::Applied(_) => Sent::Removed,
            Written::ConditionFailed(_) => Sent::NotFirst,
        })
    }

    /// An operator's retry: a `FAILED` step, or an `IN_PROGRESS` step whose lease expired at
    /// least [`RETRY_LEASE_MARGIN`] ago by this machine's clock (its request went to a DLQ,
    /// say), starts generation + 1 with its new token: `IN_PROGRESS`, lease expired, attempt
    /// 0, request hash and TTL removed, so the next delivery of any request acquires it. When
    /// an earlier attempt may have created the resource, the new generation looks it up
    /// before creating. `READY` and `CREATED` steps are [`LedgerError::NotAllowed`], saying
    /// why (a `CREATED` step needs only its request delivered again: readiness is checked).
    pub async fn retry(&self, key: &StepKey) -> Result<Record, LedgerError> {
        self.restart(key, None).await
    }

    /// The drift audit's repair of a `READY` step whose resource is gone: a new generation
    /// (new token), as [`Ledger::retry`] does for a failed step. Only for the step as the
    /// audit saw it (`seen`: its generation and resource): two repairers that saw the same
    /// generation start one new generation between them, and a repairer that saw an older
    /// one starts none.
    pub async fn repair(&self, seen: &Record) -> Result<Record, LedgerError> {
        self.restart(&seen.key, Some(seen)).await
    }

    async fn restart(&self, key: &StepKey, seen: Option<&Record>) -> Result<Record, LedgerError> {
        let current = self.get_step(key).await?.ok_or_else(|| {
            LedgerError::NotAllowed(format!(
                "{key} has no ledger entry; send the onboarding request again instead"
            ))
        })?;
        if let Some(seen) = seen {
            if (current.generation, &current.resource_arn) != (seen.generation, &seen.resource_arn)
            {
                return Err(LedgerError::NotAllowed(format!(
                    "{key} moved on since the audit (generation {} then, {} now): not repaired",
                    seen.generation, current.generation
                )));
            }
        }
        let repair = seen.is_some();
        let now = SystemTime::now();
        match current.status {
            Status::Failed => {}
            Status::Ready if repair => {}
            Status::Retired => {
                return Err(LedgerError::NotAllowed(format!(
                    "{key} is RETIRED (its account closed or left the organization); an \
                     onboarding request newer than the retirement starts it again"
                )))
            }
            Status::InProgress => {
                let expired_by = current
                    .lease_expires_at
                    .map(from_epoch_ms)
                    .and_then(|end| now.duration_since(end).ok());
                if expired_by.is_none_or(|d| d < RETRY_LEASE_MARGIN) {
                    return Err(LedgerError::NotAllowed(format!(
                        "{key} is IN_PROGRESS (attempt {}) and its lease has not expired (or \
                         expired less than {} s ago); a delivery is working on it",
                        current.attempt,
                        RETRY_LEASE_MARGIN.as_secs()
                    )));
                }
            }
            Status::Ready => {
                return Err(LedgerError::NotAllowed(format!(
                    "{key} is READY ({}); there is nothing to retry",
                    current.resource_arn.as_deref().unwrap_or("no ARN")
                )))
            }
            Status::Created => {
                return Err(LedgerError::NotAllowed(format!(
                    "{key} is CREATED ({}) and waiting for readiness; deliver the request again \
                     to check it",
                    current.resource_arn.as_deref().unwrap_or("no ARN")
                )))
            }
        }
        let next = current.generation.checked_add(1).ok_or_else(|| {
            LedgerError::NotAllowed(format!("{key} has exhausted its generations"))
        })?;
        // From the item's salt; without one (an item written before salts), as before.
        let token = client_token(key, next, current.token_salt.as_deref());
        let create_sent = current.status == Status::InProgress
            && current.attempt > 0
            && (current.create_may_have_been_sent() || current.settled_attempt < current.attempt);
        let e = writes::retry(&writes::RetryInput {
            status: current.status,
            generation: current.generation,
            attempt: current.attempt,
            token: &token,
            create_sent,
            now_ms: epoch_ms(now),
        });
        match self.update(key, &e, true).await? {
            Written::Applied(Some(item)) => Record::from_item(&item),
            Written::Applied(None) => Err(LedgerError::Corrupt {
                key: key.to_string(),
                reason: "retry returned no attributes".into(),
            }),
            Written::ConditionFailed(old) => {
                let now = old.as_ref().map(Record::from_item).transpose()?;
                // The same retry already applied (an SDK retry after a lost response)?
                if let Some(r) = &now {
                    if r.status == Status::InProgress
                        && r.generation == next
                        && r.token == token
                        && r.attempt == 0
                    {
                        return Ok(r.clone());
                    }
                }
                Err(LedgerError::NotAllowed(format!(
                    "{key} changed while retrying (now {}); look at it again",
                    now.map(|r| format!("{} generation {}", r.status, r.generation))
                        .unwrap_or_else(|| "gone".into())
                )))
            }
        }
    }
}

/// Classifies the stored item of a claim whose condition failed. No extra read.
///
/// `owner` is the owner id this claim wrote: finding it stored means an earlier attempt of
/// this very request (an SDK retry after a lost response) acquired the step.
fn classify_claim(old: Record, owner: &str, now_ms: u64) -> Result<Claim, LedgerError> {
    if old.status == Status::InProgress && old.lease_owner.as_deref() == Some(owner) {
        return Ok(Claim::Acquired(Lease::from_record(old, owner.to_owned())));
    }
    match old.status {
        Status::Ready => Ok(Claim::Ready(old)),
        Status::Created => Ok(Claim::Created(old)),
        Status::Failed => Ok(Claim::Failed(old)),
        Status::Retired => Ok(Claim::Retired(old)),
        Status::InProgress => match old.lease_expires_at {
            Some(ms) if ms > now_ms => Ok(Claim::InProgress {
                lease_expires_at: from_epoch_ms(ms),
                record: Box::new(old),
            }),
            _ => Err(LedgerError::Corrupt {
                key: old.key.to_string(),
                reason: "IN_PROGRESS without a live lease, yet the claim was refused".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Status, hash: Option<&str>, lease: Option<u64>) -> Record {
        Record {
            key: StepKey::account("123456789012", "identity-center-instance"),
            status,
            token: "t".into(),
            token_salt: None,
            request_hash: hash.map(str::to_owned),
            generation: 0,
            attempt: 1,
            resource_arn: None,
            last_error: None,
            announced: false,
            lease_owner: Some("o".into()),
            lease_expires_at: lease,
            first_attempt_at: None,
            updated_at: None,
            expires_at: None,
            recent_events: Vec::new(),
            account_id: None,
            origin: None,
            create_sent: false,
            settled_attempt: 0,
            retry_after: None,
            state: None,
            applied_revision: None,
            desired: Default::default(),
            desired_version: 0,
            desired_stored: false,
            update_version: None,
            refused_version: None,
            attention: None,
            outbox: Vec::new(),
            update_owner: None,
            update_lease_expires_at: None,
            update_attempt: 0,
            update_first_attempt_at: None,
            requested: None,
            requested_revision: None,
            drift: None,
            audited_at: None,
            retired: None,
            retired_revision: None,
        }
    }

    #[test]
    fn refused_claims_are_classified_from_the_stored_item() {
        let c = |r| classify_claim(r, "me", 1_000);
        assert!(matches!(
            c(record(Status::Ready, Some("h"), None)),
            Ok(Claim::Ready(_))
        ));
        assert!(matches!(
            c(record(Status::Ready, Some("x"), None)),
            Ok(Claim::Ready(_))
        ));
        assert!(matches!(
            c(record(Status::Created, Some("h"), None)),
            Ok(Claim::Created(_))
        ));
        assert!(matches!(
            c(record(Status::Failed, Some("h"), None)),
            Ok(Claim::Failed(_))
        ));
        // A different request meets a live lease: retry later, never refused.
        assert!(matches!(
            c(record(Status::InProgress, Some("x"), Some(2_000))),
            Ok(Claim::InProgress { .. })
        ));
        assert!(matches!(
            c(record(Status::InProgress, Some("h"), Some(2_000))),
            Ok(Claim::InProgress { lease_expires_at, .. }) if lease_expires_at == from_epoch_ms(2_000)
        ));
        assert!(matches!(
            c(record(Status::InProgress, None, Some(2_000))),
            Ok(Claim::InProgress { .. })
        ));
        assert!(matches!(
            c(record(Status::InProgress, Some("h"), Some(500))),
            Err(LedgerError::Corrupt { .. })
        ));
        // Our own earlier attempt (response lost, SDK retried) acquired it.
        let mut mine = record(Status::InProgress, Some("h"), Some(2_000));
        mine.lease_owner = Some("me".into());
        mine.attempt = 3;
        assert!(matches!(
            c(mine),
            Ok(Claim::Acquired(lease)) if lease.attempt == 3 && lease.owner == "me"
        ));
    }

    #[test]
    fn retryable_errors() {
        assert!(LedgerError::Unavailable("x".into()).is_retryable());
        assert!(!LedgerError::Rejected("x".into()).is_retryable());
        assert!(!LedgerError::LostLease { key: "k".into() }.is_retryable());
        assert!(!LedgerError::NotAllowed("x".into()).is_retryable());
    }
}
