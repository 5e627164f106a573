//! Identity-policy evaluation: an explicit Deny wins, then any Allow, else the implicit
//! deny. Actions match case-insensitively, resources case-sensitively, both with `*`/`?`.

use std::collections::BTreeMap;

use super::policy::{Effect, PolicyDocument, Pseudo, Statement};

/// `*` any run of characters (also empty), `?` exactly one; everything else literal.
pub(crate) fn glob(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let same = |p: char, v: char| {
        if ignore_case {
            p.eq_ignore_ascii_case(&v)
        } else {
            p == v
        }
    };
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // iterative matching with one backtrack point: linear for the patterns IAM allows
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && same(p[pi], v[vi]))) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The request context: condition key (any case) -> values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    keys: BTreeMap<String, Vec<String>>,
}

impl Context {
    pub(crate) fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.keys
            .entry(key.to_ascii_lowercase())
            .or_default()
            .push(value.into());
        self
    }

    fn get(&self, key: &str) -> Option<&Vec<String>> {
        self.keys.get(&key.to_ascii_lowercase())
    }
}

/// One authorization question: may the principal do `action` on `resource`?
#[derive(Debug, Clone)]
pub(crate) struct Question<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub context: &'a Context,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// The condition operators evaluated (each also with `IfExists`). Any other operator
/// (numeric, date, IP, `ForAnyValue:`/`ForAllValues:` sets, ...) makes its statement
/// not match: the README lists them as not evaluated.
pub(crate) const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
    "Bool",
    "Null",
];

/// Does the condition block hold? `None` for an operator not implemented.
fn condition_holds(operator: &str, key: &str, values: &[String], ctx: &Context) -> Option<bool> {
    let (base, if_exists) = match operator.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (operator, false),
    };
    if !OPERATORS.contains(&base) || (base == "Null" && if_exists) {
        return None;
    }
    let present = ctx.get(key);
    if base == "Null" {
        // "true": the key must be absent
        let want_absent = values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        return Some(want_absent == present.is_none());
    }
    let negated = base.contains("Not");
    let Some(actual) = present else {
        // a missing key: negated operators hold, positive ones only with IfExists
        return Some(negated || if_exists);
    };
    let matches_one = |pattern: &str, value: &str| match base {
        "StringEquals" | "StringNotEquals" | "ArnEquals" | "ArnNotEquals" => pattern == value,
        "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase" => {
            pattern.eq_ignore_ascii_case(value)
        }
        "StringLike" | "StringNotLike" | "ArnLike" | "ArnNotLike" => glob(pattern, value, false),
        "Bool" => pattern.eq_ignore_ascii_case(value),
        _ => false,
    };
    let any = actual
        .iter()
        .any(|value| values.iter().any(|p| matches_one(p, value)));
    Some(if negated { !any } else { any })
}

fn statement_matches(s: &Statement, q: &Question<'_>, pseudo: &Pseudo) -> bool {
    let any = |patterns: &[String], value: &str, ignore_case: bool| {
        patterns
            .iter()
            .any(|p| glob(&pseudo.apply(p), value, ignore_case))
    };
    let action_ok = match (&s.action, &s.not_action) {
        (Some(a), _) => any(a, q.action, true),
        (None, Some(n)) => !any(n, q.action, true),
        (None, None) => false,
    };
    let resource_ok = match (&s.resource, &s.not_resource) {
        (Some(r), _) => any(r, q.resource, false),
        (None, Some(n)) => !any(n, q.resource, false),
        // trust policies: the resource is the role itself
        (None, None) => true,
    };
    action_ok
        && resource_ok
        && s.condition.iter().all(|(operator, keys)| {
            keys.iter().all(|(key, values)| {
                let values: Vec<String> = values.iter().map(|v| pseudo.apply(v)).collect();
                condition_holds(operator, key, &values, q.context).unwrap_or(false)
            })
        })
}

/// Evaluate identity-based policies for one question.
pub(crate) fn evaluate(docs: &[PolicyDocument], q: &Question<'_>, pseudo: &Pseudo) -> Decision {
    evaluate_statements(docs.iter().flat_map(|d| &d.statement), q, pseudo)
}

pub(crate) fn evaluate_statements<'s>(
    statements: impl Iterator<Item = &'s Statement>,
    q: &Question<'_>,
    pseudo: &Pseudo,
) -> Decision {
    let mut allowed = false;
    for s in statements {
        if statement_matches(s, q, pseudo) {
            match s.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo() -> Pseudo {
        Pseudo {
            account: "222222222222".into(),
            partition: "aws".into(),
            region: "us-east-1".into(),
        }
    }

    fn doc(json: &str) -> PolicyDocument {
        serde_json::from_str(json).unwrap()
    }

    fn decide(d: &PolicyDocument, action: &str, resource: &str, ctx: &Context) -> Decision {
        let q = Question {
            action,
            resource,
            context: ctx,
        };
        evaluate(std::slice::from_ref(d), &q, &pseudo())
    }

    #[test]
    fn globs() {
        assert!(glob("*", "", false));
        assert!(glob("a*c", "abbbc", false));
        assert!(glob("a?c", "abc", false));
        assert!(!glob("a?c", "ac", false));
        assert!(glob("sso:Describe*", "SSO:describeinstance", true));
        assert!(!glob("sso:Describe*", "SSO:describeinstance", false));
        assert!(glob(
            "arn:aws:iam::*:role/*Member*",
            "arn:aws:iam::2:role/x/MemberRole",
            false
        ));
        assert!(!glob(
            "arn:aws:iam::*:role/Member",
            "arn:aws:iam::2:role/Members",
            false
        ));
        assert!(glob("*a*b*c*", "xxaxxbxxcxx", false));
        assert!(!glob("*a*b*c*", "xxaxxcxxbxx", false));
        assert!(glob("ab**", "ab", false));
        // literal `*` in a value only matches a `*` (or wildcard) in the pattern
        assert!(!glob("arn:aws:sso:::instance/*", "*", false));
        assert!(glob("é?", "éü", false));
    }

    #[test]
    fn deny_wins_then_allow_then_implicit_deny() {
        let d = doc(r#"{"Statement": [
              {"Effect": "Allow", "Action": "sso:*", "Resource": "*"},
              {"Effect": "Deny", "Action": "sso:DeleteInstance", "Resource": "*"}]}"#);
        let ctx = Context::default();
        assert_eq!(
            decide(&d, "sso:DescribeInstance", "x", &ctx),
            Decision::Allow
        );
        assert_eq!(
            decide(&d, "sso:deleteinstance", "x", &ctx),
            Decision::ExplicitDeny
        );
        assert_eq!(
            decide(&d, "mpa:GetIdentitySource", "x", &ctx),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn not_action_not_resource_and_pseudo_parameters() {
        let d = doc(r#"{"Statement": [
              {"Effect": "Allow", "NotAction": ["iam:*", "events:*"],
               "NotResource": "arn:${AWS::Partition}:sso:::instance/ssoins-secret"},
              {"Effect": "Allow", "Action": "events:PutEvents",
               "Resource": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/b"}]}"#);
        let ctx = Context::default();
        assert_eq!(
            decide(&d, "sso:X", "arn:aws:sso:::instance/ssoins-1", &ctx),
            Decision::Allow
        );
        assert_eq!(
            decide(&d, "sso:X", "arn:aws:sso:::instance/ssoins-secret", &ctx),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(&d, "iam:PassRole", "*", &ctx),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(
                &d,
                "events:PutEvents",
                "arn:aws:events:us-east-1:222222222222:event-bus/b",
                &ctx
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &d,
                "events:PutEvents",
                "arn:aws:events:us-east-1:333333333333:event-bus/b",
                &ctx
            ),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn conditions() {
        let d = doc(
            r#"{"Statement": [{"Effect": "Allow", "Action": "sso:PutApplicationGrant", "Resource": "*",
               "Condition": {"StringEqualsIfExists": {"aws:CalledViaLast": "mpa.amazonaws.com"},
                             "ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/identity-onboarding/*"]}}}]}"#,
        );
        let fn_role = Context::default().with(
            "aws:PrincipalArn",
            "arn:aws:iam::111111111111:role/identity-onboarding/Fn",
        );
        assert_eq!(
            decide(&d, "sso:PutApplicationGrant", "a", &fn_role),
            Decision::Allow
        );
        let via_mpa = fn_role
            .clone()
            .with("AWS:CalledViaLast", "mpa.amazonaws.com");
        assert_eq!(
            decide(&d, "sso:PutApplicationGrant", "a", &via_mpa),
            Decision::Allow
        );
        let via_other = fn_role
            .clone()
            .with("aws:CalledViaLast", "cloudformation.amazonaws.com");
        assert_eq!(
            decide(&d, "sso:PutApplicationGrant", "a", &via_other),
            Decision::ImplicitDeny
        );
        let other_role = Context::default().with("aws:PrincipalArn", "arn:aws:iam::1:role/Other");
        assert_eq!(
            decide(&d, "sso:PutApplicationGrant", "a", &other_role),
            Decision::ImplicitDeny
        );

        let ctx = Context::default().with("iam:AWSServiceName", "sso.amazonaws.com");
        let holds = |op: &str, key: &str, v: &str| condition_holds(op, key, &[v.to_string()], &ctx);
        assert_eq!(
            holds("StringEquals", "iam:awsservicename", "sso.amazonaws.com"),
            Some(true)
        );
        assert_eq!(
            holds("StringNotEquals", "iam:AWSServiceName", "sso.amazonaws.com"),
            Some(false)
        );
        assert_eq!(holds("StringNotEquals", "aws:Absent", "x"), Some(true));
        assert_eq!(holds("StringEquals", "aws:Absent", "x"), Some(false));
        assert_eq!(
            holds("StringLike", "iam:AWSServiceName", "sso.*"),
            Some(true)
        );
        assert_eq!(
            holds("StringNotLike", "iam:AWSServiceName", "sso.*"),
            Some(false)
        );
        assert_eq!(holds("ArnNotLike", "aws:Absent", "arn:*"), Some(true));
        assert_eq!(holds("Bool", "aws:Absent", "true"), Some(false));
        assert_eq!(holds("BoolIfExists", "aws:Absent", "true"), Some(true));
        assert_eq!(holds("Null", "aws:Absent", "true"), Some(true));
        assert_eq!(holds("Null", "iam:AWSServiceName", "true"), Some(false));
        // not implemented: the statement does not match
        assert_eq!(holds("NumericLessThan", "iam:AWSServiceName", "1"), None);
        assert_eq!(
            holds(
                "ForAnyValue:StringEquals",
                "iam:AWSServiceName",
                "sso.amazonaws.com"
            ),
            None
        );
        let numeric = doc(
            r#"{"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
               "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "1"}}}]}"#,
        );
        assert_eq!(decide(&numeric, "sso:X", "a", &ctx), Decision::ImplicitDeny);
    }
}
