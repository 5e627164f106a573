//! Request hashes: what a step was asked to do, without its secrets.
//!
//! Secrets are kept out by the schema, not by name: a step's canonical request is built from
//! its typed request, which has no place for a secret value (events name a Secrets Manager
//! secret; the decoder refuses secret values anywhere). Every member of the canonical request
//! counts, so two requests that differ anywhere, a tag named `client_secret` included, hash
//! differently and never share a ClientToken.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` as canonical JSON: object members sorted by name (recursively), no
/// whitespace.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut names: Vec<&String> = map.keys().collect();
            names.sort();
            out.push('{');
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                if let Some(member) = map.get(name) {
                    write_canonical(member, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The canonical form [`request_hash`] hashes (exposed for tests and diagnostics).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Hex SHA-256 of the canonical JSON of a step's request (object members sorted
/// recursively). Steps pass the secret's name, never its value.
pub fn request_hash(canonical: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(canonical).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter() {
        let a =
            json!({"name": "payments", "tags": {"b": "2", "a": "1"}, "list": [{"y": 1, "x": 2}]});
        let b =
            json!({"list": [{"x": 2, "y": 1}], "tags": {"a": "1", "b": "2"}, "name": "payments"});
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"list":[{"x":2,"y":1}],"name":"payments","tags":{"a":"1","b":"2"}}"#
        );
    }

    #[test]
    fn array_order_and_values_matter() {
        assert_ne!(request_hash(&json!([1, 2])), request_hash(&json!([2, 1])));
        assert_ne!(
            request_hash(&json!({"name": "a"})),
            request_hash(&json!({"name": "b"}))
        );
    }

    #[test]
    fn every_member_counts_whatever_its_name() {
        // A tag key the decoder accepts, named like a secret, is part of the request.
        let a = json!({"tags": {"client_secret": "team-a"}});
        let b = json!({"tags": {"client_secret": "team-b"}});
        let none = json!({"tags": {}});
        assert_ne!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&none));
    }

    #[test]
    fn known_digest() {
        // printf '%s' '{"a":1,"b":"x"}' | sha256sum
        assert_eq!(
            request_hash(&json!({"b": "x", "a": 1})),
            "ecf9e98ec0641e23113ff3ce8bdc78d0ddd249886517fd4a7f68cc83d4e65667"
        );
    }
}
