//! `onboarding sweep`: the reconciler's run, from an operator's machine: re-drive every step
//! that is due, audit today's READY steps for drift, print what was (or would be) done.

use onboarding::lambda::{self, Init};
use onboarding::settings::Settings;
use serde_json::json;

use crate::context::Context;
use crate::failure::{Failure, Outcome};
use crate::table::Table;

pub async fn sweep(ctx: &Context, dry_run: bool, repair: bool) -> Outcome {
    let table = ctx.table()?.to_owned();
    let settings = Settings::from_lookup(|name| match name {
        "LEDGER_TABLE" => Some(table.clone()),
        "EVENT_BUS_NAME" => Some(ctx.bus.clone()),
        "EVENT_SOURCE" => Some(ctx.accept.source.clone()),
        "REQUEST_DETAIL_TYPE" => Some(ctx.accept.detail_type.clone()),
        "ORG_INSTANCE_ARN" => ctx.org_instance_arn.clone(),
        // A sweep by hand audits every READY step, whatever the time of day.
        "RECONCILE_INTERVAL_MINUTES" => Some("1440".into()),
        "REPAIR_DRIFT" => Some(repair.to_string()),
        other => std::env::var(other).ok(),
    })
    .map_err(Failure::usage)?;
    let engine = lambda::engine(&ctx.config, &settings);
    let reconciler = Init {
        config: ctx.config.clone(),
        settings,
        engine,
    }
    .reconciler()
    .map_err(Failure::usage)?;
    let report = reconciler
        .run(None, dry_run)
        .await
        .map_err(|e| Failure::runtime(format!("the sweep could not read the ledger: {e}")))?;
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "dryRun": dry_run, "report": report }))
                .unwrap_or_default()
        );
        return Ok(());
    }
    let mut t = Table::new(&["STEP", "STATUS", "ACTION", "RESULT"]);
    for line in &report.steps {
        t.row(vec![
            line.key.clone(),
            line.status.clone(),
            line.action.to_string(),
            line.result.clone(),
        ]);
    }
    if !t.is_empty() {
        print!("{}", t.render());
    }
    println!(
        "{}{} in the attention index: {} re-driven ({} finished, {} still waiting), {} not due, \
         {} stuck past the grace window, {} FAILED (see `onboarding list --status FAILED`); \
         {} READY steps audited, {} with drift, {} repaired, {} not audited (see the lines \
         above); {} steps retired (their account closing, closed or gone, per Organizations){}.",
        if dry_run { "Dry run: " } else { "" },
        report.attention,
        report.redriven,
        report.finished,
        report.waiting,
        report.not_due,
        report.stuck,
        report.failed,
        report.audited,
        report.drift,
        report.repaired,
        report.not_audited,
        report.retired,
        if report.incomplete {
            " (stopped early: run it again)"
        } else {
            ""
        },
    );
    Ok(())
}
