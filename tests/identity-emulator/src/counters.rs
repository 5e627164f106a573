//! Call and resource counters, readable in-process and at `GET /_emulator/counters`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A snapshot of the counters since start (or the last reset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Calls per operation (faulted calls and calls the service refused included; requests
    /// whose body cannot be parsed or whose operation is unknown are not counted).
    pub calls: BTreeMap<String, u64>,
    /// Per create operation: calls that made a new resource vs. returned an existing one
    /// (same ClientToken and parameters).
    pub creates: BTreeMap<String, CreateCounts>,
    /// Per update operation (`UpdateInstance`, `UpdateIdentityProvider`, `TagResource`,
    /// `UntagResource`): calls that changed the resource vs. replayed an earlier one (same
    /// ClientToken and parameters).
    pub updates: BTreeMap<String, UpdateCounts>,
    /// Per operation: the faults injected.
    pub faults: BTreeMap<String, FaultCounts>,
    /// Per operation: calls refused by a request-rate quota (the service's throttling
    /// error; nothing done). Injected throttling is counted in `faults` instead.
    pub throttled: BTreeMap<String, u64>,
    /// Per operation: when its first and last call (of those in `calls`) arrived.
    pub windows: BTreeMap<String, CallWindow>,
}

/// When the first and the last call of an operation arrived (microsecond precision). In
/// JSON: `{"first": "<RFC 3339>", "last": "<RFC 3339>", "first_unix_micros": n,
/// "last_unix_micros": n}`; the micros are what is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallWindow {
    pub first: SystemTime,
    pub last: SystemTime,
}

impl CallWindow {
    /// `last - first` (zero after a single call).
    pub fn span(&self) -> Duration {
        self.last.duration_since(self.first).unwrap_or_default()
    }
}

fn unix_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_unix_micros(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

#[derive(Serialize, Deserialize)]
struct CallWindowJson {
    #[serde(default, skip_deserializing)]
    first: String,
    #[serde(default, skip_deserializing)]
    last: String,
    first_unix_micros: u64,
    last_unix_micros: u64,
}

impl Serialize for CallWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CallWindowJson {
            first: crate::ids::iso8601(self.first),
            last: crate::ids::iso8601(self.last),
            first_unix_micros: unix_micros(self.first),
            last_unix_micros: unix_micros(self.last),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CallWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = CallWindowJson::deserialize(deserializer)?;
        Ok(CallWindow {
            first: from_unix_micros(json.first_unix_micros),
            last: from_unix_micros(json.last_unix_micros),
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateCounts {
    pub created: u64,
    pub returned_existing: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateCounts {
    pub updated: u64,
    pub returned_existing: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultCounts {
    pub throttled: u64,
    pub server_errors: u64,
    /// `ConflictException` injected by `conflict_rate`.
    pub conflicts: u64,
    pub commit_then_fail: u64,
    pub commit_then_drop: u64,
}

impl Counters {
    /// Calls of `operation` (0 if never called).
    pub fn calls(&self, operation: &str) -> u64 {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    /// New resources made by `operation`.
    pub fn created(&self, operation: &str) -> u64 {
        self.creates.get(operation).map_or(0, |c| c.created)
    }

    /// Calls of `operation` (a create or an update) answered with the response of an earlier
    /// call (idempotent replay).
    pub fn returned_existing(&self, operation: &str) -> u64 {
        self.creates
            .get(operation)
            .map_or(0, |c| c.returned_existing)
            + self
                .updates
                .get(operation)
                .map_or(0, |u| u.returned_existing)
    }

    /// Calls of the update `operation` that changed a resource.
    pub fn updated(&self, operation: &str) -> u64 {
        self.updates.get(operation).map_or(0, |u| u.updated)
    }

    /// Faults injected into `operation`.
    pub fn faults(&self, operation: &str) -> FaultCounts {
        self.faults.get(operation).copied().unwrap_or_default()
    }

    /// Calls of `operation` refused by a request-rate quota (not the injected throttling of
    /// [`FaultCounts::throttled`]).
    pub fn throttled(&self, operation: &str) -> u64 {
        self.throttled.get(operation).copied().unwrap_or(0)
    }

    /// When the first and the last call of `operation` arrived (`None` if never called):
    /// `calls(op)` calls in `last - first` give the achieved rate.
    pub fn window(&self, operation: &str) -> Option<(SystemTime, SystemTime)> {
        self.windows.get(operation).map(|w| (w.first, w.last))
    }

    pub(crate) fn count_call(&mut self, operation: &str) {
        *self.calls.entry(operation.to_string()).or_default() += 1;
        // kept to the microsecond, so a snapshot read back from JSON is equal
        let now = from_unix_micros(unix_micros(SystemTime::now()));
        self.windows
            .entry(operation.to_string())
            .and_modify(|w| w.last = w.last.max(now))
            .or_insert(CallWindow {
                first: now,
                last: now,
            });
    }

    pub(crate) fn count_throttled(&mut self, operation: &str) {
        *self.throttled.entry(operation.to_string()).or_default() += 1;
    }

    pub(crate) fn count_create(&mut self, operation: &str, created: bool) {
        let c = self.creates.entry(operation.to_string()).or_default();
        if created {
            c.created += 1;
        } else {
            c.returned_existing += 1;
        }
    }

    pub(crate) fn count_update(&mut self, operation: &str, updated: bool) {
        let u = self.updates.entry(operation.to_string()).or_default();
        if updated {
            u.updated += 1;
        } else {
            u.returned_existing += 1;
        }
    }

    pub(crate) fn fault_counts(&mut self, operation: &str) -> &mut FaultCounts {
        self.faults.entry(operation.to_string()).or_default()
    }
}
