//! Call and resource counters, readable in-process and at `GET /_emulator/counters`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

    pub(crate) fn count_call(&mut self, operation: &str) {
        *self.calls.entry(operation.to_string()).or_default() += 1;
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
