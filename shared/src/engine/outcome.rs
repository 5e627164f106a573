//! How a delivery ends: the tally and log label of an [`Outcome`], and the end of a held
//! step that cannot finish (a retryable error releases the lease with the earliest retry; a
//! permanent one is recorded FAILED, fenced, then announced).

use std::time::SystemTime;

use tracing::warn;

use super::timing::spread_throttling;
use super::{Engine, How, Outcome};
use crate::announce::{Event, Subject};
use crate::clock::now_ms;
use crate::error::StepError;
use crate::ledger::{ErrorReason, Lease, Record, Release, Sent, Status, StepKey};
use crate::telemetry::Tally;

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

    pub(super) fn label(&self) -> &'static str {
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

impl Engine {
    /// A failure while holding the lease. Retryable (or not reachable yet, inside the grace
    /// window): release the lease with the earliest retry. Permanent: record FAILED (fenced:
    /// a holder that lost its lease records and announces nothing), then announce.
    pub(super) async fn give_up(
        &self,
        lease: &Lease,
        subject: &Subject<'_>,
        e: StepError,
        sent: bool,
    ) -> Result<Outcome, StepError> {
        let e = spread_throttling(
            self.settings
                .grace(lease.first_attempt_at, lease.attempt, e),
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
    pub(super) async fn announce_failure(
        &self,
        key: &StepKey,
        generation: u32,
        subject: &Subject<'_>,
        reason: &ErrorReason,
    ) -> Result<(), StepError> {
        self.announcer.failed(subject, reason).await?;
        self.ledger
            .mark_announced(key, generation, Status::Failed)
            .await?;
        Ok(())
    }

    /// Releases the lease so the next delivery takes over with the same token, recording
    /// when to retry and whether a create was sent. If this write fails, the lease expires.
    pub(super) async fn release(&self, lease: &Lease, e: &StepError, sent: bool) {
        let how = Release {
            retry_after: e.retry_after().map(|d| SystemTime::now() + d),
            create_sent: sent,
        };
        if let Err(ledger_err) = self.ledger.release(lease, e.reason(), how).await {
            warn!(error = %ledger_err, "could not release the lease; it will expire");
        }
    }
}

impl Engine {
    /// Sends what a READY step's outbox holds (`record`, as just read or written), oldest
    /// first, removing each once sent; the last removal also takes the step out of the
    /// attention index when nothing else is owed. A failed send leaves the rest for the next
    /// delivery or the reconciler (sent at least once, never dropped). Returns the step as
    /// it now stands, as far as these writes know.
    pub(super) async fn send_outbox(&self, mut record: Record) -> Result<Record, StepError> {
        while let Some(entry) = record.outbox.first().cloned() {
            match serde_json::from_str::<Event>(&entry) {
                Ok(event) => self.announcer.announce(&event).await?,
                // Not an event this version can read: removed, so it blocks nothing, and
                // said so (the step's outcome is in its record).
                Err(e) => warn!(key = %record.key, error = %e, "an unreadable outbox entry"),
            }
            match self.ledger.mark_sent(&record, &entry).await? {
                // Another sender removed it first: theirs is the rest.
                Sent::NotFirst => return Ok(record),
                Sent::Removed => {
                    record.outbox.remove(0);
                }
                Sent::Settled => {
                    record.outbox.remove(0);
                    record.attention = None;
                }
            }
        }
        if record.attention.is_some()
            && record.owes_only_its_outbox(now_ms())
            && self.ledger.settle(&record, false).await?
        {
            record.attention = None;
        }
        Ok(record)
    }
}
