//! `sts:AssumeRole` into the member role: the role must exist in the target account (every
//! account of the organization except the management account, where a service-managed
//! StackSet does not deploy) and its trust policy must admit the caller.

use serde_json::Value;

use super::evaluate::{evaluate_statements, Context, Decision, Question};
use super::policy::{PolicySet, Pseudo};
use super::{member_role_arn, Acting};

/// The role an `AssumeRole` names.
pub(crate) struct RoleTarget<'a> {
    pub arn: &'a str,
    pub partition: &'a str,
    pub account: &'a str,
}

/// Does one `Principal` entry of a trust statement name the caller?
fn names(entry: &str, acting: &Acting<'_>) -> bool {
    if entry == "*" {
        return true;
    }
    // an account id or its root ARN admits every principal of that account (whose own
    // policy must then allow sts:AssumeRole, which is checked separately)
    let account = entry
        .strip_prefix("arn:")
        .and_then(|r| r.split_once(":iam::"))
        .and_then(|(_, r)| r.strip_suffix(":root"))
        .unwrap_or(entry);
    account == acting.account || entry == acting.principal_arn
}

fn principal_matches(principal: Option<&Value>, acting: &Acting<'_>) -> bool {
    let entries: Vec<&str> = match principal {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Object(map)) => match map.get("AWS") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            // Service and Federated principals never name an IAM role session
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    entries.into_iter().any(|e| names(e, acting))
}

/// Whether the member role exists as `target` and its trust policy admits `acting`.
/// `region`: the configured one (`${AWS::Region}`); `requested`: the request's.
pub(crate) fn assume_role(
    set: &PolicySet,
    acting: &Acting<'_>,
    management: &str,
    region: &str,
    requested: &str,
    target: &RoleTarget<'_>,
) -> bool {
    let Some(role) = &set.member_role else {
        return false;
    };
    if target.account == management
        || member_role_arn(role, target.partition, target.account) != target.arn
    {
        return false;
    }
    let pseudo = Pseudo {
        account: target.account.to_string(),
        partition: target.partition.to_string(),
        region: region.to_string(),
    };
    let context = Context::default()
        .with("aws:PrincipalArn", acting.principal_arn.clone())
        .with("aws:PrincipalAccount", acting.account.clone())
        .with("aws:RequestedRegion", requested);
    let question = Question {
        action: "sts:AssumeRole",
        resource: target.arn,
        context: &context,
    };
    let admitting = role
        .trust
        .statement
        .iter()
        .filter(|s| principal_matches(s.principal.as_ref(), acting));
    evaluate_statements(admitting, &question, &pseudo) == Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(trust: &str) -> PolicySet {
        PolicySet::from_json(&format!(
            r#"{{"principals": {{"Fn": {{"arn": "arn:aws:iam::111111111111:role/io/Fn", "policies": []}},
                                 "Other": {{"arn": "arn:aws:iam::111111111111:role/io/Other", "policies": []}}}},
                "member_role": {{"name": "Member", "trust": {trust}}}}}"#
        ))
        .unwrap()
    }

    fn admits(set: &PolicySet, who: &str, account: &str) -> bool {
        let acting = super::super::acting(
            set,
            &super::super::Identity::Function(who.into()),
            "111111111111",
            "us-east-1",
        )
        .unwrap();
        let arn = format!("arn:aws:iam::{account}:role/Member");
        let target = RoleTarget {
            arn: &arn,
            partition: "aws",
            account,
        };
        assume_role(
            set,
            &acting,
            "111111111111",
            "us-east-1",
            "us-east-1",
            &target,
        )
    }

    #[test]
    fn the_account_root_with_a_principal_arn_condition() {
        let s = set(
            r#"{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/io/Fn"}}}]}"#,
        );
        assert!(admits(&s, "Fn", "222222222222"));
        assert!(!admits(&s, "Other", "222222222222"));
        // no member role in the management account
        assert!(!admits(&s, "Fn", "111111111111"));
    }

    #[test]
    fn principals_by_arn_account_or_service() {
        let by_arn = set(
            r#"{"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": ["arn:aws:iam::111111111111:role/io/Other"]}}}"#,
        );
        assert!(admits(&by_arn, "Other", "222222222222"));
        assert!(!admits(&by_arn, "Fn", "222222222222"));
        let by_id = set(
            r#"{"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": "111111111111"}}}"#,
        );
        assert!(admits(&by_id, "Fn", "222222222222"));
        let service = set(
            r#"{"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"Service": "lambda.amazonaws.com"}}}"#,
        );
        assert!(!admits(&service, "Fn", "222222222222"));
        let denied = set(
            r#"{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": "*"},
                              {"Effect": "Deny", "Action": "sts:*", "Principal": {"AWS": "arn:aws:iam::111111111111:role/io/Other"}}]}"#,
        );
        assert!(admits(&denied, "Fn", "222222222222"));
        assert!(!admits(&denied, "Other", "222222222222"));
    }
}
