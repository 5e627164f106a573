//! The latest request wins per field, through the real function binaries (served by `cargo
//! lambda watch`, each signing as its role of template.yaml) and the reconciler's binary,
//! against moto and the identity emulator. One session, one account per scenario:
//!
//! - Control Tower's event newer than the account's own request, which names the instance:
//!   the own request still names it (Control Tower names nothing); a newer own request
//!   renames it; an operator's replay of the older request (a new id, its own old time)
//!   changes nothing;
//! - a second holder of the same provider update, after the first holder's call landed with
//!   its answer lost: it reads the provider and finishes, one "Updated";
//! - a repair after a repair: the provider changed behind the project's back twice, each
//!   brought back by its own call (a new desired version, so a new token: not the service
//!   replaying the first repair's answer);
//! - a provider named with `#` and `/`, whose create the deliveries could not finish, made
//!   by the reconciler from what the ledger recorded, under that name.
//!
//! The same semantics in process, with more cases: desired_state.rs and revisions.rs.

use std::collections::HashMap;
use std::time::Duration;

use identity_emulator::{FaultConfig, FaultRule};
use integration_tests::deliveries::{
    at, control_tower, of_type, oidc_provider, onboarding_requested,
};
use integration_tests::local::progress::Progress;
use integration_tests::local::session::{Options, Session, START_STEPS};
use integration_tests::local::stack::SECRET_NAME;
use integration_tests::local::{organization_with, portal_of};
use onboarding::ledger::Status;
use serde_json::{json, Value};

const INSTANCE: &str = "identity-center-instance";
const WEB: &str = "web-identity-provider";
const RECONCILER: &str = "reconciler";

const CONTROL_TOWER_FIRST: &str = "950000000201";
const SECOND_HOLDER: &str = "950000000202";
const REPAIRED_TWICE: &str = "950000000203";
const REDRIVEN: &str = "950000000204";

fn fail(message: String) -> ! {
    panic!("{message}")
}

/// Delivers `event` to `function` (written as `name`): the delivery, retries included.
async fn deliver(
    session: &mut Session,
    function: &str,
    name: &str,
    event: &Value,
) -> integration_tests::local::deliver::Delivery {
    session
        .deliver(function, name, event)
        .await
        .unwrap_or_else(|e| fail(e))
}

/// The first invocation's reply of delivering `event` to `function`.
async fn reply(session: &mut Session, function: &str, name: &str, event: &Value) -> Value {
    let delivery = deliver(session, function, name, event).await;
    delivery.value().unwrap_or_else(|e| fail(e)).clone()
}

async fn emitted_for(session: &Session, account: &str) -> Vec<Value> {
    let all = session.stack.emitted().await.unwrap_or_else(|e| fail(e));
    all.into_iter()
        .filter(|e| e["detail"]["accountId"] == account)
        .collect()
}

fn instance_request(id: &str, account: &str, time: &str, spec: Value) -> Value {
    at(
        onboarding_requested(id, account, json!({ "identityCenterInstance": spec })),
        time,
    )
}

fn provider_request(id: &str, account: &str, name: &str, tags: Option<Value>) -> Value {
    let mut spec = oidc_provider(&portal_of(account), name, SECRET_NAME);
    if let Some(tags) = tags {
        spec["webIdentityProvider"]["tags"] = tags;
    }
    onboarding_requested(id, account, spec)
}

/// The instance's name and tags, as the emulator holds them.
fn instance_now(session: &Session, account: &str) -> (Value, Value) {
    let instances = session.stack.resources(account, "instances");
    let instance = instances
        .first()
        .unwrap_or_else(|| fail(format!("no instance in {account}")));
    (instance["name"].clone(), instance["tags"].clone())
}

/// A WorkSpaces Web client acting in `account` (its member role, as the root user).
async fn web_in(session: &Session, account: &str) -> aws_sdk_workspacesweb::Client {
    let config = session
        .stack
        .config_in(account)
        .await
        .unwrap_or_else(|e| fail(e));
    aws_sdk_workspacesweb::Client::new(&config)
}

/// The provider's details, read through the service as the member role.
async fn provider_details(
    web: &aws_sdk_workspacesweb::Client,
    arn: &str,
) -> HashMap<String, String> {
    web.get_identity_provider()
        .identity_provider_arn(arn)
        .send()
        .await
        .unwrap_or_else(|e| fail(format!("GetIdentityProvider: {e:?}")))
        .identity_provider()
        .and_then(|p| p.identity_provider_details())
        .cloned()
        .unwrap_or_default()
}

async fn provider_tags(web: &aws_sdk_workspacesweb::Client, arn: &str) -> HashMap<String, String> {
    web.list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap_or_else(|e| fail(format!("ListTagsForResource: {e:?}")))
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_request_wins_per_field_through_the_real_binaries() {
    let work_dir = std::env::temp_dir().join(format!(
        "identity-onboarding-latest-wins-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&work_dir).unwrap();
    let accounts: Vec<String> = [CONTROL_TOWER_FIRST, SECOND_HOLDER, REPAIRED_TWICE, REDRIVEN]
        .map(String::from)
        .to_vec();
    let mut options = Options::new("latest-wins", work_dir.clone());
    options.functions = vec![INSTANCE, WEB, RECONCILER];
    options.organization = organization_with(&work_dir, &accounts).unwrap_or_else(|e| fail(e));
    // A released step is due again within a second or two (the reconciler waits for it).
    options.env = vec![
        ("RETRY_BASE_SECONDS".into(), "1".into()),
        ("RETRY_MAX_SECONDS".into(), "2".into()),
    ];
    let mut progress = Progress::new(START_STEPS);
    let mut session = Session::start(&mut progress, options)
        .await
        .unwrap_or_else(|e| fail(e));

    control_tower_newer_than_the_own_request(&mut session).await;
    a_second_holder_of_a_provider_update(&mut session).await;
    a_repair_after_a_repair(&mut session).await;
    a_name_with_hash_and_slash_made_by_the_reconciler(&mut session).await;

    session.stop();
    let _ = std::fs::remove_dir_all(&work_dir);
}

async fn control_tower_newer_than_the_own_request(session: &mut Session) {
    let account = CONTROL_TOWER_FIRST;
    let ct = at(
        control_tower("ct-a", "CreateManagedAccount", account, "SUCCEEDED"),
        "2026-11-30T12:00:00Z",
    );
    let made = reply(session, INSTANCE, "ct.json", &ct).await;
    assert_eq!(made["status"], "ready", "{made}");

    // The own request, older than Control Tower's: its fields still hold.
    let own_spec = json!({ "name": "payments-prod", "tags": { "CostCenter": "1234" } });
    let own = instance_request("own-a", account, "2026-11-30T11:00:00Z", own_spec.clone());
    let updated = reply(session, INSTANCE, "own.json", &own).await;
    assert_eq!(updated["status"], "updated", "{updated}");
    assert_eq!(updated["changed"], json!(["name", "tags.CostCenter"]));

    // A newer own request renames it; the tag it does not name stays.
    let newer = instance_request(
        "own-a-2",
        account,
        "2026-11-30T12:30:00Z",
        json!({ "name": "payments-renamed" }),
    );
    let renamed = reply(session, INSTANCE, "newer.json", &newer).await;
    assert_eq!(renamed["status"], "updated", "{renamed}");
    assert_eq!(renamed["changed"], json!(["name"]));

    // An operator replays the older request (a new id, its own time): nothing changes.
    let replayed = instance_request("replay-a", account, "2026-11-30T11:00:00Z", own_spec);
    let again = reply(session, INSTANCE, "replayed.json", &replayed).await;
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(
        instance_now(session, account),
        (json!("payments-renamed"), json!({ "CostCenter": "1234" }))
    );
    let emitted = emitted_for(session, account).await;
    let updated = of_type(&emitted, "Identity Center Instance Updated");
    let revisions: Vec<&Value> = updated
        .iter()
        .map(|e| &e["detail"]["revision"]["eventId"])
        .collect();
    assert_eq!(
        revisions,
        [&json!("own-a"), &json!("own-a-2")],
        "{emitted:#?}"
    );
}

async fn a_second_holder_of_a_provider_update(session: &mut Session) {
    let account = SECOND_HOLDER;
    let first = provider_request("h1", account, "corp-oidc", Some(json!({ "Team": "a" })));
    let made = reply(session, WEB, "holder.json", &first).await;
    assert_eq!(made["status"], "ready", "{made}");
    let arn = made["resourceArn"].as_str().unwrap_or_default().to_string();
    let mut newer = provider_request(
        "h2",
        account,
        "corp-oidc",
        Some(json!({ "Team": "a", "Stage": "prod" })),
    );
    newer = at(newer, "2026-12-01T10:00:00Z");
    // The first holder's TagResource lands, and every answer to it is lost.
    session
        .stack
        .emulator
        .set_faults(FaultConfig::new(5).with_rule(
            "TagResource",
            FaultRule {
                commit_then_fail_rate: 1.0,
                max_faults: Some(3),
                ..FaultRule::default()
            },
        ));
    let delivery = deliver(session, WEB, "holder-newer.json", &newer).await;
    session.stack.emulator.set_faults(FaultConfig::new(5));
    assert!(
        delivery.attempts.len() >= 2,
        "the first holder's delivery fails and is retried: {:?}",
        delivery.attempts
    );
    let last = match &delivery.attempts.last().map(|a| &a.reply) {
        Some(integration_tests::local::watch::Reply::Value(v)) => v.clone(),
        other => fail(format!("the retry did not finish the update: {other:?}")),
    };
    assert_eq!(last["status"], "updated", "{last}");
    let web = web_in(session, account).await;
    let tags = provider_tags(&web, &arn).await;
    assert_eq!(
        tags,
        HashMap::from([("Team".into(), "a".into()), ("Stage".into(), "prod".into())])
    );
    let emitted = emitted_for(session, account).await;
    assert_eq!(
        of_type(&emitted, "Web Identity Provider Updated").len(),
        1,
        "{emitted:#?}"
    );
    assert!(of_type(&emitted, "Onboarding Step Failed").is_empty());
}

async fn a_repair_after_a_repair(session: &mut Session) {
    let account = REPAIRED_TWICE;
    let request = provider_request("r1", account, "corp-oidc", None);
    let made = reply(session, WEB, "repaired.json", &request).await;
    assert_eq!(made["status"], "ready", "{made}");
    let arn = made["resourceArn"].as_str().unwrap_or_default().to_string();
    let web = web_in(session, account).await;
    let made_details = provider_details(&web, &arn).await;
    emitted_for(session, account).await;
    let mut versions = Vec::new();
    for round in 1..=2 {
        // Someone changes the client behind the project's back.
        let mut changed = made_details.clone();
        changed.insert("client_id".into(), format!("someone-else-{round}"));
        changed.insert("client_secret".into(), "x".into());
        web.update_identity_provider()
            .identity_provider_arn(&arn)
            .set_identity_provider_details(Some(changed))
            .send()
            .await
            .unwrap_or_else(|e| fail(format!("UpdateIdentityProvider by hand: {e:?}")));
        let report = session.reconcile().await.unwrap_or_else(|e| fail(e));
        assert_eq!(
            (report["drift"].as_u64(), report["repaired"].as_u64()),
            (Some(1), Some(1)),
            "round {round}: {report}"
        );
        let now = provider_details(&web, &arn).await;
        assert_eq!(
            now.get("client_id"),
            made_details.get("client_id"),
            "round {round}: brought back"
        );
        let emitted = emitted_for(session, account).await;
        assert_eq!(
            of_type(&emitted, "Onboarding Drift Detected").len(),
            1,
            "round {round}: {emitted:#?}"
        );
        let updated = of_type(&emitted, "Web Identity Provider Updated");
        assert_eq!(updated.len(), 1, "round {round}: {emitted:#?}");
        versions.push(updated[0]["detail"]["desiredVersion"].clone());
    }
    assert_ne!(versions[0], versions[1], "each repair is its own version");
}

async fn a_name_with_hash_and_slash_made_by_the_reconciler(session: &mut Session) {
    let account = REDRIVEN;
    let name = "corp#oidc/eu";
    let request = provider_request("d1", account, name, None);
    // Every create fails (retryable) while the deliveries last.
    session
        .stack
        .emulator
        .set_faults(FaultConfig::new(7).with_rule(
            "CreateIdentityProvider",
            FaultRule {
                server_error_rate: 1.0,
                ..FaultRule::default()
            },
        ));
    let delivery = deliver(session, WEB, "redriven.json", &request).await;
    session.stack.emulator.set_faults(FaultConfig::new(7));
    assert!(delivery.gave_up.is_some(), "{:?}", delivery.attempts);
    let record = session
        .stack
        .record(account, WEB)
        .await
        .unwrap_or_else(|e| fail(e));
    assert_eq!(record.status, Status::InProgress, "{record:?}");
    assert!(session
        .stack
        .resources(account, "identity_providers")
        .is_empty());

    // Once its backoff has passed, the reconciler makes it from the ledger's record.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = session.reconcile().await.unwrap_or_else(|e| fail(e));
    assert!(report["finished"].as_u64() >= Some(1), "{report}");
    let record = session
        .stack
        .record(account, WEB)
        .await
        .unwrap_or_else(|e| fail(e));
    assert_eq!(record.status, Status::Ready, "{record:?}");
    let providers = session.stack.resources(account, "identity_providers");
    assert_eq!(providers.len(), 1, "{providers:#?}");
    assert_eq!(providers[0]["identity_provider_name"], name);
    let emitted = emitted_for(session, account).await;
    let ready = of_type(&emitted, "Web Identity Provider Ready");
    assert_eq!(ready.len(), 1, "{emitted:#?}");
    assert_eq!(ready[0]["detail"]["requestEventId"], "d1", "{:#}", ready[0]);
}
