//! A deployment whose roles lack an action, through the real function binaries (served by
//! `cargo lambda watch`, each signing as its role of template.yaml, as in events.rs), the
//! emulator holding every call to the shipped policies less the action taken out:
//!
//! - the member role without `sso:UpdateInstance`: an account's instance is created, then a
//!   newer request is refused, naming the action, the role and what to change; the step stays
//!   READY, the refusal is recorded and announced, and nothing is announced Updated;
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
use serde_json::Value;

const INSTANCE: &str = "identity-center-instance";
const WEB: &str = "web-identity-provider";
/// The member role's name (the template's default `MemberRoleName`).
const MEMBER_ROLE_NAME: &str = "IdentityOnboardingMemberRole";

fn fail(message: String) -> ! {
    panic!("{message}")
}

/// events/onboarding-requested.json, or a newer request of the same account renaming its
/// instance, written to `dir`.
fn request_file(dir: &Path, renamed: Option<&str>) -> PathBuf {
    let sample = repo_root().join("events/onboarding-requested.json");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    let name = match renamed {
        None => "created.json",
        Some(new_name) => {
            event["id"] = Value::from("5f0c2b1e-8d3a-4c7f-9e6b-2a1d0c9b8e80");
            event["time"] = Value::from("2026-11-21T10:15:30Z");
            event["detail"]["identityCenterInstance"]["name"] = Value::from(new_name);
            "renamed.json"
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_an_action_is_refused_naming_it_through_the_real_binaries() {
    let work_dir = std::env::temp_dir().join(format!(
        "identity-onboarding-denials-{}",
        std::process::id()
    ));
    let mut options = Options::new("denials", work_dir.clone());
    options.functions = vec![INSTANCE, WEB];
    options.denied = vec![
        (MEMBER_ROLE, "sso:UpdateInstance"),
        (WEB_ROLE, "dynamodb:UpdateItem"),
    ];
    let mut progress = Progress::new(START_STEPS);
    let mut session = Session::start(&mut progress, options)
        .await
        .unwrap_or_else(|e| fail(e));

    // Created: CreateInstance is allowed.
    let created = deliver_to(&mut session, INSTANCE, &request_file(&work_dir, None)).await;
    assert_eq!(reply(&created)["status"], "ready", "{:?}", created.first());

    // A newer request's rename is refused, and said so.
    let renamed = request_file(&work_dir, Some("payments-renamed"));
    let refused = deliver_to(&mut session, INSTANCE, &renamed).await;
    let refused = reply(&refused);
    assert_eq!(refused["status"], "rejected", "{refused}");
    let reason = refused["reason"]["message"].as_str().unwrap_or_default();
    for named in ["sso:UpdateInstance", MEMBER_ROLE_NAME, "member-role.yaml"] {
        assert!(reason.contains(named), "{named} is not named: {reason}");
    }
    let items = session
        .stack
        .ledger_items()
        .await
        .unwrap_or_else(|e| fail(e));
    let records: Vec<Record> = items
        .iter()
        .map(|item| Record::from_item(item).expect("a ledger item"))
        .collect();
    let instance = records
        .iter()
        .find(|r| r.key.step == INSTANCE)
        .expect("the instance's step");
    assert_eq!(instance.status, Status::Ready, "the step stays READY");
    let error = instance
        .last_error
        .as_ref()
        .expect("the refusal is recorded");
    assert!(
        error.message.contains("sso:UpdateInstance"),
        "{}",
        error.message
    );
    let state = session.stack.emulator.state();
    let name = &state["accounts"]["222222222222"]["instances"][0]["name"];
    assert_eq!(
        name, "payments-prod",
        "the instance keeps its name: {state:#}"
    );

    // The web function cannot write its ledger: nothing is made, the action is named.
    let made = deliver_to(&mut session, WEB, &request_file(&work_dir, None)).await;
    let error = made
        .gave_up
        .clone()
        .unwrap_or_else(|| fail(format!("the delivery was not refused: {:?}", made.first())));
    assert!(
        error.contains("dynamodb:UpdateItem"),
        "the action is named: {error}"
    );
    assert_eq!(
        session
            .stack
            .emulator
            .counters()
            .calls("CreateIdentityProvider"),
        0
    );

    let emitted = session.stack.emitted().await.unwrap_or_else(|e| fail(e));
    assert_eq!(of_type(&emitted, "Identity Center Instance Ready").len(), 1);
    assert_eq!(
        of_type(&emitted, "Onboarding Update Refused").len(),
        1,
        "{emitted:#?}"
    );
    assert!(
        of_type(&emitted, "Identity Center Instance Updated").is_empty()
            && of_type(&emitted, "Web Identity Provider Ready").is_empty(),
        "nothing announced that did not happen: {emitted:#?}"
    );
    let denials = session.stack.denials();
    for (principal, action) in [
        (MEMBER_ROLE, "sso:UpdateInstance"),
        (WEB_ROLE, "dynamodb:UpdateItem"),
    ] {
        assert!(
            denials.iter().any(|(p, a)| p == principal && a == action),
            "{principal} {action}: {denials:?}"
        );
    }
    session.stop();
    let _ = std::fs::remove_dir_all(&work_dir);
}
