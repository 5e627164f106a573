//! Small, panic-free helpers for reading a `serde_json::Value` with error messages that name
//! the field (`detail.accountId: ...`) and never echo more than a short prefix of the input.

use serde_json::{Map, Value};

use super::DecodeError;

/// At most this many characters of any input value appear in an error message.
pub(crate) const ECHO_CHARS: usize = 64;

/// "a string", "a number", ... for "expected X, got Y" messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A quoted, escaped prefix of `s` (control characters and quotes escaped), at most
/// [`ECHO_CHARS`] characters of it; longer input is marked with its size in bytes.
pub(crate) fn echo(s: &str) -> String {
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(ECHO_CHARS).collect();
    if chars.next().is_none() {
        format!("{head:?}")
    } else {
        format!("{head:?}... ({} bytes)", s.len())
    }
}

/// A key as it appears in a path: plain when short and simple, otherwise echoed.
pub(crate) fn key_label(key: &str) -> String {
    let simple = !key.is_empty()
        && key.len() <= ECHO_CHARS
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'));
    if simple {
        key.to_owned()
    } else {
        echo(key)
    }
}

/// `path.key` (or `key` at the top level).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key_label(key)
    } else {
        format!("{path}.{}", key_label(key))
    }
}

/// Keys whose values are secrets wherever they appear: their values are never echoed, and
/// in the project's own event they are refused with a pointer to Secrets Manager.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    // `secretId`, `secret_arn`, `secretName` name a secret; they do not hold one.
    let names_a_secret = ["id", "arn", "name"].iter().any(|s| lower.ends_with(s));
    (lower.contains("secret") && !names_a_secret)
        || lower.contains("private_key")
        || lower.contains("privatekey")
        || lower.contains("password")
}

/// The error for a secret found in an event (the value is never part of it).
pub(crate) fn secret_in_event(path: &str) -> DecodeError {
    DecodeError::new(format!(
        "{path}: secrets must not travel in events; store it in Secrets Manager and name it in secretId"
    ))
}

/// The fields of one JSON object, with the path used in error messages.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Fields<'a> {
    /// `v` must be an object.
    pub(crate) fn of(v: &'a Value, path: &'a str) -> Result<Self, DecodeError> {
        match v {
            Value::Object(map) => Ok(Fields { map, path }),
            other => Err(DecodeError::new(format!(
                "{}: expected an object, got {}",
                if path.is_empty() { "event" } else { path },
                kind(other)
            ))),
        }
    }

    pub(crate) fn path(&self) -> &'a str {
        self.path
    }

    pub(crate) fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    /// The path of a member.
    pub(crate) fn at(&self, key: &str) -> String {
        join(self.path, key)
    }

    /// Rejects members not in `allowed` (secret-looking ones with the secrets message).
    pub(crate) fn deny_unknown(&self, allowed: &[&str]) -> Result<(), DecodeError> {
        // Secrets first, so that a secret is reported as such even next to a typo.
        if let Some(key) = self
            .map
            .keys()
            .find(|k| !allowed.contains(&k.as_str()) && is_secret_key(k))
        {
            return Err(secret_in_event(&self.at(key)));
        }
        if let Some(key) = self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(DecodeError::new(format!(
                "{}: unknown field (allowed: {})",
                self.at(key),
                allowed.join(", ")
            )));
        }
        Ok(())
    }

    /// A member; `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub(crate) fn req(&self, key: &str) -> Result<&'a Value, DecodeError> {
        match self.map.get(key) {
            None => Err(DecodeError::new(format!("{}: missing", self.at(key)))),
            Some(Value::Null) => Err(DecodeError::new(format!(
                "{}: expected a value, got null",
                self.at(key)
            ))),
            Some(v) => Ok(v),
        }
    }

    pub(crate) fn req_str(&self, key: &str) -> Result<&'a str, DecodeError> {
        let v = self.req(key)?;
        as_str(v, &self.at(key))
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, DecodeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => as_str(v, &self.at(key)).map(Some),
        }
    }
}

pub(crate) fn as_str<'v>(v: &'v Value, path: &str) -> Result<&'v str, DecodeError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(DecodeError::new(format!(
            "{path}: expected a string, got {}",
            kind(other)
        ))),
    }
}

/// Checks a length in characters (Unicode scalar values, as the service models count them),
/// `min..=max`, with a message naming the field. Huge input is refused on its byte length
/// without scanning it.
pub(crate) fn check_len(path: &str, s: &str, min: usize, max: usize) -> Result<(), DecodeError> {
    if s.len() > max.saturating_mul(4) {
        return Err(DecodeError::new(format!(
            "{path}: expected {min}-{max} characters, got {} bytes",
            s.len()
        )));
    }
    match s.chars().count() {
        n if (min..=max).contains(&n) => Ok(()),
        0 => Err(DecodeError::new(format!("{path}: must not be empty"))),
        n => Err(DecodeError::new(format!(
            "{path}: expected {min}-{max} characters, got {n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_truncates_and_escapes() {
        assert_eq!(echo("ab\"c"), "\"ab\\\"c\"");
        let long = "x".repeat(1000);
        let e = echo(&long);
        assert!(e.starts_with(&format!("{:?}", "x".repeat(ECHO_CHARS))));
        assert!(e.ends_with("(1000 bytes)"));
        assert!(e.len() < 100);
        // multi-byte characters are never split
        let wide = "é".repeat(100);
        assert!(echo(&wide).contains(&"é".repeat(ECHO_CHARS)));
    }

    #[test]
    fn secret_keys_are_recognised_case_insensitively() {
        for k in [
            "client_secret",
            "Client_Secret",
            "private_key",
            "clientSecret",
            "password",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["client_id", "team_id", "secretId", "secret_arn"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn length_checks_count_characters_not_bytes() {
        assert!(check_len("f", &"é".repeat(50), 1, 50).is_ok());
        let e = check_len("f", &"é".repeat(51), 1, 50).unwrap_err();
        assert_eq!(e.reason, "f: expected 1-50 characters, got 51");
        assert_eq!(
            check_len("f", "", 1, 50).unwrap_err().reason,
            "f: must not be empty"
        );
    }
}
