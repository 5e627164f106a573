//! Day one in a real organization, end to end against moto and the identity emulator:
//! member roles that arrive minutes late (through a real SQS queue, with the delays the
//! handler sets), accounts that already own resources, Conflicts that are only propagation,
//! Multi-party approval in us-east-1, account instances switched off; and the guarantees
//! under them: lookups when the service forgot a token, FIFO groups, the invocation's
//! deadline, and failures announced only by the holder that recorded them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sqs::types::QueueAttributeName;
use identity_emulator::{
    AccountConfig, Config as EmulatorConfig, FaultConfig, FaultRule, SeededInstance, SeededProvider,
};
use integration_tests::deliveries::{
    control_tower, failed_ids, oidc_provider, onboarding_requested, sqs_batch, Record,
};
use integration_tests::iam;
use integration_tests::stack::Stack;
use onboarding::aws::mpa_client;
use onboarding::engine::EngineSettings;
use onboarding::handler::Handler;
use onboarding::ledger::{Origin, Status, StepKey};
use onboarding::redelivery::SqsVisibility;
use onboarding::step::Step;
use onboarding::steps::ApprovalIdentitySource;
use serde_json::{json, Value};

const INSTANCE: &str = "identity-center-instance";
const FAILED: &str = "Onboarding Step Failed";

/// Hours compressed into seconds: grace window, first and longest backoff.
fn compressed(stack: &Stack, grace: Duration) -> EngineSettings {
    EngineSettings {
        member_role_grace: grace,
        retry_base: Duration::from_millis(500),
        retry_max: Duration::from_secs(2),
        ..stack.settings.engine.clone()
    }
}

fn of_type<'a>(emitted: &'a [Value], detail_type: &str) -> Vec<&'a Value> {
    emitted
        .iter()
        .filter(|e| e["detail-type"] == detail_type)
        .collect()
}

fn portal(account: &str) -> String {
    format!(
        "arn:aws:workspaces-web:us-east-1:{account}:portal/5b2c9e1a-7d4f-4a3b-8e6c-2f1d0a9b8c7d"
    )
}

/// A real moto queue delivering to a handler as Lambda's event source mapping does: batches
/// of up to 10 with receipt handles and receive counts, acknowledged records deleted, failed
/// ones left to come back when their visibility timeout (set by the handler) ends.
struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

impl Queue {
    /// The queue's own visibility timeout is long (60 s): a record comes back sooner only if
    /// the handler asked for it.
    async fn new(stack: &Stack, name: &str) -> Queue {
        let sqs = aws_sdk_sqs::Client::new(&stack.config);
        // `onboarding-...`: the queue the function's role may use in these stacks.
        let name = format!("onboarding-{name}-{}", std::process::id());
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::VisibilityTimeout, "60")
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("url");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("attributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("arn");
        Queue { sqs, url, arn }
    }

    async fn send(&self, event: &Value) {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(event.to_string())
            .send()
            .await
            .expect("send");
    }

    /// Delivers until nothing is left (or `limit` passes); returns the invocations made.
    async fn drain<S: Step>(&self, handler: &Handler<S>, limit: Duration) -> u32 {
        let started = Instant::now();
        let mut invocations = 0;
        while started.elapsed() < limit {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                if self.is_empty().await {
                    return invocations;
                }
                continue;
            }
            let records: Vec<Value> = messages
                .iter()
                .map(|m| {
                    let count = m
                        .attributes()
                        .and_then(|a| {
                            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                        })
                        .cloned()
                        .unwrap_or_else(|| "1".into());
                    json!({
                        "messageId": m.message_id(),
                        "receiptHandle": m.receipt_handle(),
                        "body": m.body(),
                        "attributes": { "ApproximateReceiveCount": count },
                        "eventSource": "aws:sqs",
                        "eventSourceARN": self.arn,
                    })
                })
                .collect();
            invocations += 1;
            let (reply, _) = handler
                .handle(json!({ "Records": records }), None)
                .await
                .expect("an SQS batch always gets a reply");
            let failed = failed_ids(&reply);
            for m in &messages {
                if !failed.iter().any(|id| Some(id.as_str()) == m.message_id()) {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.url)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send()
                        .await
                        .expect("delete");
                }
            }
        }
        invocations
    }

    async fn is_empty(&self) -> bool {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("attributes");
        let attributes = out.attributes.unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .all(|name| attributes.get(name).map(String::as_str) == Some("0"))
    }
}

#[tokio::test]
async fn a_member_role_that_arrives_late_ends_ready_with_no_operator() {
    let account = "910000000001";
    let config = EmulatorConfig::default()
        .with_account(AccountConfig::new(account).role_appearing_after(4_000));
    let stack = Stack::start_with("late-role", config).await;
    // The handler sets its records' visibility as the function's role.
    let sqs = aws_sdk_sqs::Client::new(&stack.config_as(iam::INSTANCE_ROLE));
    let handler = stack
        .instance_handler(stack.engine_with(compressed(&stack, Duration::from_secs(30))))
        .with_redelivery(Arc::new(SqsVisibility::new(sqs)));
    let queue = Queue::new(&stack, "late-role").await;
    queue
        .send(&control_tower(
            "ct-1",
            "CreateManagedAccount",
            account,
            "SUCCEEDED",
        ))
        .await;

    let started = Instant::now();
    let invocations = queue.drain(&handler, Duration::from_secs(40)).await;
    let took = started.elapsed();
    eprintln!("role appeared after 4 s: READY after {took:?} and {invocations} invocations");

    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(account, INSTANCE))
        .await
        .unwrap()
        .expect("ledger record");
    assert_eq!(record.status, Status::Ready, "{record:?}");
    assert_eq!(record.origin, Some(Origin::Created));
    let emitted = stack.emitted().await;
    assert!(of_type(&emitted, FAILED).is_empty(), "{emitted:?}");
    let ready = of_type(&emitted, "Identity Center Instance Ready");
    assert_eq!(ready.len(), 1, "{emitted:?}");
    assert_eq!(ready[0]["detail"]["origin"], "created");
    assert!(
        (2..=12).contains(&invocations),
        "a handful of invocations while waiting, got {invocations}"
    );
    // The queue's own visibility timeout is 60 s: only the handler's delays bring the
    // record back this soon.
    assert!(took < Duration::from_secs(40), "{took:?}");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 1);
}

#[tokio::test]
async fn a_member_role_still_missing_after_the_grace_window_is_a_recorded_failure() {
    let account = "910000000002";
    let config =
        EmulatorConfig::default().with_account(AccountConfig::new(account).refusing_role("*"));
    let stack = Stack::start_with("no-role", config).await;
    let sqs = aws_sdk_sqs::Client::new(&stack.config_as(iam::INSTANCE_ROLE));
    let handler = stack
        .instance_handler(stack.engine_with(compressed(&stack, Duration::from_secs(3))))
        .with_redelivery(Arc::new(SqsVisibility::new(sqs)));
    let queue = Queue::new(&stack, "no-role").await;
    queue
        .send(&onboarding_requested("own-1", account, json!({})))
        .await;
    let invocations = queue.drain(&handler, Duration::from_secs(30)).await;
    assert!(invocations >= 2, "retried inside the window first");

    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(account, INSTANCE))
        .await
        .unwrap()
        .expect("ledger record");
    assert_eq!(record.status, Status::Failed);
    let error = record.last_error.expect("reason");
    assert_eq!(error.code, "MemberRoleUnavailable");
    for needle in [
        "arn:aws:iam::910000000002:role/IdentityOnboardingMemberRole",
        "grace window of 3.0s",
        "StackSet",
        "trust policy",
    ] {
        assert!(
            error.message.contains(needle),
            "{needle:?} in {}",
            error.message
        );
    }
    let emitted = stack.emitted().await;
    assert_eq!(of_type(&emitted, FAILED).len(), 1, "{emitted:?}");
    assert_eq!(
        of_type(&emitted, FAILED)[0]["detail"]["reason"]["code"],
        "MemberRoleUnavailable"
    );
}

#[tokio::test]
async fn a_conflict_that_is_only_propagation_is_retried_then_created() {
    let account = "910000000003";
    let stack = Stack::start("conflict").await;
    stack.emulator.set_faults(FaultConfig::new(3).with_rule(
        "CreateInstance",
        FaultRule {
            conflict_rate: 1.0,
            max_faults: Some(2),
            ..FaultRule::default()
        },
    ));
    let handler =
        stack.instance_handler(stack.engine_with(compressed(&stack, Duration::from_secs(60))));
    let event = onboarding_requested("c-1", account, json!({}));
    for _ in 0..2 {
        let err = handler
            .handle(event.clone(), None)
            .await
            .expect_err("not propagated yet");
        assert_eq!(err.code(), "ConflictNotPropagated", "{err}");
        assert!(err.retry_after().is_some(), "backs off");
    }
    let (reply, _) = handler.handle(event, None).await.expect("third delivery");
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(reply["how"], "created");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 1);
    assert!(of_type(&stack.emitted().await, FAILED).is_empty());
}

#[tokio::test]
async fn an_account_that_already_has_an_instance_is_ready_as_pre_existing() {
    let moved = "910000000004";
    let broken = "910000000005";
    let config = EmulatorConfig::default()
        .with_account(
            AccountConfig::new(moved).with_instance(SeededInstance::active(Some("legacy"))),
        )
        .with_account(AccountConfig::new(broken).with_instance(SeededInstance {
            name: None,
            status: "CREATE_FAILED".into(),
            status_reason: Some("KMS key disabled".into()),
        }));
    let stack = Stack::start_with("pre-existing", config).await;
    let handler = stack.instance_handler(stack.engine());
    let member = aws_sdk_ssoadmin::Client::new(&stack.config_in(moved).await);
    let existing = member.list_instances().send().await.unwrap();
    let seeded = existing.instances()[0].instance_arn().unwrap().to_string();

    // An enrolled account moved between OUs: Control Tower sends UpdateManagedAccount.
    let event = control_tower("ct-move", "UpdateManagedAccount", moved, "SUCCEEDED");
    let (reply, tally) = handler.handle(event.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(reply["how"], "pre-existing");
    assert_eq!(reply["resourceArn"], seeded.as_str());
    assert_eq!(tally.failures, 0);
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(moved, INSTANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.origin, Some(Origin::PreExisting));
    assert_eq!(record.resource_arn.as_deref(), Some(seeded.as_str()));
    let emitted = stack.emitted().await;
    assert!(of_type(&emitted, FAILED).is_empty(), "{emitted:?}");
    let ready = of_type(&emitted, "Identity Center Instance Ready");
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["detail"]["origin"], "pre-existing");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 0);
    let (reply, _) = handler.handle(event, None).await.unwrap();
    assert_eq!(reply["status"], "duplicate");

    // A failed instance is not adoptable: recorded, announced, never Ready.
    let (reply, _) = handler
        .handle(onboarding_requested("b-1", broken, json!({})), None)
        .await
        .unwrap();
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(reply["reason"]["code"], "InstanceNotAdoptable");
    let emitted = stack.emitted().await;
    assert_eq!(of_type(&emitted, FAILED).len(), 1);
    assert!(of_type(&emitted, "Identity Center Instance Ready").is_empty());
}

/// The web step's stack: a portal in `account`, the OIDC secret, a handler.
async fn web_stack(
    name: &str,
    account: &str,
    seeded: Option<SeededProvider>,
) -> (Stack, Handler<onboarding::steps::WebIdentityProvider>) {
    let mut member = AccountConfig::new(account).with_portal(portal(account));
    if let Some(provider) = seeded {
        member = AccountConfig::new(account).with_portal_provider(&portal(account), provider);
    }
    let stack = Stack::start_with(name, EmulatorConfig::default().with_account(member)).await;
    stack
        .put_secret(
            "onboarding/corp-oidc",
            &json!({ "client_secret": "canary-value" }),
        )
        .await;
    let handler = stack.web_handler(stack.engine());
    (stack, handler)
}

#[tokio::test]
async fn a_foreign_provider_of_the_same_name_is_never_adopted_or_announced_ready() {
    let account = "910000000006";
    let foreign = SeededProvider {
        name: "corp-oidc".into(),
        provider_type: "OIDC".into(),
        details: [
            ("client_id", "another-team"),
            ("client_secret", "another-teams-secret"),
            ("oidc_issuer", "https://other.example.com"),
            ("authorize_scopes", "openid"),
            ("attributes_request_method", "GET"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    let (stack, handler) = web_stack("foreign", account, Some(foreign)).await;
    // The first attempt's create is throttled (every SDK attempt): the next attempt may
    // have been preceded by a create, so it looks up first and finds the foreign provider.
    stack.emulator.set_faults(FaultConfig::new(5).with_rule(
        "CreateIdentityProvider",
        FaultRule {
            throttle_rate: 1.0,
            max_faults: Some(3),
            ..FaultRule::default()
        },
    ));
    let event = onboarding_requested(
        "f-1",
        account,
        oidc_provider(&portal(account), "corp-oidc", "onboarding/corp-oidc"),
    );
    let err = handler
        .handle(event.clone(), None)
        .await
        .expect_err("throttled");
    assert!(err.is_retryable());
    let (reply, _) = handler.handle(event.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(reply["reason"]["code"], "ForeignResourceConflict");
    let message = reply["reason"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(":identityProvider/"),
        "names the ARN: {message}"
    );
    assert!(message.contains("oidc_issuer"), "{message}");
    let emitted = stack.emitted().await;
    assert!(of_type(&emitted, "Web Identity Provider Ready").is_empty());
    assert_eq!(of_type(&emitted, FAILED).len(), 1);
    assert_eq!(
        stack.emulator.counters().created("CreateIdentityProvider"),
        0
    );
    // The other team's provider is untouched.
    let web = aws_sdk_workspacesweb::Client::new(&stack.config_in(account).await);
    let listed = web
        .list_identity_providers()
        .portal_arn(portal(account))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.identity_providers().len(), 1);
    let theirs = web
        .get_identity_provider()
        .identity_provider_arn(listed.identity_providers()[0].identity_provider_arn())
        .send()
        .await
        .unwrap();
    let details = theirs
        .identity_provider()
        .and_then(|p| p.identity_provider_details())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        details.get("oidc_issuer").map(String::as_str),
        Some("https://other.example.com")
    );

    // Without the throttle: the create answers Conflict, the lookup refuses it all the same.
    let other = "910000000007";
    let foreign_too = SeededProvider {
        name: "corp-oidc".into(),
        provider_type: "SAML".into(),
        details: [("MetadataURL", "https://saml.example.com/metadata")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let (stack, handler) = web_stack("foreign-conflict", other, Some(foreign_too)).await;
    let (reply, _) = handler
        .handle(
            onboarding_requested(
                "f-2",
                other,
                oidc_provider(&portal(other), "corp-oidc", "onboarding/corp-oidc"),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        reply["reason"]["code"], "ForeignResourceConflict",
        "{reply}"
    );
    assert!(of_type(&stack.emitted().await, "Web Identity Provider Ready").is_empty());
}

#[tokio::test]
async fn a_provider_that_is_exactly_what_was_asked_is_adopted_after_a_lost_response() {
    let account = "910000000008";
    let (stack, handler) = web_stack("provider-lost", account, None).await;
    // Every attempt commits and loses its response; then the service forgets the token.
    stack.emulator.set_faults(FaultConfig::new(8).with_rule(
        "CreateIdentityProvider",
        FaultRule {
            commit_then_fail_rate: 1.0,
            max_faults: Some(3),
            ..FaultRule::default()
        },
    ));
    let event = onboarding_requested(
        "l-1",
        account,
        oidc_provider(&portal(account), "corp-oidc", "onboarding/corp-oidc"),
    );
    handler
        .handle(event.clone(), None)
        .await
        .expect_err("response lost");
    stack.emulator.forget_tokens();
    let (reply, _) = handler.handle(event, None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(reply["how"], "adopted");
    assert_eq!(
        stack.emulator.counters().created("CreateIdentityProvider"),
        1
    );
    let ready = of_type(&stack.emitted().await, "Web Identity Provider Ready")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["detail"]["origin"], "adopted");
}

#[tokio::test]
async fn instances_and_identity_sources_are_found_when_the_service_forgot_the_token() {
    let account = "910000000009";
    let stack = Stack::start("forgotten").await;
    let lost = FaultRule {
        commit_then_fail_rate: 1.0,
        max_faults: Some(3),
        ..FaultRule::default()
    };
    stack.emulator.set_faults(
        FaultConfig::new(9)
            .with_rule("CreateInstance", lost.clone())
            .with_rule("CreateIdentitySource", lost),
    );
    let instance = stack.instance_handler(stack.engine());
    let approval = stack.approval_handler(stack.engine());
    let event = onboarding_requested("t-1", account, json!({}));
    instance
        .handle(event.clone(), None)
        .await
        .expect_err("lost");
    approval
        .handle(event.clone(), None)
        .await
        .expect_err("lost");
    stack.emulator.forget_tokens();

    let (reply, _) = instance.handle(event.clone(), None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(reply["how"], "adopted");
    let (reply, _) = approval.handle(event, None).await.unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    assert_eq!(reply["how"], "adopted");
    let counters = stack.emulator.counters();
    assert_eq!(counters.created("CreateInstance"), 1);
    assert_eq!(counters.created("CreateIdentitySource"), 1);
}

#[tokio::test]
async fn multi_party_approval_is_called_in_us_east_1_from_a_stack_in_another_region() {
    // Control Tower's home Region, where the organization instance and the stack are.
    let config = EmulatorConfig {
        region: "eu-west-1".into(),
        ..EmulatorConfig::default()
    };
    let stack = Stack::start_with("mpa-region", config).await;
    let ireland = stack
        .config
        .to_builder()
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    let step = ApprovalIdentitySource::new(
        mpa_client(&ireland, &stack.settings.approval_region),
        stack.organization_instance_arn.clone(),
        "eu-west-1".into(),
    );
    let handler = Handler::new(stack.engine(), step, stack.settings.accept.clone());
    let (reply, _) = handler
        .handle(onboarding_requested("m-1", "910000000010", json!({})), None)
        .await
        .unwrap();
    assert_eq!(reply["status"], "ready", "{reply}");
    let arn = reply["resourceArn"].as_str().unwrap_or_default();
    assert!(arn.starts_with("arn:aws:mpa:us-east-1:"), "{arn}");

    // Called in the stack's own Region, as before, MPA does not answer.
    let mpa = mpa_client(&ireland, "eu-west-1");
    assert!(mpa.list_identity_sources().send().await.is_err());
}

#[tokio::test]
async fn account_instances_switched_off_by_the_organization_fail_at_once_saying_so() {
    let account = "910000000011";
    let stack = Stack::start_with(
        "disallowed",
        EmulatorConfig::default().disallowing_account_instances(),
    )
    .await;
    let handler = stack.instance_handler(stack.engine());
    let (reply, _) = handler
        .handle(onboarding_requested("d-1", account, json!({})), None)
        .await
        .unwrap();
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(reply["reason"]["code"], "AccountInstancesNotAllowed");
    let message = reply["reason"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("does not allow account instances"),
        "{message}"
    );
    assert!(message.contains("SCP"), "{message}");
    assert_eq!(of_type(&stack.emitted().await, FAILED).len(), 1);
}

#[tokio::test]
async fn a_failure_inside_a_fifo_group_holds_back_only_that_group() {
    let waiting = "910000000012";
    let config =
        EmulatorConfig::default().with_account(AccountConfig::new(waiting).refusing_role("*"));
    let stack = Stack::start_with("fifo", config).await;
    let handler =
        stack.instance_handler(stack.engine_with(compressed(&stack, Duration::from_secs(60))));
    let ok = ["910000000013", "910000000014", "910000000015"];
    let held = ["910000000016", "910000000017"];
    let record = |id: &str, account: &str, group: &str| {
        Record::of(id, &onboarding_requested(id, account, json!({}))).in_group(group)
    };
    // Interleaved: g1 all fine; g2's first record waits for its member role.
    let batch = sqs_batch(&[
        record("g1-a", ok[0], "g1"),
        record("g2-a", waiting, "g2"),
        record("g1-b", ok[1], "g1"),
        record("g2-b", held[0], "g2"),
        record("g1-c", ok[2], "g1"),
        record("g2-c", held[1], "g2"),
    ]);
    let (reply, _) = handler.handle(batch, None).await.unwrap();
    let mut failed = failed_ids(&reply);
    failed.sort();
    assert_eq!(failed, vec!["g2-a", "g2-b", "g2-c"], "{reply}");
    let ledger = stack.engine().ledger().clone();
    for account in ok {
        let r = ledger
            .get_step(&StepKey::account(account, INSTANCE))
            .await
            .unwrap()
            .expect("g1 ran");
        assert_eq!(r.status, Status::Ready);
    }
    for account in held {
        assert!(
            ledger
                .get_step(&StepKey::account(account, INSTANCE))
                .await
                .unwrap()
                .is_none(),
            "{account}: a record behind a failure in its group must not run"
        );
    }
}

#[tokio::test]
async fn the_reply_is_sent_before_the_deadline_whatever_is_still_running() {
    let account = "910000000018";
    let stack = Stack::start("deadline").await;
    stack.emulator.set_faults(FaultConfig::new(18).with_rule(
        "CreateInstance",
        FaultRule {
            latency_ms: 8_000,
            ..FaultRule::default()
        },
    ));
    let handler = stack.instance_handler(stack.engine());
    let batch = sqs_batch(&[Record::of(
        "slow",
        &onboarding_requested("slow", account, json!({})),
    )]);
    let started = Instant::now();
    let deadline = SystemTime::now() + Duration::from_secs(4);
    let (reply, _) = handler.handle(batch, Some(deadline)).await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "replied after {took:?}");
    assert_eq!(failed_ids(&reply), vec!["slow"], "{reply}");
}

#[tokio::test]
async fn a_holder_that_lost_its_lease_announces_no_failure() {
    let account = "910000000019";
    let stack = Stack::start_with(
        "stale-failure",
        EmulatorConfig::default().disallowing_account_instances(),
    )
    .await;
    // Each create takes 1.5 s and is refused; leases last 1 s.
    stack.emulator.set_faults(FaultConfig::new(19).with_rule(
        "CreateInstance",
        FaultRule {
            latency_ms: 1_500,
            ..FaultRule::default()
        },
    ));
    let short = EngineSettings {
        lease: Duration::from_secs(1),
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(short));
    // The next delivery's lease outlasts the create.
    let patient = stack.instance_handler(stack.engine());
    let event = onboarding_requested("s-1", account, json!({}));
    let stale = handler.handle(event.clone(), None);
    let fresh = async {
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        patient.handle(event.clone(), None).await
    };
    let (stale, fresh) = futures::join!(stale, fresh);
    // The first holder stops before its lease ends, its create still on its way: it
    // records nothing and announces nothing.
    let stale = stale.expect_err("the first holder is cut at the end of its lease");
    assert_eq!(stale.code(), "DeadlineReached", "{stale}");
    let (reply, _) = fresh.expect("the new holder records the failure");
    assert_eq!(reply["reason"]["code"], "AccountInstancesNotAllowed");
    let emitted = stack.emitted().await;
    assert_eq!(
        of_type(&emitted, FAILED).len(),
        1,
        "only the holder that recorded the failure announces it: {emitted:?}"
    );
}

#[tokio::test]
async fn a_created_instance_deleted_before_it_was_ready_is_recorded_failed() {
    let account = "910000000020";
    let stack = Stack::start("created-gone").await;
    let impatient = EngineSettings {
        ready_wait: Duration::ZERO,
        ..stack.settings.engine.clone()
    };
    let handler = stack.instance_handler(stack.engine_with(impatient));
    let event = onboarding_requested("g-1", account, json!({}));
    let err = handler
        .handle(event.clone(), None)
        .await
        .expect_err("pending");
    assert_eq!(err.code(), "NotReady");
    let key = StepKey::account(account, INSTANCE);
    let record = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Created);
    let member = aws_sdk_ssoadmin::Client::new(&stack.config_in(account).await);
    member
        .delete_instance()
        .instance_arn(record.resource_arn.clone().unwrap())
        .send()
        .await
        .expect("deleted behind our back");

    let (reply, _) = handler.handle(event, None).await.expect("acknowledged");
    assert_eq!(reply["status"], "failed", "{reply}");
    let record = stack
        .engine()
        .ledger()
        .get_step(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Failed);
    assert!(record.announced);
    assert_eq!(of_type(&stack.emitted().await, FAILED).len(), 1);
}
