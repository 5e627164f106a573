//! The end of an account's life, through the handlers against moto and the identity
//! emulator: an onboarded account closes (Organizations `CloseAccountResult`) and its steps
//! are retired, announced once, refused to every older request and left alone by the
//! reconciler; a closed account reopened and onboarded again starts a new generation that
//! finds its old instance before creating anything; an account removed from the organization
//! before it was ever onboarded is never onboarded by a late request; a reopening cut short
//! after its write is finished by the reconciler as the reopening request asked.

use identity_emulator::{AccountConfig, Config as EmulatorConfig};
use integration_tests::deliveries::{at, envelope, of_type, oidc_provider, onboarding_requested};
use integration_tests::stack::Stack;
use onboarding::ledger::{Applied, Fields, Status, StepKey};
use onboarding::revision::Revision;
use serde_json::{json, Value};

const INSTANCE: &str = "identity-center-instance";
const OFFBOARDED: &str = "Account Offboarded";

/// Organizations `CloseAccountResult` `SUCCEEDED` for `account`, as CloudTrail records it.
fn close_account_result(event_id: &str, account: &str, time: &str) -> Value {
    at(
        envelope(
            event_id,
            "aws.organizations",
            "AWS Service Event via CloudTrail",
            json!({
                "eventSource": "organizations.amazonaws.com",
                "eventName": "CloseAccountResult",
                "eventType": "AwsServiceEvent",
                "serviceEventDetails": {
                    "closeAccountStatus": {
                        "accountId": account,
                        "state": "SUCCEEDED",
                        "requestedTimestamp": "Dec 1, 2026 9:59:52 AM",
                        "completedTimestamp": "Dec 1, 2026 10:00:09 AM"
                    }
                }
            }),
        ),
        time,
    )
}

/// `RemoveAccountFromOrganization` by the management account (a CloudTrail API call).
fn remove_account(event_id: &str, account: &str, time: &str) -> Value {
    at(
        envelope(
            event_id,
            "aws.organizations",
            "AWS API Call via CloudTrail",
            json!({
                "eventSource": "organizations.amazonaws.com",
                "eventName": "RemoveAccountFromOrganization",
                "eventType": "AwsApiCall",
                "userIdentity": { "accountId": "111111111111" },
                "requestParameters": { "accountId": account },
                "responseElements": null
            }),
        ),
        time,
    )
}

#[tokio::test]
async fn a_closed_account_is_retired_announced_once_refused_and_left_alone_then_reopened() {
    let account = "940000000001";
    let portal = format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"
    );
    let stack = Stack::start_with(
        "lifecycle-close",
        EmulatorConfig::default()
            .with_account(AccountConfig::new(account).with_portal(portal.clone())),
    )
    .await;
    stack
        .put_secret(
            "onboarding/life",
            &json!({ "client_secret": "LIFE-CANARY" }),
        )
        .await;
    let instance = stack.instance_handler(stack.engine());
    let web = stack.web_handler(stack.engine());
    let approval = stack.approval_handler(stack.engine());
    let request = onboarding_requested(
        "life-1",
        account,
        oidc_provider(&portal, "corp-oidc", "onboarding/life"),
    );
    let (reply, _) = instance.handle(request.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    let instance_arn = reply["resourceArn"].as_str().unwrap().to_owned();
    let (reply, _) = web.handle(request.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    stack.emitted().await;

    // The account closes: each function retires its own steps of the account.
    let close = close_account_result("close-1", account, "2026-12-01T10:00:09Z");
    let (reply, tally) = instance.handle(close.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "offboarded", "{reply}");
    assert_eq!(
        reply["retired"],
        json!([format!("account#{account}/{INSTANCE}")])
    );
    assert_eq!(tally.retired, 1);
    let (reply, _) = web.handle(close.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "offboarded", "{reply}");
    assert_eq!(
        reply["retired"].as_array().map(Vec::len),
        Some(1),
        "{reply}"
    );
    let (reply, _) = approval.handle(close.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "skipped", "{reply}");

    let ledger = stack.engine().ledger().clone();
    let (marks, steps): (Vec<_>, Vec<_>) = ledger
        .get(&format!("account#{account}"))
        .await
        .unwrap()
        .into_iter()
        .partition(|r| onboarding::steps::Known::is_departure_mark(&r.key));
    // The providers' departure mark: a request for a provider the account never had, older
    // than the closure, finds it and is retired rather than created.
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert!(marks[0].status == Status::Retired && marks[0].announced);
    assert_eq!(steps.len(), 2);
    for step in &steps {
        assert_eq!(step.status, Status::Retired, "{step:?}");
        assert!(step.announced, "{step:?}");
        let why = step.retired.as_ref().expect("why it was retired");
        assert_eq!(why["event"], "CloseAccountResult");
        assert_eq!(why["eventId"], "close-1");
        assert!(why["at"].as_u64().is_some(), "{why:?}");
        assert!(
            step.resource_arn.is_some(),
            "the resource is kept: {step:?}"
        );
    }
    let offboarded = of_type(&stack.emitted().await, OFFBOARDED);
    assert_eq!(offboarded.len(), 2, "{offboarded:#?}");
    let detail = offboarded
        .iter()
        .find(|e| e["detail"]["step"] == INSTANCE)
        .expect("the instance's retirement")["detail"]
        .clone();
    assert_eq!(detail["accountId"], account);
    assert_eq!(detail["resourceArn"], instance_arn.as_str());
    assert_eq!(detail["retired"]["event"], "CloseAccountResult");
    let creates = stack.emulator.counters().calls("CreateIdentityProvider");
    let mut older = onboarding_requested(
        "life-0",
        account,
        oidc_provider(&portal, "another-oidc", "onboarding/life"),
    );
    older["time"] = json!("2020-01-01T00:00:00Z");
    let (reply, _) = web.handle(older, None).await.unwrap();
    assert_eq!(reply["status"], "retired", "{reply}");
    assert_eq!(
        stack.emulator.counters().calls("CreateIdentityProvider"),
        creates,
        "nothing created for an account after its closure is recorded"
    );
    let offboarded = of_type(&stack.emitted().await, OFFBOARDED);
    assert_eq!(
        offboarded.len(),
        1,
        "the provider retired in its place: {offboarded:#?}"
    );
    assert!(offboarded[0]["detail"].get("resourceArn").is_none());

    // Announced once: the closure again (a redelivery) retires nothing new, announces nothing.
    let (reply, _) = instance.handle(close.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "offboarded", "{reply}");
    web.handle(close.clone(), None).await.unwrap();
    assert!(of_type(&stack.emitted().await, OFFBOARDED).is_empty());

    // A late or replayed onboarding request: acknowledged with why, nothing created.
    let creates = stack.emulator.counters().created("CreateInstance");
    let replay = at(
        onboarding_requested(
            "life-replayed",
            account,
            oidc_provider(&portal, "corp-oidc", "onboarding/life"),
        ),
        "2026-11-25T08:00:00Z",
    );
    let (reply, _) = instance.handle(replay.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "retired", "{reply}");
    assert!(
        reply["reason"].as_str().unwrap().contains("closed"),
        "{reply}"
    );
    let (reply, _) = web.handle(replay, None).await.unwrap();
    assert_eq!(reply["status"], "retired", "{reply}");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), creates);

    // The reconciler neither re-drives nor audits it: no drift, no failure, nothing unaudited.
    let report = stack.reconcile(true).await;
    assert_eq!(
        (
            report.attention,
            report.redriven,
            report.audited,
            report.drift,
            report.repaired,
            report.not_audited,
            report.failed
        ),
        (0, 0, 0, 0, 0, 0, 0),
        "{report:?}"
    );
    let emitted = stack.emitted().await;
    assert!(
        of_type(&emitted, "Onboarding Drift Detected").is_empty()
            && of_type(&emitted, "Onboarding Step Failed").is_empty(),
        "{emitted:#?}"
    );

    // Reopened within the 90 days and sent again: a new generation, which looks the old
    // instance up and finds it before creating anything.
    let reopened = at(
        onboarding_requested("life-reopened", account, json!({})),
        "2026-12-10T09:00:00Z",
    );
    let (reply, _) = instance.handle(reopened.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(reply["resourceArn"], instance_arn.as_str(), "{reply}");
    assert_ne!(reply["how"], "created", "{reply}");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), creates);
    let record = ledger
        .get_step(&StepKey::account(account, INSTANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.status, record.generation), (Status::Ready, 1));
    assert_eq!(
        record.retired.as_ref().map(|w| w["eventId"].clone()),
        Some(json!("close-1")),
        "the retirement stays as history"
    );
    // The old closure replayed now does not retire the reopened account.
    let (reply, _) = instance.handle(close, None).await.unwrap();
    assert_eq!(reply["retired"], json!([]), "{reply}");
    assert_eq!(reply["kept"].as_array().map(Vec::len), Some(1), "{reply}");
    let record = ledger
        .get_step(&StepKey::account(account, INSTANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Ready);
}

#[tokio::test]
async fn an_account_removed_before_it_was_onboarded_is_never_onboarded_by_a_late_request() {
    let account = "940000000002";
    let stack = Stack::start("lifecycle-removed").await;
    let instance = stack.instance_handler(stack.engine());
    let web = stack.web_handler(stack.engine());
    let removed = remove_account("removed-1", account, "2026-12-02T08:30:41Z");
    let (reply, _) = instance.handle(removed.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "offboarded", "{reply}");
    assert_eq!(
        reply["retired"],
        json!([format!("account#{account}/{INSTANCE}")])
    );
    let (reply, _) = web.handle(removed, None).await.unwrap();
    assert_eq!(
        (reply["status"].clone(), reply["retired"].clone()),
        (json!("offboarded"), json!([]))
    );
    let offboarded = of_type(&stack.emitted().await, OFFBOARDED);
    assert_eq!(offboarded.len(), 1, "{offboarded:#?}");
    assert_eq!(
        offboarded[0]["detail"]["retired"]["event"],
        "RemoveAccountFromOrganization"
    );
    assert!(offboarded[0]["detail"].get("resourceArn").is_none());

    // Control Tower's (older) event for it arrives late: refused, nothing created.
    let late = onboarding_requested("late-1", account, json!({}));
    let (reply, _) = instance.handle(late, None).await.unwrap();
    assert_eq!(reply["status"], "retired", "{reply}");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 0);
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(account, INSTANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Retired);
}

/// A reopening whose delivery ended right after its write (the step IN_PROGRESS in a new
/// generation, nobody holding it): the reconciler finishes it with the request that reopened
/// it, recorded by the reopening, and the Ready names that request. It never makes a
/// resource as nobody asked.
#[tokio::test]
async fn a_reopening_cut_short_is_finished_by_the_reconciler_as_its_request_asked() {
    let account = "940000000003";
    let stack = Stack::start("lifecycle-reopen-cut").await;
    let instance = stack.instance_handler(stack.engine());
    let asked = json!({ "identityCenterInstance": { "name": "payments" } });
    let request = onboarding_requested("cut-1", account, asked);
    let (reply, _) = instance.handle(request, None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    let close = close_account_result("cut-close", account, "2026-12-01T10:00:09Z");
    let (reply, _) = instance.handle(close, None).await.unwrap();
    assert_eq!(reply["status"], "offboarded", "{reply}");
    stack.emitted().await;

    // The reopening request's delivery writes the reopening, then ends.
    let ledger = stack.engine().ledger().clone();
    let key = StepKey::account(account, INSTANCE);
    let retired = ledger.get_step(&key).await.unwrap().unwrap();
    let fields: Fields = json!({ "name": "payments" }).as_object().cloned().unwrap();
    let revision = Revision::parse("2026-12-10T09:00:00.000Z#cut-reopening");
    let reopening = Applied {
        state: &fields,
        revision: &revision,
    };
    assert!(ledger.reopen(&retired, reopening).await.unwrap());

    let report = stack.reconcile(false).await;
    assert_eq!(report.redriven, 1, "{report:?}");
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!((record.status, record.generation), (Status::Ready, 1));
    let emitted = stack.emitted().await;
    let ready = of_type(&emitted, "Identity Center Instance Ready");
    assert_eq!(ready.len(), 1, "{emitted:#?}");
    assert_eq!(ready[0]["detail"]["requestEventId"], "cut-reopening");
}

/// An update recorded before the account closed, its "Updated" not yet sent (its PutEvents
/// failed), is announced by the closure's delivery before "Account Offboarded": a retirement
/// never swallows an outcome recorded before it.
#[tokio::test]
async fn an_update_recorded_before_the_closure_is_announced_before_the_retirement() {
    let account = "940000000009";
    let stack = Stack::start("lifecycle-outbox").await;
    let handler = stack.instance_handler(stack.engine());
    let named = |id: &str, time: &str, name: &str| {
        at(
            onboarding_requested(
                id,
                account,
                json!({ "identityCenterInstance": { "name": name } }),
            ),
            time,
        )
    };
    handler
        .handle(named("o-1", "2026-12-01T08:00:00Z", "one"), None)
        .await
        .unwrap();
    stack.emitted().await;
    let err = stack
        .instance_handler(stack.engine_without_eventbridge())
        .handle(named("o-2", "2026-12-01T09:00:00Z", "two"), None)
        .await
        .expect_err("its PutEvents fails");
    assert!(err.is_retryable(), "{err}");
    let key = StepKey::account(account, "identity-center-instance");
    let ledger = stack.engine().ledger().clone();
    assert_eq!(
        ledger.get_step(&key).await.unwrap().unwrap().outbox.len(),
        1,
        "the update is recorded with its announcement, unsent"
    );

    let (reply, _) = handler
        .handle(
            close_account_result("o-close", account, "2026-12-01T10:00:00Z"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["status"], "offboarded", "{reply}");
    let emitted = stack.emitted().await;
    let kinds: Vec<&str> = emitted
        .iter()
        .filter_map(|e| e["detail-type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["Identity Center Instance Updated", "Account Offboarded"],
        "{emitted:?}"
    );
    assert_eq!(emitted[0]["detail"]["changed"], json!(["name"]));
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Retired);
    assert!(record.announced && record.outbox.is_empty(), "{record:?}");
    assert!(record.attention.is_none(), "{record:?}");
}
