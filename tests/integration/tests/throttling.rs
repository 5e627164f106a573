//! Throttling and the reply's deadline, through the identity-center-instance handler with the
//! SDK retries the functions use (`onboarding::aws::retries`):
//! - a brief burst (two throttled answers in a row, to `AssumeRole` or to `CreateInstance`)
//!   is absorbed inside the delivery: the record is acknowledged READY, one instance exists;
//! - a longer burst fails the delivery with a delay of its own (seconds, not the queue's
//!   visibility timeout), and the next delivery finishes;
//! - however slow SQS is, the failed records' visibility call ends before the deadline and
//!   the reply still lists the record.
//!
//! Correctness, not timing: nothing here asserts how long a recovery takes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use identity_emulator::{FaultConfig, FaultRule};
use integration_tests::deliveries::{failed_ids, onboarding_requested, sqs_batch, Record};
use integration_tests::stack::Stack;
use onboarding::handler::Handler;
use onboarding::ledger::{Claim, ClaimRequest, Status, StepKey};
use onboarding::redelivery::{Delay, Redelivery, SqsVisibility};
use onboarding::steps::IdentityCenterInstance;
use serde_json::{json, Value};

const STEP: &str = "identity-center-instance";
/// The functions' `Timeout` (template.yaml).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);

/// A stack whose clients retry as the functions' do.
async fn stack(name: &str) -> Stack {
    let mut stack = Stack::start(name).await;
    stack.config = stack
        .config
        .to_builder()
        .retry_config(onboarding::aws::retries())
        .build();
    stack
}

/// Keeps the delays a reply asks for.
#[derive(Default)]
struct Delays(Mutex<Vec<Delay>>);

impl Redelivery for Delays {
    fn delay(&self, delays: Vec<Delay>) -> BoxFuture<'_, ()> {
        self.0.lock().unwrap().extend(delays);
        Box::pin(async {})
    }
}

impl Delays {
    fn take(&self) -> Vec<Delay> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn throttle_next(operation: &str, calls: u64) -> FaultConfig {
    FaultConfig::new(11).with_rule(
        operation,
        FaultRule {
            throttle_rate: 1.0,
            max_faults: Some(calls),
            ..FaultRule::default()
        },
    )
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

async fn deliver(handler: &Handler<IdentityCenterInstance>, batch: Value) -> Value {
    let deadline = SystemTime::now() + FUNCTION_TIMEOUT;
    let (reply, _) = handler
        .handle(batch, Some(deadline))
        .await
        .expect("a batch reply");
    reply
}

async fn assert_ready_once(stack: &Stack, account: &str) {
    let record = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(account, STEP))
        .await
        .unwrap()
        .expect("ledger record");
    assert_eq!(record.status, Status::Ready, "{record:?}");
    assert_eq!(stack.emulator.counters().created("CreateInstance"), 1);
}

/// Two throttled answers in a row to `operation`: the same delivery ends READY.
async fn brief_burst_is_absorbed(operation: &str, account: &str) {
    let stack = stack(&format!("throttle-{operation}")).await;
    let delays = Arc::new(Delays::default());
    let handler = stack
        .instance_handler(stack.engine())
        .with_redelivery(delays.clone());
    stack.emulator.set_faults(throttle_next(operation, 2));

    let reply = deliver(&handler, record("m-1", account, 1)).await;

    let throttled = stack.emulator.counters().faults[operation].throttled;
    assert_eq!(throttled, 2, "the burst happened");
    assert!(
        failed_ids(&reply).is_empty(),
        "acknowledged in the same delivery, not retried: {reply}"
    );
    assert!(delays.take().is_empty(), "no redelivery asked for");
    assert_ready_once(&stack, account).await;
}

#[tokio::test]
async fn two_throttled_assume_role_answers_in_a_row_end_ready_in_the_same_delivery() {
    brief_burst_is_absorbed("AssumeRole", "270000000001").await;
}

#[tokio::test]
async fn two_throttled_create_instance_answers_in_a_row_end_ready_in_the_same_delivery() {
    brief_burst_is_absorbed("CreateInstance", "270000000002").await;
}

/// More throttled answers than the SDK's attempts: the delivery fails asking to come back in
/// seconds (the engine's own backoff, not the queue's 6-minute visibility timeout), and the
/// next delivery finishes with one instance.
#[tokio::test]
async fn a_longer_burst_comes_back_after_a_short_delay_and_then_ends_ready() {
    let account = "270000000003";
    let stack = stack("throttle-long").await;
    let delays = Arc::new(Delays::default());
    let handler = stack
        .instance_handler(stack.engine())
        .with_redelivery(delays.clone());
    let attempts = u64::from(onboarding::aws::retries().max_attempts());
    stack
        .emulator
        .set_faults(throttle_next("CreateInstance", attempts + 2));

    let reply = deliver(&handler, record("m-3", account, 1)).await;
    assert_eq!(failed_ids(&reply), vec!["m-3".to_string()], "{reply}");
    let asked = delays.take();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].after < Duration::from_secs(60),
        "back after a short backoff: {:?}",
        asked[0].after
    );
    let record_now = stack
        .engine()
        .ledger()
        .get_step(&StepKey::account(account, STEP))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record_now.status, Status::InProgress);
    assert_eq!(
        record_now.last_error.map(|e| e.code).as_deref(),
        Some("ThrottlingException")
    );

    let reply = deliver(&handler, record("m-3", account, 2)).await;
    assert!(failed_ids(&reply).is_empty(), "{reply}");
    assert_eq!(
        stack.emulator.counters().faults["CreateInstance"].throttled,
        attempts + 2
    );
    assert_ready_once(&stack, account).await;
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
