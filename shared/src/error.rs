//! One error type for everything a step does, classified once: retryable (keep the claim's
//! token, fail the delivery, let the queue bring it back) or permanent (record FAILED, announce,
//! acknowledge).

use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ledger::{ErrorReason, LedgerError};

/// Error codes AWS uses for transient conditions, across the services this project calls.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "InternalServerException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "IDPCommunicationError",
];

/// Whether an error code means the caller is being throttled.
pub fn is_throttling(code: &str) -> bool {
    [
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    ]
    .contains(&code)
}

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

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {}", .reason.code, if .reason.retryable { "retryable" } else { "permanent" }, .reason.message)]
pub struct StepError {
    reason: ErrorReason,
    /// The target is not reachable *yet* (a new account's member role, a write that has not
    /// propagated): retryable inside the grace window, permanent after it.
    not_yet: bool,
    /// When the delivery should come back, if sooner or later than the queue's default.
    retry_after: Option<Duration>,
}

impl StepError {
    fn new(retryable: bool, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: ErrorReason {
                retryable,
                code: code.into(),
                message: message.into(),
            },
            not_yet: false,
            retry_after: None,
        }
    }

    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(true, code, message)
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(false, code, message)
    }

    /// Not reachable yet: the engine retries it with growing delays during the grace window
    /// measured from the step's first attempt, and records it permanently after that.
    pub fn not_yet(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            not_yet: true,
            ..Self::new(true, code, message)
        }
    }

    /// The same error, asking to be delivered again after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.reason.retryable
    }

    pub fn is_not_yet(&self) -> bool {
        self.not_yet && self.reason.retryable
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
                if status == 429 || status >= 500 || RETRYABLE_CODES.contains(&code.as_str()) {
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
            LedgerError::LostLease { .. } => "LostLease",
            LedgerError::Unavailable(_) => "LedgerUnavailable",
            LedgerError::Rejected(_) => "LedgerRejected",
            LedgerError::Corrupt { .. } => "LedgerCorrupt",
            LedgerError::NotAllowed(_) => "NotAllowed",
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
