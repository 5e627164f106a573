//! Ledger errors and the classification of DynamoDB SDK errors.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// What can go wrong talking to the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A fenced write found the lease held by someone else (or the step already moved on):
    /// nothing was changed. The holder must stop working on the step.
    #[error("lease on {key} was lost: another attempt took the step over; nothing was written")]
    LostLease { key: String },
    /// Throttling, a 5xx, a timeout or a connection failure: try again later.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// Validation, access denied, missing table: retrying will not help.
    #[error("ledger request rejected: {0}")]
    Rejected(String),
    /// An item that does not have the ledger's shape.
    #[error("ledger item {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// The requested change does not apply to the step's current state.
    #[error("not allowed: {0}")]
    NotAllowed(String),
}

impl LedgerError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LedgerError::Unavailable(_))
    }
}

/// Maps an SDK error of operation `op` to [`LedgerError`]: what may pass with time
/// (throttling, 5xx, timeouts, connection failures: [`crate::retryable::is_transient_sdk`]) is
/// [`LedgerError::Unavailable`]; everything else is [`LedgerError::Rejected`]. Conditional
/// check failures are handled by each call before this.
pub(crate) fn classify<E>(op: &str, err: SdkError<E, HttpResponse>) -> LedgerError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = format!("{op}: {}", DisplayErrorContext(&err));
    if crate::retryable::is_transient_sdk(&err) {
        LedgerError::Unavailable(text)
    } else {
        LedgerError::Rejected(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn service(status: u16, code: &str) -> SdkError<UpdateItemError, HttpResponse> {
        let err = UpdateItemError::generic(ErrorMetadata::builder().code(code).build());
        let raw = match StatusCode::try_from(status) {
            Ok(status) => HttpResponse::new(status, SdkBody::empty()),
            Err(e) => panic!("bad test status {status}: {e}"),
        };
        SdkError::service_error(err, raw)
    }

    #[test]
    fn sdk_errors_are_classified() {
        for (status, code) in [
            (400, "ProvisionedThroughputExceededException"),
            (400, "ThrottlingException"),
            (400, "RequestLimitExceeded"),
            (500, "InternalServerError"),
            (503, "Whatever"),
        ] {
            let e = classify("UpdateItem", service(status, code));
            assert!(e.is_retryable(), "{status} {code}: {e}");
        }
        for (status, code) in [
            (400, "ValidationException"),
            (400, "ResourceNotFoundException"),
            (400, "AccessDeniedException"),
            (400, "ItemCollectionSizeLimitExceededException"),
        ] {
            let e = classify("UpdateItem", service(status, code));
            assert!(
                matches!(e, LedgerError::Rejected(_)),
                "{status} {code}: {e}"
            );
            assert!(e.to_string().contains("UpdateItem"));
        }
        let timeout: SdkError<UpdateItemError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(classify("UpdateItem", timeout).is_retryable());
        let built: SdkError<UpdateItemError, HttpResponse> =
            SdkError::construction_failure("bad input");
        assert!(!classify("UpdateItem", built).is_retryable());
    }
}
