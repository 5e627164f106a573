//! The replay torture run at CI size: 200 generated requests (`REPLAY_N` to change it) plus
//! every event in `events/`, duplicated, shuffled, concurrent, through faults and crashes,
//! then replayed from the "archive". The seed is printed first; `REPLAY_SEED` reproduces the
//! same requests, copies, order and fault rates (the exact placement of faults also depends
//! on timing). `make test` runs it with the grace window compressed to seconds; `make replay`
//! runs the full 1,000 with production's ratios (`REPLAY_TIMING`, see the replay module).
//! Two variants follow: stranded work finished by the reconciler, and a burst within the
//! quotas.

use integration_tests::replay::{run, Options};

/// One run at a time: each is timed against compressed windows, and two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn passes(options: Options) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let outcome = run(&options).await;
    println!("{}", outcome.report);
    assert!(
        outcome.failures.is_empty(),
        "the replay verdict failed ({} violations; reproduce with {}):\n  {}\n{}",
        outcome.failures.len(),
        options.reproduce(),
        outcome
            .failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  "),
        outcome.report
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_ends_exactly_once_through_duplicates_faults_and_crashes() {
    passes(Options::from_env(200)).await;
}

/// The stranded variant: messages run out after 4 receives or are dropped for good, new
/// instances stay in progress longer than their messages last, and the reconciler runs every
/// second alongside the deliveries. Once the deliveries are over it runs until no step is left
/// unfinished (K runs, printed): every step the ledger knows is then READY or FAILED and
/// announced, every other valid request is in a dead-letter list, and the archive replay and
/// the verdict follow as in the main run (still exactly one resource per key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranded_work_is_finished_by_the_reconciler() {
    passes(Options {
        stranded: true,
        ..Options::from_env(100)
    })
    .await;
}

/// The burst mode: the requests arrive at a backfill's pace (100 events a second) while the
/// emulator meters every API at 4% of its documented rate (the management account's
/// AssumeRole at 4 a second, which the run exceeds), and the functions' clients retry as
/// deployed (the standard mode); the verdict is the main run's (exactly one resource per key,
/// nothing lost, nothing stuck).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_within_the_quotas_ends_exactly_once() {
    let mut options = Options {
        burst: true,
        ..Options::from_env(150)
    };
    // The quotas throttle here, not a fixed share of the ledger's requests.
    options.rates.ddb_throttle = 0.0;
    options.rates.ddb_outage = 0.0;
    passes(options).await;
}
