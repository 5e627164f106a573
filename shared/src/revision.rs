//! Revisions: the order of requests for one step. The latest request (by the envelope's
//! `time`, which an archive replay keeps; ties broken by event id) describes the wanted
//! state; an older one never changes what a newer one applied.

use std::fmt;

/// A request's place in time, comparable as a string: `<time, UTC, milliseconds>#<event id>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Revision(String);

/// The time of a request whose envelope has none: older than any real one.
const NO_TIME: &str = "0000-00-00T00:00:00.000Z";

impl Revision {
    /// The revision of any event: its envelope's `time` (if any) and its id.
    pub fn at(time: Option<&str>, event_id: &str) -> Revision {
        let time = time
            .and_then(normalize_time)
            .unwrap_or_else(|| NO_TIME.to_owned());
        Revision(format!("{time}#{event_id}"))
    }

    /// A stored revision, as [`Revision::as_str`] wrote it.
    pub fn parse(stored: &str) -> Revision {
        Revision(stored.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalized time part.
    pub fn time(&self) -> &str {
        self.0.split_once('#').map_or(self.0.as_str(), |(t, _)| t)
    }

    /// The event id part.
    pub fn event_id(&self) -> &str {
        self.0.split_once('#').map_or("", |(_, id)| id)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (EventBridge's `time`) as `YYYY-MM-DDTHH:MM:SS.mmmZ`,
/// so that revisions compare as strings; anything else is `None`.
pub fn normalize_time(time: &str) -> Option<String> {
    let b = time.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (b[b.len() - 1] == b'Z' || b[b.len() - 1] == b'z');
    if !shape {
        return None;
    }
    let fraction = &time[19..time.len() - 1];
    let millis = match fraction.strip_prefix('.') {
        None if fraction.is_empty() => "000".to_owned(),
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) => {
            format!("{f:0<3}")[..3].to_owned()
        }
        _ => return None,
    };
    Some(format!("{}T{}.{millis}Z", &time[..10], &time[11..19]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_normalize_and_compare_as_strings() {
        assert_eq!(
            normalize_time("2026-11-30T12:00:00Z").as_deref(),
            Some("2026-11-30T12:00:00.000Z")
        );
        assert_eq!(
            normalize_time("2026-11-30T12:00:00.5Z").as_deref(),
            Some("2026-11-30T12:00:00.500Z")
        );
        assert_eq!(
            normalize_time("2026-11-30T12:00:00.123456Z").as_deref(),
            Some("2026-11-30T12:00:00.123Z")
        );
        for bad in [
            "",
            "2026-11-30",
            "2026-11-30T12:00:00+01:00",
            "2026-11-30T12:00:00.Z",
            "x026-11-30T12:00:00Z",
        ] {
            assert_eq!(normalize_time(bad), None, "{bad}");
        }
        let a = Revision("2026-11-30T12:00:00.000Z#b".into());
        let b = Revision("2026-11-30T12:00:00.000Z#c".into());
        let c = Revision("2026-11-30T12:00:01.000Z#a".into());
        assert!(a < b && b < c, "time first, then event id");
        assert!(Revision(format!("{NO_TIME}#z")) < a);
        assert_eq!(c.time(), "2026-11-30T12:00:01.000Z");
        assert_eq!(c.event_id(), "a");
    }
}
