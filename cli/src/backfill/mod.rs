//! `backfill`: bring an existing organization on board. Lists the organization's accounts
//! (AWS Organizations), reads which of them the ledger already has (BatchGetItem), and
//! publishes an onboarding request for each account that has none yet, at a bounded rate,
//! recording what it published in a local state file so that a second run (or a run after
//! Ctrl-C) publishes nothing twice.
//!
//! The run, in order: [`options`] (what the command line asks), [`portals`] (the mapping
//! file, checked first), [`state`] (the state file), [`organizations`] (the listing),
//! [`plan`] (each account's request, steps and fate, with the ledger's statuses), [`send`]
//! (publishing at a bounded rate), [`progress`] and [`report`].

mod options;
mod organizations;
mod plan;
mod portals;
mod progress;
mod report;
mod send;
mod state;

use std::collections::BTreeMap;
use std::time::Instant;

pub use options::{parse_parent, parse_rate, Options, DEFAULT_STATE_FILE};

use crate::context::Context;
use crate::failure::{Failure, Outcome};
use organizations::{list_organization, organizations_config};
use plan::Fate;
use portals::load_portals;
use progress::Progress;
use report::{report, Timings};
use state::State;

pub async fn backfill(ctx: &Context, opts: Options) -> Outcome {
    let started = Instant::now();
    let table = ctx.table()?.to_owned();
    let region = ctx.config.region().map(|r| r.to_string());
    let state_name = opts.state.display().to_string();
    // Everything that can be checked locally is checked before any AWS call.
    let portals = match &opts.portals {
        Some(path) => load_portals(path, ctx)?,
        None => BTreeMap::new(),
    };
    let mut state = State::load(&opts.state, &table, &ctx.bus, region.as_deref())?;
    if !opts.dry_run {
        // An unwritable state file must stop the run before anything is published.
        state.save(&opts.state).map_err(|e| {
            Failure::usage(format!("cannot write the state file {state_name}: {e}"))
                .hint("pass --state FILE in a directory this user can write")
        })?;
    }

    let progress = Progress::new(ctx.json);
    let org_config = organizations_config(ctx, opts.organizations_profile.as_deref()).await;
    let organizations = aws_sdk_organizations::Client::new(&org_config);
    let listed_at = Instant::now();
    let listing = list_organization(
        &organizations,
        opts.ou.as_deref(),
        opts.include_nested,
        &progress,
    )
    .await;
    let listing = progress.finish_on_error(listing)?;
    let list_time = listed_at.elapsed();
    progress.line(&format!(
        "Listed {} account(s) of organization {} in {:.2} s ({} Organizations call(s){})",
        listing.accounts.len(),
        listing.organization_id,
        list_time.as_secs_f64(),
        listing.calls,
        if opts.ou.is_some() {
            format!(", {} OU(s)", listing.parents)
        } else {
            String::new()
        }
    ));

    let candidates = plan::candidates(ctx, &listing, &portals, &opts.exclude);
    let mut lines = progress.finish_on_error(candidates)?;

    let read_at = Instant::now();
    let keys: Vec<_> = lines
        .iter()
        .flat_map(|l| l.steps.iter().map(|(k, _)| k.clone()))
        .collect();
    let read = ctx
        .ledger()?
        .statuses(&keys, |done, total| progress.reading(done, total))
        .await
        .map_err(|e| ctx.ledger_failure(e));
    let read = progress.finish_on_error(read)?;
    let read_time = read_at.elapsed();
    progress.line(&format!(
        "Read {} ledger step(s) of {} candidate account(s) in {:.2} s ({} BatchGetItem call(s))",
        keys.len(),
        lines.iter().filter(|l| l.prepared.is_some()).count(),
        read_time.as_secs_f64(),
        read.calls
    ));
    plan::settle(
        &mut lines,
        &read.steps,
        &state.published,
        opts.force,
        &state_name,
    );
    let plan_time = started.elapsed();
    let unused = plan::unused_mappings(&lines, &portals);

    let publish_at = Instant::now();
    let stopped = if opts.dry_run {
        progress.finish();
        None
    } else {
        send::publish(
            ctx,
            &mut lines,
            &mut state,
            &opts.state,
            opts.rate,
            &progress,
        )
        .await?
    };
    let publish_time = publish_at.elapsed();

    report(
        ctx,
        &opts,
        &listing,
        &lines,
        &unused,
        Timings {
            list: list_time,
            read: read_time,
            plan: plan_time,
            publish: publish_time,
            ledger_calls: read.calls,
        },
    );

    let failed = lines
        .iter()
        .filter(|l| matches!(l.fate, Fate::Failed { .. }))
        .count();
    let not_published = lines
        .iter()
        .filter(|l| matches!(l.fate, Fate::NotPublished(_)))
        .count();
    if let Some(why) = stopped.filter(|w| w.starts_with("interrupted")) {
        return Err(Failure::runtime(format!(
            "{why}: {not_published} request(s) were not published"
        ))
        .hint(format!(
            "run the same command again: the accounts published are recorded in {state_name} and skipped"
        )));
    }
    if failed > 0 || not_published > 0 {
        return Err(Failure::runtime(format!(
            "{failed} request(s) were not accepted by bus {}{}",
            ctx.bus,
            if not_published > 0 {
                format!(", {not_published} not sent")
            } else {
                String::new()
            }
        ))
        .hint(format!(
            "run the same command again: the accounts published are recorded in {state_name} and \
             skipped; check --bus / EVENT_BUS_NAME and the credentials' events:PutEvents if it \
             keeps failing"
        )));
    }
    Ok(())
}
