//! What is tested is what is deployed: every call of these tests is evaluated by the emulator
//! against the shipped policies (`template.yaml`'s function roles, `member-role.yaml`'s
//! member role). With them, an account's whole life passes: create, a newer request, the
//! drift audit and its repair. Without one of the actions the member role exists for, the
//! denial names the action and the role, is recorded and announced as what it is, and nothing
//! is announced Ready or Updated that did not happen.

use std::time::Duration;

use identity_emulator::PolicySet;
use identity_emulator::{AccountConfig, Config as EmulatorConfig};
use integration_tests::deliveries::{at, of_type, onboarding_requested};
use integration_tests::iam;
use integration_tests::stack::Stack;
use onboarding::ledger::{Status, StepKey};
use serde_json::{json, Value};

const INSTANCE: &str = "identity-center-instance";
const WEB: &str = "web-identity-provider";
const MEMBER_ROLE: &str = "member_role";
/// The member role's name (the template's default `MemberRoleName`).
const MEMBER_ROLE_NAME: &str = "IdentityOnboardingMemberRole";

fn instance_request(id: &str, account: &str, time: &str, name: &str, tags: Value) -> Value {
    at(
        onboarding_requested(
            id,
            account,
            json!({ "identityCenterInstance": { "name": name, "tags": tags } }),
        ),
        time,
    )
}

fn provider_request(id: &str, account: &str, portal: &str, time: &str, issuer: &str) -> Value {
    // A new issuer also moves the project's tag: one key removed, another set.
    let tags = if issuer.ends_with('a') {
        json!({ "Team": "identity" })
    } else {
        json!({ "Owner": "platform" })
    };
    at(
        onboarding_requested(
            id,
            account,
            json!({ "webIdentityProvider": {
                "portalArn": portal,
                "providerName": "corp-oidc",
                "providerType": "OIDC",
                "details": {
                    "client_id": "onboarding-client",
                    "oidc_issuer": issuer,
                    "authorize_scopes": "openid email",
                    "attributes_request_method": "GET"
                },
                "secretId": "onboarding/perm",
                "tags": tags
            }}),
        ),
        time,
    )
}

/// A stack enforcing `policies`, whose `account` has a portal (its ARN returned).
async fn stack_with_portal(name: &str, account: &str, policies: &PolicySet) -> (Stack, String) {
    let portal = format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    );
    let config = EmulatorConfig::default()
        .with_account(AccountConfig::new(account).with_portal(portal.clone()));
    let stack = Stack::start_enforcing(name, config, policies).await;
    stack
        .put_secret(
            "onboarding/perm",
            &json!({ "client_secret": "PERM-CANARY" }),
        )
        .await;
    (stack, portal)
}

/// Every call the emulator refused so far, as `principal action` lines.
fn denials(stack: &Stack) -> Vec<String> {
    stack
        .emulator
        .observed()
        .into_iter()
        .filter(|(_, _, allowed)| !allowed)
        .map(|(principal, action, _)| format!("{principal} {action}"))
        .collect()
}

async fn step_record(stack: &Stack, key: &StepKey) -> onboarding::ledger::Record {
    stack
        .engine()
        .ledger()
        .get_step(key)
        .await
        .unwrap()
        .expect("the step is in the ledger")
}

/// Renames the instance behind the project's back (as the account's administrator).
async fn rename_by_hand(stack: &Stack, account: &str, arn: &str, name: &str) {
    aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await)
        .update_instance()
        .instance_arn(arn)
        .name(name)
        .send()
        .await
        .expect("a hand-made rename");
}

#[tokio::test]
async fn with_the_shipped_roles_an_accounts_whole_life_passes() {
    let account = "940000000001";
    let (stack, portal) = stack_with_portal("perm-life", account, iam::shipped()).await;
    let instances = stack.instance_handler(stack.engine());
    let providers = stack.web_handler(stack.engine());

    // Create.
    let (reply, _) = instances
        .handle(
            instance_request(
                "c",
                account,
                "2026-12-01T10:00:00Z",
                "one",
                json!({"Team": "a", "Cost": "1"}),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    let (reply, _) = providers
        .handle(
            provider_request("p", account, &portal, "2026-12-01T10:00:00Z", "https://a"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");

    // A newer request: rename, change one tag, drop another; a new issuer.
    let (reply, _) = instances
        .handle(
            instance_request(
                "u",
                account,
                "2026-12-01T11:00:00Z",
                "two",
                json!({"Team": "b", "Cost": null}),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    let (reply, _) = providers
        .handle(
            provider_request("pu", account, &portal, "2026-12-01T11:00:00Z", "https://b"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");

    // A hand-made change, found by the audit and repaired.
    rename_by_hand(&stack, account, &arn, "by-hand").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = stack.reconcile(true).await;
    assert_eq!(
        (
            report.audited,
            report.not_audited,
            report.drift,
            report.repaired
        ),
        (2, 0, 1, 1),
        "{report:?}"
    );
    let emitted = stack.emitted().await;
    assert_eq!(
        of_type(&emitted, "Identity Center Instance Updated").len(),
        2
    );
    assert_eq!(of_type(&emitted, "Web Identity Provider Updated").len(), 1);
    assert!(of_type(&emitted, "Onboarding Step Failed").is_empty());
    assert_eq!(denials(&stack), Vec::<String>::new(), "nothing refused");
}

/// Removing each action the member role has for updates and audits, in turn.
#[tokio::test]
async fn without_an_update_or_audit_action_the_denial_names_it_and_nothing_false_is_announced() {
    for (n, action) in [
        "sso:UpdateInstance",
        "sso:UntagResource",
        "sso:ListTagsForResource",
        "workspaces-web:UpdateIdentityProvider",
        "workspaces-web:ListTagsForResource",
    ]
    .into_iter()
    .enumerate()
    {
        let account = format!("94000000010{n}");
        let policies = iam::shipped().without_action(MEMBER_ROLE, action);
        let (stack, portal) = stack_with_portal("perm-without", &account, &policies).await;
        let instances = stack.instance_handler(stack.engine());
        let providers = stack.web_handler(stack.engine());
        let (created, _) = instances
            .handle(
                instance_request(
                    "c",
                    &account,
                    "2026-12-01T10:00:00Z",
                    "one",
                    json!({"Team": "a", "Cost": "1"}),
                ),
                None,
            )
            .await
            .unwrap();
        assert_eq!(created["status"], "ready", "{action}: {created}");
        let (made, _) = providers
            .handle(
                provider_request("p", &account, &portal, "2026-12-01T10:00:00Z", "https://a"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(made["status"], "ready", "{action}: {made}");
        stack.emitted().await;

        let (key, reply) = if action.starts_with("sso:") {
            let request = instance_request(
                "u",
                &account,
                "2026-12-01T11:00:00Z",
                "two",
                json!({"Team": "b", "Cost": null}),
            );
            let key = StepKey::account(&account, INSTANCE);
            (key, instances.handle(request, None).await.unwrap().0)
        } else {
            let request =
                provider_request("pu", &account, &portal, "2026-12-01T11:00:00Z", "https://b");
            let record = step_record_of(&stack, &account, WEB).await;
            (record.key, providers.handle(request, None).await.unwrap().0)
        };
        let audit_only = action.contains("ListTagsForResource");
        if audit_only {
            // The update itself needs no read: it lands; the audit is what is refused.
            assert_eq!(reply["status"], "updated", "{action}: {reply}");
            stack.emitted().await;
            let report = stack.reconcile(true).await;
            assert_eq!(report.not_audited, 1, "{action}: {report:?}");
            assert_eq!((report.drift, report.repaired), (0, 0), "{action}");
            let record = step_record(&stack, &key).await;
            assert_eq!(record.status, Status::Ready, "{action}");
            let refused = record
                .drift
                .as_ref()
                .and_then(|d| d.get("refused"))
                .unwrap_or_else(|| panic!("{action}: the refused audit is recorded"));
            let message = refused["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(action) && message.contains(MEMBER_ROLE_NAME),
                "{action}: {message}"
            );
        } else {
            assert_eq!(reply["status"], "rejected", "{action}: {reply}");
            let reason = reply["reason"]["message"].as_str().unwrap_or_default();
            assert!(
                reason.contains(action) && reason.contains(MEMBER_ROLE_NAME),
                "{action}: {reason}"
            );
            assert!(
                reason.contains("member-role.yaml"),
                "what to change: {reason}"
            );
            let record = step_record(&stack, &key).await;
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
        }
        let emitted = stack.emitted().await;
        assert!(
            of_type(&emitted, "Identity Center Instance Updated").is_empty()
                && of_type(&emitted, "Web Identity Provider Updated").is_empty()
                && of_type(&emitted, "Onboarding Drift Detected").is_empty(),
            "{action}: nothing announced that did not happen: {emitted:?}"
        );
        assert!(
            denials(&stack).iter().any(|d| d.ends_with(action)),
            "{action}: {:?}",
            denials(&stack)
        );
    }
}

async fn step_record_of(stack: &Stack, account: &str, step: &str) -> onboarding::ledger::Record {
    let scope = StepKey::account(account, step).scope;
    let items = stack.engine().ledger().get(&scope).await.unwrap();
    items
        .into_iter()
        .find(|r| r.key.step.starts_with(step))
        .expect("the step is in the ledger")
}

/// Without one of `CreateInstance`'s dependent actions the create fails for good, naming it.
#[tokio::test]
async fn without_a_dependent_action_of_create_instance_the_step_fails_naming_it() {
    for (n, action) in [
        "iam:CreateServiceLinkedRole",
        "identitystore:CreateIdentityStore",
        "organizations:DescribeOrganization",
    ]
    .into_iter()
    .enumerate()
    {
        let account = format!("94000000020{n}");
        let policies = iam::shipped().without_action(MEMBER_ROLE, action);
        let stack =
            Stack::start_enforcing("perm-dependent", EmulatorConfig::default(), &policies).await;
        let (reply, _) = stack
            .instance_handler(stack.engine())
            .handle(
                instance_request("c", &account, "2026-12-01T10:00:00Z", "one", json!({})),
                None,
            )
            .await
            .unwrap();
        assert_eq!(reply["status"], "failed", "{action}: {reply}");
        let record = step_record(&stack, &StepKey::account(&account, INSTANCE)).await;
        assert_eq!(record.status, Status::Failed);
        let error = record.last_error.expect("the reason is recorded");
        assert!(
            error.message.contains(action) && error.message.contains(MEMBER_ROLE_NAME),
            "{action}: {}",
            error.message
        );
        assert_eq!(stack.emulator.counters().created("CreateInstance"), 0);
        let emitted = stack.emitted().await;
        assert!(of_type(&emitted, "Identity Center Instance Ready").is_empty());
        assert_eq!(of_type(&emitted, "Onboarding Step Failed").len(), 1);
    }
}

/// A function role that loses an action it needs fails on the spot, the action named: the
/// ledger write is refused, so the delivery is retried and nothing is created.
#[tokio::test]
async fn a_function_role_without_its_ledger_write_is_refused_before_anything_is_made() {
    let policies = iam::shipped().without_action(iam::INSTANCE_ROLE, "dynamodb:UpdateItem");
    let stack = Stack::start_enforcing("perm-ledger", EmulatorConfig::default(), &policies).await;
    let err = stack
        .instance_handler(stack.engine())
        .handle(
            instance_request(
                "c",
                "940000000301",
                "2026-12-01T10:00:00Z",
                "one",
                json!({}),
            ),
            None,
        )
        .await
        .expect_err("the claim is refused");
    assert!(
        err.to_string().contains("dynamodb:UpdateItem"),
        "the action is named: {err}"
    );
    assert_eq!(stack.emulator.counters().calls("CreateInstance"), 0);
    assert!(denials(&stack)
        .iter()
        .any(|d| d == "IdentityCenterInstanceRole dynamodb:UpdateItem"));
}
