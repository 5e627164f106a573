//! Publishing at a bounded rate: ten requests per PutEvents call, at most `--rate` a second,
//! every accepted one recorded in the state file after each batch; Ctrl-C stops after the
//! batch in flight.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onboarding::clock::now_ms;

use super::plan::{Fate, Line};
use super::progress::Progress;
use super::state::{PublishedEntry, State};
use crate::context::Context;
use crate::failure::{Failure, Outcome};
use crate::publish::{self, Prepared, Sent, MAX_ENTRIES_PER_CALL};
use crate::table::rfc3339_ms;

/// Publishes the lines whose fate is [`Fate::Publish`] to the bus, at most `rate` a second,
/// recording each accepted one in `state` (saved to `state_path` after every batch). Returns
/// why the run stopped early (Ctrl-C, a batch PutEvents refused whole), if it did; the lines
/// it left unsent are then [`Fate::NotPublished`] with that reason.
pub async fn publish(
    ctx: &Context,
    lines: &mut [Line],
    state: &mut State,
    state_path: &Path,
    rate: u32,
    progress: &Progress,
) -> Outcome<Option<String>> {
    let state_name = state_path.display().to_string();
    let interrupted = Arc::new(Interrupt::default());
    let mut stopped: Option<String> = None;
    let to_publish: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.fate == Fate::Publish)
        .map(|(i, _)| i)
        .collect();
    let publish_at = Instant::now();
    if to_publish.is_empty() {
        progress.finish();
        return Ok(None);
    }
    watch_interrupt(interrupted.clone());
    let events = ctx.events();
    let per_call = MAX_ENTRIES_PER_CALL.min(rate as usize).max(1);
    let rate = f64::from(rate);
    let total = to_publish.len();
    let mut sent = 0usize;
    let mut failed = 0usize;
    progress.start_publishing(total);
    for batch in to_publish.chunks(per_call) {
        // At most `rate` events per second, counted from the first batch; Ctrl-C ends
        // the wait at once.
        let due = publish_at + Duration::from_secs_f64((sent + failed) as f64 / rate);
        tokio::select! {
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {}
            () = interrupted.wake.notified() => {}
        }
        if interrupted.flag.load(Ordering::SeqCst) {
            stopped = Some("interrupted (Ctrl-C)".to_owned());
            break;
        }
        let prepared: Vec<Prepared> = batch
            .iter()
            .filter_map(|&i| lines[i].prepared.clone())
            .collect();
        let results = publish::put_events(&events, &ctx.bus, &prepared).await;
        let at = rfc3339_ms(now_ms());
        let mut batch_failed = 0;
        for (&i, result) in batch.iter().zip(results) {
            let line = &mut lines[i];
            match result {
                Sent::Accepted { event_id } => {
                    state.published.insert(
                        line.account.id.clone(),
                        PublishedEntry {
                            at: at.clone(),
                            event_id: event_id.clone(),
                            provider: line.provider.clone(),
                        },
                    );
                    line.fate = Fate::Published { event_id };
                    sent += 1;
                }
                Sent::Failed { code, message } => {
                    line.fate = Fate::Failed { code, message };
                    batch_failed += 1;
                    failed += 1;
                }
            }
        }
        // Recorded after every batch: after Ctrl-C or a crash, a new run skips these.
        if let Err(e) = state.save(state_path) {
            progress.finish();
            return Err(Failure::runtime(format!(
                "published {sent} request(s), but the state file {state_name} cannot be written: {e}"
            ))
            .hint("the requests published are not recorded: before running it again, check `onboarding status` of the accounts of this batch, or pass --exclude for them"));
        }
        let last = batch
            .last()
            .map(|&i| lines[i].account.id.clone())
            .unwrap_or_default();
        progress.published(sent + failed, total, failed, &last);
        if batch_failed == batch.len() {
            stopped = Some(
                "not published: the run stopped after a batch that PutEvents refused whole"
                    .to_owned(),
            );
            break;
        }
    }
    progress.finish();
    if let Some(why) = &stopped {
        for line in lines.iter_mut().filter(|l| l.fate == Fate::Publish) {
            line.fate = Fate::NotPublished(why.clone());
        }
    }
    Ok(stopped)
}

/// Ctrl-C, as the publishing loop sees it.
#[derive(Default)]
struct Interrupt {
    flag: AtomicBool,
    wake: tokio::sync::Notify,
}

/// The first Ctrl-C stops the run after the batch in flight (whose result is recorded); a
/// second one ends the process at once.
fn watch_interrupt(interrupt: Arc<Interrupt>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        interrupt.flag.store(true, Ordering::SeqCst);
        interrupt.wake.notify_one();
        eprintln!("\nstopping after the batch in flight (Ctrl-C again to quit at once)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}
