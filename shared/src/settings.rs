//! Function configuration from environment variables (documented in the README and set by
//! template.yaml). A missing or malformed variable stops the function at init with a message
//! naming it, rather than failing every event later.

use std::time::Duration;

use crate::engine::EngineSettings;
use crate::events::Accept;

#[derive(Clone, Debug)]
pub struct Settings {
    pub ledger_table: String,
    pub event_bus: String,
    pub accept: Accept,
    pub engine: EngineSettings,
    pub member_role_name: String,
    /// The partition of the function's own account (`aws`, `aws-cn`, `aws-us-gov`): member
    /// role ARNs are built in it.
    pub partition: String,
    pub org_instance_arn: Option<String>,
    pub org_instance_region: Option<String>,
    /// The organization's management account (`MANAGEMENT_ACCOUNT_ID`; template.yaml passes
    /// the stack's own account, which must be the management account): AWS never creates an
    /// account instance there, so the instance step refuses it before any call.
    pub management_account_id: Option<String>,
    /// Where Multi-party approval is called: it exists only in us-east-1 (in the `aws`
    /// partition), whatever Region the stack runs in.
    pub approval_region: String,
    /// The reconciler's schedule (`RECONCILE_INTERVAL_MINUTES`, default 15).
    pub reconcile_interval: Duration,
    /// Whether the drift audit repairs what it finds (`REPAIR_DRIFT`, default false).
    pub repair_drift: bool,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // Seconds, decimals allowed: tests compress the hour-long waits into seconds.
        let seconds = |name: &str, default: u64| -> Result<Duration, String> {
            match get(name) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("{name} must be a number of seconds, got {v:?}")),
            }
        };
        let defaults = Accept::default();
        Ok(Self {
            ledger_table: get("LEDGER_TABLE")
                .ok_or("LEDGER_TABLE is required: the ledger table's name")?,
            event_bus: get("EVENT_BUS_NAME").unwrap_or_else(|| "default".into()),
            accept: Accept {
                source: get("EVENT_SOURCE").unwrap_or(defaults.source),
                detail_type: get("REQUEST_DETAIL_TYPE").unwrap_or(defaults.detail_type),
            },
            engine: EngineSettings {
                lease: seconds("LEASE_SECONDS", 120)?,
                ready_wait: seconds("READY_WAIT_SECONDS", 20)?,
                member_role_grace: seconds("MEMBER_ROLE_GRACE_SECONDS", 2 * 3600)?,
                retry_base: seconds("RETRY_BASE_SECONDS", 60)?,
                retry_max: seconds("RETRY_MAX_SECONDS", 1800)?,
            },
            member_role_name: get("MEMBER_ROLE_NAME")
                .unwrap_or_else(|| "IdentityOnboardingMemberRole".into()),
            partition: get("PARTITION")
                .unwrap_or_else(|| partition_of(get("AWS_REGION").as_deref().unwrap_or("")).into()),
            org_instance_arn: get("ORG_INSTANCE_ARN"),
            org_instance_region: get("ORG_INSTANCE_REGION"),
            management_account_id: match get("MANAGEMENT_ACCOUNT_ID") {
                None => None,
                Some(v) if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) => Some(v),
                Some(v) => {
                    return Err(format!(
                        "MANAGEMENT_ACCOUNT_ID must be a 12-digit account id, got {v:?}"
                    ))
                }
            },
            approval_region: get("APPROVAL_REGION").unwrap_or_else(|| "us-east-1".into()),
            reconcile_interval: match get("RECONCILE_INTERVAL_MINUTES") {
                None => Duration::from_secs(15 * 60),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|m| (1..=1440).contains(m))
                    .map(|m| Duration::from_secs(m * 60))
                    .ok_or_else(|| {
                        format!("RECONCILE_INTERVAL_MINUTES must be 1-1440 minutes, got {v:?}")
                    })?,
            },
            repair_drift: match get("REPAIR_DRIFT").as_deref().map(str::trim) {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(format!("REPAIR_DRIFT must be true or false, got {other:?}"))
                }
            },
        })
    }

    /// The organization instance, which the approval identity source step requires.
    pub fn require_org_instance(&self) -> Result<&str, String> {
        self.org_instance_arn.as_deref().ok_or_else(|| {
            "ORG_INSTANCE_ARN is required: the organization instance of IAM Identity Center".into()
        })
    }
}

/// The partition a Region belongs to (when `PARTITION` is not set).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_and_the_table_is_required() {
        let err = settings(&[]).unwrap_err();
        assert!(err.contains("LEDGER_TABLE"), "{err}");
        let s = settings(&[("LEDGER_TABLE", "ledger")]).unwrap();
        assert_eq!(s.event_bus, "default");
        assert_eq!(s.accept.source, "identity-onboarding");
        assert_eq!(s.engine.lease, Duration::from_secs(120));
        assert_eq!(s.member_role_name, "IdentityOnboardingMemberRole");
        assert!(s
            .require_org_instance()
            .unwrap_err()
            .contains("ORG_INSTANCE_ARN"));
    }

    #[test]
    fn malformed_numbers_are_named() {
        let err = settings(&[("LEDGER_TABLE", "t"), ("LEASE_SECONDS", "soon")]).unwrap_err();
        assert!(
            err.contains("LEASE_SECONDS") && err.contains("soon"),
            "{err}"
        );
        let err = settings(&[("LEDGER_TABLE", "t"), ("RETRY_BASE_SECONDS", "-1")]).unwrap_err();
        assert!(err.contains("RETRY_BASE_SECONDS"), "{err}");
    }

    #[test]
    fn waits_compress_and_regions_follow_the_partition() {
        let s = settings(&[
            ("LEDGER_TABLE", "t"),
            ("MEMBER_ROLE_GRACE_SECONDS", "2.5"),
            ("AWS_REGION", "cn-north-1"),
        ])
        .unwrap();
        assert_eq!(s.engine.member_role_grace, Duration::from_millis(2500));
        assert_eq!(s.engine.retry_base, Duration::from_secs(60));
        assert_eq!(s.partition, "aws-cn");
        assert_eq!(s.approval_region, "us-east-1");
        let s = settings(&[("LEDGER_TABLE", "t"), ("PARTITION", "aws-us-gov")]).unwrap();
        assert_eq!(s.partition, "aws-us-gov");
        assert!(!s.repair_drift);
        assert_eq!(s.reconcile_interval, Duration::from_secs(900));
        let err = settings(&[("LEDGER_TABLE", "t"), ("REPAIR_DRIFT", "yes")]).unwrap_err();
        assert!(err.contains("REPAIR_DRIFT"), "{err}");
        assert_eq!(s.management_account_id, None);
        assert_eq!(s.engine.member_role_grace, Duration::from_secs(7200));
    }

    #[test]
    fn the_management_account_is_an_account_id() {
        let s = settings(&[
            ("LEDGER_TABLE", "t"),
            ("MANAGEMENT_ACCOUNT_ID", "111111111111"),
        ]);
        assert_eq!(
            s.unwrap().management_account_id.as_deref(),
            Some("111111111111")
        );
        let err =
            settings(&[("LEDGER_TABLE", "t"), ("MANAGEMENT_ACCOUNT_ID", "o-abc")]).unwrap_err();
        assert!(err.contains("MANAGEMENT_ACCOUNT_ID"), "{err}");
    }
}
