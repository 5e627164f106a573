//! Request-rate quotas: a token bucket per operation, metered per calling account, per
//! organization or once for everyone. A call finding its bucket empty is answered with the
//! service's throttling error and does nothing.
//!
//! [`QuotaConfig::documented`] holds the defaults: the services' documented rates where AWS
//! publishes one, conservative assumptions elsewhere (see the README's "Quotas" section).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Who shares a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QuotaScope {
    /// One bucket per calling account and Region: the account whose credentials sign the
    /// call (an assumed role's account, else the management account). What AWS does for
    /// calls made in an account: SSO Admin instance operations, WorkSpaces Web, STS.
    #[default]
    #[serde(alias = "account")]
    Account,
    /// One bucket per organization (its management account) and Region, whoever calls:
    /// the organization's calls, e.g. Multi-party approval.
    #[serde(alias = "organization")]
    Organization,
    /// One bucket for every caller and Region.
    #[serde(alias = "global")]
    Global,
}

/// A token bucket: it holds at most `burst` calls and refills at `rate_per_second`; a call
/// takes one token or is throttled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaRule {
    /// Sustained calls per second (finite, `>= 0`; 0 never refills: exactly `burst` calls
    /// per bucket, handy in tests).
    pub rate_per_second: f64,
    /// Bucket size: calls that may arrive at once after a quiet period (`>= 1`). Buckets
    /// start full.
    pub burst: u32,
    /// Who shares a bucket (default `Account`).
    #[serde(default)]
    pub scope: QuotaScope,
}

impl QuotaRule {
    pub fn new(rate_per_second: f64, burst: u32, scope: QuotaScope) -> Self {
        QuotaRule {
            rate_per_second,
            burst,
            scope,
        }
    }

    /// A bucket per calling account.
    pub fn per_account(rate_per_second: f64, burst: u32) -> Self {
        QuotaRule::new(rate_per_second, burst, QuotaScope::Account)
    }

    /// One bucket for the organization.
    pub fn per_organization(rate_per_second: f64, burst: u32) -> Self {
        QuotaRule::new(rate_per_second, burst, QuotaScope::Organization)
    }

    /// One bucket for everyone.
    pub fn global(rate_per_second: f64, burst: u32) -> Self {
        QuotaRule::new(rate_per_second, burst, QuotaScope::Global)
    }
}

/// Request-rate quotas. `rules` is keyed by operation name (`CreateInstance`,
/// `AssumeRole`, ...) or `"*"` for every operation without its own rule; every operation
/// has its own buckets either way. `TagResource`, `UntagResource` and
/// `ListTagsForResource` exist in SSO Admin and WorkSpaces Web: one rule covers both, but
/// each service has its own buckets.
///
/// In JSON it is `{"rules": {...}}`, or the string `"documented"` for
/// [`QuotaConfig::documented`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QuotaConfig {
    pub rules: BTreeMap<String, QuotaRule>,
}

/// Where a default figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    /// AWS publishes the rate.
    Documented,
    /// AWS publishes none: a conservative assumption.
    Assumed,
}

/// One row of the default table (the README's "Quotas" table shows the same rows).
pub(crate) struct DefaultRow {
    pub operation: &'static str,
    pub rate_per_second: f64,
    pub burst: u32,
    pub scope: QuotaScope,
    /// Shown in the README's table (a unit test keeps them equal).
    #[cfg_attr(not(test), allow(dead_code))]
    pub basis: Basis,
}

const fn row(
    operation: &'static str,
    rate_per_second: f64,
    burst: u32,
    scope: QuotaScope,
    basis: Basis,
) -> DefaultRow {
    DefaultRow {
        operation,
        rate_per_second,
        burst,
        scope,
        basis,
    }
}

use Basis::{Assumed, Documented};
use QuotaScope::{Account, Organization};

/// The defaults. SSO Admin: "IAM Identity Center APIs have a collective throttle maximum
/// of 20 transactions per second (TPS)" (IAM Identity Center user guide, quotas, throttle
/// limits); its burst is not published (one second's worth assumed). WorkSpaces Web, MPA
/// and STS publish no API rates: assumed. The tagging operations are shared with
/// WorkSpaces Web and take its stricter assumed figures.
pub(crate) const DEFAULTS: &[DefaultRow] = &[
    row("CreateInstance", 20.0, 20, Account, Documented),
    row("DescribeInstance", 20.0, 20, Account, Documented),
    row("ListInstances", 20.0, 20, Account, Documented),
    row("DeleteInstance", 20.0, 20, Account, Documented),
    row("UpdateInstance", 20.0, 20, Account, Documented),
    row("TagResource", 2.0, 5, Account, Assumed),
    row("UntagResource", 2.0, 5, Account, Assumed),
    row("ListTagsForResource", 5.0, 10, Account, Assumed),
    row("CreatePortal", 2.0, 5, Account, Assumed),
    row("GetPortal", 5.0, 10, Account, Assumed),
    row("CreateIdentityProvider", 2.0, 5, Account, Assumed),
    row("GetIdentityProvider", 5.0, 10, Account, Assumed),
    row("ListIdentityProviders", 5.0, 10, Account, Assumed),
    row("UpdateIdentityProvider", 2.0, 5, Account, Assumed),
    row("DeleteIdentityProvider", 2.0, 5, Account, Assumed),
    row("CreateIdentitySource", 1.0, 2, Organization, Assumed),
    row("GetIdentitySource", 5.0, 10, Organization, Assumed),
    row("ListIdentitySources", 5.0, 10, Organization, Assumed),
    row("DeleteIdentitySource", 1.0, 2, Organization, Assumed),
    row("AssumeRole", 100.0, 100, Account, Assumed),
    row("GetCallerIdentity", 100.0, 100, Account, Assumed),
];

/// Every operation the emulator serves, of every service.
pub(crate) fn served_operations() -> impl Iterator<Item = &'static str> {
    crate::smithy::SSO_ADMIN_OPERATIONS
        .iter()
        .chain(crate::smithy::MPA_OPERATIONS)
        .chain(crate::smithy::WORKSPACES_WEB_OPERATIONS)
        .chain(crate::sts::OPERATIONS)
        .copied()
}

impl QuotaConfig {
    /// No rules (nothing is throttled).
    pub fn new() -> Self {
        QuotaConfig::default()
    }

    /// Builder: set the rule of `operation` (or `"*"`).
    pub fn with_rule(mut self, operation: impl Into<String>, rule: QuotaRule) -> Self {
        self.rules.insert(operation.into(), rule);
        self
    }

    /// The stated defaults, a rule for every served operation: IAM Identity Center's
    /// documented 20 requests per second per account for SSO Admin; conservative assumed
    /// figures for WorkSpaces Web, Multi-party approval (per organization) and STS (per
    /// calling account), which publish no API rates. The README's "Quotas" table lists
    /// them with their sources.
    pub fn documented() -> Self {
        QuotaConfig {
            rules: DEFAULTS
                .iter()
                .map(|d| {
                    (
                        d.operation.to_string(),
                        QuotaRule::new(d.rate_per_second, d.burst, d.scope),
                    )
                })
                .collect(),
        }
    }

    /// Every rule's rate times `scale`, bursts unchanged (scaled bursts of 20 calls would
    /// throttle an instance's few readiness checks, which no real quota does). A run on a
    /// small machine meets the quotas, not its own limits, at a tenth of them.
    pub fn scaled(mut self, scale: f64) -> Self {
        for rule in self.rules.values_mut() {
            rule.rate_per_second *= scale;
        }
        self
    }

    /// The rule covering `operation`: its own, else `"*"`.
    pub fn rule(&self, operation: &str) -> Option<&QuotaRule> {
        self.rules.get(operation).or_else(|| self.rules.get("*"))
    }

    /// Refuse what would not behave as written: unknown operation names (a typo would
    /// silently meter nothing), rates that are negative or not finite, buckets of 0.
    pub fn validate(&self) -> Result<(), String> {
        for (op, rule) in &self.rules {
            if op != "*" && !served_operations().any(|o| o == op.as_str()) {
                return Err(format!(
                    "rule {op:?}: not an operation of the emulator (use an operation name \
                     such as \"CreateInstance\", or \"*\")"
                ));
            }
            if !rule.rate_per_second.is_finite() || rule.rate_per_second < 0.0 {
                return Err(format!(
                    "rule {op}: rate_per_second must be a finite number >= 0"
                ));
            }
            if rule.burst == 0 {
                return Err(format!("rule {op}: burst must be at least 1"));
            }
        }
        Ok(())
    }
}

/// `{"rules": {...}}` or `"documented"`.
impl<'de> Deserialize<'de> for QuotaConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Rules {
            #[serde(default)]
            rules: BTreeMap<String, QuotaRule>,
        }

        struct QuotaVisitor;

        impl<'de> Visitor<'de> for QuotaVisitor {
            type Value = QuotaConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"documented\" or an object {\"rules\": {operation: rule}}")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<QuotaConfig, E> {
                if v == "documented" {
                    Ok(QuotaConfig::documented())
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<QuotaConfig, A::Error> {
                let rules = Rules::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(QuotaConfig { rules: rules.rules })
            }
        }

        deserializer.deserialize_any(QuotaVisitor)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// `(service, operation, metered party, Region)`; the party and Region are empty for
/// `Global`.
type BucketKey = (&'static str, String, String, String);

/// The quotas in force and their buckets.
#[derive(Debug, Default)]
pub(crate) struct QuotaState {
    config: Option<QuotaConfig>,
    buckets: HashMap<BucketKey, Bucket>,
}

/// Who a call is metered against.
pub(crate) struct Metered<'a> {
    /// `sso`, `mpa`, `workspaces-web`, `sts`: each service has its own buckets.
    pub service: &'static str,
    pub operation: &'a str,
    /// The calling account.
    pub account: &'a str,
    /// The organization's management account.
    pub organization: &'a str,
    pub region: &'a str,
}

impl QuotaState {
    /// Fresh (full) buckets under `config`.
    pub(crate) fn new(config: Option<QuotaConfig>) -> Self {
        QuotaState {
            config,
            buckets: HashMap::new(),
        }
    }

    pub(crate) fn config(&self) -> Option<&QuotaConfig> {
        self.config.as_ref()
    }

    pub(crate) fn active(&self) -> bool {
        self.config.as_ref().is_some_and(|c| !c.rules.is_empty())
    }

    /// Take a token for the call at `now`: `true` if it may proceed, `false` if throttled.
    /// Values `validate` refuses still behave: a negative or non-finite rate never refills,
    /// a bucket of 0 throttles every call.
    pub(crate) fn admit(&mut self, call: &Metered<'_>, now: Instant) -> bool {
        let Some(rule) = self.config.as_ref().and_then(|c| c.rule(call.operation)) else {
            return true;
        };
        let (party, region) = match rule.scope {
            QuotaScope::Account => (call.account, call.region),
            QuotaScope::Organization => (call.organization, call.region),
            QuotaScope::Global => ("", ""),
        };
        let rate = if rule.rate_per_second.is_finite() && rule.rate_per_second > 0.0 {
            rule.rate_per_second
        } else {
            0.0
        };
        let burst = f64::from(rule.burst);
        let key = (
            call.service,
            call.operation.to_string(),
            party.to_string(),
            region.to_string(),
        );
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call<'a>(operation: &'a str, account: &'a str, region: &'a str) -> Metered<'a> {
        Metered {
            service: "sso",
            operation,
            account,
            organization: "111111111111",
            region,
        }
    }

    #[test]
    fn a_bucket_admits_its_burst_then_refills_at_the_rate_up_to_the_burst() {
        let config = QuotaConfig::new().with_rule("ListInstances", QuotaRule::per_account(2.0, 3));
        let mut state = QuotaState::new(Some(config));
        let t0 = Instant::now();
        let c = call("ListInstances", "222222222222", "us-east-1");
        let got: Vec<bool> = (0..4).map(|_| state.admit(&c, t0)).collect();
        assert_eq!(got, [true, true, true, false]);
        // 0.5 s at 2/s: one token
        let t1 = t0 + Duration::from_millis(500);
        assert!(state.admit(&c, t1));
        assert!(!state.admit(&c, t1));
        // a long pause fills the bucket to its burst, no further
        let t2 = t1 + Duration::from_secs(60);
        let got: Vec<bool> = (0..4).map(|_| state.admit(&c, t2)).collect();
        assert_eq!(got, [true, true, true, false]);
        // other operations have no rule: never throttled
        let other = call("DescribeInstance", "222222222222", "us-east-1");
        assert!((0..100).all(|_| state.admit(&other, t2)));
    }

    #[test]
    fn scopes_decide_who_shares_a_bucket() {
        let t = Instant::now();
        let a = call("X", "222222222222", "us-east-1");
        let b = call("X", "333333333333", "us-east-1");
        let a_elsewhere = call("X", "222222222222", "eu-west-1");
        for (scope, b_admitted, region_admitted) in [
            (QuotaScope::Account, true, true),
            (QuotaScope::Organization, false, true),
            (QuotaScope::Global, false, false),
        ] {
            let mut state = QuotaState::new(Some(
                QuotaConfig::new().with_rule("*", QuotaRule::new(0.0, 1, scope)),
            ));
            assert!(state.admit(&a, t), "{scope:?}");
            assert_eq!(state.admit(&b, t), b_admitted, "{scope:?}");
            assert_eq!(state.admit(&a_elsewhere, t), region_admitted, "{scope:?}");
        }
    }

    #[test]
    fn services_sharing_an_operation_name_have_their_own_buckets() {
        let mut state = QuotaState::new(Some(
            QuotaConfig::new().with_rule("TagResource", QuotaRule::per_account(0.0, 1)),
        ));
        let t = Instant::now();
        let sso = call("TagResource", "222222222222", "us-east-1");
        let web = Metered {
            service: "workspaces-web",
            ..call("TagResource", "222222222222", "us-east-1")
        };
        assert!(state.admit(&sso, t));
        assert!(!state.admit(&sso, t));
        assert!(state.admit(&web, t));
        assert!(!state.admit(&web, t));
    }

    #[test]
    fn documented_defaults_cover_every_served_operation_and_validate() {
        let documented = QuotaConfig::documented();
        documented.validate().expect("valid");
        for op in served_operations() {
            assert!(documented.rules.contains_key(op), "{op} has no default");
        }
        assert_eq!(
            documented.rules.len(),
            DEFAULTS.len(),
            "an operation listed twice"
        );
        assert_eq!(
            documented.rules["CreateIdentitySource"].scope,
            QuotaScope::Organization
        );
        assert_eq!(documented.rules["CreateInstance"].rate_per_second, 20.0);
    }

    /// The README's table shows exactly these figures.
    #[test]
    fn the_readme_table_matches_the_defaults() {
        let readme = include_str!("../README.md");
        for d in DEFAULTS {
            let scope = match d.scope {
                QuotaScope::Account => "account",
                QuotaScope::Organization => "organization",
                QuotaScope::Global => "global",
            };
            let basis = match d.basis {
                Basis::Documented => "documented",
                Basis::Assumed => "assumed",
            };
            let row = format!(
                "| `{}` | {} | {} | {scope} | {basis}",
                d.operation, d.rate_per_second, d.burst
            );
            assert!(readme.contains(&row), "README lacks the row {row:?}");
        }
    }

    #[test]
    fn json_forms_and_refusals() {
        let parsed: QuotaConfig = serde_json::from_str(
            r#"{"rules": {"CreateInstance": {"rate_per_second": 1.5, "burst": 3},
                          "*": {"rate_per_second": 10, "burst": 10, "scope": "Global"},
                          "CreateIdentitySource": {"rate_per_second": 1, "burst": 1, "scope": "organization"}}}"#,
        )
        .unwrap();
        assert_eq!(
            parsed.rules["CreateInstance"],
            QuotaRule::per_account(1.5, 3)
        );
        assert_eq!(
            parsed.rule("AssumeRole"),
            Some(&QuotaRule::global(10.0, 10))
        );
        assert_eq!(
            parsed.rules["CreateIdentitySource"].scope,
            QuotaScope::Organization
        );
        parsed.validate().unwrap();
        let documented: QuotaConfig = serde_json::from_str(r#""documented""#).unwrap();
        assert_eq!(documented, QuotaConfig::documented());
        // serializes as rules and reads back the same
        let text = serde_json::to_string(&documented).unwrap();
        assert_eq!(
            serde_json::from_str::<QuotaConfig>(&text).unwrap(),
            documented
        );

        for bad in [
            r#""generous""#,
            r#"{"rule": {}}"#,
            r#"{"rules": {"X": {"rate_per_second": 1}}}"#,
            r#"{"rules": {"X": {"rate_per_second": 1, "burst": 1, "extra": 1}}}"#,
            r#"{"rules": {"X": {"rate_per_second": 1, "burst": 1, "scope": "Planet"}}}"#,
            r#"{"rules": {"X": {"rate_per_second": 1, "burst": -1}}}"#,
        ] {
            assert!(serde_json::from_str::<QuotaConfig>(bad).is_err(), "{bad}");
        }
        for (rule, needle) in [
            (
                ("CreateInstances", QuotaRule::per_account(1.0, 1)),
                "CreateInstances",
            ),
            (
                ("CreateInstance", QuotaRule::per_account(-1.0, 1)),
                "rate_per_second",
            ),
            (
                ("CreateInstance", QuotaRule::per_account(f64::NAN, 1)),
                "rate_per_second",
            ),
            (("CreateInstance", QuotaRule::per_account(1.0, 0)), "burst"),
        ] {
            let err = QuotaConfig::new()
                .with_rule(rule.0, rule.1)
                .validate()
                .unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
