//! The services' own Smithy models (JSON AST, embedded from `models/`) and a generic input
//! validator that walks an operation's input shape: structure members, `@required`,
//! `@length`, `@pattern`, `@range`, enum values, lists, maps and nested structures.
//!
//! Only the shapes reachable from the operations the emulator serves are kept, and every
//! `@pattern` among them is compiled once at load time. Smithy patterns are ECMA-262; see
//! [`translate_pattern`] for the few constructs rewritten for the `regex` crate.
//! Values of `@sensitive` shapes never appear in violation messages.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

pub(crate) const SSO_ADMIN_MODEL: &str = include_str!("../models/sso-admin-2020-07-20.json");
pub(crate) const MPA_MODEL: &str = include_str!("../models/mpa-2022-07-26.json");
pub(crate) const WORKSPACES_WEB_MODEL: &str =
    include_str!("../models/workspaces-web-2020-07-08.json");

/// A constraint violation of one member. `message` never contains a sensitive value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Violation {
    pub path: String,
    pub message: String,
}

/// Why an input was refused before reaching the operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InputError {
    /// The JSON does not have the types the model declares (AWS: `SerializationException`).
    Serialization(String),
    /// Constraint violations (AWS: `ValidationException`).
    Validation(Vec<Violation>),
}

impl InputError {
    /// The AWS-style message: `1 validation error detected: Value 'x' at 'Name' failed to ...`.
    pub(crate) fn message(&self) -> String {
        match self {
            InputError::Serialization(m) => m.clone(),
            InputError::Validation(v) => {
                let n = v.len();
                let parts: Vec<String> = v.iter().map(|x| x.message.clone()).collect();
                format!(
                    "{n} validation error{} detected: {}",
                    if n == 1 { "" } else { "s" },
                    parts.join("; ")
                )
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Constraints {
    length: Option<(Option<u64>, Option<u64>)>,
    pattern: Option<(String, Regex)>,
    range: Option<(Option<f64>, Option<f64>)>,
    enum_values: Option<Vec<String>>,
    sensitive: bool,
}

impl Constraints {
    /// Member-level traits override the target's (Smithy allows constraints on both).
    fn merged(target: &Constraints, member: &Constraints) -> Constraints {
        Constraints {
            length: member.length.or(target.length),
            pattern: member.pattern.clone().or_else(|| target.pattern.clone()),
            range: member.range.or(target.range),
            enum_values: member
                .enum_values
                .clone()
                .or_else(|| target.enum_values.clone()),
            sensitive: member.sensitive || target.sensitive,
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    target: String,
    required: bool,
    constraints: Constraints,
}

#[derive(Debug, Clone)]
enum Kind {
    Structure {
        members: Vec<Member>,
        union: bool,
    },
    List {
        member: Box<Member>,
    },
    Map {
        key: Box<Member>,
        value: Box<Member>,
    },
    String,
    Integer,
    Float,
    Boolean,
    Timestamp,
    Blob,
    Any,
}

#[derive(Debug, Clone)]
struct Shape {
    kind: Kind,
    constraints: Constraints,
}

/// The part of one service model the emulator uses.
#[derive(Debug)]
pub(crate) struct ServiceModel {
    shapes: HashMap<String, Shape>,
    /// operation name -> input shape id
    inputs: HashMap<String, String>,
}

impl ServiceModel {
    /// Parse a model and keep the input shapes of `operations` (all of which must exist).
    pub(crate) fn load(json: &str, operations: &[&str]) -> Result<ServiceModel, String> {
        let root: Value =
            serde_json::from_str(json).map_err(|e| format!("model is not JSON: {e}"))?;
        let all = root
            .get("shapes")
            .and_then(Value::as_object)
            .ok_or("model has no shapes")?;
        let mut model = ServiceModel {
            shapes: HashMap::new(),
            inputs: HashMap::new(),
        };
        for op in operations {
            let (id, shape) = all
                .iter()
                .find(|(id, s)| {
                    id.rsplit('#').next() == Some(op)
                        && s.get("type").and_then(Value::as_str) == Some("operation")
                })
                .ok_or_else(|| format!("operation {op} not in model"))?;
            let input = shape
                .pointer("/input/target")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("operation {id} has no input"))?;
            model.inputs.insert((*op).to_string(), input.to_string());
            model.collect(all, input)?;
        }
        Ok(model)
    }

    fn collect(&mut self, all: &serde_json::Map<String, Value>, id: &str) -> Result<(), String> {
        if self.shapes.contains_key(id) {
            return Ok(());
        }
        let (shape, children) = match all.get(id) {
            Some(def) => parse_shape(id, def)?,
            None => (prelude_shape(id)?, Vec::new()),
        };
        self.shapes.insert(id.to_string(), shape);
        for child in children {
            self.collect(all, &child)?;
        }
        Ok(())
    }

    /// The patterns (as written in the model) of every shape this model keeps.
    #[cfg(test)]
    pub(crate) fn pattern_count(&self) -> usize {
        let mut n = 0;
        for s in self.shapes.values() {
            n += usize::from(s.constraints.pattern.is_some());
            if let Kind::Structure { members, .. } = &s.kind {
                n += members
                    .iter()
                    .filter(|m| m.constraints.pattern.is_some())
                    .count();
            }
        }
        n
    }

    /// Validate `input` (a JSON object holding the operation's input members, wherever they
    /// travelled: body, label or query) against the operation's input shape.
    pub(crate) fn validate(&self, operation: &str, input: &Value) -> Result<(), InputError> {
        let id = self.inputs.get(operation).ok_or_else(|| {
            InputError::Serialization(format!("operation {operation} is not modelled"))
        })?;
        let mut violations = Vec::new();
        let root = Constraints::default();
        self.check(id, &root, false, input, "", &mut violations)?;
        if violations.is_empty() {
            Ok(())
        } else {
            Err(InputError::Validation(violations))
        }
    }

    /// `inside_sensitive`: an enclosing shape is `@sensitive`, so this value is too.
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        id: &str,
        member_constraints: &Constraints,
        inside_sensitive: bool,
        value: &Value,
        path: &str,
        out: &mut Vec<Violation>,
    ) -> Result<(), InputError> {
        let Some(shape) = self.shapes.get(id) else {
            return Ok(());
        };
        let mut c = Constraints::merged(&shape.constraints, member_constraints);
        c.sensitive |= inside_sensitive;
        let sensitive = c.sensitive;
        let wrong_type = |expected: &str| {
            InputError::Serialization(format!(
                "Unexpected value type at '{}': expected {expected}",
                display_path(path)
            ))
        };
        match &shape.kind {
            Kind::Structure { members, union } => {
                let obj = value.as_object().ok_or_else(|| wrong_type("an object"))?;
                let mut set = 0;
                for m in members {
                    let child_path = join(path, &m.name);
                    match obj.get(&m.name) {
                        None | Some(Value::Null) => {
                            if m.required {
                                out.push(violation(
                                    &child_path,
                                    None,
                                    true,
                                    "Member must not be null",
                                ));
                            }
                        }
                        Some(v) => {
                            set += 1;
                            self.check(&m.target, &m.constraints, sensitive, v, &child_path, out)?;
                        }
                    }
                }
                if *union && set != 1 {
                    out.push(violation(
                        path,
                        None,
                        true,
                        "Union must have exactly one member set",
                    ));
                }
            }
            Kind::List { member } => {
                let items = value.as_array().ok_or_else(|| wrong_type("a list"))?;
                check_length(&c, items.len() as u64, value, path, out);
                for (i, item) in items.iter().enumerate() {
                    if item.is_null() {
                        continue;
                    }
                    let p = format!("{}.{}.member", display_path(path), i + 1);
                    self.check(
                        &member.target,
                        &member.constraints,
                        sensitive,
                        item,
                        &p,
                        out,
                    )?;
                }
            }
            Kind::Map { key, value: val } => {
                let obj = value.as_object().ok_or_else(|| wrong_type("a map"))?;
                check_length(&c, obj.len() as u64, value, path, out);
                for (k, v) in obj {
                    let kp = format!("{}.key", display_path(path));
                    self.check(
                        &key.target,
                        &key.constraints,
                        sensitive,
                        &Value::String(k.clone()),
                        &kp,
                        out,
                    )?;
                    if !v.is_null() {
                        let vp = format!("{}.value", display_path(path));
                        self.check(&val.target, &val.constraints, sensitive, v, &vp, out)?;
                    }
                }
            }
            Kind::String => {
                let s = value.as_str().ok_or_else(|| wrong_type("a string"))?;
                if let Some(values) = &c.enum_values {
                    if !values.iter().any(|v| v == s) {
                        let msg = format!(
                            "Member must satisfy enum value set: [{}]",
                            values.join(", ")
                        );
                        out.push(violation(path, Some(s), c.sensitive, &msg));
                        return Ok(());
                    }
                }
                check_length(&c, s.chars().count() as u64, value, path, out);
                if let Some((src, re)) = &c.pattern {
                    if !re.is_match(s) {
                        let msg = format!("Member must satisfy regular expression pattern: {src}");
                        out.push(violation(path, Some(s), c.sensitive, &msg));
                    }
                }
            }
            Kind::Integer => {
                let n = value.as_i64().ok_or_else(|| wrong_type("an integer"))?;
                check_range(&c, n as f64, value, path, out);
            }
            Kind::Float => {
                let n = value.as_f64().ok_or_else(|| wrong_type("a number"))?;
                check_range(&c, n, value, path, out);
            }
            Kind::Boolean => {
                value.as_bool().ok_or_else(|| wrong_type("a boolean"))?;
            }
            Kind::Timestamp => {
                if !(value.is_number() || value.is_string()) {
                    return Err(wrong_type("a timestamp"));
                }
            }
            Kind::Blob => {
                value
                    .as_str()
                    .ok_or_else(|| wrong_type("a base64 string"))?;
            }
            Kind::Any => {}
        }
        Ok(())
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "input"
    } else {
        path
    }
}

fn violation(path: &str, value: Option<&str>, sensitive: bool, constraint: &str) -> Violation {
    let path = display_path(path).to_string();
    let message = match value {
        Some(v) if !sensitive => {
            let shown: String = v.chars().take(256).collect();
            format!("Value '{shown}' at '{path}' failed to satisfy constraint: {constraint}")
        }
        _ => format!("Value at '{path}' failed to satisfy constraint: {constraint}"),
    };
    Violation { path, message }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn check_length(c: &Constraints, len: u64, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some((min, max)) = c.length else { return };
    let shown = scalar_text(value);
    if let Some(min) = min {
        if len < min {
            let msg = format!("Member must have length greater than or equal to {min}");
            out.push(violation(path, shown.as_deref(), c.sensitive, &msg));
            return;
        }
    }
    if let Some(max) = max {
        if len > max {
            let msg = format!("Member must have length less than or equal to {max}");
            out.push(violation(path, shown.as_deref(), c.sensitive, &msg));
        }
    }
}

fn check_range(c: &Constraints, n: f64, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some((min, max)) = c.range else { return };
    let shown = scalar_text(value);
    if let Some(min) = min {
        if n < min {
            let msg = format!("Member must have value greater than or equal to {min}");
            out.push(violation(path, shown.as_deref(), c.sensitive, &msg));
            return;
        }
    }
    if let Some(max) = max {
        if n > max {
            let msg = format!("Member must have value less than or equal to {max}");
            out.push(violation(path, shown.as_deref(), c.sensitive, &msg));
        }
    }
}

fn parse_constraints(owner: &str, traits: Option<&Value>) -> Result<Constraints, String> {
    let mut c = Constraints::default();
    let Some(t) = traits.and_then(Value::as_object) else {
        return Ok(c);
    };
    if let Some(l) = t.get("smithy.api#length") {
        c.length = Some((
            l.get("min").and_then(Value::as_u64),
            l.get("max").and_then(Value::as_u64),
        ));
    }
    if let Some(r) = t.get("smithy.api#range") {
        c.range = Some((
            r.get("min").and_then(Value::as_f64),
            r.get("max").and_then(Value::as_f64),
        ));
    }
    if let Some(p) = t.get("smithy.api#pattern").and_then(Value::as_str) {
        let re = Regex::new(&translate_pattern(p))
            .map_err(|e| format!("pattern of {owner} ({p}) does not compile: {e}"))?;
        c.pattern = Some((p.to_string(), re));
    }
    if let Some(values) = t.get("smithy.api#enum").and_then(Value::as_array) {
        c.enum_values = Some(
            values
                .iter()
                .filter_map(|v| v.get("value").and_then(Value::as_str).map(str::to_string))
                .collect(),
        );
    }
    c.sensitive = t.contains_key("smithy.api#sensitive");
    Ok(c)
}

fn parse_member(owner: &str, name: &str, def: &Value) -> Result<Member, String> {
    let target = def
        .get("target")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("member {owner}${name} has no target"))?;
    let traits = def.get("traits");
    Ok(Member {
        name: name.to_string(),
        target: target.to_string(),
        required: traits.and_then(|t| t.get("smithy.api#required")).is_some(),
        constraints: parse_constraints(&format!("{owner}${name}"), traits)?,
    })
}

/// Returns the shape and the ids of the shapes it refers to.
fn parse_shape(id: &str, def: &Value) -> Result<(Shape, Vec<String>), String> {
    let ty = def.get("type").and_then(Value::as_str).unwrap_or("");
    let mut constraints = parse_constraints(id, def.get("traits"))?;
    let mut children = Vec::new();
    let kind = match ty {
        "structure" | "union" => {
            let mut members = Vec::new();
            if let Some(ms) = def.get("members").and_then(Value::as_object) {
                for (name, m) in ms {
                    let member = parse_member(id, name, m)?;
                    children.push(member.target.clone());
                    members.push(member);
                }
            }
            Kind::Structure {
                members,
                union: ty == "union",
            }
        }
        "list" | "set" => {
            let m = def
                .get("member")
                .ok_or_else(|| format!("{id} has no member"))?;
            let member = parse_member(id, "member", m)?;
            children.push(member.target.clone());
            Kind::List {
                member: Box::new(member),
            }
        }
        "map" => {
            let k = parse_member(id, "key", def.get("key").unwrap_or(&Value::Null))?;
            let v = parse_member(id, "value", def.get("value").unwrap_or(&Value::Null))?;
            children.push(k.target.clone());
            children.push(v.target.clone());
            Kind::Map {
                key: Box::new(k),
                value: Box::new(v),
            }
        }
        "enum" => {
            let values = def
                .get("members")
                .and_then(Value::as_object)
                .map(|ms| {
                    ms.iter()
                        .map(|(name, m)| {
                            m.pointer("/traits/smithy.api#enumValue")
                                .and_then(Value::as_str)
                                .unwrap_or(name)
                                .to_string()
                        })
                        .collect()
                })
                .unwrap_or_default();
            constraints.enum_values = Some(values);
            Kind::String
        }
        "string" => Kind::String,
        "integer" | "long" | "short" | "byte" | "bigInteger" | "intEnum" => Kind::Integer,
        "float" | "double" | "bigDecimal" => Kind::Float,
        "boolean" => Kind::Boolean,
        "timestamp" => Kind::Timestamp,
        "blob" => Kind::Blob,
        _ => Kind::Any,
    };
    Ok((Shape { kind, constraints }, children))
}

fn prelude_shape(id: &str) -> Result<Shape, String> {
    let kind = match id {
        "smithy.api#String" => Kind::String,
        "smithy.api#Integer"
        | "smithy.api#Long"
        | "smithy.api#PrimitiveInteger"
        | "smithy.api#PrimitiveLong"
        | "smithy.api#Short"
        | "smithy.api#Byte" => Kind::Integer,
        "smithy.api#Float"
        | "smithy.api#Double"
        | "smithy.api#PrimitiveFloat"
        | "smithy.api#PrimitiveDouble" => Kind::Float,
        "smithy.api#Boolean" | "smithy.api#PrimitiveBoolean" => Kind::Boolean,
        "smithy.api#Timestamp" => Kind::Timestamp,
        "smithy.api#Blob" => Kind::Blob,
        "smithy.api#Unit" | "smithy.api#Document" => Kind::Any,
        _ => return Err(format!("shape {id} not found")),
    };
    Ok(Shape {
        kind,
        constraints: Constraints::default(),
    })
}

/// Exact ECMA-262 patterns of the models that the `regex` crate cannot express, with an
/// equivalent rewrite. `(?!-)` (a look-ahead) only forbids a label starting with `-`.
const REWRITES: &[(&str, &str)] = &[(
    r"^(|[a-zA-Z0-9]?((?!-)([A-Za-z0-9-]*[A-Za-z0-9])\.)+[a-zA-Z0-9]+)$",
    r"^(|[a-zA-Z0-9]?(([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])\.)+[a-zA-Z0-9]+)$",
)];

/// Translate an ECMA-262 pattern (as Smithy specifies them) to `regex` syntax: ECMA `\w`,
/// `\d` are ASCII-only (the `regex` crate's are Unicode), and look-arounds are unsupported
/// (the known ones are rewritten by [`REWRITES`]).
pub(crate) fn translate_pattern(p: &str) -> String {
    if let Some((_, to)) = REWRITES.iter().find(|(from, _)| *from == p) {
        return (*to).to_string();
    }
    let mut out = String::with_capacity(p.len() + 16);
    let mut in_class = false;
    let mut chars = p.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some('w') if in_class => out.push_str("0-9A-Za-z_"),
                Some('w') => out.push_str("[0-9A-Za-z_]"),
                Some('d') if in_class => out.push_str("0-9"),
                Some('d') => out.push_str("[0-9]"),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // a leading `^` or `]` belongs to the class syntax
                let rest = chars.as_str();
                if let Some(stripped) = rest.strip_prefix('^') {
                    out.push('^');
                    chars = stripped.chars();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            // ECMA allows a literal `[` inside a class; `regex` would read a nested class
            '[' => out.push_str("\\["),
            _ => out.push(ch),
        }
    }
    out
}

/// The models the emulator serves, each reduced to the operations it implements.
#[derive(Debug)]
pub(crate) struct Models {
    pub sso_admin: ServiceModel,
    pub mpa: ServiceModel,
    pub workspaces_web: ServiceModel,
}

pub(crate) const SSO_ADMIN_OPERATIONS: &[&str] = &[
    "CreateInstance",
    "DescribeInstance",
    "ListInstances",
    "DeleteInstance",
    "UpdateInstance",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];
pub(crate) const MPA_OPERATIONS: &[&str] = &[
    "CreateIdentitySource",
    "GetIdentitySource",
    "ListIdentitySources",
    "DeleteIdentitySource",
];
pub(crate) const WORKSPACES_WEB_OPERATIONS: &[&str] = &[
    "CreatePortal",
    "GetPortal",
    "CreateIdentityProvider",
    "GetIdentityProvider",
    "ListIdentityProviders",
    "DeleteIdentityProvider",
    "UpdateIdentityProvider",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

impl Models {
    pub(crate) fn load() -> Result<Models, String> {
        Ok(Models {
            sso_admin: ServiceModel::load(SSO_ADMIN_MODEL, SSO_ADMIN_OPERATIONS)?,
            mpa: ServiceModel::load(MPA_MODEL, MPA_OPERATIONS)?,
            workspaces_web: ServiceModel::load(WORKSPACES_WEB_MODEL, WORKSPACES_WEB_OPERATIONS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_pattern_of_the_served_operations_compiles() {
        let models = Models::load().expect("models load");
        assert!(models.sso_admin.pattern_count() >= 4);
        assert!(models.workspaces_web.pattern_count() >= 4);
    }

    #[test]
    fn ecma_word_and_digit_classes_stay_ascii() {
        let re = Regex::new(&translate_pattern(r"^[\w+=,.@-]+$")).unwrap();
        assert!(re.is_match("a_b+c=d,e.f@g-h"));
        assert!(!re.is_match("é"));
        let re = Regex::new(&translate_pattern(r"^\d{12}$")).unwrap();
        assert!(re.is_match("123456789012"));
        assert!(!re.is_match("١٢٣٤٥٦٧٨٩٠١٢"));
    }

    #[test]
    fn rewritten_lookahead_keeps_its_meaning() {
        let (from, _) = REWRITES[0];
        let re = Regex::new(&translate_pattern(from)).unwrap();
        assert!(re.is_match(""));
        assert!(re.is_match("portal.example.com"));
        assert!(re.is_match("a.b.com"));
        assert!(!re.is_match("-bad.example.com"));
        assert!(!re.is_match("x.-bad.com"));
    }

    #[test]
    fn validation_reports_constraints_like_aws() {
        let models = Models::load().unwrap();
        let long = "n".repeat(256);
        let err = models
            .sso_admin
            .validate("CreateInstance", &json!({"Name": long}))
            .unwrap_err();
        let msg = err.message();
        assert!(
            msg.starts_with("1 validation error detected: Value 'nnn"),
            "{msg}"
        );
        assert!(msg.contains("at 'Name'"), "{msg}");
        assert!(msg.contains("less than or equal to 255"), "{msg}");

        let err = models
            .sso_admin
            .validate("DescribeInstance", &json!({}))
            .unwrap_err();
        assert!(err.message().contains("Member must not be null"));

        let err = models
            .sso_admin
            .validate("CreateInstance", &json!({"Tags": [{"Key": "k"}]}))
            .unwrap_err();
        assert!(
            err.message().contains("Tags.1.member.Value"),
            "{}",
            err.message()
        );

        let err = models
            .sso_admin
            .validate("CreateInstance", &json!({"Name": 5}))
            .unwrap_err();
        assert!(matches!(err, InputError::Serialization(_)));

        let err = models
            .sso_admin
            .validate("ListInstances", &json!({"MaxResults": 101}))
            .unwrap_err();
        assert!(err.message().contains("less than or equal to 100"));
    }

    #[test]
    fn sensitive_values_never_appear_in_messages() {
        let models = Models::load().unwrap();
        let canary = "CANARY-secret-value";
        let mut details = serde_json::Map::new();
        details.insert("client_secret".into(), json!(canary.repeat(10_000)));
        let input = json!({
            "portalArn": "arn:aws:workspaces-web:us-east-1:123456789012:portal/0a1b2c3d-0000-4000-8000-000000000000",
            "identityProviderName": format!("_{canary}"),
            "identityProviderType": "OIDC",
            "identityProviderDetails": details,
        });
        let err = models
            .workspaces_web
            .validate("CreateIdentityProvider", &input)
            .unwrap_err();
        let msg = err.message();
        assert!(msg.contains("identityProviderName"), "{msg}");
        assert!(msg.contains("identityProviderDetails.value"), "{msg}");
        assert!(!msg.contains("CANARY"), "{msg}");
    }

    #[test]
    fn enums_and_nested_required_members_are_checked() {
        let models = Models::load().unwrap();
        let err = models
            .workspaces_web
            .validate(
                "CreateIdentityProvider",
                &json!({
                    "portalArn": "arn:aws:workspaces-web:us-east-1:123456789012:portal/0a1b2c3d-0000-4000-8000-000000000000",
                    "identityProviderName": "corp",
                    "identityProviderType": "Okta",
                    "identityProviderDetails": {}
                }),
            )
            .unwrap_err();
        assert!(
            err.message().contains("enum value set"),
            "{}",
            err.message()
        );

        let err = models
            .mpa
            .validate(
                "CreateIdentitySource",
                &json!({"IdentitySourceParameters": {"IamIdentityCenter": {"Region": "us-east-1"}}}),
            )
            .unwrap_err();
        assert!(err
            .message()
            .contains("IdentitySourceParameters.IamIdentityCenter.InstanceArn"));
    }
}
