//! The replies `events/README.md` documents for each sample file and function, for a fresh
//! ledger and the files delivered in the README's order (round 1), and for a second delivery
//! of every file (round 2: nothing new to do); and the ledger the run leaves: every step
//! READY, except those of the accounts the departure samples retire.

use serde_json::Value;

use super::watch::Reply;

/// The first reply a delivery should get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// `{"status":"ready","how":"created","resourceArn":...}`
    Created,
    /// `{"status":"duplicate","resourceArn":...}`
    Duplicate,
    /// `{"status":"skipped","reason":...}`
    Skipped,
    /// `{"status":"ignored","reason":...}` whose reason contains the text.
    Ignored(&'static str),
    /// `{"status":"rejected","reason":...}` whose reason contains the text.
    Rejected(&'static str),
    /// `{"batchItemFailures":[...]}` listing exactly these messageIds.
    Batch(&'static [&'static str]),
    /// `{"status":"retired","reason":...}`: the step is RETIRED (its account closed or left),
    /// the request is older than the retirement; the reason names the account.
    Retired(&'static str),
    /// `{"status":"offboarded","retired":[...],"kept":[],"reason":...}`: the account's
    /// departure retired `steps` of the function's steps (their keys, all of `account`);
    /// the reason names the account.
    Offboarded { account: &'static str, steps: usize },
    /// No documented reply (a file missing from the README's table).
    Undocumented,
}

const INVALID_RECORD: &str = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d02";

/// analytics-dev: onboarded (instance, SAML provider), then closed
/// (`organizations-close-account-result.json`), then cleaned 90 days later
/// (`organizations-closed-account-departed.json`).
pub const CLOSED: &str = "333333333333";
/// sandbox-1: onboarded (instance, no portal), then removed from the organization
/// (`organizations-remove-account.json`).
pub const REMOVED: &str = "444444444444";
/// An account no sample onboards that leaves the organization
/// (`organizations-leave-organization.json`): its instance step is a retired placeholder.
pub const LEFT: &str = "555555555555";

/// The accounts whose steps the departure samples retire. Every sample request for them is
/// older than their departure: after the departures, each is acknowledged as retired.
pub const RETIRED_ACCOUNTS: [&str; 3] = [CLOSED, REMOVED, LEFT];

/// The status the run leaves a ledger item of `account` (`organization` for the
/// organization's step) in: RETIRED for the departed accounts, READY otherwise.
pub fn ledger_status(account: &str) -> &'static str {
    if RETIRED_ACCOUNTS.contains(&account) {
        "RETIRED"
    } else {
        "READY"
    }
}

/// What `function` should reply to `file` in `round` (1 or 2).
pub fn expected(file: &str, function: &str, round: u32) -> Expect {
    let instance = function == "identity-center-instance";
    let approval = function == "approval-identity-source";
    let first = round == 1;
    let created_once = if first {
        Expect::Created
    } else {
        Expect::Duplicate
    };
    // The departures: the instance and provider functions retire the account's steps of
    // their own (the same reply again in round 2: already retired, not announced again);
    // the approval function's step belongs to the organization.
    let offboards = |account: &'static str, steps: usize, web_steps: usize| {
        if approval {
            Expect::Skipped
        } else if instance {
            Expect::Offboarded { account, steps }
        } else {
            Expect::Offboarded {
                account,
                steps: web_steps,
            }
        }
    };
    match file {
        "onboarding-requested.json" => created_once,
        "replayed-onboarding-requested.json" => Expect::Duplicate,
        // 444444444444 (Control Tower) and 333333333333 (Organizations): in round 2 their
        // instance steps are retired, and the requests are older than the departures.
        "control-tower-create-managed-account.json" => match (instance, approval) {
            (true, _) if !first => Expect::Retired(REMOVED),
            (true, _) | (_, true) => Expect::Duplicate,
            _ => Expect::Skipped,
        },
        "organizations-create-account-result.json" => match (instance, approval) {
            (true, _) if !first => Expect::Retired(CLOSED),
            (true, _) | (_, true) => Expect::Duplicate,
            _ => Expect::Skipped,
        },
        // Delivered after every other file (by name): instance and SAML provider retired.
        "organizations-close-account-result.json" => offboards(CLOSED, 1, 1),
        // 90 days later: the steps are retired already; nothing is announced again.
        "organizations-closed-account-departed.json" => offboards(CLOSED, 1, 1),
        // No request reached 555555555555: the instance step is retired as a placeholder (a
        // later, older request is refused), the provider function finds no step of its own.
        "organizations-leave-organization.json" => offboards(LEFT, 1, 0),
        // Onboarded without a portal: its instance step only.
        "organizations-remove-account.json" => offboards(REMOVED, 1, 0),
        "onboarding-requested-sqs.json"
        | "control-tower-update-managed-account-sqs.json"
        | "sqs-redelivered.json"
        | "sqs-fifo.json" => Expect::Batch(&[]),
        "control-tower-in-progress.json" => Expect::Ignored("IN_PROGRESS"),
        "invalid-event.json" => Expect::Rejected("aws.ec2"),
        "sqs-with-invalid-record.json" => Expect::Batch(&[INVALID_RECORD]),
        _ => Expect::Undocumented,
    }
}

impl Expect {
    /// `Ok` when `reply` is what was expected, else what differs.
    pub fn check(&self, reply: &Reply) -> Result<(), String> {
        let value = match reply {
            Reply::Value(value) => value,
            Reply::Error(e) => {
                return Err(format!("expected {self:?}, the invocation failed: {e}"))
            }
        };
        let status = value.get("status").and_then(Value::as_str);
        let reason = value.get("reason").and_then(Value::as_str).unwrap_or("");
        let arn = value.get("resourceArn").and_then(Value::as_str);
        let ok = match self {
            Expect::Created => {
                status == Some("ready")
                    && value.get("how").and_then(Value::as_str) == Some("created")
                    && arn.is_some_and(|a| a.starts_with("arn:"))
            }
            Expect::Duplicate => {
                status == Some("duplicate") && arn.is_some_and(|a| a.starts_with("arn:"))
            }
            Expect::Skipped => status == Some("skipped") && !reason.is_empty(),
            Expect::Ignored(text) => status == Some("ignored") && reason.contains(text),
            Expect::Rejected(text) => status == Some("rejected") && reason.contains(text),
            Expect::Retired(account) => {
                status == Some("retired") && reason.contains("RETIRED") && reason.contains(account)
            }
            Expect::Offboarded { account, steps } => {
                let keys = |field: &str| {
                    value
                        .get(field)
                        .and_then(Value::as_array)
                        .map(|list| list.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                };
                let scope = format!("account#{account}/");
                status == Some("offboarded")
                    && reason.contains(account)
                    && keys("kept").is_some_and(|k| k.is_empty())
                    && keys("retired").is_some_and(|r| {
                        r.len() == *steps && r.iter().all(|k| k.starts_with(&scope))
                    })
            }
            Expect::Batch(ids) => match reply.batch_failures() {
                Some(mut got) => {
                    got.sort();
                    let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
                    want.sort();
                    got == want && value.as_object().is_some_and(|o| o.len() == 1)
                }
                None => false,
            },
            Expect::Undocumented => false,
        };
        if ok {
            Ok(())
        } else if *self == Expect::Undocumented {
            Err(
                "this file has no documented reply: add it to events/README.md's table and to \
                 tests/integration/src/local/expected.rs"
                    .into(),
            )
        } else {
            Err(format!("expected {self:?}, got {value}"))
        }
    }
}
