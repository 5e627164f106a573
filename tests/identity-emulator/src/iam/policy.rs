//! Policy documents as the renderer prints them, parsed into statements, with
//! `${...}` placeholders bound per test and AWS pseudo parameters per account.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The principal name that [`PolicySet::without_action`] and observations use for the
/// member role.
pub const MEMBER_ROLE: &str = "member_role";

/// The identity policies of the stack's roles and the member role (with its trust policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    /// Principal name (also its access key id) -> its role.
    pub principals: BTreeMap<String, PrincipalPolicies>,
    /// The role deployed to every member account; absent: no role to assume anywhere.
    #[serde(default)]
    pub member_role: Option<MemberRole>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalPolicies {
    /// The role ARN, `arn:<p>:iam::<account>:role/[path/]<name>`.
    pub arn: String,
    #[serde(default)]
    pub policies: Vec<PolicyDocument>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    pub name: String,
    #[serde(default = "root_path")]
    pub path: String,
    pub trust: PolicyDocument,
    #[serde(default)]
    pub policies: Vec<PolicyDocument>,
}

fn root_path() -> String {
    "/".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    #[serde(rename = "Version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(rename = "Id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "Statement", deserialize_with = "one_or_many")]
    pub statement: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// operator -> condition key -> values (booleans and numbers kept as strings).
pub type Conditions = BTreeMap<String, BTreeMap<String, Vec<String>>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    #[serde(rename = "Sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(rename = "Effect")]
    pub effect: Effect,
    #[serde(rename = "Action", default, deserialize_with = "opt_one_or_many")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Vec<String>>,
    #[serde(rename = "NotAction", default, deserialize_with = "opt_one_or_many")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_action: Option<Vec<String>>,
    #[serde(rename = "Resource", default, deserialize_with = "opt_one_or_many")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Vec<String>>,
    #[serde(rename = "NotResource", default, deserialize_with = "opt_one_or_many")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_resource: Option<Vec<String>>,
    #[serde(rename = "Condition", default, deserialize_with = "conditions")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub condition: Conditions,
    /// Trust policies only: `{"AWS": arn | [arns]}`, `{"Service": ...}` or `"*"`.
    #[serde(rename = "Principal", default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

fn one_or_many<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(t) => vec![t],
        OneOrMany::Many(v) => v,
    })
}

fn opt_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    one_or_many(d).map(Some)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn conditions<'de, D: Deserializer<'de>>(d: D) -> Result<Conditions, D::Error> {
    use serde::de::Error;
    let raw: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::deserialize(d)?;
    let mut out = Conditions::new();
    for (operator, keys) in raw {
        let mut entry = BTreeMap::new();
        for (key, value) in keys {
            let values = match &value {
                Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
                other => scalar(other).map(|s| vec![s]),
            }
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "condition {operator} {key}: values must be strings, booleans or numbers"
                ))
            })?;
            entry.insert(key, values);
        }
        out.insert(operator, entry);
    }
    Ok(out)
}

/// AWS pseudo parameters: substituted per account at evaluation, never by `bind`.
pub(crate) const PSEUDO: &[&str] = &["AWS::AccountId", "AWS::Partition", "AWS::Region"];

/// The values of the pseudo parameters where a principal acts.
#[derive(Debug, Clone)]
pub(crate) struct Pseudo {
    pub account: String,
    pub partition: String,
    pub region: String,
}

impl Pseudo {
    /// `text` with `${AWS::AccountId}`, `${AWS::Partition}`, `${AWS::Region}` replaced.
    pub(crate) fn apply(&self, text: &str) -> String {
        if !text.contains("${AWS::") {
            return text.to_string();
        }
        text.replace("${AWS::AccountId}", &self.account)
            .replace("${AWS::Partition}", &self.partition)
            .replace("${AWS::Region}", &self.region)
    }
}

/// Replace every `${Name}` bound in `bindings`; pseudo parameters stay; any other
/// placeholder is an error naming it.
fn substitute(text: &str, bindings: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated placeholder in {text:?}"));
        };
        let name = &after[..end];
        match bindings.get(name) {
            Some(value) => out.push_str(value),
            None if PSEUDO.contains(&name) => out.push_str(&rest[start..start + 3 + end]),
            None => return Err(format!("unbound placeholder ${{{name}}} in {text:?}")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

type Edit<'a> = dyn FnMut(&str) -> Result<String, String> + 'a;

fn map_list(list: &mut Option<Vec<String>>, f: &mut Edit<'_>) -> Result<(), String> {
    for item in list.iter_mut().flatten() {
        *item = f(item)?;
    }
    Ok(())
}

fn map_value(value: &mut Value, f: &mut Edit<'_>) -> Result<(), String> {
    match value {
        Value::String(s) => *s = f(s)?,
        Value::Array(items) => {
            for item in items {
                map_value(item, f)?;
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                map_value(item, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Statement {
    fn map_strings(&mut self, f: &mut Edit<'_>) -> Result<(), String> {
        map_list(&mut self.action, f)?;
        map_list(&mut self.not_action, f)?;
        map_list(&mut self.resource, f)?;
        map_list(&mut self.not_resource, f)?;
        for keys in self.condition.values_mut() {
            for values in keys.values_mut() {
                for v in values.iter_mut() {
                    *v = f(v)?;
                }
            }
        }
        if let Some(p) = &mut self.principal {
            map_value(p, f)?;
        }
        Ok(())
    }

    fn check(&self, trust: bool) -> Result<(), String> {
        let which = self.sid.as_deref().unwrap_or("(no Sid)");
        if self.action.is_some() == self.not_action.is_some() {
            return Err(format!(
                "statement {which}: exactly one of Action and NotAction"
            ));
        }
        if trust {
            if self.principal.is_none() {
                return Err(format!("trust statement {which}: Principal is required"));
            }
        } else {
            if self.resource.is_some() == self.not_resource.is_some() {
                return Err(format!(
                    "statement {which}: exactly one of Resource and NotResource"
                ));
            }
            if self.principal.is_some() {
                return Err(format!(
                    "statement {which}: an identity-based policy has no Principal"
                ));
            }
        }
        Ok(())
    }
}

impl PolicyDocument {
    fn map_strings(&mut self, f: &mut Edit<'_>) -> Result<(), String> {
        self.statement.iter_mut().try_for_each(|s| s.map_strings(f))
    }

    fn check(&self, trust: bool) -> Result<(), String> {
        self.statement.iter().try_for_each(|s| s.check(trust))
    }
}

impl PolicySet {
    /// Parse the renderer's JSON and check every statement's grammar.
    pub fn from_json(text: &str) -> Result<PolicySet, String> {
        let set: PolicySet =
            serde_json::from_str(text).map_err(|e| format!("invalid policy set: {e}"))?;
        set.check()?;
        Ok(set)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        for (name, p) in &self.principals {
            if name == MEMBER_ROLE {
                return Err(format!("principal name {MEMBER_ROLE:?} is reserved"));
            }
            p.policies
                .iter()
                .try_for_each(|d| d.check(false))
                .map_err(|e| format!("principal {name}: {e}"))?;
        }
        if let Some(m) = &self.member_role {
            m.trust
                .check(true)
                .map_err(|e| format!("member_role trust: {e}"))?;
            m.policies
                .iter()
                .try_for_each(|d| d.check(false))
                .map_err(|e| format!("member_role: {e}"))?;
        }
        Ok(())
    }

    fn map_strings(&self, f: &mut Edit<'_>) -> Result<PolicySet, String> {
        let mut set = self.clone();
        for p in set.principals.values_mut() {
            p.arn = f(&p.arn)?;
            p.policies.iter_mut().try_for_each(|d| d.map_strings(f))?;
        }
        if let Some(m) = &mut set.member_role {
            m.name = f(&m.name)?;
            m.path = f(&m.path)?;
            m.trust.map_strings(f)?;
            m.policies.iter_mut().try_for_each(|d| d.map_strings(f))?;
        }
        Ok(set)
    }

    /// Substitute every `${Name}` / `${Logical.Attr}` from `bindings`. `${AWS::AccountId}`,
    /// `${AWS::Partition}` and `${AWS::Region}` stay unless bound: they are filled in for
    /// the account a principal acts in. Any other unbound placeholder is an error.
    pub fn bind(&self, bindings: &BTreeMap<String, String>) -> Result<PolicySet, String> {
        self.map_strings(&mut |s| substitute(s, bindings))
    }

    /// The placeholders still unbound (pseudo parameters excluded), for error messages.
    pub fn unbound(&self) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        let _ = self.map_strings(&mut |s| {
            let mut rest = s;
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                let end = after.find('}').unwrap_or(after.len());
                if !PSEUDO.contains(&&after[..end]) {
                    names.insert(after[..end].to_string());
                }
                rest = &after[end.min(after.len())..];
            }
            Ok(s.to_string())
        });
        names.into_iter().collect()
    }

    /// The same set with `action` (compared case-insensitively) removed from every Allow
    /// statement of `principal` (`"member_role"`: the member role's identity policies). A
    /// statement left without actions is dropped.
    pub fn without_action(&self, principal: &str, action: &str) -> PolicySet {
        let mut set = self.clone();
        let docs = if principal == MEMBER_ROLE {
            set.member_role.as_mut().map(|m| &mut m.policies)
        } else {
            set.principals.get_mut(principal).map(|p| &mut p.policies)
        };
        for doc in docs.into_iter().flatten() {
            for s in &mut doc.statement {
                if s.effect == Effect::Allow {
                    if let Some(actions) = &mut s.action {
                        actions.retain(|a| !a.eq_ignore_ascii_case(action));
                    }
                }
            }
            doc.statement
                .retain(|s| s.action.as_ref().is_none_or(|a| !a.is_empty()));
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = r#"{
      "principals": {
        "Fn": {"arn": "arn:aws:iam::111111111111:role/identity-onboarding/Fn",
               "policies": [{"Version": "2012-10-17", "Statement": [
                 {"Sid": "Ledger", "Effect": "Allow", "Action": ["dynamodb:UpdateItem", "dynamodb:GetItem"],
                  "Resource": "${LedgerTable.Arn}"},
                 {"Effect": "Allow", "Action": "events:PutEvents",
                  "Resource": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"}]}]}
      },
      "member_role": {"name": "Member", "path": "/",
        "trust": {"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                                "Action": "sts:AssumeRole",
                                "Condition": {"ArnLike": {"aws:PrincipalArn": "${FnRole.Arn}"}, "Bool": {"aws:SecureTransport": true}}}},
        "policies": [{"Statement": [{"Effect": "Allow", "Action": "sso:*", "Resource": "*"}]}]}
    }"#;

    fn bindings() -> BTreeMap<String, String> {
        [
            (
                "LedgerTable.Arn",
                "arn:aws:dynamodb:us-east-1:111111111111:table/L",
            ),
            ("EventBusName", "bus"),
            (
                "FnRole.Arn",
                "arn:aws:iam::111111111111:role/identity-onboarding/Fn",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn parses_binds_and_keeps_pseudo_parameters() {
        let set = PolicySet::from_json(SET).unwrap();
        assert_eq!(
            set.unbound(),
            vec!["EventBusName", "FnRole.Arn", "LedgerTable.Arn"]
        );
        let bound = set.bind(&bindings()).unwrap();
        assert!(bound.unbound().is_empty());
        let stmt = &bound.principals["Fn"].policies[0].statement[1];
        assert_eq!(
            stmt.resource.as_ref().unwrap()[0],
            "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/bus"
        );
        let trust = &bound.member_role.as_ref().unwrap().trust.statement[0];
        assert_eq!(trust.condition["Bool"]["aws:SecureTransport"], vec!["true"]);
        assert_eq!(
            trust.condition["ArnLike"]["aws:PrincipalArn"],
            vec!["arn:aws:iam::111111111111:role/identity-onboarding/Fn"]
        );
    }

    #[test]
    fn an_unbound_placeholder_is_named() {
        let set = PolicySet::from_json(SET).unwrap();
        let mut partial = bindings();
        partial.remove("EventBusName");
        let err = set.bind(&partial).unwrap_err();
        assert!(err.contains("${EventBusName}"), "{err}");
        assert!(substitute("a${b", &BTreeMap::new()).is_err());
    }

    #[test]
    fn without_action_removes_it_from_allow_statements_only() {
        let set = PolicySet::from_json(SET).unwrap();
        let edited = set.without_action("Fn", "DynamoDB:getitem");
        let ledger = &edited.principals["Fn"].policies[0].statement[0];
        assert_eq!(
            ledger.action.as_ref().unwrap(),
            &vec!["dynamodb:UpdateItem"]
        );
        let edited = edited.without_action("Fn", "events:PutEvents");
        assert_eq!(edited.principals["Fn"].policies[0].statement.len(), 1);
        let member = set.without_action(MEMBER_ROLE, "sso:*");
        assert!(member.member_role.unwrap().policies[0].statement.is_empty());
        // unknown principals are a no-op
        assert_eq!(set.without_action("Nobody", "sso:*"), set);
    }

    #[test]
    fn grammar_errors_are_refused() {
        let no_resource = r#"{"principals": {"Fn": {"arn": "a", "policies": [
            {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}]}}}"#;
        assert!(PolicySet::from_json(no_resource)
            .unwrap_err()
            .contains("Resource"));
        let bad_effect = r#"{"principals": {"Fn": {"arn": "a", "policies": [
            {"Statement": [{"Effect": "Maybe", "Action": "x:y", "Resource": "*"}]}]}}}"#;
        assert!(PolicySet::from_json(bad_effect).is_err());
        let unknown = r#"{"principals": {"Fn": {"arn": "a", "policies": [
            {"Statement": [{"Effect": "Allow", "Actions": "x:y", "Resource": "*"}]}]}}}"#;
        assert!(PolicySet::from_json(unknown).is_err());
        let nested = r#"{"principals": {"Fn": {"arn": "a", "policies": [
            {"Statement": [{"Effect": "Allow", "Action": "x:y", "Resource": "*",
              "Condition": {"StringEquals": {"k": {"a": 1}}}}]}]}}}"#;
        assert!(PolicySet::from_json(nested).is_err());
    }

    #[test]
    fn round_trips_through_serde() {
        let set = PolicySet::from_json(SET).unwrap();
        let text = serde_json::to_string(&set).unwrap();
        assert_eq!(PolicySet::from_json(&text).unwrap(), set);
    }
}
