//! Nothing stays stranded: the reconciler re-drives from the ledger what no message will
//! finish (a message that ran out of receives, a holder that crashed, an instance slower
//! than the queue, an update whose holder died), and the drift audit finds resources deleted
//! or changed behind the project's back, reporting them and, when asked, repairing them.
//! Against moto and the identity emulator, through the same engine as the deliveries.

use std::time::{Duration, SystemTime};

use identity_emulator::{AccountConfig, Config as EmulatorConfig};
use integration_tests::deliveries::{oidc_provider, onboarding_requested};
use integration_tests::stack::Stack;
use onboarding::desired::Desired;
use onboarding::engine::{AuditRun, EngineSettings};
use onboarding::ledger::{
    Applied, Claim, ClaimRequest, Fields, Ledger, Origin, Status, StepKey, UpdateClaim, UpdateKind,
};
use onboarding::revision::Revision;
use serde_json::{json, Value};

const INSTANCE: &str = "identity-center-instance";
/// An audit that repairs what it finds, without a deadline.
const REPAIR: AuditRun = AuditRun {
    repair: true,
    deadline: None,
};

fn of_type(emitted: &[Value], detail_type: &str) -> Vec<Value> {
    emitted
        .iter()
        .filter(|e| e["detail-type"] == detail_type)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_created_instance_whose_message_ran_out_is_finished_by_the_reconciler() {
    let account = "930000000001";
    let stack = Stack::start("reconcile-created").await;
    let impatient = EngineSettings {
        ready_wait: Duration::ZERO,
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(impatient));
    let err = handler
        .handle(
            onboarding_requested(
                "r-1",
                account,
                json!({ "identityCenterInstance": { "name": "late" } }),
            ),
            None,
        )
        .await
        .expect_err("not active yet");
    assert_eq!(err.code(), "NotReady");
    // The message is gone for good (its receives ran out): only the reconciler is left.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reconciler = stack.reconciler(stack.engine(), false);
    let report = reconciler.run(None, false).await.expect("run");
    assert_eq!(report.redriven, 1, "{report:?}");
    assert_eq!(report.finished, 1, "{report:?}");
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(account, INSTANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Ready);
    let ready = of_type(&stack.emitted().await, "Identity Center Instance Ready");
    assert_eq!(ready.len(), 1);
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 1);
    // Nothing left: the next run re-drives nothing.
    let report = reconciler.run(None, false).await.expect("run");
    assert_eq!((report.redriven, report.attention), (0, 0), "{report:?}");
}

/// A claim whose holder crashed before creating anything, as a delivery leaves it.
async fn crashed_claim(stack: &Stack, key: &StepKey, fields: Fields, revision: &str) {
    let revision = Revision::parse(revision);
    let claim = stack
        .engine()
        .ledger()
        .claim_with(
            key,
            &ClaimRequest {
                request_hash: "h",
                event_id: revision.event_id(),
                lease: Duration::from_millis(100),
                deadline: None,
            },
            Some(Applied {
                state: &fields,
                revision: &revision,
            }),
        )
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Acquired(_)));
    tokio::time::sleep(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn crashed_claims_are_re_driven_from_what_the_ledger_kept() {
    let account = "930000000002";
    let portal = format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/7d4e1f3c-9a6b-4c5d-8e7f-4b3c2d1e0f9a"
    );
    let stack = Stack::start_with(
        "reconcile-crashed",
        EmulatorConfig::default()
            .with_account(AccountConfig::new(account).with_portal(portal.clone())),
    )
    .await;
    stack
        .put_secret(
            "onboarding/recon",
            &json!({ "client_secret": "RECON-CANARY" }),
        )
        .await;
    // What the deliveries' plans would have recorded, then crashed.
    let instance_key = StepKey::account(account, INSTANCE);
    let mut fields = Fields::new();
    fields.insert("name".into(), json!("from-the-ledger"));
    crashed_claim(
        &stack,
        &instance_key,
        fields,
        "2026-11-30T10:00:00.000Z#lost-1",
    )
    .await;
    // A provider name that holds `#` (and `/`): its key is split at the first `#` after the
    // portal ARN when the request is rebuilt from the ledger.
    let request = onboarding_requested(
        "lost-2",
        account,
        oidc_provider(&portal, "corp#oidc/eu", "onboarding/recon"),
    );
    let web = stack.web_handler(stack.engine());
    let provider_key = {
        use onboarding::step::Step;
        let decoded = match onboarding::events::decode(&request, &stack.settings.accept).unwrap() {
            onboarding::events::Decoded::Request(r) => r,
            other => panic!("{other:?}"),
        };
        let step = onboarding::steps::WebIdentityProvider::new(
            stack.member_access(),
            aws_sdk_secretsmanager::Client::new(&stack.config),
        );
        let plan = step.plan(&decoded).unwrap();
        crashed_claim(
            &stack,
            &plan.key,
            plan.desired,
            "2026-11-30T10:00:00.000Z#lost-2",
        )
        .await;
        plan.key
    };
    drop(web);

    let reconciler = stack.reconciler(stack.engine(), false);
    let dry = reconciler.run(None, true).await.expect("dry run");
    assert_eq!(dry.redriven, 0);
    assert!(
        dry.steps
            .iter()
            .filter(|l| l.result == "would re-drive")
            .count()
            == 2,
        "{dry:?}"
    );
    assert_eq!(
        stack.emulator.counters().calls("CreateInstance"),
        0,
        "a dry run calls nothing"
    );

    let report = reconciler.run(None, false).await.expect("run");
    assert_eq!(report.finished, 2, "{report:?}");
    let ledger = stack.engine().ledger().clone();
    let instance = ledger.get_step(&instance_key).await.unwrap().unwrap();
    assert_eq!(instance.status, Status::Ready);
    assert_eq!(instance.origin, Some(Origin::Created));
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    let described = sso
        .describe_instance()
        .instance_arn(instance.resource_arn.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(described.name(), Some("from-the-ledger"));
    let provider = ledger.get_step(&provider_key).await.unwrap().unwrap();
    assert_eq!(provider.status, Status::Ready);
    let web = aws_sdk_workspacesweb::Client::new(&stack.config_in(account).await);
    let names: Vec<String> = web
        .list_identity_providers()
        .portal_arn(&portal)
        .send()
        .await
        .unwrap()
        .identity_providers()
        .iter()
        .filter_map(|p| p.identity_provider_name().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        ["corp#oidc/eu"],
        "made on the right portal, with its name"
    );
    let emitted = stack.emitted().await;
    assert_eq!(of_type(&emitted, "Web Identity Provider Ready").len(), 1);
    let everything = format!("{emitted:?} {:?}", stack.ledger_items().await);
    assert!(!everything.contains("RECON-CANARY"));
}

#[tokio::test]
async fn a_waiting_step_is_re_driven_only_once_its_backoff_has_passed() {
    let account = "930000000003";
    let stack = Stack::start_with(
        "reconcile-backoff",
        EmulatorConfig::default()
            .with_account(AccountConfig::new(account).role_appearing_after(1_500)),
    )
    .await;
    let settings = EngineSettings {
        retry_base: Duration::from_secs(2),
        retry_max: Duration::from_secs(2),
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(settings.clone()));
    let err = handler
        .handle(onboarding_requested("w-1", account, json!({})), None)
        .await
        .expect_err("role not there yet");
    assert_eq!(err.code(), "MemberRoleUnavailable");
    // The message is lost; the reconciler honours the recorded retry_after.
    let reconciler = stack.reconciler(stack.engine_with(settings), false);
    let report = reconciler.run(None, false).await.expect("run");
    assert_eq!((report.redriven, report.not_due), (0, 1), "{report:?}");
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let report = reconciler.run(None, false).await.expect("run");
    assert_eq!((report.redriven, report.finished), (1, 1), "{report:?}");
    assert!(of_type(&stack.emitted().await, "Onboarding Step Failed").is_empty());
}

/// A request's fields (`asked`, at `revision`) recorded in step `key`'s desired state by a
/// delivery that then claims the update and dies before calling; returns once its lease
/// (100 ms) has ended.
async fn dead_update_holder(ledger: &Ledger, key: &StepKey, asked: Value, revision: &Revision) {
    let record = ledger.get_step(key).await.unwrap().unwrap();
    let asked = asked.as_object().cloned().unwrap();
    let record = ledger
        .record_desired(&record, &Desired::of(&asked, revision))
        .await
        .unwrap()
        .expect("merged");
    let claim = ledger
        .claim_update(
            &record,
            UpdateKind::Pending,
            Duration::from_millis(100),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(claim, UpdateClaim::Acquired(_)));
    tokio::time::sleep(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn an_update_whose_holder_died_is_applied_by_the_reconciler() {
    let account = "930000000004";
    let stack = Stack::start("reconcile-update").await;
    let handler = stack.instance_handler(stack.engine());
    let mut first = onboarding_requested(
        "u-1",
        account,
        json!({ "identityCenterInstance": { "name": "one" } }),
    );
    first["time"] = json!("2026-11-30T10:00:00Z");
    handler.handle(first, None).await.unwrap();
    let ledger = stack.engine().ledger().clone();
    let key = StepKey::account(account, INSTANCE);
    let revision = Revision::parse("2026-11-30T10:05:00.000Z#u-2");
    dead_update_holder(&ledger, &key, json!({ "name": "two" }), &revision).await;

    let report = stack.reconcile(false).await;
    assert_eq!(report.finished, 1, "{report:?}");
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(record.applied_revision.as_ref(), Some(&revision));
    assert!(record.update_owner.is_none() && !record.update_pending());
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    let name = sso
        .describe_instance()
        .instance_arn(record.resource_arn.unwrap())
        .send()
        .await
        .unwrap()
        .name()
        .map(str::to_owned);
    assert_eq!(name.as_deref(), Some("two"));
}

/// The reconciler carries a dead holder's update on with the desired state as recorded, and
/// asks nothing of its own: a tag removal older than the applied revision (delivered late,
/// after a newer request renamed the instance) is applied, not undone by the applied state
/// the re-drive is rebuilt from.
#[tokio::test]
async fn a_re_driven_update_applies_a_late_older_removal_rather_than_undoing_it() {
    let account = "930000000014";
    let stack = Stack::start("reconcile-late-removal").await;
    let handler = stack.instance_handler(stack.engine());
    for (id, minute, instance) in [
        (
            "r-1",
            0,
            json!({ "name": "one", "tags": { "Owner": "team-a" } }),
        ),
        ("r-3", 30, json!({ "name": "three" })),
    ] {
        let mut event =
            onboarding_requested(id, account, json!({ "identityCenterInstance": instance }));
        event["time"] = json!(format!("2026-11-30T10:{minute:02}:00Z"));
        handler.handle(event, None).await.unwrap();
    }
    let ledger = stack.engine().ledger().clone();
    let key = StepKey::account(account, INSTANCE);
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(
        record.state.clone().map(Value::Object),
        Some(json!({ "name": "three", "tags": { "Owner": "team-a" } }))
    );
    // The request of 10:15 removes the tag; its holder records it, claims the update and
    // dies before calling.
    let late = Revision::parse("2026-11-30T10:15:00.000Z#r-2");
    dead_update_holder(&ledger, &key, json!({ "tags": { "Owner": null } }), &late).await;

    let report = stack.reconcile(false).await;
    assert_eq!(report.finished, 1, "{report:?}");
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert!(record.update_owner.is_none() && !record.update_pending());
    assert_eq!(
        record.state.clone().map(Value::Object),
        Some(json!({ "name": "three" }))
    );
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    let tags = sso
        .list_tags_for_resource()
        .instance_arn(record.resource_arn.clone().unwrap())
        .resource_arn(record.resource_arn.unwrap())
        .send()
        .await
        .unwrap();
    let owner: Vec<_> = tags.tags().iter().filter(|t| t.key() == "Owner").collect();
    assert!(owner.is_empty(), "the removal was undone: {owner:?}");
}

#[tokio::test]
async fn a_deleted_resource_is_reported_once_and_repaired_only_when_asked() {
    let account = "930000000005";
    let stack = Stack::start("drift-gone").await;
    let handler = stack.instance_handler(stack.engine());
    let (reply, _) = handler
        .handle(onboarding_requested("d-1", account, json!({})), None)
        .await
        .unwrap();
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    stack.emitted().await;
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    sso.delete_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Repair off: reported, once.
    let report_only = stack.reconciler(stack.engine(), false);
    let report = report_only.run(None, false).await.expect("run");
    assert_eq!(
        (report.audited, report.drift, report.repaired),
        (1, 1, 0),
        "{report:?}"
    );
    let key = StepKey::account(account, INSTANCE);
    let record = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Ready, "only reported");
    assert_eq!(
        record.drift.as_ref().and_then(|d| d.get("gone")),
        Some(&json!(true))
    );
    let drift = of_type(&stack.emitted().await, "Onboarding Drift Detected");
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0]["detail"]["gone"], true);
    assert_eq!(drift[0]["detail"]["repair"], "off");
    report_only.run(None, false).await.expect("again");
    assert!(
        of_type(&stack.emitted().await, "Onboarding Drift Detected").is_empty(),
        "announced once"
    );

    // Repair on: a new generation, a new token, one new resource, announced Ready.
    let report = stack.reconcile(true).await;
    assert_eq!(report.repaired, 1, "{report:?}");
    let record = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Ready);
    assert_eq!(record.generation, 1);
    assert_ne!(record.resource_arn.as_deref(), Some(arn.as_str()));
    assert!(record.drift.is_none());
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 2);
    let emitted = stack.emitted().await;
    assert_eq!(of_type(&emitted, "Identity Center Instance Ready").len(), 1);
}

/// A resource deleted behind our back is made again with its applied state, which asks
/// nothing of the desired state: a request older than the applied revision, delivered after
/// the repair, still wins the field it names.
#[tokio::test]
async fn a_repaired_resource_keeps_each_field_at_the_revision_that_asked_for_it() {
    let account = "930000000015";
    let stack = Stack::start("drift-gone-fields").await;
    let handler = stack.instance_handler(stack.engine());
    let at = |id: &str, minute: u32, instance: Value| {
        let mut event =
            onboarding_requested(id, account, json!({ "identityCenterInstance": instance }));
        event["time"] = json!(format!("2026-11-30T10:{minute:02}:00Z"));
        event
    };
    for event in [
        at(
            "g-1",
            0,
            json!({ "name": "one", "tags": { "Owner": "team-a" } }),
        ),
        at("g-3", 30, json!({ "name": "three" })),
    ] {
        handler.handle(event, None).await.unwrap();
    }
    let key = StepKey::account(account, INSTANCE);
    let ledger = stack.engine().ledger().clone();
    let arn = ledger
        .get_step(&key)
        .await
        .unwrap()
        .unwrap()
        .resource_arn
        .unwrap();
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    sso.delete_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = stack.reconcile(true).await;
    assert_eq!(report.repaired, 1, "{report:?}");

    // The request of 10:15, delivered late, names the tag: newer than 10:00, it wins.
    let (reply, _) = handler
        .handle(
            at("g-2", 15, json!({ "tags": { "Owner": "team-b" } })),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(
        record.state.clone().map(Value::Object),
        Some(json!({ "name": "three", "tags": { "Owner": "team-b" } }))
    );
    let arn = record.resource_arn.unwrap();
    let tags = sso
        .list_tags_for_resource()
        .instance_arn(&arn)
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let owner: Vec<_> = tags
        .tags()
        .iter()
        .filter(|t| t.key() == "Owner")
        .map(|t| t.value())
        .collect();
    assert_eq!(owner, ["team-b"]);
}

#[tokio::test]
async fn a_provider_changed_behind_our_back_is_reported_and_brought_back() {
    let account = "930000000006";
    let portal = format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/8e5f2a4d-0b7c-4d6e-9f8a-5c4d3e2f1a0b"
    );
    let stack = Stack::start_with(
        "drift-changed",
        EmulatorConfig::default()
            .with_account(AccountConfig::new(account).with_portal(portal.clone())),
    )
    .await;
    stack
        .put_secret(
            "onboarding/drift",
            &json!({ "client_secret": "DRIFT-CANARY" }),
        )
        .await;
    let handler = stack.web_handler(stack.engine());
    let (reply, _) = handler
        .handle(
            onboarding_requested(
                "c-1",
                account,
                oidc_provider(&portal, "corp-oidc", "onboarding/drift"),
            ),
            None,
        )
        .await
        .unwrap();
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    let web = aws_sdk_workspacesweb::Client::new(&stack.config_in(account).await);
    let mut changed: std::collections::HashMap<String, String> = [
        ("client_id", "someone-else"),
        ("client_secret", "x"),
        ("oidc_issuer", "https://idp.example.com"),
        ("authorize_scopes", "openid email"),
        ("attributes_request_method", "GET"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    web.update_identity_provider()
        .identity_provider_arn(&arn)
        .set_identity_provider_details(Some(changed.clone()))
        .send()
        .await
        .unwrap();
    stack.emitted().await;

    let report = stack.reconcile(false).await;
    assert_eq!(report.drift, 1, "{report:?}");
    let drift = of_type(&stack.emitted().await, "Onboarding Drift Detected");
    assert_eq!(drift[0]["detail"]["changed"], json!(["details"]));

    let report = stack.reconcile(true).await;
    assert_eq!(report.repaired, 1, "{report:?}");
    let now = web
        .get_identity_provider()
        .identity_provider_arn(&arn)
        .send()
        .await
        .unwrap();
    changed = now
        .identity_provider()
        .and_then(|p| p.identity_provider_details())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        changed.get("client_id").map(String::as_str),
        Some("onboarding-client")
    );
    let updated = of_type(&stack.emitted().await, "Web Identity Provider Updated");
    assert_eq!(updated.len(), 1);
    let first_repair_version = updated[0]["detail"]["desiredVersion"].clone();

    // The same change behind our back again: the second repair is a new call (a new desired
    // version, so a new token), not the service replaying the first repair's answer.
    web.update_identity_provider()
        .identity_provider_arn(&arn)
        .set_identity_provider_details(Some(
            [
                ("client_id", "someone-else"),
                ("client_secret", "x"),
                ("oidc_issuer", "https://idp.example.com"),
                ("authorize_scopes", "openid email"),
                ("attributes_request_method", "GET"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ))
        .send()
        .await
        .unwrap();
    let report = stack.reconcile(true).await;
    assert_eq!((report.drift, report.repaired), (1, 1), "{report:?}");
    let again = web
        .get_identity_provider()
        .identity_provider_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again
            .identity_provider()
            .and_then(|p| p.identity_provider_details())
            .and_then(|d| d.get("client_id"))
            .map(String::as_str),
        Some("onboarding-client"),
        "repaired again"
    );
    let emitted = stack.emitted().await;
    assert_eq!(
        of_type(&emitted, "Onboarding Drift Detected").len(),
        1,
        "the second change is a new finding, announced: {emitted:?}"
    );
    let updated = of_type(&emitted, "Web Identity Provider Updated");
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_ne!(
        updated[0]["detail"]["desiredVersion"], first_repair_version,
        "a repair is a new version"
    );
    let everything = format!("{:?}", stack.ledger_items().await);
    assert!(!everything.contains("DRIFT-CANARY"));
    let _ = SystemTime::now();
}

/// A holder never acts after its lease, even with no deadline at all (`onboarding sweep`,
/// the reconciler's re-drives): a step still waiting when its lease is about to end is cut
/// there, retryable, and makes no call afterwards.
#[tokio::test]
async fn a_holder_without_a_deadline_stops_before_its_lease_ends() {
    let account = "930000000010";
    let stack = Stack::start_with(
        "lease-bound",
        EmulatorConfig {
            instance_activation_ms: 60_000,
            ..EmulatorConfig::default()
        },
    )
    .await;
    let short_lease = EngineSettings {
        lease: Duration::from_secs(1),
        ready_wait: Duration::from_secs(30),
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(short_lease));
    let started = std::time::Instant::now();
    let err = handler
        .handle(onboarding_requested("lb-1", account, json!({})), None)
        .await
        .expect_err("cut at the lease, not after the 30 s readiness wait");
    assert_eq!(err.code(), "DeadlineReached", "{err}");
    assert!(err.to_string().contains("the end of its lease"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let calls = stack.emulator.counters().calls("DescribeInstance");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        stack.emulator.counters().calls("DescribeInstance"),
        calls,
        "nothing is called once the work is cut"
    );
}

/// Two repairers that audited the same deleted instance (the scheduled reconciler and
/// `sweep --repair` at once): one new generation between them, announced Ready once.
#[tokio::test]
async fn two_repairs_of_what_one_audit_saw_start_one_generation() {
    use onboarding::steps::IdentityCenterInstance;
    let account = "930000000011";
    let stack = Stack::start("repair-fence").await;
    let (reply, _) = stack
        .instance_handler(stack.engine())
        .handle(onboarding_requested("rf-1", account, json!({})), None)
        .await
        .unwrap();
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    sso.delete_instance()
        .instance_arn(&arn)
        .send()
        .await
        .unwrap();
    stack.emitted().await;
    let key = StepKey::account(account, INSTANCE);
    // What both repairers read before either acted.
    let seen = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    let request = onboarding::rebuild::request_of::<IdentityCenterInstance>(&seen).unwrap();
    let step = IdentityCenterInstance::new(stack.member_access());
    let engine = stack.engine();
    let first = engine
        .audit(&step, &request, seen.clone(), REPAIR)
        .await
        .expect("first repairer");
    // The second repairer recorded the same finding before the first repaired, and starts
    // its repair after the first finished: the generation it saw is gone, so it repairs
    // nothing.
    let late = engine.ledger().repair(&seen).await;
    assert!(
        matches!(late, Err(onboarding::ledger::LedgerError::NotAllowed(_))),
        "{late:?}"
    );
    let second = engine
        .audit(&step, &request, seen, REPAIR)
        .await
        .expect("second repairer");
    let repaired = |a: &onboarding::engine::Audit| {
        matches!(
            a,
            onboarding::engine::Audit::Drift {
                repaired: Some(_),
                ..
            }
        )
    };
    assert!(repaired(&first), "{first:?}");
    assert!(
        !repaired(&second),
        "the second saw an older generation: {second:?}"
    );
    let record = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.status, record.generation), (Status::Ready, 1));
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 2);
    let ready = of_type(&stack.emitted().await, "Identity Center Instance Ready");
    assert_eq!(ready.len(), 1, "announced Ready once");
}

/// Everything pending has a bound. The member role of an account is removed after its step
/// is READY (the functions now meet a role the account refuses): the next update is retried
/// within the step's grace window, measured from the pending update's first attempt (which
/// no release restarts), and refused after it: the step stays READY with its applied state,
/// the refusal is recorded, announced once and counted. Meanwhile the reconciler counts the
/// pending update stuck from that first attempt, however recently it was released.
#[tokio::test]
async fn an_update_whose_member_role_was_removed_is_refused_after_the_grace_window() {
    let account = "930000000031";
    let stack = Stack::start("reconcile-role-removed").await;
    let mut first = onboarding_requested(
        "g-1",
        account,
        json!({ "identityCenterInstance": { "name": "one" } }),
    );
    first["time"] = json!("2026-11-30T10:00:00Z");
    stack
        .instance_handler(stack.engine())
        .handle(first, None)
        .await
        .expect("READY");
    let ledger = stack.engine().ledger().clone();
    let key = StepKey::account(account, INSTANCE);
    let ready = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(ready.status, Status::Ready);
    stack.emitted().await;

    // The account's role refuses from now on (as a suspended account's does; the emulator's
    // plain AccessDenied, not a policy the shipped roles lack).
    stack.emulator.close_account(account);
    let grace = Duration::from_secs(3);
    let short = EngineSettings {
        member_role_grace: grace,
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(short));
    let mut second = onboarding_requested(
        "g-2",
        account,
        json!({ "identityCenterInstance": { "name": "two" } }),
    );
    second["time"] = json!("2026-11-30T10:05:00Z");

    // Within the window: released, retried.
    let err = handler
        .handle(second.clone(), None)
        .await
        .expect_err("within the window");
    assert_eq!(err.code(), "MemberRoleUnavailable", "{err}");
    let pending = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(pending.status, Status::Ready);
    assert!(pending.update_pending());
    let first_attempt = pending
        .update_first_attempt_at
        .expect("the pending update's first attempt is recorded");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let err = handler
        .handle(second.clone(), None)
        .await
        .expect_err("still within the window");
    assert_eq!(err.code(), "MemberRoleUnavailable", "{err}");
    let pending = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(
        pending.update_first_attempt_at,
        Some(first_attempt),
        "kept across releases"
    );
    assert!(pending.updated_at > Some(first_attempt + 1000));

    // The reconciler measures the pending work from its first attempt, not from the last
    // release (a second ago): stuck.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counting = stack.reconciler_with(
        stack.engine(),
        onboarding::reconcile::ReconcileSettings {
            interval: Duration::from_secs(24 * 3600),
            repair_drift: false,
            stuck_after: Duration::from_secs(1),
        },
    );
    let report = counting.run(None, true).await.expect("dry run");
    assert_eq!(report.stuck, 1, "{report:?}");

    // Past the window: refused, acknowledged, counted.
    tokio::time::sleep(grace).await;
    let (_, tally) = handler
        .handle(second.clone(), None)
        .await
        .expect("refused and acknowledged");
    assert_eq!(tally.rejected, 1, "{tally:?}");
    let refused = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(refused.status, Status::Ready);
    assert_eq!(refused.resource_arn, ready.resource_arn);
    assert_eq!(refused.state, ready.state, "the applied state stays");
    assert_eq!(
        refused.refused_version,
        Some(refused.desired_version),
        "a refused desired state is never retried"
    );
    assert!(!refused.update_pending() && refused.update_first_attempt_at.is_none());
    let error = refused.last_error.clone().expect("the refusal is recorded");
    assert_eq!(error.code, "MemberRoleUnavailable");
    assert!(error.message.contains("grace window"), "{}", error.message);

    // Announced once: a redelivery is a duplicate, and nothing is pending or stuck.
    let (_, tally) = handler.handle(second, None).await.expect("duplicate");
    assert_eq!(tally.duplicates, 1, "{tally:?}");
    let emitted = stack.emitted().await;
    // Its own detail-type: the step is fine (READY with its applied state), not failed.
    assert!(
        of_type(&emitted, "Onboarding Step Failed").is_empty(),
        "{emitted:#?}"
    );
    let refused = of_type(&emitted, "Onboarding Update Refused");
    assert_eq!(refused.len(), 1, "{emitted:#?}");
    assert_eq!(
        refused[0]["detail"]["reason"]["code"],
        "MemberRoleUnavailable"
    );
    let report = counting.run(None, true).await.expect("dry run");
    assert_eq!(report.stuck, 0, "{report:?}");
}

/// A step retired before any request reached it (a closure of an account never onboarded),
/// whose delivery died before announcing: the reconciler announces the retirement from the
/// ledger alone (there is no request to rebuild), once.
#[tokio::test]
async fn a_retirement_of_a_step_no_request_reached_is_announced_by_the_reconciler() {
    let account = "930000000016";
    let stack = Stack::start("reconcile-tombstone").await;
    let ledger = stack.engine().ledger().clone();
    let key = StepKey::account(account, INSTANCE);
    let closed = Revision::parse("2026-12-01T10:00:00.000Z#close-1");
    let why = json!({ "eventId": "close-1", "reason": "the account was closed" });
    ledger.retire(&key, &closed, &why).await.unwrap();

    let report = stack.reconcile(false).await;
    assert_eq!((report.redriven, report.skipped), (1, 0), "{report:?}");
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert!(record.announced && record.attention.is_none(), "{record:?}");
    let offboarded = of_type(&stack.emitted().await, "Account Offboarded");
    assert_eq!(offboarded.len(), 1, "{offboarded:?}");
    assert_eq!(offboarded[0]["detail"]["accountId"], account);
    assert_eq!(offboarded[0]["detail"]["requestEventId"], "close-1");
    stack.reconcile(false).await;
    assert!(of_type(&stack.emitted().await, "Account Offboarded").is_empty());
}
