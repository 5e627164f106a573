//! A simulated SQS queue (standard) in front of one function, with the parts of SQS that
//! matter to the functions: at-least-once delivery, batches of up to 10, a visibility timeout
//! after a lost invocation, backoff after a reported failure, `maxReceiveCount` and a
//! dead-letter list keeping each message's last error. Direct EventBridge deliveries use the
//! same bookkeeping (EventBridge retries a failed asynchronous invocation with backoff, then
//! sends it to the target's dead-letter queue), with a retry budget of their own.
//!
//! The queue is also the handlers' [`Redelivery`]: a failed record whose error asks to come
//! back at a given time (the grace window's backoff, a lease held elsewhere) gets that delay
//! the way `ChangeMessageVisibility` sets it in SQS. The receipt handle (`handle-<message
//! id>`, as `deliveries::sqs_batch_from` builds it) and the queue ARN must name a message this
//! queue has in flight; the delay then replaces the default backoff when the record is
//! reported failed (or lost). Delays are kept exact, not rounded to SQS's whole seconds: the
//! run's clock is compressed.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use onboarding::redelivery::{Delay, Redelivery, MAX_VISIBILITY};

/// Timing of the simulated queue (scaled down from minutes to milliseconds).
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// How long a message of a lost (crashed, killed, timed out) invocation stays invisible.
    pub visibility_timeout: Duration,
    /// Delay before a reported failure is received again, doubled per receive (when the
    /// handler set no delay of its own).
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Receives after which a failing SQS message goes to the dead-letter list.
    pub max_receive_count: u32,
    /// The same for direct deliveries (EventBridge's retry policy).
    pub direct_max_receive_count: u32,
    /// Share of failed or lost deliveries whose message is gone for good at once (its
    /// receives spent, a dead-letter queue nobody redrives): dead-lettered on the spot.
    pub drop_rate: f64,
}

/// One message on the queue.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    pub body: String,
    /// Delivered directly by an EventBridge rule (the payload is the event), not via SQS.
    pub direct: bool,
    /// Index of the original event (in the run's plan) this message carries a copy of.
    pub origin: usize,
    pub receives: u32,
    pub last_error: Option<String>,
    visible_at: Instant,
}

/// A message that exhausted its receives.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub queue: &'static str,
    pub message_id: String,
    pub origin: usize,
    pub direct: bool,
    pub receives: u32,
    pub last_error: String,
}

/// What the handlers asked of [`Redelivery`] on this queue.
#[derive(Clone, Debug, Default)]
pub struct Delays {
    /// Delays taken (the record came back after them).
    pub applied: u64,
    /// Delays refused: an unknown queue ARN or receipt handle, or a message not in flight.
    pub refused: u64,
    pub refusals: Vec<String>,
    /// Delays of records that were then acknowledged (a handler asked to delay a record it
    /// did not report as failed).
    pub on_acked: u64,
    pub shortest: Option<Duration>,
    pub longest: Option<Duration>,
}

#[derive(Default)]
struct Inner {
    waiting: Vec<Message>,
    /// Ids of the messages received and not yet acknowledged, failed or lost.
    in_flight: HashSet<String>,
    /// Visibility set by a handler for an in-flight message, by message id.
    delays: HashMap<String, Duration>,
    delay_stats: Delays,
    dead: Vec<DeadLetter>,
    acked: u64,
    enqueued: u64,
    injected: u64,
}

pub struct SimQueue {
    pub name: &'static str,
    /// What records from this queue carry as `eventSourceARN`.
    pub arn: String,
    settings: QueueSettings,
    inner: Mutex<Inner>,
    /// Messages are still being sent (the burst mode's paced feed): not drained yet.
    feeding: std::sync::atomic::AtomicBool,
}

impl SimQueue {
    pub fn new(name: &'static str, settings: QueueSettings) -> Self {
        SimQueue {
            name,
            arn: crate::deliveries::queue_arn(name),
            settings,
            inner: Mutex::new(Inner::default()),
            feeding: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a message, visible at once.
    pub fn send(&self, id: String, body: String, direct: bool, origin: usize) {
        let mut q = self.lock();
        q.enqueued += 1;
        q.waiting.push(Message {
            id,
            body,
            direct,
            origin,
            receives: 0,
            last_error: None,
            visible_at: Instant::now(),
        });
    }

    /// A copy of a message delivered again while the original is being worked on (a
    /// duplicate arriving exactly when a holder is slow): received next.
    pub fn inject(&self, id: String, body: String, origin: usize) {
        let mut q = self.lock();
        q.injected += 1;
        q.enqueued += 1;
        q.waiting.insert(
            0,
            Message {
                id,
                body,
                direct: false,
                origin,
                receives: 0,
                last_error: None,
                visible_at: Instant::now(),
            },
        );
    }

    /// Up to `max` visible messages, oldest in the queue's (shuffled) order first; each
    /// receive counts.
    pub fn receive(&self, max: usize) -> Vec<Message> {
        let now = Instant::now();
        let mut q = self.lock();
        let mut out = Vec::new();
        let mut i = 0;
        while i < q.waiting.len() && out.len() < max {
            if q.waiting[i].visible_at <= now {
                let mut m = q.waiting.remove(i);
                m.receives += 1;
                out.push(m);
            } else {
                i += 1;
            }
        }
        for m in &out {
            q.in_flight.insert(m.id.clone());
        }
        out
    }

    /// The function handled the message: deleted.
    pub fn ack(&self, m: Message) {
        let mut q = self.lock();
        q.in_flight.remove(&m.id);
        if q.delays.remove(&m.id).is_some() {
            q.delay_stats.on_acked += 1;
        }
        q.acked += 1;
    }

    /// The function reported the message as failed: back after the delay its handler set,
    /// else after a backoff; or dead-lettered.
    pub fn fail(&self, mut m: Message, error: String) {
        let shift = m.receives.saturating_sub(1).min(16);
        let backoff = self
            .settings
            .first_backoff
            .saturating_mul(1 << shift)
            .min(self.settings.max_backoff);
        m.last_error = Some(error);
        self.back(m, backoff);
    }

    /// The invocation was lost (crash, kill, timeout): back after the visibility timeout (or
    /// the delay its handler had already set).
    pub fn lost(&self, mut m: Message, why: &str) {
        m.last_error = Some(format!("invocation lost: {why}"));
        self.back(m, self.settings.visibility_timeout);
    }

    fn back(&self, mut m: Message, default: Duration) {
        let mut q = self.lock();
        q.in_flight.remove(&m.id);
        let delay = q.delays.remove(&m.id).unwrap_or(default);
        let max_receives = if m.direct {
            self.settings.direct_max_receive_count
        } else {
            self.settings.max_receive_count
        };
        let dropped =
            self.settings.drop_rate > 0.0 && rand::random::<f64>() < self.settings.drop_rate;
        if m.receives >= max_receives || dropped {
            let why = m.last_error.unwrap_or_default();
            let dead = DeadLetter {
                queue: self.name,
                message_id: m.id,
                origin: m.origin,
                direct: m.direct,
                receives: m.receives,
                last_error: if dropped {
                    format!("dropped for good after {} receive(s): {why}", m.receives)
                } else {
                    why
                },
            };
            q.dead.push(dead);
        } else {
            m.visible_at = Instant::now() + delay;
            q.waiting.push(m);
        }
    }

    /// `ChangeMessageVisibility` for records of this queue's in-flight messages.
    fn set_visibility(&self, delays: Vec<Delay>) {
        let mut q = self.lock();
        for d in delays {
            let id = d.receipt_handle.strip_prefix("handle-");
            let refusal = if d.queue_arn != self.arn {
                Some(format!(
                    "queue ARN {} is not {} (message {})",
                    d.queue_arn, self.arn, d.message_id
                ))
            } else if id != Some(d.message_id.as_str()) {
                Some(format!(
                    "receipt handle {} does not belong to message {}",
                    d.receipt_handle, d.message_id
                ))
            } else if !q.in_flight.contains(&d.message_id) {
                Some(format!("message {} is not in flight", d.message_id))
            } else {
                None
            };
            if let Some(why) = refusal {
                q.delay_stats.refused += 1;
                if q.delay_stats.refusals.len() < 5 {
                    q.delay_stats.refusals.push(why);
                }
                continue;
            }
            let after = d.after.min(MAX_VISIBILITY);
            let s = &mut q.delay_stats;
            s.applied += 1;
            s.shortest = Some(s.shortest.map_or(after, |x| x.min(after)));
            s.longest = Some(s.longest.map_or(after, |x| x.max(after)));
            q.delays.insert(d.message_id, after);
        }
    }

    /// While `true`, more messages are on their way: the queue is not drained when empty.
    pub fn set_feeding(&self, feeding: bool) {
        self.feeding
            .store(feeding, std::sync::atomic::Ordering::SeqCst);
    }

    /// Nothing waiting, nothing in flight and nothing more to come.
    pub fn is_drained(&self) -> bool {
        let q = self.lock();
        q.waiting.is_empty()
            && q.in_flight.is_empty()
            && !self.feeding.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How long until the next waiting message becomes visible (None: nothing waiting).
    pub fn next_visible_in(&self) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .waiting
            .iter()
            .map(|m| m.visible_at.saturating_duration_since(now))
            .min()
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    pub fn delays(&self) -> Delays {
        self.lock().delay_stats.clone()
    }

    /// (enqueued, injected, acked, waiting + in flight)
    pub fn counts(&self) -> (u64, u64, u64, usize) {
        let q = self.lock();
        (
            q.enqueued,
            q.injected,
            q.acked,
            q.waiting.len() + q.in_flight.len(),
        )
    }
}

impl Redelivery for SimQueue {
    fn delay(&self, delays: Vec<Delay>) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.set_visibility(delays) })
    }
}
