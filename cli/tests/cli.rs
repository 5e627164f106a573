//! The `onboarding` binary as an operator runs it, against the local stack (moto and the
//! identity emulator): steps are made READY and FAILED by the real handlers, then the CLI is
//! run as a subprocess with the standard AWS environment variables pointing at moto.

use std::path::{Path, PathBuf};
use std::process::Output;

use identity_emulator::{AccountConfig, Config as EmulatorConfig};
use integration_tests::deliveries::{oidc_provider, onboarding_requested};
use integration_tests::iam;
use integration_tests::stack::{Stack, REGION};
use onboarding::ledger::{
    Claim, ClaimRequest, ErrorReason, Failure, Ledger, Record, Status, StepKey,
};
use serde_json::{json, Value};

const GOOD: &str = "222222222222";
const REFUSING: &str = "600000000001";
const NAMED: &str = "600000000002";
const REQUESTED: &str = "Account Onboarding Requested";

/// The CLI's environment: nothing from the host's AWS configuration, only the stack's.
fn command(env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_onboarding"));
    cmd.env_clear()
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "AKIDLOCALTEST")
        .env("AWS_SECRET_ACCESS_KEY", "local-secret")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

async fn run_with(env: &[(&str, &str)], args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command(env)
        .args(args)
        .output()
        .await
        .expect("the onboarding binary runs");
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The operator policy a command runs under (template.yaml's `OperatorReadPolicy` for the
/// commands that only read, `OperatorPolicy` for the others): the emulator evaluates each of
/// the CLI's calls against it, so a call the policy lacks fails the test.
fn operator_for(args: &[&str]) -> &'static str {
    let reads = matches!(args.first(), Some(&"status" | &"list")) || args.contains(&"--dry-run");
    if reads {
        iam::OPERATOR_READ
    } else {
        iam::OPERATOR
    }
}

/// Runs the CLI as the operator against the stack: every service at the emulator, which
/// serves the identity services and forwards the others to moto after evaluating the call.
async fn run_as_operator(stack: &Stack, extra: &[(&str, &str)], args: &[&str]) -> Run {
    let url = stack.emulator.url();
    let mut env: Vec<(&str, &str)> = vec![("AWS_ACCESS_KEY_ID", operator_for(args))];
    for var in ENDPOINTS {
        env.push((var, url.as_str()));
    }
    env.extend_from_slice(extra);
    run_with(&env, args).await
}

/// Every service the CLI calls, all at the emulator.
const ENDPOINTS: [&str; 8] = [
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_ORGANIZATIONS",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_SSO_ADMIN",
    "AWS_ENDPOINT_URL_MPA",
    "AWS_ENDPOINT_URL_WORKSPACES_WEB",
];

async fn run(stack: &Stack, args: &[&str]) -> Run {
    run_as_operator(
        stack,
        &[
            ("LEDGER_TABLE", &stack.table),
            ("EVENT_BUS_NAME", &stack.bus),
            ("ORG_INSTANCE_ARN", &stack.organization_instance_arn),
        ],
        args,
    )
    .await
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn requests(emitted: &[Value]) -> Vec<&Value> {
    emitted
        .iter()
        .filter(|e| e["detail-type"] == REQUESTED)
        .collect()
}

async fn step(ledger: &Ledger, account: &str, step: &str) -> Record {
    ledger
        .get_step(&StepKey::account(account, step))
        .await
        .expect("ledger read")
        .expect("step in the ledger")
}

/// A temporary directory of this test's own, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("onboarding-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, value: &Value) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json")).expect("write");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn status_list_and_retry_work_on_ready_and_failed_steps() {
    let mut config = EmulatorConfig::default();
    config
        .accounts
        .push(AccountConfig::new(REFUSING).refusing_role("*"));
    config
        .accounts
        .push(AccountConfig::new(NAMED).refusing_role("*"));
    let stack = Stack::start_with("cli", config).await;
    // No grace window: a refused member role fails at once.
    let instance = stack.instance_handler(stack.engine_with(onboarding::engine::EngineSettings {
        member_role_grace: std::time::Duration::ZERO,
        ..stack.settings.engine.clone()
    }));
    let approval = stack.approval_handler(stack.engine());
    let good = onboarding_requested("c-1", GOOD, json!({}));
    let (reply, _) = instance.handle(good.clone(), None).await.expect("good");
    assert_eq!(reply["status"], "ready", "{reply}");
    let (reply, _) = approval.handle(good, None).await.expect("org step");
    assert_eq!(reply["status"], "ready", "{reply}");
    let (reply, _) = instance
        .handle(onboarding_requested("c-2", REFUSING, json!({})), None)
        .await
        .expect("refused");
    assert_eq!(reply["status"], "failed", "{reply}");
    let named = onboarding_requested(
        "c-3",
        NAMED,
        json!({ "identityCenterInstance": { "name": "named-prod", "tags": { "Team": "a" } } }),
    );
    let (reply, _) = instance.handle(named.clone(), None).await.expect("refused");
    assert_eq!(reply["status"], "failed", "{reply}");
    stack.emitted().await;
    let ledger = stack.engine().ledger().clone();
    let ready = step(&ledger, GOOD, "identity-center-instance").await;
    let arn = ready.resource_arn.clone().expect("READY has an ARN");

    // status: a table with the account's step and the organization's.
    let out = run(&stack, &["status", GOOD]).await;
    assert_eq!(out.code, 0, "{out:?}");
    for text in [
        "identity-center-instance",
        "approval-identity-source",
        "organization",
        "READY",
        arn.as_str(),
    ] {
        assert!(out.stdout.contains(text), "{text} missing: {out:?}");
    }
    assert!(!out.stdout.contains("FAILED"), "{out:?}");

    // status --json: the ledger's records.
    let out = run(&stack, &["status", GOOD, "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["accountId"], GOOD);
    let steps = doc["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "{doc}");
    assert_eq!(steps[0]["key"]["step"], "identity-center-instance");
    assert_eq!(steps[0]["status"], "READY");
    assert_eq!(steps[0]["resource_arn"], arn.as_str());
    assert_eq!(steps[0]["generation"], 0);
    assert_eq!(
        doc["organization"]["steps"][0]["key"]["step"],
        "approval-identity-source"
    );
    assert_eq!(doc["organization"]["steps"][0]["status"], "READY");

    // A failed step: its error and what to do next.
    let out = run(&stack, &["status", REFUSING]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("FAILED"), "{out:?}");
    assert!(out.stdout.contains("MemberRoleUnavailable"), "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "onboarding retry {REFUSING} identity-center-instance"
        )),
        "{out:?}"
    );

    // An account the ledger does not know: refused, saying what to do.
    let out = run(&stack, &["status", "999999999999"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("no steps for account 999999999999"),
        "{out:?}"
    );
    assert!(out.stderr.contains("hint:"), "{out:?}");

    // list --status FAILED finds exactly the failed steps.
    let out = run(&stack, &["list", "--status", "FAILED", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let listed = out.json();
    let mut accounts: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "FAILED", "{r}");
            r["account_id"].as_str().expect("account id")
        })
        .collect();
    accounts.sort();
    assert_eq!(accounts, vec![REFUSING, NAMED]);
    let out = run(&stack, &["list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(REFUSING) && out.stdout.contains(NAMED),
        "{out:?}"
    );
    assert!(
        !out.stdout.contains(GOOD),
        "READY steps need no attention: {out:?}"
    );
    let out = run(&stack, &["list", "--status", "CREATED"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("No steps are CREATED"), "{out:?}");
    // READY steps are in no index: the one listing that scans the table.
    let out = run(&stack, &["list", "--status", "READY"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(GOOD), "{out:?}");

    // retry of a READY step: refused, nothing changed, nothing published.
    let out = run(&stack, &["retry", GOOD, "identity-center-instance"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("READY"), "{out:?}");
    assert!(out.stderr.contains("nothing to retry"), "{out:?}");
    assert_eq!(
        step(&ledger, GOOD, "identity-center-instance")
            .await
            .generation,
        0
    );
    assert!(requests(&stack.emitted().await).is_empty());

    // retry of a FAILED step (named by a prefix): new generation, request published.
    let out = run(&stack, &["retry", REFUSING, "identity"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("generation 0 -> 1"), "{out:?}");
    let record = step(&ledger, REFUSING, "identity-center-instance").await;
    assert_eq!(record.generation, 1);
    assert_eq!(record.status, Status::InProgress);
    let emitted = stack.emitted().await;
    let published = requests(&emitted);
    assert_eq!(published.len(), 1, "{emitted:?}");
    assert_eq!(published[0]["source"], "identity-onboarding");
    assert_eq!(
        published[0]["detail"],
        json!({ "schemaVersion": "1", "accountId": REFUSING })
    );
    // The functions act on the published request: the new generation runs (and fails
    // again, the role still refusing).
    let (reply, _) = instance
        .handle(published[0].clone(), None)
        .await
        .expect("handled");
    assert_eq!(reply["status"], "failed", "{reply}");
    let record = step(&ledger, REFUSING, "identity-center-instance").await;
    assert_eq!(
        (record.status, record.generation, record.attempt),
        (Status::Failed, 1, 1)
    );

    // The failed request named and tagged the instance: retry publishes it again as the
    // ledger recorded it (`requested`), with its fields and its time, not a default request.
    let out = run(
        &stack,
        &["retry", NAMED, "identity-center-instance", "--json"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["previousGeneration"], 0);
    assert_eq!(doc["generation"], 1);
    assert_eq!(doc["record"]["status"], "IN_PROGRESS");
    assert_eq!(
        doc["published"]["republishes"],
        "2026-11-22T09:00:00.000Z#c-3"
    );
    assert_eq!(doc["published"]["time"], "2026-11-22T09:00:00.000Z");
    let emitted = stack.emitted().await;
    let published = requests(&emitted);
    assert_eq!(published.len(), 1, "{emitted:?}");
    let recorded = json!({
        "schemaVersion": "1",
        "accountId": NAMED,
        "identityCenterInstance": { "name": "named-prod", "tags": { "Team": "a" } }
    });
    assert_eq!(published[0]["detail"], recorded);
    // It reaches the bus with the request's own time, under a new event id.
    assert_eq!(published[0]["time"], named["time"], "{:?}", published[0]);
    assert_ne!(published[0]["id"], named["id"]);
    assert_eq!(doc["published"]["eventId"], published[0]["id"]);
    let republished = published[0].clone();

    // The reset cleared the failed generation's request (no create was sent with it), so
    // retrying again before a delivery picks it up needs the request named...
    let out = run(&stack, &["retry", NAMED, "identity-center-instance"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("--event FILE"), "{out:?}");
    assert!(out.stderr.contains("reset"), "{out:?}");
    assert!(requests(&stack.emitted().await).is_empty());
    // ... by an event that carries its time: one without is refused, naming the file...
    let dir = TempDir::new("retry");
    let mut timeless = named.clone();
    if let Some(map) = timeless.as_object_mut() {
        map.remove("time");
    }
    let timeless_file = dir.write("timeless.json", &timeless);
    let out = run(
        &stack,
        &[
            "retry",
            NAMED,
            "identity-center-instance",
            "--event",
            &timeless_file,
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("time: missing"), "{out:?}");
    assert!(out.stderr.contains("timeless.json"), "{out:?}");
    assert!(requests(&stack.emitted().await).is_empty());
    // ... and the original event is published again, without a second reset, at its time.
    let file = dir.write("named.json", &named);
    let out = run(
        &stack,
        &["retry", NAMED, "identity-center-instance", "--event", &file],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("already reset"), "{out:?}");
    assert!(
        out.stdout.contains("2026-11-22T09:00:00.000Z"),
        "the output names the time it keeps: {out:?}"
    );
    assert_eq!(
        step(&ledger, NAMED, "identity-center-instance")
            .await
            .generation,
        1
    );
    let emitted = stack.emitted().await;
    let published = requests(&emitted);
    assert_eq!(published.len(), 1, "{emitted:?}");
    assert_eq!(published[0]["detail"], named["detail"]);
    assert_eq!(published[0]["time"], named["time"]);

    // The function receives the republished request as the one that failed: the new
    // generation records its fields at its time (and fails again, the role still refusing).
    let (reply, _) = instance.handle(republished, None).await.expect("handled");
    assert_eq!(reply["status"], "failed", "{reply}");
    let record = step(&ledger, NAMED, "identity-center-instance").await;
    assert_eq!((record.status, record.generation), (Status::Failed, 1));
    assert_eq!(
        record.requested.map(Value::Object),
        Some(recorded["identityCenterInstance"].clone())
    );
    assert_eq!(
        record.requested_revision.as_ref().map(|r| r.time()),
        Some("2026-11-22T09:00:00.000Z")
    );

    // A step the account does not have; the web provider step needs its event.
    let out = run(&stack, &["retry", GOOD, "web-identity-provider"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("its steps are"), "{out:?}");
    // The organization's step is READY: nothing to retry.
    let out = run(
        &stack,
        &[
            "retry",
            "org",
            "approval-identity-source",
            "--account",
            GOOD,
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("READY"), "{out:?}");
}

#[tokio::test]
async fn retry_rebuilds_provider_and_organization_steps_from_what_the_operator_names() {
    let portal = format!(
        "arn:aws:workspaces-web:us-east-1:{GOOD}:portal/0d5e1c8a-3b7f-4e2a-9c6d-1f2e3a4b5c6d"
    );
    let mut config = EmulatorConfig::default();
    config
        .accounts
        .push(AccountConfig::new(GOOD).with_portal(portal.clone()));
    let stack = Stack::start_with("cli-web", config).await;
    let web = stack.web_handler(stack.engine());
    let instance = stack.instance_handler(stack.engine());
    let approval = stack.approval_handler(stack.engine());
    let ledger = stack.engine().ledger().clone();

    // The provider's secret is missing: the step fails permanently.
    let request = onboarding_requested(
        "w-1",
        GOOD,
        oidc_provider(&portal, "corp-oidc", "onboarding/cli-oidc"),
    );
    let (reply, _) = web.handle(request.clone(), None).await.expect("handled");
    assert_eq!(reply["status"], "failed", "{reply}");
    let (reply, _) = instance
        .handle(request.clone(), None)
        .await
        .expect("handled");
    assert_eq!(reply["status"], "ready", "{reply}");
    // A newer request names the instance and a tag: the instance's applied state holds
    // fields of two requests.
    let mut named = onboarding_requested(
        "w-2",
        GOOD,
        json!({ "identityCenterInstance": { "name": "carrier", "tags": { "Owner": "team-a" } } }),
    );
    named["time"] = json!("2026-12-01T09:00:00Z");
    let (reply, _) = instance.handle(named.clone(), None).await.expect("handled");
    assert_eq!(reply["status"], "updated", "{reply}");
    stack.emitted().await;
    let out = run(&stack, &["status", GOOD]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ResourceNotFoundException"), "{out:?}");
    // The ledger recorded the provider's request: retry rebuilds it, no file needed.
    assert!(
        out.stdout
            .contains(&format!("onboarding retry {GOOD} web-identity-provider#")),
        "{out:?}"
    );
    assert!(!out.stdout.contains("--event FILE"), "{out:?}");
    // A request for another provider is not this step's.
    let dir = TempDir::new("web");
    let other = onboarding_requested(
        "w-2",
        GOOD,
        oidc_provider(&portal, "other-oidc", "onboarding/cli-oidc"),
    );
    let other_file = dir.write("other.json", &other);
    let out = run(
        &stack,
        &[
            "retry",
            GOOD,
            "web-identity-provider",
            "--event",
            &other_file,
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("other-oidc"), "{out:?}");

    // The operator creates the secret and retries: the request the ledger recorded is
    // published again (the provider's fields, its time), and the function consuming it
    // creates the provider.
    stack
        .put_secret(
            "onboarding/cli-oidc",
            &json!({ "client_secret": "canary-cli-secret" }),
        )
        .await;
    let out = run(&stack, &["retry", GOOD, "web-identity-provider"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("the ledger recorded"), "{out:?}");
    let emitted = stack.emitted().await;
    let published = requests(&emitted);
    assert_eq!(published.len(), 1, "{emitted:?}");
    assert_eq!(
        published[0]["detail"]["webIdentityProvider"],
        request["detail"]["webIdentityProvider"]
    );
    assert_eq!(published[0]["detail"]["accountId"], GOOD);
    assert_eq!(published[0]["time"], request["time"]);
    let (reply, _) = web
        .handle(published[0].clone(), None)
        .await
        .expect("handled");
    assert_eq!(reply["status"], "ready", "{reply}");
    let key = StepKey::account(GOOD, &format!("web-identity-provider#{portal}#corp-oidc"));
    let record = ledger.get_step(&key).await.expect("read").expect("step");
    assert_eq!((record.status, record.generation), (Status::Ready, 1));
    assert_eq!(
        stack.emulator.counters().created("CreateIdentityProvider"),
        1
    );

    // The organization's step failed (recorded as the engine records it).
    let org = StepKey::org(&stack.organization_instance_arn, "approval-identity-source");
    let lease = match ledger
        .claim(
            &org,
            &ClaimRequest {
                request_hash: "earlier",
                event_id: "o-1",
                lease: std::time::Duration::from_secs(30),
                deadline: None,
            },
        )
        .await
        .expect("claim")
    {
        Claim::Acquired(lease) => lease,
        other => panic!("expected to acquire the org step, got {other:?}"),
    };
    let reason = ErrorReason {
        retryable: false,
        code: "ServiceQuotaExceededException".into(),
        message: "too many identity sources".into(),
    };
    ledger
        .fail(&lease, Failure::Permanent, &reason)
        .await
        .expect("fail");
    let out = run(&stack, &["status", "org"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("ServiceQuotaExceededException"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("onboarding retry org approval-identity-source --account"),
        "{out:?}"
    );
    // It needs an onboarded account to carry the request.
    let out = run(&stack, &["retry", "org", "approval-identity-source"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    let out = run(
        &stack,
        &["retry", "org", "approval", "--account", "999999999999"],
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("not in the ledger"), "{out:?}");
    let out = run(&stack, &["retry", "org", "approval", "--account", GOOD]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let emitted = stack.emitted().await;
    let published = requests(&emitted);
    assert_eq!(published.len(), 1, "{emitted:?}");
    // A request of the carrying account that asks it nothing, at its applied revision's
    // time: never its applied state stamped with the newest revision.
    assert_eq!(
        published[0]["detail"],
        json!({ "schemaVersion": "1", "accountId": GOOD })
    );
    assert_eq!(published[0]["time"], named["time"]);
    let (reply, _) = approval
        .handle(published[0].clone(), None)
        .await
        .expect("handled");
    assert_eq!(reply["status"], "ready", "{reply}");
    let record = ledger.get_step(&org).await.expect("read").expect("step");
    assert_eq!((record.status, record.generation), (Status::Ready, 1));
    // For the carrying account the request was a duplicate.
    let (reply, _) = instance
        .handle(published[0].clone(), None)
        .await
        .expect("handled");
    assert_eq!(reply["status"], "duplicate", "{reply}");
}

#[tokio::test]
async fn replay_publishes_events_from_files_and_directories() {
    let stack = Stack::start("cli-replay").await;
    let sample = events_dir().join("onboarding-requested.json");
    let sample_path = sample.display().to_string();
    let original: Value =
        serde_json::from_slice(&std::fs::read(&sample).expect("sample")).expect("sample JSON");

    // --dry-run lists it and sends nothing.
    let out = run(&stack, &["replay", &sample_path, "--dry-run"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("would send: onboard account 222222222222"),
        "{out:?}"
    );
    assert!(stack.emitted().await.is_empty());

    // The sample is published as the file has it; EventBridge gives it a new id.
    let out = run(&stack, &["replay", &sample_path]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Sent 1 of 1"), "{out:?}");
    let emitted = stack.emitted().await;
    assert_eq!(emitted.len(), 1, "{emitted:?}");
    assert_eq!(emitted[0]["source"], original["source"]);
    assert_eq!(emitted[0]["detail-type"], original["detail-type"]);
    assert_eq!(emitted[0]["detail"], original["detail"]);
    assert_eq!(
        emitted[0]["time"], original["time"],
        "the event keeps its time"
    );
    assert_ne!(emitted[0]["id"], original["id"]);

    // The samples directory holds events that cannot be published (Control Tower's aws.*
    // source, an invalid event): nothing is sent unless asked to skip them.
    let dir_path = events_dir().display().to_string();
    let out = run(&stack, &["replay", &dir_path]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("nothing was sent"), "{out:?}");
    assert!(out.stdout.contains("aws.*"), "{out:?}");
    assert!(stack.emitted().await.is_empty());
    let out = run(
        &stack,
        &["replay", &dir_path, "--skip-invalid", "--dry-run", "--json"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let plan = out.json();
    let would: Vec<&Value> = plan["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["state"] == "would-send")
        .collect();
    assert!(would.len() >= 2, "{plan}");
    assert!(plan["invalid"].as_u64().unwrap_or(0) >= 2, "{plan}");
    let out = run(&stack, &["replay", &dir_path, "--skip-invalid", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert_eq!(
        report["sent"].as_u64(),
        Some(would.len() as u64),
        "{report}"
    );
    assert_eq!(stack.emitted().await.len(), would.len());

    // An array of 12 events goes out in two PutEvents calls; an SQS batch's bodies too.
    let dir = TempDir::new("replay");
    let many: Vec<Value> = (0..12)
        .map(|i| onboarding_requested(&format!("r-{i}"), &format!("90000000{i:04}"), json!({})))
        .collect();
    let array = dir.write("many.json", &Value::Array(many));
    let out = run(&stack, &["replay", &array, "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["sent"], 12);
    let mut accounts: Vec<String> = stack
        .emitted()
        .await
        .iter()
        .map(|e| {
            e["detail"]["accountId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    accounts.sort();
    let expected: Vec<String> = (0..12).map(|i| format!("90000000{i:04}")).collect();
    assert_eq!(accounts, expected);

    // A file that is not an event: refused with the reason, nothing sent.
    let junk = dir.write("junk.json", &json!({ "hello": "world" }));
    let out = run(&stack, &["replay", &junk]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("source: missing"), "{out:?}");
    assert!(stack.emitted().await.is_empty());
}

/// The instance's name, read through the member account.
async fn instance_name(stack: &Stack, account: &str, arn: &str) -> String {
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    sso.describe_instance()
        .instance_arn(arn)
        .send()
        .await
        .expect("DescribeInstance")
        .name()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_replayed_request_keeps_its_time_and_stays_older_than_a_newer_one() {
    const ACCOUNT: &str = "600000000010";
    let stack = Stack::start("cli-time").await;
    let instance = stack.instance_handler(stack.engine());
    let ledger = stack.engine().ledger().clone();
    let named_at = |id: &str, time: &str, name: &str| {
        let mut event = onboarding_requested(
            id,
            ACCOUNT,
            json!({ "identityCenterInstance": { "name": name } }),
        );
        event["time"] = json!(time);
        event
    };
    let ten = named_at("t-10", "2026-11-20T10:00:00Z", "one");
    let eleven = named_at("t-11", "2026-11-20T11:00:00Z", "two");
    let (reply, _) = instance.handle(ten.clone(), None).await.expect("10:00");
    assert_eq!(reply["status"], "ready", "{reply}");
    let (reply, _) = instance.handle(eleven, None).await.expect("11:00");
    assert_eq!(reply["status"], "updated", "{reply}");
    let arn = reply["resourceArn"].as_str().expect("ARN").to_owned();
    assert_eq!(instance_name(&stack, ACCOUNT, &arn).await, "two");
    stack.emitted().await;

    // The operator replays the 10:00 request. The plan shows the time each event keeps.
    let dir = TempDir::new("time");
    let file = dir.write("ten.json", &ten);
    let out = run(&stack, &["replay", &file, "--dry-run"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("2026-11-20T10:00:00.000Z"), "{out:?}");
    assert!(out.stdout.contains("keeps its own time"), "{out:?}");
    let out = run(&stack, &["replay", &file, "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["entries"][0]["time"], "2026-11-20T10:00:00.000Z");

    // It reaches the bus with its own time (a new id) ...
    let emitted = stack.emitted().await;
    let published = requests(&emitted);
    assert_eq!(published.len(), 1, "{emitted:?}");
    assert_eq!(
        published[0]["time"], "2026-11-20T10:00:00Z",
        "{:?}",
        published[0]
    );
    assert_ne!(published[0]["id"], ten["id"]);
    // ... so the function takes it for what it is, older than the 11:00 request that
    // applied: a duplicate. The instance keeps the 11:00 name; nothing is announced.
    let (reply, _) = instance
        .handle(published[0].clone(), None)
        .await
        .expect("replayed");
    assert_eq!(reply["status"], "duplicate", "{reply}");
    assert_eq!(instance_name(&stack, ACCOUNT, &arn).await, "two");
    let record = step(&ledger, ACCOUNT, "identity-center-instance").await;
    assert_eq!(
        record.applied_revision.as_ref().map(|r| r.as_str()),
        Some("2026-11-20T11:00:00.000Z#t-11")
    );
    assert!(
        stack
            .emitted()
            .await
            .iter()
            .all(|e| e["detail-type"] != "Identity Center Instance Updated"),
        "a replay of an older request announces nothing"
    );
    assert_eq!(stack.emulator.counters().calls("UpdateInstance"), 1);

    // An event without a time is refused, naming the file; nothing is sent.
    let mut timeless = ten.clone();
    if let Some(map) = timeless.as_object_mut() {
        map.remove("time");
    }
    let timeless_file = dir.write("timeless.json", &timeless);
    let out = run(&stack, &["replay", &timeless_file]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("timeless.json"), "{out:?}");
    assert!(out.stdout.contains("time: missing"), "{out:?}");
    assert!(out.stderr.contains("nothing was sent"), "{out:?}");
    // So is one whose time is not a time.
    let mut bad = ten.clone();
    bad["time"] = json!("2026-13-40T10:00:00Z");
    let bad_file = dir.write("bad-time.json", &bad);
    let out = run(&stack, &["replay", &bad_file, "--json"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    let entry = &out.json()["entries"][0];
    assert_eq!(entry["state"], "invalid", "{entry}");
    assert!(
        entry["result"]
            .as_str()
            .unwrap_or_default()
            .contains("time"),
        "{entry}"
    );
    assert!(stack.emitted().await.is_empty());
}

#[tokio::test]
async fn usage_and_runtime_errors_have_their_exit_codes() {
    let no_env: &[(&str, &str)] = &[];
    let out = run_with(no_env, &["--help"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Exit codes"), "{out:?}");
    for cmd in ["status", "list", "retry", "replay"] {
        let out = run_with(no_env, &[cmd, "--help"]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("Examples:"), "{cmd}: {out:?}");
    }

    for args in [
        vec![],
        vec!["status"],
        vec!["status", "12ab"],
        vec!["list", "--status", "DONE"],
        vec!["retry", GOOD],
        vec!["replay"],
        vec!["frobnicate"],
    ] {
        let out = run_with(no_env, &args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
    // No table configured: a usage error that names the setting.
    let out = run_with(no_env, &["status", GOOD]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("LEDGER_TABLE"), "{out:?}");
    // `org` needs the organization instance.
    let out = run_with(&[("LEDGER_TABLE", "t")], &["status", "org"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("ORG_INSTANCE_ARN"), "{out:?}");
    // A missing replay file.
    let out = run_with(no_env, &["replay", "/nonexistent/events.json"]).await;
    assert_eq!(out.code, 2, "{out:?}");

    // Nothing listens: a runtime error that says to try again; JSON errors for scripts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let dead = format!("http://127.0.0.1:{port}");
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", dead.as_str()),
        ("LEDGER_TABLE", "ledger"),
    ];
    let out = run_with(&env, &["list", "--json"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let error: Value = serde_json::from_str(out.stderr.trim()).expect("a JSON error");
    assert_eq!(error["error"]["exitCode"], 1);
    assert!(
        error["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("again"),
        "{error}"
    );
}

#[tokio::test]
async fn status_shows_the_applied_revision_and_the_origin() {
    let stack = Stack::start_with("cli-revisions", EmulatorConfig::default()).await;
    let instance = stack.instance_handler(stack.engine());
    let mut first = onboarding_requested("rev-1", GOOD, json!({}));
    first["time"] = json!("2026-11-30T10:00:00Z");
    instance.handle(first, None).await.expect("created");
    let mut named = onboarding_requested(
        "rev-2",
        GOOD,
        json!({ "identityCenterInstance": { "name": "payments" } }),
    );
    named["time"] = json!("2026-11-30T10:05:00Z");
    let (reply, _) = instance.handle(named, None).await.expect("updated");
    assert_eq!(reply["status"], "updated", "{reply}");

    let out = run(&stack, &["status", GOOD]).await;
    assert_eq!(out.code, 0, "{out:?}");
    for text in [
        "ORIGIN",
        "created",
        "Revisions",
        "applied 2026-11-30T10:05:00.000Z#rev-2",
    ] {
        assert!(out.stdout.contains(text), "{text:?} in {out:?}");
    }
}

#[tokio::test]
async fn sweep_finishes_what_no_message_will_and_reports_drift() {
    let stack = Stack::start_with("cli-sweep", EmulatorConfig::default()).await;
    let impatient = onboarding::engine::EngineSettings {
        ready_wait: std::time::Duration::ZERO,
        ..stack.settings.engine.clone()
    };
    let instance = stack.instance_handler(stack.engine_with(impatient));
    let err = instance
        .handle(onboarding_requested("sw-1", GOOD, json!({})), None)
        .await
        .expect_err("created, not active yet");
    assert_eq!(err.code(), "NotReady");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let env = [
        ("LEDGER_TABLE", stack.table.as_str()),
        ("EVENT_BUS_NAME", stack.bus.as_str()),
        ("ORG_INSTANCE_ARN", stack.organization_instance_arn.as_str()),
    ];
    let dry = run_as_operator(&stack, &env, &["sweep", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would re-drive"), "{dry:?}");
    assert!(dry.stdout.contains("Dry run"), "{dry:?}");
    let ledger = stack.engine().ledger().clone();
    assert_eq!(
        step(&ledger, GOOD, "identity-center-instance").await.status,
        Status::Created,
        "a dry run changes nothing"
    );

    let out = run_as_operator(&stack, &env, &["sweep"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("1 re-driven (1 finished"), "{out:?}");
    let ready = step(&ledger, GOOD, "identity-center-instance").await;
    assert_eq!(ready.status, Status::Ready);

    // Deleted behind the project's back: the next sweep reports it, status shows it.
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(GOOD).await);
    sso.delete_instance()
        .instance_arn(ready.resource_arn.clone().unwrap())
        .send()
        .await
        .unwrap();
    let out = run_as_operator(&stack, &env, &["sweep", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["report"]["drift"], 1, "{out:?}");
    let status = run_as_operator(&stack, &env, &["status", GOOD]).await;
    assert!(status.stdout.contains("the resource is gone"), "{status:?}");
}

/// The account's instances, as its member role lists them: (ARN, status).
async fn instances_of(stack: &Stack, account: &str) -> Vec<(String, String)> {
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    let out = sso.list_instances().send().await.expect("ListInstances");
    out.instances()
        .iter()
        .filter(|i| i.owner_account_id() == Some(account))
        .map(|i| {
            (
                i.instance_arn().unwrap_or_default().to_owned(),
                i.status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn retry_replace_deletes_a_create_failed_instance_only_when_confirmed() {
    const FAILING: &str = "600000000003";
    const STEP: &str = "identity-center-instance";
    let mut config = EmulatorConfig::default();
    // The account's first instance ends CREATE_FAILED; the next one it is asked for works.
    config.accounts.push(
        AccountConfig::new(FAILING).failing_instance_creation_times("KMS key unavailable", 1),
    );
    let stack = Stack::start_with("cli-replace", config).await;
    let instance = stack.instance_handler(stack.engine());
    let (reply, _) = instance
        .handle(onboarding_requested("r-1", GOOD, json!({})), None)
        .await
        .expect("good");
    assert_eq!(reply["status"], "ready", "{reply}");
    let (reply, _) = instance
        .handle(onboarding_requested("r-2", FAILING, json!({})), None)
        .await
        .expect("failing");
    assert_eq!(reply["status"], "failed", "{reply}");
    stack.emitted().await;
    let ledger = stack.engine().ledger().clone();
    let failed = step(&ledger, FAILING, STEP).await;
    assert_eq!(failed.status, Status::Failed);
    // The ledger may not keep a failed instance's ARN: --replace finds it with ListInstances.
    let listed = instances_of(&stack, FAILING).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (failed_arn, status) = listed[0].clone();
    assert_eq!(status, "CREATE_FAILED");
    if let Some(recorded) = &failed.resource_arn {
        assert_eq!(recorded, &failed_arn);
    }
    // A plain retry could never succeed: the account holds its failed instance.

    // No terminal to confirm on, no --yes: refused, nothing deleted, nothing reset.
    let out = run(&stack, &["retry", FAILING, STEP, "--replace"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("no terminal"), "{out:?}");
    assert!(out.stderr.contains("--yes"), "{out:?}");
    assert!(out.stderr.contains("nothing was deleted"), "{out:?}");
    assert_eq!(instances_of(&stack, FAILING).await.len(), 1);
    let record = step(&ledger, FAILING, STEP).await;
    assert_eq!((record.status, record.generation), (Status::Failed, 0));
    assert!(requests(&stack.emitted().await).is_empty());

    // A READY step: refused, its instance untouched.
    let good_arn = step(&ledger, GOOD, STEP).await.resource_arn.expect("ARN");
    let out = run(&stack, &["retry", GOOD, STEP, "--replace", "--yes"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("READY"), "{out:?}");
    assert!(out.stderr.contains("nothing was deleted"), "{out:?}");
    assert_eq!(
        instances_of(&stack, GOOD).await,
        vec![(good_arn, "ACTIVE".to_owned())]
    );
    assert_eq!(step(&ledger, GOOD, STEP).await.generation, 0);
    assert!(requests(&stack.emitted().await).is_empty());

    // Confirmed: the failed instance is deleted, the step starts a new generation and its
    // request is published.
    let out = run(&stack, &["retry", FAILING, STEP, "--replace", "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&failed_arn),
        "shows what it deletes: {out:?}"
    );
    assert!(out.stderr.contains("KMS key unavailable"), "{out:?}");
    assert!(out.stdout.contains("Deleted instance"), "{out:?}");
    assert!(out.stdout.contains("generation 0 -> 1"), "{out:?}");
    assert!(instances_of(&stack, FAILING).await.is_empty());
    let record = step(&ledger, FAILING, STEP).await;
    assert_eq!((record.status, record.generation), (Status::InProgress, 1));
    let emitted = stack.emitted().await;
    let published = requests(&emitted);
    assert_eq!(published.len(), 1, "{emitted:?}");
    assert_eq!(
        published[0]["detail"],
        json!({ "schemaVersion": "1", "accountId": FAILING })
    );

    // The next delivery creates a new instance, which becomes READY.
    let (reply, _) = instance
        .handle(published[0].clone(), None)
        .await
        .expect("handled");
    assert_eq!(reply["status"], "ready", "{reply}");
    let ready = step(&ledger, FAILING, STEP).await;
    assert_eq!((ready.status, ready.generation), (Status::Ready, 1));
    let new_arn = ready.resource_arn.expect("READY has an ARN");
    assert_ne!(new_arn, failed_arn);
    assert_eq!(
        instances_of(&stack, FAILING).await,
        vec![(new_arn, "ACTIVE".to_owned())]
    );

    // Nothing left to replace: a READY step is refused again.
    let out = run(&stack, &["retry", FAILING, STEP, "--replace", "--yes"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(instances_of(&stack, FAILING).await.len(), 1);
}
