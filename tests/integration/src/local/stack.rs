//! The stand-ins behind the functions: moto (DynamoDB, SQS, EventBridge, Secrets Manager) and
//! the identity emulator (SSO Admin, MPA, WorkSpaces Web, STS) seeded with an organization,
//! plus what the deployed stack would hold: the ledger table, the event bus (with a rule
//! capturing what the functions emit into a queue) and the OIDC client secret.

use std::collections::HashMap;
use std::path::Path;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use identity_emulator::{Config as EmulatorConfig, Emulator};
use onboarding::ledger::schema;
use serde_json::Value;

pub const REGION: &str = "us-east-1";
/// `EVENT_SOURCE` of the functions (their default).
pub const SOURCE: &str = "identity-onboarding";
/// The secret the sample events name (`webIdentityProvider.secretId`).
pub const SECRET_NAME: &str = "onboarding/corp-oidc";

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

/// Starts the identity emulator on a free 127.0.0.1 port, seeded from `organization` (JSON,
/// see tests/identity-emulator/README.md).
pub async fn start_emulator(organization: &Path) -> Result<Emulator, String> {
    let config = EmulatorConfig::from_file(organization)
        .map_err(|e| format!("{}: {e}", organization.display()))?;
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
    /// Creates the ledger table (exactly as the template declares it), an event bus whose
    /// events are captured into a queue, and the OIDC client secret. `name` prefixes the
    /// resource names (unique per run).
    pub async fn provision(
        moto_url: String,
        emulator: Emulator,
        name: &str,
    ) -> Result<LocalStack, String> {
        let config = moto_config(&moto_url);
        let unique = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let table = format!("ledger-{unique}");
        let bus = format!("onboarding-{unique}");
        schema::create_table(&aws_sdk_dynamodb::Client::new(&config), &table)
            .await
            .map_err(|e| format!("cannot create the ledger table {table}: {e}"))?;
        let capture_queue = capture_events(&config, &bus, &unique).await?;
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

    /// The functions' environment: local endpoints, static credentials, and the settings
    /// `template.yaml` would set. `ready_wait_seconds`: how long one delivery waits for an
    /// instance or identity source to become ACTIVE.
    pub fn function_env(&self, ready_wait_seconds: u32) -> Vec<(String, String)> {
        let emulator = self.emulator.url();
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| env.push((k.to_string(), v.to_string()));
        set("AWS_REGION", REGION);
        set("AWS_ACCESS_KEY_ID", "test");
        set("AWS_SECRET_ACCESS_KEY", "test");
        set("AWS_EC2_METADATA_DISABLED", "true");
        for service in ["DYNAMODB", "SQS", "EVENTBRIDGE", "SECRETS_MANAGER"] {
            set(&format!("AWS_ENDPOINT_URL_{service}"), &self.moto_url);
        }
        for service in ["SSO_ADMIN", "MPA", "WORKSPACES_WEB", "STS"] {
            set(&format!("AWS_ENDPOINT_URL_{service}"), &emulator);
        }
        set("LEDGER_TABLE", &self.table);
        set("EVENT_BUS_NAME", &self.bus);
        set("ORG_INSTANCE_ARN", &self.org_instance_arn);
        set("READY_WAIT_SECONDS", &ready_wait_seconds.to_string());
        set("LEASE_SECONDS", "30");
        set("RUST_LOG", "info");
        env
    }

    /// Every event the functions emitted since the last call (drains the capture queue).
    pub async fn emitted(&self) -> Result<Vec<Value>, String> {
        drain_events(&self.config, &self.capture_queue).await
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

/// Static credentials, us-east-1, every service at moto (setup and read-back only touch moto).
fn moto_config(moto_url: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "local",
        )))
        .endpoint_url(moto_url)
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
