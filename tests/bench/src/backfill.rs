//! The backfill figure: an organization of existing accounts (a quarter of them with a
//! WorkSpaces Web portal) brought on board end to end, at the modelled request-rate quotas:
//!
//! ```text
//! onboarding backfill (the CLI binary, a subprocess) --PutEvents--> moto EventBridge
//!   rule (source + detail-type) -> three moto SQS queues (redrive to a DLQ after 12 receives)
//!   -> per function 5 pollers (MaximumConcurrency), batches of up to 10, the real
//!      `Handler::handle` with SQS redelivery delays, acknowledged records deleted
//!   -> moto (DynamoDB ledger, EventBridge announcements, Secrets Manager) and the identity
//!      emulator (STS, SSO Admin, MPA, WorkSpaces Web) with `QuotaConfig::documented()`
//! ```
//!
//! Two moto servers of the figure's own (`moto_server.rs`): the ledger's, and the events'
//! (EventBridge, SQS, Organizations), each behind a timing proxy; the emulator behind one
//! that counts calls per access key (buckets are per calling account).
//!
//! The wall time runs from the CLI's start until the CLI has exited and every queue is empty
//! (the end is the later of the CLI's exit and the last acknowledgement), and is compared
//! with the quota floor: the longest time any one quota bucket needed to serve the calls it
//! served (`(served - burst) / rate`), or the CLI's own `--rate`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sqs::types::QueueAttributeName as Attr;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use futures::stream::{self, StreamExt};
use identity_emulator::{Config as EmulatorConfig, Counters, QuotaConfig, QuotaScope};
use integration_tests::deliveries::failed_ids;
use integration_tests::stack::{Stack, REGION, SOURCE};
use onboarding::announce::Announcer;
use onboarding::engine::{Engine, EngineSettings};
use onboarding::handler::Handler;
use onboarding::ledger::{schema, Ledger, RequestCounter};
use onboarding::redelivery::SqsVisibility;
use onboarding::settings::Settings;
use onboarding::step::Step;
use serde_json::{json, Value};

use crate::proxy::{Inspector, MotoTime, TimingProxy};

const REQUESTED: &str = "Account Onboarding Requested";
/// The template's defaults: `MaximumConcurrency`, the event source's `BatchSize`, the
/// queues' `MaxReceiveCount` and `VisibilityTimeout`, the functions' `Timeout`.
const POLLERS: usize = 5;
const BATCH: i32 = 10;
const MAX_RECEIVES: u32 = 12;
const VISIBILITY_TIMEOUT: &str = "360";
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);
/// The miss reported when the run was stopped at its time limit: the bench then fails,
/// `--strict` or not.
pub const UNFINISHED: &str = "backfill: stopped at the time limit before every queue was empty";
/// The bench's goal for the wall time against the quota floor, and for the CLI's planning.
const FLOOR_RATIO: f64 = 1.25;
const PLANNING_LIMIT: Duration = Duration::from_secs(30);
/// One provider per portal; every fourth account has a portal.
const PORTAL_EVERY: usize = 4;
const SECRET_ID: &str = "onboarding/bench-corp-oidc";
const FUNCTIONS: [&str; 3] = [
    "identity-center-instance",
    "approval-identity-source",
    "web-identity-provider",
];

pub struct Options {
    /// The `onboarding` binary.
    pub cli: PathBuf,
    pub accounts: usize,
    /// `onboarding backfill --rate`.
    pub rate: u32,
    /// The run (not the setup) is stopped after this long and reported as failed.
    pub limit: Duration,
    /// Every quota's rate times this, bursts as documented (1: the documented quotas).
    /// Below 1 the quotas, not moto, bound the run on a small machine: how the functions
    /// pace themselves against a binding quota.
    pub quota_scale: f64,
    /// The functions' SDK retries (default: as deployed, `onboarding::aws::retries`).
    pub retries: aws_config::retry::RetryConfig,
}

impl Options {
    pub fn new(cli: PathBuf) -> Self {
        Options {
            cli,
            accounts: 2000,
            rate: 100,
            limit: Duration::from_secs(15 * 60),
            quota_scale: 1.0,
            retries: onboarding::aws::retries(),
        }
    }
}

/// One function's queue, its pollers' tallies and its own request counters.
struct Function {
    name: &'static str,
    url: String,
    arn: String,
    dlq_url: String,
    dynamodb: RequestCounter,
    put_events: RequestCounter,
    invocations: AtomicU64,
    /// Records handed to the function (every receive of every message).
    deliveries: AtomicU64,
    /// Records the function asked to get again (`batchItemFailures`).
    retried: AtomicU64,
    /// Invocations answered with an error (the whole batch comes back).
    errors: AtomicU64,
    /// Records received more than `MAX_RECEIVES` times (moto's redrive should have moved
    /// them first): deleted and counted as DLQ entries.
    over_received: AtomicU64,
    last_ack: Mutex<Option<Instant>>,
    poll_errors: AtomicU64,
}

/// Emulator calls per (access key, operation), seen by the proxy in front of it: the
/// emulator's own counters are per operation only, and buckets are per calling account.
#[derive(Default)]
struct Callers {
    counting: AtomicBool,
    calls: Mutex<HashMap<(String, String), u64>>,
}

impl Callers {
    fn inspector(self: &Arc<Self>) -> Inspector {
        let me = self.clone();
        Arc::new(move |bytes: &[u8]| {
            if !me.counting.load(Ordering::Relaxed) {
                return;
            }
            if let Some(key) = caller_and_operation(bytes) {
                if let Ok(mut calls) = me.calls.lock() {
                    *calls.entry(key).or_default() += 1;
                }
            }
        })
    }

    fn snapshot(&self) -> HashMap<(String, String), u64> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The access key and operation of a request to the emulator, from its first bytes.
fn caller_and_operation(bytes: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?;
    let target_path = request_line.next()?;
    let (path, query) = target_path.split_once('?').unwrap_or((target_path, ""));
    let (mut key, mut service, mut target) = (None, String::new(), None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => {
                // AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, ...
                let credential = value.split("Credential=").nth(1)?.split(',').next()?;
                let mut parts = credential.split('/');
                key = parts.next().map(str::to_owned);
                service = parts.nth(2).unwrap_or_default().to_owned();
            }
            "x-amz-target" => target = value.rsplit('.').next().map(str::to_owned),
            _ => {}
        }
    }
    let operation = match target {
        Some(t) => t,
        None => match service.as_str() {
            "sts" => body
                .split('&')
                .find_map(|p| p.strip_prefix("Action="))
                .unwrap_or("AssumeRole")
                .to_owned(),
            "workspaces-web" => match (method, path) {
                ("POST", "/portals") => "CreatePortal".into(),
                ("POST", "/identityProviders") => "CreateIdentityProvider".into(),
                ("GET", p) if p.starts_with("/portals/") && p.ends_with("/identityProviders") => {
                    "ListIdentityProviders".into()
                }
                ("GET", p) if p.starts_with("/portals/") => "GetPortal".into(),
                ("GET", p) if p.starts_with("/identityProviders/") => "GetIdentityProvider".into(),
                ("PATCH", p) if p.starts_with("/identityProviders/") => {
                    "UpdateIdentityProvider".into()
                }
                (m, p) => format!("{m} {p}"),
            },
            "mpa" => match (method, path.trim_end_matches('/')) {
                ("POST", "/identity-sources") if query.contains("List") => {
                    "ListIdentitySources".into()
                }
                ("POST", "/identity-sources") => "CreateIdentitySource".into(),
                ("GET", p) if p.starts_with("/identity-sources/") => "GetIdentitySource".into(),
                (m, p) => format!("{m} {p}"),
            },
            _ => format!("{method} {path}"),
        },
    };
    Some((key?, operation))
}

/// Credentials the emulator issued (`AssumeRole`) act in a member account; any other key
/// acts in the management account.
fn is_member_key(key: &str) -> bool {
    key.starts_with("ASIA")
}

/// The markdown section and the targets it missed.
pub async fn measure(opts: &Options, scratch: &Path) -> Result<(String, Vec<String>), String> {
    if !opts.cli.is_file() {
        return Err(format!(
            "the onboarding CLI binary is not at {} (build it with `cargo build --release -p onboarding-cli`, or pass --cli PATH)",
            opts.cli.display()
        ));
    }
    let dir = scratch.join("backfill");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Two moto servers of its own (patched where moto 5 is quadratic at this size, see
    // moto_server.rs), each behind a forwarder that holds every call to its caller's shipped
    // policy (as in every local run) and a timing proxy: one for the ledger (DynamoDB) and
    // Secrets Manager, one for EventBridge, SQS and Organizations. Separate processes, as
    // the services are: moto serves a process's requests on one core. The stack's ledger
    // table and bus are made again there.
    let ledger_moto = crate::moto_server::start(&dir.join("moto-ledger.log")).await?;
    let events_moto = crate::moto_server::start(&dir.join("moto-events.log")).await?;
    let mut stack = Stack::start_with("bench-backfill", EmulatorConfig::default()).await;
    let ledger_forwarder = forwarder(&stack, &ledger_moto.url).await?;
    let events_forwarder = forwarder(&stack, &events_moto.url).await?;
    let ledger = timing_proxy(&ledger_forwarder.url()).await?;
    let events = timing_proxy(&events_forwarder.url()).await?;
    let callers = Arc::new(Callers::default());
    let emulator = TimingProxy::start_inspecting(stack.emulator.addr(), Some(callers.inspector()))
        .await
        .map_err(|e| format!("cannot start the emulator proxy: {e}"))?;
    crate::scenario::route_each(
        &mut stack,
        [
            ("DynamoDB", ledger.url()),
            ("Secrets Manager", ledger.url()),
            ("SQS", events.url()),
            ("EventBridge", events.url()),
            ("SSO Admin", emulator.url()),
            ("MPA", emulator.url()),
            ("WorkSpaces Web", emulator.url()),
            ("STS", emulator.url()),
        ]
        .into_iter()
        .collect(),
    );
    stack.moto_url = events_moto.url.clone();
    // As deployed (`onboarding::aws::load_config`), unless `--sdk-retries` says otherwise.
    stack.config = stack
        .config
        .to_builder()
        .retry_config(opts.retries.clone())
        .build();
    schema::create_table(&aws_sdk_dynamodb::Client::new(&stack.config), &stack.table)
        .await
        .map_err(|e| format!("the ledger table: {e}"))?;
    aws_sdk_eventbridge::Client::new(&stack.config)
        .create_event_bus()
        .name(&stack.bus)
        .send()
        .await
        .map_err(|e| format!("the event bus: {e}"))?;

    let setup = Instant::now();
    eprintln!(
        "bench: backfill: {} accounts in moto Organizations ...",
        opts.accounts
    );
    let accounts = organization(&stack, &events_moto.url, opts.accounts).await?;
    let portals = portals(&stack, &accounts).await?;
    stack
        .put_secret(
            SECRET_ID,
            &json!({ "client_secret": "bench-client-secret-value" }),
        )
        .await;
    let mapping = dir.join("portals.jsonl");
    std::fs::write(&mapping, mapping_file(&portals))
        .map_err(|e| format!("{}: {e}", mapping.display()))?;
    let functions = queues(&stack).await?;
    eprintln!(
        "bench: backfill: organization, {} portals and queues ready in {:.1} s; running at {} ...",
        portals.len(),
        setup.elapsed().as_secs_f64(),
        quota_name(opts.quota_scale)
    );

    // The template's defaults (lease 120 s, readiness wait 20 s, backoff 60 s to 30 min).
    let settings = Settings::from_lookup(|k| match k {
        "LEDGER_TABLE" => Some(stack.table.clone()),
        "EVENT_BUS_NAME" => Some(stack.bus.clone()),
        _ => None,
    })?
    .engine;
    let quotas = QuotaConfig::documented().scaled(opts.quota_scale);
    stack.emulator.set_quotas(Some(quotas.clone()));
    let before = stack.emulator.counters();
    let secrets_before = stack.secret_requests.get();
    callers.counting.store(true, Ordering::SeqCst);
    ledger.reset();
    events.reset();

    let stop = Arc::new(AtomicBool::new(false));
    let sqs = aws_sdk_sqs::Client::new(&stack.config);
    // Long polls wait on moto without keeping it busy: they bypass the timing proxy.
    let receiver = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&stack.config)
            .endpoint_url(&stack.moto_url)
            .build(),
    );
    let pollers_of = || Pollers {
        receiver: receiver.clone(),
        sqs: sqs.clone(),
        stop: stop.clone(),
    };
    let mut pollers = Vec::new();
    for _ in 0..POLLERS {
        // One handler per poller: an execution environment each, with its own clients and
        // its own cache of member-account credentials.
        let f = functions[0].clone();
        let h = stack
            .instance_handler(engine(&stack, &settings, &f))
            .with_redelivery(Arc::new(SqsVisibility::new(sqs.clone())));
        pollers.push(tokio::spawn(poll(h, pollers_of(), f)));
        let f = functions[1].clone();
        let h = stack
            .approval_handler(engine(&stack, &settings, &f))
            .with_redelivery(Arc::new(SqsVisibility::new(sqs.clone())));
        pollers.push(tokio::spawn(poll(h, pollers_of(), f)));
        let f = functions[2].clone();
        let h = stack
            .web_handler(engine(&stack, &settings, &f))
            .with_redelivery(Arc::new(SqsVisibility::new(sqs.clone())));
        pollers.push(tokio::spawn(poll(h, pollers_of(), f)));
    }

    let state = dir.join("state.json");
    let mut cmd = tokio::process::Command::new(&opts.cli);
    cmd.env_clear()
        .current_dir(&dir)
        .env("AWS_REGION", REGION)
        // The operator's shipped policy (template.yaml's OperatorPolicy).
        .env("AWS_ACCESS_KEY_ID", integration_tests::iam::OPERATOR)
        .env("AWS_SECRET_ACCESS_KEY", "local-secret")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_DYNAMODB", ledger.url())
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", events.url())
        .env("AWS_ENDPOINT_URL_ORGANIZATIONS", events.url())
        .env("AWS_ENDPOINT_URL_STS", events.url())
        .env("LEDGER_TABLE", &stack.table)
        .env("EVENT_BUS_NAME", &stack.bus)
        .arg("backfill")
        .arg("--portals")
        .arg(&mapping)
        .arg("--rate")
        .arg(opts.rate.to_string())
        .arg("--state")
        .arg(&state)
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", opts.cli.display()))?;
    let cli = tokio::spawn(async move {
        let out = child.wait_with_output().await;
        (out, Instant::now())
    });

    // Until the CLI has exited and every queue is empty, or the limit. The end is the last
    // acknowledgement, so checking the queues every 2 s (each check is a scan of the queue in
    // moto) costs no precision.
    let mut cli = Some(cli);
    let mut cli_result = None;
    let mut timed_out = false;
    loop {
        let pause = if cli_result.is_some() { 2000 } else { 250 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if let Some(handle) = cli.as_ref() {
            if handle.is_finished() {
                if let Some(handle) = cli.take() {
                    cli_result = Some(handle.await.map_err(|e| format!("CLI task: {e}"))?);
                }
            }
        }
        if started.elapsed() > opts.limit {
            timed_out = true;
            break;
        }
        if cli_result.is_some() && all_empty(&sqs, &functions).await {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for p in pollers {
        let _ = p.await;
    }
    callers.counting.store(false, Ordering::SeqCst);
    let (ledger_time, events_time) = (ledger.time(), events.time());
    let after = stack.emulator.counters();
    if let Some(handle) = cli.take() {
        handle.abort();
    }

    let (cli_exit, cli_doc, cli_code, cli_stderr) = match cli_result {
        Some((Ok(out), at)) => {
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            (
                Some(at),
                doc,
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Some((Err(e), _)) => return Err(format!("the CLI did not run: {e}")),
        None => (None, Value::Null, None, String::new()),
    };
    let last_ack = functions
        .iter()
        .filter_map(|f| *f.last_ack.lock().unwrap_or_else(|p| p.into_inner()))
        .max();
    let end = [cli_exit, last_ack].into_iter().flatten().max();
    let wall = match end {
        Some(end) if !timed_out => end.saturating_duration_since(started),
        _ => started.elapsed(),
    };

    let outcome = Outcome {
        accounts: accounts.len(),
        portals: portals.len(),
        rate: opts.rate,
        wall,
        timed_out,
        limit: opts.limit,
        drained: functions
            .iter()
            .map(|f| {
                (
                    f.name,
                    f.last_ack
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .map(|t| t.saturating_duration_since(started)),
                )
            })
            .collect(),
        cli_code,
        cli_doc,
        cli_stderr,
        cli_exit: cli_exit.map(|t| t.saturating_duration_since(started)),
        dlq: dlq_entries(&sqs, &functions).await?,
        ledger: ledger_summary(&stack).await?,
        diff: Diff::between(&before, &after),
        callers: callers.snapshot(),
        quotas,
        quota_scale: opts.quota_scale,
        retries: retries_name(&opts.retries),
        moto: [
            ("ledger (DynamoDB, Secrets Manager)", ledger_time),
            ("events (EventBridge, SQS, Organizations)", events_time),
        ],
        secrets: stack.secret_requests.get() - secrets_before,
        functions: functions.clone(),
        settings,
    };
    drop((ledger_moto, events_moto));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(outcome.render())
}

/// A new organization in moto, managed by the stack's own account (the one the CLI's
/// default credentials act in), and `n` ACTIVE member accounts.
async fn organization(stack: &Stack, moto: &str, n: usize) -> Result<Vec<String>, String> {
    let client = aws_sdk_organizations::Client::from_conf(
        aws_sdk_organizations::config::Builder::from(&stack.config)
            .endpoint_url(moto)
            .build(),
    );
    client
        .create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .map_err(|e| {
            format!(
                "CreateOrganization in moto: {}",
                aws_sdk_organizations::error::DisplayErrorContext(&e)
            )
        })?;
    let started = Instant::now();
    let created: Vec<Result<String, String>> = stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            async move {
                let name = format!("backfill-{i:05}");
                let out = client
                    .create_account()
                    .account_name(&name)
                    .email(format!("{name}@example.com"))
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "CreateAccount: {}",
                            aws_sdk_organizations::error::DisplayErrorContext(&e)
                        )
                    })?;
                out.create_account_status()
                    .and_then(|s| s.account_id())
                    .map(str::to_owned)
                    .ok_or_else(|| "CreateAccount returned no account id".to_string())
            }
        })
        .buffered(4)
        .collect()
        .await;
    let accounts = created.into_iter().collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "bench: backfill: {} accounts created in moto in {:.1} s",
        accounts.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(accounts)
}

/// A WorkSpaces Web portal in every fourth account (created in the account, through the
/// emulator, before any quota applies): (account, portal ARN).
async fn portals(stack: &Stack, accounts: &[String]) -> Result<Vec<(String, String)>, String> {
    let wanted: Vec<String> = accounts.iter().step_by(PORTAL_EVERY).cloned().collect();
    let made: Vec<Result<(String, String), String>> = stream::iter(wanted)
        .map(|account| async move {
            let web = aws_sdk_workspacesweb::Client::new(&stack.config_in(&account).await);
            let out = web
                .create_portal()
                .display_name(format!("portal-{account}"))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "CreatePortal in {account}: {}",
                        aws_sdk_workspacesweb::error::DisplayErrorContext(&e)
                    )
                })?;
            Ok((account, out.portal_arn().to_owned()))
        })
        .buffered(8)
        .collect()
        .await;
    made.into_iter().collect()
}

/// `--portals`: one OIDC provider per portal, all with the one shared client secret.
fn mapping_file(portals: &[(String, String)]) -> String {
    portals
        .iter()
        .map(|(account, portal)| {
            format!(
                "{}\n",
                json!({
                    "accountId": account,
                    "portalArn": portal,
                    "providerName": "corp-oidc",
                    "providerType": "OIDC",
                    "details": {
                        "client_id": "onboarding-client",
                        "oidc_issuer": "https://idp.example.com",
                        "authorize_scopes": "openid email",
                        "attributes_request_method": "GET"
                    },
                    "secretId": SECRET_ID,
                    "tags": { "Team": "platform" }
                })
            )
        })
        .collect()
}

/// Per function a queue with its dead-letter queue (as the template has them), and one rule
/// on the stack's bus targeting the three queues.
async fn queues(stack: &Stack) -> Result<Vec<Arc<Function>>, String> {
    let sqs = aws_sdk_sqs::Client::new(&stack.config);
    let events = aws_sdk_eventbridge::Client::new(&stack.config);
    let pid = std::process::id();
    let mut functions = Vec::new();
    for name in FUNCTIONS {
        let (dlq_url, dlq_arn) = queue(&sqs, &format!("bench-{name}-dlq-{pid}"), &[]).await?;
        let redrive =
            json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES }).to_string();
        let (url, arn) = queue(
            &sqs,
            &format!("bench-{name}-{pid}"),
            &[
                (Attr::VisibilityTimeout, VISIBILITY_TIMEOUT),
                (Attr::RedrivePolicy, &redrive),
            ],
        )
        .await?;
        functions.push(Arc::new(Function {
            name,
            url,
            arn,
            dlq_url,
            dynamodb: RequestCounter::new(),
            put_events: RequestCounter::new(),
            invocations: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            over_received: AtomicU64::new(0),
            last_ack: Mutex::new(None),
            poll_errors: AtomicU64::new(0),
        }));
    }
    let rule = format!("bench-onboarding-requested-{pid}");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&stack.bus)
        .event_pattern(json!({ "source": [SOURCE], "detail-type": [REQUESTED] }).to_string())
        .send()
        .await
        .map_err(|e| format!("PutRule: {e}"))?;
    let targets = functions
        .iter()
        .map(|f| {
            aws_sdk_eventbridge::types::Target::builder()
                .id(f.name)
                .arn(&f.arn)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&stack.bus)
        .set_targets(Some(targets))
        .send()
        .await
        .map_err(|e| format!("PutTargets: {e}"))?;
    Ok(functions)
}

async fn queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(Attr, &str)],
) -> Result<(String, String), String> {
    let mut create = sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        create = create.attributes(k.clone(), *v);
    }
    let url = create
        .send()
        .await
        .map_err(|e| format!("CreateQueue {name}: {e}"))?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(Attr::QueueArn)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes {name}: {e}"))?
        .attributes
        .and_then(|a| a.get(&Attr::QueueArn).cloned())
        .ok_or("no queue ARN")?;
    Ok((url, arn))
}

fn quota_name(scale: f64) -> String {
    if scale == 1.0 {
        "`QuotaConfig::documented()`".into()
    } else {
        format!("`QuotaConfig::documented()` with every rate x {scale} (bursts as documented)")
    }
}

/// An emulator in front of `moto_url` with `stack`'s policies: its forwarder evaluates each
/// call (the functions' roles, the operator) and passes it on to that moto server.
async fn forwarder(stack: &Stack, moto_url: &str) -> Result<identity_emulator::Emulator, String> {
    let mut config = stack.emulator.config().clone();
    config.forward_url = Some(moto_url.to_string());
    config.record_observations = false;
    identity_emulator::start(config, "127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start a forwarder to {moto_url}: {e}"))
}

async fn timing_proxy(url: &str) -> Result<TimingProxy, String> {
    let addr = url
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("moto URL {url}: {e}"))?;
    TimingProxy::start(addr)
        .await
        .map_err(|e| format!("cannot start a moto proxy: {e}"))
}

/// An engine whose DynamoDB and PutEvents requests are counted for `f`.
fn engine(stack: &Stack, settings: &EngineSettings, f: &Function) -> Engine {
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.config)
            .interceptor(f.dynamodb.clone())
            .build(),
    );
    let eventbridge = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&stack.config)
            .interceptor(f.put_events.clone())
            .build(),
    );
    Engine::new(
        Ledger::new(dynamodb, stack.table.clone()),
        Announcer::new(eventbridge, stack.bus.clone(), SOURCE.into()),
        settings.clone(),
    )
}

/// What a poller needs besides its handler: a client for its long polls (straight to moto),
/// one for the rest (through the timing proxy), and the signal to stop.
struct Pollers {
    receiver: aws_sdk_sqs::Client,
    sqs: aws_sdk_sqs::Client,
    stop: Arc<AtomicBool>,
}

/// One of the event source mapping's pollers: receive up to 10, invoke, delete what the
/// reply did not list (the handler itself sets the delays of the listed ones).
async fn poll<S: Step + 'static>(handler: Handler<S>, p: Pollers, f: Arc<Function>) {
    let Pollers {
        receiver,
        sqs,
        stop,
    } = p;
    while !stop.load(Ordering::SeqCst) {
        let out = receiver
            .receive_message()
            .queue_url(&f.url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match out {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(_) => {
                f.poll_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut records = Vec::new();
        let mut handles = Vec::new();
        let mut gone = Vec::new();
        for m in &messages {
            let count: u32 = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
                continue;
            };
            if count > MAX_RECEIVES {
                f.over_received.fetch_add(1, Ordering::Relaxed);
                gone.push((id.to_owned(), handle.to_owned()));
                continue;
            }
            records.push(json!({
                "messageId": id,
                "receiptHandle": handle,
                "body": m.body(),
                "attributes": { "ApproximateReceiveCount": count.to_string() },
                "eventSource": "aws:sqs",
                "eventSourceARN": f.arn,
            }));
            handles.push((id.to_owned(), handle.to_owned()));
        }
        if !gone.is_empty() {
            delete(&sqs, &f, &gone).await;
        }
        if records.is_empty() {
            continue;
        }
        f.invocations.fetch_add(1, Ordering::Relaxed);
        f.deliveries
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let deadline = SystemTime::now() + FUNCTION_TIMEOUT;
        match handler
            .handle(json!({ "Records": records }), Some(deadline))
            .await
        {
            Ok((reply, _)) => {
                let failed = failed_ids(&reply);
                f.retried.fetch_add(failed.len() as u64, Ordering::Relaxed);
                let done: Vec<(String, String)> = handles
                    .into_iter()
                    .filter(|(id, _)| !failed.contains(id))
                    .collect();
                if !done.is_empty() {
                    delete(&sqs, &f, &done).await;
                    *f.last_ack.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                }
            }
            Err(_) => {
                f.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn delete(sqs: &aws_sdk_sqs::Client, f: &Function, messages: &[(String, String)]) {
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, (_, handle))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .ok()
        })
        .collect();
    let out = sqs
        .delete_message_batch()
        .queue_url(&f.url)
        .set_entries(Some(entries))
        .send()
        .await;
    if out.map_or(true, |o| !o.failed().is_empty()) {
        f.poll_errors.fetch_add(1, Ordering::Relaxed);
    }
}

async fn queue_count(sqs: &aws_sdk_sqs::Client, url: &str) -> Option<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Attr::ApproximateNumberOfMessages)
        .attribute_names(Attr::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(Attr::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .ok()?;
    let attributes = out.attributes.unwrap_or_default();
    Some(
        [
            Attr::ApproximateNumberOfMessages,
            Attr::ApproximateNumberOfMessagesNotVisible,
            Attr::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .map(|a| {
            attributes
                .get(a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum(),
    )
}

async fn all_empty(sqs: &aws_sdk_sqs::Client, functions: &[Arc<Function>]) -> bool {
    for f in functions {
        if queue_count(sqs, &f.url).await != Some(0) {
            return false;
        }
    }
    true
}

async fn dlq_entries(
    sqs: &aws_sdk_sqs::Client,
    functions: &[Arc<Function>],
) -> Result<u64, String> {
    let mut total = 0;
    for f in functions {
        total += queue_count(sqs, &f.dlq_url)
            .await
            .ok_or_else(|| format!("cannot read the DLQ of {}", f.name))?;
        total += f.over_received.load(Ordering::Relaxed);
    }
    Ok(total)
}

/// Ledger items by step (the provider steps grouped) and status; FAILED from the attention
/// index as `onboarding list --status FAILED` reads it.
struct LedgerSummary {
    by_step: BTreeMap<(String, String), u64>,
    failed: usize,
}

async fn ledger_summary(stack: &Stack) -> Result<LedgerSummary, String> {
    let failed = stack
        .engine()
        .ledger()
        .attention("FAILED")
        .await
        .map_err(|e| format!("attention index: {e}"))?
        .len();
    let mut by_step = BTreeMap::new();
    for item in stack.ledger_items().await {
        let text = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let step = text(schema::SK)
            .split('#')
            .next()
            .unwrap_or_default()
            .to_owned();
        *by_step.entry((step, text(schema::STATUS))).or_default() += 1;
    }
    Ok(LedgerSummary { by_step, failed })
}

/// Emulator counters over the run.
struct Diff {
    calls: BTreeMap<String, u64>,
    throttled: BTreeMap<String, u64>,
    created: BTreeMap<String, u64>,
}

impl Diff {
    fn between(before: &Counters, after: &Counters) -> Diff {
        let sub = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            a.iter()
                .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect::<BTreeMap<_, _>>()
        };
        let created = |c: &Counters| {
            c.creates
                .iter()
                .map(|(k, v)| (k.clone(), v.created))
                .collect::<BTreeMap<_, _>>()
        };
        Diff {
            calls: sub(&after.calls, &before.calls),
            throttled: sub(&after.throttled, &before.throttled),
            created: sub(&created(after), &created(before)),
        }
    }

    fn served(&self, op: &str) -> u64 {
        self.calls.get(op).copied().unwrap_or(0) - self.throttled.get(op).copied().unwrap_or(0)
    }
}

/// One quota bucket's share of the run: it cannot have served `served` calls in less than
/// `(served - burst) / rate`.
#[derive(Clone, Debug)]
struct Bucket {
    what: String,
    served: u64,
    rate: f64,
    burst: u32,
}

impl Bucket {
    fn floor(&self) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(
            self.served.saturating_sub(u64::from(self.burst)) as f64 / self.rate,
        )
    }
}

struct Outcome {
    accounts: usize,
    portals: usize,
    rate: u32,
    wall: Duration,
    timed_out: bool,
    limit: Duration,
    drained: Vec<(&'static str, Option<Duration>)>,
    cli_code: Option<i32>,
    cli_doc: Value,
    cli_stderr: String,
    cli_exit: Option<Duration>,
    dlq: u64,
    ledger: LedgerSummary,
    diff: Diff,
    callers: HashMap<(String, String), u64>,
    quotas: QuotaConfig,
    quota_scale: f64,
    retries: String,
    moto: [(&'static str, MotoTime); 2],
    secrets: u64,
    functions: Vec<Arc<Function>>,
    settings: EngineSettings,
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "pass"
    } else {
        "**MISS**"
    }
}

impl Outcome {
    /// Every bucket the run used, busiest (longest floor) first.
    fn buckets(&self) -> Vec<Bucket> {
        let mut buckets = Vec::new();
        for op in self.diff.calls.keys() {
            let Some(rule) = self.quotas.rule(op) else {
                continue;
            };
            let served = self.diff.served(op);
            match rule.scope {
                QuotaScope::Organization | QuotaScope::Global => buckets.push(Bucket {
                    what: format!("{op} (the organization)"),
                    served,
                    rate: rule.rate_per_second,
                    burst: rule.burst,
                }),
                QuotaScope::Account => {
                    // Calls with member credentials, per credential (= per account and
                    // function); the rest are the management account's.
                    let members: Vec<(&String, u64)> = self
                        .callers
                        .iter()
                        .filter(|((key, o), _)| o == op && is_member_key(key))
                        .map(|((key, _), n)| (key, *n))
                        .collect();
                    let member_calls: u64 = members.iter().map(|(_, n)| n).sum();
                    let management = served.saturating_sub(member_calls);
                    if management > 0 {
                        buckets.push(Bucket {
                            what: format!("{op} (the management account)"),
                            served: management,
                            rate: rule.rate_per_second,
                            burst: rule.burst,
                        });
                    }
                    if let Some((_, busiest)) = members.iter().max_by_key(|(_, n)| *n) {
                        buckets.push(Bucket {
                            what: format!(
                                "{op} (the busiest of {} member accounts, calls as an upper bound)",
                                members.len()
                            ),
                            served: *busiest,
                            rate: rule.rate_per_second,
                            burst: rule.burst,
                        });
                    }
                }
            }
        }
        buckets.sort_by_key(|b| std::cmp::Reverse(b.floor()));
        buckets
    }

    fn render(&self) -> (String, Vec<String>) {
        let mut misses = Vec::new();
        if self.timed_out {
            misses.push(UNFINISHED.to_owned());
        }
        let mut rows: Vec<[String; 4]> = Vec::new();
        let mut row = |measure: &str, measured: String, target: &str, pass: Option<bool>| {
            if pass == Some(false) {
                misses.push(format!("backfill: {measure}"));
            }
            rows.push([
                measure.to_owned(),
                measured,
                target.to_owned(),
                pass.map_or("reference", verdict).to_owned(),
            ]);
        };
        let published = self.cli_doc["summary"]["published"].as_u64().unwrap_or(0);
        let buckets = self.buckets();
        let cli_floor = Bucket {
            what: format!("the CLI's --rate {}", self.rate),
            served: published,
            rate: f64::from(self.rate),
            burst: 10,
        };
        let busiest = buckets
            .first()
            .cloned()
            .filter(|b| b.floor() >= cli_floor.floor())
            .unwrap_or_else(|| cli_floor.clone());
        let floor = busiest.floor();
        let ratio = self.wall.as_secs_f64() / floor.as_secs_f64().max(1e-9);
        let n = self.accounts as u64;
        let done = !self.timed_out;

        row(
            &format!(
                "wall time: {} accounts ({} with a portal), the CLI's start -> the CLI exited and every queue empty",
                thousands(n),
                thousands(self.portals as u64)
            ),
            format!(
                "{}{} = **{ratio:.2}x** the quota floor ({}: {}, {} calls at {}/s, burst {})",
                secs(self.wall),
                if done {
                    String::new()
                } else {
                    format!(" (stopped at the {} limit)", secs(self.limit))
                },
                secs(floor),
                busiest.what,
                thousands(busiest.served),
                busiest.rate,
                busiest.burst
            ),
            &format!("<= {FLOOR_RATIO}x the floor"),
            Some(done && ratio <= FLOOR_RATIO),
        );
        let drained = self
            .drained
            .iter()
            .map(|(name, at)| format!("{name} {}", at.map_or("never".into(), secs)))
            .collect::<Vec<_>>()
            .join("; ");
        row(
            "last acknowledgement per queue (from the CLI's start)",
            format!(
                "{drained}; the CLI exited at {}",
                self.cli_exit.map_or("-".into(), secs)
            ),
            "-",
            None,
        );
        let other = buckets
            .iter()
            .skip(1)
            .take(4)
            .map(|b| {
                format!(
                    "{} {} ({} calls)",
                    b.what,
                    secs(b.floor()),
                    thousands(b.served)
                )
            })
            .chain(std::iter::once(format!(
                "{} {} ({} events)",
                cli_floor.what,
                secs(cli_floor.floor()),
                thousands(published)
            )))
            .collect::<Vec<_>>()
            .join("; ");
        row(
            "the next floors ((served - burst) / rate)",
            other,
            "-",
            None,
        );
        let t = &self.cli_doc["timings"];
        let ms = |k: &str| Duration::from_millis(t[k].as_u64().unwrap_or(0));
        let plan = ms("planMs");
        row(
            &format!(
                "the CLI's planning: {} accounts (Organizations listing + ledger reads, on moto)",
                thousands(n)
            ),
            format!(
                "{} (listing {}, ledger {} in {} BatchGetItem calls)",
                secs(plan),
                secs(ms("organizationsMs")),
                secs(ms("ledgerMs")),
                t["ledgerCalls"]
            ),
            &format!("< {}", secs(PLANNING_LIMIT)),
            Some(self.cli_code == Some(0) && plan < PLANNING_LIMIT),
        );
        row(
            "the CLI's publishing",
            format!(
                "{} events in {} at --rate {} (exit {}){}",
                thousands(published),
                secs(ms("publishMs")),
                self.rate,
                self.cli_code.map_or("-".into(), |c| c.to_string()),
                if self.cli_code == Some(0) {
                    String::new()
                } else {
                    format!(": {}", self.cli_stderr.lines().last().unwrap_or(""))
                }
            ),
            &format!("{} published", thousands(n)),
            Some(published == n),
        );
        row(
            "DLQ entries (received 12 times)",
            self.dlq.to_string(),
            "0",
            Some(self.dlq == 0),
        );
        row(
            "FAILED steps (ledger attention index)",
            self.ledger.failed.to_string(),
            "0",
            Some(self.ledger.failed == 0),
        );
        let created = |op: &str| self.diff.created.get(op).copied().unwrap_or(0);
        let creates_ok = created("CreateInstance") == n
            && created("CreateIdentityProvider") == self.portals as u64
            && created("CreateIdentitySource") == 1;
        row(
            "resources created",
            format!(
                "CreateInstance {}, CreateIdentityProvider {}, CreateIdentitySource {}",
                thousands(created("CreateInstance")),
                thousands(created("CreateIdentityProvider")),
                created("CreateIdentitySource")
            ),
            &format!(
                "{} / {} / 1 (= accounts / portals / organization)",
                thousands(n),
                thousands(self.portals as u64)
            ),
            Some(creates_ok),
        );
        let ready = |step: &str| {
            self.ledger
                .by_step
                .get(&(step.to_owned(), "READY".to_owned()))
                .copied()
                .unwrap_or(0)
        };
        let not_ready: u64 = self
            .ledger
            .by_step
            .iter()
            .filter(|((_, status), _)| status != "READY")
            .map(|(_, n)| n)
            .sum();
        row(
            "ledger steps READY",
            format!(
                "{} / {} / {} ({} not READY)",
                thousands(ready("identity-center-instance")),
                thousands(ready("web-identity-provider")),
                ready("approval-identity-source"),
                not_ready
            ),
            &format!(
                "{} / {} / 1, none other",
                thousands(n),
                thousands(self.portals as u64)
            ),
            Some(
                ready("identity-center-instance") == n
                    && ready("web-identity-provider") == self.portals as u64
                    && ready("approval-identity-source") == 1
                    && not_ready == 0,
            ),
        );
        let dynamodb: u64 = self.functions.iter().map(|f| f.dynamodb.get()).sum();
        let per = |v: u64| v as f64 / n.max(1) as f64;
        // A first pass is 2 writes; each duplicate of the organization's step is 1 claim.
        let expected = 2.0 + 2.0 * self.portals as f64 / n.max(1) as f64 + 1.0;
        let breakdown = self
            .functions
            .iter()
            .map(|f| format!("{} {:.2}", f.name, per(f.dynamodb.get())))
            .collect::<Vec<_>>()
            .join(", ");
        row(
            "DynamoDB requests per account (every attempt counted)",
            format!(
                "{:.2} ({breakdown}; {} in all)",
                per(dynamodb),
                thousands(dynamodb)
            ),
            &format!(
                "~{expected:.2}: 2 per step created (instance 2, provider 2 x {}/{}), 1 per duplicate of the organization's step; retried records add their claims",
                self.portals, n
            ),
            None,
        );
        let put_events = self
            .functions
            .iter()
            .map(|f| {
                let inv = f.invocations.load(Ordering::Relaxed);
                let calls = f.put_events.get();
                format!(
                    "{} {:.2} ({} calls / {} invocations; {:.2} Ready events per call)",
                    f.name,
                    calls as f64 / inv.max(1) as f64,
                    thousands(calls),
                    thousands(inv),
                    ready(f.name) as f64 / calls.max(1) as f64,
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let put_ok = self
            .functions
            .iter()
            .all(|f| f.put_events.get() <= f.invocations.load(Ordering::Relaxed));
        row(
            "PutEvents calls per invocation (the announcements of one invocation share a call)",
            put_events,
            "<= 1",
            Some(put_ok),
        );
        let invocations = self
            .functions
            .iter()
            .map(|f| {
                format!(
                    "{}: {} invocations, {} records delivered, {} retried{}{}",
                    f.name,
                    thousands(f.invocations.load(Ordering::Relaxed)),
                    thousands(f.deliveries.load(Ordering::Relaxed)),
                    thousands(f.retried.load(Ordering::Relaxed)),
                    match f.errors.load(Ordering::Relaxed) {
                        0 => String::new(),
                        e => format!(", {e} invocations failed"),
                    },
                    match f.poll_errors.load(Ordering::Relaxed) {
                        0 => String::new(),
                        e => format!(", {e} SQS errors"),
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        row("invocations", invocations, "-", None);
        row(
            "GetSecretValue calls (web-identity-provider)",
            format!(
                "{} for {} providers",
                thousands(self.secrets),
                thousands(self.portals as u64)
            ),
            "<= 1 per invocation that creates",
            None,
        );
        let throttled = if self.diff.throttled.is_empty() {
            "none".to_owned()
        } else {
            self.diff
                .throttled
                .iter()
                .map(|(op, t)| {
                    format!(
                        "{op} {} of {}",
                        thousands(*t),
                        thousands(self.diff.calls.get(op).copied().unwrap_or(0))
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        row(
            "calls throttled by the quotas (of all calls)",
            throttled,
            "-",
            None,
        );
        let calls = self
            .diff
            .calls
            .iter()
            .map(|(op, c)| format!("{op} {}", thousands(*c)))
            .collect::<Vec<_>>()
            .join(", ");
        row("emulator calls", calls, "-", None);
        let busy = self
            .moto
            .iter()
            .map(|(which, t)| {
                format!(
                    "{which} {} ({} requests)",
                    secs(t.busy),
                    thousands(t.requests)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        row(
            "moto busy (at least one request waiting on it; SQS long polls not counted)",
            format!("{busy}; of {}", secs(self.wall)),
            "-",
            None,
        );
        let mut out = format!(
            "\n### Backfill\n\n`onboarding backfill --portals FILE --rate {} --json` (the CLI binary) -> moto EventBridge -> three moto SQS queues -> {POLLERS} pollers per function (batches of {BATCH}, the real handlers with SQS redelivery delays, engine settings as deployed: lease {}, readiness wait {}, backoff {} to {}, deadline {} per invocation; SDK retries {}) -> moto and the identity emulator with {}.\n\n| measure | measured | target | result |\n|---|---|---|---|\n",
            self.rate,
            secs(self.settings.lease),
            secs(self.settings.ready_wait),
            secs(self.settings.retry_base),
            secs(self.settings.retry_max),
            secs(FUNCTION_TIMEOUT),
            self.retries,
            quota_name(self.quota_scale),
        );
        for r in rows {
            out.push_str(&format!("| {} | {} | {} | {} |\n", r[0], r[1], r[2], r[3]));
        }
        (out, misses)
    }
}

/// "standard, 3 attempts" (with "(as deployed)" when it is `onboarding::aws::retries`).
fn retries_name(retries: &aws_config::retry::RetryConfig) -> String {
    let deployed = onboarding::aws::retries();
    let name = format!(
        "{}, {} attempts",
        if retries.mode() == aws_config::retry::RetryMode::Adaptive {
            "adaptive"
        } else {
            "standard"
        },
        retries.max_attempts()
    );
    let name = if retries.max_backoff() == aws_config::retry::RetryConfig::standard().max_backoff()
    {
        name
    } else {
        format!("{name}, max backoff {} s", retries.max_backoff().as_secs())
    };
    if retries.mode() == deployed.mode()
        && retries.max_attempts() == deployed.max_attempts()
        && retries.max_backoff() == deployed.max_backoff()
    {
        format!("{name} (as deployed)")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_and_operations_are_read_from_the_request_head() {
        let sso = b"POST / HTTP/1.1\r\nx-amz-target: SWBExternalService.CreateInstance\r\nauthorization: AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261130/us-east-1/sso/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n{}";
        assert_eq!(
            caller_and_operation(sso),
            Some(("ASIAEXAMPLE".into(), "CreateInstance".into()))
        );
        let sts = b"POST / HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDLOCALTEST/20261130/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00\r\ncontent-type: application/x-www-form-urlencoded\r\n\r\nAction=AssumeRole&Version=2011-06-15";
        assert_eq!(
            caller_and_operation(sts),
            Some(("AKIDLOCALTEST".into(), "AssumeRole".into()))
        );
        let web = b"GET /portals/arn%3Aaws%3Aworkspaces-web%3Aus-east-1%3A1%3Aportal%2Fx/identityProviders?maxResults=10 HTTP/1.1\r\nauthorization: AWS4-HMAC-SHA256 Credential=ASIAB/20261130/us-east-1/workspaces-web/aws4_request, Signature=0\r\n\r\n";
        assert_eq!(
            caller_and_operation(web),
            Some(("ASIAB".into(), "ListIdentityProviders".into()))
        );
        let create = b"POST /identityProviders HTTP/1.1\r\nauthorization: AWS4-HMAC-SHA256 Credential=ASIAB/20261130/us-east-1/workspaces-web/aws4_request, Signature=0\r\n\r\n{}";
        assert_eq!(
            caller_and_operation(create),
            Some(("ASIAB".into(), "CreateIdentityProvider".into()))
        );
        assert!(is_member_key("ASIAB") && !is_member_key("AKIDLOCALTEST"));
        assert_eq!(caller_and_operation(b"GET / HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn a_bucket_floor_counts_its_burst_as_free() {
        let b = Bucket {
            what: "AssumeRole".into(),
            served: 2600,
            rate: 100.0,
            burst: 100,
        };
        assert_eq!(b.floor(), Duration::from_secs(25));
        let small = Bucket {
            served: 3,
            burst: 5,
            ..b
        };
        assert_eq!(small.floor(), Duration::ZERO);
        assert_eq!(thousands(2500), "2,500");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
