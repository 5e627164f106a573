//! The three functions' handlers end to end, against moto and the identity emulator over
//! HTTP: every delivery kind, duplicates, concurrency, readiness, reconciliation, permanent
//! and retryable failures. Resource counts come from the emulator, not from the handlers.

use std::time::Duration;

use futures::future::join_all;
use identity_emulator::{AccountConfig, Config as EmulatorConfig, FaultConfig, FaultRule};
use integration_tests::deliveries::{
    control_tower, failed_ids, oidc_provider, onboarding_requested, organizations, sqs_batch,
    Record,
};
use integration_tests::stack::Stack;
use onboarding::engine::EngineSettings;
use onboarding::ledger::{Claim, ClaimRequest, Status, StepKey};
use serde_json::{json, Value};

const ACCOUNT: &str = "222222222222";

fn portal(account: &str) -> String {
    format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/0d5e1c8a-3b7f-4e2a-9c6d-1f2e3a4b5c6d"
    )
}

fn ready_events<'a>(emitted: &'a [Value], detail_type: &str) -> Vec<&'a Value> {
    emitted
        .iter()
        .filter(|e| e["detail-type"] == detail_type)
        .collect()
}

#[tokio::test]
async fn instance_is_created_once_waits_for_active_and_is_announced() {
    let stack = Stack::start("instance").await;
    let handler = stack.instance_handler(stack.engine());
    let event = onboarding_requested(
        "evt-1",
        ACCOUNT,
        json!({ "identityCenterInstance": { "name": "payments-prod", "tags": { "CostCenter": "42" } } }),
    );

    stack.ledger_requests.reset();
    let (reply, tally) = handler
        .handle(event.clone(), None)
        .await
        .expect("first delivery");
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(tally.created, 1);
    assert_eq!(
        stack.ledger_requests.get(),
        3,
        "a first pass is a claim, the completion (recorded before it is announced) and the \
         mark once announced"
    );
    let arn = reply["resourceArn"].as_str().unwrap().to_string();
    assert!(arn.starts_with("arn:aws:sso:::instance/"), "{arn}");

    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(ACCOUNT, "identity-center-instance"))
        .await
        .unwrap()
        .expect("ledger record");
    assert_eq!(record.status, Status::Ready);
    assert_eq!(record.resource_arn.as_deref(), Some(arn.as_str()));
    assert!(record.announced);

    // The emulator holds exactly one instance, in the member account.
    let counters = stack.emulator.counters();
    assert_eq!(counters.created("CreateInstance"), 1);
    let emitted = stack.emitted().await;
    let ready = ready_events(&emitted, "Identity Center Instance Ready");
    assert_eq!(ready.len(), 1, "{emitted:?}");
    assert_eq!(ready[0]["detail"]["resourceArn"], arn.as_str());
    assert_eq!(ready[0]["detail"]["accountId"], ACCOUNT);
    assert_eq!(ready[0]["detail"]["clientToken"], record.token.as_str());

    // A redelivery is a duplicate: one ledger request, no call to SSO Admin, no event.
    let calls_before = stack.emulator.counters().calls.values().sum::<u64>();
    stack.ledger_requests.reset();
    let (reply, tally) = handler.handle(event, None).await.expect("duplicate");
    assert_eq!(reply["status"], "duplicate");
    assert_eq!(tally.duplicates, 1);
    assert_eq!(
        stack.ledger_requests.get(),
        1,
        "a duplicate costs exactly one DynamoDB request"
    );
    assert_eq!(
        stack.emulator.counters().calls.values().sum::<u64>(),
        calls_before
    );
    assert!(stack.emitted().await.is_empty());
}

#[tokio::test]
async fn a_pending_instance_is_retried_until_active_without_a_second_create() {
    let stack = Stack::start("pending").await;
    let impatient = EngineSettings {
        ready_wait: Duration::ZERO,
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(impatient));
    let event = onboarding_requested("evt-pending", ACCOUNT, json!({}));

    let err = handler
        .handle(event.clone(), None)
        .await
        .expect_err("not ready yet");
    assert!(err.is_retryable());
    assert_eq!(err.code(), "NotReady");
    let key = StepKey::account(ACCOUNT, "identity-center-instance");
    let record = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Created);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let (reply, _) = handler
        .handle(event, None)
        .await
        .expect("ready on redelivery");
    assert_eq!(reply["status"], "ready");
    assert_eq!(reply["how"], "settled");
    assert_eq!(stack.emulator.counters().calls("CreateInstance"), 1);
    assert_eq!(
        ready_events(&stack.emitted().await, "Identity Center Instance Ready").len(),
        1
    );
}

#[tokio::test]
async fn a_lost_create_response_is_adopted_not_duplicated() {
    let stack = Stack::start("lost").await;
    let handler = stack.instance_handler(stack.engine());
    let event = onboarding_requested("evt-lost", ACCOUNT, json!({}));

    // Every CreateInstance commits, then the client sees a 500: the SDK's own retries reuse
    // the token, so even they cannot learn the ARN while the fault lasts.
    stack.emulator.set_faults(FaultConfig::new(7).with_rule(
        "CreateInstance",
        FaultRule {
            commit_then_fail_rate: 1.0,
            ..FaultRule::default()
        },
    ));
    let err = handler
        .handle(event.clone(), None)
        .await
        .expect_err("lost response");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 1);

    stack.emulator.set_faults(FaultConfig::new(7));
    let (reply, tally) = handler.handle(event, None).await.expect("redelivery");
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(reply["how"], "adopted");
    assert_eq!(tally.adopted, 1);
    let counters = stack.emulator.counters();
    assert_eq!(
        counters.created("CreateInstance"),
        1,
        "still exactly one instance"
    );
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(ACCOUNT, "identity-center-instance"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.attempt, 2);
}

#[tokio::test]
async fn twenty_concurrent_deliveries_create_one_instance() {
    let stack = Stack::start("concurrent").await;
    let handler = stack.instance_handler(stack.engine());
    let event = onboarding_requested("evt-burst", ACCOUNT, json!({}));

    let mut pending: Vec<Value> = vec![event; 20];
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        assert!(rounds <= 20, "deliveries never settled");
        let results = join_all(pending.iter().map(|e| handler.handle(e.clone(), None))).await;
        pending = results
            .into_iter()
            .zip(pending)
            .filter_map(|(r, e)| match r {
                Ok(_) => None,
                Err(err) => {
                    assert!(err.is_retryable(), "{err}");
                    Some(e)
                }
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counters = stack.emulator.counters();
    assert_eq!(
        counters.calls("CreateInstance"),
        1,
        "exactly one create call"
    );
    assert_eq!(counters.created("CreateInstance"), 1);
}

#[tokio::test]
async fn sqs_batches_report_exactly_the_records_to_retry() {
    let stack = Stack::start("sqs").await;
    let handler = stack.instance_handler(stack.engine());
    let good = onboarding_requested("evt-a", "333333333333", json!({}));
    let ignored = control_tower(
        "evt-b",
        "CreateManagedAccount",
        "444444444444",
        "IN_PROGRESS",
    );
    let batch = sqs_batch(&[
        Record::of("m-good", &good),
        Record {
            message_id: "m-garbage".into(),
            body: "{not json".into(),
            group_id: None,
            receive_count: 1,
        },
        Record::of("m-ignored", &ignored),
        Record::of("m-dup", &good),
    ]);
    let (reply, tally) = handler.handle(batch, None).await.expect("batch");
    let failed = failed_ids(&reply);
    // The garbage record has no ledger item: back to the queue (then its DLQ).
    assert!(failed.contains(&"m-garbage".to_string()), "{reply}");
    assert!(!failed.contains(&"m-ignored".to_string()));
    assert!(!failed.contains(&"m-good".to_string()) || !failed.contains(&"m-dup".to_string()));
    assert_eq!(tally.rejected, 1);
    assert_eq!(stack.emulator.counters().calls("CreateInstance"), 1);
    assert_eq!(
        reply.as_object().unwrap().len(),
        1,
        "the reply is exactly the batchItemFailures"
    );
}

#[tokio::test]
async fn every_accepted_event_kind_onboards_directly_and_via_sqs() {
    let stack = Stack::start("kinds").await;
    let handler = stack.instance_handler(stack.engine());
    let kinds = [
        (
            "500000000001",
            onboarding_requested("k-1", "500000000001", json!({})),
        ),
        (
            "500000000002",
            control_tower("k-2", "CreateManagedAccount", "500000000002", "SUCCEEDED"),
        ),
        (
            "500000000003",
            control_tower("k-3", "UpdateManagedAccount", "500000000003", "SUCCEEDED"),
        ),
        (
            "500000000004",
            organizations("k-4", "500000000004", "SUCCEEDED"),
        ),
    ];
    for (account, event) in &kinds {
        let (reply, _) = handler.handle(event.clone(), None).await.expect("direct");
        assert_eq!(reply["status"], "ready", "{account}: {reply}");
    }
    // The same kinds in a standard batch are duplicates now; in a FIFO batch too.
    let standard: Vec<Record> = kinds
        .iter()
        .map(|(a, e)| Record::of(&format!("s-{a}"), e))
        .collect();
    let (reply, tally) = handler.handle(sqs_batch(&standard), None).await.unwrap();
    assert!(failed_ids(&reply).is_empty(), "{reply}");
    assert_eq!(tally.duplicates, 4);
    let fifo: Vec<Record> = kinds
        .iter()
        .map(|(a, e)| Record::of(&format!("f-{a}"), e).in_group(a))
        .collect();
    let (reply, tally) = handler.handle(sqs_batch(&fifo), None).await.unwrap();
    assert!(failed_ids(&reply).is_empty(), "{reply}");
    assert_eq!(tally.duplicates, 4);
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 4);

    // Not onboarding: acknowledged without action.
    for event in [
        control_tower("k-5", "CreateManagedAccount", "500000000005", "FAILED"),
        organizations("k-6", "500000000006", "FAILED"),
    ] {
        let (reply, _) = handler.handle(event, None).await.unwrap();
        assert_eq!(reply["status"], "ignored", "{reply}");
    }
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 4);
}

#[tokio::test]
async fn malformed_events_are_rejected_with_their_reason() {
    let stack = Stack::start("malformed").await;
    let handler = stack.instance_handler(stack.engine());
    let cases = [
        (json!({ "hello": "world" }), ""),
        (
            integration_tests::deliveries::envelope("x-1", "aws.s3", "Object Created", json!({})),
            "source",
        ),
        (onboarding_requested("x-2", "12ab", json!({})), "accountId"),
        (
            onboarding_requested("x-3", ACCOUNT, json!({ "colour": "blue" })),
            "colour",
        ),
    ];
    for (event, field) in cases {
        let (reply, tally) = handler
            .handle(event.clone(), None)
            .await
            .expect("acknowledged");
        assert_eq!(reply["status"], "rejected", "{reply}");
        assert!(reply["reason"].as_str().unwrap().contains(field), "{reply}");
        assert_eq!(tally.rejected, 1);
    }
    // Each rejection is visible on the bus.
    let emitted = stack.emitted().await;
    let failed = ready_events(&emitted, "Onboarding Step Failed");
    assert_eq!(failed.len(), 4, "{emitted:?}");
    assert!(failed
        .iter()
        .all(|e| e["detail"]["reason"]["code"] == "InvalidEvent"));
    assert_eq!(stack.emulator.counters().calls("CreateInstance"), 0);
}

#[tokio::test]
async fn permanent_failures_are_recorded_announced_and_acknowledged() {
    let refusing = "600000000001";
    let failing = "600000000002";
    let mut config = EmulatorConfig::default();
    config
        .accounts
        .push(AccountConfig::new(refusing).refusing_role("*"));
    config
        .accounts
        .push(AccountConfig::new(failing).failing_instance_creation("KMS key unavailable"));
    let stack = Stack::start_with("permanent", config).await;
    // No grace: a member role that cannot be assumed is a permanent failure at once.
    let no_grace = EngineSettings {
        member_role_grace: Duration::ZERO,
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(no_grace));

    let batch = sqs_batch(&[
        Record::of("p-1", &onboarding_requested("p-1", refusing, json!({}))),
        Record::of("p-2", &onboarding_requested("p-2", failing, json!({}))),
    ]);
    let (reply, tally) = handler.handle(batch.clone(), None).await.unwrap();
    assert!(
        failed_ids(&reply).is_empty(),
        "permanent failures are acknowledged: {reply}"
    );
    assert_eq!(tally.failures, 2);

    let ledger = stack.engine().ledger().clone();
    let expect = [
        (refusing, "MemberRoleUnavailable"),
        (failing, "CREATE_FAILED"),
    ];
    for (account, code) in expect {
        let record = ledger
            .get_step(&StepKey::account(account, "identity-center-instance"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, Status::Failed, "{account}");
        assert!(
            record.announced,
            "{account}: announced after it was recorded"
        );
        let error = record.last_error.expect("reason recorded");
        assert!(error.code.contains(code), "{account}: {error:?}");
        assert!(!error.retryable);
    }
    let refused = ledger
        .get_step(&StepKey::account(refusing, "identity-center-instance"))
        .await
        .unwrap()
        .unwrap()
        .last_error
        .unwrap()
        .message;
    for needle in [
        "arn:aws:iam::600000000001:role/IdentityOnboardingMemberRole",
        "grace window",
        "trust policy",
    ] {
        assert!(refused.contains(needle), "{needle:?} in {refused}");
    }
    let emitted = stack.emitted().await;
    let failed = ready_events(&emitted, "Onboarding Step Failed");
    assert_eq!(failed.len(), 2, "{emitted:?}");

    // Redelivered: still failed, acknowledged, not announced again, nothing created.
    let (reply, _) = handler.handle(batch, None).await.unwrap();
    assert!(failed_ids(&reply).is_empty());
    assert!(stack.emitted().await.is_empty());

    // While a step is in flight, a different request for the same key is not refused: it
    // comes back soon (the holder claimed it just now: in about 5 s, not when its 30 s lease
    // ends), and the holder's record is left alone.
    let busy = "600000000005";
    let key = StepKey::account(busy, "identity-center-instance");
    let claim = ledger
        .claim(
            &key,
            &ClaimRequest {
                request_hash: "another-request",
                event_id: "elsewhere",
                lease: Duration::from_secs(30),
                deadline: None,
            },
        )
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Acquired(_)));
    let before = ledger.get_step(&key).await.unwrap().unwrap();
    let err = handler
        .handle(onboarding_requested("p-6", busy, json!({})), None)
        .await
        .expect_err("retried later");
    assert_eq!(err.code(), "InProgressElsewhere");
    let back = err.retry_after().expect("a delay");
    assert!(
        back >= Duration::from_secs(4) && back <= Duration::from_secs(5),
        "{back:?}"
    );
    let after = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(format!("{before:?}"), format!("{after:?}"));
    assert!(stack.emitted().await.is_empty(), "nothing announced");
    // p-2 only: the waiting request called nothing.
    assert_eq!(stack.emulator.counters().calls("CreateInstance"), 1);
}

#[tokio::test]
async fn throttling_is_retried_and_then_succeeds() {
    let stack = Stack::start("throttle").await;
    let handler = stack.instance_handler(stack.engine());
    stack.emulator.set_faults(FaultConfig::new(3).with_rule(
        "CreateInstance",
        FaultRule {
            throttle_rate: 1.0,
            ..FaultRule::default()
        },
    ));
    let batch = sqs_batch(&[Record::of(
        "t-1",
        &onboarding_requested("t-1", ACCOUNT, json!({})),
    )]);
    let (reply, tally) = handler.handle(batch.clone(), None).await.unwrap();
    assert_eq!(failed_ids(&reply), vec!["t-1".to_string()]);
    assert_eq!(tally.retries, 1);
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(ACCOUNT, "identity-center-instance"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::InProgress);
    assert!(record.last_error.is_some_and(|e| e.retryable));

    stack.emulator.set_faults(FaultConfig::new(3));
    let (reply, _) = handler.handle(batch, None).await.unwrap();
    assert!(failed_ids(&reply).is_empty(), "{reply}");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 1);
}

#[tokio::test]
async fn the_approval_identity_source_is_created_once_per_organization() {
    let stack = Stack::start("approval").await;
    let handler = stack.approval_handler(stack.engine());
    let events: Vec<Value> = (1..=5)
        .map(|i| onboarding_requested(&format!("o-{i}"), &format!("70000000000{i}"), json!({})))
        .collect();
    let batch: Vec<Record> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Record::of(&format!("o-{i}"), e))
        .collect();

    let mut batch = sqs_batch(&batch);
    for _ in 0..20 {
        let (reply, _) = handler.handle(batch.clone(), None).await.unwrap();
        let failed = failed_ids(&reply);
        if failed.is_empty() {
            break;
        }
        // Keep only the records to retry, as SQS would.
        let records: Vec<Value> = batch["Records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| failed.iter().any(|id| r["messageId"] == id.as_str()))
            .cloned()
            .collect();
        batch = json!({ "Records": records });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counters = stack.emulator.counters();
    assert_eq!(counters.calls("CreateIdentitySource"), 1);
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::org(
            &stack.organization_instance_arn,
            "approval-identity-source",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Ready);
    let emitted = stack.emitted().await;
    let ready = ready_events(&emitted, "Approval Identity Source Ready");
    assert_eq!(ready.len(), 1, "{emitted:?}");
    assert!(ready[0]["detail"].get("accountId").is_none());
}

#[tokio::test]
async fn web_identity_providers_are_created_on_the_portal_with_secrets_from_secrets_manager() {
    let account = "800000000001";
    let mut config = EmulatorConfig::default();
    config
        .accounts
        .push(AccountConfig::new(account).with_portal(portal(account)));
    let stack = Stack::start_with("web", config).await;
    let handler = stack.web_handler(stack.engine());
    stack
        .put_secret(
            "onboarding/web-oidc",
            &json!({ "client_secret": "s3cr3t-canary-value" }),
        )
        .await;

    let event = onboarding_requested(
        "w-1",
        account,
        oidc_provider(&portal(account), "corp-oidc", "onboarding/web-oidc"),
    );
    stack.ledger_requests.reset();
    let (reply, tally) = handler.handle(event.clone(), None).await.expect("created");
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(
        stack.ledger_requests.get(),
        4,
        "a first pass is a claim, the read of the account's departure mark, the completion \
         (recorded before it is announced) and the mark once announced"
    );
    assert_eq!(tally.created, 1);
    let (reply, _) = handler.handle(event, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate");
    assert_eq!(stack.emulator.counters().calls("CreateIdentityProvider"), 1);

    // A request that names no portal skips the step; a portal that does not exist fails it.
    let (reply, _) = handler
        .handle(onboarding_requested("w-2", account, json!({})), None)
        .await
        .unwrap();
    assert_eq!(reply["status"], "skipped");
    let missing = portal("800000000002");
    let (reply, _) = handler
        .handle(
            onboarding_requested(
                "w-3",
                "800000000002",
                oidc_provider(&missing, "corp-oidc", "onboarding/web-oidc"),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(reply["reason"]["code"], "ResourceNotFoundException");
}

#[tokio::test]
async fn announcements_made_together_share_one_put_events_call() {
    let stack = Stack::start("announce-batch").await;
    let engine = stack.engine();
    let reasons: Vec<_> = (0..10)
        .map(|i| onboarding::ledger::ErrorReason {
            retryable: false,
            code: "Test".into(),
            message: format!("announcement {i}"),
        })
        .collect();
    stack.announce_requests.reset();
    let sent = join_all(reasons.iter().map(|reason| {
        let engine = &engine;
        async move {
            let subject = onboarding::announce::Subject {
                step: "identity-center-instance",
                account_id: Some(ACCOUNT),
                request_event_id: "batch",
            };
            engine.announcer().failed(&subject, reason).await
        }
    }))
    .await;
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
    assert_eq!(
        stack.announce_requests.get(),
        1,
        "ten announcements at once are one PutEvents call"
    );
    assert_eq!(stack.emitted().await.len(), 10, "each entry delivered");
}

/// The records of one invocation finish apart (readiness polled on each record's own clock,
/// throttled checks retried, a duplicate done at once), and their announcements still share
/// one PutEvents call: each waits until every record still running waits too.
#[tokio::test]
async fn an_invocations_announcements_share_one_put_events_call() {
    let stack = Stack::start("announce-invocation").await;
    stack.emulator.set_faults(FaultConfig::new(5).with_rule(
        "DescribeInstance",
        FaultRule {
            throttle_rate: 0.3,
            latency_ms: 40,
            ..FaultRule::default()
        },
    ));
    let handler = stack.instance_handler(stack.engine());
    let mut records: Vec<Record> = (0..8)
        .map(|i| {
            let account = format!("82000000000{i}");
            let id = format!("i-{i}");
            Record::of(&id, &onboarding_requested(&id, &account, json!({})))
        })
        .collect();
    records.push(Record::of(
        "i-dup",
        &onboarding_requested("i-0", "820000000000", json!({})),
    ));
    stack.announce_requests.reset();
    let (reply, tally) = handler.handle(sqs_batch(&records), None).await.unwrap();
    let emitted = stack.emitted().await;
    let ready = ready_events(&emitted, "Identity Center Instance Ready");
    eprintln!(
        "{} Ready events, {} PutEvents call(s); reply {reply}",
        ready.len(),
        stack.announce_requests.get()
    );
    assert_eq!(ready.len() as u32, tally.created);
    assert!(tally.created >= 4, "{reply}");
    assert_eq!(stack.announce_requests.get(), 1, "one PutEvents call");
}

#[tokio::test]
async fn a_batch_of_providers_reads_their_shared_secret_once() {
    let accounts: Vec<String> = (0..6).map(|i| format!("81000000000{i}")).collect();
    let mut config = EmulatorConfig::default();
    for account in &accounts {
        config
            .accounts
            .push(AccountConfig::new(account).with_portal(portal(account)));
    }
    let stack = Stack::start_with("secret-once", config).await;
    stack
        .put_secret(
            "onboarding/shared",
            &json!({ "client_secret": "shared-canary" }),
        )
        .await;
    let handler = stack.web_handler(stack.engine());
    let records: Vec<Record> = accounts
        .iter()
        .map(|account| {
            let id = format!("s-{account}");
            Record::of(
                &id,
                &onboarding_requested(
                    &id,
                    account,
                    oidc_provider(&portal(account), "corp-oidc", "onboarding/shared"),
                ),
            )
        })
        .collect();
    stack.secret_requests.reset();
    stack.announce_requests.reset();
    let (reply, tally) = handler.handle(sqs_batch(&records), None).await.unwrap();
    assert!(failed_ids(&reply).is_empty(), "{reply}");
    assert_eq!(tally.created, 6);
    assert_eq!(
        stack.secret_requests.get(),
        1,
        "one GetSecretValue per secret per invocation"
    );
    eprintln!(
        "PutEvents calls for a batch of 6 new providers: {}",
        stack.announce_requests.get()
    );
    // The next invocation reads it again: nothing is kept across invocations.
    let (reply, _) = handler
        .handle(sqs_batch(&records[..1]), None)
        .await
        .unwrap();
    assert!(failed_ids(&reply).is_empty());
    let more = onboarding_requested(
        "s-new",
        &accounts[0],
        oidc_provider(&portal(&accounts[0]), "other-oidc", "onboarding/shared"),
    );
    stack.secret_requests.reset();
    handler.handle(more, None).await.unwrap();
    assert_eq!(stack.secret_requests.get(), 1);
}

/// A holder whose create outlasted its lease (it stalled) records before it announces: when
/// another delivery has meanwhile taken the step over and recorded an outcome, the stale
/// holder's write is refused and nothing is announced for it, no "Ready" for a FAILED step.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_whose_lease_ran_out_records_before_it_announces() {
    let account = "830000000001";
    let stack = Stack::start("stale-announce").await;
    stack.emulator.set_faults(FaultConfig::new(8).with_rule(
        "CreateInstance",
        FaultRule {
            latency_ms: 1500,
            ..FaultRule::default()
        },
    ));
    let short = EngineSettings {
        lease: Duration::from_millis(500),
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(short));
    let ledger = stack.engine().ledger().clone();
    let key = StepKey::account(account, "identity-center-instance");
    let stale = handler.handle(onboarding_requested("s-1", account, json!({})), None);
    let takeover = async {
        // The holder's lease ends while its create is on its way; another delivery takes the
        // step over and records a permanent failure.
        tokio::time::sleep(Duration::from_millis(900)).await;
        let claim = ledger
            .claim(
                &key,
                &ClaimRequest {
                    request_hash: "h",
                    event_id: "s-2",
                    lease: Duration::from_secs(30),
                    deadline: None,
                },
            )
            .await
            .unwrap();
        let Claim::Acquired(lease) = claim else {
            panic!("expected the takeover, got {claim:?}");
        };
        ledger
            .fail_permanent(
                &lease,
                &onboarding::ledger::ErrorReason {
                    retryable: false,
                    code: "AccessDenied".into(),
                    message: "recorded by the delivery that took the step over".into(),
                },
            )
            .await
            .unwrap();
    };
    let (stale, ()) = futures::join!(stale, takeover);
    // The holder stops before its lease ends (its create still on its way), so it neither
    // records nor announces; the delivery that took over records.
    assert!(
        stale.as_ref().is_err_and(|e| e.code() == "DeadlineReached"),
        "{stale:?}"
    );
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Failed);
    let emitted = stack.emitted().await;
    assert!(
        ready_events(&emitted, "Identity Center Instance Ready").is_empty(),
        "{emitted:#?}"
    );
}
