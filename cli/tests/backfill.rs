//! `onboarding backfill` as an operator runs it, against the local stack: an organization of
//! its own in moto (AWS Organizations) for each test, the stack's ledger table and bus, the
//! CLI run as a subprocess with the standard AWS environment variables pointing at moto.
//!
//! Each test's organization lives in an account of its own: moto keeps one organization per
//! account, and the tests run side by side. The test assumes a role in that account (moto's
//! STS) and hands the CLI those credentials as a profile (`--organizations-profile`, as an
//! operator whose stack is not in the management account does), while the ledger and the bus
//! are read and written with the stack's credentials.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_organizations::config::Credentials;
use integration_tests::deliveries::onboarding_requested;
use integration_tests::stack::{eventually, Stack, REGION};
use onboarding::ledger::{Claim, ClaimRequest, ErrorReason, Failure, Status, StepKey};
use serde_json::{json, Value};

const REQUESTED: &str = "Account Onboarding Requested";
const PROFILE: &str = "organization";
const PORTAL: &str =
    "arn:aws:workspaces-web:us-east-1:444455556666:portal/0d5e1c8a-3b7f-4e2a-9c6d-1f2e3a4b5c6d";

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// A temporary directory of this test's own, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("onboarding-backfill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An organization in moto whose management account is the test's own.
struct Org {
    client: aws_sdk_organizations::Client,
    management: String,
    root: String,
}

impl Org {
    /// A new organization, managed from a new account; its credentials are written to
    /// `dir`'s credentials file as profile [`PROFILE`].
    async fn new(stack: &Stack, dir: &TempDir) -> Org {
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let management = format!("9{:06}{:05}", std::process::id() % 1_000_000, n);
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&stack.config)
                .endpoint_url(&stack.moto_url)
                .build(),
        );
        let assumed = sts
            .assume_role()
            .role_arn(format!(
                "arn:aws:iam::{management}:role/OrganizationAccountAccessRole"
            ))
            .role_session_name("backfill-test")
            .send()
            .await
            .expect("assume a role in the management account (moto STS)");
        let c = assumed.credentials().expect("credentials");
        let (key, secret, token) = (
            c.access_key_id().to_owned(),
            c.secret_access_key().to_owned(),
            c.session_token().to_owned(),
        );
        dir.write(
            "credentials",
            &format!(
                "[{PROFILE}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\naws_session_token = {token}\n"
            ),
        );
        let client = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(&stack.config)
                .endpoint_url(&stack.moto_url)
                .credentials_provider(Credentials::new(key, secret, Some(token), None, "test"))
                .build(),
        );
        let org = client
            .create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send()
            .await
            .expect("create the organization");
        let master = org
            .organization()
            .and_then(|o| o.master_account_id())
            .expect("management account")
            .to_owned();
        assert_eq!(
            master, management,
            "moto made the caller's account the manager"
        );
        let roots = client.list_roots().send().await.expect("roots");
        let root = roots.roots()[0].id().expect("root id").to_owned();
        Org {
            client,
            management,
            root,
        }
    }

    async fn ou(&self, parent: &str, name: &str) -> String {
        self.client
            .create_organizational_unit()
            .parent_id(parent)
            .name(name)
            .send()
            .await
            .expect("create OU")
            .organizational_unit()
            .and_then(|u| u.id())
            .expect("OU id")
            .to_owned()
    }

    /// A new account named `name`, moved under `parent` (unless that is the root).
    async fn account(&self, name: &str, parent: &str) -> String {
        let out = self
            .client
            .create_account()
            .account_name(name)
            .email(format!("{name}@example.com"))
            .send()
            .await
            .expect("create account");
        let id = out
            .create_account_status()
            .and_then(|s| s.account_id())
            .expect("account id")
            .to_owned();
        if parent != self.root {
            self.client
                .move_account()
                .account_id(&id)
                .source_parent_id(&self.root)
                .destination_parent_id(parent)
                .send()
                .await
                .expect("move account");
        }
        id
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
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

/// The operator policy a backfill runs under: the read-only one for a dry run.
fn operator_for(args: &[&str]) -> &'static str {
    if args.contains(&"--dry-run") {
        integration_tests::iam::OPERATOR_READ
    } else {
        integration_tests::iam::OPERATOR
    }
}

/// `onboarding` in `dir` with only the stack's environment (and the organization's
/// profile), nothing from the host's AWS configuration.
fn command(stack: &Stack, dir: &TempDir, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_onboarding"));
    cmd.env_clear()
        .current_dir(&dir.0)
        .env("AWS_REGION", REGION)
        // The ledger and the bus as the operator, evaluated by the emulator (which forwards
        // to moto); the organization is read with its own profile, straight from moto.
        .env("AWS_ACCESS_KEY_ID", operator_for(args))
        .env("AWS_SECRET_ACCESS_KEY", "local-secret")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_DYNAMODB", stack.emulator.url())
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", stack.emulator.url())
        .env("AWS_ENDPOINT_URL_ORGANIZATIONS", &stack.moto_url)
        .env("LEDGER_TABLE", &stack.table)
        .env("EVENT_BUS_NAME", &stack.bus)
        .env("ORGANIZATIONS_PROFILE", PROFILE)
        .args(args);
    cmd
}

async fn run(stack: &Stack, dir: &TempDir, args: &[&str]) -> Run {
    let output = command(stack, dir, args)
        .output()
        .await
        .expect("the onboarding binary runs");
    finished(output)
}

fn finished(output: Output) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = output;
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The onboarding requests published to the bus since the last call.
async fn requests(stack: &Stack) -> Vec<Value> {
    stack
        .emitted()
        .await
        .into_iter()
        .filter(|e| e["detail-type"] == REQUESTED)
        .collect()
}

fn accounts_of(requests: &[Value]) -> BTreeSet<String> {
    requests
        .iter()
        .map(|e| e["detail"]["accountId"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

/// The account entries of a `--json` run, by account id.
fn outcome<'a>(doc: &'a Value, account: &str) -> &'a Value {
    doc["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .find(|a| a["accountId"] == account)
        .unwrap_or_else(|| panic!("{account} not in the report: {doc}"))
}

fn state_accounts(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let Ok(doc) = serde_json::from_str::<Value>(&text) else {
        return BTreeSet::new();
    };
    doc["published"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn dry_run_prints_the_plan_then_a_run_publishes_every_account_but_the_management_one() {
    let stack = Stack::start("backfill-plan").await;
    let dir = TempDir::new("plan");
    let org = Org::new(&stack, &dir).await;
    let a = org.account("payments-prod", &org.root).await;
    let b = org.account("payments-dev", &org.root).await;
    let c = org.account("sandbox", &org.root).await;

    // The plan: a table of every account and a summary; nothing sent, no state written.
    let out = run(&stack, &dir, &["backfill", "--dry-run"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    for id in [&a, &b, &c] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not in the plan: {out:?}"));
        assert!(line.contains("would publish"), "{line}");
    }
    let management = out
        .stdout
        .lines()
        .find(|l| l.starts_with(org.management.as_str()))
        .expect("the management account is listed");
    assert!(
        management.contains("skipped: the management account"),
        "{management}"
    );
    for text in [
        "Summary:",
        "would publish",
        "already ready",
        "failed to publish",
        "Dry run",
    ] {
        assert!(out.stdout.contains(text), "{text} missing: {out:?}");
    }
    assert!(requests(&stack).await.is_empty(), "a dry run sends nothing");
    assert!(
        !dir.path(".onboarding-backfill.json").exists(),
        "a dry run writes no state"
    );

    // --json: the same plan for scripts.
    let out = run(&stack, &dir, &["backfill", "--dry-run", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["dryRun"], true);
    assert_eq!(doc["organization"]["managementAccountId"], org.management);
    assert_eq!(doc["summary"]["wouldPublish"], 3, "{doc}");
    assert_eq!(doc["summary"]["published"], 0);
    assert_eq!(doc["summary"]["listed"], 4);
    assert_eq!(outcome(&doc, &a)["outcome"], "would-publish");
    assert_eq!(outcome(&doc, &a)["name"], "payments-prod");
    assert_eq!(
        outcome(&doc, &a)["steps"]["identity-center-instance"],
        Value::Null,
        "not in the ledger"
    );
    assert_eq!(outcome(&doc, &org.management)["outcome"], "skipped");
    // Progress lines go to stderr with --json, stdout stays JSON.
    assert!(out.stderr.contains("Listed 4 account(s)"), "{out:?}");

    // The run: one request per account, as the functions decode them; the default state file.
    let out = run(&stack, &dir, &["backfill", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["summary"]["published"], 3, "{doc}");
    assert!(outcome(&doc, &b)["eventId"].is_string());
    let sent = requests(&stack).await;
    assert_eq!(accounts_of(&sent), set(&[&a, &b, &c]), "{sent:?}");
    let request = sent
        .iter()
        .find(|e| e["detail"]["accountId"] == a.as_str())
        .expect("a's request");
    assert_eq!(request["source"], "identity-onboarding");
    assert_eq!(
        request["detail"],
        json!({ "schemaVersion": "1", "accountId": a, "accountName": "payments-prod" })
    );
    assert_eq!(
        state_accounts(&dir.path(".onboarding-backfill.json")),
        set(&[&a, &b, &c])
    );

    // The published requests are what the functions act on.
    let handler = stack.instance_handler(stack.engine());
    let (reply, _) = handler
        .handle(request.clone(), None)
        .await
        .expect("the request is handled");
    assert_eq!(reply["status"], "ready", "{reply}");
}

#[tokio::test]
async fn an_ou_is_backfilled_with_or_without_its_nested_ous_and_exclusions() {
    let stack = Stack::start("backfill-ou").await;
    let dir = TempDir::new("ou");
    let org = Org::new(&stack, &dir).await;
    let workloads = org.ou(&org.root, "workloads").await;
    let prod = org.ou(&workloads, "prod").await;
    let payments = org.ou(&prod, "payments").await;
    let sandbox = org.ou(&org.root, "sandbox").await;
    let w1 = org.account("w1", &workloads).await;
    let w2 = org.account("w2", &workloads).await;
    let p1 = org.account("p1", &prod).await;
    let pay1 = org.account("pay1", &payments).await;
    let s1 = org.account("s1", &sandbox).await;
    let r1 = org.account("r1", &org.root).await;

    let plan = |doc: &Value| -> BTreeSet<String> {
        doc["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .map(|a| a["accountId"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    let out = run(
        &stack,
        &dir,
        &["backfill", "--ou", &workloads, "--dry-run", "--json"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        plan(&out.json()),
        set(&[&w1, &w2]),
        "only the OU's own accounts"
    );

    let out = run(
        &stack,
        &dir,
        &[
            "backfill",
            "--ou",
            &workloads,
            "--include-nested",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(plan(&doc), set(&[&w1, &w2, &p1, &pay1]), "{doc}");
    assert_eq!(outcome(&doc, &pay1)["parentId"], payments.as_str());
    assert!(!plan(&doc).contains(&s1) && !plan(&doc).contains(&r1));

    // Exclusions are listed as such and never published.
    let out = run(
        &stack,
        &dir,
        &[
            "backfill",
            "--ou",
            &workloads,
            "--include-nested",
            "--exclude",
            &p1,
            "--exclude",
            &w2,
            "--state",
            "ou.json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let excluded = out
        .stdout
        .lines()
        .find(|l| l.starts_with(p1.as_str()))
        .expect("p1 listed");
    assert!(excluded.contains("excluded (--exclude)"), "{excluded}");
    assert_eq!(accounts_of(&requests(&stack).await), set(&[&w1, &pay1]));

    // The root is a parent too; an OU that does not exist is refused.
    let out = run(
        &stack,
        &dir,
        &["backfill", "--ou", &org.root, "--dry-run", "--json"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(plan(&out.json()), set(&[&r1, &org.management]));
    let out = run(
        &stack,
        &dir,
        &["backfill", "--ou", "ou-zzzz-zzzzzzzz", "--dry-run"],
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("--ou"), "{out:?}");
    // Usage errors: --include-nested without --ou, an OU id that is not one.
    let out = run(&stack, &dir, &["backfill", "--include-nested"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    let out = run(&stack, &dir, &["backfill", "--ou", "workloads"]).await;
    assert_eq!(out.code, 2, "{out:?}");
}

#[tokio::test]
async fn mapping_file_errors_name_the_line_and_field_and_nothing_is_published() {
    let stack = Stack::start("backfill-portals").await;
    let dir = TempDir::new("portals");
    let org = Org::new(&stack, &dir).await;
    let a = org.account("portal-owner", &org.root).await;
    let b = org.account("plain", &org.root).await;
    let provider = |account: &str, name: &str| {
        json!({
            "accountId": account,
            "portalArn": PORTAL,
            "providerName": name,
            "providerType": "OIDC",
            "details": {
                "client_id": "onboarding-client",
                "oidc_issuer": "https://idp.example.com",
                "authorize_scopes": "openid email",
                "attributes_request_method": "GET"
            },
            "secretId": "onboarding/corp-oidc",
            "tags": { "Team": "platform" }
        })
    };
    let lines = |entries: &[Value]| -> String {
        entries.iter().map(|e| format!("{e}\n")).collect::<String>()
    };

    // Line 3: a provider type that does not exist.
    let mut bad = provider(&b, "corp-saml");
    bad["providerType"] = json!("Kerberos");
    let file = dir.write(
        "bad-type.jsonl",
        &format!("{}\n{}", lines(&[provider(&a, "corp-oidc")]), lines(&[bad])),
    );
    let out = run(&stack, &dir, &["backfill", "--portals", &file]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("line 3: providerType"),
        "names the line and the field: {out:?}"
    );
    assert!(out.stderr.contains("nothing was published"), "{out:?}");

    // A secret in the details: refused without repeating it; JSON errors for scripts.
    let mut secret = provider(&a, "corp-oidc");
    secret["details"]["client_secret"] = json!("hunter2-very-secret");
    let file = dir.write("secret.jsonl", &lines(&[secret]));
    let out = run(&stack, &dir, &["backfill", "--portals", &file, "--json"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    let err: Value = serde_json::from_str(out.stderr.trim()).expect("a JSON error");
    let message = err["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("line 1: details.client_secret"),
        "{message}"
    );
    assert!(
        !out.stderr.contains("hunter2"),
        "the secret is never echoed"
    );

    // A JSON array: the entry is named; an unknown field, a bad account id, a repeated account.
    let mut typo = provider(&b, "corp-oidc");
    typo["providerTyp"] = typo["providerType"].take();
    let file = dir.write(
        "array.json",
        &serde_json::to_string_pretty(&json!([
            provider(&a, "corp-oidc"),
            typo,
            provider("12ab", "x-oidc"),
            provider(&a, "other-oidc"),
        ]))
        .expect("json"),
    );
    let out = run(&stack, &dir, &["backfill", "--portals", &file]).await;
    assert_eq!(out.code, 3, "{out:?}");
    for text in [
        "entry 2: providerTyp: unknown field",
        "entry 3: accountId",
        "entry 4: accountId",
        "already mapped by entry 1",
    ] {
        assert!(out.stderr.contains(text), "{text} missing: {out:?}");
    }
    // Not JSON at all.
    let file = dir.write("broken.jsonl", "{\"accountId\": \n");
    let out = run(&stack, &dir, &["backfill", "--portals", &file]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("line 1: not valid JSON"), "{out:?}");

    assert!(requests(&stack).await.is_empty(), "nothing was published");
    assert!(!dir.path(".onboarding-backfill.json").exists());

    // A valid file: the mapped account's request carries its provider, the other none.
    let file = dir.write(
        "portals.jsonl",
        &lines(&[
            provider(&a, "corp-oidc"),
            provider("999999999999", "gone-oidc"),
        ]),
    );
    let out = run(&stack, &dir, &["backfill", "--portals", &file]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("Not used") && out.stdout.contains("999999999999"),
        "an entry for an account not listed is reported: {out:?}"
    );
    let sent = requests(&stack).await;
    assert_eq!(accounts_of(&sent), set(&[&a, &b]));
    for e in &sent {
        let detail = &e["detail"];
        if detail["accountId"] == a.as_str() {
            let mut expected = provider(&a, "corp-oidc");
            if let Some(m) = expected.as_object_mut() {
                m.remove("accountId");
            }
            assert_eq!(detail["webIdentityProvider"], expected, "{e}");
        } else {
            assert!(detail.get("webIdentityProvider").is_none(), "{e}");
        }
    }
}

#[tokio::test]
async fn a_second_run_publishes_nothing_new_and_an_interrupted_run_resumes() {
    let stack = Stack::start("backfill-again").await;
    let dir = TempDir::new("again");
    let org = Org::new(&stack, &dir).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(org.account(&format!("acct-{i}"), &org.root).await);
    }
    let all: BTreeSet<String> = ids.iter().cloned().collect();

    // An interrupted run: the state file lists the first half (as a run stopped by Ctrl-C
    // after its first batch leaves it).
    let (done, rest) = ids.split_at(3);
    let published: serde_json::Map<String, Value> = done
        .iter()
        .map(|id| {
            (
                id.clone(),
                json!({ "at": "2026-11-22T09:30:05Z", "eventId": format!("earlier-{id}") }),
            )
        })
        .collect();
    let state = dir.write(
        "state.json",
        &json!({
            "version": 1,
            "table": stack.table,
            "bus": stack.bus,
            "region": REGION,
            "published": published,
        })
        .to_string(),
    );
    let out = run(
        &stack,
        &dir,
        &["backfill", "--state", &state, "--rate", "4"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        accounts_of(&requests(&stack).await),
        rest.iter().cloned().collect(),
        "only the accounts the interrupted run did not publish"
    );
    assert_eq!(state_accounts(Path::new(&state)), all);
    assert!(
        out.stdout.contains("requested by an earlier run"),
        "{out:?}"
    );

    // A second run: nothing new, every account skipped as requested.
    let out = run(&stack, &dir, &["backfill", "--state", &state, "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["summary"]["published"], 0, "{doc}");
    assert_eq!(
        doc["summary"]["skipped"], 7,
        "6 requested + the management account"
    );
    assert!(requests(&stack).await.is_empty());

    // --force publishes them again (the functions treat them as duplicates).
    let out = run(
        &stack,
        &dir,
        &[
            "backfill",
            "--state",
            &state,
            "--force",
            "--exclude",
            &ids[0],
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(accounts_of(&requests(&stack).await).len(), 5);

    // A state file of another stack is refused; so is one that is not a state file.
    let other = dir.write(
        "other.json",
        &json!({ "version": 1, "table": "another-ledger", "bus": stack.bus, "published": {} })
            .to_string(),
    );
    let out = run(&stack, &dir, &["backfill", "--state", &other]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("another-ledger"), "{out:?}");
    let junk = dir.write("junk.json", "[1, 2]");
    let out = run(&stack, &dir, &["backfill", "--state", &junk, "--dry-run"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(requests(&stack).await.is_empty());
}

#[tokio::test]
async fn ctrl_c_stops_after_the_batch_in_flight_and_a_second_run_finishes() {
    const ACCOUNTS: usize = 8;
    let stack = Stack::start("backfill-ctrl-c").await;
    let dir = TempDir::new("ctrl-c");
    let org = Org::new(&stack, &dir).await;
    let mut all = BTreeSet::new();
    for i in 0..ACCOUNTS {
        all.insert(org.account(&format!("slow-{i}"), &org.root).await);
    }
    let state = dir.path("slow.json");
    let state_arg = state.display().to_string();
    // One request a second: interrupted after the second one is recorded.
    let child = command(
        &stack,
        &dir,
        &["backfill", "--rate", "1", "--state", &state_arg],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("the onboarding binary starts");
    let pid = child.id().expect("running");
    eventually("two requests recorded", Duration::from_secs(60), || {
        let state = state.clone();
        async move { state_accounts(&state).len() >= 2 }
    })
    .await;
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill -INT");
    assert!(kill.success());
    let out = finished(child.wait_with_output().await.expect("it ends"));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("interrupted"), "{out:?}");
    assert!(out.stderr.contains("run the same command again"), "{out:?}");
    assert!(out.stdout.contains("not published"), "{out:?}");
    let first = state_accounts(&state);
    assert!(first.len() >= 2 && first.len() < ACCOUNTS, "{first:?}");
    assert_eq!(
        accounts_of(&requests(&stack).await),
        first,
        "what was published is what the state file records"
    );

    // Run again: the rest, and only the rest.
    let out = run(
        &stack,
        &dir,
        &["backfill", "--rate", "100", "--state", &state_arg],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let second = accounts_of(&requests(&stack).await);
    assert_eq!(second, all.difference(&first).cloned().collect());
    assert_eq!(state_accounts(&state), all);
}

#[tokio::test]
async fn accounts_the_ledger_has_are_skipped_with_the_reason() {
    let stack = Stack::start("backfill-ledger").await;
    let dir = TempDir::new("ledger");
    let org = Org::new(&stack, &dir).await;
    let ready = org.account("ready", &org.root).await;
    let failed = org.account("failed", &org.root).await;
    let busy = org.account("busy", &org.root).await;
    let new = org.account("new", &org.root).await;

    // READY: onboarded by the instance handler.
    let handler = stack.instance_handler(stack.engine());
    let (reply, _) = handler
        .handle(onboarding_requested("b-1", &ready, json!({})), None)
        .await
        .expect("onboarded");
    assert_eq!(reply["status"], "ready", "{reply}");
    // FAILED and IN_PROGRESS: recorded with the ledger API as the engine records them.
    let ledger = stack.engine().ledger().clone();
    let claim = |account: String| {
        let ledger = ledger.clone();
        async move {
            match ledger
                .claim(
                    &StepKey::account(&account, "identity-center-instance"),
                    &ClaimRequest {
                        request_hash: "earlier",
                        event_id: "b-2",
                        lease: Duration::from_secs(300),
                        deadline: None,
                    },
                )
                .await
                .expect("claim")
            {
                Claim::Acquired(lease) => lease,
                other => panic!("expected to acquire, got {other:?}"),
            }
        }
    };
    let lease = claim(failed.clone()).await;
    ledger
        .fail(
            &lease,
            Failure::Permanent,
            &ErrorReason {
                retryable: false,
                code: "AccessDenied".into(),
                message: "no member role".into(),
            },
        )
        .await
        .expect("failed");
    claim(busy.clone()).await;
    let status = |account: &str| {
        let ledger = ledger.clone();
        let key = StepKey::account(account, "identity-center-instance");
        async move { ledger.get_step(&key).await.expect("read").map(|r| r.status) }
    };
    assert_eq!(status(&failed).await, Some(Status::Failed));
    assert_eq!(status(&busy).await, Some(Status::InProgress));
    stack.emitted().await;

    let out = run(&stack, &dir, &["backfill"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let line = |id: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not listed: {out:?}"))
            .to_owned()
    };
    assert!(line(&ready).contains("already ready"), "{out:?}");
    assert!(
        line(&failed).contains("skipped: FAILED: use onboarding retry"),
        "{out:?}"
    );
    assert!(line(&busy).contains("skipped: in progress"), "{out:?}");
    assert!(line(&new).contains("published (event id"), "{out:?}");
    assert_eq!(accounts_of(&requests(&stack).await), set(&[&new]));
    let summary = out.stdout.split("Summary:").nth(1).expect("a summary");
    for text in [
        "already ready",
        "published",
        "FAILED: use onboarding retry",
        "in progress",
        "failed to publish",
    ] {
        assert!(
            summary.contains(text),
            "{text} missing from the summary: {summary}"
        );
    }

    // --json says the same, with the steps read.
    let out = run(&stack, &dir, &["backfill", "--dry-run", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(outcome(&doc, &ready)["outcome"], "ready");
    assert_eq!(
        outcome(&doc, &ready)["steps"]["identity-center-instance"],
        "READY"
    );
    assert_eq!(
        outcome(&doc, &failed)["reason"],
        "FAILED: use onboarding retry"
    );
    assert_eq!(outcome(&doc, &busy)["reason"], "in progress");
    assert_eq!(
        outcome(&doc, &new)["outcome"],
        "skipped",
        "requested by the run before"
    );
    assert_eq!(doc["summary"]["ready"], 1);
    assert_eq!(doc["summary"]["wouldPublish"], 0);
}

/// How long planning takes for 2,000 accounts on moto: Organizations listing (pages of 20,
/// as the service allows) and ledger reads (BatchGetItem of 100 keys). Printed, not asserted.
#[tokio::test]
async fn planning_time_for_two_thousand_accounts_is_printed() {
    const ACCOUNTS: usize = 2000;
    let stack = Stack::start("backfill-2000").await;
    let dir = TempDir::new("2000");
    let org = Org::new(&stack, &dir).await;
    let created = Instant::now();
    for i in 0..ACCOUNTS {
        org.account(&format!("bulk-{i:04}"), &org.root).await;
    }
    eprintln!(
        "created {ACCOUNTS} accounts in moto in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    // Some of them already in the ledger, so that reads find items too.
    let mut listed = Vec::new();
    let mut pages = org.client.list_accounts().into_paginator().send();
    while let Some(page) = pages.next().await {
        listed.extend(page.expect("accounts").accounts().to_vec());
    }
    let handler = stack.instance_handler(stack.engine());
    for (i, a) in listed
        .iter()
        .filter(|a| a.id() != Some(org.management.as_str()))
        .take(20)
        .enumerate()
    {
        let id = a.id().expect("id");
        let (reply, _) = handler
            .handle(onboarding_requested(&format!("p-{i}"), id, json!({})), None)
            .await
            .expect("onboarded");
        assert_eq!(reply["status"], "ready", "{reply}");
    }

    let started = Instant::now();
    let out = run(&stack, &dir, &["backfill", "--dry-run", "--json"]).await;
    let wall = started.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["summary"]["listed"], ACCOUNTS + 1);
    assert_eq!(doc["summary"]["ready"], 20);
    assert_eq!(doc["summary"]["wouldPublish"], ACCOUNTS - 20);
    let t = &doc["timings"];
    eprintln!(
        "planning {ACCOUNTS} accounts on moto: {} ms (Organizations listing {} ms, ledger reads {} ms in {} BatchGetItem calls); the whole dry run {:.2} s",
        t["planMs"], t["organizationsMs"], t["ledgerMs"], t["ledgerCalls"], wall.as_secs_f64()
    );
}
