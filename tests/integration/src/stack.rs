//! A complete local AWS for one test: moto (DynamoDB, SQS, EventBridge, Secrets Manager,
//! Organizations), a fresh identity emulator (SSO Admin, MPA, WorkSpaces Web, STS), a ledger
//! table and an event bus of the test's own, and a queue that captures every event the
//! functions emit.
//!
//! Clients reach the stand-ins through the SDK's own per-service endpoint settings (the same
//! mechanism as `AWS_ENDPOINT_URL_<SERVICE>`), so the code under test is production code.
//! Every client of the code under test signs as the role the template gives its function,
//! and the emulator (moto's services through its forwarder) evaluates each call against that
//! role's shipped policy ([`crate::iam`]); the test's own set-up acts as the account's root.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use identity_emulator::{Config as EmulatorConfig, Emulator};
use onboarding::announce::Announcer;
use onboarding::aws::MemberAccess;
use onboarding::engine::{Engine, EngineSettings};
use onboarding::handler::Handler;
use onboarding::ledger::{schema, RequestCounter};
use onboarding::organizations::Organizations;
use onboarding::reconcile::{ReconcileSettings, Reconciler};
use onboarding::settings::Settings;
use onboarding::steps::{ApprovalIdentitySource, IdentityCenterInstance, WebIdentityProvider};
use serde_json::Value;

use crate::deliveries::queue_arn;
use crate::iam::{self, APPROVAL_ROLE, INSTANCE_ROLE, RECONCILER_ROLE, WEB_ROLE};
use crate::local::stack as local;
use crate::moto::moto;

pub const REGION: &str = "us-east-1";
pub const SOURCE: &str = "identity-onboarding";

/// Per-service endpoints, looked up by the SDK exactly like the environment variables.
#[derive(Debug, Clone)]
struct Endpoints(HashMap<&'static str, String>);

impl LoadServiceConfig for Endpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        (key.profile() == "endpoint_url")
            .then(|| self.0.get(key.service_id()).cloned())
            .flatten()
    }
}

pub struct Stack {
    pub emulator: Emulator,
    pub organization_instance_arn: String,
    pub moto_url: String,
    /// Long-term credentials: they act in the emulator's management account.
    pub config: SdkConfig,
    pub table: String,
    pub bus: String,
    /// DynamoDB requests made by the engine's ledger client.
    pub ledger_requests: RequestCounter,
    /// PutEvents requests made by the engine's announcer.
    pub announce_requests: RequestCounter,
    /// GetSecretValue requests made by the web step's Secrets Manager client.
    pub secret_requests: RequestCounter,
    capture_queue: String,
    pub settings: Settings,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

impl Stack {
    pub async fn start(name: &str) -> Stack {
        Self::start_with(name, EmulatorConfig::default()).await
    }

    pub async fn start_with(name: &str, emulator_config: EmulatorConfig) -> Stack {
        Self::start_enforcing(name, emulator_config, iam::shipped()).await
    }

    /// [`Stack::start_with`] whose calls are enforced but not recorded for the
    /// least-privilege check: the replay's fault injection turns ledger requests into calls
    /// no role makes (ListTables), which would read as the code outgrowing its policy.
    pub async fn start_unobserved(name: &str, emulator_config: EmulatorConfig) -> Stack {
        Self::start_inner(name, emulator_config, iam::shipped(), false).await
    }

    /// A stack whose calls are evaluated against `policies` (the shipped ones, or a test's
    /// edited copy) instead of [`iam::shipped`].
    pub async fn start_enforcing(
        name: &str,
        emulator_config: EmulatorConfig,
        policies: &identity_emulator::PolicySet,
    ) -> Stack {
        let observed = std::ptr::eq(policies, iam::shipped());
        Self::start_inner(name, emulator_config, policies, observed).await
    }

    async fn start_inner(
        name: &str,
        mut emulator_config: EmulatorConfig,
        policies: &identity_emulator::PolicySet,
        observed: bool,
    ) -> Stack {
        let moto_url = moto().await.url.clone();
        let organization_instance_arn = emulator_config.organization_instance_arn().to_string();
        let unique = format!(
            "{name}-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let table = format!("ledger-{unique}");
        let bus = format!("bus-{unique}");
        // The functions' queues: the SQS records' `onboarding` queue, and the real queues
        // tests create (named `onboarding-...`, see `queue_name`).
        let queue = queue_arn("onboarding*");
        let queues = [
            ("IdentityCenterInstanceQueue", queue.clone()),
            ("ApprovalIdentitySourceQueue", queue.clone()),
            ("WebIdentityProviderQueue", queue),
        ];
        emulator_config.iam = Some(iam::bound(
            policies,
            &iam::Names {
                region: REGION,
                table: &table,
                bus: &bus,
                organization_instance_arn: &organization_instance_arn,
                queues: &queues,
            },
        ));
        emulator_config.forward_url = Some(moto_url.clone());
        emulator_config.record_observations = observed;
        let emulator = identity_emulator::start(emulator_config, "127.0.0.1:0")
            .await
            .expect("the identity emulator starts");
        let config = sdk_config(&emulator.url());

        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        schema::create_table(&dynamodb, &table)
            .await
            .expect("ledger table");
        let capture_queue = local::capture_events(&config, &bus, &unique)
            .await
            .expect("event capture");

        let settings = Settings::from_lookup(|k| match k {
            "LEDGER_TABLE" => Some(table.clone()),
            "EVENT_BUS_NAME" => Some(bus.clone()),
            "LEASE_SECONDS" => Some("30".into()),
            "READY_WAIT_SECONDS" => Some("10".into()),
            _ => None,
        })
        .expect("settings");
        Stack {
            emulator,
            organization_instance_arn,
            moto_url,
            config,
            table,
            bus,
            ledger_requests: RequestCounter::default(),
            announce_requests: RequestCounter::default(),
            secret_requests: RequestCounter::default(),
            capture_queue,
            settings,
        }
    }

    /// An engine whose ledger requests are counted in `ledger_requests`. It acts as the
    /// account's root; the handlers and the reconciler below run it as their function's role.
    pub fn engine(&self) -> Engine {
        self.engine_with(self.settings.engine.clone())
    }

    /// The stack's engine, whose EventBridge cannot be reached (nothing listens there):
    /// every PutEvents fails, retryably, as in an outage.
    pub fn engine_without_eventbridge(&self) -> Engine {
        let engine = self.engine();
        let config = aws_sdk_eventbridge::config::Builder::from(&self.config)
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let eventbridge = aws_sdk_eventbridge::Client::from_conf(config);
        let announcer = Announcer::new(eventbridge, self.bus.clone(), SOURCE.into());
        Engine::new(
            engine.ledger().clone(),
            announcer,
            engine.settings().clone(),
        )
    }

    pub fn engine_with(&self, settings: EngineSettings) -> Engine {
        self.engine_as(&self.config, settings)
    }

    /// The client configuration of the function whose role is `principal`.
    pub fn config_as(&self, principal: &str) -> SdkConfig {
        iam::config_as(&self.config, principal)
    }

    /// `engine` signing as `principal`.
    fn engine_of(&self, principal: &str, engine: &Engine) -> Engine {
        engine.signing_as(iam::credentials(principal))
    }

    fn engine_as(&self, config: &SdkConfig, settings: EngineSettings) -> Engine {
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(config)
                .interceptor(self.ledger_requests.clone())
                .build(),
        );
        let ledger = onboarding::ledger::Ledger::new(dynamodb, self.table.clone());
        let eventbridge = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(config)
                .interceptor(self.announce_requests.clone())
                .build(),
        );
        let announcer =
            onboarding::announce::Announcer::new(eventbridge, self.bus.clone(), SOURCE.into());
        Engine::new(ledger, announcer, settings)
    }

    /// The member roles as the root of the management account reaches them (test set-up).
    pub fn member_access(&self) -> MemberAccess {
        self.member_access_as(&self.config)
    }

    fn member_access_as(&self, config: &SdkConfig) -> MemberAccess {
        MemberAccess::new(
            config,
            &self.settings.member_role_name,
            &self.settings.partition,
        )
    }

    /// The identity-center-instance function: `engine`'s settings, its role's credentials.
    pub fn instance_handler(&self, engine: Engine) -> Handler<IdentityCenterInstance> {
        Handler::new(
            self.engine_of(INSTANCE_ROLE, &engine),
            self.instance_step(INSTANCE_ROLE),
            self.settings.accept.clone(),
        )
    }

    pub fn approval_handler(&self, engine: Engine) -> Handler<ApprovalIdentitySource> {
        Handler::new(
            self.engine_of(APPROVAL_ROLE, &engine),
            self.approval_step(APPROVAL_ROLE),
            self.settings.accept.clone(),
        )
    }

    pub fn web_handler(&self, engine: Engine) -> Handler<WebIdentityProvider> {
        Handler::new(
            self.engine_of(WEB_ROLE, &engine),
            self.web_step(WEB_ROLE),
            self.settings.accept.clone(),
        )
    }

    fn instance_step(&self, principal: &str) -> IdentityCenterInstance {
        IdentityCenterInstance::new(self.member_access_as(&self.config_as(principal)))
    }

    fn approval_step(&self, principal: &str) -> ApprovalIdentitySource {
        ApprovalIdentitySource::new(
            aws_sdk_mpa::Client::new(&self.config_as(principal)),
            self.organization_instance_arn.clone(),
            REGION.into(),
        )
    }

    fn web_step(&self, principal: &str) -> WebIdentityProvider {
        let config = self.config_as(principal);
        let secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&config)
                .interceptor(self.secret_requests.clone())
                .build(),
        );
        WebIdentityProvider::new(self.member_access_as(&config), secrets)
    }

    /// The reconciler over all three steps, auditing the whole day's slots in each run (so
    /// a test's READY steps are audited whatever the time of day).
    pub fn reconciler(&self, engine: Engine, repair_drift: bool) -> Reconciler {
        self.reconciler_with(
            engine,
            ReconcileSettings {
                interval: Duration::from_secs(24 * 3600),
                repair_drift,
                stuck_after: self.settings.engine.member_role_grace,
            },
        )
    }

    /// One run of [`Stack::reconciler`] over the stack's own engine, as the schedule runs it
    /// (no deadline, not a dry run): its report.
    pub async fn reconcile(&self, repair_drift: bool) -> onboarding::reconcile::Report {
        self.reconciler(self.engine(), repair_drift)
            .run(None, false)
            .await
            .expect("a reconciler run")
    }

    /// The reconciler over all three steps with `settings`, as the reconciler's role. It asks
    /// moto's Organizations (through the emulator's forwarder, as that role) about accounts it
    /// cannot reach: moto's organization is its default account's, which a test creates
    /// (see tests/closed_accounts.rs); without one every answer is
    /// `AWSOrganizationsNotInUseException`.
    pub fn reconciler_with(&self, engine: Engine, settings: ReconcileSettings) -> Reconciler {
        Reconciler::new(
            self.engine_of(RECONCILER_ROLE, &engine),
            self.instance_step(RECONCILER_ROLE),
            self.web_step(RECONCILER_ROLE),
            Some(self.approval_step(RECONCILER_ROLE)),
            settings,
        )
        .with_organizations(Organizations::new(&self.config_as(RECONCILER_ROLE)))
    }

    /// The instance's name and every tag on it, read through the member account.
    pub async fn instance_now(
        &self,
        account: &str,
        arn: &str,
    ) -> (String, BTreeMap<String, String>) {
        let sso = aws_sdk_ssoadmin::Client::new(&self.config_in(account).await);
        let described = sso.describe_instance().instance_arn(arn).send().await;
        let name = described
            .expect("DescribeInstance")
            .name()
            .unwrap_or_default()
            .to_string();
        let listed = sso
            .list_tags_for_resource()
            .instance_arn(arn)
            .resource_arn(arn)
            .send()
            .await
            .expect("ListTagsForResource");
        let tags = listed
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        (name, tags)
    }

    /// A config acting in `account` (via the emulator's STS), e.g. to create a portal there.
    pub async fn config_in(&self, account: &str) -> SdkConfig {
        self.member_access()
            .config_for(account, None)
            .await
            .expect("assume role into the member account")
    }

    pub async fn put_secret(&self, name: &str, value: &Value) {
        local::put_secret(&self.config, name, value)
            .await
            .expect("secret");
    }

    /// Every event the functions emitted so far (drains the capture queue).
    pub async fn emitted(&self) -> Vec<Value> {
        local::drain_events(&self.config, &self.capture_queue)
            .await
            .expect("captured events")
    }

    /// Every raw ledger item of the table, for assertions on what was stored.
    pub async fn ledger_items(
        &self,
    ) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        local::scan_ledger(&self.config, &self.table)
            .await
            .expect("ledger scan")
    }
}

/// Every service at the emulator: it serves the identity services and forwards moto's.
fn sdk_config(emulator_url: &str) -> SdkConfig {
    let mut endpoints = HashMap::new();
    for service in [
        "DynamoDB",
        "SQS",
        "EventBridge",
        "Secrets Manager",
        "SSO Admin",
        "MPA",
        "WorkSpaces Web",
        "STS",
        "Organizations",
    ] {
        endpoints.insert(service, emulator_url.to_string());
    }
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "AKIDLOCALTEST",
                "local-secret",
                None,
                None,
                "local",
            )),
        )
        .timeout_config(onboarding::aws::timeouts())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().expect("tokio sleep"))
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .service_config(Endpoints(endpoints))
        .build()
}

/// Waits for `check` to hold, polling; panics with `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
