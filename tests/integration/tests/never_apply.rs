//! Requests that can never apply are refused at once, permanently, saying what to do: a
//! provider for a portal whose users come from IAM Identity Center, an account instance for
//! the management account, an account instance while the organization instance lives in an
//! opt-in Region. Through the handlers and the real SDK clients, against moto and the
//! identity emulator, every call evaluated against the shipped roles.

use identity_emulator::{AccountConfig, Config as EmulatorConfig};
use integration_tests::deliveries::{of_type, oidc_provider, onboarding_requested};
use integration_tests::iam::{self, INSTANCE_ROLE};
use integration_tests::stack::Stack;
use onboarding::aws::MemberAccess;
use onboarding::engine::Engine;
use onboarding::handler::Handler;
use onboarding::ledger::{Status, StepKey};
use onboarding::steps::IdentityCenterInstance;
use serde_json::json;

const ACCOUNT: &str = "820000000001";
const CENTER_PORTAL: &str =
    "arn:aws:workspaces-web:us-east-1:820000000001:portal/7a3e9c1d-2b4f-4c6a-8e0d-5f1b3c7a9e2d";
const STANDARD_PORTAL: &str =
    "arn:aws:workspaces-web:us-east-1:820000000001:portal/0d5e1c8a-3b7f-4e2a-9c6d-1f2e3a4b5c6d";
const SECRET: &str = "onboarding/never-apply-oidc";

/// Calls the emulator served (SSO Admin, MPA, WorkSpaces Web, STS); moto's are not counted.
fn control_plane_calls(stack: &Stack) -> u64 {
    stack.emulator.counters().calls.values().sum()
}

fn web_key(portal: &str) -> StepKey {
    StepKey::account(
        ACCOUNT,
        &format!("web-identity-provider#{portal}#corp-oidc"),
    )
}

#[tokio::test]
async fn a_provider_for_an_identity_center_portal_is_refused_and_a_standard_portal_still_takes_one()
{
    let member = AccountConfig::new(ACCOUNT)
        .with_identity_center_portal(CENTER_PORTAL)
        .with_portal(STANDARD_PORTAL);
    let stack = Stack::start_with(
        "never-portal",
        EmulatorConfig::default().with_account(member),
    )
    .await;
    stack
        .put_secret(SECRET, &json!({ "client_secret": "never-apply-canary" }))
        .await;
    let handler = stack.web_handler(stack.engine());

    let refused = onboarding_requested(
        "np-1",
        ACCOUNT,
        oidc_provider(CENTER_PORTAL, "corp-oidc", SECRET),
    );
    stack.secret_requests.reset();
    let (reply, tally) = handler
        .handle(refused.clone(), None)
        .await
        .expect("acknowledged");
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(reply["reason"]["code"], "PortalTakesNoProvider", "{reply}");
    assert_eq!(tally.failures, 1);
    let counters = stack.emulator.counters();
    assert_eq!(counters.calls("GetPortal"), 1, "the portal is read once");
    assert_eq!(
        counters.calls("CreateIdentityProvider"),
        0,
        "refused before the create"
    );
    assert_eq!(stack.secret_requests.get(), 0, "nor is the secret read");

    let record = stack
        .engine()
        .ledger()
        .get_step(&web_key(CENTER_PORTAL))
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(record.status, Status::Failed);
    assert!(record.announced);
    let reason = record.last_error.expect("reason recorded");
    assert!(!reason.retryable);
    for needle in [
        CENTER_PORTAL,
        "IAM_Identity_Center",
        "from IAM Identity Center",
        "send no webIdentityProvider",
    ] {
        assert!(
            reason.message.contains(needle),
            "{needle:?} in {}",
            reason.message
        );
    }
    let emitted = stack.emitted().await;
    let failed = of_type(&emitted, "Onboarding Step Failed");
    assert_eq!(failed.len(), 1, "{emitted:?}");
    assert_eq!(
        failed[0]["detail"]["reason"]["code"],
        "PortalTakesNoProvider"
    );
    assert!(failed[0]["detail"]["reason"]["message"]
        .as_str()
        .unwrap()
        .contains("IAM_Identity_Center"));
    assert!(of_type(&emitted, "Web Identity Provider Ready").is_empty());

    // Redelivered: still failed, acknowledged, announced once, no call at all.
    let calls = control_plane_calls(&stack);
    let (reply, _) = handler.handle(refused, None).await.unwrap();
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(control_plane_calls(&stack), calls);
    assert!(stack.emitted().await.is_empty());

    // A Standard portal of the same account still takes its provider: one GetPortal on the
    // create path, none for a duplicate.
    let standard = onboarding_requested(
        "np-2",
        ACCOUNT,
        oidc_provider(STANDARD_PORTAL, "corp-oidc", SECRET),
    );
    let (reply, tally) = handler.handle(standard.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(tally.created, 1);
    let counters = stack.emulator.counters();
    assert_eq!(counters.calls("GetPortal"), 2);
    assert_eq!(counters.created("CreateIdentityProvider"), 1);
    let ready = stack.emitted().await;
    assert_eq!(
        of_type(&ready, "Web Identity Provider Ready").len(),
        1,
        "{ready:?}"
    );
    let calls = control_plane_calls(&stack);
    let (reply, _) = handler.handle(standard, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
    assert_eq!(
        control_plane_calls(&stack),
        calls,
        "a duplicate calls nothing"
    );
}

/// The identity-center-instance function as template.yaml configures it: its role, and the
/// management account it is deployed in (`MANAGEMENT_ACCOUNT_ID`).
fn instance_handler(stack: &Stack, engine: Engine) -> Handler<IdentityCenterInstance> {
    let config = stack.config_as(INSTANCE_ROLE);
    let access = MemberAccess::new(
        &config,
        &stack.settings.member_role_name,
        &stack.settings.partition,
    );
    let management = stack.emulator.config().management_account_id.clone();
    Handler::new(
        engine.signing_as(iam::credentials(INSTANCE_ROLE)),
        IdentityCenterInstance::new(access).with_management_account(Some(management)),
        stack.settings.accept.clone(),
    )
}

#[tokio::test]
async fn an_instance_for_the_management_account_is_refused_with_no_call() {
    let stack = Stack::start("never-management").await;
    let management = stack.emulator.config().management_account_id.clone();
    let handler = instance_handler(&stack, stack.engine());

    let event = onboarding_requested("nm-1", &management, json!({}));
    let (reply, tally) = handler
        .handle(event.clone(), None)
        .await
        .expect("acknowledged");
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(reply["reason"]["code"], "ManagementAccount", "{reply}");
    assert_eq!(tally.failures, 1);
    assert_eq!(
        control_plane_calls(&stack),
        0,
        "no AssumeRole, no SSO Admin call: {:?}",
        stack.emulator.counters().calls
    );
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(&management, "identity-center-instance"))
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(record.status, Status::Failed);
    let reason = record.last_error.expect("reason recorded");
    assert!(!reason.retryable);
    for needle in [
        management.as_str(),
        "management account",
        "member accounts",
        "organization instance",
    ] {
        assert!(
            reason.message.contains(needle),
            "{needle:?} in {}",
            reason.message
        );
    }
    let emitted = stack.emitted().await;
    let failed = of_type(&emitted, "Onboarding Step Failed");
    assert_eq!(failed.len(), 1, "{emitted:?}");
    assert_eq!(failed[0]["detail"]["reason"]["code"], "ManagementAccount");
    assert!(of_type(&emitted, "Identity Center Instance Ready").is_empty());

    // Redelivered: acknowledged, nothing called or announced again.
    let (reply, _) = handler.handle(event, None).await.unwrap();
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(control_plane_calls(&stack), 0);
    assert!(stack.emitted().await.is_empty());

    // A member account is not affected by the setting.
    let (reply, _) = handler
        .handle(onboarding_requested("nm-2", ACCOUNT, json!({})), None)
        .await
        .unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 1);
}

#[tokio::test]
async fn an_organization_instance_in_an_opt_in_region_blocks_account_instances_permanently() {
    let stack = Stack::start_with(
        "never-opt-in",
        EmulatorConfig::default().with_organization_instance_in_opt_in_region(),
    )
    .await;
    let handler = instance_handler(&stack, stack.engine());
    let (reply, _) = handler
        .handle(onboarding_requested("no-1", ACCOUNT, json!({})), None)
        .await
        .expect("acknowledged");
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(
        reply["reason"]["code"], "AccountInstancesBlockedByOptInRegion",
        "{reply}"
    );
    let message = reply["reason"]["message"].as_str().unwrap_or_default();
    for needle in [ACCOUNT, "opt-in Region", "Region enabled by default"] {
        assert!(message.contains(needle), "{needle:?} in {message}");
    }
    assert_eq!(stack.emulator.counters().calls("CreateInstance"), 1);
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 0);
    let emitted = stack.emitted().await;
    assert_eq!(
        of_type(&emitted, "Onboarding Step Failed").len(),
        1,
        "{emitted:?}"
    );
}
