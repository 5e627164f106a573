//! Per-field desired state: every field takes the value of the newest request that names it,
//! whatever order the requests arrive in; a request that names nothing changes nothing; every
//! call of an update carries a token bound to its own parameters. End to end through the
//! handlers (the code path Lambda runs) against moto and the identity emulator.

use std::collections::BTreeMap;

use identity_emulator::{AccountConfig, Config as EmulatorConfig, FaultConfig, FaultRule};
use integration_tests::deliveries::{
    at, control_tower, of_type, oidc_provider, onboarding_requested,
};
use integration_tests::stack::Stack;
use onboarding::ledger::StepKey;
use serde_json::{json, Value};

const INSTANCE: &str = "identity-center-instance";

fn instance(id: &str, account: &str, time: &str, spec: Value) -> Value {
    at(
        onboarding_requested(id, account, json!({ "identityCenterInstance": spec })),
        time,
    )
}

/// Every tag on the provider `arn`.
async fn provider_tags(web: &aws_sdk_workspacesweb::Client, arn: &str) -> BTreeMap<String, String> {
    web.list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Control Tower's `CreateManagedAccount` (12:00) creates the instance; the project's own
/// request for the account (11:00: a pipeline that published late, a retry, a replay) comes
/// after it. Control Tower named nothing, so the older request's name and tags are applied.
#[tokio::test]
async fn an_own_request_older_than_control_towers_event_still_names_the_instance() {
    let account = "940000000001";
    let stack = Stack::start("ct-newer-own-older").await;
    let handler = stack.instance_handler(stack.engine());
    let ct = at(
        control_tower("ct", "CreateManagedAccount", account, "SUCCEEDED"),
        "2026-11-30T12:00:00Z",
    );
    let (reply, _) = handler.handle(ct, None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    let own = instance(
        "own",
        account,
        "2026-11-30T11:00:00Z",
        json!({ "name": "payments-prod", "tags": { "CostCenter": "1234" } }),
    );
    let (reply, _) = handler.handle(own.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    assert_eq!(reply["changed"], json!(["name", "tags.CostCenter"]));
    assert_eq!(
        stack.instance_now(account, &arn).await,
        ("payments-prod".into(), tags(&[("CostCenter", "1234")]))
    );
    // Its duplicate, and Control Tower's newer `UpdateManagedAccount`: nothing more.
    for again in [
        own,
        at(
            control_tower("ct-2", "UpdateManagedAccount", account, "SUCCEEDED"),
            "2026-11-30T13:00:00Z",
        ),
    ] {
        stack.ledger_requests.reset();
        let (reply, _) = handler.handle(again, None).await.unwrap();
        assert_eq!(reply["status"], "duplicate", "{reply}");
        assert_eq!(stack.ledger_requests.get(), 1, "a duplicate is one request");
    }
    assert_eq!(stack.emulator.counters().calls("UpdateInstance"), 1);
    let emitted = stack.emitted().await;
    assert_eq!(
        of_type(&emitted, "Identity Center Instance Updated").len(),
        1
    );
}

/// Two newer requests naming different fields (one the tags, a later one only the name)
/// both hold, in either order of arrival; and an older request never takes back a field a
/// newer one set, even one it is the only one to name alongside.
#[tokio::test]
async fn requests_naming_different_fields_all_hold_in_either_order() {
    let stack = Stack::start("disjoint-fields").await;
    let handler = stack.instance_handler(stack.engine());
    let first = |account| {
        instance(
            "d1",
            account,
            "2026-11-30T10:00:00Z",
            json!({ "name": "a" }),
        )
    };
    let tags_only = |account| {
        instance(
            "d2",
            account,
            "2026-11-30T10:01:00Z",
            json!({ "tags": { "Team": "x", "Stage": "prod" } }),
        )
    };
    let name_only = |account| {
        instance(
            "d3",
            account,
            "2026-11-30T10:02:00Z",
            json!({ "name": "c" }),
        )
    };
    // Older than both, naming both fields: only what no newer request named takes.
    let stale = |account| {
        instance(
            "d0",
            account,
            "2026-11-30T09:00:00Z",
            json!({ "name": "old", "tags": { "Team": "old", "Owner": "ops" } }),
        )
    };
    for (account, order) in [
        ("940000000002", [tags_only, name_only, stale]),
        ("940000000003", [name_only, stale, tags_only]),
        ("940000000004", [stale, name_only, tags_only]),
    ] {
        let (reply, _) = handler.handle(first(account), None).await.unwrap();
        let arn = reply["resourceArn"].as_str().unwrap().to_string();
        for request in order {
            handler.handle(request(account), None).await.unwrap();
        }
        assert_eq!(
            stack.instance_now(account, &arn).await,
            (
                "c".into(),
                tags(&[("Owner", "ops"), ("Stage", "prod"), ("Team", "x")])
            ),
            "{account}"
        );
    }
}

/// A request that names nothing (Control Tower's `UpdateManagedAccount`, newer than any)
/// while an update is pending neither discards it nor reverts one that landed.
#[tokio::test]
async fn an_empty_newer_request_supersedes_nothing() {
    let account = "940000000005";
    let stack = Stack::start("empty-newer").await;
    let handler = stack.instance_handler(stack.engine());
    let (reply, _) = handler
        .handle(
            instance(
                "e1",
                account,
                "2026-11-30T10:00:00Z",
                json!({ "name": "one" }),
            ),
            None,
        )
        .await
        .unwrap();
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    // The rename's UpdateInstance loses every response after committing (the SDK's three
    // attempts): pending, landed.
    stack.emulator.set_faults(FaultConfig::new(3).with_rule(
        "UpdateInstance",
        FaultRule {
            commit_then_fail_rate: 1.0,
            max_faults: Some(3),
            ..FaultRule::default()
        },
    ));
    let rename = instance(
        "e2",
        account,
        "2026-11-30T10:01:00Z",
        json!({ "name": "two" }),
    );
    let err = handler
        .handle(rename.clone(), None)
        .await
        .expect_err("response lost");
    assert!(err.is_retryable(), "{err}");
    stack.emulator.set_faults(FaultConfig::new(3));
    let ct = at(
        control_tower("ct", "UpdateManagedAccount", account, "SUCCEEDED"),
        "2026-11-30T11:00:00Z",
    );
    handler.handle(ct, None).await.unwrap();
    assert_eq!(stack.instance_now(account, &arn).await.0, "two");
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(account, INSTANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.state.as_ref().and_then(|s| s.get("name")),
        Some(&json!("two")),
        "the pending rename was finished, not dropped"
    );
    assert!(!record.update_pending());
    let (reply, _) = handler.handle(rename, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
}

/// A newer request that asks only what the instance already holds (the removal of a tag it
/// does not have) is applied without a call: the ledger says its revision is applied, and
/// an older request naming that tag, delivered after it, stays superseded.
#[tokio::test]
async fn a_newer_request_asking_only_what_is_there_is_the_applied_revision() {
    let account = "940000000007";
    let stack = Stack::start("newer-already-held").await;
    let handler = stack.instance_handler(stack.engine());
    let first = instance(
        "h1",
        account,
        "2026-11-30T10:05:00Z",
        json!({ "name": "one", "tags": { "Stage": "s0" } }),
    );
    let (reply, _) = handler.handle(first, None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    stack.emitted().await;
    let newest = instance(
        "h3",
        account,
        "2026-11-30T10:44:00Z",
        json!({ "tags": { "CostCenter": null } }),
    );
    let (reply, _) = handler.handle(newest.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
    let key = StepKey::account(account, INSTANCE);
    let record = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record
            .applied_revision
            .as_ref()
            .map(|r| r.time().to_string()),
        Some("2026-11-30T10:44:00.000Z".to_string()),
        "the newest request is applied: the instance holds all it asks"
    );
    // Again: nothing to write.
    let (reply, _) = handler.handle(newest, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
    // The older request naming the tag loses to the newer removal.
    let older = instance(
        "h2",
        account,
        "2026-11-30T10:32:00Z",
        json!({ "tags": { "CostCenter": "1234" } }),
    );
    let (reply, _) = handler.handle(older, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
    let record = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record
            .applied_revision
            .as_ref()
            .map(|r| r.time().to_string()),
        Some("2026-11-30T10:44:00.000Z".to_string())
    );
    assert_eq!(
        stack.instance_now(account, &arn).await,
        ("one".to_string(), tags(&[("Stage", "s0")]))
    );
    assert!(
        of_type(&stack.emitted().await, "Identity Center Instance Updated").is_empty(),
        "nothing changed, nothing announced"
    );
}

/// A second holder of the same provider update (the first one's TagResource committed and
/// lost every response) sends the whole tag set: a different call, so a different token, never
/// IdempotentParameterMismatch, never "Onboarding Step Failed" for a step that is fine.
#[tokio::test]
async fn a_second_holder_of_a_provider_update_sends_its_own_calls() {
    let account = "940000000006";
    let portal = format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/2b7e4c1a-9d3f-4e8a-b6c5-0f1e2d3c4b5a"
    );
    let stack = Stack::start_with(
        "provider-second-holder",
        EmulatorConfig::default()
            .with_account(AccountConfig::new(account).with_portal(portal.clone())),
    )
    .await;
    stack
        .put_secret("onboarding/h", &json!({ "client_secret": "HOLDER-CANARY" }))
        .await;
    let handler = stack.web_handler(stack.engine());
    let mut spec = oidc_provider(&portal, "corp-oidc", "onboarding/h");
    spec["webIdentityProvider"]["tags"] = json!({ "Team": "a" });
    let first = at(
        onboarding_requested("h1", account, spec.clone()),
        "2026-11-30T10:00:00Z",
    );
    let (reply, _) = handler.handle(first, None).await.unwrap();
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    stack.emitted().await;

    spec["webIdentityProvider"]["tags"] = json!({ "Team": "a", "Stage": "prod" });
    let newer = at(
        onboarding_requested("h2", account, spec),
        "2026-11-30T10:01:00Z",
    );
    stack.emulator.set_faults(FaultConfig::new(5).with_rule(
        "TagResource",
        FaultRule {
            commit_then_fail_rate: 1.0,
            max_faults: Some(3),
            ..FaultRule::default()
        },
    ));
    let err = handler
        .handle(newer.clone(), None)
        .await
        .expect_err("response lost");
    assert!(err.is_retryable(), "{err}");
    stack.emulator.set_faults(FaultConfig::new(5));
    let (reply, tally) = handler.handle(newer, None).await.unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    assert_eq!(tally.rejected, 0, "{tally:?}");
    let web = aws_sdk_workspacesweb::Client::new(&stack.config_in(account).await);
    let on_provider = provider_tags(&web, &arn).await;
    assert_eq!(on_provider, tags(&[("Stage", "prod"), ("Team", "a")]));

    // A newer request removes a tag (null): only that key goes (UntagResource).
    let mut removing = oidc_provider(&portal, "corp-oidc", "onboarding/h");
    removing["webIdentityProvider"]["tags"] = json!({ "Stage": null });
    let (reply, _) = handler
        .handle(
            at(
                onboarding_requested("h3", account, removing),
                "2026-11-30T10:02:00Z",
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["changed"], json!(["tags.Stage"]), "{reply}");
    let on_provider = provider_tags(&web, &arn).await;
    assert_eq!(on_provider, tags(&[("Team", "a")]));
    let emitted = stack.emitted().await;
    assert!(
        of_type(&emitted, "Onboarding Step Failed").is_empty(),
        "{emitted:?}"
    );
    assert_eq!(of_type(&emitted, "Web Identity Provider Updated").len(), 2);
}
