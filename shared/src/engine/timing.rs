//! When to come back: the growing backoff while a target is not reachable yet, the grace
//! window that turns "not yet" permanent, the spread of throttled retries, the recheck of a
//! step held elsewhere.
//!
//! Invariant: every delay is jittered, so a burst of deliveries does not return at once.

use std::time::{Duration, SystemTime};

use super::EngineSettings;
use crate::clock::jitter;
use crate::error::StepError;

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
        jitter(full, 0.8)
    }

    /// Not reachable yet: retryable with a growing delay inside the grace window from
    /// `since`, permanent after it with a message that says so. Other errors pass unchanged.
    pub(super) fn grace(&self, since: SystemTime, attempt: u32, e: StepError) -> StepError {
        if !e.is_not_yet() {
            return e;
        }
        let waited = SystemTime::now().duration_since(since).unwrap_or_default();
        let window = self.member_role_grace;
        if waited < window {
            let delay = self.backoff(attempt);
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
    e.after(jitter(full, 0.5))
}

/// When a delivery that found its step held comes back: after about as long as the holder
/// has held it (a holder that claimed a second ago is likely done in a few; one that has
/// worked for a minute may work for another), at least [`MIN_RECHECK`], never later than
/// just after the lease ends, jittered (0.8-1.0x) so that the waiters of a burst spread out.
pub(super) fn recheck_in(held_for: Duration, lease_left: Duration) -> Duration {
    jitter(held_for.max(MIN_RECHECK), 0.8).min(lease_left + Duration::from_secs(1))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn settings() -> EngineSettings {
        EngineSettings {
            lease: secs(60),
            ready_wait: secs(10),
            member_role_grace: secs(3600),
            retry_base: secs(10),
            retry_max: secs(300),
        }
    }

    /// `d` lies between `low` times `full` and `full`.
    fn jittered(d: Duration, full: Duration, low: f64) -> bool {
        d <= full && d >= full.mul_f64(low)
    }

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let s = settings();
        let expected = [
            (0, 10),
            (1, 10),
            (2, 20),
            (3, 40),
            (5, 160),
            (6, 300),
            (7, 300),
            (40, 300),
            (u32::MAX, 300),
        ];
        for _ in 0..50 {
            for (attempt, full) in expected {
                let d = s.backoff(attempt);
                assert!(jittered(d, secs(full), 0.8), "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn backoff_spreads_a_burst() {
        let s = settings();
        let mut delays: Vec<Duration> = (0..20).map(|_| s.backoff(3)).collect();
        delays.sort();
        delays.dedup();
        assert!(delays.len() > 1, "20 new accounts would come back at once");
    }

    #[test]
    fn grace_retries_not_yet_inside_the_window_with_the_backoff() {
        let s = settings();
        let since = SystemTime::now() - secs(60);
        let e = s.grace(
            since,
            2,
            StepError::not_yet("AccessDenied", "role not there"),
        );
        assert!(e.is_retryable() && e.is_not_yet());
        let delay = e.retry_after().expect("a delay");
        assert!(jittered(delay, secs(20), 0.8), "{delay:?}");
    }

    #[test]
    fn grace_turns_not_yet_permanent_after_the_window() {
        let s = settings();
        let since = SystemTime::now() - secs(2 * 3600 + 60);
        let e = s.grace(
            since,
            9,
            StepError::not_yet("AccessDenied", "role not there"),
        );
        assert!(!e.is_retryable());
        assert_eq!(e.code(), "AccessDenied");
        let message = &e.reason().message;
        assert!(
            message.starts_with("role not there - still so 2h 1m"),
            "{message}"
        );
        assert!(message.contains("grace window of 1h 0m"), "{message}");
        assert!(message.contains("onboarding retry"), "{message}");
    }

    #[test]
    fn grace_leaves_other_errors_alone() {
        let s = settings();
        let long_ago = SystemTime::now() - secs(10 * 3600);
        let retryable = s.grace(long_ago, 3, StepError::retryable("InternalError", "x"));
        assert!(retryable.is_retryable());
        assert_eq!(retryable.retry_after(), None);
        let permanent = s.grace(long_ago, 3, StepError::permanent("Validation", "x"));
        assert!(!permanent.is_retryable());
        assert_eq!(permanent.reason().message, "x");
    }

    #[test]
    fn throttling_comes_back_after_a_growing_delay_capped_at_two_minutes() {
        for _ in 0..50 {
            for (attempt, full) in [(0, 2), (1, 2), (2, 4), (4, 16), (7, 120), (30, 120)] {
                let e =
                    spread_throttling(StepError::retryable("ThrottlingException", "x"), attempt);
                let delay = e.retry_after().expect("a delay");
                assert!(
                    jittered(delay, secs(full), 0.5),
                    "attempt {attempt}: {delay:?}"
                );
                assert!(e.is_retryable());
            }
        }
    }

    #[test]
    fn throttling_spread_keeps_other_errors_and_given_delays() {
        let other = spread_throttling(StepError::retryable("InternalError", "x"), 3);
        assert_eq!(other.retry_after(), None);
        let given = spread_throttling(
            StepError::retryable("ThrottlingException", "x").after(secs(7)),
            3,
        );
        assert_eq!(given.retry_after(), Some(secs(7)));
        let permanent = spread_throttling(StepError::permanent("ThrottlingException", "x"), 3);
        assert_eq!(permanent.retry_after(), None);
        assert!(!permanent.is_retryable());
    }

    #[test]
    fn recheck_follows_how_long_the_step_was_held() {
        for _ in 0..50 {
            // Held a second ago: back after about the minimum, not sooner.
            assert!(jittered(recheck_in(secs(1), secs(60)), MIN_RECHECK, 0.8));
            // Held for half a minute: back after about as long again.
            assert!(jittered(recheck_in(secs(30), secs(60)), secs(30), 0.8));
            // Never later than just after the lease ends.
            assert_eq!(recheck_in(secs(120), secs(10)), secs(11));
            assert!(recheck_in(secs(1), Duration::ZERO) <= secs(1));
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(secs(7200)), "2h 0m");
        assert_eq!(human(secs(303)), "5m 3s");
        assert_eq!(human(Duration::from_millis(4200)), "4.2s");
    }
}
