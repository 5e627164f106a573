//! Cold starts and peak memory of the release binaries, each in fresh processes, the
//! project's three functions and the baseline interleaved so that they share the machine's
//! conditions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use integration_tests::deliveries::{failed_ids, sqs_batch, Record};
use serde_json::Value;

use crate::process::{Run, Subject};
use crate::runtime_api::RuntimeApi;
use crate::scenario::{self, Function, FUNCTIONS};

pub const BASELINE: &str = "baseline";

/// Cold-start samples of one binary.
#[derive(Clone, Debug)]
pub struct ColdStart {
    pub name: String,
    /// exec -> first `/next`.
    pub init: Vec<Duration>,
    /// exec -> first response to a duplicate delivery (baseline: to its one PutItem).
    pub duplicate: Vec<Duration>,
    /// Peak RSS after that response, KiB.
    pub rss_kib: Vec<u64>,
    /// Of `duplicate`, the time moto took to answer.
    pub moto: Vec<Duration>,
    /// Requests the process sent to moto (DynamoDB, EventBridge, ...) for the duplicate.
    pub moto_requests: Vec<u64>,
}

/// Peak RSS of one binary after answering a 10-record SQS batch.
#[derive(Clone, Debug)]
pub struct BatchMemory {
    pub name: String,
    pub peak_rss_kib: u64,
    pub retried: usize,
}

fn binary(bin_dir: &Path, name: &str) -> Result<PathBuf, String> {
    let path = bin_dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it first (cargo build --release -p {} )",
            path.display(),
            if name == BASELINE { "bench" } else { name }
        ))
    }
}

/// `runs` fresh processes per binary, each handed a duplicate delivery (the step was
/// finished by one un-timed run first, which also brings the binary into the page cache).
pub async fn cold_starts(
    api: &RuntimeApi,
    bin_dir: &Path,
    scratch: &Path,
    runs: usize,
) -> Result<Vec<ColdStart>, String> {
    let (stack, moto) = scenario::stack("bench-cold").await?;
    let moto = &moto;
    let mut subjects: Vec<(Subject, Value, bool)> = Vec::new();
    for (i, function) in FUNCTIONS.into_iter().enumerate() {
        let account = scenario::account(10, i as u32);
        let event = function.event(&stack, "evt-cold", &account).await;
        let subject = Subject::new(
            function.name(),
            binary(bin_dir, function.name())?,
            &stack,
            moto,
            scratch,
        );
        subjects.push((subject, event, true));
    }
    let baseline_event = Function::ApprovalIdentitySource
        .event(&stack, "evt-cold", &scenario::account(10, 9))
        .await;
    subjects.push((
        Subject::new(BASELINE, binary(bin_dir, BASELINE)?, &stack, moto, scratch),
        baseline_event,
        false,
    ));

    let log = |name: &str| scratch.join(format!("{name}.log"));
    for (subject, event, ours) in &subjects {
        let first = subject.run(api, moto, event, &log(&subject.name)).await?;
        if *ours && first.reply["status"] != "ready" {
            return Err(format!(
                "{}: the first delivery did not finish the step: {}",
                subject.name, first.reply
            ));
        }
    }

    let mut results: Vec<ColdStart> = subjects
        .iter()
        .map(|(s, _, _)| ColdStart {
            name: s.name.clone(),
            init: Vec::new(),
            duplicate: Vec::new(),
            rss_kib: Vec::new(),
            moto: Vec::new(),
            moto_requests: Vec::new(),
        })
        .collect();
    for _ in 0..runs {
        for ((subject, event, ours), result) in subjects.iter().zip(results.iter_mut()) {
            let run: Run = subject.run(api, moto, event, &log(&subject.name)).await?;
            if *ours && run.reply["status"] != "duplicate" {
                return Err(format!(
                    "{}: a redelivery was not answered as a duplicate: {}",
                    subject.name, run.reply
                ));
            }
            result.init.push(run.init);
            result.duplicate.push(run.response);
            result.rss_kib.push(run.peak_rss_kib);
            result.moto.push(run.moto.waited);
            result.moto_requests.push(run.moto.requests);
        }
    }
    Ok(results)
}

/// Each binary, fresh, handed one SQS batch of 10 records of distinct accounts whose steps
/// were never run (so: 10 creates against the emulator, for the organization step 1).
pub async fn batch_memory(
    api: &RuntimeApi,
    bin_dir: &Path,
    scratch: &Path,
) -> Result<Vec<BatchMemory>, String> {
    let (stack, moto) = scenario::stack("bench-memory").await?;
    let moto = &moto;
    let mut out = Vec::new();
    let mut subjects: Vec<(Subject, Function)> = FUNCTIONS
        .into_iter()
        .map(|f| {
            binary(bin_dir, f.name()).map(|b| (Subject::new(f.name(), b, &stack, moto, scratch), f))
        })
        .collect::<Result<_, _>>()?;
    subjects.push((
        Subject::new(BASELINE, binary(bin_dir, BASELINE)?, &stack, moto, scratch),
        Function::ApprovalIdentitySource,
    ));
    for (block, (subject, function)) in subjects.iter().enumerate() {
        let mut records = Vec::new();
        for i in 0..10u32 {
            let account = scenario::account(20 + block as u32, i);
            let event = function
                .event(&stack, &format!("evt-memory-{i}"), &account)
                .await;
            records.push(Record::of(&format!("msg-memory-{i}"), &event));
        }
        let log = scratch.join(format!("{}-batch.log", subject.name));
        let run = subject.run(api, moto, &sqs_batch(&records), &log).await?;
        out.push(BatchMemory {
            name: subject.name.clone(),
            peak_rss_kib: run.peak_rss_kib,
            retried: failed_ids(&run.reply).len(),
        });
    }
    Ok(out)
}
