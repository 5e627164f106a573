//! The replies `events/README.md` documents for each sample file and function, for a fresh
//! ledger and the files delivered in the README's order (round 1), and for a second delivery
//! of every file (round 2: nothing new to do).

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
    /// No documented reply (a file missing from the README's table).
    Undocumented,
}

const INVALID_RECORD: &str = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d02";

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
    match file {
        "onboarding-requested.json" => created_once,
        "replayed-onboarding-requested.json" => Expect::Duplicate,
        "control-tower-create-managed-account.json"
        | "organizations-create-account-result.json" => {
            if instance || approval {
                Expect::Duplicate
            } else {
                Expect::Skipped
            }
        }
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
