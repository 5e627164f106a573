//! The organization the emulator starts with: accounts, portals, roles that refuse
//! assumption or appear late, accounts whose instance creation fails, resources that exist
//! before the test starts, activation delays.
//! Deserialized from the `--config` JSON file; [`Config::default`] is the default organization.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::iam::PolicySet;
use crate::quotas::QuotaConfig;

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
    /// The organization instance's "account instances" setting. When false, `CreateInstance`
    /// in any member account is refused (`AccessDeniedException`).
    pub account_instances_allowed: bool,
    /// The organization instance lives in an opt-in Region (one disabled by default). AWS then
    /// blocks account instances whatever `account_instances_allowed` says: every
    /// `CreateInstance` in a member account is refused (`AccessDeniedException`; the
    /// message is inferred, see the README).
    pub organization_instance_in_opt_in_region: bool,
    /// Request-rate quotas (token buckets per operation). `None`, the default, throttles
    /// nothing; `"documented"` in JSON is [`QuotaConfig::documented`].
    pub quotas: Option<QuotaConfig>,
    /// Identity policies evaluated for every call (see the README's "IAM"). `None`, the
    /// default, allows everything (the emulator's own protocol tests). Placeholders other
    /// than `${AWS::AccountId}`, `${AWS::Partition}`, `${AWS::Region}` must be bound.
    pub iam: Option<PolicySet>,
    /// moto's URL: requests for services the emulator does not serve are authorized
    /// (when `iam` is set) and forwarded there unchanged.
    pub forward_url: Option<String>,
    /// Append what IAM evaluated to `$IAM_OBSERVED_DIR` (see the README's "IAM"): set by
    /// harnesses that enforce the shipped policies as they are, never by a test that edits
    /// them to provoke a denial, so the least-privilege check sees only real runs.
    pub record_observations: bool,
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
    /// With `instance_failure`: only the account's first this many `CreateInstance` calls end
    /// in `CREATE_FAILED`, the later ones succeed (none: every one fails).
    #[serde(default)]
    pub instance_failures: Option<u32>,
    /// The account's member roles do not exist yet: every `AssumeRole` into the account is
    /// refused with `AccessDenied` until this many milliseconds after the first attempt.
    #[serde(default)]
    pub role_appears_after_ms: Option<u64>,
    /// An account instance of IAM Identity Center the account owns from the start.
    #[serde(default)]
    pub instance: Option<SeededInstance>,
    /// The account is closed (SUSPENDED) from the start: every `AssumeRole` into it is
    /// refused with `AccessDenied`, as AWS refuses signing in to a suspended account. Set and
    /// cleared at run time with `POST /_emulator/accounts/<id>/close` and `.../reopen`.
    #[serde(default)]
    pub closed: bool,
}

/// A seeded portal: `arn:aws:workspaces-web:<region>:<account>:portal/<uuid>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    pub portal_arn: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// `Standard` (default: it takes identity providers) or `IAM_Identity_Center` (its users
    /// come from IAM Identity Center; `CreateIdentityProvider` on it is refused).
    #[serde(default = "standard")]
    pub authentication_type: String,
    /// Identity providers on the portal from the start.
    #[serde(default)]
    pub identity_providers: Vec<SeededProvider>,
}

/// An account instance that exists before the test starts. Its status never changes (a
/// `CREATE_IN_PROGRESS` one stays in progress); its ARN and identity store id are generated
/// at start and kept across `reset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeededInstance {
    #[serde(default)]
    pub name: Option<String>,
    /// `ACTIVE` (default), `CREATE_IN_PROGRESS`, `CREATE_FAILED` or `DELETE_IN_PROGRESS`.
    #[serde(default = "active_status")]
    pub status: String,
    /// Only with `CREATE_FAILED`.
    #[serde(default)]
    pub status_reason: Option<String>,
}

fn standard() -> String {
    STANDARD.to_string()
}

/// The values of `AuthenticationType` in the WorkSpaces Web model.
pub(crate) const STANDARD: &str = "Standard";
pub(crate) const IAM_IDENTITY_CENTER: &str = "IAM_Identity_Center";

fn active_status() -> String {
    "ACTIVE".to_string()
}

/// The statuses of `InstanceStatus` in the SSO Admin model.
const INSTANCE_STATUSES: &[&str] = &[
    "ACTIVE",
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "DELETE_IN_PROGRESS",
];

impl SeededInstance {
    /// An `ACTIVE` instance, optionally named.
    pub fn active(name: Option<&str>) -> Self {
        SeededInstance {
            name: name.map(str::to_string),
            status: active_status(),
            status_reason: None,
        }
    }
}

/// An identity provider that exists on a seeded portal from the start. `details` are checked
/// like those of `CreateIdentityProvider` and never shown in errors or the state dump.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeededProvider {
    pub name: String,
    pub provider_type: String,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

/// Details may hold secrets: shown as their keys only.
impl std::fmt::Debug for SeededProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeededProvider")
            .field("name", &self.name)
            .field("provider_type", &self.provider_type)
            .field("detail_keys", &self.details.keys().collect::<Vec<_>>())
            .finish()
    }
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
            account_instances_allowed: true,
            organization_instance_in_opt_in_region: false,
            quotas: None,
            iam: None,
            forward_url: None,
            record_observations: false,
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
            instance_failures: None,
            role_appears_after_ms: None,
            instance: None,
            closed: false,
        }
    }

    /// The account is closed from the start (its roles refuse `AssumeRole`).
    pub fn closed(mut self) -> Self {
        self.closed = true;
        self
    }

    pub fn with_portal(mut self, portal_arn: impl Into<String>) -> Self {
        self.portals.push(PortalConfig {
            portal_arn: portal_arn.into(),
            display_name: None,
            authentication_type: standard(),
            identity_providers: Vec::new(),
        });
        self
    }

    /// A portal whose users come from IAM Identity Center (`authenticationType`
    /// `IAM_Identity_Center`): it takes no identity provider.
    pub fn with_identity_center_portal(mut self, portal_arn: impl Into<String>) -> Self {
        self = self.with_portal(portal_arn);
        if let Some(portal) = self.portals.last_mut() {
            portal.authentication_type = IAM_IDENTITY_CENTER.to_string();
        }
        self
    }

    /// The account's roles appear `ms` milliseconds after the first `AssumeRole` into it
    /// (like a StackSet deploying the role minutes after the account is vended).
    pub fn role_appearing_after(mut self, ms: u64) -> Self {
        self.role_appears_after_ms = Some(ms);
        self
    }

    /// The account owns this account instance from the start.
    pub fn with_instance(mut self, instance: SeededInstance) -> Self {
        self.instance = Some(instance);
        self
    }

    /// `provider` exists on the portal `portal_arn` from the start (the portal is added to
    /// the account if it is not there yet).
    pub fn with_portal_provider(mut self, portal_arn: &str, provider: SeededProvider) -> Self {
        if !self.portals.iter().any(|p| p.portal_arn == portal_arn) {
            self = self.with_portal(portal_arn);
        }
        if let Some(portal) = self.portals.iter_mut().find(|p| p.portal_arn == portal_arn) {
            portal.identity_providers.push(provider);
        }
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

    /// Only the account's first `times` `CreateInstance` calls end in `CREATE_FAILED` with
    /// `reason`; the later ones succeed (an instance replaced after a failure).
    pub fn failing_instance_creation_times(
        mut self,
        reason: impl Into<String>,
        times: u32,
    ) -> Self {
        self.instance_failure = Some(reason.into());
        self.instance_failures = Some(times);
        self
    }
}

pub(crate) fn is_account_id(s: &str) -> bool {
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

    /// Builder: the organization instance disallows account instances; every
    /// `CreateInstance` in a member account is refused.
    pub fn disallowing_account_instances(mut self) -> Self {
        self.account_instances_allowed = false;
        self
    }

    /// Builder: the organization instance lives in an opt-in Region; every `CreateInstance`
    /// in a member account is refused.
    pub fn with_organization_instance_in_opt_in_region(mut self) -> Self {
        self.organization_instance_in_opt_in_region = true;
        self
    }

    /// Builder: meter calls against these request-rate quotas (e.g.
    /// [`QuotaConfig::documented`]).
    pub fn with_quotas(mut self, quotas: QuotaConfig) -> Self {
        self.quotas = Some(quotas);
        self
    }

    /// Builder: evaluate these (bound) policies for every call.
    pub fn with_iam(mut self, iam: PolicySet) -> Self {
        self.iam = Some(iam);
        self
    }

    /// Builder: forward requests for other services (DynamoDB, SQS, ...) to `url` (moto).
    pub fn forwarding_to(mut self, url: impl Into<String>) -> Self {
        self.forward_url = Some(url.into());
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
                validate_providers(portal)?;
            }
            let mut arns = std::collections::BTreeSet::new();
            if account.portals.iter().any(|p| !arns.insert(&p.portal_arn)) {
                return Err(format!(
                    "account {} lists a portal twice",
                    account.account_id
                ));
            }
            if let Some(instance) = &account.instance {
                self.validate_instance(&account.account_id, instance)?;
            }
        }
        if let Some(quotas) = &self.quotas {
            quotas.validate().map_err(|e| format!("quotas: {e}"))?;
        }
        if let Some(iam) = &self.iam {
            iam.check().map_err(|e| format!("iam: {e}"))?;
            let unbound = iam.unbound();
            if !unbound.is_empty() {
                return Err(format!(
                    "iam: unbound placeholders {} (bind them with PolicySet::bind)",
                    unbound
                        .iter()
                        .map(|n| format!("${{{n}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if let Some(url) = &self.forward_url {
            let ok = url
                .strip_prefix("http://")
                .is_some_and(|rest| !rest.is_empty())
                && url.parse::<http::Uri>().is_ok();
            if !ok {
                return Err(format!("forward_url {url:?} is not an http:// URL"));
            }
        }
        Ok(())
    }

    fn validate_instance(&self, account: &str, instance: &SeededInstance) -> Result<(), String> {
        let context = format!("accounts[{account}].instance");
        if account == self.management_account_id {
            return Err(format!(
                "{context}: the management account owns the organization instance and can't \
                 own an account instance"
            ));
        }
        if !INSTANCE_STATUSES.contains(&instance.status.as_str()) {
            return Err(format!(
                "{context}.status {:?} is not one of {}",
                instance.status,
                INSTANCE_STATUSES.join(", ")
            ));
        }
        if instance.status_reason.is_some() && instance.status != "CREATE_FAILED" {
            return Err(format!(
                "{context}.status_reason is only allowed with status CREATE_FAILED"
            ));
        }
        // the name obeys CreateInstance's model, as one created through the API would
        let mut input = serde_json::Map::new();
        if let Some(name) = &instance.name {
            input.insert("Name".into(), json!(name));
        }
        let models = crate::models()?;
        models
            .sso_admin
            .validate("CreateInstance", &Value::Object(input))
            .map_err(|e| format!("{context}: {}", e.message()))
    }
}

/// Seeded identity providers obey `CreateIdentityProvider`'s model and the per-type detail
/// rules, and names are unique on their portal. Messages never show detail values.
fn validate_providers(portal: &PortalConfig) -> Result<(), String> {
    match portal.authentication_type.as_str() {
        STANDARD => {}
        IAM_IDENTITY_CENTER if portal.identity_providers.is_empty() => {}
        IAM_IDENTITY_CENTER => {
            return Err(format!(
                "portal {}: an {IAM_IDENTITY_CENTER} portal takes no identity providers",
                portal.portal_arn
            ))
        }
        other => {
            return Err(format!(
                "portal {}: authentication_type {other:?} is not {STANDARD} or \
                 {IAM_IDENTITY_CENTER}",
                portal.portal_arn
            ))
        }
    }
    let models = crate::models()?;
    let mut names = std::collections::BTreeSet::new();
    for (i, provider) in portal.identity_providers.iter().enumerate() {
        let context = format!("portal {} identity_providers[{i}]", portal.portal_arn);
        let details: serde_json::Map<String, Value> = provider
            .details
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let input = json!({
            "portalArn": portal.portal_arn,
            "identityProviderName": provider.name,
            "identityProviderType": provider.provider_type,
            "identityProviderDetails": details,
        });
        models
            .workspaces_web
            .validate("CreateIdentityProvider", &input)
            .map_err(|e| format!("{context}: {}", e.message()))?;
        let problems = crate::workspaces_web::check_details(&provider.provider_type, &details);
        if !problems.is_empty() {
            let messages: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
            return Err(format!("{context}: {}", messages.join("; ")));
        }
        if !names.insert(provider.name.as_str()) {
            return Err(format!(
                "{context}: a provider of the same name is already on the portal"
            ));
        }
    }
    Ok(())
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
    fn seeded_resources_late_roles_and_the_account_instances_setting_parse() {
        let c = Config::from_json(
            r#"{
              "account_instances_allowed": false,
              "accounts": [
                {"account_id": "222222222222",
                 "role_appears_after_ms": 120000,
                 "instance": {"name": "legacy"},
                 "portals": [{"portal_arn": "arn:aws:workspaces-web:us-east-1:222222222222:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b",
                              "identity_providers": [{"name": "corp", "provider_type": "SAML",
                                                      "details": {"MetadataURL": "https://idp.example.com/m"}}]}]},
                {"account_id": "333333333333",
                 "instance": {"status": "CREATE_FAILED", "status_reason": "quota"}}
              ]
            }"#,
        )
        .unwrap();
        assert!(!c.account_instances_allowed);
        assert!(Config::default().account_instances_allowed);
        let a = &c.accounts[0];
        assert_eq!(a.role_appears_after_ms, Some(120_000));
        assert_eq!(a.instance, Some(SeededInstance::active(Some("legacy"))));
        assert_eq!(a.portals[0].identity_providers[0].name, "corp");
        assert_eq!(a.portals[0].authentication_type, STANDARD);
        assert!(!c.organization_instance_in_opt_in_region);
        assert_eq!(
            c.accounts[1].instance.as_ref().unwrap().status,
            "CREATE_FAILED"
        );

        // the builders make the same thing
        let built = AccountConfig::new("222222222222")
            .role_appearing_after(120_000)
            .with_instance(SeededInstance::active(Some("legacy")))
            .with_portal_provider(
                &a.portals[0].portal_arn,
                a.portals[0].identity_providers[0].clone(),
            );
        assert_eq!(&built, a);
    }

    #[test]
    fn seeded_provider_secrets_stay_out_of_debug_and_errors() {
        let provider = SeededProvider {
            name: "corp".into(),
            provider_type: "Google".into(),
            details: [
                ("client_id".to_string(), "id".to_string()),
                ("client_secret".to_string(), "CANARY-77".to_string()),
                ("authorize_scopes".to_string(), "openid".to_string()),
                ("bogus".to_string(), "CANARY-77".to_string()),
            ]
            .into(),
        };
        assert!(!format!("{provider:?}").contains("CANARY"));
        let config = Config::default().with_account(AccountConfig::new("222222222222").with_portal_provider(
            "arn:aws:workspaces-web:us-east-1:222222222222:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b",
            provider,
        ));
        let err = config.validate().unwrap_err();
        assert!(err.contains("bogus is not a detail"), "{err}");
        assert!(!err.contains("CANARY"), "{err}");
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(Config::from_json(r#"{"management_account_id": "12"}"#).is_err());
        assert!(Config::from_json(r#"{"unknown": 1}"#).is_err());
        let foreign_portal = r#"{"accounts": [{"account_id": "222222222222", "portals": [
            {"portal_arn": "arn:aws:workspaces-web:us-east-1:333333333333:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b"}]}]}"#;
        assert!(Config::from_json(foreign_portal).is_err());
        let bad_status = r#"{"accounts": [{"account_id": "222222222222",
            "instance": {"status": "ACTIVATING"}}]}"#;
        assert!(Config::from_json(bad_status)
            .unwrap_err()
            .contains("status"));
        let unknown_member = r#"{"accounts": [{"account_id": "222222222222",
            "instance": {"arn": "x"}}]}"#;
        assert!(Config::from_json(unknown_member).is_err());
    }

    #[test]
    fn portals_have_an_authentication_type_of_the_model() {
        let portal = |kind: &str| {
            format!(
                r#"{{"organization_instance_in_opt_in_region": true, "accounts": [{{"account_id": "222222222222",
                   "portals": [{{"portal_arn": "arn:aws:workspaces-web:us-east-1:222222222222:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b",
                                 "authentication_type": "{kind}"}}]}}]}}"#
            )
        };
        let c = Config::from_json(&portal("IAM_Identity_Center")).unwrap();
        assert_eq!(
            c.accounts[0].portals[0].authentication_type,
            IAM_IDENTITY_CENTER
        );
        assert!(c.organization_instance_in_opt_in_region);
        let err = Config::from_json(&portal("SAML")).unwrap_err();
        assert!(err.contains("authentication_type"), "{err}");
    }
}
