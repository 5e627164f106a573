//! Events the project emits so pipelines and later steps can react: "<Step> Ready",
//! "<Step> Updated", "Onboarding Step Failed", "Onboarding Drift Detected". The detail schema
//! is documented in events/README.md.
//!
//! Announcements made at about the same time (the records of one SQS batch finishing
//! together) share one `PutEvents` call of up to 10 entries: each caller's entry waits at
//! most [`BATCH_WINDOW`] for others, and each caller learns its own entry's result.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::json;
use tokio::sync::oneshot;

use crate::error::StepError;
use crate::ledger::{ErrorReason, Origin};
use crate::revision::Revision;

pub const STEP_FAILED_DETAIL_TYPE: &str = "Onboarding Step Failed";
pub const DRIFT_DETECTED_DETAIL_TYPE: &str = "Onboarding Drift Detected";
const SCHEMA_VERSION: &str = "1";

/// What an announcement is about.
pub struct Subject<'a> {
    pub step: &'a str,
    pub account_id: Option<&'a str>,
    pub request_event_id: &'a str,
}

/// How long an announcement waits for others to share its `PutEvents` call.
pub const BATCH_WINDOW: Duration = Duration::from_millis(15);
/// PutEvents takes at most 10 entries.
const MAX_ENTRIES: usize = 10;

type Waiter = oneshot::Sender<Result<(), StepError>>;

/// Entries waiting for their shared `PutEvents` call.
#[derive(Default)]
struct Batch {
    entries: Vec<(PutEventsRequestEntry, String, Waiter)>,
}

#[derive(Clone)]
pub struct Announcer {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
    pending: Arc<Mutex<Option<Batch>>>,
}

impl Announcer {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String, source: String) -> Self {
        Self {
            client,
            bus,
            source,
            pending: Arc::new(Mutex::new(None)),
        }
    }

    pub async fn ready(
        &self,
        detail_type: &str,
        subject: &Subject<'_>,
        resource_arn: &str,
        client_token: &str,
        origin: Option<Origin>,
    ) -> Result<(), StepError> {
        let mut detail = json!({
            "schemaVersion": SCHEMA_VERSION,
            "step": subject.step,
            "resourceArn": resource_arn,
            "clientToken": client_token,
            "requestEventId": subject.request_event_id,
        });
        // How the resource came to be: created, adopted (an earlier attempt's, response
        // lost) or pre-existing (there before us, and what was asked).
        if let Some(origin) = origin {
            detail["origin"] = json!(origin.as_str());
        }
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        self.put(detail_type, &detail).await
    }

    /// "<Step> Updated": a newer request changed the resource. Names the changed fields,
    /// never their values (a secret's name may be among them, never a secret).
    pub async fn updated(
        &self,
        detail_type: &str,
        subject: &Subject<'_>,
        resource_arn: &str,
        revision: &Revision,
        changed: &[String],
    ) -> Result<(), StepError> {
        let mut detail = json!({
            "schemaVersion": SCHEMA_VERSION,
            "step": subject.step,
            "resourceArn": resource_arn,
            "revision": { "time": revision.time(), "eventId": revision.event_id() },
            "changed": changed,
            "requestEventId": subject.request_event_id,
        });
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        self.put(detail_type, &detail).await
    }

    /// "Onboarding Drift Detected": a READY step's resource was deleted or changed behind
    /// the project's back. Names the changed fields, never values.
    pub async fn drift(
        &self,
        subject: &Subject<'_>,
        resource_arn: &str,
        gone: bool,
        changed: &[String],
        repairing: bool,
    ) -> Result<(), StepError> {
        let mut detail = json!({
            "schemaVersion": SCHEMA_VERSION,
            "step": subject.step,
            "resourceArn": resource_arn,
            "gone": gone,
            "changed": changed,
            "repair": if repairing { "started" } else { "off" },
        });
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        self.put(DRIFT_DETECTED_DETAIL_TYPE, &detail).await
    }

    pub async fn failed(
        &self,
        subject: &Subject<'_>,
        reason: &ErrorReason,
    ) -> Result<(), StepError> {
        let mut detail = json!({
            "schemaVersion": SCHEMA_VERSION,
            "step": subject.step,
            "reason": { "code": reason.code, "message": reason.message, "retryable": false },
            "requestEventId": subject.request_event_id,
        });
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        self.put(STEP_FAILED_DETAIL_TYPE, &detail).await
    }

    /// Queues the entry for the next shared call and waits for its result. The first entry
    /// of a batch sends it after [`BATCH_WINDOW`]; the tenth sends it at once.
    async fn put(&self, detail_type: &str, detail: &serde_json::Value) -> Result<(), StepError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        let (tx, mut rx) = oneshot::channel();
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let batch = pending.get_or_insert_with(Batch::default);
            batch.entries.push((entry, detail_type.to_string(), tx));
            (batch.entries.len() >= MAX_ENTRIES)
                .then(|| pending.take())
                .flatten()
        };
        if let Some(batch) = full {
            self.send(batch).await;
        }
        // Whoever waits longest sends what is pending, so a cancelled caller never strands
        // the others' entries.
        loop {
            tokio::select! {
                result = &mut rx => {
                    return result.unwrap_or_else(|_| {
                        Err(StepError::retryable(
                            "NotAnnounced",
                            "the shared PutEvents call was abandoned",
                        ))
                    });
                }
                _ = tokio::time::sleep(BATCH_WINDOW) => {
                    let batch = self.pending.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(batch) = batch {
                        self.send(batch).await;
                    }
                }
            }
        }
    }

    /// One `PutEvents` for the batch; each waiter gets its own entry's result.
    async fn send(&self, batch: Batch) {
        let (entries, rest): (Vec<_>, Vec<_>) = batch
            .entries
            .into_iter()
            .map(|(entry, detail_type, waiter)| (entry, (detail_type, waiter)))
            .unzip();
        let result = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await;
        match result {
            Err(e) => {
                let e = StepError::from_sdk("events PutEvents", e);
                for (_, waiter) in rest {
                    let _ = waiter.send(Err(e.clone()));
                }
            }
            Ok(out) => {
                // PutEvents reports per-entry failures in a 200 response: not announced.
                for (i, (detail_type, waiter)) in rest.into_iter().enumerate() {
                    let failed = out
                        .entries()
                        .get(i)
                        .and_then(|e| e.error_code().map(|code| (code, e.error_message())));
                    let result = match failed {
                        None => Ok(()),
                        Some((code, message)) => Err(StepError::retryable(
                            "PutEventsFailedEntry",
                            format!(
                                "events PutEvents rejected the {detail_type} event: {code}: {}",
                                message.unwrap_or("no message")
                            ),
                        )),
                    };
                    let _ = waiter.send(result);
                }
            }
        }
    }
}
