//! `make bench`: measures the release binaries of the three functions beside a minimal
//! baseline function, and prints one table (markdown) with the targets.
//!
//! ```text
//! bench [--bin-dir DIR] [--sam-build DIR] [--runs N] [--python PATH] [--strict]
//!       [--convergence | --backfill | --throttling] [--cli PATH] [--accounts N] [--rate N]
//!       [--quota-scale F] [--sdk-retries MODE:ATTEMPTS[:MAX_BACKOFF_S]]
//! ```
//! - `--bin-dir`: where `cargo build --release` put the binaries (default
//!   `$CARGO_TARGET_DIR/release`, else `target/release`)
//! - `--sam-build`: `sam build`'s output (`tests/tools/sam-build`); its arm64 bootstraps are
//!   the ones zipped for the package sizes. Without it the host binaries are zipped.
//! - `--runs`: fresh processes per binary for the cold-start figures (default 20)
//! - `--python`: the Python that zips like SAM (default: the moto venv's)
//! - `--strict`: exit 1 when a target is missed (default: report it, exit 0)
//! - `--convergence`: only the convergence figures; `--backfill`: only the backfill figure
//!   (neither needs the release functions); `--throttling`: only the throttling-recovery
//!   figures (SDK retry modes against bursts of throttled answers, `src/throttling.rs`)
//! - `--cli`: the `onboarding` binary the backfill figure runs (default
//!   `$CARGO_TARGET_DIR/release/onboarding`, else `target/release/onboarding`)
//! - `--accounts`: the backfill's organization size (default 2000); `--rate`: its
//!   `onboarding backfill --rate` (default 100 events per second); `--quota-scale`: every
//!   quota's rate times F, bursts as documented (default 1, the documented quotas);
//!   `--sdk-retries`: the functions' SDK retries in the backfill, e.g. `adaptive:3`,
//!   `standard:3` or `adaptive:3:2` (2 s max backoff; default: as deployed,
//!   `onboarding::aws::retries`)
//!
//! Needs the moto venv (`make venv`).

mod backfill;
mod cold;
mod convergence;
mod inproc;
mod moto_server;
mod process;
mod proxy;
mod report;
mod runtime_api;
mod scenario;
mod size;
mod throttling;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::report::{Machine, Results};
use crate::runtime_api::RuntimeApi;
use crate::scenario::{Function, FUNCTIONS};

struct Args {
    bin_dir: PathBuf,
    sam_build: Option<PathBuf>,
    runs: usize,
    python: PathBuf,
    strict: bool,
    /// Only the convergence figures (no release binaries needed).
    convergence_only: bool,
    /// Only the backfill figure (needs the CLI binary only).
    backfill_only: bool,
    /// Only the throttling-recovery figures.
    throttling_only: bool,
    /// Internal: one throttling case, run in a process of its own.
    throttling_case: Option<throttling::Case>,
    backfill: backfill::Options,
}

fn parse_args() -> Result<Args, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let mut args = Args {
        bin_dir: target.join("release"),
        sam_build: None,
        runs: 20,
        python: integration_tests::moto::moto_server_path().with_file_name("python"),
        strict: false,
        convergence_only: false,
        backfill_only: false,
        throttling_only: false,
        throttling_case: None,
        backfill: backfill::Options::new(target.join("release").join("onboarding")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bin-dir" => args.bin_dir = value()?.into(),
            "--sam-build" => args.sam_build = Some(value()?.into()),
            "--python" => args.python = value()?.into(),
            "--runs" => {
                args.runs = value()?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--runs needs a positive whole number")?
            }
            "--strict" => args.strict = true,
            "--convergence" => args.convergence_only = true,
            "--backfill" => args.backfill_only = true,
            "--throttling" => args.throttling_only = true,
            "--throttling-case" => {
                let rest: Vec<String> = (0..4).filter_map(|_| it.next()).collect();
                args.throttling_case = Some(throttling::parse_case(&rest)?);
            }
            "--cli" => args.backfill.cli = value()?.into(),
            "--accounts" => {
                args.backfill.accounts = value()?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--accounts needs a positive whole number")?
            }
            "--rate" => {
                args.backfill.rate = value()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or("--rate needs a whole number from 1 to 10000")?
            }
            "--quota-scale" => {
                args.backfill.quota_scale = value()?
                    .parse()
                    .ok()
                    .filter(|f: &f64| *f > 0.0 && *f <= 100.0)
                    .ok_or("--quota-scale needs a number above 0 (at most 100)")?
            }
            "--sdk-retries" => {
                let v = value()?;
                let parts: Vec<&str> = v.split(':').collect();
                let number = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
                let config = match parts.first() {
                    Some(&"adaptive") => aws_config::retry::RetryConfig::adaptive(),
                    Some(&"standard") => aws_config::retry::RetryConfig::standard(),
                    _ => return Err("--sdk-retries: MODE is adaptive or standard".into()),
                };
                let attempts = number(1)
                    .filter(|n| *n > 0 && parts.len() <= 3)
                    .ok_or("--sdk-retries needs MODE:ATTEMPTS[:MAX_BACKOFF_S], e.g. standard:3")?;
                let mut config = config.with_max_attempts(attempts);
                if parts.len() == 3 {
                    let max = number(2).filter(|n| *n > 0).ok_or(
                        "--sdk-retries: MAX_BACKOFF_S is a positive whole number of seconds",
                    )?;
                    config = config.with_max_backoff(Duration::from_secs(max.into()));
                }
                args.backfill.retries = config;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: bench [--bin-dir DIR] [--sam-build DIR] [--runs N] [--python PATH] [--strict] [--convergence | --backfill | --throttling] [--cli PATH] [--accounts N] [--rate N] [--quota-scale F] [--sdk-retries MODE:ATTEMPTS[:MAX_BACKOFF_S]]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if [
        args.convergence_only,
        args.backfill_only,
        args.throttling_only,
    ]
    .iter()
    .filter(|x| **x)
    .count()
        > 1
    {
        return Err(
            "--convergence, --backfill and --throttling each run one section: choose one".into(),
        );
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if let Some(case) = args.throttling_case {
        return match throttling::run_case(case).await {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("bench: {message}");
                ExitCode::FAILURE
            }
        };
    }
    if args.throttling_only {
        return match throttling::measure().await {
            Ok(section) => {
                println!("{section}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("bench: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let scratch =
        std::env::temp_dir().join(format!("identity-onboarding-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        eprintln!("cannot create {}: {e}", scratch.display());
        return ExitCode::FAILURE;
    }
    if args.convergence_only {
        return match convergence::measure().await {
            Ok(section) => {
                println!("{section}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("bench: {message}");
                ExitCode::FAILURE
            }
        };
    }
    if args.backfill_only {
        let outcome = backfill::measure(&args.backfill, &scratch).await;
        let _ = std::fs::remove_dir_all(&scratch);
        return match outcome {
            Ok((section, misses)) => {
                println!("{section}");
                finish(&misses, args.strict)
            }
            Err(message) => {
                eprintln!("bench: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let outcome = measure(&args, &scratch).await;
    match outcome {
        Ok((table, misses)) => {
            let _ = std::fs::remove_dir_all(&scratch);
            println!("{table}");
            finish(&misses, args.strict)
        }
        Err(message) => {
            eprintln!(
                "bench: {message}\n(process logs kept in {})",
                scratch.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// The closing line and the exit code: 1 for a missed target with `--strict`, and for a
/// backfill stopped at its time limit in any case.
fn finish(misses: &[String], strict: bool) -> ExitCode {
    let strict = strict || misses.iter().any(|m| m == backfill::UNFINISHED);
    if misses.is_empty() {
        println!("All targets met.");
        ExitCode::SUCCESS
    } else {
        println!("Targets missed: {}.", misses.join("; "));
        if strict {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

async fn measure(args: &Args, scratch: &std::path::Path) -> Result<(String, Vec<String>), String> {
    let entropy = match std::env::var("AWS_LC_SYS_NO_JITTER_ENTROPY").as_deref() {
        Ok("1") => "AWS_LC_SYS_NO_JITTER_ENTROPY=1",
        _ => "AWS_LC_SYS_NO_JITTER_ENTROPY unset",
    };
    let machine = Machine::probe(format!(
        "Timed binaries: `cargo build --release` for {} (workspace release profile: opt-level s, \
         thin LTO, 1 codegen unit, panic abort, strip; {entropy}), each started fresh with \
         Lambda's environment (128 MB) against a stub Runtime API, moto and the identity \
         emulator on 127.0.0.1.",
        std::env::consts::ARCH
    ));
    let api = RuntimeApi::start()
        .await
        .map_err(|e| format!("cannot start the stub Runtime API: {e}"))?;

    eprintln!(
        "bench: cold starts, {} fresh processes per binary, interleaved ...",
        args.runs
    );
    let cold = cold::cold_starts(&api, &args.bin_dir, scratch, args.runs).await?;
    eprintln!("bench: peak memory on an SQS batch of 10 ...");
    let memory = cold::batch_memory(&api, &args.bin_dir, scratch).await?;
    eprintln!("bench: package sizes ...");
    let packages = size::packages(
        &args.python,
        &args.bin_dir,
        args.sam_build.as_deref(),
        scratch,
    )?;
    eprintln!("bench: DynamoDB requests and creates per delivery ...");
    let mut requests = Vec::new();
    for function in FUNCTIONS {
        requests.push(inproc::requests(function).await?);
    }
    eprintln!("bench: batch of 10 vs one record ...");
    let mut batches = Vec::new();
    for function in [
        Function::IdentityCenterInstance,
        Function::WebIdentityProvider,
    ] {
        batches.push(inproc::batch(function, Duration::from_millis(200), 3).await?);
    }
    eprintln!("bench: revisions and a reconciler run at 1,000 and 10,000 READY steps ...");
    let convergence = convergence::measure().await?;
    eprintln!("bench: recovery from bursts of throttled answers, per SDK retry mode ...");
    let throttling = throttling::measure().await?;
    eprintln!(
        "bench: backfill of {} accounts through the CLI, SQS and the functions ...",
        args.backfill.accounts
    );
    let (backfill, backfill_misses) = backfill::measure(&args.backfill, scratch).await?;
    let results = Results {
        runs: args.runs,
        cold,
        memory,
        packages,
        requests,
        batches,
    };
    let (table, mut misses) = report::render(&results, &machine);
    misses.extend(backfill_misses);
    Ok((
        format!("{table}{convergence}{throttling}{backfill}"),
        misses,
    ))
}
