//! The functions under test, their events and the local stacks they run against.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use identity_emulator::{AccountConfig, Config as EmulatorConfig};
use integration_tests::deliveries::{oidc_provider, onboarding_requested};
use integration_tests::stack::Stack;

use crate::proxy::TimingProxy;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    IdentityCenterInstance,
    ApprovalIdentitySource,
    WebIdentityProvider,
}

pub const FUNCTIONS: [Function; 3] = [
    Function::IdentityCenterInstance,
    Function::ApprovalIdentitySource,
    Function::WebIdentityProvider,
];

/// Secrets already stored (one per stack).
static SECRETS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Blocks of account ids (see `account`) whose accounts get a WorkSpaces Web portal.
const PORTAL_BLOCKS: [u32; 7] = [10, 20, 21, 22, 23, 30, 40];
const ACCOUNTS_PER_BLOCK: u32 = 40;

impl Function {
    /// Crate, binary and Lambda function name.
    pub fn name(self) -> &'static str {
        match self {
            Function::IdentityCenterInstance => "identity-center-instance",
            Function::ApprovalIdentitySource => "approval-identity-source",
            Function::WebIdentityProvider => "web-identity-provider",
        }
    }

    /// SAM logical id (the directory `sam build` puts the bootstrap in).
    pub fn logical_id(self) -> &'static str {
        match self {
            Function::IdentityCenterInstance => "IdentityCenterInstanceFunction",
            Function::ApprovalIdentitySource => "ApprovalIdentitySourceFunction",
            Function::WebIdentityProvider => "WebIdentityProviderFunction",
        }
    }

    /// The control-plane call that creates the step's resource.
    pub fn create_operation(self) -> &'static str {
        match self {
            Function::IdentityCenterInstance => "CreateInstance",
            Function::ApprovalIdentitySource => "CreateIdentitySource",
            Function::WebIdentityProvider => "CreateIdentityProvider",
        }
    }

    /// An "Account Onboarding Requested" event for `account` that asks for this step (for
    /// the portal step, `account` has a portal and its OIDC secret is stored in `stack`).
    pub async fn event(self, stack: &Stack, event_id: &str, account: &str) -> Value {
        let detail = match self {
            Function::IdentityCenterInstance => json!({
                "identityCenterInstance": { "name": format!("bench-{account}"), "tags": { "CostCenter": "bench" } }
            }),
            Function::ApprovalIdentitySource => json!({}),
            Function::WebIdentityProvider => {
                // One OIDC client for every portal, as a platform team configures it, under
                // the template's `SecretNamePrefix` (the web role may read nothing else).
                let secret = format!("onboarding/bench/{}/corp-oidc", stack.table);
                let first_use = SECRETS
                    .lock()
                    .map(|mut stored| stored.insert(secret.clone()))
                    .unwrap_or(false);
                if first_use {
                    stack
                        .put_secret(
                            &secret,
                            &json!({ "client_secret": "bench-client-secret-value" }),
                        )
                        .await;
                }
                oidc_provider(&portal(account), "bench-oidc", &secret)
            }
        };
        onboarding_requested(event_id, account, detail)
    }
}

/// A 12-digit member account id: `block` (0-99) and `index` (0-99999999).
pub fn account(block: u32, index: u32) -> String {
    format!("{:04}{:08}", 2000 + block, index)
}

pub fn portal(account: &str) -> String {
    format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/0d5e1c8a-3b7f-4e2a-9c6d-1f2e3a4b5c6d"
    )
}

/// The default organization, plus a portal in every account the benchmarks use.
fn emulator_config() -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    for block in PORTAL_BLOCKS {
        for index in 0..ACCOUNTS_PER_BLOCK {
            let id = account(block, index);
            config = config.with_account(AccountConfig::new(&id).with_portal(portal(&id)));
        }
    }
    config
}

/// A fresh local stack: moto (shared by the process), its own emulator, ledger table and
/// bus, and the timing proxy through which its clients reach moto (via the emulator's
/// forwarder: every call is held to the caller's shipped policy, as in every local run).
pub async fn stack(name: &str) -> Result<(Stack, TimingProxy), String> {
    let mut stack = Stack::start_with(name, emulator_config()).await;
    let moto = crate::proxy::moto_of(&stack).await?;
    let emulator = stack.emulator.url();
    route(&mut stack, &moto.url(), &emulator);
    Ok((stack, moto))
}

/// Points the stack's clients at `moto` for moto's services and `emulator` for the others.
pub fn route(stack: &mut Stack, moto: &str, emulator: &str) {
    let mut endpoints = HashMap::new();
    for service in MOTO_SERVICES {
        endpoints.insert(service, moto.to_string());
    }
    for service in ["SSO Admin", "MPA", "WorkSpaces Web", "STS"] {
        endpoints.insert(service, emulator.to_string());
    }
    route_each(stack, endpoints);
}

/// Points the stack's clients at an endpoint per service (SDK service ids).
pub fn route_each(stack: &mut Stack, endpoints: HashMap<&'static str, String>) {
    stack.config = stack
        .config
        .to_builder()
        .service_config(Endpoints(endpoints))
        .build();
}

/// The services moto stands in for (SDK service ids).
const MOTO_SERVICES: [&str; 4] = ["DynamoDB", "SQS", "EventBridge", "Secrets Manager"];

/// Per-service endpoints, looked up by the SDK exactly like `AWS_ENDPOINT_URL_<SERVICE>`.
#[derive(Debug, Clone)]
struct Endpoints(HashMap<&'static str, String>);

impl LoadServiceConfig for Endpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        (key.profile() == "endpoint_url")
            .then(|| self.0.get(key.service_id()).cloned())
            .flatten()
    }
}
