//! `status` (every step of one scope) and `list` (steps with a status).

use onboarding::clock::now_ms;

use onboarding::ledger::{Record, Status};
use onboarding::step::Step;
use onboarding::steps::{ApprovalIdentitySource, IdentityCenterInstance, WebIdentityProvider};
use serde_json::json;

use crate::context::{target_name, Context, Target};
use crate::failure::{Failure, Outcome};
use crate::table::{shorten, time_or_dash, Table};

/// The steps' names (the ledger's sort keys, or their prefix), as the steps define them.
pub const INSTANCE_STEP: &str = IdentityCenterInstance::NAME;
pub const APPROVAL_STEP: &str = ApprovalIdentitySource::NAME;
pub const WEB_STEP: &str = WebIdentityProvider::NAME;

/// A step reset by `retry` and not yet picked up by a delivery.
pub fn awaiting_delivery(r: &Record) -> bool {
    r.status == Status::InProgress
        && r.attempt == 0
        && r.lease_owner.is_none()
        && r.request_hash.is_none()
}

/// What the operator can do about a step, if anything.
pub fn next_step(r: &Record) -> Option<String> {
    let who = target_name(&r.key);
    let step = &r.key.step;
    match r.status {
        Status::Ready => None,
        Status::Retired => {
            let retired = r.retired.as_ref();
            let why = retired
                .and_then(|w| w.get("reason"))
                .and_then(|v| v.as_str())
                .unwrap_or("its account closed or left the organization");
            let at = time_or_dash(retired.and_then(|w| w.get("at")).and_then(|v| v.as_u64()));
            Some(format!(
                "RETIRED since {at}: {why}. Nothing is audited, repaired or created for it; an \
                 onboarding request newer than the retirement (a reopened account) starts it again"
            ))
        }
        Status::Failed => {
            let extra = if step == APPROVAL_STEP {
                " --account ACCOUNT (an onboarded account)"
            } else if r.requested.is_none() {
                // Nothing recorded to publish again: the operator names the request.
                " --event FILE (the original request)"
            } else {
                ""
            };
            let cause = r
                .last_error
                .as_ref()
                .map(|e| format!(" ({})", e.code))
                .unwrap_or_default();
            Some(format!(
                "FAILED: fix the cause{cause}, then `onboarding retry {who} {step}{extra}`"
            ))
        }
        Status::Created => Some(format!(
            "created, waiting for readiness: the next delivery of the request checks it again \
             (`onboarding retry {who} {step}` publishes it again)"
        )),
        Status::InProgress if awaiting_delivery(r) => Some(format!(
            "reset by a retry (generation {}), waiting for its onboarding request: \
             `onboarding retry {who} {step}{}` publishes it again",
            r.generation,
            if r.requested.is_none() && step != APPROVAL_STEP {
                " --event FILE"
            } else {
                ""
            }
        )),
        Status::InProgress => match r.lease_expires_at {
            Some(until) if until > now_ms() => Some(format!(
                "a delivery is working on it (lease until {})",
                time_or_dash(Some(until))
            )),
            _ if r.retry_after.is_some_and(|t| t > now_ms()) => Some(format!(
                "waiting ({}): next try after {} by its delivery or the reconciler",
                r.last_error
                    .as_ref()
                    .map_or("backing off", |e| e.code.as_str()),
                time_or_dash(r.retry_after)
            )),
            _ => Some(format!(
                "stalled since {} (attempt {}): the next delivery of the request continues \
                 it; redeliver it with `onboarding replay FILE`, or start it afresh with \
                 `onboarding retry {who} {step}`",
                time_or_dash(r.lease_expires_at.or(r.updated_at)),
                r.attempt
            )),
        },
    }
}

fn error_text(r: &Record) -> String {
    match &r.last_error {
        Some(e) => format!(
            "{} ({}): {}",
            e.code,
            if e.retryable {
                "retryable"
            } else {
                "permanent"
            },
            e.message
        ),
        None => "-".to_owned(),
    }
}

pub async fn status(ctx: &Context, target: &Target) -> Outcome {
    let ledger = ctx.ledger()?;
    let scope = ctx.scope(target)?;
    let steps = ledger
        .get(&scope)
        .await
        .map_err(|e| ctx.ledger_failure(e))?;
    let org_steps = match (target, ctx.org_instance_arn.as_deref()) {
        (Target::Account(_), Some(_)) => ledger
            .get(&ctx.scope(&Target::Org)?)
            .await
            .map_err(|e| ctx.ledger_failure(e))?,
        _ => Vec::new(),
    };
    let who = match target {
        Target::Account(id) => format!("account {id}"),
        Target::Org => format!("organization instance {}", ctx.org_arn()?),
    };

    if ctx.json {
        let doc = json!({
            "scope": scope,
            "accountId": match target { Target::Account(id) => Some(id.as_str()), Target::Org => None },
            "steps": steps,
            "organization": ctx.org_instance_arn.as_ref().map(|arn| json!({
                "instanceArn": arn,
                "steps": if matches!(target, Target::Org) { &steps } else { &org_steps },
            })),
        });
        println!("{}", pretty(&doc));
    } else {
        let mut table = Table::new(&[
            "SCOPE",
            "STEP",
            "STATUS",
            "GEN",
            "ATTEMPTS",
            "FIRST ATTEMPT",
            "UPDATED",
            "ORIGIN",
            "RESOURCE",
        ]);
        let all = steps.iter().chain(&org_steps);
        for r in all.clone() {
            table.row(vec![
                if r.key.account_id().is_some() {
                    "account".into()
                } else {
                    "organization".into()
                },
                r.key.step.clone(),
                r.status.to_string(),
                r.generation.to_string(),
                r.attempt.to_string(),
                time_or_dash(r.first_attempt_at),
                time_or_dash(r.updated_at),
                r.origin.map_or_else(|| "-".into(), |o| o.to_string()),
                r.resource_arn.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        let mut out = format!("Ledger {} for {who}\n\n", ctx.table()?);
        if table.is_empty() {
            out.push_str("(no steps)\n");
        } else {
            out.push_str(&table.render());
        }
        // The applied revision (time#event id of the latest request applied) and a newer
        // one waiting to be applied, if any.
        // What the requests ask that the resource does not hold yet: the newest revision
        // of the desired state and the fields to change.
        let waiting = |r: &Record| -> Option<(String, String)> {
            let state = r.state.clone().unwrap_or_default();
            r.desired.pending(&state).then(|| {
                let target = r.desired.target(&state);
                (
                    r.desired.newest().map_or("-".to_owned(), |v| v.to_string()),
                    onboarding::desired::changed(&state, &target).join(", "),
                )
            })
        };
        let revisions: Vec<String> = all
            .clone()
            .filter(|r| r.applied_revision.is_some() || waiting(r).is_some())
            .map(|r| {
                let applied = r
                    .applied_revision
                    .as_ref()
                    .map_or("-".to_owned(), |v| v.to_string());
                match waiting(r) {
                    Some((wanted, fields)) => format!(
                        "  {}: applied {applied}; waiting {wanted} ({fields})",
                        r.key.step
                    ),
                    None => format!("  {}: applied {applied}", r.key.step),
                }
            })
            .collect();
        if !revisions.is_empty() {
            out.push_str("\nRevisions (event time#event id):\n");
            out.push_str(&revisions.join("\n"));
            out.push('\n');
        }
        let drift: Vec<String> = all
            .clone()
            .filter_map(|r| {
                let d = r.drift.as_ref()?;
                let at = d.get("at").and_then(|v| v.as_u64());
                if let Some(unreachable) = d.get("unreachable") {
                    return Some(format!(
                        "  {}: not audited since {}: account {} cannot be reached (Organizations: \
                         {}): {} {} - check that the member role exists there and trusts the \
                         functions' roles (Deploy, Member account role)",
                        r.key.step,
                        time_or_dash(at),
                        r.key.account_id().unwrap_or("?"),
                        unreachable["accountState"].as_str().unwrap_or("?"),
                        unreachable["code"].as_str().unwrap_or_default(),
                        unreachable["message"].as_str().unwrap_or_default(),
                    ));
                }
                if let Some(refused) = d.get("refused") {
                    return Some(format!(
                        "  {}: not audited since {}: {} {} - grant the permission it names \
                         (member-role.yaml / template.yaml) or lift the SCP",
                        r.key.step,
                        time_or_dash(at),
                        refused["code"].as_str().unwrap_or_default(),
                        refused["message"].as_str().unwrap_or_default(),
                    ));
                }
                Some(format!(
                    "  {}: {} (found {}){}",
                    r.key.step,
                    if d.get("gone") == Some(&serde_json::Value::Bool(true)) {
                        "the resource is gone".to_owned()
                    } else {
                        format!(
                            "changed behind the project's back: {}",
                            d.get("changed").map(|c| c.to_string()).unwrap_or_default()
                        )
                    },
                    time_or_dash(at),
                    " - repair with `onboarding sweep --repair`, or REPAIR_DRIFT=true"
                ))
            })
            .collect();
        if !drift.is_empty() {
            out.push_str("\nDrift:\n");
            out.push_str(&drift.join("\n"));
            out.push('\n');
        }
        let errors: Vec<String> = all
            .clone()
            .filter(|r| r.last_error.is_some())
            .map(|r| format!("  {}: {}", r.key.step, error_text(r)))
            .collect();
        if !errors.is_empty() {
            out.push_str("\nLast errors:\n");
            out.push_str(&errors.join("\n"));
            out.push('\n');
        }
        let next: Vec<String> = all
            .filter_map(|r| next_step(r).map(|n| format!("  {}: {n}", r.key.step)))
            .collect();
        if !next.is_empty() {
            out.push_str("\nNext:\n");
            out.push_str(&next.join("\n"));
            out.push('\n');
        }
        if matches!(target, Target::Account(_)) && ctx.org_instance_arn.is_none() {
            out.push_str(
                "\n(the organization's approval-identity-source step is shown with \
                 --org-instance-arn or ORG_INSTANCE_ARN)\n",
            );
        }
        print!("{out}");
    }

    if steps.is_empty() {
        let hint = match target {
            Target::Account(_) => {
                "the account has not been onboarded (or its failed steps expired after 30 days): \
                 publish an onboarding request for it, e.g. `onboarding replay FILE`, and check \
                 --table / LEDGER_TABLE"
            }
            Target::Org => {
                "no onboarding has reached the approval identity source yet; check \
                 --org-instance-arn / ORG_INSTANCE_ARN and --table / LEDGER_TABLE"
            }
        };
        return Err(Failure::refused(format!(
            "the ledger {} has no steps for {who}",
            ctx.table()?
        ))
        .hint(hint));
    }
    Ok(())
}

pub async fn list(ctx: &Context, statuses: &[Status]) -> Outcome {
    let ledger = ctx.ledger()?;
    let mut records: Vec<Record> = Vec::new();
    for status in statuses {
        records.extend(
            ledger
                .list(*status)
                .await
                .map_err(|e| ctx.ledger_failure(e))?,
        );
    }
    records.sort_by(|a, b| {
        a.updated_at
            .cmp(&b.updated_at)
            .then_with(|| a.key.scope.cmp(&b.key.scope))
            .then_with(|| a.key.step.cmp(&b.key.step))
    });
    if ctx.json {
        println!("{}", pretty(&json!(records)));
        return Ok(());
    }
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    if records.is_empty() {
        println!("No steps are {}.", names.join(" or "));
        return Ok(());
    }
    let mut table = Table::new(&[
        "ACCOUNT",
        "STEP",
        "STATUS",
        "GEN",
        "ATTEMPTS",
        "UPDATED",
        "LAST ERROR / WHY RETIRED",
    ]);
    for r in &records {
        table.row(vec![
            target_name(&r.key),
            r.key.step.clone(),
            r.status.to_string(),
            r.generation.to_string(),
            r.attempt.to_string(),
            time_or_dash(r.updated_at),
            match (&r.status, r.retired.as_ref().and_then(|w| w.get("reason"))) {
                // A retired step: why (the account closed or left the organization).
                (Status::Retired, Some(why)) => shorten(why.as_str().unwrap_or_default(), 80),
                _ => r
                    .last_error
                    .as_ref()
                    .map(|e| shorten(&format!("{}: {}", e.code, e.message), 80))
                    .unwrap_or_else(|| "-".into()),
            },
        ]);
    }
    print!("{}", table.render());
    println!(
        "\n{} step(s) with status {}. Details: `onboarding status ACCOUNT`.",
        records.len(),
        names.join(", ")
    );
    Ok(())
}

pub fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
