//! A simulated SQS queue (standard) in front of one function, with the parts of SQS that
//! matter to the functions: at-least-once delivery, batches of up to 10, a visibility timeout
//! after a lost invocation, backoff after a reported failure, `maxReceiveCount` and a
//! dead-letter list keeping each message's last error. Direct EventBridge deliveries use the
//! same bookkeeping (EventBridge retries a failed asynchronous invocation with backoff, then
//! sends it to the target's dead-letter queue).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Timing of the simulated queue (scaled down from minutes to milliseconds).
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// How long a message of a lost (crashed, killed, timed out) invocation stays invisible.
    pub visibility_timeout: Duration,
    /// Delay before a reported failure is received again, doubled per receive.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Receives after which a failing message goes to the dead-letter list.
    pub max_receive_count: u32,
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

#[derive(Default)]
struct Inner {
    waiting: Vec<Message>,
    in_flight: usize,
    dead: Vec<DeadLetter>,
    acked: u64,
    enqueued: u64,
    injected: u64,
}

pub struct SimQueue {
    pub name: &'static str,
    settings: QueueSettings,
    inner: Mutex<Inner>,
}

impl SimQueue {
    pub fn new(name: &'static str, settings: QueueSettings) -> Self {
        SimQueue {
            name,
            settings,
            inner: Mutex::new(Inner::default()),
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
        q.in_flight += out.len();
        out
    }

    /// The function handled the message: deleted.
    pub fn ack(&self, _m: Message) {
        let mut q = self.lock();
        q.in_flight -= 1;
        q.acked += 1;
    }

    /// The function reported the message as failed: back after a backoff, or dead-lettered.
    pub fn fail(&self, mut m: Message, error: String) {
        let shift = m.receives.saturating_sub(1).min(16);
        let delay = self
            .settings
            .first_backoff
            .saturating_mul(1 << shift)
            .min(self.settings.max_backoff);
        m.last_error = Some(error);
        self.back(m, delay);
    }

    /// The invocation was lost (crash, kill, timeout): back after the visibility timeout.
    pub fn lost(&self, mut m: Message, why: &str) {
        m.last_error = Some(format!("invocation lost: {why}"));
        self.back(m, self.settings.visibility_timeout);
    }

    fn back(&self, mut m: Message, delay: Duration) {
        let mut q = self.lock();
        q.in_flight -= 1;
        if m.receives >= self.settings.max_receive_count {
            let dead = DeadLetter {
                queue: self.name,
                message_id: m.id,
                origin: m.origin,
                direct: m.direct,
                receives: m.receives,
                last_error: m.last_error.unwrap_or_default(),
            };
            q.dead.push(dead);
        } else {
            m.visible_at = Instant::now() + delay;
            q.waiting.push(m);
        }
    }

    /// Nothing waiting and nothing in flight.
    pub fn is_drained(&self) -> bool {
        let q = self.lock();
        q.waiting.is_empty() && q.in_flight == 0
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

    /// (enqueued, injected, acked, waiting + in flight)
    pub fn counts(&self) -> (u64, u64, u64, usize) {
        let q = self.lock();
        (
            q.enqueued,
            q.injected,
            q.acked,
            q.waiting.len() + q.in_flight,
        )
    }
}
