//! The business key of a step: where it lives in the ledger.

use std::fmt;

/// Scope prefix of steps that belong to one member account.
pub const ACCOUNT_SCOPE_PREFIX: &str = "account#";
/// Scope prefix of steps that exist once per organization instance of IAM Identity Center.
pub const ORG_SCOPE_PREFIX: &str = "org#";

/// One step at its scope: the ledger item's partition key (`scope`) and sort key (`step`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct StepKey {
    pub scope: String,
    pub step: String,
}

impl StepKey {
    /// A step of one member account: scope `account#<account_id>`.
    pub fn account(account_id: &str, step: &str) -> Self {
        StepKey {
            scope: format!("{ACCOUNT_SCOPE_PREFIX}{account_id}"),
            step: step.to_owned(),
        }
    }

    /// A step that exists once per organization: scope `org#<instance_arn>`.
    pub fn org(instance_arn: &str, step: &str) -> Self {
        StepKey {
            scope: format!("{ORG_SCOPE_PREFIX}{instance_arn}"),
            step: step.to_owned(),
        }
    }

    /// The account id of an account-scoped key.
    pub fn account_id(&self) -> Option<&str> {
        self.scope.strip_prefix(ACCOUNT_SCOPE_PREFIX)
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.scope, self.step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_display() {
        let key = StepKey::account("123456789012", "identity-center-instance");
        assert_eq!(key.scope, "account#123456789012");
        assert_eq!(key.account_id(), Some("123456789012"));
        assert_eq!(
            key.to_string(),
            "account#123456789012/identity-center-instance"
        );
        let org = StepKey::org(
            "arn:aws:sso:::instance/ssoins-1234567890abcdef",
            "approval-identity-source",
        );
        assert_eq!(
            org.scope,
            "org#arn:aws:sso:::instance/ssoins-1234567890abcdef"
        );
        assert_eq!(org.account_id(), None);
    }
}
