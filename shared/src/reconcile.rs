//! The reconciler: what no event will finish is finished on a schedule.
//!
//! Events are the fast path and they can run out (a message past its receives, an instance
//! slower than the queue's patience, an update whose holder crashed). Each run reads the
//! ledger's sparse `attention` index (never the table) and re-drives every step that is not
//! final and is due: `IN_PROGRESS` whose lease expired, `CREATED`, and `READY` steps with a
//! pending update (`UPDATING`), each once its `retry_after` has passed. The request is rebuilt
//! from the ledger ([`crate::rebuild`]; secrets are read by name again) and run through the
//! same [`Engine`], so a re-drive is as exactly-once as any delivery, concurrently with
//! deliveries. `FAILED` steps are final until an operator retries.
//!
//! Then it audits the `READY` steps whose minute of the day (from the step's key, in the
//! sparse `audit` index) fell since the previous run: each step once a day, the reads spread
//! over the day. Drift is recorded and announced; repair (opt-in) goes through the engine.
//! An audit that cannot assume the member role asks Organizations, once per account and run,
//! what the account is: closing, closed or gone, its steps are retired through the engine
//! (announced once, "Account Offboarded"); ACTIVE (or another state), its steps stay READY,
//! counted `not_audited` with the account and the error, and recorded on each step.
//!
//! A run stops before the deadline and leaves the rest to the next: the oldest attention
//! entries come first, and every step it touched moves to the back.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::clock::{epoch_ms, now_ms};

use futures::StreamExt;
use serde::Serialize;
use tracing::{info, warn};

use crate::engine::{Audit, AuditRun, Engine, Outcome};
use crate::error::{code, StepError};
use crate::events::{Departure, OffboardingRequest};
use crate::ledger::{Record, Status};
use crate::organizations::{AccountState, Organizations};
use crate::rebuild::request_of;
use crate::step::Step;
use crate::steps::{
    with_step, ApprovalIdentitySource, IdentityCenterInstance, Steps, WebIdentityProvider,
};
use crate::telemetry::Tally;

/// Work a run does not start this close to its deadline (a step's calls are bounded by it).
const STOP_BEFORE_DEADLINE: Duration = Duration::from_secs(30);
/// Steps re-driven or audited at the same time.
const CONCURRENCY: usize = 8;

#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// How often a run starts: the audit covers the minutes of the day since the last run.
    pub interval: Duration,
    /// Bring drifted resources back (a new generation for a deleted one, an update for a
    /// changed one), or only report them.
    pub repair_drift: bool,
    /// A step not final for longer than this is reported stuck (the grace window).
    pub stuck_after: Duration,
}

/// What one run did, step by step.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Steps in the attention index when the run read it.
    pub attention: usize,
    pub redriven: u32,
    /// Re-driven steps that ended (READY, updated, FAILED with a reason).
    pub finished: u32,
    /// Re-driven steps that still wait (retryable): the next run or delivery continues.
    pub waiting: u32,
    /// Not due yet (a live lease, a backoff that has not passed).
    pub not_due: u32,
    /// Not final for longer than the grace window.
    pub stuck: u32,
    pub failed: u32,
    pub audited: u32,
    /// READY steps due for their audit that could not be audited (refused, an ACTIVE
    /// account whose member role cannot be assumed): never counted as audited; why is
    /// recorded on the step and in its line.
    pub not_audited: u32,
    /// Steps retired because the audit could not reach their account and Organizations says
    /// it is closing, closed or no longer in the organization.
    pub retired: u32,
    pub drift: u32,
    pub repaired: u32,
    /// Steps the run could not rebuild a request for (their reason is in `steps`).
    pub skipped: u32,
    /// The run stopped before the deadline with work left for the next one.
    pub incomplete: bool,
    pub tally: Tally,
    pub steps: Vec<StepLine>,
}

/// One step the run looked at.
#[derive(Clone, Debug, Serialize)]
pub struct StepLine {
    pub key: String,
    pub status: String,
    pub action: &'static str,
    pub result: String,
}

impl Report {
    /// The run's metrics: its own and the outcomes of what it re-drove.
    pub fn metrics(&self) -> Vec<(&'static str, u32)> {
        let mut metrics = self.tally.metrics();
        metrics.extend([
            ("StepsRedriven", self.redriven),
            ("StepsStuck", self.stuck),
            ("DriftDetected", self.drift),
            ("StepsAudited", self.audited),
            ("StepsNotAudited", self.not_audited),
        ]);
        metrics
    }

    fn line(&mut self, record: &Record, action: &'static str, result: impl Into<String>) {
        self.steps.push(StepLine {
            key: record.key.to_string(),
            status: record.status.to_string(),
            action,
            result: result.into(),
        });
    }
}

pub struct Reconciler {
    engine: Engine,
    steps: Steps,
    /// Asked about an account whose member role refuses the audit (absent: not asked).
    organizations: Option<Organizations>,
    settings: ReconcileSettings,
}

impl Reconciler {
    pub fn new(
        engine: Engine,
        instance: IdentityCenterInstance,
        web: WebIdentityProvider,
        approval: Option<ApprovalIdentitySource>,
        settings: ReconcileSettings,
    ) -> Self {
        Self {
            engine,
            steps: Steps {
                instance,
                web,
                approval,
            },
            organizations: None,
            settings,
        }
    }

    /// Asks Organizations about accounts whose member role refuses the audit.
    pub fn with_organizations(mut self, organizations: Organizations) -> Self {
        self.organizations = Some(organizations);
        self
    }

    /// One run: re-drive what is due, then audit this interval's slice of READY steps.
    /// `dry_run` reads and reports what it would do, and writes and calls nothing.
    pub async fn run(
        &self,
        deadline: Option<SystemTime>,
        dry_run: bool,
    ) -> Result<Report, StepError> {
        let mut report = Report::default();
        let now = SystemTime::now();
        let now_ms = epoch_ms(now);
        let ledger = self.engine.ledger();
        let mut due = Vec::new();
        for partition in ["IN_PROGRESS", "CREATED", "UPDATING", "FAILED", "RETIRED"] {
            for record in ledger.attention(partition).await? {
                report.attention += 1;
                if self.is_stuck(&record, now) {
                    report.stuck += 1;
                }
                match record.status {
                    // A departure mark whose writer died before marking it: it is announced
                    // to nobody, only marked.
                    Status::Retired
                        if !record.announced
                            && crate::steps::Known::is_departure_mark(&record.key) =>
                    {
                        if !dry_run {
                            ledger
                                .mark_retirement_announced(&record.key, record.generation)
                                .await?;
                        }
                    }
                    // Recorded, not yet announced (its writer died, or its PutEvents failed):
                    // re-driven, which announces it and nothing more.
                    Status::Failed | Status::Retired if !record.announced => {
                        if record.status == Status::Failed {
                            report.failed += 1;
                        }
                        due.push(record)
                    }
                    Status::Failed => report.failed += 1,
                    // Announced (the index lagging the write): nothing to do.
                    Status::Retired => {}
                    _ if is_due(&record, now_ms) => due.push(record),
                    _ => {
                        report.not_due += 1;
                        report.line(&record, "wait", "not due (a live lease or a backoff)");
                    }
                }
            }
        }
        // Several steps at a time: each waits mostly on its services.
        let redrives = futures::stream::iter(due)
            .map(|record| async move {
                if out_of_time(deadline) {
                    return (record, None);
                }
                let result = if dry_run {
                    None
                } else {
                    Some(self.redrive(&record, deadline).await)
                };
                (record, Some(result))
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (record, result) in redrives {
            match result {
                None => report.incomplete = true,
                Some(None) => report.line(&record, "re-drive", "would re-drive"),
                Some(Some(Ok(outcome))) => {
                    report.redriven += 1;
                    report.finished += 1;
                    report.tally.add(outcome.tally());
                    report.line(&record, "re-drive", format!("{outcome:?}"));
                }
                Some(Some(Err(e))) if e.code() == code::NOT_REBUILDABLE => {
                    report.skipped += 1;
                    report.line(&record, "skip", e.to_string());
                }
                Some(Some(Err(e))) => {
                    report.redriven += 1;
                    report.waiting += 1;
                    report.tally.retries += 1;
                    report.line(&record, "re-drive", format!("still waiting: {e}"));
                }
            }
        }
        let mut slice = Vec::new();
        for (hour, from, to) in audit_ranges(now, self.settings.interval) {
            slice.extend(ledger.audit_slots(hour, from, to).await?);
        }
        let audits = futures::stream::iter(slice)
            .map(|record| async move {
                if out_of_time(deadline) {
                    return (record, None);
                }
                let result = if dry_run {
                    None
                } else {
                    Some(self.audit(&record, deadline).await)
                };
                (record, Some(result))
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        // Steps whose account's member role could not be assumed, by account.
        let mut unreachable: BTreeMap<String, Vec<(Record, StepError)>> = BTreeMap::new();
        for (record, result) in audits {
            match result {
                None => report.incomplete = true,
                Some(None) => report.line(&record, "audit", "would audit"),
                Some(Some(Ok(Audit::Clean))) => {
                    report.audited += 1;
                    report.line(&record, "audit", "clean");
                }
                Some(Some(Ok(Audit::Deferred))) => {
                    report.line(&record, "audit", "deferred: an update is in flight");
                }
                Some(Some(Ok(Audit::Drift {
                    gone,
                    changed,
                    repaired,
                }))) => {
                    report.audited += 1;
                    report.drift += 1;
                    if repaired.is_some() {
                        report.repaired += 1;
                    }
                    report.line(
                        &record,
                        "audit",
                        format!("drift: gone {gone}, changed {changed:?}, repair {repaired:?}"),
                    );
                }
                Some(Some(Err(e))) => match record.key.account_id() {
                    Some(account) if e.code() == code::MEMBER_ROLE_UNAVAILABLE => unreachable
                        .entry(account.to_owned())
                        .or_default()
                        .push((record, e)),
                    _ => {
                        report.not_audited += 1;
                        report.line(&record, "audit", format!("not audited: {e}"));
                    }
                },
            }
        }
        for (account, steps) in unreachable {
            self.unreachable(&account, steps, &mut report).await;
        }
        info!(
            attention = report.attention,
            redriven = report.redriven,
            finished = report.finished,
            waiting = report.waiting,
            stuck = report.stuck,
            audited = report.audited,
            not_audited = report.not_audited,
            retired = report.retired,
            drift = report.drift,
            incomplete = report.incomplete,
            "reconciler run"
        );
        Ok(report)
    }

    /// The audit of `steps` could not assume the member role of `account`: one
    /// `DescribeAccount`. Closing, closed or gone: the account's steps are retired through
    /// the engine (every step of the account, as a closure event would, each announced once).
    /// Otherwise each step is counted not audited, with the account's state and the error,
    /// and the finding is recorded on the step for `onboarding status`.
    async fn unreachable(
        &self,
        account: &str,
        steps: Vec<(Record, StepError)>,
        report: &mut Report,
    ) {
        let state = match &self.organizations {
            None => Err("Organizations was not asked (not configured)".to_owned()),
            Some(organizations) => organizations
                .account_state(account)
                .await
                .map_err(|e| format!("Organizations could not say (DescribeAccount: {e})")),
        };
        let state = match state {
            Ok(AccountState::Gone { state }) => match self.retire(account, &state).await {
                Ok(retired) => {
                    report.retired += retired;
                    report.tally.retired += retired;
                    for (record, _) in &steps {
                        report.line(
                            record,
                            "retire",
                            format!(
                                "account {account} cannot be reached and Organizations says it \
                                 is {state}: its steps are retired"
                            ),
                        );
                    }
                    return;
                }
                Err(e) => format!("{state}, but retiring its steps failed: {e}"),
            },
            Ok(AccountState::Active) => "ACTIVE".to_owned(),
            Ok(AccountState::Other(state)) => state,
            Err(why) => why,
        };
        warn!(account, state = %state, steps = steps.len(), "member role cannot be assumed");
        for (record, e) in steps {
            report.not_audited += 1;
            report.line(
                &record,
                "audit",
                format!(
                    "not audited: account {account} cannot be reached (Organizations: \
                     {state}): {e}"
                ),
            );
            let finding = serde_json::json!({
                "code": e.code(),
                "message": e.reason().message,
                "accountState": state,
            });
            let known = record
                .drift
                .as_ref()
                .is_some_and(|d| d.get("unreachable") == Some(&finding));
            if !known {
                let stored = serde_json::json!({ "unreachable": finding, "at": now_ms() });
                if let Err(e) = self
                    .engine
                    .ledger()
                    .record_audit(&record, Some((&stored.to_string(), None)))
                    .await
                {
                    warn!(key = %record.key, error = %e, "the unreachable account was not recorded");
                }
            }
        }
    }

    /// Retires every step of `account` (Organizations says it is `state`), as the step
    /// functions do for a closure event; returns how many steps were retired.
    async fn retire(&self, account: &str, state: &str) -> Result<u32, StepError> {
        let now = SystemTime::now();
        let request = OffboardingRequest {
            event_id: format!("reconciler-{account}-{}", epoch_ms(now)),
            departure: Departure::Found {
                state: state.to_owned(),
            },
            replay_name: None,
            time: aws_smithy_types::DateTime::from(now)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .ok(),
            account_id: account.to_owned(),
        };
        let mut retired = 0;
        for outcome in [
            self.engine.retire(&self.steps.instance, &request).await?,
            self.engine.retire(&self.steps.web, &request).await?,
        ] {
            if let Outcome::Offboarded { retired: keys, .. } = &outcome {
                retired += keys.len() as u32;
            }
        }
        Ok(retired)
    }

    fn is_stuck(&self, record: &Record, now: SystemTime) -> bool {
        // From the first attempt of the pending work, which no retry or release restarts.
        let since = match record.status {
            Status::InProgress => record.first_attempt_at,
            // When it became CREATED: nothing writes `updated_at` while it stays CREATED.
            Status::Created => record.updated_at,
            // A pending update (a READY step is in the index only then): its first claim; an
            // update pending from before that attribute existed, its last write.
            Status::Ready => record.update_first_attempt_at.or(record.updated_at),
            Status::Failed | Status::Retired => return false,
        };
        since.is_some_and(|ms| {
            now.duration_since(crate::clock::from_epoch_ms(ms))
                .is_ok_and(|age| age > self.settings.stuck_after)
        })
    }

    async fn redrive(
        &self,
        record: &Record,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, StepError> {
        with_step!(
            self.steps,
            &record.key,
            step => self.redrive_with(step, record, deadline).await,
            Err(unknown_step(record))
        )
    }

    async fn redrive_with<S: Step>(
        &self,
        step: Option<&S>,
        record: &Record,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, StepError> {
        if record.status == Status::Retired {
            return self.engine.announce_retirement::<S>(record.clone()).await;
        }
        let step = step.ok_or_else(|| {
            not_rebuildable("the organization instance is not configured (ORG_INSTANCE_ARN)")
        })?;
        // A READY step (read again: the index may lag) is carried on, asking nothing; any
        // other is claimed with the request its generation records.
        let now = match record.status {
            Status::Ready => self.engine.ledger().get_step(&record.key).await?,
            _ => None,
        };
        let record = now.as_ref().unwrap_or(record);
        let request = request_of::<S>(record).map_err(not_rebuildable)?;
        if record.status == Status::Ready {
            return self
                .engine
                .resume(step, &request, record.clone(), deadline)
                .await;
        }
        self.engine.run(step, &request, deadline).await
    }

    async fn audit(
        &self,
        record: &Record,
        deadline: Option<SystemTime>,
    ) -> Result<Audit, StepError> {
        with_step!(
            self.steps,
            &record.key,
            step => self.audit_with(step, record, deadline).await,
            Err(unknown_step(record))
        )
    }

    async fn audit_with<S: Step>(
        &self,
        step: Option<&S>,
        record: &Record,
        deadline: Option<SystemTime>,
    ) -> Result<Audit, StepError> {
        let request = request_of::<S>(record).map_err(not_rebuildable)?;
        // The organization's step where it is not configured: nothing to audit it with.
        let Some(step) = step else {
            return Ok(Audit::Clean);
        };
        let run = AuditRun {
            repair: self.settings.repair_drift,
            deadline,
        };
        self.engine.audit(step, &request, record.clone(), run).await
    }
}

/// A step whose request cannot be rebuilt: skipped, never retried.
fn not_rebuildable(why: impl Into<String>) -> StepError {
    StepError::permanent(code::NOT_REBUILDABLE, why)
}

fn unknown_step(record: &Record) -> StepError {
    not_rebuildable(format!("{} is not a step this version knows", record.key))
}

/// Whether a step that is not final should be re-driven now.
fn is_due(record: &Record, now_ms: u64) -> bool {
    let backoff_over = record.retry_after.is_none_or(|t| t <= now_ms);
    let lease_over = match record.status {
        Status::InProgress => record.lease_expires_at.is_none_or(|t| t <= now_ms),
        Status::Ready => record.update_lease_expires_at.is_none_or(|t| t <= now_ms),
        _ => true,
    };
    backoff_over && lease_over
}

fn out_of_time(deadline: Option<SystemTime>) -> bool {
    deadline.is_some_and(|d| SystemTime::now() + STOP_BEFORE_DEADLINE > d)
}

/// The minutes of the day since the previous run, `(now - interval, now]`, as (hour, first
/// minute, last minute) ranges within single hours (the audit index is partitioned by hour).
pub fn audit_ranges(now: SystemTime, interval: Duration) -> Vec<(u32, u32, u32)> {
    let minutes_now = (epoch_ms(now) / 60_000) as i64;
    let span = (interval.as_secs() / 60).clamp(1, 1440) as i64;
    let mut ranges: Vec<(u32, u32, u32)> = Vec::new();
    for m in (minutes_now - span + 1)..=minutes_now {
        let minute = m.rem_euclid(1440) as u32;
        let hour = minute / 60;
        match ranges.last_mut() {
            Some((h, _, to)) if *h == hour && *to + 1 == minute => *to = minute,
            _ => ranges.push((hour, minute, minute)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_of_a_run_is_one_the_template_may_name() {
        // tests/tools/template_drift.py reads the names from telemetry.rs.
        let tally: Vec<&str> = Tally::default().metrics().iter().map(|m| m.0).collect();
        for (name, _) in Report::default().metrics() {
            assert!(
                tally.contains(&name) || crate::telemetry::RECONCILER_METRICS.contains(&name),
                "{name} is emitted but not listed in telemetry.rs"
            );
        }
    }

    #[test]
    fn audit_ranges_cover_the_interval_within_hours() {
        // 2026-11-30T10:07:30Z: the 15 minutes up to 10:07 span two hours.
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_796_033_250);
        let ranges = audit_ranges(now, Duration::from_secs(900));
        let minutes: u32 = ranges.iter().map(|(_, from, to)| to - from + 1).sum();
        assert_eq!(minutes, 15);
        for (hour, from, to) in &ranges {
            assert_eq!(from / 60, *hour);
            assert_eq!(to / 60, *hour);
        }
        // Across midnight.
        let midnight = std::time::UNIX_EPOCH + Duration::from_secs(1_796_083_260); // 00:01
        let ranges = audit_ranges(midnight, Duration::from_secs(300));
        assert_eq!(ranges.iter().map(|(_, f, t)| t - f + 1).sum::<u32>(), 5);
        assert!(ranges.iter().any(|(h, _, _)| *h == 23));
        assert!(ranges.iter().any(|(h, _, _)| *h == 0));
    }
}
