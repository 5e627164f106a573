//! The exhaustive check of the ledger protocol: every property, every reachable state at the
//! bound. `MODEL_DEPTH` (default 20 steps; 0: no depth bound),
//! `MODEL_FAULTS`, `MODEL_ENV`, `MODEL_GENERATIONS` and `MODEL_THREADS` change the bound;
//! `make model` runs it deeper in release mode.

use std::time::Instant;

use ledger_model::LedgerModel;
use stateright::{Checker, Model};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn check(label: &str, model: LedgerModel) {
    let depth = env("MODEL_DEPTH", 20);
    let threads = env("MODEL_THREADS", 2);
    eprintln!(
        "{label}: {model:?}, depth bound {}, {threads} threads",
        if depth == 0 {
            "none".to_owned()
        } else {
            depth.to_string()
        }
    );
    let started = Instant::now();
    let mut builder = model.checker().threads(threads);
    if depth > 0 {
        builder = builder.target_max_depth(depth);
    }
    let checker = builder.spawn_bfs().join();
    let elapsed = started.elapsed();
    eprintln!(
        "{label}: {} states explored ({} unique), max depth {}, {:.1} s",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        elapsed.as_secs_f64()
    );
    let mut failed = Vec::new();
    for p in checker.model().properties() {
        let found = checker.discovery(p.name);
        let ok = match p.expectation {
            stateright::Expectation::Sometimes => found.is_some(),
            _ => found.is_none(),
        };
        eprintln!(
            "  {:<10} {:<50} {}",
            format!("{:?}", p.expectation),
            p.name,
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            match found {
                Some(path) => eprintln!("{}", path_text(checker.model(), path)),
                None => eprintln!("    never reached"),
            }
            failed.push(p.name);
        }
    }
    assert!(failed.is_empty(), "{label}: {failed:?}");
}

fn path_text(
    model: &LedgerModel,
    path: stateright::Path<ledger_model::model::State, ledger_model::model::Action>,
) -> String {
    let mut text = String::new();
    for (state, action) in path.into_vec() {
        if let Some(action) = action {
            text.push_str(&format!("    -> {}\n", model.format_action(&action)));
        }
        text.push_str(&format!("       {state:?}\n"));
    }
    text
}

#[test]
fn the_protocol_keeps_its_properties() {
    let model = LedgerModel {
        max_faults: env("MODEL_FAULTS", 1) as u8,
        max_env: env("MODEL_ENV", 1) as u8,
        max_gen: env("MODEL_GENERATIONS", 1) as u8,
        ..LedgerModel::default()
    };
    check("identity center instance (one per account)", model);
}
