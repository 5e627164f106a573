//! Time as the ledger stores it (milliseconds since the epoch) and the one jitter every
//! delay uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch (0 before it; saturating far after it).
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub fn now_ms() -> u64 {
    epoch_ms(SystemTime::now())
}

pub fn from_epoch_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// `full` scaled by a random factor between `low` and 1, so that the waiters of a burst do
/// not come back together. The randomness is the v4 UUID generator's: no extra dependency.
pub fn jitter(full: Duration, low: f64) -> Duration {
    let unit = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    full.mul_f64(low + (1.0 - low) * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_milliseconds_round_trip() {
        let now = now_ms();
        assert_eq!(from_epoch_ms(now), UNIX_EPOCH + Duration::from_millis(now));
        assert!(
            SystemTime::now()
                .duration_since(from_epoch_ms(now))
                .unwrap()
                < Duration::from_secs(5)
        );
        assert_eq!(epoch_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(from_epoch_ms(u64::MAX), from_epoch_ms(u64::MAX));
        assert_eq!(
            epoch_ms(from_epoch_ms(1_700_000_000_123)),
            1_700_000_000_123
        );
    }

    #[test]
    fn jitter_stays_between_its_bounds() {
        let full = Duration::from_secs(10);
        for _ in 0..200 {
            let d = jitter(full, 0.8);
            assert!(d <= full && d >= full.mul_f64(0.8), "{d:?}");
        }
        assert_eq!(jitter(full, 1.0), full);
    }
}
