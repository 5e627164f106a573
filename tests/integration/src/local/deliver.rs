//! Delivering one `events/` file to one function the way its trigger would.
//!
//! - A direct event (EventBridge rule -> function, an asynchronous invocation): an error reply
//!   is retried, like Lambda's retries of a failed asynchronous invocation.
//! - An SQS batch (`{"Records": [...]}`): the records listed in `batchItemFailures` go back to
//!   the queue and come again in a later batch with `ApproximateReceiveCount` + 1; after
//!   [`MAX_RECEIVE_COUNT`] receives a record moves to the dead-letter queue (the template's
//!   `MaxReceiveCount` default). An error reply fails the whole batch: every record returns.
//!
//! The retry waits are short (the queue's real visibility timeout is six minutes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::watch::{Reply, Watches};

/// Receives of one SQS message before it moves to the dead-letter queue (template default).
pub const MAX_RECEIVE_COUNT: u32 = 12;
/// Attempts of a direct (asynchronous) invocation: the first and Lambda's two retries.
pub const DIRECT_ATTEMPTS: usize = 3;
/// Wait before a batch's failed records come back (stands in for the visibility timeout).
const REDELIVERY_DELAY: Duration = Duration::from_millis(100);

/// One invocation of a delivery.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub reply: Reply,
    /// Records in the batch (1 for a direct event).
    pub records: usize,
    pub elapsed: Duration,
}

/// Everything that happened to one file delivered to one function.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub file: String,
    pub function: String,
    /// True for an SQS batch.
    pub sqs: bool,
    /// The first invocation is the delivery; the rest are retries and redeliveries.
    pub attempts: Vec<Attempt>,
    /// messageIds moved to the dead-letter queue after [`MAX_RECEIVE_COUNT`] receives.
    pub dead_lettered: Vec<String>,
    /// A direct event still failing after [`DIRECT_ATTEMPTS`] (its last error).
    pub gave_up: Option<String>,
}

impl Delivery {
    /// The first invocation's reply.
    pub fn first(&self) -> &Reply {
        &self.attempts[0].reply
    }

    /// The first invocation's JSON reply, or what it was instead.
    pub fn value(&self) -> Result<&Value, String> {
        match self.first() {
            Reply::Value(v) => Ok(v),
            other => Err(format!("{} ({}): {other:?}", self.function, self.file)),
        }
    }

    /// Invocations made (the delivery and its retries).
    pub fn invocations(&self) -> usize {
        self.attempts.len()
    }

    /// Records delivered, counting every redelivered record again (1 per direct invocation).
    pub fn records_delivered(&self) -> usize {
        self.attempts.iter().map(|a| a.records).sum()
    }
}

/// Delivers `file` to `function` through its watch; retries as the trigger would. `scratch` is
/// a directory for the redelivered batches. `limit` bounds each invocation.
pub async fn deliver(
    watch: &mut Watches,
    function: &str,
    file: &Path,
    scratch: &Path,
    limit: Duration,
) -> Result<Delivery, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let payload: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    let name = super::file_name(file);
    let mut delivery = Delivery {
        file: name.clone(),
        function: function.to_string(),
        sqs: false,
        attempts: Vec::new(),
        dead_lettered: Vec::new(),
        gave_up: None,
    };
    let records = payload.get("Records").and_then(Value::as_array).cloned();
    let Some(mut pending) = records else {
        // Direct: retried on error, with backoff.
        for attempt in 0..DIRECT_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            let started = Instant::now();
            let reply = watch.invoke(function, file, limit).await?;
            let failed = matches!(&reply, Reply::Error(_));
            delivery.attempts.push(Attempt {
                reply: reply.clone(),
                records: 1,
                elapsed: started.elapsed(),
            });
            if !failed {
                return Ok(delivery);
            }
            if let Reply::Error(e) = reply {
                delivery.gave_up = Some(e);
            }
        }
        return Ok(delivery);
    };

    delivery.sqs = true;
    let mut batch_file: PathBuf = file.to_path_buf();
    let mut round = 0u32;
    while !pending.is_empty() {
        if round > 0 {
            tokio::time::sleep(REDELIVERY_DELAY).await;
            batch_file = scratch.join(format!(
                "{}-{function}-redelivery-{round}.json",
                name.trim_end_matches(".json")
            ));
            let batch = serde_json::json!({ "Records": pending });
            std::fs::write(
                &batch_file,
                serde_json::to_vec_pretty(&batch).unwrap_or_default(),
            )
            .map_err(|e| format!("cannot write {}: {e}", batch_file.display()))?;
        }
        let started = Instant::now();
        let reply = watch.invoke(function, &batch_file, limit).await?;
        delivery.attempts.push(Attempt {
            reply: reply.clone(),
            records: pending.len(),
            elapsed: started.elapsed(),
        });
        let failed: Vec<String> = match reply.batch_failures() {
            Some(ids) => ids,
            // An error (or an unexpected reply): the whole batch comes back.
            None => pending.iter().filter_map(message_id).collect(),
        };
        let mut next = Vec::new();
        for mut record in pending {
            let Some(id) = message_id(&record) else {
                continue;
            };
            if !failed.contains(&id) {
                continue;
            }
            let received = receive_count(&record);
            if received >= MAX_RECEIVE_COUNT {
                delivery.dead_lettered.push(id);
            } else {
                set_receive_count(&mut record, received + 1);
                next.push(record);
            }
        }
        pending = next;
        round += 1;
    }
    Ok(delivery)
}

fn message_id(record: &Value) -> Option<String> {
    record.get("messageId")?.as_str().map(str::to_string)
}

fn receive_count(record: &Value) -> u32 {
    record
        .pointer("/attributes/ApproximateReceiveCount")
        .and_then(Value::as_str)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

fn set_receive_count(record: &mut Value, count: u32) {
    if let Some(attributes) = record.get_mut("attributes").and_then(Value::as_object_mut) {
        attributes.insert(
            "ApproximateReceiveCount".into(),
            Value::String(count.to_string()),
        );
    }
}
