//! `make demo`: the onboarding, locally, with the real function binaries.
//!
//! Starts moto and the identity emulator (seeded from tests/local/organization.json) on free
//! 127.0.0.1 ports, builds the three functions, serves each through the Lambda Runtime API
//! (one `cargo lambda watch` per function, each signing as its role of template.yaml, held by
//! the emulator to that role's shipped policy) and delivers every file of `events/` to each function as
//! EventBridge or SQS would (`cargo lambda invoke --data-file`), then all of them again.
//! Ends with the ledger per account and step and the counters that show each resource was
//! created exactly once, and what IAM allowed each role; stops everything it started. Exit
//! status 0 only if every reply is the one events/README.md documents, nothing was created
//! twice and no call was denied.
//!
//!     cargo run -p integration-tests --bin demo [-- --keep]
//!
//! `--keep`: leave everything running after the report, for invoking the functions by hand,
//! until Ctrl-C.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use integration_tests::local::deliver::{Delivery, MAX_RECEIVE_COUNT};
use integration_tests::local::expected::expected;
use integration_tests::local::progress::{seconds, Progress};
use integration_tests::local::report::{self, Resources};
use integration_tests::local::session::{Options, Session, START_STEPS};
use integration_tests::local::{event_files, repo_root, role, verify, FUNCTIONS};
use serde_json::Value;

/// With --keep: how the finished run went, while it waits for Ctrl-C.
static KEPT: AtomicU8 = AtomicU8::new(0);
const KEPT_PASSED: u8 = 1;
const KEPT_FAILED: u8 = 2;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    println!(
        "identity-onboarding demo: the three Lambda functions, built from this checkout and run \
         through the\nLambda Runtime API (cargo lambda watch), against moto and the identity \
         emulator on 127.0.0.1;\neach function signs as its role and is held to the IAM policy \
         template.yaml gives it.\nNo AWS account, no Docker; nothing leaves this machine.\n"
    );
    let keep = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--keep") => true,
        Some(other) => {
            eprintln!("usage: demo [--keep]   (unknown argument {other:?})");
            return ExitCode::from(2);
        }
    };
    let outcome = tokio::select! {
        outcome = run(keep) => outcome,
        _ = tokio::signal::ctrl_c() => match KEPT.load(Ordering::SeqCst) {
            // --keep: the run had finished and was only waiting for this.
            KEPT_PASSED => Ok(true),
            KEPT_FAILED => Ok(false),
            _ => Err("interrupted".to_string()),
        },
    };
    // `run`'s future (and with it the session) is dropped here: watch and the functions are
    // stopped; moto stops when this process exits.
    match outcome {
        Ok(true) => {
            println!("\nStopped the watches, the functions, the emulator and moto. Demo passed.");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("\nStopped everything. Demo FAILED: see the problems above.");
            ExitCode::FAILURE
        }
        Err(why) => {
            eprintln!("\ndemo failed: {why}");
            eprintln!("(everything it started has been stopped)");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(true)`: all checks passed; `Ok(false)`: it ran, some checks failed.
async fn run(keep: bool) -> Result<bool, String> {
    let root = repo_root();
    // One directory per run: two demos at once (two terminals) never share a file.
    let runs = root.join(".local/demo");
    remove_finished_runs(&runs);
    let work_dir = runs.join(std::process::id().to_string());
    let mut progress = Progress::new(START_STEPS + 2);
    let mut session = Session::start(&mut progress, Options::new("demo", work_dir.clone())).await?;
    let files = event_files(&root)?;

    let step = progress.section(&format!(
        "delivering the {} files of events/ to the {} functions (round 1)",
        files.len(),
        FUNCTIONS.len()
    ));
    let mut printer = Printer::default();
    let first = session
        .deliver_all(&files, 1, |d| printer.delivery(d, 1))
        .await
        .map_err(step_fail)?;
    step.ok("");
    let after_first = session.stack.emulator.counters();

    let step = progress.section("redelivering every file (round 2: nothing may be created)");
    let second = session
        .deliver_all(&files, 2, |d| printer.delivery(d, 2))
        .await
        .map_err(step_fail)?;
    step.ok("");
    let now = session.stack.emulator.counters();

    // Read back.
    let items = session.stack.ledger_items().await?;
    let rows = report::ledger_rows(&items)?;
    let resources = Resources::from_state(&session.stack.emulator.state());
    let emitted = session.stack.emitted().await?;
    let observed = session.stack.emulator.observed();
    let roles: Vec<&str> = FUNCTIONS.iter().filter_map(|f| role(f)).collect();

    println!(
        "\nLedger ({}), one item per account and step:\n",
        session.stack.table
    );
    println!("{}", indent(&report::ledger_table(&rows)));

    println!(
        "\nIdempotency (deliveries vs create calls vs resources; from the emulator's counters):\n"
    );
    println!(
        "{}",
        indent(&report::idempotency_table(
            &[(&first, &after_first), (&second, &now)],
            &resources
        ))
    );

    println!("\nEvents the functions emitted on {}:", session.stack.bus);
    for (detail_type, about) in emitted_summary(&emitted) {
        println!("  {detail_type:<31} {}", about.join(", "));
    }

    println!("\nIAM (each function as its role, against the policies template.yaml ships):");
    let denials = session.stack.denials();
    if denials.is_empty() {
        println!("  every call was allowed");
    } else {
        for (principal, action) in &denials {
            println!("  DENIED {principal}: {action}");
        }
    }
    for (principal, actions) in verify::allowed_actions(&observed) {
        println!("  {principal:<28} {}", actions.join(", "));
    }

    // Checks.
    let log = session.function_log();
    let replies: String = first
        .iter()
        .chain(&second)
        .flat_map(|d| d.attempts.iter().map(|a| format!("{:?}\n", a.reply)))
        .collect();
    let ledger_text = format!("{items:?}");
    let emitted_text = serde_json::to_string(&emitted).unwrap_or_default();
    let mut problems = Vec::new();
    problems.extend(verify::replies(&first, 1));
    problems.extend(verify::replies(&second, 2));
    problems.extend(verify::ledger_settled(&rows));
    problems.extend(verify::offboarded_once(&rows, &emitted));
    problems.extend(verify::idempotent(&rows, &after_first, &now, &resources));
    problems.extend(verify::iam(&observed, &roles));
    problems.extend(verify::secret_absent(
        &session.stack.secret_value,
        &[
            ("the function logs", &log),
            ("the replies", &replies),
            ("the ledger", &ledger_text),
            ("the emitted events", &emitted_text),
        ],
    ));
    println!();
    if problems.is_empty() {
        println!(
            "Checks: every reply as events/README.md documents; {} ledger items, READY but \
             for the {} of the closed and departed accounts, RETIRED and announced once; \
             one create call per resource; round 2 created nothing; every call allowed by its \
             role's shipped policy; the OIDC client secret appears in no log, reply, ledger \
             item or event.",
            rows.len(),
            rows.iter().filter(|r| r.status == "RETIRED").count()
        );
    } else {
        println!("Problems:");
        for p in &problems {
            println!("  - {p}");
        }
    }
    println!("Logs: {}", work_dir.display());
    if keep {
        println!(
            "\nStill running, as --keep asked (Ctrl-C stops everything). Deliver any file yourself \
             (each function has its own watch):\n"
        );
        for watch in session.watches.iter() {
            println!(
                "  {} lambda invoke {} -A 127.0.0.1 -P {} --data-file events/onboarding-requested.json",
                session.tools.cargo_lambda.display(),
                watch.function,
                watch.port
            );
        }
        println!(
            "\nThe functions' environments: {}/<function>.env\nTheir logs: {}/<function>.log\n\
             moto: {}   identity emulator: {} (GET /_emulator/state, /_emulator/counters)",
            work_dir.display(),
            work_dir.display(),
            session.stack.moto_url,
            session.stack.emulator.url(),
        );
        KEPT.store(
            if problems.is_empty() {
                KEPT_PASSED
            } else {
                KEPT_FAILED
            },
            Ordering::SeqCst,
        );
        std::future::pending::<()>().await;
    }
    session.stop();
    Ok(problems.is_empty())
}

fn step_fail(e: String) -> String {
    println!("      FAILED");
    e
}

/// Prints deliveries one line per file: `file  kind  instance: ... | approval: ... | web: ...`,
/// the functions' results appended as they come; retries and mismatches on lines below.
#[derive(Default)]
struct Printer {
    /// (functions, note) for the file being printed.
    notes: Vec<(Vec<String>, String)>,
}

impl Printer {
    fn delivery(&mut self, d: &Delivery, round: u32) {
        let position = FUNCTIONS.iter().position(|f| *f == d.function).unwrap_or(0);
        if position == 0 {
            print!(
                "      {:<46}{:<7}",
                d.file,
                if d.sqs { "SQS" } else { "direct" }
            );
        } else {
            print!(" | ");
        }
        let first = &d.attempts[0];
        print!(
            "{}: {}",
            short(&d.function),
            abbreviated(&first.reply.summary())
        );
        if first.elapsed >= Duration::from_secs(1) {
            print!(" ({})", seconds(first.elapsed));
        }
        let _ = std::io::stdout().flush();
        if d.invocations() > 1 {
            let mut note = format!(
                "{} {} more time{}",
                if d.sqs { "redelivered" } else { "retried" },
                d.invocations() - 1,
                if d.invocations() == 2 { "" } else { "s" }
            );
            if !d.dead_lettered.is_empty() {
                note.push_str(&format!(
                    ", then {} moved to the dead-letter queue ({MAX_RECEIVE_COUNT} receives)",
                    d.dead_lettered.join(", ")
                ));
            }
            if let Some(e) = &d.gave_up {
                note.push_str(&format!("; still failing: {e}"));
            }
            self.note(&d.function, note);
        }
        if let Err(why) = expected(&d.file, &d.function, round).check(&first.reply) {
            self.note(
                &d.function,
                format!("MISMATCH with events/README.md: {why}"),
            );
        }
        if position + 1 == FUNCTIONS.len() {
            println!();
            for (functions, note) in self.notes.drain(..) {
                println!("        - {}: {note}", functions.join(", "));
            }
        }
    }

    /// Notes identical for several functions are printed once, naming them all.
    fn note(&mut self, function: &str, note: String) {
        match self.notes.iter_mut().find(|(_, n)| *n == note) {
            Some((functions, _)) => functions.push(short(function).to_string()),
            None => self.notes.push((vec![short(function).to_string()], note)),
        }
    }
}

/// Message ids (UUIDs) shortened to `b2c3d4e5…5d02` to keep a file on one line.
fn abbreviated(text: &str) -> String {
    text.split_inclusive(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .map(|part| {
            let (word, tail) = match part.char_indices().last() {
                Some((i, c)) if !(c.is_ascii_hexdigit() || c == '-') => part.split_at(i),
                _ => (part, ""),
            };
            if word.len() == 36 && word.matches('-').count() == 4 {
                format!("{}…{}{tail}", &word[..8], &word[32..])
            } else {
                part.to_string()
            }
        })
        .collect()
}

/// Removes the directories of earlier runs whose process has ended.
fn remove_finished_runs(runs: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let running = std::process::Command::new("kill")
            .args(["-s", "0", "--", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !running {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `instance`, `approval`, `web`.
fn short(function: &str) -> &str {
    match function {
        "identity-center-instance" => "instance",
        "approval-identity-source" => "approval",
        "web-identity-provider" => "web",
        other => other,
    }
}

/// Emitted events per detail-type: what each is about (an account, the organization, or a
/// rejected event), with a count when several are about the same thing.
fn emitted_summary(events: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for event in events {
        let detail_type = event
            .get("detail-type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let detail = event.get("detail").cloned().unwrap_or(Value::Null);
        let step = detail.get("step").and_then(Value::as_str).unwrap_or("?");
        let about = match (detail.get("accountId").and_then(Value::as_str), step) {
            (Some(account), _) => account.to_string(),
            (None, "event") => format!(
                "rejected event ({})",
                detail
                    .pointer("/reason/code")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
            (None, _) => "organization".to_string(),
        };
        *counts
            .entry(detail_type)
            .or_default()
            .entry(about)
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(detail_type, abouts)| {
            let list = abouts
                .into_iter()
                .map(|(about, n)| {
                    if n > 1 {
                        format!("{about} x{n}")
                    } else {
                        about
                    }
                })
                .collect();
            (detail_type, list)
        })
        .collect()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
