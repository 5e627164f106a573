//! The real function binaries, run locally the way `sam local invoke` runs them, but offline
//! and without containers: `cargo lambda watch` serves the Lambda Runtime API and starts each
//! function's debug build on its first invocation, `cargo lambda invoke --data-file` delivers
//! the `events/` files, and moto plus the identity emulator stand in for AWS.
//!
//! One implementation for the integration test (`tests/events.rs`) and for `make demo`
//! (`src/bin/demo.rs`):
//! [`session::Session::start`] checks the tools, builds the functions, starts moto, the
//! emulator (seeded from `tests/local/organization.json`, enforcing the shipped IAM policies
//! and forwarding moto's services) and one `cargo lambda watch` per function, each with the
//! environment of that function alone (its role's credentials);
//! [`deliver::deliver`] delivers one file to one function as EventBridge or SQS would
//! (retrying what the reply says to retry); [`report`] reads the ledger and the emulator's
//! counters back. Every process started here is stopped on drop, on failure, and (through a
//! stdin watchdog) when the owning process dies.

use std::path::{Path, PathBuf};

pub mod deliver;
pub mod expected;
pub mod process;
pub mod progress;
pub mod report;
pub mod session;
pub mod stack;
pub mod tools;
pub mod verify;
pub mod watch;

/// The three functions: crate, binary and `cargo lambda` function name.
pub const FUNCTIONS: [&str; 3] = [
    "identity-center-instance",
    "approval-identity-source",
    "web-identity-provider",
];

/// The role of `template.yaml` each function runs as (its logical id, which is also the access
/// key it signs with locally: the emulator evaluates its calls against that role's shipped
/// policy, see [`crate::iam`]).
pub fn role(function: &str) -> Option<&'static str> {
    match function {
        "identity-center-instance" => Some(crate::iam::INSTANCE_ROLE),
        "approval-identity-source" => Some(crate::iam::APPROVAL_ROLE),
        "web-identity-provider" => Some(crate::iam::WEB_ROLE),
        "reconciler" => Some(crate::iam::RECONCILER_ROLE),
        _ => None,
    }
}

/// The sample events in the order of `events/README.md`'s table (its replies assume this
/// order on a fresh ledger).
pub const EVENT_ORDER: [&str; 11] = [
    "onboarding-requested.json",
    "replayed-onboarding-requested.json",
    "onboarding-requested-sqs.json",
    "control-tower-create-managed-account.json",
    "control-tower-update-managed-account-sqs.json",
    "control-tower-in-progress.json",
    "organizations-create-account-result.json",
    "sqs-redelivered.json",
    "sqs-fifo.json",
    "invalid-event.json",
    "sqs-with-invalid-record.json",
];

/// What the stack's schedule rule hands the reconciler (it reads none of it).
pub const SCHEDULED_EVENT: &str = r#"{"version":"0","id":"0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d","detail-type":"Scheduled Event","source":"aws.events","account":"111111111111","time":"2026-12-01T10:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:111111111111:rule/identity-onboarding-reconcile"],"detail":{}}"#;

/// The WorkSpaces Web portal [`organization_with`] gives `account`.
pub fn portal_of(account: &str) -> String {
    format!("arn:aws:workspaces-web:us-east-1:{account}:portal/0d5e1c8a-3b7f-4e2a-9c6d-{account}")
}

/// tests/local/organization.json with `accounts` added, each with a portal
/// ([`portal_of`]), written to `dir`: an organization of a test's own.
pub fn organization_with(dir: &Path, accounts: &[String]) -> Result<PathBuf, String> {
    let sample = repo_root().join("tests/local/organization.json");
    let text = std::fs::read_to_string(&sample)
        .map_err(|e| format!("cannot read {}: {e}", sample.display()))?;
    let mut org: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", sample.display()))?;
    let Some(list) = org["accounts"].as_array_mut() else {
        return Err(format!("{} has no accounts", sample.display()));
    };
    for account in accounts {
        list.push(serde_json::json!({
            "account_id": account,
            "portals": [{ "portal_arn": portal_of(account), "display_name": account }],
        }));
    }
    let path = dir.join("organization.json");
    std::fs::write(&path, org.to_string())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The repository's root: the nearest ancestor of the working directory that holds the
/// project (`Cargo.toml`, `events/`, `tests/local/organization.json`), so a binary built in
/// another checkout sharing the target dir still uses this one; else the checkout this crate
/// was compiled in.
pub fn repo_root() -> PathBuf {
    let is_root = |dir: &Path| {
        dir.join("Cargo.toml").is_file()
            && dir.join("events").is_dir()
            && dir.join("tests/local/organization.json").is_file()
    };
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(dir) = cwd.ancestors().find(|d| is_root(d)) {
            return dir.to_path_buf();
        }
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or(manifest)
}

/// Every `*.json` file in `events/`: those of [`EVENT_ORDER`] first, in that order, then any
/// other file by name (so a new sample is never skipped).
pub fn event_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = root.join("events");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut others = Vec::new();
    let mut present = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "json") && path.is_file() {
            present.push(path);
        }
    }
    let mut ordered: Vec<PathBuf> = EVENT_ORDER
        .iter()
        .filter_map(|name| present.iter().find(|p| file_name(p) == *name).cloned())
        .collect();
    for path in present {
        if !EVENT_ORDER.contains(&file_name(&path).as_str()) {
            others.push(path);
        }
    }
    others.sort();
    ordered.extend(others);
    Ok(ordered)
}

/// The file name of `path` as a string ("" if it has none).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
