//! Figures of the second stage, measured through the real handlers and reconciler in this
//! process against moto and the identity emulator:
//! - revisions: a duplicate of the applied revision, and an update, in DynamoDB requests and
//!   control-plane calls;
//! - the reconciler: one run over a ledger of 10,000 READY steps and 50 stuck ones, in
//!   requests and wall time, beside the same run over 1,000 READY steps (a run's cost follows
//!   the attention index and the audit slice, not the table).

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use integration_tests::deliveries::onboarding_requested;
use integration_tests::stack::Stack;
use onboarding::ledger::{audit_slot, schema, Applied, Claim, ClaimRequest, Fields, StepKey};
use onboarding::reconcile::{audit_ranges, ReconcileSettings};
use onboarding::revision::Revision;
use serde_json::json;

const INSTANCE: &str = "identity-center-instance";

/// The markdown section printed after the main table.
pub async fn measure() -> Result<String, String> {
    let mut out = String::from(
        "\n### Convergence\n\n| measure | DynamoDB requests | control-plane calls | wall time | target |\n|---|---|---|---|---|\n",
    );
    out.push_str(&revisions().await?);
    for ready in [1_000, 10_000] {
        out.push_str(&reconciler_run(ready, 50).await?);
    }
    Ok(out)
}

fn calls(stack: &Stack) -> u64 {
    stack.emulator.counters().calls.values().sum()
}

async fn revisions() -> Result<String, String> {
    let stack = Stack::start("bench-revisions").await;
    let handler = stack.instance_handler(stack.engine());
    let account = "950000000001";
    let mut first = onboarding_requested("rev-1", account, json!({}));
    first["time"] = json!("2026-11-30T10:00:00Z");
    handler
        .handle(first, None)
        .await
        .map_err(|e| format!("create: {e}"))?;
    let mut newer = onboarding_requested(
        "rev-2",
        account,
        json!({ "identityCenterInstance": { "name": "renamed", "tags": { "CostCenter": "1" } } }),
    );
    newer["time"] = json!("2026-11-30T10:05:00Z");

    let (before, started) = (calls(&stack), Instant::now());
    stack.ledger_requests.reset();
    let (reply, _) = handler
        .handle(newer.clone(), None)
        .await
        .map_err(|e| format!("update: {e}"))?;
    let update = (
        stack.ledger_requests.take(),
        calls(&stack) - before,
        started.elapsed(),
    );
    if reply["status"] != "updated" {
        return Err(format!("the update was not applied: {reply}"));
    }
    let (before, started) = (calls(&stack), Instant::now());
    handler
        .handle(newer, None)
        .await
        .map_err(|e| format!("duplicate: {e}"))?;
    let duplicate = (
        stack.ledger_requests.take(),
        calls(&stack) - before,
        started.elapsed(),
    );
    Ok(format!(
        "| duplicate of the applied revision | {} | {} | {:.1} ms | 1 / 0 |\n\
         | update to a newer revision (name + tags) | {} (1 claim finding READY + 3 writes: the update's claim, its end with the announcement, the announcement marked sent) | {} (UpdateInstance, TagResource; the role's credentials cached) | {:.1} ms | <= 3 writes + the update calls |\n",
        duplicate.0,
        duplicate.1,
        duplicate.2.as_secs_f64() * 1000.0,
        update.0,
        update.1,
        update.2.as_secs_f64() * 1000.0,
    ))
}

/// A ledger of `ready` READY instance steps (those whose audit minute falls in this run's
/// slice onboarded for real, the rest written directly) and `stuck` claims whose holders
/// crashed; then one reconciler run, counted.
async fn reconciler_run(ready: usize, stuck: usize) -> Result<String, String> {
    let stack = Stack::start("bench-reconciler").await;
    let interval = Duration::from_secs(15 * 60);
    let now = SystemTime::now();
    let slice: Vec<(u32, u32, u32)> = audit_ranges(now, interval);
    let in_slice = |key: &StepKey| {
        let (hour, minute) = audit_slot(key);
        slice
            .iter()
            .any(|(h, from, to)| *h == hour && (*from..=*to).contains(&minute))
    };
    let handler = stack.instance_handler(stack.engine());
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.config);
    let mut direct: Vec<WriteRequest> = Vec::new();
    let mut audited_for_real = 0;
    for i in 0..ready {
        let account = format!("96{i:010}");
        let key = StepKey::account(&account, INSTANCE);
        if in_slice(&key) {
            handler
                .handle(
                    onboarding_requested(&format!("r-{i}"), &account, json!({})),
                    None,
                )
                .await
                .map_err(|e| format!("onboarding {account}: {e}"))?;
            audited_for_real += 1;
            continue;
        }
        let (hour, minute) = audit_slot(&key);
        let s = |v: &str| AttributeValue::S(v.to_string());
        let n = |v: u64| AttributeValue::N(v.to_string());
        let item = [
            (schema::PK, s(&key.scope)),
            (schema::SK, s(&key.step)),
            (schema::STATUS, s("READY")),
            (
                schema::CLIENT_TOKEN,
                s(&onboarding::ledger::client_token(&key, 0, None)),
            ),
            (schema::GENERATION, n(0)),
            (schema::ATTEMPT, n(1)),
            (
                schema::RESOURCE_ARN,
                s(&format!("arn:aws:sso:::instance/ssoins-{i:016}")),
            ),
            (schema::ANNOUNCED, AttributeValue::Bool(true)),
            (schema::UPDATED_AT, n(1)),
            (schema::AUDIT_HOUR, n(u64::from(hour))),
            (schema::AUDIT_MINUTE, n(u64::from(minute))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        direct.push(
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .build(),
        );
    }
    for chunk in direct.chunks(25) {
        let mut pending = chunk.to_vec();
        while !pending.is_empty() {
            let out = dynamodb
                .batch_write_item()
                .request_items(&stack.table, pending)
                .send()
                .await
                .map_err(|e| format!("seeding the ledger: {e}"))?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&stack.table))
                .unwrap_or_default();
        }
    }
    // Claims whose holders crashed before creating anything.
    let ledger = stack.engine().ledger().clone();
    for i in 0..stuck {
        let key = StepKey::account(&format!("97{i:010}"), INSTANCE);
        let revision = Revision::parse(&format!("2026-11-30T10:00:00.000Z#stuck-{i}"));
        let claim = ledger
            .claim_with(
                &key,
                &ClaimRequest {
                    request_hash: "h",
                    event_id: revision.event_id(),
                    lease: Duration::from_millis(1),
                    deadline: None,
                },
                Some(Applied {
                    state: &Fields::new(),
                    revision: &revision,
                }),
            )
            .await
            .map_err(|e| format!("stuck claim: {e}"))?;
        if !matches!(claim, Claim::Acquired(_)) {
            return Err(format!("stuck claim of {key} was not acquired"));
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;

    let reconciler = stack.reconciler_with(
        stack.engine(),
        ReconcileSettings {
            interval,
            repair_drift: false,
            stuck_after: Duration::from_secs(7200),
        },
    );
    let (before, started) = (calls(&stack), Instant::now());
    stack.ledger_requests.reset();
    let report = reconciler
        .run(None, false)
        .await
        .map_err(|e| format!("reconciler run: {e}"))?;
    let took = started.elapsed();
    let requests = stack.ledger_requests.take();
    let control = calls(&stack) - before;
    if report.finished as usize != stuck {
        return Err(format!(
            "the run finished {} of {stuck} stuck steps: {report:?}",
            report.finished
        ));
    }
    Ok(format!(
        "| reconciler run: {ready} READY + {stuck} stuck (15-minute slice: {} audited; {audited_for_real} READY steps onboarded for real in the slice, the rest written to the ledger) | {requests} | {control} | {:.2} s | reads the attention index and the slice, not the table |\n",
        report.audited,
        took.as_secs_f64(),
    ))
}
