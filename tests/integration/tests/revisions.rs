//! The latest request wins: later onboarding requests update what they describe, in event
//! time order, exactly once per revision; an older request never rolls anything back. End to
//! end against moto and the identity emulator, counted by the emulator.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use identity_emulator::{AccountConfig, Config as EmulatorConfig, FaultConfig, FaultRule};
use integration_tests::deliveries::{
    at, control_tower, of_type, oidc_provider, onboarding_requested,
};
use integration_tests::stack::Stack;
use onboarding::ledger::{Status, StepKey};
use serde_json::{json, Value};

const INSTANCE: &str = "identity-center-instance";

fn named(id: &str, account: &str, time: &str, name: &str, tags: Value) -> Value {
    at(
        onboarding_requested(
            id,
            account,
            json!({ "identityCenterInstance": { "name": name, "tags": tags } }),
        ),
        time,
    )
}

/// A stack whose `account` has a portal (its ARN returned).
async fn with_portal(name: &str, account: &str, portal_id: &str) -> (Stack, String) {
    let portal = format!("arn:aws:workspaces-web:us-east-1:{account}:portal/{portal_id}");
    let stack = Stack::start_with(
        name,
        EmulatorConfig::default()
            .with_account(AccountConfig::new(account).with_portal(portal.clone())),
    )
    .await;
    (stack, portal)
}

#[tokio::test]
async fn control_tower_then_the_own_event_applies_its_name_and_tags() {
    let account = "920000000001";
    let stack = Stack::start("ct-then-own").await;
    let handler = stack.instance_handler(stack.engine());
    let ct = at(
        control_tower("ct", "CreateManagedAccount", account, "SUCCEEDED"),
        "2026-11-30T10:00:00Z",
    );
    let (reply, _) = handler.handle(ct.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    stack.emitted().await;

    let own = named(
        "own",
        account,
        "2026-11-30T10:05:00Z",
        "payments-prod",
        json!({ "CostCenter": "1234" }),
    );
    stack.ledger_requests.reset();
    let (reply, tally) = handler.handle(own.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    assert_eq!(reply["changed"], json!(["name", "tags.CostCenter"]));
    assert_eq!(tally.updated, 1);
    eprintln!("requests: an update = {}", stack.ledger_requests.get());
    assert_eq!(
        stack.ledger_requests.get(),
        4,
        "the claim that finds the step READY, the update claim (which records the merged \
         desired state), the completion (with its Updated in the outbox), and the mark once \
         it is sent (which also takes the step out of the attention index)"
    );
    let (name, tags) = stack.instance_now(account, &arn).await;
    assert_eq!(name, "payments-prod");
    assert_eq!(tags.get("CostCenter").map(String::as_str), Some("1234"));
    let counters = stack.emulator.counters();
    assert_eq!(counters.calls("UpdateInstance"), 1);

    let updated = of_type(&stack.emitted().await, "Identity Center Instance Updated");
    assert_eq!(updated.len(), 1);
    let detail = &updated[0]["detail"];
    assert_eq!(detail["changed"], json!(["name", "tags.CostCenter"]));
    assert_eq!(detail["revision"]["time"], "2026-11-30T10:05:00.000Z");
    assert_eq!(detail["revision"]["eventId"], "own");
    assert_eq!(detail["resourceArn"], arn.as_str());

    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(account, INSTANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Ready);
    assert_eq!(
        record.applied_revision.as_ref().map(|r| r.as_str()),
        Some("2026-11-30T10:05:00.000Z#own")
    );
    assert!(!record.update_pending() && record.update_owner.is_none());

    // A duplicate of the applied revision: one DynamoDB request, no control-plane call.
    let calls = stack.emulator.counters().calls.values().sum::<u64>();
    stack.ledger_requests.reset();
    let (reply, _) = handler.handle(own, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate");
    assert_eq!(stack.ledger_requests.get(), 1);
    assert_eq!(stack.emulator.counters().calls.values().sum::<u64>(), calls);
    // The Control Tower event again (older): nothing changes.
    let (reply, _) = handler.handle(ct, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate");
    assert!(stack.emitted().await.is_empty());
}

#[tokio::test]
async fn the_own_event_then_control_tower_changes_nothing() {
    let account = "920000000002";
    let stack = Stack::start("own-then-ct").await;
    let handler = stack.instance_handler(stack.engine());
    let own = named(
        "own",
        account,
        "2026-11-30T10:00:00Z",
        "named",
        json!({ "Team": "a" }),
    );
    handler.handle(own, None).await.unwrap();
    // A newer Control Tower event (an OU move) has no preference about name or tags.
    let ct = at(
        control_tower("ct", "UpdateManagedAccount", account, "SUCCEEDED"),
        "2026-11-30T11:00:00Z",
    );
    let (reply, _) = handler.handle(ct, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
    let counters = stack.emulator.counters();
    assert_eq!(counters.calls("UpdateInstance"), 0);
    assert_eq!(counters.calls("TagResource"), 0);
}

#[tokio::test]
async fn the_later_of_two_revisions_wins_in_either_order_and_never_rolls_back() {
    let stack = Stack::start("two-revisions").await;
    let handler = stack.instance_handler(stack.engine());
    let older = |account| named("r1", account, "2026-11-30T10:00:00Z", "first", json!({}));
    let newer = |account| named("r2", account, "2026-11-30T10:01:00Z", "second", json!({}));

    // In order: created as "first", renamed "second".
    let a = "920000000003";
    handler.handle(older(a), None).await.unwrap();
    let (reply, _) = handler.handle(newer(a), None).await.unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    let arn_a = reply["resourceArn"].as_str().unwrap().to_string();
    // Last month's archive replay of the older request: a duplicate, nothing rolled back.
    let mut replay = older(a);
    replay["id"] = json!("archive-copy");
    replay["replay-name"] = json!("last-month");
    let (reply, _) = handler.handle(replay, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
    assert_eq!(stack.instance_now(a, &arn_a).await.0, "second");

    // Reversed: created as "second"; the older request arrives late and changes nothing.
    let b = "920000000004";
    let (reply, _) = handler.handle(newer(b), None).await.unwrap();
    let arn_b = reply["resourceArn"].as_str().unwrap().to_string();
    let (reply, _) = handler.handle(older(b), None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
    assert_eq!(stack.instance_now(b, &arn_b).await.0, "second");
    assert_eq!(stack.emulator.counters().calls("UpdateInstance"), 1);
}

#[tokio::test]
async fn tags_someone_else_set_are_never_touched() {
    let account = "920000000005";
    let stack = Stack::start("foreign-tags").await;
    let handler = stack.instance_handler(stack.engine());
    let (reply, _) = handler
        .handle(
            named(
                "t1",
                account,
                "2026-11-30T10:00:00Z",
                "n",
                json!({ "CostCenter": "1" }),
            ),
            None,
        )
        .await
        .unwrap();
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    let sso = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    sso.tag_resource()
        .instance_arn(&arn)
        .resource_arn(&arn)
        .tags(
            aws_sdk_ssoadmin::types::Tag::builder()
                .key("Owner")
                .value("security")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (reply, _) = handler
        .handle(
            named(
                "t2",
                account,
                "2026-11-30T10:01:00Z",
                "n",
                json!({ "Team": "x", "CostCenter": null }),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        reply["changed"],
        json!(["tags.CostCenter", "tags.Team"]),
        "{reply}"
    );
    let (_, tags) = stack.instance_now(account, &arn).await;
    assert_eq!(
        tags,
        BTreeMap::from([
            ("Owner".to_string(), "security".to_string()),
            ("Team".to_string(), "x".to_string()),
        ]),
        "the key the project set and a request removed goes, someone else's stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_of_one_revision_make_one_update_call() {
    let account = "920000000006";
    let stack = Stack::start("concurrent-update").await;
    let handler = stack.instance_handler(stack.engine());
    handler
        .handle(
            named("c1", account, "2026-11-30T10:00:00Z", "before", json!({})),
            None,
        )
        .await
        .unwrap();
    let newer = named("c2", account, "2026-11-30T10:01:00Z", "after", json!({}));
    let replies = join_all((0..10).map(|_| handler.handle(newer.clone(), None))).await;
    let updated = replies
        .iter()
        .filter(|r| matches!(r, Ok((reply, _)) if reply["status"] == "updated"))
        .count();
    assert_eq!(updated, 1, "{replies:?}");
    // The others are duplicates (it was applied) or come back later (it was being applied).
    for r in &replies {
        match r {
            Ok((reply, _)) => assert!(
                ["updated", "duplicate"].contains(&reply["status"].as_str().unwrap_or("")),
                "{reply}"
            ),
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
    }
    assert_eq!(stack.emulator.counters().calls("UpdateInstance"), 1);
    // One update announced: a delivery that finds it still in the outbox may send it too
    // (at least once), always as the same event (its generation and desired version).
    let distinct: std::collections::BTreeSet<String> =
        of_type(&stack.emitted().await, "Identity Center Instance Updated")
            .iter()
            .map(|e| e["detail"].to_string())
            .collect();
    assert_eq!(distinct.len(), 1, "{distinct:?}");
}

#[tokio::test]
async fn an_update_whose_response_was_lost_is_read_before_it_is_sent_again() {
    let account = "920000000007";
    let stack = Stack::start("update-lost").await;
    let handler = stack.instance_handler(stack.engine());
    handler
        .handle(
            named("l1", account, "2026-11-30T10:00:00Z", "before", json!({})),
            None,
        )
        .await
        .unwrap();
    // Every attempt of the first delivery commits the rename, then loses the response.
    stack.emulator.set_faults(FaultConfig::new(7).with_rule(
        "UpdateInstance",
        FaultRule {
            commit_then_fail_rate: 1.0,
            max_faults: Some(3),
            ..FaultRule::default()
        },
    ));
    let newer = named("l2", account, "2026-11-30T10:01:00Z", "after", json!({}));
    let err = handler
        .handle(newer.clone(), None)
        .await
        .expect_err("response lost");
    assert!(err.is_retryable());
    let sent = stack.emulator.counters().calls("UpdateInstance");
    // The next holder reads the name, finds it applied, and calls nothing.
    let (reply, _) = handler.handle(newer, None).await.unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    assert_eq!(stack.emulator.counters().calls("UpdateInstance"), sent);
}

#[tokio::test]
async fn a_provider_follows_a_new_issuer_and_a_new_secret_and_never_shows_the_secret() {
    let account = "920000000008";
    let (stack, portal) = with_portal(
        "provider-update",
        account,
        "6c3d0e2b-8e5f-4b4c-9f7d-3a2e1b0c9d8e",
    )
    .await;
    stack
        .put_secret(
            "onboarding/old",
            &json!({ "client_secret": "OLD-CANARY-SECRET" }),
        )
        .await;
    stack
        .put_secret(
            "onboarding/new",
            &json!({ "client_secret": "NEW-CANARY-SECRET" }),
        )
        .await;
    let handler = stack.web_handler(stack.engine());
    let first = at(
        onboarding_requested(
            "p1",
            account,
            oidc_provider(&portal, "corp-oidc", "onboarding/old"),
        ),
        "2026-11-30T10:00:00Z",
    );
    let (reply, _) = handler.handle(first, None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    let arn = reply["resourceArn"].as_str().unwrap().to_string();

    let mut moved = oidc_provider(&portal, "corp-oidc", "onboarding/new");
    moved["webIdentityProvider"]["details"]["oidc_issuer"] = json!("https://new-idp.example.com");
    let second = at(
        onboarding_requested("p2", account, moved),
        "2026-11-30T10:01:00Z",
    );
    let (reply, _) = handler.handle(second, None).await.unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    assert_eq!(reply["changed"], json!(["details.oidc_issuer", "secretId"]));
    assert_eq!(stack.emulator.counters().calls("UpdateIdentityProvider"), 1);

    let web = aws_sdk_workspacesweb::Client::new(&stack.config_in(account).await);
    let now = web
        .get_identity_provider()
        .identity_provider_arn(&arn)
        .send()
        .await
        .unwrap();
    let details = now
        .identity_provider()
        .and_then(|p| p.identity_provider_details())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        details.get("oidc_issuer").map(String::as_str),
        Some("https://new-idp.example.com")
    );
    // The secret reached the service (the emulator keeps a fingerprint of each state) but
    // nothing the project wrote.
    let emitted = stack.emitted().await;
    let updated = of_type(&emitted, "Web Identity Provider Updated");
    assert_eq!(updated.len(), 1);
    let everything = format!("{emitted:?} {:?} {reply}", stack.ledger_items().await);
    for canary in ["OLD-CANARY-SECRET", "NEW-CANARY-SECRET"] {
        assert!(!everything.contains(canary), "{canary} leaked");
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A newer revision takes over a create an older one sent (its response lost): it makes the
/// resource as the generation's first request asked (same token, same parameters, so the
/// create is answered from its token and the lookup finds our own provider), then updates it
/// to what it asks. Neither an IdempotentParameterMismatch nor a ForeignResourceConflict.
#[tokio::test]
async fn a_newer_revision_takes_over_a_create_begun_for_an_older_one() {
    let account = "920000000009";
    let (stack, portal) = with_portal(
        "revision-takeover",
        account,
        "7d4e1f3c-9f6a-4c5d-8e8f-4b3f2c1d0e9f",
    )
    .await;
    stack
        .put_secret("onboarding/corp", &json!({ "client_secret": "s3cr3t" }))
        .await;
    let handler = stack.web_handler(stack.engine());
    let instance_handler = stack.instance_handler(stack.engine());
    let older_provider = oidc_provider(&portal, "corp-oidc", "onboarding/corp");
    let mut newer_provider = older_provider.clone();
    newer_provider["webIdentityProvider"]["details"]["oidc_issuer"] =
        json!("https://moved-idp.example.com");
    let older = |provider: &Value| {
        let mut detail = provider.clone();
        detail["identityCenterInstance"] = json!({ "name": "first", "tags": {} });
        at(
            onboarding_requested("t1", account, detail),
            "2026-11-30T10:00:00Z",
        )
    };
    let older = older(&older_provider);
    let mut newer_detail = newer_provider.clone();
    newer_detail["identityCenterInstance"] = json!({ "name": "second", "tags": {} });
    let newer = at(
        onboarding_requested("t2", account, newer_detail),
        "2026-11-30T10:05:00Z",
    );

    // The older request's creates commit, and every response of its delivery is lost.
    let lost = FaultRule {
        commit_then_fail_rate: 1.0,
        max_faults: Some(3),
        ..FaultRule::default()
    };
    stack.emulator.set_faults(
        FaultConfig::new(11)
            .with_rule("CreateIdentityProvider", lost.clone())
            .with_rule("CreateInstance", lost),
    );
    for h in [
        handler.handle(older.clone(), None).await,
        instance_handler.handle(older, None).await,
    ] {
        assert!(h.expect_err("responses lost").is_retryable());
    }
    stack.emulator.set_faults(FaultConfig::new(11));

    // The newer request holds the steps next.
    let (reply, _) = handler.handle(newer.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    let (reply, _) = instance_handler.handle(newer, None).await.unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");

    let counters = stack.emulator.counters();
    assert_eq!(counters.created("CreateIdentityProvider"), 1);
    assert_eq!(counters.created("CreateInstance"), 1);
    assert_eq!(counters.calls("UpdateIdentityProvider"), 1);
    assert_eq!(counters.calls("UpdateInstance"), 1);
    let emitted = stack.emitted().await;
    assert!(
        of_type(&emitted, "Onboarding Step Failed").is_empty(),
        "{emitted:#?}"
    );
    assert_eq!(of_type(&emitted, "Web Identity Provider Ready").len(), 1);
    assert_eq!(of_type(&emitted, "Web Identity Provider Updated").len(), 1);
    assert_eq!(
        of_type(&emitted, "Identity Center Instance Updated").len(),
        1
    );

    let records = stack
        .engine()
        .ledger()
        .get(&format!("account#{account}"))
        .await
        .unwrap();
    assert_eq!(records.len(), 2, "{records:#?}");
    for record in &records {
        assert_eq!(record.status, Status::Ready, "{record:?}");
        assert!(
            record
                .applied_revision
                .as_ref()
                .is_some_and(|r| r.as_str() == "2026-11-30T10:05:00.000Z#t2"),
            "{record:?}"
        );
    }
    let instance = records
        .iter()
        .find(|r| r.key == StepKey::account(account, INSTANCE))
        .expect("instance item");
    let arn = instance.resource_arn.clone().unwrap();
    assert_eq!(stack.instance_now(account, &arn).await.0, "second");
}

/// A newer request that meets the step being created is not refused: it is recorded as
/// wanted, and the delivery that finishes the create applies it (one update call). Its own
/// delivery comes back, and is then a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_newer_request_during_the_create_is_applied_by_the_delivery_that_finishes_it() {
    let account = "920000000010";
    let stack = Stack::start("revision-wanted").await;
    let handler = stack.instance_handler(stack.engine());
    // The create takes a while: the newer request arrives while it is held.
    stack.emulator.set_faults(FaultConfig::new(3).with_rule(
        "CreateInstance",
        FaultRule {
            latency_ms: 1500,
            ..FaultRule::default()
        },
    ));
    let older = named("w1", account, "2026-11-30T10:00:00Z", "older", json!({}));
    let newer = named(
        "w2",
        account,
        "2026-11-30T10:05:00Z",
        "newer",
        json!({ "CostCenter": "42" }),
    );
    let later = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        handler.handle(newer.clone(), None).await
    };
    let (first, later) = futures::join!(handler.handle(older, None), later);
    assert_eq!(
        later.expect_err("held elsewhere").code(),
        "InProgressElsewhere"
    );
    let (reply, _) = first.unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    assert_eq!(
        stack.instance_now(account, &arn).await,
        (
            "newer".to_string(),
            BTreeMap::from([("CostCenter".to_string(), "42".to_string())])
        )
    );
    let (reply, _) = handler.handle(newer, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
    assert_eq!(stack.emulator.counters().calls("UpdateInstance"), 1);
    let updated = of_type(&stack.emitted().await, "Identity Center Instance Updated");
    assert_eq!(updated.len(), 1);
}

/// A newer request that meets an instance still being created (`CREATED`) is recorded as
/// wanted; when its message runs out, the reconciler that finishes the step applies it.
#[tokio::test]
async fn a_newer_request_for_a_created_step_is_applied_by_the_reconciler() {
    let account = "920000000011";
    let stack = Stack::start_with(
        "revision-wanted-created",
        EmulatorConfig {
            instance_activation_ms: 1500,
            ..EmulatorConfig::default()
        },
    )
    .await;
    let impatient = onboarding::engine::EngineSettings {
        ready_wait: Duration::ZERO,
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(impatient));
    let older = named("c1", account, "2026-11-30T10:00:00Z", "older", json!({}));
    let newer = named("c2", account, "2026-11-30T10:05:00Z", "newer", json!({}));
    for event in [older, newer] {
        let err = handler.handle(event, None).await.expect_err("not active");
        assert_eq!(err.code(), "NotReady");
    }
    // Both messages are gone for good; the instance becomes active.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let report = stack.reconcile(false).await;
    assert_eq!(report.finished, 1, "{report:?}");
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(account, INSTANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Ready);
    assert_eq!(
        record.applied_revision.as_ref().map(|r| r.as_str()),
        Some("2026-11-30T10:05:00.000Z#c2")
    );
    let arn = record.resource_arn.unwrap();
    assert_eq!(stack.instance_now(account, &arn).await.0, "newer");
    assert_eq!(stack.emulator.counters().calls("UpdateInstance"), 1);
}

/// An update that never ended (its TagResource lost every response after committing) may have
/// landed in part; a newer revision then takes the resource from an unknown state: it sets
/// every value desired and removes every key a request removed, whatever landed.
#[tokio::test]
async fn a_newer_revision_cleans_up_after_an_update_that_never_ended() {
    let account = "920000000012";
    let stack = Stack::start("update-unfinished").await;
    let handler = stack.instance_handler(stack.engine());
    let (reply, _) = handler
        .handle(
            named("u1", account, "2026-11-30T10:00:00Z", "one", json!({})),
            None,
        )
        .await
        .unwrap();
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    stack.emulator.set_faults(FaultConfig::new(9).with_rule(
        "TagResource",
        FaultRule {
            commit_then_fail_rate: 1.0,
            max_faults: Some(3),
            ..FaultRule::default()
        },
    ));
    let err = handler
        .handle(
            named(
                "u2",
                account,
                "2026-11-30T10:01:00Z",
                "two",
                json!({ "Stage": "r2" }),
            ),
            None,
        )
        .await
        .expect_err("every TagResource response lost");
    assert!(err.is_retryable(), "{err}");
    stack.emulator.set_faults(FaultConfig::new(9));
    assert_eq!(
        stack.instance_now(account, &arn).await,
        (
            "two".to_string(),
            BTreeMap::from([("Stage".to_string(), "r2".to_string())])
        ),
        "the unfinished update landed"
    );
    let (reply, _) = handler
        .handle(
            named(
                "u3",
                account,
                "2026-11-30T10:02:00Z",
                "three",
                json!({ "Stage": null }),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["status"], "updated", "{reply}");
    assert_eq!(
        stack.instance_now(account, &arn).await,
        ("three".to_string(), BTreeMap::new())
    );
}
