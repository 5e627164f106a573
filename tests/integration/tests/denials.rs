//! A deployment whose roles lack an action, through the real function binaries (served by
//! `cargo lambda watch`, each signing as its role of template.yaml, as in events.rs), the
//! emulator holding every call to the shipped policies less the action taken out
//! ([`identity_emulator::Emulator::deny`], from the next call on). One session, one account
//! per case, each made with the shipped policies first where the case is about an update:
//!
//! - the member role without each action an update needs (`sso:UpdateInstance`,
//!   `sso:UntagResource`, `workspaces-web:UpdateIdentityProvider`): the newer request is
//!   refused, naming the action, the role and what to change; the step stays READY, the
//!   refusal is recorded and announced, and nothing is announced Updated;
//! - the member role without each dependent action of `CreateInstance`: the step fails for
//!   good, naming it, and nothing is created;
//! - the member role without each action the drift audit needs (`sso:ListTagsForResource`,
//!   `workspaces-web:ListTagsForResource`): the reconciler's binary counts the step not
//!   audited, records why on it (action and role named), and announces no drift;
//! - the web function's role without `dynamodb:UpdateItem`: the claim is refused, the action
//!   named, the delivery fails (to be retried), and nothing is created.

use std::path::{Path, PathBuf};

use identity_emulator::MEMBER_ROLE;
use integration_tests::deliveries::of_type;
use integration_tests::iam::WEB_ROLE;
use integration_tests::local::deliver::{deliver, Delivery};
use integration_tests::local::progress::Progress;
use integration_tests::local::repo_root;
use integration_tests::local::session::{Options, Session, START_STEPS};
use integration_tests::local::watch::Reply;
use onboarding::ledger::{Record, Status};
use serde_json::{json, Value};

const INSTANCE: &str = "identity-center-instance";
const WEB: &str = "web-identity-provider";
const RECONCILER: &str = "reconciler";
/// The member role's name (the template's default `MemberRoleName`).
const MEMBER_ROLE_NAME: &str = "IdentityOnboardingMemberRole";

/// The member role's update actions, each refused in turn (the step they update).
const UPDATE_ACTIONS: [(&str, &str); 3] = [
    ("sso:UpdateInstance", INSTANCE),
    ("sso:UntagResource", INSTANCE),
    ("workspaces-web:UpdateIdentityProvider", WEB),
];
/// The member role's audit actions, each refused in turn (the step they audit).
const AUDIT_ACTIONS: [(&str, &str); 2] = [
    ("sso:ListTagsForResource", INSTANCE),
    ("workspaces-web:ListTagsForResource", WEB),
];
/// `sso:CreateInstance`'s dependent actions (Service Authorization Reference).
const CREATE_DEPENDENCIES: [&str; 3] = [
    "iam:CreateServiceLinkedRole",
    "identitystore:CreateIdentityStore",
    "organizations:DescribeOrganization",
];

/// What the stack's schedule rule hands the reconciler (it reads none of it).
const SCHEDULED_EVENT: &str = r#"{"version":"0","id":"0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d","detail-type":"Scheduled Event","source":"aws.events","account":"111111111111","time":"2026-12-01T10:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:111111111111:rule/identity-onboarding-reconcile"],"detail":{}}"#;

fn fail(message: String) -> ! {
    panic!("{message}")
}

/// The account of case `n`, with a portal of its own.
fn account(n: usize) -> String {
    format!("95000000010{n}")
}

fn portal(account: &str) -> String {
    format!("arn:aws:workspaces-web:us-east-1:{account}:portal/0d5e1c8a-3b7f-4e2a-9c6d-{account}")
}

/// tests/local/organization.json with one more account per case, written to `dir`.
fn organization(dir: &Path, cases: usize) -> PathBuf {
    let sample = repo_root().join("tests/local/organization.json");
    let mut org: Value = serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    let accounts = org["accounts"].as_array_mut().expect("accounts");
    for n in 0..cases {
        let id = account(n);
        accounts.push(json!({
            "account_id": id,
            "portals": [{ "portal_arn": portal(&id), "display_name": format!("case-{n}") }],
        }));
    }
    let path = dir.join("organization.json");
    std::fs::write(&path, org.to_string()).unwrap();
    path
}

/// events/onboarding-requested.json for `account` (its instance and its portal's provider);
/// `newer`: a newer request that renames the instance, moves a tag (one removed, one
/// set) and the provider's issuer.
fn request_file(dir: &Path, account: &str, newer: bool) -> PathBuf {
    let sample = repo_root().join("events/onboarding-requested.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    let detail = &mut event["detail"];
    detail["accountId"] = Value::from(account);
    detail["webIdentityProvider"]["portalArn"] = Value::from(portal(account));
    let name = if newer {
        event["id"] = Value::from(format!("5f0c2b1e-8d3a-4c7f-9e6b-{account}"));
        event["time"] = Value::from("2026-11-21T10:15:30Z");
        let detail = &mut event["detail"];
        detail["identityCenterInstance"]["name"] = Value::from("renamed");
        detail["identityCenterInstance"]["tags"] = json!({ "CostCenter": null, "Team": "b" });
        detail["webIdentityProvider"]["details"]["oidc_issuer"] =
            Value::from("https://idp.example.com/oauth2/rotated");
        format!("{account}-newer.json")
    } else {
        format!("{account}.json")
    };
    let path = dir.join(name);
    std::fs::write(&path, event.to_string()).unwrap();
    path
}

async fn deliver_to(session: &mut Session, function: &str, file: &Path) -> Delivery {
    let scratch = session.options.work_dir.clone();
    let limit = session.options.invoke_limit;
    deliver(&mut session.watches, function, file, &scratch, limit)
        .await
        .unwrap_or_else(|e| fail(e))
}

fn reply(delivery: &Delivery) -> &Value {
    match delivery.first() {
        Reply::Value(v) => v,
        other => fail(format!("{}: {other:?}", delivery.function)),
    }
}

/// The ledger's record of `step` in `account`.
async fn record(session: &Session, account: &str, step: &str) -> Record {
    let items = session
        .stack
        .ledger_items()
        .await
        .unwrap_or_else(|e| fail(e));
    items
        .iter()
        .map(|item| Record::from_item(item).expect("a ledger item"))
        .find(|r| r.key.step.starts_with(step) && r.key.account_id() == Some(account))
        .unwrap_or_else(|| fail(format!("no record of {step} in {account}")))
}

/// The account's resources of `kind` in the emulator (`instances`, `identity_providers`):
/// what they hold and the calls that changed them, without an instance's activation status.
fn resources(session: &Session, account: &str, kind: &str) -> Vec<Value> {
    let state = session.stack.emulator.state();
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

fn assert_denied(session: &Session, principal: &str, action: &str) {
    let denials = session.stack.denials();
    assert!(
        denials.iter().any(|(p, a)| p == principal && a == action),
        "{principal} {action}: {denials:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_an_action_is_refused_naming_it_through_the_real_binaries() {
    let work_dir = std::env::temp_dir().join(format!(
        "identity-onboarding-denials-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&work_dir).unwrap();
    let cases = AUDIT_ACTIONS.len() + UPDATE_ACTIONS.len() + CREATE_DEPENDENCIES.len() + 1;
    let mut options = Options::new("denials", work_dir.clone());
    options.functions = vec![INSTANCE, WEB, RECONCILER];
    options.organization = organization(&work_dir, cases);
    let mut progress = Progress::new(START_STEPS);
    let mut session = Session::start(&mut progress, options)
        .await
        .unwrap_or_else(|e| fail(e));
    let mut n = 0;
    let schedule = work_dir.join("schedule.json");
    std::fs::write(&schedule, SCHEDULED_EVENT).unwrap();

    // The audits first, while every step is where its ledger says.
    for (action, step) in AUDIT_ACTIONS {
        let account = account(n);
        n += 1;
        session.stack.emulator.deny(&[]);
        let made = deliver_to(
            &mut session,
            step,
            &request_file(&work_dir, &account, false),
        )
        .await;
        assert_eq!(
            reply(&made)["status"],
            "ready",
            "{action}: {:?}",
            made.first()
        );
        // The update itself needs no read: it lands.
        let newer = request_file(&work_dir, &account, true);
        let updated = deliver_to(&mut session, step, &newer).await;
        assert_eq!(
            reply(&updated)["status"],
            "updated",
            "{action}: {:?}",
            updated.first()
        );
        session.stack.emitted().await.unwrap_or_else(|e| fail(e));

        session.stack.emulator.deny(&[(MEMBER_ROLE, action)]);
        let run = deliver_to(&mut session, RECONCILER, &schedule).await;
        let report = reply(&run);
        assert!(
            report["not_audited"].as_u64() >= Some(1),
            "{action}: {report}"
        );
        assert_eq!(
            (report["drift"].as_u64(), report["repaired"].as_u64()),
            (Some(0), Some(0)),
            "{action}: {report}"
        );
        let record = record(&session, &account, step).await;
        assert_eq!(record.status, Status::Ready, "{action}");
        let refused = record
            .drift
            .as_ref()
            .and_then(|d| d.get("refused"))
            .unwrap_or_else(|| fail(format!("{action}: the refused audit is not recorded")));
        let message = refused["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(action) && message.contains(MEMBER_ROLE_NAME),
            "{action}: {message}"
        );
        let emitted = session.stack.emitted().await.unwrap_or_else(|e| fail(e));
        assert!(
            of_type(&emitted, "Onboarding Drift Detected").is_empty()
                && of_type(&emitted, "Identity Center Instance Updated").is_empty()
                && of_type(&emitted, "Web Identity Provider Updated").is_empty(),
            "{action}: nothing announced that did not happen: {emitted:#?}"
        );
        assert_denied(&session, "member_role", action);
    }

    for (action, step) in UPDATE_ACTIONS {
        let account = account(n);
        n += 1;
        // Made with the shipped policies.
        session.stack.emulator.deny(&[]);
        let made = deliver_to(
            &mut session,
            step,
            &request_file(&work_dir, &account, false),
        )
        .await;
        assert_eq!(
            reply(&made)["status"],
            "ready",
            "{action}: {:?}",
            made.first()
        );
        let before = resources(&session, &account, resource_kind(step));
        session.stack.emitted().await.unwrap_or_else(|e| fail(e));

        // A newer request, with the action taken out of the member role.
        session.stack.emulator.deny(&[(MEMBER_ROLE, action)]);
        let newer = request_file(&work_dir, &account, true);
        let refused = deliver_to(&mut session, step, &newer).await;
        let refused = reply(&refused);
        assert_eq!(refused["status"], "rejected", "{action}: {refused}");
        let reason = refused["reason"]["message"].as_str().unwrap_or_default();
        for named in [action, MEMBER_ROLE_NAME, "member-role.yaml"] {
            assert!(
                reason.contains(named),
                "{action}: {named} is not named: {reason}"
            );
        }
        let record = record(&session, &account, step).await;
        assert_eq!(
            record.status,
            Status::Ready,
            "{action}: the step stays READY"
        );
        let error = record.last_error.expect("the refusal is recorded");
        assert!(
            error.message.contains(action),
            "{action}: {}",
            error.message
        );
        if action != "sso:UntagResource" {
            // Refused at its first call: the resource is as it was made (without
            // UntagResource, the calls before it land).
            assert_eq!(
                resources(&session, &account, resource_kind(step)),
                before,
                "{action}: the resource keeps its state"
            );
        }
        let emitted = session.stack.emitted().await.unwrap_or_else(|e| fail(e));
        assert_eq!(
            of_type(&emitted, "Onboarding Update Refused").len(),
            1,
            "{action}: {emitted:#?}"
        );
        assert!(
            of_type(&emitted, "Identity Center Instance Updated").is_empty()
                && of_type(&emitted, "Web Identity Provider Updated").is_empty(),
            "{action}: nothing announced that did not happen: {emitted:#?}"
        );
        assert_denied(&session, "member_role", action);
    }

    for action in CREATE_DEPENDENCIES {
        let account = account(n);
        n += 1;
        session.stack.emulator.deny(&[(MEMBER_ROLE, action)]);
        let made = deliver_to(
            &mut session,
            INSTANCE,
            &request_file(&work_dir, &account, false),
        )
        .await;
        let made = reply(&made);
        assert_eq!(made["status"], "failed", "{action}: {made}");
        let record = record(&session, &account, INSTANCE).await;
        assert_eq!(record.status, Status::Failed, "{action}");
        let error = record.last_error.expect("the reason is recorded");
        assert!(
            error.message.contains(action) && error.message.contains(MEMBER_ROLE_NAME),
            "{action}: {}",
            error.message
        );
        assert!(
            resources(&session, &account, "instances").is_empty(),
            "{action}: nothing is created"
        );
        let emitted = session.stack.emitted().await.unwrap_or_else(|e| fail(e));
        assert!(
            of_type(&emitted, "Identity Center Instance Ready").is_empty(),
            "{action}: {emitted:#?}"
        );
        assert_eq!(
            of_type(&emitted, "Onboarding Step Failed").len(),
            1,
            "{action}: {emitted:#?}"
        );
        assert_denied(&session, "member_role", action);
    }

    // The web function cannot write its ledger: nothing is made, the action is named.
    let account = account(n);
    session
        .stack
        .emulator
        .deny(&[(WEB_ROLE, "dynamodb:UpdateItem")]);
    let made = deliver_to(&mut session, WEB, &request_file(&work_dir, &account, false)).await;
    let error = made
        .gave_up
        .clone()
        .unwrap_or_else(|| fail(format!("the delivery was not refused: {:?}", made.first())));
    assert!(
        error.contains("dynamodb:UpdateItem"),
        "the action is named: {error}"
    );
    assert!(resources(&session, &account, "identity_providers").is_empty());
    let emitted = session.stack.emitted().await.unwrap_or_else(|e| fail(e));
    assert!(
        of_type(&emitted, "Web Identity Provider Ready").is_empty(),
        "nothing announced that did not happen: {emitted:#?}"
    );
    assert_denied(&session, WEB_ROLE, "dynamodb:UpdateItem");
    session.stop();
    let _ = std::fs::remove_dir_all(&work_dir);
}

/// Where the emulator's state lists a step's resources.
fn resource_kind(step: &str) -> &'static str {
    if step == WEB {
        "identity_providers"
    } else {
        "instances"
    }
}
