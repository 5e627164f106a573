//! The stand-ins behind the functions: moto (DynamoDB, SQS, EventBridge, Secrets Manager) and
//! the identity emulator (SSO Admin, MPA, WorkSpaces Web, STS) seeded with an organization,
//! plus what the deployed stack would hold: the ledger table, the event bus (with a rule
//! capturing what the functions emit into a queue) and the OIDC client secret.
//!
//! Every AWS endpoint of the functions is the emulator: it evaluates each call against the
//! shipped policy of the role that signed it ([`crate::iam`]) and forwards moto's services to
//! moto. Each function signs with its role's logical id as access key ([`super::role`]); the
//! set-up and the read-backs here sign with another key, the management account's root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use identity_emulator::{Config as EmulatorConfig, Emulator};
use onboarding::aws::MemberAccess;
use onboarding::ledger::{schema, Record};
use serde_json::Value;

use crate::iam;

pub const REGION: &str = "us-east-1";
/// `EVENT_SOURCE` of the functions (their default).
pub const SOURCE: &str = "identity-onboarding";
/// The secret the sample events name (`webIdentityProvider.secretId`).
pub const SECRET_NAME: &str = "onboarding/corp-oidc";
/// The access key of the set-up and read-backs: no role's, so the account's root.
const ROOT_KEY: &str = "test";
/// The function queues of `template.yaml` (logical ids), bound to the queue the samples'
/// SQS records come from.
const QUEUES: [&str; 3] = [
    "IdentityCenterInstanceQueue",
    "ApprovalIdentitySourceQueue",
    "WebIdentityProviderQueue",
];

/// A raw ledger item.
pub type Item = HashMap<String, AttributeValue>;

/// Starts the process's moto server (see [`crate::moto`]) and returns its URL.
pub async fn start_moto() -> Result<String, String> {
    // moto() reports a failure by panicking (it serves tests): turn it into an error.
    match tokio::spawn(async { crate::moto::moto().await.url.clone() }).await {
        Ok(url) => Ok(url),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            Err(payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "moto server failed to start".into()))
        }
        Err(e) => Err(format!("moto server failed to start: {e}")),
    }
}

/// The names of one run's resources (unique per run), known before anything starts: the
/// emulator's policies are bound to them.
#[derive(Debug, Clone)]
pub struct Names {
    pub unique: String,
    pub table: String,
    pub bus: String,
    /// The queue every function's queue stands for: the standard queue the sample SQS
    /// records name as `eventSourceARN` (each file goes to every function).
    pub queue_arn: String,
}

impl Names {
    /// `name` prefixes the resource names; `events` are the sample files to be delivered.
    pub fn new(name: &str, events: &[PathBuf]) -> Result<Names, String> {
        let unique = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Ok(Names {
            table: format!("ledger-{unique}"),
            bus: format!("onboarding-{unique}"),
            queue_arn: delivering_queue(events)?,
            unique,
        })
    }
}

/// The first standard (not FIFO) queue ARN the SQS records of `events` carry. The FIFO
/// sample's queue is no function's: a call on it (a retry delay) would be refused, as it
/// would be in AWS.
pub fn delivering_queue(events: &[PathBuf]) -> Result<String, String> {
    for file in events {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let Ok(payload) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let records = payload.get("Records").and_then(Value::as_array);
        for record in records.into_iter().flatten() {
            if let Some(arn) = record.get("eventSourceARN").and_then(Value::as_str) {
                if arn.starts_with("arn:") && !arn.ends_with(".fifo") {
                    return Ok(arn.to_string());
                }
            }
        }
    }
    Err("no sample SQS record names a standard queue (eventSourceARN)".into())
}

/// Starts the identity emulator on a free 127.0.0.1 port, seeded from `organization` (JSON,
/// see tests/identity-emulator/README.md), enforcing the shipped policies bound to `names`
/// and forwarding moto's services to `moto_url`.
pub async fn start_emulator(
    organization: &Path,
    moto_url: &str,
    names: &Names,
    denied: &[(&str, &str)],
) -> Result<Emulator, String> {
    let mut config = EmulatorConfig::from_file(organization)
        .map_err(|e| format!("{}: {e}", organization.display()))?;
    let organization_instance_arn = config.organization_instance_arn().to_string();
    let queues: Vec<(&str, String)> = QUEUES
        .iter()
        .map(|logical| (*logical, names.queue_arn.clone()))
        .collect();
    let policies = denied
        .iter()
        .fold(iam::shipped().clone(), |set, (principal, action)| {
            set.without_action(principal, action)
        });
    config.iam = Some(iam::bound(
        &policies,
        &iam::Names {
            region: REGION,
            table: &names.table,
            bus: &names.bus,
            organization_instance_arn: &organization_instance_arn,
            queues: &queues,
        },
    ));
    config.forward_url = Some(moto_url.to_string());
    // The least-privilege check reads the shipped policies' observations: a deployment whose
    // roles lack actions on purpose is not one.
    config.record_observations = denied.is_empty();
    identity_emulator::start(config, "127.0.0.1:0")
        .await
        .map_err(|e| format!("the identity emulator cannot listen on 127.0.0.1: {e}"))
}

/// moto + emulator + the stack's resources.
pub struct LocalStack {
    pub moto_url: String,
    pub emulator: Emulator,
    pub org_instance_arn: String,
    pub table: String,
    pub bus: String,
    /// The value stored in [`SECRET_NAME`]: it must never show up anywhere else.
    pub secret_value: String,
    capture_queue: String,
    config: SdkConfig,
}

impl LocalStack {
    /// Creates, as the account's root and through the emulator, the ledger table (exactly as
    /// the template declares it), an event bus whose events are captured into a queue, and
    /// the OIDC client secret.
    pub async fn provision(
        moto_url: String,
        emulator: Emulator,
        names: &Names,
    ) -> Result<LocalStack, String> {
        let config = root_config(&emulator.url());
        let table = names.table.clone();
        let bus = names.bus.clone();
        schema::create_table(&aws_sdk_dynamodb::Client::new(&config), &table)
            .await
            .map_err(|e| format!("cannot create the ledger table {table}: {e}"))?;
        let capture_queue = capture_events(&config, &bus, &names.unique).await?;
        let secret_value = format!("local-client-secret-{}", uuid::Uuid::new_v4().simple());
        put_secret(
            &config,
            SECRET_NAME,
            &serde_json::json!({ "client_secret": secret_value }),
        )
        .await?;
        Ok(LocalStack {
            org_instance_arn: emulator.config().organization_instance_arn().to_string(),
            moto_url,
            emulator,
            table,
            bus,
            secret_value,
            capture_queue,
            config,
        })
    }

    /// The environment of `function`: its role's credentials, every AWS endpoint at the
    /// emulator, and the settings `template.yaml` would set. `ready_wait_seconds`: how long
    /// one delivery waits for an instance or identity source to become ACTIVE.
    pub fn function_env(
        &self,
        function: &str,
        ready_wait_seconds: u32,
    ) -> Result<Vec<(String, String)>, String> {
        let role = super::role(function)
            .ok_or_else(|| format!("{function} is not a function of template.yaml"))?;
        let emulator = self.emulator.url();
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| env.push((k.to_string(), v.to_string()));
        set("AWS_REGION", REGION);
        // As Lambda gives a function its execution role's credentials.
        set("AWS_ACCESS_KEY_ID", role);
        set("AWS_SECRET_ACCESS_KEY", "local-secret");
        set("AWS_EC2_METADATA_DISABLED", "true");
        for service in [
            "DYNAMODB",
            "SQS",
            "EVENTBRIDGE",
            "SECRETS_MANAGER",
            "SSO_ADMIN",
            "MPA",
            "WORKSPACES_WEB",
            "STS",
            "ORGANIZATIONS",
        ] {
            set(&format!("AWS_ENDPOINT_URL_{service}"), &emulator);
        }
        set("LEDGER_TABLE", &self.table);
        set("EVENT_BUS_NAME", &self.bus);
        set("ORG_INSTANCE_ARN", &self.org_instance_arn);
        set("READY_WAIT_SECONDS", &ready_wait_seconds.to_string());
        set("LEASE_SECONDS", "30");
        if function == "reconciler" {
            // One invocation audits every READY step (a day's slices) and repairs drift.
            set("RECONCILE_INTERVAL_MINUTES", "1440");
            set("REPAIR_DRIFT", "true");
        }
        set("RUST_LOG", "info");
        Ok(env)
    }

    /// The calls IAM refused so far: `(principal, action)`, in the order first seen.
    pub fn denials(&self) -> Vec<(String, String)> {
        self.emulator
            .observed()
            .into_iter()
            .filter(|(_, _, allowed)| !allowed)
            .map(|(principal, action, _)| (principal, action))
            .collect()
    }

    /// Every event the functions emitted since the last call (drains the capture queue).
    pub async fn emitted(&self) -> Result<Vec<Value>, String> {
        drain_events(&self.config, &self.capture_queue).await
    }

    /// The ledger's record of the step of `account` whose name starts with `step` (the
    /// provider step's name ends with its portal and provider name).
    pub async fn record(&self, account: &str, step: &str) -> Result<Record, String> {
        for item in self.ledger_items().await? {
            let record = Record::from_item(&item).map_err(|e| e.to_string())?;
            if record.key.step.starts_with(step) && record.key.account_id() == Some(account) {
                return Ok(record);
            }
        }
        Err(format!("the ledger has no {step} of {account}"))
    }

    /// The resources of `kind` (`instances`, `identity_providers`) in `account`, as the
    /// emulator holds them: what they hold and the calls that changed them (an instance's
    /// activation status left out).
    pub fn resources(&self, account: &str, kind: &str) -> Vec<Value> {
        let state = self.emulator.state();
        let mut list = state["accounts"][account][kind]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for resource in &mut list {
            if let Some(fields) = resource.as_object_mut() {
                fields.remove("status");
                fields.remove("status_reason");
            }
        }
        list
    }

    /// Credentials in `account` as its member role, for changing a resource behind the
    /// project's back (as the root user, whom the emulator does not evaluate).
    pub async fn config_in(&self, account: &str) -> Result<SdkConfig, String> {
        MemberAccess::new(&self.config, "IdentityOnboardingMemberRole", "aws")
            .config_for(account, None)
            .await
            .map_err(|e| format!("cannot act in {account}: {e}"))
    }

    /// Every ledger item (a paginated scan).
    pub async fn ledger_items(&self) -> Result<Vec<Item>, String> {
        scan_ledger(&self.config, &self.table).await
    }
}

/// Every event captured so far in `queue_url` (drains it).
pub async fn drain_events(config: &SdkConfig, queue_url: &str) -> Result<Vec<Value>, String> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut events = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .map_err(|e| format!("cannot read the captured events: {e}"))?;
        if out.messages().is_empty() {
            return Ok(events);
        }
        for m in out.messages() {
            if let Some(body) = m.body() {
                events.push(
                    serde_json::from_str(body)
                        .map_err(|e| format!("a captured event is not JSON: {e}"))?,
                );
            }
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| format!("cannot delete a captured event: {e}"))?;
            }
        }
    }
}

/// Every item of the ledger `table` (a paginated scan).
pub async fn scan_ledger(config: &SdkConfig, table: &str) -> Result<Vec<Item>, String> {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = dynamodb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| format!("cannot scan the ledger {table}: {e}"))?;
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

/// The account's root (static credentials of no role), us-east-1, every service at the
/// emulator (which forwards moto's).
fn root_config(emulator_url: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            ROOT_KEY, "test", None, None, "local",
        )))
        .endpoint_url(emulator_url)
        .timeout_config(onboarding::aws::timeouts())
        .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().expect("tokio sleep"))
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .build()
}

/// Stores `value` (a JSON object) as the secret `name`, creating or updating it.
pub async fn put_secret(config: &SdkConfig, name: &str, value: &Value) -> Result<(), String> {
    let secrets = aws_sdk_secretsmanager::Client::new(config);
    let secret = value.to_string();
    // One moto per process: a second run in the same process finds the secret already there.
    match secrets
        .create_secret()
        .name(name)
        .secret_string(&secret)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            secrets
                .put_secret_value()
                .secret_id(name)
                .secret_string(&secret)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot update the secret {name}: {e}"))
        }
        Err(e) => Err(format!("cannot create the secret {name}: {e}")),
    }
}

/// A bus, and a rule sending everything the project emits on it to a queue.
pub async fn capture_events(config: &SdkConfig, bus: &str, unique: &str) -> Result<String, String> {
    let events = aws_sdk_eventbridge::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    events
        .create_event_bus()
        .name(bus)
        .send()
        .await
        .map_err(|e| format!("cannot create the event bus {bus}: {e}"))?;
    let queue = format!("emitted-{unique}");
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .map_err(|e| format!("cannot create the capture queue: {e}"))?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("cannot read the capture queue's ARN: {e}"))?
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_else(|| format!("arn:aws:sqs:{REGION}:123456789012:{queue}"));
    let rule = format!("capture-{unique}");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(serde_json::json!({ "source": [SOURCE] }).to_string())
        .send()
        .await
        .map_err(|e| format!("cannot create the capture rule: {e}"))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("capture")
        .arn(queue_arn)
        .build()
        .map_err(|e| format!("capture target: {e}"))?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| format!("cannot target the capture queue: {e}"))?;
    Ok(queue_url)
}
