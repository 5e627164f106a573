//! Which AWS errors pass with time: the one table of retryable errors, for the ledger's
//! calls ([`crate::ledger::LedgerError`]) and every other ([`crate::error::StepError`]).

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes AWS uses for throttling, across the services this project calls.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    // DynamoDB's.
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
];

/// Error codes AWS uses for other conditions that pass with time.
const TRANSIENT_CODES: &[&str] = &[
    "InternalServerException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "IDPCommunicationError",
    // DynamoDB's: a write that met a concurrent transaction or replica write.
    "TransactionConflictException",
    "ReplicatedWriteConflictException",
];

/// Whether an error code means the caller is being throttled.
pub fn is_throttling(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// Whether a service error (HTTP status and code) may pass if the call is tried again later:
/// throttling, a 5xx or 429, or a code AWS uses for a transient condition. The one table
/// of retryable errors, for the ledger's calls and every other.
pub fn is_transient(status: u16, code: &str) -> bool {
    status == 429 || status >= 500 || is_throttling(code) || TRANSIENT_CODES.contains(&code)
}

/// Whether an SDK error may pass if the call is tried again later: a timeout, a dispatch or
/// response failure (the request may not have arrived, or its answer was lost), or a
/// transient service error ([`is_transient`]). Only a request that could not be built is
/// certain to fail again.
pub fn is_transient_sdk<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(ctx) => is_transient(
            ctx.raw().status().as_u16(),
            ctx.err().code().unwrap_or_default(),
        ),
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    }
}
