//! Fault injection: throttling, server errors, conflicts of a write that has not propagated,
//! latency, and "commit then fail" (the resource is created but the response is lost), per
//! operation, from a seeded RNG.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Faults to inject. `rules` is keyed by operation name (`CreateInstance`, `AssumeRole`, ...)
/// or `"*"` for every operation without its own rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the RNG deciding which calls fail; the same seed and call order give the
    /// same faults.
    pub seed: u64,
    pub rules: BTreeMap<String, FaultRule>,
}

/// Rates are probabilities in `[0, 1]`; their sum should not exceed 1 (one draw per call
/// decides among them, in the order listed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// 429 `ThrottlingException`, nothing done.
    pub throttle_rate: f64,
    /// 500 `InternalServerException`, nothing done.
    pub server_error_rate: f64,
    /// 409 `ConflictException` ("a concurrent operation is in progress; retry"), nothing
    /// done: SSO Admin's documented "previous write did not propagate yet". Honoured for
    /// writes only (`Create*`, `Update*`, `Delete*`, `Tag*`, `Untag*` of SSO Admin, MPA and
    /// WorkSpaces Web); other operations ignore it.
    pub conflict_rate: f64,
    /// The operation runs (commits), then the client gets a 500 `InternalServerException`.
    pub commit_then_fail_rate: f64,
    /// The operation runs (commits), then the connection is dropped without a response.
    pub commit_then_drop_rate: f64,
    /// Added to every call the rule covers, before it runs.
    pub latency_ms: u64,
    /// Stop injecting (rates only, not latency) after this many faults from this rule.
    pub max_faults: Option<u64>,
}

impl FaultConfig {
    pub fn new(seed: u64) -> Self {
        FaultConfig {
            seed,
            rules: BTreeMap::new(),
        }
    }

    /// Builder: set the rule of `operation` (or `"*"`).
    pub fn with_rule(mut self, operation: impl Into<String>, rule: FaultRule) -> Self {
        self.rules.insert(operation.into(), rule);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        for (op, r) in &self.rules {
            let rates = [
                r.throttle_rate,
                r.server_error_rate,
                r.conflict_rate,
                r.commit_then_fail_rate,
                r.commit_then_drop_rate,
            ];
            if rates.iter().any(|x| !(0.0..=1.0).contains(x)) {
                return Err(format!("rule {op}: rates must be within [0, 1]"));
            }
            if rates.iter().sum::<f64>() > 1.0 + 1e-9 {
                return Err(format!("rule {op}: rates add up to more than 1"));
            }
        }
        Ok(())
    }
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    Throttle,
    ServerError,
    Conflict,
    CommitThenFail,
    CommitThenDrop,
}

#[derive(Debug)]
pub(crate) struct FaultState {
    config: FaultConfig,
    rng: StdRng,
    injected: BTreeMap<String, u64>,
}

impl Default for FaultState {
    fn default() -> Self {
        FaultState::new(FaultConfig::default())
    }
}

impl FaultState {
    pub(crate) fn new(config: FaultConfig) -> Self {
        FaultState {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            injected: BTreeMap::new(),
        }
    }

    pub(crate) fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// The latency the rule covering `operation` adds, without drawing a fault (for calls
    /// a quota throttles before any fault is decided).
    pub(crate) fn latency(&self, operation: &str) -> u64 {
        self.config
            .rules
            .get(operation)
            .or_else(|| self.config.rules.get("*"))
            .map_or(0, |r| r.latency_ms)
    }

    /// Decide the fault of one call of `operation` and the latency to add. `can_conflict`:
    /// the operation is a write that a `ConflictException` can answer.
    pub(crate) fn decide(&mut self, operation: &str, can_conflict: bool) -> (Fault, u64) {
        let key = if self.config.rules.contains_key(operation) {
            operation
        } else if self.config.rules.contains_key("*") {
            "*"
        } else {
            return (Fault::None, 0);
        };
        let Some(rule) = self.config.rules.get(key) else {
            return (Fault::None, 0);
        };
        let latency = rule.latency_ms;
        let used = self.injected.get(key).copied().unwrap_or(0);
        if rule.max_faults.is_some_and(|max| used >= max) {
            return (Fault::None, latency);
        }
        let draw: f64 = self.rng.gen();
        let mut edge = 0.0;
        let mut fault = Fault::None;
        for (rate, kind) in [
            (rule.throttle_rate, Fault::Throttle),
            (rule.server_error_rate, Fault::ServerError),
            (
                if can_conflict {
                    rule.conflict_rate
                } else {
                    0.0
                },
                Fault::Conflict,
            ),
            (rule.commit_then_fail_rate, Fault::CommitThenFail),
            (rule.commit_then_drop_rate, Fault::CommitThenDrop),
        ] {
            edge += rate;
            if draw < edge {
                fault = kind;
                break;
            }
        }
        if fault != Fault::None {
            *self.injected.entry(key.to_string()).or_default() += 1;
        }
        (fault, latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(seed: u64) -> Vec<Fault> {
        let config = FaultConfig::new(seed).with_rule(
            "*",
            FaultRule {
                throttle_rate: 0.3,
                server_error_rate: 0.2,
                commit_then_fail_rate: 0.1,
                ..FaultRule::default()
            },
        );
        let mut state = FaultState::new(config);
        (0..200)
            .map(|_| state.decide("CreateInstance", true).0)
            .collect()
    }

    #[test]
    fn same_seed_same_faults() {
        assert_eq!(sequence(7), sequence(7));
        assert_ne!(sequence(7), sequence(8));
        let s = sequence(7);
        let throttled = s.iter().filter(|f| **f == Fault::Throttle).count();
        assert!((30..=90).contains(&throttled), "{throttled}");
    }

    #[test]
    fn max_faults_limits_injection_and_specific_rules_win() {
        let config = FaultConfig::new(1)
            .with_rule(
                "CreateInstance",
                FaultRule {
                    throttle_rate: 1.0,
                    max_faults: Some(2),
                    ..FaultRule::default()
                },
            )
            .with_rule(
                "*",
                FaultRule {
                    latency_ms: 5,
                    ..FaultRule::default()
                },
            );
        let mut state = FaultState::new(config);
        let got: Vec<Fault> = (0..4)
            .map(|_| state.decide("CreateInstance", true).0)
            .collect();
        assert_eq!(
            got,
            vec![Fault::Throttle, Fault::Throttle, Fault::None, Fault::None]
        );
        assert_eq!(state.decide("DescribeInstance", false), (Fault::None, 5));
    }

    #[test]
    fn conflicts_only_hit_writes_and_a_zero_rate_keeps_old_sequences() {
        let config = FaultConfig::new(3).with_rule(
            "*",
            FaultRule {
                conflict_rate: 1.0,
                ..FaultRule::default()
            },
        );
        let mut state = FaultState::new(config);
        assert_eq!(state.decide("CreateInstance", true).0, Fault::Conflict);
        assert_eq!(state.decide("DescribeInstance", false).0, Fault::None);

        // with conflict_rate 0 the draws fall exactly as before the field existed
        let old = sequence(7);
        assert!(!old.contains(&Fault::Conflict));
        let rule = FaultRule {
            throttle_rate: 0.3,
            server_error_rate: 0.2,
            conflict_rate: 0.1,
            ..FaultRule::default()
        };
        let mut state = FaultState::new(FaultConfig::new(7).with_rule("*", rule));
        let with: Vec<Fault> = (0..200)
            .map(|_| state.decide("CreateInstance", true).0)
            .collect();
        let conflicts = with.iter().filter(|f| **f == Fault::Conflict).count();
        assert!((5..=40).contains(&conflicts), "{conflicts}");
        // throttles and server errors sit before conflicts in the draw: unchanged
        for (a, b) in old.iter().zip(&with) {
            if matches!(a, Fault::Throttle | Fault::ServerError) {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn invalid_rates_are_refused() {
        let bad = FaultConfig::new(0).with_rule(
            "*",
            FaultRule {
                throttle_rate: 0.8,
                server_error_rate: 0.8,
                ..FaultRule::default()
            },
        );
        assert!(bad.validate().is_err());
    }
}
