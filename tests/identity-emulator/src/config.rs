//! The organization the emulator starts with: accounts, portals, roles that refuse
//! assumption or appear late, accounts whose instance creation fails, activation delays.
//! Deserialized from the `--config` JSON file; [`Config::default`] is the default organization.

use serde::{Deserialize, Serialize};

/// The whole emulated organization. Every field has a default, so `{}` is a valid file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Region of the organization instance and the default Region of new resources.
    pub region: String,
    /// The organization's management account; long-term credentials act in it.
    pub management_account_id: String,
    /// The organization instance of IAM Identity Center, owned by the management account.
    pub organization_instance: OrganizationInstance,
    /// How long a new account instance stays `CREATE_IN_PROGRESS`.
    pub instance_activation_ms: u64,
    /// How long a new MPA identity source stays `CREATING`.
    pub identity_source_activation_ms: u64,
    /// Accounts with special behaviour. Any other 12-digit account can be assumed into.
    pub accounts: Vec<AccountConfig>,
}

/// The seeded organization instance (always `ACTIVE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrganizationInstance {
    pub instance_arn: String,
    pub identity_store_id: String,
    pub name: String,
}

/// One member (or the management) account with special behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub account_id: String,
    /// WorkSpaces Web portals that exist from the start (fixed ARNs, e.g. for the demo).
    #[serde(default)]
    pub portals: Vec<PortalConfig>,
    /// Role names whose assumption is refused with `AccessDenied`; `"*"` refuses all.
    #[serde(default)]
    pub refused_roles: Vec<String>,
    /// When set, a `CreateInstance` in this account ends in `CREATE_FAILED` with this reason.
    #[serde(default)]
    pub instance_failure: Option<String>,
    /// The account's member roles do not exist yet: every `AssumeRole` into the account is
    /// refused with `AccessDenied` until this many milliseconds after the first attempt.
    #[serde(default)]
    pub role_appears_after_ms: Option<u64>,
}

/// A seeded portal: `arn:aws:workspaces-web:<region>:<account>:portal/<uuid>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    pub portal_arn: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region: "us-east-1".to_string(),
            management_account_id: "111111111111".to_string(),
            organization_instance: OrganizationInstance::default(),
            instance_activation_ms: 300,
            identity_source_activation_ms: 300,
            accounts: Vec::new(),
        }
    }
}

impl Default for OrganizationInstance {
    fn default() -> Self {
        OrganizationInstance {
            instance_arn: "arn:aws:sso:::instance/ssoins-72230000a1b2c3d4".to_string(),
            identity_store_id: "d-9067000001".to_string(),
            name: "organization".to_string(),
        }
    }
}

impl AccountConfig {
    pub fn new(account_id: impl Into<String>) -> Self {
        AccountConfig {
            account_id: account_id.into(),
            portals: Vec::new(),
            refused_roles: Vec::new(),
            instance_failure: None,
            role_appears_after_ms: None,
        }
    }

    pub fn with_portal(mut self, portal_arn: impl Into<String>) -> Self {
        self.portals.push(PortalConfig {
            portal_arn: portal_arn.into(),
            display_name: None,
        });
        self
    }

    /// The account's roles appear `ms` milliseconds after the first `AssumeRole` into it
    /// (like a StackSet deploying the role minutes after the account is vended).
    pub fn role_appearing_after(mut self, ms: u64) -> Self {
        self.role_appears_after_ms = Some(ms);
        self
    }

    pub fn refusing_role(mut self, role_name: impl Into<String>) -> Self {
        self.refused_roles.push(role_name.into());
        self
    }

    pub fn failing_instance_creation(mut self, reason: impl Into<String>) -> Self {
        self.instance_failure = Some(reason.into());
        self
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Config {
    /// The organization instance ARN (what the MPA identity source must point at).
    pub fn organization_instance_arn(&self) -> &str {
        &self.organization_instance.instance_arn
    }

    /// Read and check a JSON config file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Config::from_json(&text)
    }

    /// Parse and check a JSON config.
    pub fn from_json(text: &str) -> Result<Config, String> {
        let config: Config =
            serde_json::from_str(text).map_err(|e| format!("invalid config: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Builder: add an account with special behaviour.
    pub fn with_account(mut self, account: AccountConfig) -> Self {
        self.accounts.push(account);
        self
    }

    pub(crate) fn account(&self, account_id: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.account_id == account_id)
    }

    /// Check ids and ARNs so the emulator never starts with state AWS could not have.
    pub fn validate(&self) -> Result<(), String> {
        if !is_account_id(&self.management_account_id) {
            return Err("management_account_id must be 12 digits".into());
        }
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(format!("region {:?} is not a Region name", self.region));
        }
        let arn = &self.organization_instance.instance_arn;
        if !crate::ids::is_instance_arn(arn) {
            return Err(format!(
                "organization_instance.instance_arn {arn:?} is not an instance ARN"
            ));
        }
        let store = &self.organization_instance.identity_store_id;
        if store.is_empty()
            || store.len() > 64
            || !store
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(
                "organization_instance.identity_store_id is not an identity store id".into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for account in &self.accounts {
            if !is_account_id(&account.account_id) {
                return Err(format!(
                    "account_id {:?} must be 12 digits",
                    account.account_id
                ));
            }
            if !seen.insert(account.account_id.as_str()) {
                return Err(format!("account {} listed twice", account.account_id));
            }
            for portal in &account.portals {
                match crate::ids::parse_portal_arn(&portal.portal_arn) {
                    Some((_, owner, _)) if owner == account.account_id => {}
                    _ => {
                        return Err(format!(
                            "portal_arn {:?} is not a portal ARN of account {}",
                            portal.portal_arn, account.account_id
                        ))
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default_organization() {
        let c = Config::from_json("{}").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.management_account_id, "111111111111");
        assert!(c
            .organization_instance_arn()
            .starts_with("arn:aws:sso:::instance/ssoins-"));
    }

    #[test]
    fn a_full_file_parses() {
        let c = Config::from_json(
            r#"{
              "region": "eu-west-1",
              "instance_activation_ms": 50,
              "accounts": [
                {"account_id": "222222222222",
                 "portals": [{"portal_arn": "arn:aws:workspaces-web:eu-west-1:222222222222:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b"}],
                 "refused_roles": ["Locked"],
                 "instance_failure": "quota"}
              ]
            }"#,
        )
        .unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.accounts[0].refused_roles, vec!["Locked".to_string()]);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(Config::from_json(r#"{"management_account_id": "12"}"#).is_err());
        assert!(Config::from_json(r#"{"unknown": 1}"#).is_err());
        let foreign_portal = r#"{"accounts": [{"account_id": "222222222222", "portals": [
            {"portal_arn": "arn:aws:workspaces-web:us-east-1:333333333333:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b"}]}]}"#;
        assert!(Config::from_json(foreign_portal).is_err());
    }
}
