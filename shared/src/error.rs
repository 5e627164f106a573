//! One error type for everything a step does, classified once: retryable (keep the claim's
//! token, fail the delivery, let the queue bring it back) or permanent (record FAILED, announce,
//! acknowledge).

use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ledger::{ErrorReason, LedgerError};

/// The codes the engine gives its own errors, as the ledger, the failure events and
/// `onboarding status` show them (AWS's errors keep AWS's codes).
pub mod code {
    /// Another delivery holds the step's lease: this one comes back later.
    pub const IN_PROGRESS_ELSEWHERE: &str = "InProgressElsewhere";
    /// Another delivery holds the step's update lease.
    pub const UPDATE_IN_PROGRESS_ELSEWHERE: &str = "UpdateInProgressElsewhere";
    /// The step's desired state changed while an update was applied: applied again.
    pub const CHANGED_MEANWHILE: &str = "ChangedMeanwhile";
    /// A create met a Conflict whose resource no lookup finds yet.
    pub const CONFLICT_NOT_PROPAGATED: &str = "ConflictNotPropagated";
    /// The invocation's deadline came before the work was done: nothing acted after it.
    pub const DEADLINE_REACHED: &str = "DeadlineReached";
    /// The resource exists and is not ready yet.
    pub const NOT_READY: &str = "NotReady";
    /// PutEvents did not take the event: the outcome stays recorded for the next sender.
    pub const NOT_ANNOUNCED: &str = "NotAnnounced";
    /// A ledger item whose request cannot be rebuilt (the reconciler skips it).
    pub const NOT_REBUILDABLE: &str = "NotRebuildable";
    /// PutEvents answered with the entry failed.
    pub const PUT_EVENTS_FAILED_ENTRY: &str = "PutEventsFailedEntry";
    /// An earlier record of the same FIFO group failed: this one waits its turn.
    pub const FIFO_GROUP_BLOCKED: &str = "FifoGroupBlocked";
    /// The SQS batch itself could not be read.
    pub const MALFORMED_BATCH: &str = "MalformedBatch";
    /// A fenced write found the lease held by someone else.
    pub const LOST_LEASE: &str = "LostLease";
    /// DynamoDB throttled, failed or could not be reached.
    pub const LEDGER_UNAVAILABLE: &str = "LedgerUnavailable";
    /// DynamoDB refused the request (validation, access denied, no table).
    pub const LEDGER_REJECTED: &str = "LedgerRejected";
    /// A ledger item without the ledger's shape.
    pub const LEDGER_CORRUPT: &str = "LedgerCorrupt";
    /// The change does not apply to the step's current state.
    pub const NOT_ALLOWED: &str = "NotAllowed";
    /// The member role cannot be assumed yet (a new account's role not deployed yet).
    pub const MEMBER_ROLE_UNAVAILABLE: &str = "MemberRoleUnavailable";
}

pub use crate::retryable::is_throttling;
use crate::retryable::is_transient;

/// Whether an error code is IAM's refusal (AWS's message names the principal, the action
/// and the resource).
pub fn is_access_denied(code: &str) -> bool {
    code == "AccessDenied" || code == "AccessDeniedException"
}

/// What an operator does about a refusal: the shipped roles are the only source of what each
/// principal may do, so the fix is in them (or in the SCP that overrides them).
const ACCESS_DENIED_ADVICE: &str = " (a permission is missing: grant the action above to the \
     role that made the call - the member role in member-role.yaml, updated everywhere through \
     its StackSet, or the function's role in template.yaml - or lift the SCP that denies it; \
     then `onboarding retry`)";

/// What the engine does with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Retrying will not help: the step is recorded FAILED and the failure announced.
    Permanent,
    /// Passes with time: the claim's token is kept and the delivery comes back.
    Retryable,
    /// The target is not reachable *yet* (a new account's member role, a write that has not
    /// propagated): retried with growing delays inside the grace window measured from the
    /// step's first attempt, permanent after it.
    NotYet,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {}", .reason.code, if .reason.retryable { "retryable" } else { "permanent" }, .reason.message)]
pub struct StepError {
    /// What is recorded (`retryable` is the class as the ledger stores it).
    reason: ErrorReason,
    class: Class,
    /// When the delivery should come back, if sooner or later than the queue's default.
    retry_after: Option<Duration>,
}

impl StepError {
    pub fn new(class: Class, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: ErrorReason {
                retryable: class != Class::Permanent,
                code: code.into(),
                message: message.into(),
            },
            class,
            retry_after: None,
        }
    }

    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Class::Retryable, code, message)
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Class::Permanent, code, message)
    }

    pub fn not_yet(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Class::NotYet, code, message)
    }

    /// The same error, asking to be delivered again after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn is_retryable(&self) -> bool {
        self.class != Class::Permanent
    }

    pub fn is_not_yet(&self) -> bool {
        self.class == Class::NotYet
    }

    /// When the delivery should come back (None: the queue's visibility timeout decides).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    pub fn code(&self) -> &str {
        &self.reason.code
    }

    pub fn reason(&self) -> &ErrorReason {
        &self.reason
    }

    /// The same error made permanent, with `message` (the grace window is over).
    pub fn into_permanent(self, message: impl Into<String>) -> Self {
        Self::permanent(self.reason.code, message)
    }

    /// Classifies any AWS SDK error. `action` names the call for the message
    /// ("sso-admin CreateInstance"). Transport failures, timeouts, throttling and 5xx are
    /// retryable; every other service error (validation, access denied, conflict, quota,
    /// not found, parameter mismatch) is permanent.
    pub fn from_sdk<E>(action: &str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &err {
            SdkError::ServiceError(ctx) => {
                let status = ctx.raw().status().as_u16();
                let code = ctx.err().code().unwrap_or("Unknown").to_string();
                let message = ctx
                    .err()
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("HTTP {status}"));
                let mut message = format!("{action}: {message}");
                if is_access_denied(&code) {
                    message.push_str(ACCESS_DENIED_ADVICE);
                }
                if is_transient(status, &code) {
                    Self::retryable(code, message)
                } else {
                    Self::permanent(code, message)
                }
            }
            SdkError::TimeoutError(_) => Self::retryable("Timeout", format!("{action}: timed out")),
            SdkError::DispatchFailure(f) => {
                // Credentials that could not be resolved are a configuration problem, but
                // they also occur while the credential endpoint is unavailable: retry.
                Self::retryable(
                    "DispatchFailure",
                    format!("{action}: {}", display_chain(&err, f.is_user())),
                )
            }
            SdkError::ResponseError(_) => Self::retryable(
                "ResponseError",
                format!("{action}: {}", display_chain(&err, false)),
            ),
            SdkError::ConstructionFailure(_) => Self::permanent(
                "RequestConstruction",
                format!("{action}: {}", display_chain(&err, false)),
            ),
            _ => Self::retryable(
                "Unknown",
                format!("{action}: {}", display_chain(&err, false)),
            ),
        }
    }
}

impl From<LedgerError> for StepError {
    fn from(err: LedgerError) -> Self {
        let code = match &err {
            LedgerError::LostLease { .. } => code::LOST_LEASE,
            LedgerError::Unavailable(_) => code::LEDGER_UNAVAILABLE,
            LedgerError::Rejected(_) => code::LEDGER_REJECTED,
            LedgerError::Corrupt { .. } => code::LEDGER_CORRUPT,
            LedgerError::NotAllowed(_) => code::NOT_ALLOWED,
        };
        if err.is_retryable() {
            Self::retryable(code, err.to_string())
        } else {
            Self::permanent(code, err.to_string())
        }
    }
}

/// The error and its sources on one line: SDK errors hide the useful part in `source()`.
fn display_chain(err: &dyn std::error::Error, user: bool) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if user {
        text.push_str(" (check the endpoint and credentials configuration)");
    }
    text
}
