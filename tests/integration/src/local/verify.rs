//! Checks of a local run's outcome, shared by the demo (which prints them) and the test
//! (which asserts there are none, then looks closer).

use identity_emulator::Counters;
use serde_json::Value;

use super::deliver::Delivery;
use super::expected::{expected, ledger_status, Expect};
use super::report::{LedgerRow, Resources, CREATE_OPERATIONS};

/// The detail-type of a retirement's announcement.
pub const OFFBOARDED: &str = "Account Offboarded";

/// Deliveries whose first reply differs from `events/README.md`, and retries that did not
/// end as the trigger would (a direct event still failing; records dead-lettered other than
/// the ones documented as unreadable).
pub fn replies(deliveries: &[Delivery], round: u32) -> Vec<String> {
    let mut problems = Vec::new();
    for d in deliveries {
        let expect = expected(&d.file, &d.function, round);
        if let Err(why) = expect.check(d.first()) {
            problems.push(format!(
                "round {round}: {} -> {}: {why}",
                d.file, d.function
            ));
        }
        if let Some(e) = &d.gave_up {
            problems.push(format!(
                "round {round}: {} -> {}: still failing after {} attempts: {e}",
                d.file,
                d.function,
                d.invocations()
            ));
        }
        let mut dead = d.dead_lettered.clone();
        dead.sort();
        let mut want: Vec<String> = match expect {
            Expect::Batch(ids) => ids.iter().map(|s| s.to_string()).collect(),
            _ => Vec::new(),
        };
        want.sort();
        if dead != want {
            problems.push(format!(
                "round {round}: {} -> {}: dead-lettered {dead:?}, expected {want:?}",
                d.file, d.function
            ));
        }
    }
    problems
}

/// Every ledger item as the run leaves it ([`super::expected::ledger_status`]): READY with an
/// ARN; RETIRED for the departed accounts, with an ARN when a request had reached the step,
/// `-` for the placeholder of a step no request reached.
pub fn ledger_settled(rows: &[LedgerRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| {
            let want = ledger_status(&r.account);
            r.status != want || (want == "READY" && !r.arn.starts_with("arn:"))
        })
        .map(|r| {
            format!(
                "ledger: {} {} is {} ({}), expected {}",
                r.account,
                r.step,
                r.status,
                r.arn,
                ledger_status(&r.account)
            )
        })
        .collect()
}

/// Every RETIRED ledger item announced exactly once as "Account Offboarded" (its account, its
/// step, its resource when it had one), and no such event for anything else.
pub fn offboarded_once(rows: &[LedgerRow], emitted: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let announced: Vec<&Value> = emitted
        .iter()
        .filter(|e| e["detail-type"] == OFFBOARDED)
        .map(|e| &e["detail"])
        .collect();
    let retired: Vec<&LedgerRow> = rows.iter().filter(|r| r.status == "RETIRED").collect();
    for row in &retired {
        let step = row.sort_key.split('#').next().unwrap_or(&row.sort_key);
        let n = announced
            .iter()
            .filter(|d| {
                d["accountId"] == row.account.as_str()
                    && d["step"] == step
                    && match row.arn.as_str() {
                        "-" => d.get("resourceArn").is_none(),
                        arn => d["resourceArn"] == arn,
                    }
            })
            .count();
        if n != 1 {
            problems.push(format!(
                "{OFFBOARDED}: {} {} announced {n} times (expected once)",
                row.account, row.step
            ));
        }
    }
    if announced.len() != retired.len() {
        problems.push(format!(
            "{OFFBOARDED}: {} events for {} RETIRED ledger items",
            announced.len(),
            retired.len()
        ));
    }
    problems
}

/// Exactly one resource per ledger item and create call: the emulator made as many resources
/// as the ledger holds steps of that kind with a resource (a retired step keeps its resource:
/// closure deletes nothing; a retired placeholder has none), every create call made a new one (no replays,
/// no duplicates), and nothing was created after `after_first_round`.
pub fn idempotent(
    rows: &[LedgerRow],
    after_first_round: &Counters,
    now: &Counters,
    resources: &Resources,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (step, operation) in CREATE_OPERATIONS {
        let steps = rows
            .iter()
            .filter(|r| r.step.starts_with(step) && r.arn.starts_with("arn:"))
            .count() as u64;
        let held = resources.of(operation);
        if held != steps {
            problems.push(format!(
                "{operation}: {held} resources in the emulator, {steps} ledger items"
            ));
        }
        if now.created(operation) != held {
            problems.push(format!(
                "{operation}: {} created, {held} held",
                now.created(operation)
            ));
        }
        let calls = now.calls(operation);
        if calls != now.created(operation) {
            problems.push(format!(
                "{operation}: {calls} calls for {} new resources",
                now.created(operation)
            ));
        }
        if now.created(operation) != after_first_round.created(operation)
            || now.calls(operation) != after_first_round.calls(operation)
        {
            problems.push(format!(
                "{operation}: the second round made {} calls and {} resources (expected none)",
                now.calls(operation) - after_first_round.calls(operation).min(now.calls(operation)),
                now.created(operation)
                    - after_first_round
                        .created(operation)
                        .min(now.created(operation))
            ));
        }
    }
    problems
}

/// `secret` appears in none of the named texts.
pub fn secret_absent(secret: &str, places: &[(&str, &str)]) -> Vec<String> {
    places
        .iter()
        .filter(|(_, text)| text.contains(secret))
        .map(|(name, _)| format!("the OIDC client secret's value appears in {name}"))
        .collect()
}

/// What IAM said of the functions' calls, from the emulator's `observed()` `(principal,
/// action, allowed)`: every denial, and every role of `roles` none of whose calls was
/// evaluated (its function did not sign as it: the run would prove nothing about its policy).
pub fn iam(observed: &[(String, String, bool)], roles: &[&str]) -> Vec<String> {
    let mut problems: Vec<String> = observed
        .iter()
        .filter(|(_, _, allowed)| !allowed)
        .map(|(principal, action, _)| {
            format!("IAM: {principal} was denied {action} by its shipped policy")
        })
        .collect();
    for role in roles {
        if !observed.iter().any(|(principal, _, _)| principal == role) {
            problems.push(format!("IAM: no call was evaluated as {role}"));
        }
    }
    problems
}

/// One line per principal: the actions IAM allowed it (`observed()` order).
pub fn allowed_actions(observed: &[(String, String, bool)]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (principal, action, allowed) in observed {
        if !allowed {
            continue;
        }
        match out.iter_mut().find(|(p, _)| p == principal) {
            Some((_, actions)) => actions.push(action.clone()),
            None => out.push((principal.clone(), vec![action.clone()])),
        }
    }
    out
}
