//! Every outcome is recorded, then announced, then marked: a holder whose PutEvents fails
//! leaves its outcome recorded and unannounced in the attention index, and the next delivery
//! or the reconciler announces it, once. Through the handlers against moto and the emulator.

use integration_tests::deliveries::{of_type, onboarding_requested};
use integration_tests::stack::Stack;
use onboarding::ledger::{Status, StepKey};
use serde_json::{json, Value};

const INSTANCE: &str = "identity-center-instance";

fn instance(id: &str, account: &str, time: &str, name: &str) -> Value {
    let mut event = onboarding_requested(
        id,
        account,
        json!({ "identityCenterInstance": { "name": name } }),
    );
    event["time"] = json!(time);
    event
}

#[tokio::test]
async fn a_ready_whose_announcement_failed_is_announced_by_the_reconciler_once() {
    let account = "950000000001";
    let stack = Stack::start("ready-unannounced").await;
    let broken = stack.instance_handler(stack.engine_without_eventbridge());
    let err = broken
        .handle(instance("a1", account, "2026-12-01T10:00:00Z", "one"), None)
        .await
        .expect_err("its PutEvents fails");
    assert!(err.is_retryable(), "{err}");
    let key = StepKey::account(account, INSTANCE);
    let ledger = stack.engine().ledger().clone();
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(
        record.status,
        Status::Ready,
        "recorded before it is announced"
    );
    assert!(!record.announced);
    assert_eq!(record.attention.as_deref(), Some("UPDATING"));
    assert!(stack.emitted().await.is_empty(), "nothing announced yet");

    let report = stack.reconcile(false).await;
    assert_eq!(report.redriven, 1, "{report:?}");
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert!(record.announced && record.attention.is_none(), "{record:?}");
    // Later deliveries and runs announce nothing more.
    stack
        .instance_handler(stack.engine())
        .handle(instance("a1", account, "2026-12-01T10:00:00Z", "one"), None)
        .await
        .unwrap();
    stack.reconcile(false).await;
    let ready = of_type(&stack.emitted().await, "Identity Center Instance Ready");
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!(ready[0]["detail"]["requestEventId"], "a1");
}

#[tokio::test]
async fn an_update_whose_announcement_failed_stays_in_the_outbox_until_announced() {
    let account = "950000000002";
    let stack = Stack::start("update-unannounced").await;
    let handler = stack.instance_handler(stack.engine());
    handler
        .handle(instance("u1", account, "2026-12-01T10:00:00Z", "one"), None)
        .await
        .unwrap();
    stack.emitted().await;
    let rename = instance("u2", account, "2026-12-01T11:00:00Z", "two");
    let err = stack
        .instance_handler(stack.engine_without_eventbridge())
        .handle(rename.clone(), None)
        .await
        .expect_err("its PutEvents fails");
    assert!(err.is_retryable(), "{err}");
    let key = StepKey::account(account, INSTANCE);
    let ledger = stack.engine().ledger().clone();
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(
        record.state.as_ref().and_then(|s| s.get("name")),
        Some(&json!("two")),
        "the update is recorded"
    );
    assert_eq!(record.outbox.len(), 1, "with its announcement, unsent");
    assert_eq!(record.attention.as_deref(), Some("UPDATING"));
    assert!(stack.emitted().await.is_empty());

    // The next delivery (a redelivery of the same request) sends it, then leaves the index.
    let (reply, _) = handler.handle(rename, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate", "{reply}");
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert!(
        record.outbox.is_empty() && record.attention.is_none(),
        "{record:?}"
    );
    let updated = of_type(&stack.emitted().await, "Identity Center Instance Updated");
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(updated[0]["detail"]["changed"], json!(["name"]));
    assert_eq!(updated[0]["detail"]["generation"], 0);
    assert!(updated[0]["detail"]["desiredVersion"].as_u64().is_some());
    assert_eq!(stack.emulator.counters().calls("UpdateInstance"), 1);
}
