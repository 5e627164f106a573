//! Bringing a failed SQS record back later than the queue's visibility timeout would, or
//! sooner: "not reachable yet" backs off over hours with a handful of receives, and a step
//! another delivery holds comes back when its lease ends.
//!
//! The handler reports the record in `batchItemFailures` as usual and, before replying, sets
//! the record's visibility timeout with `ChangeMessageVisibilityBatch`. If that call fails, the
//! queue's own visibility timeout applies: the delay is an optimisation, never a condition for
//! the record coming back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use futures::future::BoxFuture;
use tracing::warn;

/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// One record to deliver again after `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delay {
    pub queue_arn: String,
    pub receipt_handle: String,
    pub message_id: String,
    pub after: Duration,
}

/// Sets when failed records come back.
pub trait Redelivery: Send + Sync {
    fn delay(&self, delays: Vec<Delay>) -> BoxFuture<'_, ()>;
}

/// [`Redelivery`] through SQS `ChangeMessageVisibilityBatch`. Queue URLs are looked up once
/// per queue (`GetQueueUrl` with the name and owner from the record's `eventSourceARN`), so
/// the same code works in every partition and against local endpoints.
pub struct SqsVisibility {
    client: aws_sdk_sqs::Client,
    urls: Mutex<HashMap<String, String>>,
}

impl SqsVisibility {
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self {
            client,
            urls: Mutex::new(HashMap::new()),
        }
    }

    async fn url(&self, queue_arn: &str) -> Result<String, String> {
        if let Some(url) = self
            .urls
            .lock()
            .ok()
            .and_then(|m| m.get(queue_arn).cloned())
        {
            return Ok(url);
        }
        // arn:<partition>:sqs:<region>:<account>:<name>
        let parts: Vec<&str> = queue_arn.splitn(6, ':').collect();
        let [_, _, "sqs", _, account, name] = parts[..] else {
            return Err(format!("{queue_arn:?} is not an SQS queue ARN"));
        };
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GetQueueUrl {name}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            })?;
        let url = out
            .queue_url()
            .ok_or_else(|| format!("GetQueueUrl {name} returned no URL"))?
            .to_string();
        if let Ok(mut urls) = self.urls.lock() {
            urls.insert(queue_arn.to_string(), url.clone());
        }
        Ok(url)
    }

    async fn apply(&self, queue_arn: &str, delays: &[Delay]) -> Result<(), String> {
        let url = self.url(queue_arn).await?;
        for chunk in delays.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&d.receipt_handle)
                        .visibility_timeout(visibility_seconds(d.after))
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "ChangeMessageVisibilityBatch: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    )
                })?;
            if let Some(failed) = out.failed().first() {
                return Err(format!(
                    "ChangeMessageVisibilityBatch refused {} of {} entries ({}: {})",
                    out.failed().len(),
                    chunk.len(),
                    failed.code(),
                    failed.message().unwrap_or("no message")
                ));
            }
        }
        Ok(())
    }
}

impl Redelivery for SqsVisibility {
    fn delay(&self, delays: Vec<Delay>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut by_queue: HashMap<String, Vec<Delay>> = HashMap::new();
            for d in delays {
                by_queue.entry(d.queue_arn.clone()).or_default().push(d);
            }
            for (queue, delays) in by_queue {
                if let Err(e) = self.apply(&queue, &delays).await {
                    warn!(queue = %queue, error = %e,
                        "could not delay the failed records; they return after the queue's visibility timeout");
                }
            }
        })
    }
}

/// Whole seconds, at least 1, at most [`MAX_VISIBILITY`].
pub fn visibility_seconds(after: Duration) -> i32 {
    let secs = after.min(MAX_VISIBILITY).as_secs_f64().ceil().max(1.0);
    secs as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_is_whole_seconds_within_sqs_limits() {
        assert_eq!(visibility_seconds(Duration::ZERO), 1);
        assert_eq!(visibility_seconds(Duration::from_millis(1200)), 2);
        assert_eq!(visibility_seconds(Duration::from_secs(60)), 60);
        assert_eq!(visibility_seconds(Duration::from_secs(100_000)), 43_200);
    }
}
