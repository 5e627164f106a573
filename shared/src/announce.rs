//! Events the project emits so pipelines and later steps can react: "\<Step\> Ready",
//! "\<Step\> Updated", "Onboarding Update Refused", "Onboarding Step Failed", "Onboarding Drift
//! Detected", "Account Offboarded". The detail schema is documented in events/README.md.
//!
//! Every outcome is recorded before it is announced. The outcomes of a READY step (an
//! update applied or refused, drift found) are recorded as [`Event`]s in the step's outbox,
//! in the same write as the outcome, then sent, then removed; anything still in an outbox
//! is in the attention index and is sent by the next delivery or the reconciler. Consumers
//! may see an event twice, never zero times; each carries the step, the generation and the
//! desired version to tell a repeat apart.
//!
//! The announcements of one invocation share one `PutEvents` call of up to 10 entries: the
//! handler runs its records inside [`gathered`], and an announcement waits until every record
//! still running is waiting for its own (or has finished), then one of them sends them all;
//! each caller learns its own entry's result. Nothing is held longer than the invocation
//! takes anyway (its reply waits for the slowest record). Announcements outside an
//! invocation (the reconciler's) share a call when made within [`BATCH_WINDOW`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::json;
use tokio::sync::oneshot;

use crate::error::{code, StepError};
use crate::ledger::{ErrorReason, Origin};
use crate::revision::Revision;

pub const STEP_FAILED_DETAIL_TYPE: &str = "Onboarding Step Failed";
/// A READY step's update the service refused for good: the step stays READY.
pub const UPDATE_REFUSED_DETAIL_TYPE: &str = "Onboarding Update Refused";
pub const DRIFT_DETECTED_DETAIL_TYPE: &str = "Onboarding Drift Detected";
pub const ACCOUNT_OFFBOARDED_DETAIL_TYPE: &str = "Account Offboarded";
const SCHEMA_VERSION: &str = "1";

/// What an announcement is about.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    pub step: &'a str,
    pub account_id: Option<&'a str>,
    pub request_event_id: &'a str,
}

impl<'a> Subject<'a> {
    /// The subject of a generation's Ready: the request the generation was created for
    /// (`requested`, its recorded revision), whichever delivery announces it, so that every
    /// announcement of one generation's Ready is the same event.
    pub fn of_generation(self, requested: Option<&'a Revision>) -> Subject<'a> {
        Subject {
            request_event_id: requested
                .map(Revision::event_id)
                .filter(|id| !id.is_empty())
                .unwrap_or(self.request_event_id),
            ..self
        }
    }
}

/// One announcement as recorded in a step's outbox: its detail-type and detail.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    #[serde(rename = "detailType")]
    pub detail_type: String,
    pub detail: serde_json::Value,
}

impl Event {
    fn about(detail_type: &str, subject: &Subject<'_>, mut detail: serde_json::Value) -> Event {
        detail["schemaVersion"] = json!(SCHEMA_VERSION);
        detail["step"] = json!(subject.step);
        detail["requestEventId"] = json!(subject.request_event_id);
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        Event {
            detail_type: detail_type.to_owned(),
            detail,
        }
    }

    /// "\<Step\> Updated": the resource was brought to the desired state of `version`. Names
    /// the changed fields, never their values (a secret's name may be among them, never a
    /// secret).
    pub fn updated(
        detail_type: &str,
        subject: &Subject<'_>,
        resource_arn: &str,
        (generation, version): (u32, u64),
        revision: &Revision,
        changed: &[String],
    ) -> Event {
        let detail = json!({
            "resourceArn": resource_arn,
            "generation": generation,
            "desiredVersion": version,
            "revision": { "time": revision.time(), "eventId": revision.event_id() },
            "changed": changed,
        });
        Event::about(detail_type, subject, detail)
    }

    /// "Onboarding Update Refused": the service refused the update of `version` for good;
    /// the resource keeps its applied state and the step stays READY.
    pub fn update_refused(
        subject: &Subject<'_>,
        resource_arn: &str,
        (generation, version): (u32, u64),
        reason: &ErrorReason,
    ) -> Event {
        let detail = json!({
            "resourceArn": resource_arn,
            "generation": generation,
            "desiredVersion": version,
            "reason": { "code": reason.code, "message": reason.message, "retryable": false },
        });
        Event::about(UPDATE_REFUSED_DETAIL_TYPE, subject, detail)
    }

    /// "Onboarding Drift Detected": a READY step's resource was deleted or changed behind
    /// the project's back. Names the changed fields, never values.
    pub fn drift(
        subject: &Subject<'_>,
        resource_arn: &str,
        generation: u32,
        (gone, changed): (bool, &[String]),
        repairing: bool,
    ) -> Event {
        let detail = json!({
            "resourceArn": resource_arn,
            "generation": generation,
            "gone": gone,
            "changed": changed,
            "repair": if repairing { "started" } else { "off" },
        });
        Event::about(DRIFT_DETECTED_DETAIL_TYPE, subject, detail)
    }

    /// As stored in an outbox (compact JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How long an announcement waits for others to share its `PutEvents` call.
pub const BATCH_WINDOW: Duration = Duration::from_millis(15);
/// PutEvents takes at most 10 entries.
const MAX_ENTRIES: usize = 10;

/// How often a waiting announcement looks whether its invocation's batch is complete.
const GATHER_CHECK: Duration = Duration::from_millis(5);

type Waiter = oneshot::Sender<Result<(), StepError>>;

/// Entries waiting for their shared `PutEvents` call.
#[derive(Default)]
struct Batch {
    entries: Vec<(PutEventsRequestEntry, String, Waiter)>,
}

tokio::task_local! {
    static GATHERING: Arc<Gathering>;
}

/// The announcements of one invocation: entries wait until every runner (a record, or a FIFO
/// message group) still running is waiting for its own announcement.
struct Gathering {
    inner: Mutex<Gathered>,
}

#[derive(Default)]
struct Gathered {
    running: usize,
    /// Pending entries, with their callers' ids (one entry per waiting caller).
    batch: Batch,
    ids: Vec<u64>,
    next_id: u64,
}

impl Gathering {
    fn lock(&self) -> std::sync::MutexGuard<'_, Gathered> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pending batch, if every runner still running waits in it (or it is full).
    fn take_if_complete(&self) -> Option<Batch> {
        let mut g = self.lock();
        let n = g.batch.entries.len();
        if n == 0 || (n < g.running && n < MAX_ENTRIES) {
            return None;
        }
        g.ids.clear();
        Some(std::mem::take(&mut g.batch))
    }
}

/// Runs `work`, the `runners` concurrent parts of one invocation (records, or FIFO message
/// groups run in order), so that their announcements share one `PutEvents` call. Each runner
/// holds a [`Runner`] from [`runner`] until it ends.
pub async fn gathered<F: std::future::Future>(runners: usize, work: F) -> F::Output {
    let gathering = Arc::new(Gathering {
        inner: Mutex::new(Gathered {
            running: runners,
            ..Gathered::default()
        }),
    });
    GATHERING.scope(gathering, work).await
}

/// A runner of the invocation in progress: while it lives, the others' announcements wait
/// for its own (or for it to end). `None` outside [`gathered`].
pub fn runner() -> Option<Runner> {
    GATHERING.try_with(|g| Runner(g.clone())).ok()
}

pub struct Runner(Arc<Gathering>);

impl Drop for Runner {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        g.running = g.running.saturating_sub(1);
    }
}

/// A caller's entry in its invocation's pending batch: removed if the caller gives up
/// (its deadline) before the batch is sent, so nothing is announced for it.
struct Entry {
    gathering: Arc<Gathering>,
    id: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut g = self.gathering.lock();
        if let Some(i) = g.ids.iter().position(|id| *id == self.id) {
            g.ids.remove(i);
            g.batch.entries.remove(i);
        }
    }
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

    /// The same announcer (client settings, interceptors, bus) signing with `credentials`;
    /// it gathers its own announcements.
    pub fn signing_as(&self, credentials: SharedCredentialsProvider) -> Announcer {
        let config = self
            .client
            .config()
            .to_builder()
            .credentials_provider(credentials)
            .build();
        Announcer::new(
            aws_sdk_eventbridge::Client::from_conf(config),
            self.bus.clone(),
            self.source.clone(),
        )
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

    /// Sends one recorded event.
    pub async fn announce(&self, event: &Event) -> Result<(), StepError> {
        self.put(&event.detail_type, &event.detail).await
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

    /// "Account Offboarded": one step of an account that closed or left the organization was
    /// retired (`retired`: the ledger's record of when and why). Announced once per step;
    /// `resource_arn` is absent for a step no request had reached.
    pub async fn offboarded(
        &self,
        subject: &Subject<'_>,
        resource_arn: Option<&str>,
        retired: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StepError> {
        let mut detail = json!({
            "schemaVersion": SCHEMA_VERSION,
            "step": subject.step,
            "retired": retired,
            "requestEventId": subject.request_event_id,
        });
        if let Some(arn) = resource_arn {
            detail["resourceArn"] = json!(arn);
        }
        if let Some(account) = subject.account_id {
            detail["accountId"] = json!(account);
        }
        self.put(ACCOUNT_OFFBOARDED_DETAIL_TYPE, &detail).await
    }

    /// Queues the entry for the next shared call and waits for its result. In an invocation
    /// ([`gathered`]) the batch is sent once every runner still running waits in it; else the
    /// first entry of a batch sends it after [`BATCH_WINDOW`]. The tenth sends it at once.
    async fn put(&self, detail_type: &str, detail: &serde_json::Value) -> Result<(), StepError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        let (tx, mut rx) = oneshot::channel();
        if let Ok(gathering) = GATHERING.try_with(Arc::clone) {
            let id = {
                let mut g = gathering.lock();
                let id = g.next_id;
                g.next_id += 1;
                g.ids.push(id);
                g.batch.entries.push((entry, detail_type.to_string(), tx));
                id
            };
            let _entry = Entry {
                gathering: gathering.clone(),
                id,
            };
            loop {
                if let Some(batch) = gathering.take_if_complete() {
                    self.send(batch).await;
                }
                tokio::select! {
                    result = &mut rx => return abandoned_or(result),
                    _ = tokio::time::sleep(GATHER_CHECK) => {}
                }
            }
        }
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
                result = &mut rx => return abandoned_or(result),
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
                            code::PUT_EVENTS_FAILED_ENTRY,
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

/// A waiter's result; its sender dropped means the shared call was abandoned.
fn abandoned_or(
    result: Result<Result<(), StepError>, oneshot::error::RecvError>,
) -> Result<(), StepError> {
    result.unwrap_or_else(|_| {
        Err(StepError::retryable(
            code::NOT_ANNOUNCED,
            "the shared PutEvents call was abandoned",
        ))
    })
}
