//! Measurements through `Handler::handle` (the exact code path Lambda runs) in this process,
//! against moto and a fresh identity emulator: DynamoDB requests and create calls per
//! delivery, and the wall time of an SQS batch against one record.

use std::time::{Duration, Instant};

use futures::future::join_all;
use identity_emulator::{FaultConfig, FaultRule};
use integration_tests::deliveries::{failed_ids, sqs_batch, Record};
use integration_tests::stack::Stack;
use onboarding::handler::Handler;
use onboarding::step::Step;
use serde_json::Value;

use crate::proxy::TimingProxy;
use crate::scenario::{self, Function};

/// DynamoDB requests and create calls of one kind of delivery.
#[derive(Clone, Debug, Default)]
pub struct Cost {
    pub dynamodb: u64,
    pub creates: u64,
    /// Deliveries acknowledged (answered without an error).
    pub acked: usize,
    /// Deliveries answered "retry later" (the step was in progress elsewhere).
    pub retried: usize,
}

#[derive(Clone, Debug)]
pub struct Requests {
    pub function: Function,
    pub new_step: Cost,
    pub duplicate: Cost,
    /// 50 identical deliveries at once of a step that was never run.
    pub concurrent_new: Cost,
    /// 50 identical deliveries at once of a finished step.
    pub concurrent_duplicates: Cost,
}

/// The four delivery kinds for `function`'s step, each on a fresh key.
pub async fn requests(function: Function) -> Result<Requests, String> {
    // A step that runs once per organization needs an organization of its own for the
    // "never run" case: one stack for new / duplicate / 50 duplicates, one for 50 new.
    let (stack, _) = scenario::stack("bench-requests").await?;
    let (burst, _) = scenario::stack("bench-burst").await?;
    let (a, b) = (scenario::account(30, 1), scenario::account(30, 2));
    let event = function.event(&stack, "evt-requests", &a).await;
    let burst_event = function.event(&burst, "evt-burst", &b).await;
    match function {
        Function::IdentityCenterInstance => {
            let (h, hb) = (
                stack.instance_handler(stack.engine()),
                burst.instance_handler(burst.engine()),
            );
            measure(function, (&stack, &h, event), (&burst, &hb, burst_event)).await
        }
        Function::ApprovalIdentitySource => {
            let (h, hb) = (
                stack.approval_handler(stack.engine()),
                burst.approval_handler(burst.engine()),
            );
            measure(function, (&stack, &h, event), (&burst, &hb, burst_event)).await
        }
        Function::WebIdentityProvider => {
            let (h, hb) = (
                stack.web_handler(stack.engine()),
                burst.web_handler(burst.engine()),
            );
            measure(function, (&stack, &h, event), (&burst, &hb, burst_event)).await
        }
    }
}

async fn measure<S: Step>(
    function: Function,
    (stack, handler, event): (&Stack, &Handler<S>, Value),
    (burst, burst_handler, burst_event): (&Stack, &Handler<S>, Value),
) -> Result<Requests, String> {
    let op = function.create_operation();
    let new_step = deliver(stack, handler, &event, 1, op).await;
    if new_step.acked != 1 {
        return Err(format!(
            "{}: the first delivery was not acknowledged",
            function.name()
        ));
    }
    let duplicate = deliver(stack, handler, &event, 1, op).await;
    let concurrent_duplicates = deliver(stack, handler, &event, 50, op).await;
    let concurrent_new = deliver(burst, burst_handler, &burst_event, 50, op).await;
    Ok(Requests {
        function,
        new_step,
        duplicate,
        concurrent_new,
        concurrent_duplicates,
    })
}

/// `copies` identical deliveries of `event` at once; what they cost together.
async fn deliver<S: Step>(
    stack: &Stack,
    handler: &Handler<S>,
    event: &Value,
    copies: usize,
    create_operation: &str,
) -> Cost {
    let creates_before = stack.emulator.counters().calls(create_operation);
    stack.ledger_requests.reset();
    let results = join_all((0..copies).map(|_| handler.handle(event.clone(), None))).await;
    let acked = results.iter().filter(|r| r.is_ok()).count();
    Cost {
        dynamodb: stack.ledger_requests.get(),
        creates: stack.emulator.counters().calls(create_operation) - creates_before,
        acked,
        retried: copies - acked,
    }
}

/// Wall times of one record and of a batch of 10 distinct accounts, with `latency` added by
/// the emulator to every create call.
#[derive(Clone, Debug)]
pub struct Batch {
    pub function: Function,
    pub latency: Duration,
    pub one: Vec<Duration>,
    pub ten: Vec<Duration>,
    /// Time moto was busy answering, per run.
    pub moto_one: Vec<Duration>,
    pub moto_ten: Vec<Duration>,
    /// Most requests waiting for moto at once during a batch of 10 (the records' claims
    /// are their first calls, so 10 means every record had started).
    pub moto_peak: u32,
    /// Most calls the identity emulator had in flight at once during a batch of 10.
    pub emulator_peak: u32,
}

pub async fn batch(function: Function, latency: Duration, reps: u32) -> Result<Batch, String> {
    let (mut stack, moto) = scenario::stack("bench-batch").await?;
    let emulator = TimingProxy::start(stack.emulator.addr())
        .await
        .map_err(|e| format!("cannot start the emulator proxy: {e}"))?;
    scenario::route(&mut stack, &moto.url(), &emulator.url());
    stack.emulator.set_faults(FaultConfig::new(1).with_rule(
        function.create_operation(),
        FaultRule {
            latency_ms: latency.as_millis() as u64,
            ..FaultRule::default()
        },
    ));
    match function {
        Function::IdentityCenterInstance => {
            let h = stack.instance_handler(stack.engine());
            batches(function, &stack, &h, (&moto, &emulator), latency, reps).await
        }
        Function::WebIdentityProvider => {
            let h = stack.web_handler(stack.engine());
            batches(function, &stack, &h, (&moto, &emulator), latency, reps).await
        }
        Function::ApprovalIdentitySource => Err(
            "approval-identity-source has one step per organization: a batch of distinct accounts is one create"
                .into(),
        ),
    }
}

async fn batches<S: Step>(
    function: Function,
    stack: &Stack,
    handler: &Handler<S>,
    (proxy, emulator): (&TimingProxy, &TimingProxy),
    latency: Duration,
    reps: u32,
) -> Result<Batch, String> {
    let mut out = Batch {
        function,
        latency,
        one: Vec::new(),
        ten: Vec::new(),
        moto_one: Vec::new(),
        moto_ten: Vec::new(),
        moto_peak: 0,
        emulator_peak: 0,
    };
    let mut next = 0u32;
    for _ in 0..reps {
        for size in [1usize, 10] {
            let mut records = Vec::with_capacity(size);
            for i in 0..size {
                next += 1;
                let account = scenario::account(40, next);
                let event = function
                    .event(stack, &format!("evt-batch-{next}"), &account)
                    .await;
                records.push(Record::of(&format!("msg-{next}-{i}"), &event));
            }
            let payload = sqs_batch(&records);
            let creates_before = stack
                .emulator
                .counters()
                .created(function.create_operation());
            proxy.reset();
            emulator.reset();
            let started = Instant::now();
            let (reply, _) = handler
                .handle(payload, None)
                .await
                .map_err(|e| format!("{}: batch of {size} failed: {e}", function.name()))?;
            let wall = started.elapsed();
            let moto_time = proxy.time();
            let moto = moto_time.busy;
            let failed = failed_ids(&reply);
            let created = stack
                .emulator
                .counters()
                .created(function.create_operation())
                - creates_before;
            if !failed.is_empty() || created != size as u64 {
                return Err(format!(
                    "{}: batch of {size}: {} records failed, {created} created (expected {size})",
                    function.name(),
                    failed.len()
                ));
            }
            if size == 1 {
                out.one.push(wall);
                out.moto_one.push(moto);
            } else {
                out.ten.push(wall);
                out.moto_ten.push(moto);
                out.moto_peak = out.moto_peak.max(moto_time.peak_in_flight);
                out.emulator_peak = out.emulator_peak.max(emulator.time().peak_in_flight);
            }
        }
    }
    Ok(out)
}
