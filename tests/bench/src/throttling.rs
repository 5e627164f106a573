//! Recovery from a burst of throttled answers: the identity emulator throttles exactly the
//! next N calls of one operation (`AssumeRole` or `CreateInstance`), then one SQS record of
//! the identity-center-instance function is delivered through the real `Handler::handle`
//! (60 s deadline, the template's `Timeout`; engine settings as the template deploys them)
//! until its step is READY. Measured for several SDK retry configurations, among them the
//! one the functions use (`onboarding::aws::retries`).
//!
//! Each case runs in a fresh process (this binary with `--throttling-case`), as in a fresh
//! execution environment: the SDK keeps its adaptive rate limiter and its retry quota in
//! process-wide state, which would carry one case's throttles into the next.
//!
//! A delivery that ends with its record failed is delivered again after the delay the reply
//! asked for (`ChangeMessageVisibilityBatch`, here a recorder); a record failed without a
//! delay would come back after the queue's visibility timeout (360 s): it is delivered again
//! at once, and the row says so.
//!
//! Figures, not assertions: each row shows what the case did.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_config::retry::RetryConfig;
use futures::future::BoxFuture;
use identity_emulator::{FaultConfig, FaultRule};
use integration_tests::deliveries::{failed_ids, onboarding_requested, sqs_batch, Record};
use integration_tests::stack::Stack;
use onboarding::redelivery::{Delay, Redelivery};
use onboarding::settings::Settings;
use serde_json::{json, Value};

use crate::report::median;

/// The functions' `Timeout` (template.yaml).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);
/// The queues' `VisibilityTimeout` (template.yaml): when a record failed without a delay
/// would come back.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(360);
/// Deliveries of one case at most.
const MAX_DELIVERIES: u32 = 6;
const ACCOUNT: &str = "260000000001";

/// An SDK retry configuration under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retries {
    pub adaptive: bool,
    pub attempts: u32,
    /// The SDK's `max_backoff` in seconds, when not its default (20 s). In the adaptive mode
    /// it also caps how long the rate limiter may hold a retry.
    pub max_backoff_s: Option<u64>,
}

impl Retries {
    fn config(self) -> RetryConfig {
        let mode = if self.adaptive {
            RetryConfig::adaptive()
        } else {
            RetryConfig::standard()
        };
        let config = mode.with_max_attempts(self.attempts);
        match self.max_backoff_s {
            Some(s) => config.with_max_backoff(Duration::from_secs(s)),
            None => config,
        }
    }

    fn label(self) -> String {
        let mut label = format!(
            "{}, {} attempts",
            if self.adaptive {
                "adaptive"
            } else {
                "standard"
            },
            self.attempts
        );
        if let Some(s) = self.max_backoff_s {
            label.push_str(&format!(", max backoff {s} s"));
        }
        label
    }

    fn arg(self) -> &'static str {
        if self.adaptive {
            "adaptive"
        } else {
            "standard"
        }
    }

    /// The configuration `onboarding::aws::load_config` gives the functions.
    pub fn deployed() -> Retries {
        let config = onboarding::aws::retries();
        Retries {
            adaptive: config.mode() == aws_config::retry::RetryMode::Adaptive,
            attempts: config.max_attempts(),
            max_backoff_s: (config.max_backoff() != RetryConfig::standard().max_backoff())
                .then(|| config.max_backoff().as_secs()),
        }
    }
}

/// One case: `burst` throttled answers in a row to `operation`.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub retries: Retries,
    pub operation: &'static str,
    pub burst: u64,
}

/// What one run of a case came to (the child process prints it as JSON).
#[derive(Clone, Debug)]
struct Run {
    /// From the last throttled answer (or, with no burst, the first delivery's start) to
    /// the reply that acknowledged the record with its step READY.
    after_burst: Duration,
    /// From the first delivery's start to that reply.
    total: Duration,
    deliveries: u32,
    /// How each delivery that did not finish ended (error code, and the delay it asked for).
    failed: Vec<String>,
    /// Deliveries repeated at once that a queue would have held for its visibility timeout.
    unasked: u32,
    created: u64,
    ready: bool,
}

/// Records the delays a reply asks for instead of calling SQS.
#[derive(Default)]
struct Recorder(Mutex<Vec<Delay>>);

impl Redelivery for Recorder {
    fn delay(&self, delays: Vec<Delay>) -> BoxFuture<'_, ()> {
        if let Ok(mut seen) = self.0.lock() {
            seen.extend(delays);
        }
        Box::pin(async {})
    }
}

/// Runs in the child process: one case, printed as one JSON line.
pub async fn run_case(case: Case) -> Result<String, String> {
    let run = run(case).await?;
    Ok(json!({
        "after_burst_ms": run.after_burst.as_secs_f64() * 1000.0,
        "total_ms": run.total.as_secs_f64() * 1000.0,
        "deliveries": run.deliveries,
        "failed": run.failed,
        "unasked": run.unasked,
        "created": run.created,
        "ready": run.ready,
    })
    .to_string())
}

async fn run(case: Case) -> Result<Run, String> {
    let mut stack = Stack::start("bench-throttling").await;
    stack.config = stack
        .config
        .to_builder()
        .retry_config(case.retries.config())
        .build();
    let settings = Settings::from_lookup(|k| match k {
        "LEDGER_TABLE" => Some(stack.table.clone()),
        "EVENT_BUS_NAME" => Some(stack.bus.clone()),
        _ => None,
    })?
    .engine;
    let recorder = Arc::new(Recorder::default());
    let handler = stack
        .instance_handler(stack.engine_with(settings))
        .with_redelivery(recorder.clone());
    stack.emulator.set_faults(FaultConfig::new(1).with_rule(
        case.operation,
        FaultRule {
            throttle_rate: 1.0,
            max_faults: Some(case.burst),
            ..FaultRule::default()
        },
    ));

    let event = onboarding_requested(
        "evt-throttling",
        ACCOUNT,
        json!({ "identityCenterInstance": { "name": "bench-throttling" } }),
    );
    let started = Instant::now();
    // When the burst's last throttled answer went out: the emulator's counters, polled every
    // 2 ms while the deliveries run.
    let mut burst_end = None;
    let deliveries = async {
        let mut out = Run {
            after_burst: Duration::ZERO,
            total: Duration::ZERO,
            deliveries: 0,
            failed: Vec::new(),
            unasked: 0,
            created: 0,
            ready: false,
        };
        while out.deliveries < MAX_DELIVERIES {
            out.deliveries += 1;
            let record = Record {
                receive_count: out.deliveries,
                ..Record::of("msg-throttling", &event)
            };
            let deadline = SystemTime::now() + FUNCTION_TIMEOUT;
            let (reply, _) = handler
                .handle(sqs_batch(&[record]), Some(deadline))
                .await
                .map_err(|e| format!("the batch failed as a whole: {e}"))?;
            if failed_ids(&reply).is_empty() {
                out.ready = true;
                break;
            }
            let asked = recorder
                .0
                .lock()
                .map(|mut d| d.drain(..).map(|d| d.after).next_back())
                .ok()
                .flatten();
            let code = stack
                .engine()
                .ledger()
                .get_step(&onboarding::ledger::StepKey::account(
                    ACCOUNT,
                    "identity-center-instance",
                ))
                .await
                .ok()
                .flatten()
                .and_then(|r| r.last_error.map(|e| e.code))
                .unwrap_or_else(|| "?".into());
            match asked {
                Some(after) => {
                    out.failed
                        .push(format!("{code}, back in {:.1} s", after.as_secs_f64()));
                    tokio::time::sleep(after).await;
                }
                None => {
                    out.failed.push(format!("{code}, no delay asked"));
                    out.unasked += 1;
                }
            }
        }
        Ok::<_, String>((out, Instant::now()))
    };
    tokio::pin!(deliveries);
    let (mut out, done) = loop {
        tokio::select! {
            done = &mut deliveries => break done?,
            _ = tokio::time::sleep(Duration::from_millis(2)), if burst_end.is_none() => {
                let throttled = stack
                    .emulator
                    .counters()
                    .faults
                    .get(case.operation)
                    .map_or(0, |f| f.throttled);
                if case.burst > 0 && throttled >= case.burst {
                    burst_end = Some(Instant::now());
                }
            }
        }
    };
    out.total = done - started;
    let end = burst_end.unwrap_or(started);
    out.after_burst = done.saturating_duration_since(end);
    out.created = stack.emulator.counters().created("CreateInstance");
    Ok(out)
}

/// The cases of the section: the configuration the functions used before (adaptive, 3
/// attempts), the standard mode with 3 and 5 attempts, and the deployed one if it is none of
/// these; bursts of 0, 2 and 4 on `AssumeRole` and `CreateInstance`.
pub fn cases() -> Vec<(Case, u32)> {
    let mut configs = vec![
        Retries {
            adaptive: true,
            attempts: 3,
            max_backoff_s: None,
        },
        Retries {
            adaptive: true,
            attempts: 3,
            max_backoff_s: Some(2),
        },
        Retries {
            adaptive: false,
            attempts: 3,
            max_backoff_s: None,
        },
        Retries {
            adaptive: false,
            attempts: 5,
            max_backoff_s: None,
        },
    ];
    if !configs.contains(&Retries::deployed()) {
        configs.push(Retries::deployed());
    }
    let mut out = Vec::new();
    for retries in configs {
        // The adaptive mode's runs with its default backoff take up to a minute each and vary
        // little: one each.
        let reps = if retries.adaptive && retries.max_backoff_s.is_none() {
            1
        } else {
            3
        };
        out.push((
            Case {
                retries,
                operation: "AssumeRole",
                burst: 0,
            },
            reps,
        ));
        for burst in [2, 4] {
            for operation in ["AssumeRole", "CreateInstance"] {
                out.push((
                    Case {
                        retries,
                        operation,
                        burst,
                    },
                    reps,
                ));
            }
        }
    }
    out
}

/// The markdown section: every case in a process of its own, one after the other.
pub async fn measure() -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the bench's own path: {e}"))?;
    let deployed = Retries::deployed();
    let mut out = format!(
        "\n### Throttling recovery\n\nThe identity emulator throttles the next N calls of one \
         operation; one SQS record of identity-center-instance is delivered (60 s deadline) \
         until its step is READY, again after the delay each failed reply asked for, at once \
         when it asked for none (from a queue: after its {} s visibility timeout, added in \
         \"the same from a queue\"). Deployed: {} (`onboarding::aws::retries`). Median of \
         the runs shown.\n\n\
         | SDK retries | throttled in a row | end of burst -> READY | the same from a queue | first delivery -> READY | deliveries | failed deliveries | runs |\n\
         |---|---|---|---|---|---|---|---|\n",
        VISIBILITY_TIMEOUT.as_secs(),
        deployed.label()
    );
    for (case, reps) in cases() {
        eprintln!(
            "bench: throttling: {}, {} x {} ...",
            case.retries.label(),
            case.burst,
            case.operation
        );
        let mut runs = Vec::new();
        for _ in 0..reps {
            runs.push(child(&exe, case)?);
        }
        out.push_str(&row(case, &runs, deployed));
    }
    Ok(out)
}

fn child(exe: &std::path::Path, case: Case) -> Result<Value, String> {
    let output = Command::new(exe)
        .args([
            "--throttling-case",
            case.retries.arg(),
            &match case.retries.max_backoff_s {
                Some(s) => format!("{}:{s}", case.retries.attempts),
                None => case.retries.attempts.to_string(),
            },
            case.operation,
            &case.burst.to_string(),
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    match serde_json::from_str::<Value>(line) {
        Ok(v) if output.status.success() => Ok(v),
        _ => Err(format!(
            "throttling case {case:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

fn row(case: Case, runs: &[Value], deployed: Retries) -> String {
    let ms = |key: &str| -> Vec<Duration> {
        runs.iter()
            .map(|r| Duration::from_secs_f64(r[key].as_f64().unwrap_or(0.0) / 1000.0))
            .collect()
    };
    let secs = |values: Vec<Duration>| {
        let all: Vec<String> = values
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64()))
            .collect();
        if values.len() > 1 {
            format!(
                "{:.1} s ({} s)",
                median(&values).as_secs_f64(),
                all.join(", ")
            )
        } else {
            format!("{:.1} s", median(&values).as_secs_f64())
        }
    };
    let queued: Vec<Duration> = runs
        .iter()
        .zip(ms("after_burst_ms"))
        .map(|(r, d)| d + VISIBILITY_TIMEOUT * r["unasked"].as_u64().unwrap_or(0) as u32)
        .collect();
    let deliveries: Vec<String> = runs
        .iter()
        .map(|r| {
            let n = r["deliveries"].as_u64().unwrap_or(0);
            let mut s = n.to_string();
            if r["ready"] != true {
                s.push_str(" (not READY)");
            }
            if r["created"].as_u64() != Some(1) {
                s.push_str(&format!(" ({} created)", r["created"]));
            }
            s
        })
        .collect();
    let mut failed: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            r["failed"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(str::to_string))
        })
        .collect();
    failed.dedup();
    let label = if case.retries == deployed {
        format!("**{}** (deployed)", case.retries.label())
    } else {
        case.retries.label()
    };
    let burst = if case.burst == 0 {
        "none".to_string()
    } else {
        format!("{} x `{}`", case.burst, case.operation)
    };
    format!(
        "| {label} | {burst} | {} | {} | {} | {} | {} | {} |\n",
        secs(ms("after_burst_ms")),
        secs(queued),
        secs(ms("total_ms")),
        deliveries.join(", "),
        if failed.is_empty() {
            "-".to_string()
        } else {
            failed.join("; ")
        },
        runs.len()
    )
}

/// Parses `--throttling-case MODE ATTEMPTS[:MAX_BACKOFF] OPERATION BURST`.
pub fn parse_case(args: &[String]) -> Result<Case, String> {
    let [mode, attempts, operation, burst] = args else {
        return Err("--throttling-case needs MODE ATTEMPTS OPERATION BURST".into());
    };
    let adaptive = match mode.as_str() {
        "adaptive" => true,
        "standard" => false,
        other => return Err(format!("unknown retry mode {other:?}")),
    };
    let operation = match operation.as_str() {
        "AssumeRole" => "AssumeRole",
        "CreateInstance" => "CreateInstance",
        other => return Err(format!("unknown operation {other:?}")),
    };
    let (attempts, max_backoff_s) = match attempts.split_once(':') {
        Some((a, b)) => (
            a,
            Some(b.parse().map_err(|_| "MAX_BACKOFF must be whole seconds")?),
        ),
        None => (attempts.as_str(), None),
    };
    Ok(Case {
        retries: Retries {
            adaptive,
            attempts: attempts
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or("ATTEMPTS must be a positive whole number")?,
            max_backoff_s,
        },
        operation,
        burst: burst.parse().map_err(|_| "BURST must be a whole number")?,
    })
}
