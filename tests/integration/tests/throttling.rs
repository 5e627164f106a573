//! The reply's deadline, through the identity-center-instance handler: however slow SQS is,
//! the failed records' visibility call ends before the deadline and the reply still lists
//! the record.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use integration_tests::deliveries::{failed_ids, onboarding_requested, sqs_batch, Record};
use integration_tests::stack::Stack;
use onboarding::ledger::{Claim, ClaimRequest, StepKey};
use onboarding::redelivery::SqsVisibility;
use serde_json::{json, Value};

const STEP: &str = "identity-center-instance";

/// A stack whose clients retry as the functions' do.
async fn stack(name: &str) -> Stack {
    let mut stack = Stack::start(name).await;
    stack.config = stack
        .config
        .to_builder()
        .retry_config(aws_config::retry::RetryConfig::adaptive().with_max_attempts(3))
        .build();
    stack
}

fn record(message_id: &str, account: &str, receive_count: u32) -> Value {
    sqs_batch(&[Record {
        receive_count,
        ..Record::of(
            message_id,
            &onboarding_requested(&format!("evt-{message_id}"), account, json!({})),
        )
    }])
}

/// An SQS endpoint that accepts connections and never answers; counts them.
async fn silent_sqs() -> (String, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU32::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, accepted)
}

/// The failed record's visibility call goes to an SQS that never answers: the reply still
/// comes before the deadline and lists the record (it returns after the queue's visibility
/// timeout instead of its own delay).
#[tokio::test]
async fn a_slow_visibility_call_does_not_hold_the_reply_past_the_deadline() {
    let account = "270000000004";
    let stack = stack("slow-sqs").await;
    let (sqs_url, accepted) = silent_sqs().await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&stack.config)
            .endpoint_url(&sqs_url)
            .build(),
    );
    let engine = stack.engine();
    let handler = stack
        .instance_handler(engine.clone())
        .with_redelivery(Arc::new(SqsVisibility::new(sqs)));

    // Another delivery holds the step: this one fails at once, asking to come back in a few
    // seconds (a visibility call).
    let key = StepKey::account(account, STEP);
    let claim = engine
        .ledger()
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
    // Warm the ledger's connections, so the delivery below spends its time on the visibility
    // call, not on connecting.
    let warm = stack.instance_handler(engine.clone());
    let err = warm
        .handle(onboarding_requested("evt-warm", account, json!({})), None)
        .await
        .expect_err("held elsewhere");
    assert_eq!(err.code(), "InProgressElsewhere");

    // The engine keeps 1.5 s before the deadline for the reply; the visibility call used to
    // take up to 2 s of it whatever the deadline.
    let deadline = SystemTime::now() + Duration::from_millis(1900);
    let (reply, tally) = handler
        .handle(record("m-4", account, 1), Some(deadline))
        .await
        .expect("a batch reply");
    let replied = SystemTime::now();
    assert_eq!(failed_ids(&reply), vec!["m-4".to_string()], "{reply}");
    assert_eq!(tally.retries, 1);
    assert!(
        accepted.load(Ordering::SeqCst) >= 1,
        "the visibility call was made (else this test proves nothing)"
    );
    assert!(
        replied < deadline,
        "replied {:?} after the deadline",
        replied.duration_since(deadline).unwrap_or_default()
    );
}
