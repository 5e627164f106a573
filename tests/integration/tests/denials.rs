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

use identity_emulator::MEMBER_ROLE;
use integration_tests::deliveries::of_type;
use integration_tests::iam::WEB_ROLE;
use integration_tests::local::progress::Progress;
use integration_tests::local::session::{Options, Session, START_STEPS};
use integration_tests::local::{organization_with, portal_of, repo_root};
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

fn fail(message: String) -> ! {
    panic!("{message}")
}

/// The account of case `n`.
fn account(n: usize) -> String {
    format!("95000000010{n}")
}

/// events/onboarding-requested.json for `account` (its instance and its portal's provider);
/// `newer`: a newer request that renames the instance, moves a tag (one removed, one set)
/// and the provider's issuer.
fn request(account: &str, newer: bool) -> (String, Value) {
    let sample = repo_root().join("events/onboarding-requested.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    let detail = &mut event["detail"];
    detail["accountId"] = Value::from(account);
    detail["webIdentityProvider"]["portalArn"] = Value::from(portal_of(account));
    if !newer {
        return (format!("{account}.json"), event);
    }
    event["id"] = Value::from(format!("5f0c2b1e-8d3a-4c7f-9e6b-{account}"));
    event["time"] = Value::from("2026-11-21T10:15:30Z");
    let detail = &mut event["detail"];
    detail["identityCenterInstance"]["name"] = Value::from("renamed");
    detail["identityCenterInstance"]["tags"] = json!({ "CostCenter": null, "Team": "b" });
    detail["webIdentityProvider"]["details"]["oidc_issuer"] =
        Value::from("https://idp.example.com/oauth2/rotated");
    (format!("{account}-newer.json"), event)
}

/// Delivers `account`'s request (`newer` or not) to `function`: its JSON reply.
async fn deliver(session: &mut Session, function: &str, account: &str, newer: bool) -> Value {
    let (name, event) = request(account, newer);
    let delivery = session
        .deliver(function, &name, &event)
        .await
        .unwrap_or_else(|e| fail(e));
    delivery.value().unwrap_or_else(|e| fail(e)).clone()
}

async fn record(session: &Session, account: &str, step: &str) -> Record {
    session
        .stack
        .record(account, step)
        .await
        .unwrap_or_else(|e| fail(e))
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
    let accounts: Vec<String> = (0..cases).map(account).collect();
    let mut options = Options::new("denials", work_dir.clone());
    options.functions = vec![INSTANCE, WEB, RECONCILER];
    options.organization = organization_with(&work_dir, &accounts).unwrap_or_else(|e| fail(e));
    let mut progress = Progress::new(START_STEPS);
    let mut session = Session::start(&mut progress, options)
        .await
        .unwrap_or_else(|e| fail(e));
    let mut n = 0;

    // The audits first, while every step is where its ledger says.
    for (action, step) in AUDIT_ACTIONS {
        let account = account(n);
        n += 1;
        session.stack.emulator.deny(&[]);
        let made = deliver(&mut session, step, &account, false).await;
        assert_eq!(made["status"], "ready", "{action}: {made}");
        // The update itself needs no read: it lands.
        let updated = deliver(&mut session, step, &account, true).await;
        assert_eq!(updated["status"], "updated", "{action}: {updated}");
        session.stack.emitted().await.unwrap_or_else(|e| fail(e));

        session.stack.emulator.deny(&[(MEMBER_ROLE, action)]);
        let report = session.reconcile().await.unwrap_or_else(|e| fail(e));
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
        let made = deliver(&mut session, step, &account, false).await;
        assert_eq!(made["status"], "ready", "{action}: {made}");
        let before = session.stack.resources(&account, resource_kind(step));
        session.stack.emitted().await.unwrap_or_else(|e| fail(e));

        // A newer request, with the action taken out of the member role.
        session.stack.emulator.deny(&[(MEMBER_ROLE, action)]);
        let refused = deliver(&mut session, step, &account, true).await;
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
                session.stack.resources(&account, resource_kind(step)),
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
        let made = deliver(&mut session, INSTANCE, &account, false).await;
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
            session.stack.resources(&account, "instances").is_empty(),
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
    let (name, event) = request(&account, false);
    let made = session
        .deliver(WEB, &name, &event)
        .await
        .unwrap_or_else(|e| fail(e));
    let error = made
        .gave_up
        .clone()
        .unwrap_or_else(|| fail(format!("the delivery was not refused: {:?}", made.first())));
    assert!(
        error.contains("dynamodb:UpdateItem"),
        "the action is named: {error}"
    );
    assert!(session
        .stack
        .resources(&account, "identity_providers")
        .is_empty());
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
