//! `retry`: a FAILED step moves to a new generation, then the onboarding request that the
//! functions act on is published again: the request the ledger recorded for the step's
//! generation (`requested`, at `requested_revision`), rebuilt by its step, with its time, or
//! the operator's event file, with the file's time.

use std::path::Path;

use onboarding::aws::MemberAccess;
use onboarding::events::{decode, Decoded, OnboardingRequest};
use onboarding::ledger::{Fields, Record, Status, StepKey};
use onboarding::revision::Revision;
use onboarding::step::Step;
use onboarding::steps::{IdentityCenterInstance, Known, WebIdentityProvider};
use serde_json::{json, Value};

use crate::context::{target_name, Context, Target};
use crate::failure::{Failure, Outcome};
use crate::publish::{self, Prepared, Sent};
use crate::recorded;
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

/// What `retry` publishes, and what the operator should know about it.
struct Publish {
    prepared: Prepared,
    /// The event published (its id is EventBridge's to assign), for the operator to keep
    /// when publishing fails.
    event: Value,
    /// The recorded request it publishes again (`<time>#<event id>`), when it is one.
    recorded: Option<Revision>,
    /// What the request asks of the step, when the step is one that records it.
    desired: Option<Fields>,
    note: Option<String>,
}

fn prepared_request(
    ctx: &Context,
    event: &Value,
    what: &str,
) -> Outcome<(Prepared, OnboardingRequest)> {
    let prepared = publish::prepare_again(event, &ctx.accept)
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

/// The one event in `file`, which must carry its own time.
fn event_from_file(ctx: &Context, file: &Path) -> Outcome<(Prepared, OnboardingRequest, Value)> {
    let paths = publish::files(file)?;
    let mut entries = Vec::new();
    for p in &paths {
        entries.extend(publish::load(p));
    }
    match entries.as_slice() {
        [one] => match &one.event {
            Ok(event) => {
                let what = format!("the event in {}", one.label);
                let (prepared, request) = prepared_request(ctx, event, &what)?;
                Ok((prepared, request, event.clone()))
            }
            Err(why) => Err(Failure::refused(format!("{}: {why}", one.label))),
        },
        _ => Err(Failure::refused(format!(
            "{} holds {} events; --event takes a file with the one request to publish",
            file.display(),
            entries.len()
        ))),
    }
}

/// Why the request recorded for `record` cannot be published again, and what to do.
fn not_rebuilt(record: &Record, why: &str) -> Failure {
    let who = target_name(&record.key);
    let reset = if awaiting_delivery(record) && record.requested.is_none() {
        format!(
            " (an earlier `onboarding retry` reset it to generation {}, and a reset clears the \
             recorded request of a generation that sent no create)",
            record.generation
        )
    } else {
        String::new()
    };
    Failure::refused(format!(
        "the request of {} cannot be published again from the ledger: {why}{reset}; nothing \
         was changed",
        record.key
    ))
    .hint(format!(
        "pass the request: `onboarding retry {who} {} --event FILE` with the original event \
         (from events/ or the bus's archive) or a corrected one; it is published with the \
         file's time",
        record.key.step
    ))
}

/// The event for `request`, checked as the functions will decode it.
fn publishable(
    ctx: &Context,
    request: &OnboardingRequest,
    what: &str,
) -> Outcome<(Prepared, Value)> {
    let event = recorded::event(request, &ctx.accept);
    let prepared = publish::prepare(&event, &ctx.accept)
        .map_err(|why| Failure::refused(format!("{what} cannot be published: {why}")))?;
    Ok((prepared, event))
}

/// What will be published for `record`: with `--event`, the file's request; else the
/// request the ledger recorded for the step's generation (`requested`), rebuilt by its step,
/// with its fields, its time and its event id.
async fn request_for(
    ctx: &Context,
    record: &Record,
    event: Option<&Path>,
    via: Option<&str>,
) -> Outcome<Publish> {
    let step = record.key.step.as_str();
    if via.is_some() && step != APPROVAL_STEP {
        return Err(Failure::usage(
            "--account applies only to `retry org approval-identity-source`",
        ));
    }
    // The steps only plan here: nothing is assumed or called.
    let access = || MemberAccess::new(&ctx.config, "unused", "aws");
    let instance = || IdentityCenterInstance::new(access());
    let web =
        || WebIdentityProvider::new(access(), aws_sdk_secretsmanager::Client::new(&ctx.config));
    let kind = Known::of(&record.key);
    let planned = |request: &OnboardingRequest| -> Option<(StepKey, Fields)> {
        match kind {
            Some(Known::Instance) => instance().plan(request).ok().map(|p| (p.key, p.desired)),
            Some(Known::Web) => web().plan(request).ok().map(|p| (p.key, p.desired)),
            _ => None,
        }
    };

    if let Some(file) = event {
        let (prepared, request, event) = event_from_file(ctx, file)?;
        if step == APPROVAL_STEP {
            return Ok(Publish {
                prepared,
                event,
                recorded: None,
                desired: None,
                note: None,
            });
        }
        let (key, desired) = planned(&request).ok_or_else(|| {
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
        let note = match (&record.requested, &record.requested_revision) {
            (Some(fields), revision) if *fields != desired => Some(format!(
                "the request in {} differs from the one the ledger recorded for this \
                 generation ({}): the step is now created as this file asks",
                file.display(),
                revision.as_ref().map_or("no revision", |r| r.as_str())
            )),
            _ => None,
        };
        return Ok(Publish {
            prepared,
            event,
            recorded: None,
            desired: Some(desired),
            note,
        });
    }

    match kind {
        Some(Known::Instance | Known::Web) => {
            let request =
                recorded::first_request(record).map_err(|why| not_rebuilt(record, &why))?;
            let faithful = match kind {
                Some(Known::Instance) => recorded::asks_as_recorded(&instance(), &request, record),
                _ => recorded::asks_as_recorded(&web(), &request, record),
            };
            faithful.map_err(|why| not_rebuilt(record, &format!("rebuilt, {why}")))?;
            let what = format!("the request recorded for {}", record.key);
            let (prepared, event) = publishable(ctx, &request, &what)?;
            let note = prepared.time.is_none().then(|| {
                "the recorded request has no time (its event carried none), so EventBridge \
                 gives it the time of publishing"
                    .to_owned()
            });
            Ok(Publish {
                prepared,
                event,
                recorded: record.requested_revision.clone(),
                desired: record.requested.clone(),
                note,
            })
        }
        Some(Known::Approval) => {
            let Some(account) = via else {
                return Err(Failure::usage(
                    "`retry org approval-identity-source` publishes an onboarding request of \
                     some account; name one",
                )
                .hint(
                    "pass --account ACCOUNT (an account whose identity-center-instance is \
                     READY, see `onboarding list --status READY`) or --event FILE",
                ));
            };
            let key = StepKey::account(account, INSTANCE_STEP);
            let instance = ctx
                .ledger()?
                .get_step(&key)
                .await
                .map_err(|e| ctx.ledger_failure(e))?;
            let carrier = match instance {
                Some(r) if r.status == Status::Ready => r,
                other => {
                    return Err(Failure::refused(format!(
                        "{key} is {}: its request would do more than carry the retry",
                        other
                            .map(|r| r.status.to_string())
                            .unwrap_or_else(|| "not in the ledger".into())
                    ))
                    .hint(
                        "pass --account with an account whose identity-center-instance is \
                         READY (`onboarding list --status READY`), or --event FILE",
                    ))
                }
            };
            // A request of the carrying account that asks its steps nothing: for that
            // account a duplicate.
            let request =
                recorded::carrier_request(&carrier).map_err(|why| not_rebuilt(&carrier, &why))?;
            let what = format!("a request of {key}'s account asking it nothing");
            let (prepared, event) = publishable(ctx, &request, &what)?;
            Ok(Publish {
                prepared,
                event,
                recorded: carrier.applied_revision.clone(),
                desired: None,
                note: None,
            })
        }
        None => Err(Failure::refused(format!(
            "{} is not a step this version knows how to publish a request for",
            record.key
        ))
        .hint("publish the original request with `onboarding replay FILE`")),
    }
}

/// What the published request keeps, in a sentence.
fn kept(publish: &Publish) -> String {
    let time = match &publish.prepared.time {
        Some(t) => format!(
            "its time {} (EventBridge's Time), so it stays older than any request made after \
             it",
            t.text
        ),
        None => "the time of publishing (it had none)".to_owned(),
    };
    match &publish.recorded {
        Some(revision) => format!(
            "It is the request the ledger recorded ({revision}), published with its fields and \
             {time}; EventBridge gives it a new event id."
        ),
        None => format!("It is published with {time}; EventBridge gives it a new event id."),
    }
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
    let publish = request_for(ctx, record, event, via).await?;
    let prepared = &publish.prepared;
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
    // A reset keeps the generation's request when a create may have been sent (the new
    // generation looks for that resource): the step is made as that request asks.
    let mut note = publish.note.clone();
    if let (false, Some(kept), Some(desired)) = (republish_only, &now.requested, &publish.desired) {
        if kept != desired {
            note = Some(format!(
                "the ledger kept this generation's request ({}), since a create may have been \
                 sent with it: the step is made as that request asks, and this one applies \
                 after it if its time is newer",
                now.requested_revision
                    .as_ref()
                    .map_or("no revision", |r| r.as_str())
            ));
        }
    }
    let sent = publish::put_events(&ctx.events(), &ctx.bus, std::slice::from_ref(prepared)).await;
    let event_id = match sent.first() {
        Some(Sent::Accepted { event_id }) => event_id.clone(),
        Some(Sent::Failed { code, message }) => {
            return Err(Failure::runtime(format!(
                "{} is reset to generation {}, but publishing the request to bus {} failed: \
                 {code}: {message}",
                now.key, now.generation, ctx.bus
            ))
            .hint(format!(
                "run the same command again: it publishes the request without another reset \
                 (check --bus / EVENT_BUS_NAME and the credentials' events:PutEvents); if it \
                 says the ledger no longer holds the request, save this event to a file and \
                 pass it with --event FILE: {}",
                publish.event
            )))
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
                "time": prepared.time.as_ref().map(|t| t.text.as_str()),
                "republishes": publish.recorded,
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
    println!("{}", kept(&publish));
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
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;
    use onboarding::ledger::schema;

    use super::*;
    use crate::failure::Exit;

    /// An item as the ledger stores it (read as the ledger reads it).
    fn record(step: &str, status: Status) -> Record {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let key = StepKey::account("222222222222", step);
        let item = HashMap::from([
            (schema::PK.to_owned(), s(&key.scope)),
            (schema::SK.to_owned(), s(&key.step)),
            (schema::STATUS.to_owned(), s(status.as_str())),
            (schema::CLIENT_TOKEN.to_owned(), s("t")),
            (schema::REQUEST_HASH.to_owned(), s("h")),
            (schema::LEASE_OWNER.to_owned(), s("o")),
            (schema::GENERATION.to_owned(), AttributeValue::N("0".into())),
            (schema::ATTEMPT.to_owned(), AttributeValue::N("1".into())),
        ]);
        Record::from_item(&item).expect("a ledger item")
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
