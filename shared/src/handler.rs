//! The Lambda handler every function uses: one payload in (a direct EventBridge event or an
//! SQS batch), the step run for each request, one reply out.
//!
//! SQS: records run concurrently; the reply lists exactly the records to retry
//! (`ReportBatchItemFailures`): retryable failures and records that cannot be decoded (they
//! have no ledger item to hold their failure, so they go back to the queue and on to its
//! DLQ). FIFO: records of one message group run in order, and once one fails the rest of its
//! group is failed too. A failed record that asks to come back at a given time (backoff while
//! an account is not reachable yet, a lease held elsewhere) gets that visibility timeout
//! through [`Redelivery`] before the reply, within the time left before the invocation's
//! deadline (less a margin): the reply goes out in time however slow SQS is, and
//! a record whose delay could not be set is still in the reply's failures (it comes back
//! after the queue's visibility timeout).
//!
//! The announcements of one invocation share one `PutEvents` call ([`announce::gathered`]).
//!
//! Direct invocations return an error whenever the delivery did not finish and must come
//! again: retryable failures, and ledger outcomes this delivery cannot settle (its lease was
//! lost to another delivery, the item changed under it, the item is unreadable), so that
//! Lambda's retries and the function's on-failure destination see them. Permanent failures
//! of the step itself are recorded, announced and answered `failed`, not errors.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::join_all;
use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::announce::{self, gathered, Subject};
use crate::engine::{Engine, Outcome};
use crate::error::{code, StepError};
use crate::events::{self, Accept, Decoded, Invocation, SqsRecord};
use crate::redelivery::{Delay, Redelivery};
use crate::step::Step;
use crate::telemetry::Tally;

/// Step name used when announcing an event that could not be decoded at all.
const EVENT_STEP: &str = "event";

/// The longest a handler waits for SQS to take the delays of its failed records.
const DELAY_TIMEOUT: Duration = Duration::from_secs(2);
/// Time kept free between the end of that wait and the invocation's deadline, for the reply
/// to reach the Lambda runtime.
const DELAY_REPLY_MARGIN: Duration = Duration::from_millis(250);

pub struct Handler<S> {
    engine: Engine,
    step: S,
    accept: Accept,
    redelivery: Option<Arc<dyn Redelivery>>,
}

/// What one record or event came to.
enum Verdict {
    Done(Outcome),
    Ignored(String),
    /// Cannot be decoded: permanent, but with no ledger item to record it in.
    Invalid(String),
    Retry(StepError),
}

impl Verdict {
    fn tally(&self) -> Tally {
        match self {
            Verdict::Done(outcome) => outcome.tally(),
            Verdict::Ignored(_) => Tally {
                skipped: 1,
                ..Tally::default()
            },
            Verdict::Invalid(_) => Tally {
                rejected: 1,
                ..Tally::default()
            },
            Verdict::Retry(_) => Tally {
                retries: 1,
                ..Tally::default()
            },
        }
    }
}

impl<S: Step> Handler<S> {
    pub fn new(engine: Engine, step: S, accept: Accept) -> Self {
        Self {
            engine,
            step,
            accept,
            redelivery: None,
        }
    }

    /// Failed SQS records that ask for a later (or earlier) delivery get it through `r`.
    pub fn with_redelivery(mut self, r: Arc<dyn Redelivery>) -> Self {
        self.redelivery = Some(r);
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Handles one invocation payload. `Err` only for a direct event that must be retried
    /// or an SQS payload too malformed to report per record (the whole batch is retried).
    pub async fn handle(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
    ) -> Result<(Value, Tally), StepError> {
        self.step.begin_invocation();
        let is_batch = payload.get("Records").is_some();
        match events::invocation(payload) {
            Ok(Invocation::Sqs(records)) => Ok(self.batch(records, deadline).await),
            Ok(Invocation::EventBridge(event)) => {
                gathered(1, async {
                    let _runner = announce::runner();
                    let verdict = match events::decode(&event, &self.accept) {
                        Ok(decoded) => self.run(decoded, deadline).await,
                        Err(e) => Verdict::Invalid(e.reason),
                    };
                    let tally = verdict.tally();
                    let event_id = event.get("id").and_then(Value::as_str).unwrap_or("");
                    self.direct_reply(verdict, event_id)
                        .await
                        .map(|reply| (reply, tally))
                })
                .await
            }
            Err(e) if is_batch => Err(StepError::retryable(
                code::MALFORMED_BATCH,
                format!("the SQS batch cannot be read record by record ({}); the whole batch is retried", e.reason),
            )),
            Err(e) => {
                let verdict = Verdict::Invalid(e.reason);
                let tally = verdict.tally();
                self.direct_reply(verdict, "").await.map(|reply| (reply, tally))
            }
        }
    }

    async fn run(&self, decoded: Decoded, deadline: Option<SystemTime>) -> Verdict {
        match decoded {
            Decoded::Ignored { reason } => Verdict::Ignored(reason),
            Decoded::Request(request) => {
                match self.engine.run(&self.step, &request, deadline).await {
                    Ok(outcome) => Verdict::Done(outcome),
                    Err(e) => Verdict::Retry(e),
                }
            }
            // Boxed, as every run is: the step's futures are deep.
            Decoded::Offboard(request) => {
                match Box::pin(self.engine.retire(&self.step, &request)).await {
                    Ok(outcome) => {
                        info!(account_id = %request.account_id, event_id = %request.event_id,
                        outcome = "offboarded", detail = ?outcome, "account offboarded");
                        Verdict::Done(outcome)
                    }
                    Err(e) => {
                        warn!(account_id = %request.account_id, outcome = "retry", error = %e,
                        "offboarding will be retried");
                        Verdict::Retry(e)
                    }
                }
            }
        }
    }

    async fn direct_reply(&self, verdict: Verdict, event_id: &str) -> Result<Value, StepError> {
        match verdict {
            Verdict::Done(outcome) => Ok(outcome_json(&outcome)),
            Verdict::Ignored(reason) => {
                info!(event_id, outcome = "ignored", reason = %reason, "event acknowledged without action");
                Ok(json!({ "status": "ignored", "reason": reason }))
            }
            Verdict::Invalid(reason) => {
                // Nothing will redeliver it usefully: make the rejection visible on the bus.
                error!(event_id, outcome = "invalid", reason = %reason, "event rejected");
                let subject = Subject {
                    step: EVENT_STEP,
                    account_id: None,
                    request_event_id: event_id,
                };
                let why = crate::ledger::ErrorReason {
                    retryable: false,
                    code: "InvalidEvent".into(),
                    message: reason.clone(),
                };
                self.engine.announcer().failed(&subject, &why).await?;
                Ok(json!({ "status": "rejected", "reason": reason }))
            }
            Verdict::Retry(e) => Err(e),
        }
    }

    async fn batch(&self, records: Vec<SqsRecord>, deadline: Option<SystemTime>) -> (Value, Tally) {
        let fifo = records.iter().any(|r| r.fifo);
        let results: Vec<(String, Verdict)> = if fifo {
            // Message groups run concurrently; the records of one group in order.
            let mut groups: Vec<(Option<String>, Vec<&SqsRecord>)> = Vec::new();
            for record in &records {
                match groups.iter_mut().find(|(g, _)| *g == record.group_id) {
                    Some((_, members)) => members.push(record),
                    None => groups.push((record.group_id.clone(), vec![record])),
                }
            }
            let runners = groups.len();
            gathered(
                runners,
                join_all(groups.into_iter().map(|(_, members)| async move {
                    let _runner = announce::runner();
                    self.group(members, deadline).await
                })),
            )
            .await
            .into_iter()
            .flatten()
            .collect()
        } else {
            gathered(
                records.len(),
                join_all(records.iter().map(|r| async move {
                    let _runner = announce::runner();
                    (r.message_id.clone(), self.record(r, deadline).await)
                })),
            )
            .await
        };

        let mut tally = Tally::default();
        let mut failures = Vec::new();
        let mut delays = Vec::new();
        for (message_id, verdict) in &results {
            tally.add(verdict.tally());
            match verdict {
                Verdict::Invalid(reason) => {
                    error!(message_id = %message_id, outcome = "invalid", reason = %reason,
                        "record rejected; it returns to the queue and reaches the DLQ after maxReceiveCount");
                    failures.push(message_id.clone());
                }
                Verdict::Retry(e) => {
                    warn!(message_id = %message_id, outcome = "retry", error = %e,
                        retry_in_s = e.retry_after().map(|d| d.as_secs_f64()), "record will be retried");
                    failures.push(message_id.clone());
                    let record = records.iter().find(|r| &r.message_id == message_id);
                    if let (Some(after), Some(handle), Some(queue)) = (
                        e.retry_after(),
                        record.and_then(|r| r.receipt_handle.as_ref()),
                        record.and_then(|r| r.queue_arn.as_ref()),
                    ) {
                        delays.push(Delay {
                            queue_arn: queue.clone(),
                            receipt_handle: handle.clone(),
                            message_id: message_id.clone(),
                            after,
                        });
                    }
                }
                Verdict::Ignored(reason) => {
                    info!(message_id = %message_id, outcome = "ignored", reason = %reason, "record acknowledged without action");
                }
                Verdict::Done(_) => {}
            }
        }
        if let (Some(redelivery), false) = (&self.redelivery, delays.is_empty()) {
            let budget = delay_budget(deadline, SystemTime::now());
            if budget.is_zero() {
                warn!("no time left before the deadline to delay the failed records; they return after the queue's visibility timeout");
            } else if tokio::time::timeout(budget, redelivery.delay(delays))
                .await
                .is_err()
            {
                warn!(budget_ms = budget.as_millis() as u64,
                    "delaying the failed records took too long; they return after the queue's visibility timeout");
            }
        }
        let reply = json!({
            "batchItemFailures": failures.iter().map(|id| json!({ "itemIdentifier": id })).collect::<Vec<_>>()
        });
        (reply, tally)
    }

    async fn group(
        &self,
        members: Vec<&SqsRecord>,
        deadline: Option<SystemTime>,
    ) -> Vec<(String, Verdict)> {
        let mut out = Vec::with_capacity(members.len());
        let mut failed = false;
        for record in members {
            let verdict = if failed {
                Verdict::Retry(StepError::retryable(
                    code::FIFO_GROUP_BLOCKED,
                    "an earlier record of this message group failed; kept in order for the retry",
                ))
            } else {
                self.record(record, deadline).await
            };
            failed |= matches!(verdict, Verdict::Retry(_) | Verdict::Invalid(_));
            out.push((record.message_id.clone(), verdict));
        }
        out
    }

    async fn record(&self, record: &SqsRecord, deadline: Option<SystemTime>) -> Verdict {
        match events::decode_body(&record.body, &self.accept) {
            Ok(decoded) => self.run(decoded, deadline).await,
            Err(e) => Verdict::Invalid(e.reason),
        }
    }
}

/// How long the failed records' delays may take at `now`: [`DELAY_TIMEOUT`], and never past
/// [`DELAY_REPLY_MARGIN`] before the deadline (zero when that is already past).
fn delay_budget(deadline: Option<SystemTime>, now: SystemTime) -> Duration {
    match deadline {
        None => DELAY_TIMEOUT,
        Some(deadline) => deadline
            .duration_since(now)
            .unwrap_or_default()
            .saturating_sub(DELAY_REPLY_MARGIN)
            .min(DELAY_TIMEOUT),
    }
}

fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Skipped(reason) => json!({ "status": "skipped", "reason": reason }),
        Outcome::Ready { arn, how } => {
            json!({ "status": "ready", "resourceArn": arn, "how": how.as_str() })
        }
        Outcome::Duplicate { arn } => json!({ "status": "duplicate", "resourceArn": arn }),
        Outcome::Updated { arn, changed } => {
            json!({ "status": "updated", "resourceArn": arn, "changed": changed })
        }
        Outcome::Failed(reason) => json!({ "status": "failed", "reason": reason }),
        Outcome::Rejected(reason) => json!({ "status": "rejected", "reason": reason }),
        Outcome::Retired { reason } => json!({ "status": "retired", "reason": reason }),
        Outcome::Offboarded {
            retired,
            kept,
            reason,
        } => json!({ "status": "offboarded", "retired": retired, "kept": kept, "reason": reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delays_end_before_the_deadline() {
        let now = SystemTime::now();
        let secs = Duration::from_secs;
        assert_eq!(delay_budget(None, now), DELAY_TIMEOUT);
        assert_eq!(delay_budget(Some(now + secs(60)), now), DELAY_TIMEOUT);
        assert_eq!(
            delay_budget(Some(now + Duration::from_millis(1000)), now),
            Duration::from_millis(750)
        );
        assert_eq!(
            delay_budget(Some(now + Duration::from_millis(200)), now),
            Duration::ZERO
        );
        assert_eq!(delay_budget(Some(now - secs(1)), now), Duration::ZERO);
    }
}
