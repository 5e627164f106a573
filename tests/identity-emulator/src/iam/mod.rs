//! IAM for every call when the config has a [`PolicySet`]: who calls (from the access key
//! id), what each call needs (its action, resource and dependent actions), the decision,
//! and what was observed. Without a policy set every call is allowed.

mod actions;
mod evaluate;
pub(crate) mod forward;
mod observed;
mod policy;
mod trust;

pub use policy::{
    Conditions, Effect, MemberRole, PolicyDocument, PolicySet, PrincipalPolicies, Statement,
    MEMBER_ROLE,
};

pub(crate) use actions::operation_checks;
pub(crate) use observed::Observed;
pub(crate) use trust::{assume_role, RoleTarget};

use evaluate::{Context, Decision, Question};
use policy::Pseudo;

/// Whose policies a caller acts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Not evaluated: no policy set, the management account's root user (any key the
    /// emulator neither issued nor knows as a principal), or a session of a role other
    /// than the member role (only the root user can get one).
    Unevaluated,
    /// A stack role named in `principals`, acting in the management account.
    Function(String),
    /// A session of the member role in `account`.
    Member { account: String, partition: String },
}

/// One authorization question of a call: its action or one of its dependent actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub action: String,
    pub resource: String,
    /// Extra request context (e.g. `aws:CalledViaLast`, `iam:AWSServiceName`).
    pub context: Vec<(&'static str, String)>,
}

impl Check {
    pub(crate) fn new(action: impl Into<String>, resource: impl Into<String>) -> Check {
        Check {
            action: action.into(),
            resource: resource.into(),
            context: Vec::new(),
        }
    }
}

/// A refused check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denial {
    pub action: String,
    pub resource: String,
    pub explicit: bool,
}

impl Denial {
    /// AWS's message for an identity-based denial.
    pub(crate) fn message(&self, caller_arn: &str) -> String {
        let why = if self.explicit {
            "with an explicit deny in an identity-based policy".to_string()
        } else {
            format!(
                "because no identity-based policy allows the {} action",
                self.action
            )
        };
        format!(
            "User: {caller_arn} is not authorized to perform: {} on resource: {} {why}",
            self.action, self.resource
        )
    }
}

/// The policies, principal ARN and pseudo parameters of an evaluated identity.
pub(crate) struct Acting<'a> {
    pub name: &'a str,
    pub principal_arn: String,
    pub account: String,
    pub policies: &'a [PolicyDocument],
    pub pseudo: Pseudo,
}

/// Who `identity` is under `set`; `None` when it is not evaluated. `region` is the
/// stack's (the configured Region): what `${AWS::Region}` stands for.
pub(crate) fn acting<'a>(
    set: &'a PolicySet,
    identity: &Identity,
    management: &str,
    region: &str,
) -> Option<Acting<'a>> {
    match identity {
        Identity::Unevaluated => None,
        Identity::Function(name) => {
            let (key, p) = set.principals.get_key_value(name)?;
            Some(Acting {
                name: key,
                principal_arn: p.arn.clone(),
                account: management.to_string(),
                policies: &p.policies,
                pseudo: Pseudo {
                    account: management.to_string(),
                    partition: "aws".to_string(),
                    region: region.to_string(),
                },
            })
        }
        Identity::Member { account, partition } => {
            let m = set.member_role.as_ref()?;
            Some(Acting {
                name: MEMBER_ROLE,
                principal_arn: member_role_arn(m, partition, account),
                account: account.clone(),
                policies: &m.policies,
                pseudo: Pseudo {
                    account: account.clone(),
                    partition: partition.clone(),
                    region: region.to_string(),
                },
            })
        }
    }
}

/// `arn:<p>:iam::<account>:role<path><name>`.
pub(crate) fn member_role_arn(m: &MemberRole, partition: &str, account: &str) -> String {
    let path = if m.path.starts_with('/') {
        m.path.clone()
    } else {
        format!("/{}", m.path)
    };
    let path = if path.ends_with('/') {
        path
    } else {
        format!("{path}/")
    };
    format!("arn:{partition}:iam::{account}:role{path}{}", m.name)
}

/// The last path segment of a role ARN (`.../role/path/Name` -> `Name`).
pub(crate) fn role_name(arn: &str) -> &str {
    arn.rsplit(['/', ':']).next().unwrap_or(arn)
}

/// The ARN a caller shows in AWS errors and `GetCallerIdentity`.
pub(crate) fn function_caller_arn(set: &PolicySet, name: &str, management: &str) -> String {
    let role = set
        .principals
        .get(name)
        .map(|p| role_name(&p.arn))
        .unwrap_or(name);
    format!("arn:aws:sts::{management}:assumed-role/{role}/function")
}

/// Evaluate every check (all are observed), and return the first denial.
pub(crate) fn authorize(
    acting: &Acting<'_>,
    region: &str,
    checks: &[Check],
    observed: &mut Observed,
) -> Result<(), Denial> {
    let mut first = None;
    for check in checks {
        let mut context = Context::default()
            .with("aws:PrincipalArn", acting.principal_arn.clone())
            .with("aws:PrincipalAccount", acting.account.clone())
            .with("aws:RequestedRegion", region);
        for (key, value) in &check.context {
            context = context.with(key, value.clone());
        }
        let question = Question {
            action: &check.action,
            resource: &check.resource,
            context: &context,
        };
        let decision = evaluate::evaluate(acting.policies, &question, &acting.pseudo);
        observed.record(acting.name, &check.action, decision == Decision::Allow);
        if decision != Decision::Allow && first.is_none() {
            first = Some(Denial {
                action: check.action.clone(),
                resource: check.resource.clone(),
                explicit: decision == Decision::ExplicitDeny,
            });
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_and_arns() {
        assert_eq!(
            role_name("arn:aws:iam::1:role/identity-onboarding/Fn"),
            "Fn"
        );
        assert_eq!(role_name("arn:aws:iam::1:role/Fn"), "Fn");
        let mut m = MemberRole {
            name: "M".into(),
            path: "/".into(),
            trust: serde_json::from_str(r#"{"Statement": []}"#).unwrap(),
            policies: vec![],
        };
        assert_eq!(member_role_arn(&m, "aws", "2"), "arn:aws:iam::2:role/M");
        m.path = "/team/".into();
        assert_eq!(
            member_role_arn(&m, "aws-cn", "2"),
            "arn:aws-cn:iam::2:role/team/M"
        );
    }

    #[test]
    fn messages_say_why() {
        let d = Denial {
            action: "sso:CreateInstance".into(),
            resource: "*".into(),
            explicit: false,
        };
        assert_eq!(
            d.message("arn:aws:sts::1:assumed-role/R/function"),
            "User: arn:aws:sts::1:assumed-role/R/function is not authorized to perform: \
             sso:CreateInstance on resource: * because no identity-based policy allows the \
             sso:CreateInstance action"
        );
        let d = Denial {
            explicit: true,
            ..d
        };
        assert!(d
            .message("u")
            .ends_with("on resource: * with an explicit deny in an identity-based policy"));
    }
}
