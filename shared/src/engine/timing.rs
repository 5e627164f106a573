//! When to come back: the growing backoff while a target is not reachable yet, the grace
//! window that turns "not yet" permanent, the spread of throttled retries, the recheck of a
//! step held elsewhere, and the time helpers they use.
//!
//! Invariant: every delay is jittered, so a burst of deliveries does not return at once.

use std::time::{Duration, SystemTime};

use super::{Engine, EngineSettings};
use crate::error::StepError;
use crate::ledger::Lease;

/// The earliest a delivery that found its step held comes back (see [`recheck_in`]).
const MIN_RECHECK: Duration = Duration::from_secs(5);

impl EngineSettings {
    /// The delay before attempt `attempt + 1` while not reachable yet:
    /// `min(retry_base * 2^(attempt-1), retry_max)`, jittered down by up to 20% so a burst of
    /// new accounts does not come back at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let full = self
            .retry_base
            .saturating_mul(1u32 << doublings)
            .min(self.retry_max);
        // Jitter from the v4 UUID generator's randomness: no extra dependency.
        let unit = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        full.mul_f64(1.0 - 0.2 * unit)
    }
}

impl Engine {
    /// Whether `lease` has time left to announce before it could be taken over: a quarter
    /// of a lease's length, at most 5 s.
    pub(super) fn lease_fresh(&self, lease: &Lease) -> bool {
        let margin = (self.settings.lease / 4).min(Duration::from_secs(5));
        SystemTime::now() + margin < lease.expires_at
    }

    /// Not reachable yet: retryable with a growing delay inside the grace window from
    /// `since`, permanent after it with a message that says so. Other errors pass unchanged.
    pub(super) fn grace(&self, since: SystemTime, attempt: u32, e: StepError) -> StepError {
        if !e.is_not_yet() {
            return e;
        }
        let waited = SystemTime::now().duration_since(since).unwrap_or_default();
        let window = self.settings.member_role_grace;
        if waited < window {
            let delay = self.settings.backoff(attempt);
            return e.after(delay);
        }
        let message = format!(
            "{} - still so {} after the first attempt, past the grace window of {} \
             (MEMBER_ROLE_GRACE_SECONDS); recorded as failed: fix the cause, then \
             `onboarding retry`",
            e.reason().message,
            human(waited),
            human(window),
        );
        e.into_permanent(message)
    }
}

/// A throttled attempt comes back after a growing, jittered delay (2 s doubling to 2 min,
/// each between half and all of it) rather than the queue's fixed visibility timeout, so a
/// burst of records spreads out instead of returning together.
pub(super) fn spread_throttling(e: StepError, attempt: u32) -> StepError {
    if !e.is_retryable() || e.retry_after().is_some() || !crate::error::is_throttling(e.code()) {
        return e;
    }
    let full = Duration::from_secs(2)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(Duration::from_secs(120));
    let unit = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    e.after(full.mul_f64(0.5 + 0.5 * unit))
}

/// When a delivery that found its step held comes back: after about as long as the holder
/// has held it (a holder that claimed a second ago is likely done in a few; one that has
/// worked for a minute may work for another), at least [`MIN_RECHECK`], never later than
/// just after the lease ends, jittered (0.8-1.0x) so that the waiters of a burst spread out.
pub(super) fn recheck_in(held_for: Duration, lease_left: Duration) -> Duration {
    let unit = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    held_for
        .max(MIN_RECHECK)
        .mul_f64(0.8 + 0.2 * unit)
        .min(lease_left + Duration::from_secs(1))
}

/// `2h 0m`, `5m 3s`, `4.2s`: durations in messages.
pub(super) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h {}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

pub(super) fn epoch_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(super) fn from_epoch_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}
