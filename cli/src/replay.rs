//! `replay`: publish the events of files to the bus, as the files have them, each with its
//! own time (EventBridge's `Time`): a replayed request keeps its place among the requests for
//! its steps, so an old one stays older than a newer one that already applied.

use std::path::PathBuf;

use serde_json::json;

use crate::context::Context;
use crate::failure::{Failure, Outcome};
use crate::publish::{self, Prepared, Sent};
use crate::status::pretty;
use crate::table::{shorten, Table};

/// What the operator should know about a replay's order.
const KEEPS_TIME: &str = "Each event keeps its own time (EventBridge's Time, the TIME column): \
     a replayed request stays older than a newer one that already applied, so it changes \
     nothing that request set.";

enum Fate {
    Invalid(String),
    Ready(Box<Prepared>),
}

struct Line {
    label: String,
    fate: Fate,
    /// What happened (or would happen) to it.
    result: String,
    event_id: Option<String>,
    error: Option<(String, String)>,
}

pub async fn replay(
    ctx: &Context,
    paths: &[PathBuf],
    dry_run: bool,
    skip_invalid: bool,
) -> Outcome {
    let mut lines = Vec::new();
    for path in paths {
        for file in publish::files(path)? {
            for entry in publish::load(&file) {
                let fate = match entry.event {
                    Ok(event) => match publish::prepare_again(&event, &ctx.accept) {
                        Ok(p) => Fate::Ready(Box::new(p)),
                        Err(why) => Fate::Invalid(why),
                    },
                    Err(why) => Fate::Invalid(why),
                };
                lines.push(Line {
                    label: entry.label,
                    fate,
                    result: String::new(),
                    event_id: None,
                    error: None,
                });
            }
        }
    }
    let invalid = lines
        .iter()
        .filter(|l| matches!(l.fate, Fate::Invalid(_)))
        .count();
    let refused = invalid > 0 && !skip_invalid;
    let ready: Vec<Prepared> = lines
        .iter()
        .filter_map(|l| match &l.fate {
            Fate::Ready(p) => Some(Prepared::clone(p)),
            Fate::Invalid(_) => None,
        })
        .collect();

    let send = !dry_run && !refused;
    let results = if send {
        publish::put_events(&ctx.events(), &ctx.bus, &ready).await
    } else {
        Vec::new()
    };
    let mut results = results.into_iter();
    for line in &mut lines {
        match &line.fate {
            Fate::Invalid(why) => {
                line.result = if refused {
                    format!("invalid: {why}")
                } else {
                    format!("skipped: {why}")
                };
            }
            Fate::Ready(p) if !send => {
                line.result = if dry_run && !refused {
                    format!("would send: {}", p.effect)
                } else {
                    format!("not sent: {}", p.effect)
                };
            }
            Fate::Ready(p) => match results.next() {
                Some(Sent::Accepted { event_id }) => {
                    line.result = format!("sent: {}", p.effect);
                    line.event_id = Some(event_id);
                }
                Some(Sent::Failed { code, message }) => {
                    line.result = format!("failed: {code}: {message}");
                    line.error = Some((code, message));
                }
                None => line.result = "failed: no result".into(),
            },
        }
    }
    let sent = lines.iter().filter(|l| l.event_id.is_some()).count();
    let failed = lines.iter().filter(|l| l.error.is_some()).count();

    if ctx.json {
        let entries: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| {
                let (source, detail_type, account, time, state) = match &l.fate {
                    Fate::Ready(p) => (
                        Some(p.source.as_str()),
                        Some(p.detail_type.as_str()),
                        p.account_id(),
                        p.time.as_ref().map(|t| t.text.as_str()),
                        if l.event_id.is_some() {
                            "sent"
                        } else if l.error.is_some() {
                            "failed"
                        } else if dry_run && !refused {
                            "would-send"
                        } else {
                            "not-sent"
                        },
                    ),
                    Fate::Invalid(_) => (
                        None,
                        None,
                        None,
                        None,
                        if refused { "invalid" } else { "skipped" },
                    ),
                };
                json!({
                    "entry": l.label,
                    "state": state,
                    "source": source,
                    "detailType": detail_type,
                    "accountId": account,
                    "time": time,
                    "eventId": l.event_id,
                    "result": l.result,
                    "error": l.error.as_ref().map(|(c, m)| json!({ "code": c, "message": m })),
                })
            })
            .collect();
        println!(
            "{}",
            pretty(&json!({
                "bus": ctx.bus,
                "dryRun": dry_run,
                "sent": sent,
                "failed": failed,
                "invalid": invalid,
                "entries": entries,
            }))
        );
    } else {
        let mut table = Table::new(&["ENTRY", "DETAIL-TYPE", "ACCOUNT", "TIME", "RESULT"]);
        for l in &lines {
            let (detail_type, account, time) = match &l.fate {
                Fate::Ready(p) => (
                    p.detail_type.clone(),
                    p.account_id().unwrap_or("-").to_owned(),
                    p.time.as_ref().map_or("-", |t| t.text.as_str()).to_owned(),
                ),
                Fate::Invalid(_) => ("-".into(), "-".into(), "-".into()),
            };
            let mut result = shorten(&l.result, 160);
            if let Some(id) = &l.event_id {
                result.push_str(&format!(" (event id {id})"));
            }
            table.row(vec![l.label.clone(), detail_type, account, time, result]);
        }
        print!("{}", table.render());
        if dry_run && !refused {
            println!(
                "\nDry run: {} event(s) would be sent to bus {}{}; nothing was sent.",
                ready.len(),
                ctx.bus,
                if invalid > 0 {
                    format!(", {invalid} skipped")
                } else {
                    String::new()
                }
            );
        } else if send {
            println!(
                "\nSent {sent} of {} event(s) to bus {}{}.",
                ready.len(),
                ctx.bus,
                if invalid > 0 {
                    format!(" ({invalid} invalid skipped)")
                } else {
                    String::new()
                }
            );
        }
        if !ready.is_empty() && !refused {
            println!("{KEEPS_TIME}");
        }
    }

    if refused {
        return Err(Failure::refused(format!(
            "{invalid} of {} event(s) cannot be published; nothing was sent",
            lines.len()
        ))
        .hint("fix or remove them (the reasons are listed above), or pass --skip-invalid to send the others"));
    }
    if failed > 0 {
        return Err(Failure::runtime(format!(
            "{failed} of {} event(s) were not accepted by bus {}",
            ready.len(),
            ctx.bus
        ))
        .hint("run the replay again (onboarding is idempotent: the events already sent are duplicates); check --bus / EVENT_BUS_NAME and the credentials' events:PutEvents if it keeps failing"));
    }
    Ok(())
}
