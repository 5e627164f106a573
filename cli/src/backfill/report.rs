//! The report: a table and a summary, or one JSON document with `--json`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::options::Options;
use super::organizations::Listing;
use super::plan::{Fate, Line};
use crate::context::Context;
use crate::status::pretty;
use crate::table::{shorten, Table};

pub struct Timings {
    pub list: Duration,
    pub read: Duration,
    pub plan: Duration,
    pub publish: Duration,
    pub ledger_calls: usize,
}

pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub fn report(
    ctx: &Context,
    opts: &Options,
    listing: &Listing,
    lines: &[Line],
    unused: &[String],
    t: Timings,
) {
    let dry = opts.dry_run;
    let count = |f: &dyn Fn(&Fate) -> bool| lines.iter().filter(|l| f(&l.fate)).count();
    let ready = count(&|f| matches!(f, Fate::Ready));
    let published = count(&|f| matches!(f, Fate::Published { .. }));
    let would = if dry {
        count(&|f| matches!(f, Fate::Publish))
    } else {
        0
    };
    let skipped = count(&|f| matches!(f, Fate::Skipped(_)));
    let failed = count(&|f| matches!(f, Fate::Failed { .. }));
    let not_published = count(&|f| matches!(f, Fate::NotPublished(_)))
        + if dry {
            0
        } else {
            count(&|f| matches!(f, Fate::Publish))
        };
    // The summary: every outcome, skipped ones by reason, failed ones by error code.
    let by_reason = |pick: &dyn Fn(&Fate) -> Option<String>| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for l in lines {
            if let Some(r) = pick(&l.fate) {
                *m.entry(r).or_default() += 1;
            }
        }
        m
    };
    let mut summary: Vec<(&str, usize, String)> = vec![
        ("already ready", ready, String::new()),
        if dry {
            ("would publish", would, String::new())
        } else {
            ("published", published, String::new())
        },
    ];
    for (reason, n) in by_reason(&|f| match f {
        Fate::Skipped(r) => Some(r.clone()),
        _ => None,
    }) {
        summary.push(("skipped", n, reason));
    }
    if skipped == 0 {
        summary.push(("skipped", 0, String::new()));
    }
    let failures = by_reason(&|f| match f {
        Fate::Failed { code, .. } => Some(code.clone()),
        _ => None,
    });
    if failures.is_empty() {
        summary.push(("failed to publish", 0, String::new()));
    }
    for (code, n) in failures {
        summary.push(("failed to publish", n, code));
    }
    for (reason, n) in by_reason(&|f| match f {
        Fate::NotPublished(r) => Some(r.clone()),
        _ => None,
    }) {
        summary.push(("not published", n, reason));
    }

    if ctx.json {
        let accounts: Vec<Value> = lines
            .iter()
            .map(|l| {
                let steps: Map<String, Value> = l
                    .steps
                    .iter()
                    .map(|(k, s)| {
                        (
                            k.step.clone(),
                            s.map_or(Value::Null, |s| Value::String(s.to_string())),
                        )
                    })
                    .collect();
                let detail = l
                    .prepared
                    .as_ref()
                    .and_then(|p| serde_json::from_str::<Value>(&p.detail).ok());
                json!({
                    "accountId": l.account.id,
                    "name": l.account.name,
                    "state": l.account.state,
                    "parentId": l.account.parent,
                    "outcome": l.outcome(dry).0,
                    "reason": l.reason(),
                    "eventId": match &l.fate { Fate::Published { event_id } => Some(event_id), _ => None },
                    "provider": l.provider,
                    "steps": steps,
                    "note": l.note,
                    "detail": if matches!(l.fate, Fate::Publish | Fate::Published { .. } | Fate::Failed { .. }) { detail } else { None },
                })
            })
            .collect();
        let reasons: Vec<Value> = summary
            .iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(label, n, reason)| {
                json!({ "outcome": label, "reason": (!reason.is_empty()).then_some(reason), "accounts": n })
            })
            .collect();
        let doc = json!({
            "dryRun": dry,
            "bus": ctx.bus,
            "table": ctx.table().ok(),
            "organization": {
                "id": listing.organization_id,
                "managementAccountId": listing.management_account,
            },
            "scope": {
                "ou": opts.ou,
                "includeNested": opts.include_nested,
                "exclude": opts.exclude,
            },
            "stateFile": opts.state.display().to_string(),
            "force": opts.force,
            "rate": opts.rate,
            "timings": {
                "organizationsMs": ms(t.list),
                "ledgerMs": ms(t.read),
                "ledgerCalls": t.ledger_calls,
                "planMs": ms(t.plan),
                "publishMs": ms(t.publish),
            },
            "summary": {
                "listed": lines.len(),
                "ready": ready,
                "published": published,
                "wouldPublish": would,
                "skipped": skipped,
                "failed": failed,
                "notPublished": not_published,
                "byReason": reasons,
            },
            "unusedMappings": unused,
            "accounts": accounts,
        });
        println!("{}", pretty(&doc));
        return;
    }

    let mut out = String::new();
    out.push_str(&format!(
        "\n{}Backfill of organization {} ({}), management account {} (never onboarded), into bus {} and ledger {}\n\n",
        if dry { "Dry run: " } else { "" },
        listing.organization_id,
        match &opts.ou {
            Some(ou) if opts.include_nested => format!("{ou} and the OUs under it"),
            Some(ou) => format!("{ou}, without nested OUs"),
            None => "every account".to_owned(),
        },
        listing.management_account,
        ctx.bus,
        ctx.table().unwrap_or("?"),
    ));
    let mut table = Table::new(&["ACCOUNT", "NAME", "PROVIDER", "RESULT"]);
    for l in lines {
        let (_, label) = l.outcome(dry);
        let mut result = label.to_owned();
        match &l.fate {
            Fate::Published { event_id } => result.push_str(&format!(" (event id {event_id})")),
            _ => {
                if let Some(reason) = l.reason() {
                    result.push_str(&format!(": {}", shorten(&reason, 120)));
                }
            }
        }
        if let Some(note) = &l.note {
            result.push_str(&format!(" [{}]", shorten(note, 80)));
        }
        table.row(vec![
            l.account.id.clone(),
            shorten(l.account.name.as_deref().unwrap_or("-"), 40),
            l.provider.clone().unwrap_or_else(|| "-".into()),
            result,
        ]);
    }
    if table.is_empty() {
        out.push_str("(no accounts)\n");
    } else {
        out.push_str(&table.render());
    }
    out.push_str("\nSummary:\n");
    let mut sum = Table::new(&["OUTCOME", "ACCOUNTS", "REASON"]);
    for (label, n, reason) in &summary {
        sum.row(vec![(*label).to_owned(), n.to_string(), reason.clone()]);
    }
    out.push_str(&sum.render());
    if !unused.is_empty() {
        out.push_str(&format!(
            "\nNot used: mapping entries for accounts not listed here: {}\n",
            unused.join(", ")
        ));
    }
    out.push_str(&format!(
        "\nPlanned in {:.2} s (Organizations {:.2} s, ledger {:.2} s in {} call(s)){}.\n",
        t.plan.as_secs_f64(),
        t.list.as_secs_f64(),
        t.read.as_secs_f64(),
        t.ledger_calls,
        if dry || published + failed == 0 {
            String::new()
        } else {
            format!(
                "; published {published} at up to {}/s in {:.1} s",
                opts.rate,
                t.publish.as_secs_f64()
            )
        }
    ));
    if dry {
        out.push_str(&format!(
            "Dry run: {would} request(s) would be published to bus {}; nothing was sent and the state file was not written.\n",
            ctx.bus
        ));
    } else if published > 0 {
        out.push_str(&format!(
            "Published {published} request(s), recorded in {}. Follow them with `onboarding list` and `onboarding status ACCOUNT`.\n",
            opts.state.display()
        ));
    }
    print!("{out}");
}
