//! Checks of a local run's outcome, shared by the demo (which prints them) and the test
//! (which asserts there are none, then looks closer).

use identity_emulator::Counters;

use super::deliver::Delivery;
use super::expected::{expected, Expect};
use super::report::{LedgerRow, Resources, CREATE_OPERATIONS};

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

/// Every ledger item READY, with an ARN.
pub fn ledger_ready(rows: &[LedgerRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.status != "READY" || !r.arn.starts_with("arn:"))
        .map(|r| {
            format!(
                "ledger: {} {} is {} ({})",
                r.account, r.step, r.status, r.arn
            )
        })
        .collect()
}

/// Exactly one resource per ledger item and create call: the emulator made as many resources
/// as the ledger holds steps of that kind, every create call made a new one (no replays,
/// no duplicates), and nothing was created after `after_first_round`.
pub fn idempotent(
    rows: &[LedgerRow],
    after_first_round: &Counters,
    now: &Counters,
    resources: &Resources,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (step, operation) in CREATE_OPERATIONS {
        let steps = rows.iter().filter(|r| r.step.starts_with(step)).count() as u64;
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
