//! `retry`: a FAILED step moves to a new generation, then the onboarding request that the
//! functions act on is published again.

use std::path::Path;

use onboarding::aws::MemberAccess;
use onboarding::events::{decode, Decoded, OnboardingRequest, SCHEMA_VERSION};
use onboarding::ledger::{request_hash, Record, Status, StepKey};
use onboarding::step::Step;
use onboarding::steps::{IdentityCenterInstance, WebIdentityProvider};
use serde_json::{json, Value};

use crate::context::{target_name, Context, Target};
use crate::failure::{Failure, Outcome};
use crate::publish::{self, Prepared, Sent};
use crate::replace;
use crate::status::{awaiting_delivery, pretty, APPROVAL_STEP, INSTANCE_STEP, WEB_STEP};

/// The step named on the command line: exactly, or by a unique prefix.
fn pick<'a>(records: &'a [Record], step: &str, who: &str) -> Outcome<&'a Record> {
    if let Some(r) = records.iter().find(|r| r.key.step == step) {
        return Ok(r);
    }
    let matches: Vec<&Record> = records
        .iter()
        .filter(|r| r.key.step.starts_with(step))
        .collect();
    let known = || {
        records
            .iter()
            .map(|r| format!("  {} ({})", r.key.step, r.status))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let mut hint = format!("its steps are:\n{}", known());
            if step.starts_with(WEB_STEP) {
                hint.push_str(
                    "\n(a web identity provider step is kept under the account that owns the \
                     portal: name that account)",
                );
            }
            Err(Failure::refused(format!("{who} has no step {step:?} in the ledger")).hint(hint))
        }
        _ => Err(
            Failure::usage(format!("{step:?} matches {} steps of {who}", matches.len()))
                .hint(format!("name one of them in full:\n{}", known())),
        ),
    }
}

/// Why a step that is not FAILED is not retried, and what to do instead.
fn refusal(r: &Record) -> Failure {
    let who = target_name(&r.key);
    let key = &r.key;
    let arn = r.resource_arn.as_deref().unwrap_or("no ARN");
    match crate::status::next_step(r) {
        None => Failure::refused(format!(
            "{key} is {} ({arn}); there is nothing to retry",
            r.status
        ))
        .hint(format!(
            "only FAILED steps are retried; see `onboarding status {who}`"
        )),
        Some(next) => Failure::refused(format!(
            "{key} is {} (generation {}, attempt {}); only FAILED, CREATED and stalled steps are retried",
            r.status, r.generation, r.attempt
        ))
        .hint(next),
    }
}

/// An onboarding request with default settings for `account`, as the functions decode it.
fn default_request(ctx: &Context, account: &str) -> Outcome<(Prepared, OnboardingRequest)> {
    let detail = json!({ "schemaVersion": SCHEMA_VERSION, "accountId": account });
    let event = json!({
        "id": "onboarding-retry",
        "source": ctx.accept.source,
        "detail-type": ctx.accept.detail_type,
        "detail": detail,
    });
    prepared_request(ctx, &event, "the default request")
}

fn prepared_request(
    ctx: &Context,
    event: &Value,
    what: &str,
) -> Outcome<(Prepared, OnboardingRequest)> {
    let prepared = publish::prepare(event, &ctx.accept)
        .map_err(|why| Failure::refused(format!("{what} cannot be published: {why}")))?;
    match decode(event, &ctx.accept).ok() {
        Some(Decoded::Request(request)) => Ok((prepared, request)),
        _ => match prepared.request.clone() {
            Some(request) => Ok((prepared, request)),
            None => Err(Failure::refused(format!(
                "{what} is not an onboarding request ({})",
                prepared.effect
            ))),
        },
    }
}

/// The one event in `file`.
fn event_from_file(ctx: &Context, file: &Path) -> Outcome<(Prepared, OnboardingRequest)> {
    let paths = publish::files(file)?;
    let mut entries = Vec::new();
    for p in &paths {
        entries.extend(publish::load(p));
    }
    let what = format!("the event in {}", file.display());
    match entries.as_slice() {
        [one] => match &one.event {
            Ok(event) => prepared_request(ctx, event, &what),
            Err(why) => Err(Failure::refused(format!("{}: {why}", one.label))),
        },
        _ => Err(Failure::refused(format!(
            "{} holds {} events; --event takes a file with the one request to publish",
            file.display(),
            entries.len()
        ))),
    }
}

/// The step key and request hash the functions would compute for `request`.
fn plan_of<S: Step>(step: &S, request: &OnboardingRequest) -> Option<(StepKey, String)> {
    step.plan(request)
        .ok()
        .map(|plan| (plan.key, request_hash(&plan.canonical)))
}

/// What will be published for `record`, and a note for the operator when it is not the
/// request that failed.
async fn request_for(
    ctx: &Context,
    record: &Record,
    event: Option<&Path>,
    via: Option<&str>,
) -> Outcome<(Prepared, Option<String>)> {
    let step = record.key.step.as_str();
    let who = target_name(&record.key);
    if via.is_some() && step != APPROVAL_STEP {
        return Err(Failure::usage(
            "--account applies only to `retry org approval-identity-source`",
        ));
    }
    // The steps only plan here: nothing is assumed or called.
    let access = || MemberAccess::new(&ctx.config, "unused", "aws");
    let planned = |request: &OnboardingRequest| -> Option<(StepKey, String)> {
        if step == INSTANCE_STEP {
            plan_of(&IdentityCenterInstance::new(access()), request)
        } else if step.starts_with(WEB_STEP) {
            let secrets = aws_sdk_secretsmanager::Client::new(&ctx.config);
            plan_of(&WebIdentityProvider::new(access(), secrets), request)
        } else {
            None
        }
    };

    if let Some(file) = event {
        let (prepared, request) = event_from_file(ctx, file)?;
        if step == APPROVAL_STEP {
            return Ok((prepared, None));
        }
        let (key, hash) = planned(&request).ok_or_else(|| {
            Failure::refused(format!(
                "the request in {} does not ask for {step}",
                file.display()
            ))
        })?;
        if key != record.key {
            return Err(Failure::refused(format!(
                "the request in {} is for {key}, not {}",
                file.display(),
                record.key
            ))
            .hint("pass the request of this account's step"));
        }
        let note = match record.request_hash.as_deref() {
            Some(stored) if stored != hash => Some(format!(
                "the request in {} differs from the one that failed: the step is now \
                 created as this file asks",
                file.display()
            )),
            _ => None,
        };
        return Ok((prepared, note));
    }

    if step == INSTANCE_STEP {
        let (prepared, request) = default_request(ctx, &who)?;
        let hash = planned(&request).map(|(_, h)| h);
        if let (Some(stored), Some(hash)) = (record.request_hash.as_deref(), hash) {
            if stored != hash {
                return Err(Failure::refused(format!(
                    "the request that failed {} set an instance name or tags, which this \
                     command does not rebuild from the ledger yet; nothing was changed",
                    record.key
                ))
                .hint(format!(
                    "publish it again: `onboarding retry {who} {step} --event FILE` with the \
                     original event (from events/ or the bus's archive) or a corrected one"
                )));
            }
        }
        let note = awaiting_delivery(record).then(|| {
            "the step was already reset; the request is published with default settings \
             (pass --event FILE if the original set an instance name or tags)"
                .to_owned()
        });
        return Ok((prepared, note));
    }
    if step.starts_with(WEB_STEP) {
        return Err(Failure::usage(format!(
            "this command does not rebuild a web identity provider's request from the \
             ledger yet, so {} needs its original event",
            record.key
        ))
        .hint(format!(
            "pass the original request: `onboarding retry {who} {step} --event FILE`"
        )));
    }
    if step == APPROVAL_STEP {
        let Some(account) = via else {
            return Err(Failure::usage(
                "`retry org approval-identity-source` publishes an onboarding request of some \
                 account; name one",
            )
            .hint(
                "pass --account ACCOUNT (an account whose identity-center-instance is READY, \
                 see `onboarding list --status READY`) or --event FILE",
            ));
        };
        let key = StepKey::account(account, INSTANCE_STEP);
        let instance = ctx
            .ledger()?
            .get_step(&key)
            .await
            .map_err(|e| ctx.ledger_failure(e))?;
        match instance {
            Some(r) if r.status == onboarding::ledger::Status::Ready => {}
            other => {
                return Err(Failure::refused(format!(
                    "{key} is {}: its request would do more than carry the retry",
                    other.map(|r| r.status.to_string()).unwrap_or_else(|| "not in the ledger".into())
                ))
                .hint("pass --account with an account whose identity-center-instance is READY (`onboarding list --status READY`), or --event FILE"))
            }
        }
        let (prepared, _) = default_request(ctx, account)?;
        return Ok((prepared, None));
    }
    Err(Failure::refused(format!(
        "{} is not a step this version knows how to publish a request for",
        record.key
    ))
    .hint("publish the original request with `onboarding replay FILE`"))
}

/// `--replace`: delete the account's CREATE_FAILED instance before the retry.
pub struct Replace {
    /// Confirmed in advance (`--yes`).
    pub yes: bool,
}

pub async fn retry(
    ctx: &Context,
    target: &Target,
    step: &str,
    event: Option<&Path>,
    via: Option<&str>,
    replace: Option<Replace>,
) -> Outcome {
    let ledger = ctx.ledger()?;
    let scope = ctx.scope(target)?;
    let who = match target {
        Target::Account(id) => format!("account {id}"),
        Target::Org => "the organization".to_owned(),
    };
    let records = ledger
        .get(&scope)
        .await
        .map_err(|e| ctx.ledger_failure(e))?;
    if records.is_empty() {
        return Err(Failure::refused(format!(
            "the ledger {} has no steps for {who}; there is nothing to retry",
            ctx.table()?
        ))
        .hint("to onboard it, publish an onboarding request: `onboarding replay FILE`"));
    }
    let record = pick(&records, step, &who)?;
    if replace.is_some() {
        if let Some(refused) = replace::refusal(record) {
            return Err(refused);
        }
    }
    let reset_earlier = awaiting_delivery(record);
    // CREATED: the resource exists; publishing the request again re-checks its readiness
    // (and records a failure if it is gone). FAILED and a stalled IN_PROGRESS (lease run out,
    // its request gone) start a new generation; the ledger refuses a live lease.
    let republish_only = reset_earlier || record.status == Status::Created;
    if !republish_only && !matches!(record.status, Status::Failed | Status::InProgress) {
        return Err(refusal(record));
    }
    // Decide what to publish before changing anything.
    let (prepared, note) = request_for(ctx, record, event, via).await?;
    // --replace: the failed instance goes first (confirmed), then the step is reset.
    let replaced = match &replace {
        Some(Replace { yes }) => {
            let doomed = replace::find(ctx, record).await?;
            replace::confirm(&doomed, *yes)?;
            replace::delete(&doomed).await?;
            if !ctx.json {
                println!(
                    "Deleted instance {} of account {} ({}).",
                    doomed.describe()["instanceArn"].as_str().unwrap_or("?"),
                    target_name(&record.key),
                    doomed.describe()["status"].as_str().unwrap_or("?"),
                );
            }
            Some(doomed.describe())
        }
        None => None,
    };

    let previous = record.generation;
    let now = if republish_only {
        record.clone()
    } else {
        ledger
            .retry(&record.key)
            .await
            .map_err(|e| ctx.ledger_failure(e))?
    };
    let sent = publish::put_events(&ctx.events(), &ctx.bus, std::slice::from_ref(&prepared)).await;
    let event_id = match sent.first() {
        Some(Sent::Accepted { event_id }) => event_id.clone(),
        Some(Sent::Failed { code, message }) => {
            return Err(Failure::runtime(format!(
                "{} is reset to generation {}, but publishing the request to bus {} failed: \
                 {code}: {message}",
                now.key, now.generation, ctx.bus
            ))
            .hint(
                "run the same command again: it publishes the request without another reset \
                 (check --bus / EVENT_BUS_NAME and the credentials' events:PutEvents)",
            ))
        }
        None => return Err(Failure::runtime("PutEvents returned no result")),
    };
    let account = prepared.account_id().map(str::to_owned);
    if ctx.json {
        let detail: Value = serde_json::from_str(&prepared.detail).unwrap_or(Value::Null);
        let doc = json!({
            "key": now.key,
            "previousGeneration": previous,
            "generation": now.generation,
            "reset": !republish_only,
            "record": now,
            "published": {
                "eventId": event_id,
                "bus": ctx.bus,
                "source": prepared.source,
                "detailType": prepared.detail_type,
                "detail": detail,
            },
            "note": note,
            "replaced": replaced,
        });
        println!("{}", pretty(&doc));
        return Ok(());
    }
    if reset_earlier {
        println!(
            "{} was already reset to generation {} by an earlier retry; publishing its request again.",
            now.key, now.generation
        );
    } else if republish_only {
        println!(
            "{} is CREATED ({}); publishing its request again so its readiness is checked.",
            now.key,
            now.resource_arn.as_deref().unwrap_or("no ARN")
        );
    } else {
        println!(
            "Retried {}: generation {previous} -> {}, now {} (the next delivery starts it afresh with a new ClientToken).",
            now.key, now.generation, now.status
        );
    }
    println!(
        "Published {:?} for account {} to bus {} (event id {event_id}).",
        prepared.detail_type,
        account.as_deref().unwrap_or("?"),
        ctx.bus
    );
    if let Some(note) = note {
        println!("Note: {note}.");
    }
    println!(
        "Follow it with: onboarding status {}",
        target_name(&now.key)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Exit;

    fn record(step: &str, status: Status) -> Record {
        Record {
            key: StepKey::account("222222222222", step),
            status,
            token: "t".into(),
            token_salt: None,
            request_hash: Some("h".into()),
            generation: 0,
            attempt: 1,
            resource_arn: None,
            last_error: None,
            announced: false,
            lease_owner: Some("o".into()),
            lease_expires_at: None,
            first_attempt_at: None,
            updated_at: None,
            expires_at: None,
            recent_events: Vec::new(),
            account_id: Some("222222222222".into()),
            origin: None,
            create_sent: false,
            settled_attempt: 0,
            retry_after: None,
            state: None,
            applied_revision: None,
            wanted: None,
            wanted_revision: None,
            update_owner: None,
            update_lease_expires_at: None,
            update_attempt: 0,
            update_first_attempt_at: None,
            requested: None,
            requested_revision: None,
            drift: None,
            audited_at: None,
            retired: None,
            retired_revision: None,
        }
    }

    #[test]
    fn steps_are_named_in_full_or_by_a_unique_prefix() {
        let portal = "arn:aws:workspaces-web:us-east-1:222222222222:portal/p";
        let one = vec![
            record(INSTANCE_STEP, Status::Ready),
            record(&format!("{WEB_STEP}#{portal}#corp-oidc"), Status::Failed),
        ];
        let who = "account 222222222222";
        let found =
            |records: &[Record], step: &str| pick(records, step, who).map(|r| r.key.step.clone());
        assert_eq!(
            found(&one, INSTANCE_STEP).ok().as_deref(),
            Some(INSTANCE_STEP)
        );
        assert!(found(&one, WEB_STEP).is_ok_and(|s| s.ends_with("#corp-oidc")));
        let missing = found(&one, "approval").expect_err("no such step");
        assert_eq!(missing.exit, Exit::Refused);
        assert!(missing.hint.unwrap_or_default().contains(INSTANCE_STEP));

        let mut two = one.clone();
        two.push(record(
            &format!("{WEB_STEP}#{portal}#corp-saml"),
            Status::Failed,
        ));
        let ambiguous = found(&two, WEB_STEP).expect_err("two providers");
        assert_eq!(ambiguous.exit, Exit::Usage);
        assert!(found(&two, &format!("{WEB_STEP}#{portal}#corp-saml")).is_ok());
    }

    #[test]
    fn only_failed_steps_are_retried_and_the_refusal_says_why() {
        let ready = refusal(&record(INSTANCE_STEP, Status::Ready));
        assert_eq!(ready.exit, Exit::Refused);
        assert!(ready.message.contains("nothing to retry"), "{ready}");
        let created = refusal(&record(INSTANCE_STEP, Status::Created));
        assert!(created.message.contains("CREATED"), "{created}");
        assert!(
            created.hint.unwrap_or_default().contains("readiness"),
            "a CREATED step waits for readiness"
        );
    }
}
