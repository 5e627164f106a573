//! An account's state in AWS Organizations, for the reconciler: when an account's member role
//! can no longer be assumed, is the account closed or gone (its steps are retired), or is it
//! ACTIVE and unreachable (a human must look)?
//!
//! Organizations is a global service: its one endpoint (us-east-1 in the `aws` partition) is
//! what the SDK resolves from any Region. `DescribeAccount` is allowed in the management
//! account and a delegated administrator.

use aws_config::SdkConfig;
use aws_sdk_organizations::error::ProvideErrorMetadata;

use crate::error::StepError;

/// The `State` values of an account that can no longer be reached for good: closing, closed
/// (AWS may reopen a `SUSPENDED` account within 90 days; a request newer than the retirement
/// then starts its steps again).
const CLOSED_STATES: &[&str] = &["PENDING_CLOSURE", "SUSPENDED", "CLOSED"];

/// The error code of an account that is not (or no longer) in the caller's organization.
const ACCOUNT_NOT_FOUND: &str = "AccountNotFoundException";

/// What Organizations says about an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountState {
    /// `ACTIVE`: it should be reachable.
    Active,
    /// Closing, closed, or not in the organization (`state` says which, in words).
    Gone { state: String },
    /// Another state (`PENDING_ACTIVATION`, or one this version does not know): not retired.
    Other(String),
}

pub struct Organizations {
    client: aws_sdk_organizations::Client,
}

impl Organizations {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_organizations::Client::new(config),
        }
    }

    /// The account's state: one `DescribeAccount`.
    pub async fn account_state(&self, account_id: &str) -> Result<AccountState, StepError> {
        let out = match self
            .client
            .describe_account()
            .account_id(account_id)
            .send()
            .await
        {
            Ok(out) => out,
            // "We can't find an AWS account with the AccountId that you specified": it left
            // the organization (removed, left, or closed and cleaned up after 90 days). AWS
            // returns the same code when the caller's own account is in no organization, in
            // which case nothing of this project works (no member role, no events).
            Err(e) if e.code() == Some(ACCOUNT_NOT_FOUND) => {
                return Ok(AccountState::Gone {
                    state: format!("not in the organization ({ACCOUNT_NOT_FOUND})"),
                })
            }
            Err(e) => {
                return Err(StepError::from_sdk(
                    &format!("organizations DescribeAccount {account_id}"),
                    e,
                ))
            }
        };
        let account = out.account();
        // `State` is the field to read: `Status` is deprecated (removed after 2026-09-09).
        // Only an answer without `State` (an endpoint or a stand-in that predates it) falls
        // back to `Status`, whose values (`ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`) are
        // `State`'s. moto (5.2) sets both, and both say `SUSPENDED` after CloseAccount.
        let state = account
            .and_then(|a| a.state())
            .map(|s| s.as_str().to_owned());
        #[allow(deprecated)]
        let state = state.or_else(|| {
            account
                .and_then(|a| a.status())
                .map(|s| s.as_str().to_owned())
        });
        Ok(match state.as_deref() {
            Some("ACTIVE") => AccountState::Active,
            Some(s) if CLOSED_STATES.contains(&s) => AccountState::Gone {
                state: s.to_owned(),
            },
            Some(s) => AccountState::Other(s.to_owned()),
            None => AccountState::Other("not given (DescribeAccount returned no State)".into()),
        })
    }
}
