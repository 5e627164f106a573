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
    pub org_instance_arn: Option<String>,
    pub org_instance_region: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let seconds = |name: &str, default: u64| -> Result<Duration, String> {
            match get(name) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| format!("{name} must be a whole number of seconds, got {v:?}")),
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
            },
            member_role_name: get("MEMBER_ROLE_NAME")
                .unwrap_or_else(|| "IdentityOnboardingMemberRole".into()),
            org_instance_arn: get("ORG_INSTANCE_ARN"),
            org_instance_region: get("ORG_INSTANCE_REGION"),
        })
    }

    /// The organization instance, which the approval identity source step requires.
    pub fn require_org_instance(&self) -> Result<&str, String> {
        self.org_instance_arn.as_deref().ok_or_else(|| {
            "ORG_INSTANCE_ARN is required: the organization instance of IAM Identity Center".into()
        })
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
    }
}
