//! What a command can end with besides success, and the exit code scripts see for it.

use std::fmt;

use onboarding::ledger::LedgerError;

/// Exit codes (documented in `onboarding --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The AWS call failed or the ledger could not be read: running the command again may work.
    Runtime = 1,
    /// The command line is wrong: nothing was read or changed.
    Usage = 2,
    /// The command was understood but refused (nothing to retry, nothing found, invalid
    /// events): nothing was changed.
    Refused = 3,
}

/// A command's failure: a message saying what happened and a hint saying what to do.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(Exit::Refused, message)
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(Exit::Runtime, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The ledger's error, with what to do about it. `table` names the table in the hint.
    pub fn ledger(err: LedgerError, table: &str) -> Self {
        let failure = Self::ledger_full(&err, table);
        Failure {
            message: concise(&failure.message),
            ..failure
        }
    }

    fn ledger_full(err: &LedgerError, table: &str) -> Self {
        match *err {
            LedgerError::Unavailable(ref text) if text.contains("no credentials") => {
                Failure::runtime(err.to_string()).hint(
                    "no AWS credentials were found: set AWS_PROFILE (after `aws sso login` if it \
                     uses SSO) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, then run the \
                     command again",
                )
            }
            LedgerError::Unavailable(_) => Failure::runtime(err.to_string()).hint(
                "the ledger is throttled or unreachable: run the command again in a moment \
                 (check AWS_REGION, and AWS_ENDPOINT_URL_DYNAMODB if you set it)",
            ),
            LedgerError::Rejected(ref text) => {
                let text = text.as_str();
                let hint = if text.contains("ResourceNotFound") {
                    format!(
                        "table {table:?} does not exist in this Region: check --table / \
                         LEDGER_TABLE (the stack's ledger table) and AWS_REGION"
                    )
                } else if text.contains("AccessDenied") || text.contains("UnrecognizedClient") {
                    "the credentials may not read the ledger: check AWS_PROFILE or the \
                     credentials in use (they need dynamodb:Query, GetItem, UpdateItem)"
                        .to_owned()
                } else {
                    format!("check --table ({table}), AWS_REGION and the credentials in use")
                };
                Failure::runtime(err.to_string()).hint(hint)
            }
            LedgerError::Corrupt { .. } => Failure::runtime(err.to_string()).hint(
                "the item does not have the ledger's shape: inspect it in the table; it was \
                 not written by this version of the functions",
            ),
            LedgerError::LostLease { .. } => Failure::runtime(err.to_string())
                .hint("the step changed while this command ran: look at it again with `onboarding status`"),
            LedgerError::NotAllowed(_) => Failure::refused(err.to_string()),
        }
    }
}

/// An SDK error's text without its debug dump: the part before the first ` (` that opens a
/// Rust structure (`(ServiceError(...`, `(DispatchFailure(...`).
pub fn concise(text: &str) -> String {
    let mut from = 0;
    while let Some(pos) = text[from..].find(" (") {
        let at = from + pos;
        if text[at + 2..].starts_with(|c: char| c.is_ascii_uppercase()) {
            return text[..at].to_owned();
        }
        from = at + 2;
    }
    text.to_owned()
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

pub type Outcome<T = ()> = Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_debug_dumps_are_cut() {
        assert_eq!(
            concise("Query: service error: ResourceNotFoundException: not found (ServiceError(ServiceError { x }))"),
            "Query: service error: ResourceNotFoundException: not found"
        );
        assert_eq!(
            concise("dispatch failure: Connection refused (os error 111) (DispatchFailure(x))"),
            "dispatch failure: Connection refused (os error 111)"
        );
        assert_eq!(concise("plain (lower)"), "plain (lower)");
        assert_eq!(concise("ends with ("), "ends with (");
    }
}
