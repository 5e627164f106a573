//! The replay torture run at CI size: 200 generated requests (`REPLAY_N` to change it) plus
//! every event in `events/`, duplicated, shuffled, concurrent, through faults and crashes,
//! then replayed from the "archive". The seed is printed first; `REPLAY_SEED` reproduces the
//! same requests, copies, order and fault rates (the exact placement of faults also depends
//! on timing). `make test` runs it with the grace window compressed to seconds; `make replay`
//! runs the full 1,000 with production's ratios (`REPLAY_TIMING`, see the replay module).

use integration_tests::replay::{run, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_ends_exactly_once_through_duplicates_faults_and_crashes() {
    let options = Options::from_env(200);
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

/// The stranded variant: messages run out after 4 receives or are dropped for good, new
/// instances stay in progress longer than their messages last, and the reconciler runs every
/// second alongside the deliveries. Once the deliveries are over it runs until no step is left
/// unfinished (K runs, printed): every step the ledger knows is then READY or FAILED and
/// announced, every other valid request is in a dead-letter list, and the archive replay and
/// the verdict follow as in the main run (still exactly one resource per key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranded_work_is_finished_by_the_reconciler() {
    let options = Options {
        stranded: true,
        ..Options::from_env(100)
    };
    let outcome = run(&options).await;
    println!("{}", outcome.report);
    assert!(
        outcome.failures.is_empty(),
        "the stranded replay verdict failed ({} violations; reproduce with {}):\n  {}\n{}",
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
