//! Field limits, taken from the service models (SSO Admin, WorkSpaces Web) where they define
//! them. Every check returns a [`DecodeError`] naming the field; values under secret keys are
//! never echoed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::json::{as_str, check_len, echo, is_secret_key, kind, secret_in_event, Fields};
use super::provider::ProviderType;
use super::DecodeError;

/// SSO Admin `TagList` max length (instance tags).
pub const MAX_INSTANCE_TAGS: usize = 75;
/// WorkSpaces Web `TagList` max length (identity provider tags).
pub const MAX_PROVIDER_TAGS: usize = 200;
/// `TagKey` length (both models).
pub const TAG_KEY_CHARS: (usize, usize) = (1, 128);
/// `TagValue` length (both models).
pub const TAG_VALUE_CHARS: (usize, usize) = (0, 256);
/// SSO Admin `NameType` (instance name): max 255, pattern `^[\w+=,.@-]+$`.
pub const INSTANCE_NAME_CHARS: (usize, usize) = (1, 255);
/// WorkSpaces Web `IdentityProviderName`: 1-32.
pub const PROVIDER_NAME_CHARS: (usize, usize) = (1, 32);
/// WorkSpaces Web `ARN` length.
pub const PORTAL_ARN_CHARS: (usize, usize) = (20, 2048);
/// WorkSpaces Web `StringType` (a detail value) max length.
pub const DETAIL_VALUE_MAX_CHARS: usize = 131_072;
/// Account names (AWS Organizations): 1-50.
pub const ACCOUNT_NAME_CHARS: (usize, usize) = (1, 50);
/// Secrets Manager `SecretId` (name or ARN): 1-2048; names alone: up to 512.
pub const SECRET_ID_CHARS: (usize, usize) = (1, 2048);
/// Secrets Manager secret names: 1-512.
pub const SECRET_NAME_CHARS: (usize, usize) = (1, 512);

/// `^\d{12}$` (ASCII digits).
pub(crate) fn account_id(path: &str, s: &str) -> Result<String, DecodeError> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(DecodeError::new(format!(
            "{path}: expected 12 digits, got {}",
            echo(s)
        )))
    }
}

/// 1-50 characters, no control characters.
pub(crate) fn account_name(path: &str, s: &str) -> Result<String, DecodeError> {
    check_len(path, s, ACCOUNT_NAME_CHARS.0, ACCOUNT_NAME_CHARS.1)?;
    if s.chars().any(char::is_control) {
        return Err(DecodeError::new(format!(
            "{path}: control characters are not allowed, got {}",
            echo(s)
        )));
    }
    Ok(s.to_owned())
}

/// SSO Admin `NameType`: `^[\w+=,.@-]+$`, at most 255 characters (`\w` is ASCII in the
/// service's regex dialect).
pub(crate) fn instance_name(path: &str, s: &str) -> Result<String, DecodeError> {
    check_len(path, s, INSTANCE_NAME_CHARS.0, INSTANCE_NAME_CHARS.1)?;
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-'))
    {
        return Err(DecodeError::new(format!(
            "{path}: only letters, digits and _+=,.@- are allowed, got {}",
            echo(s)
        )));
    }
    Ok(s.to_owned())
}

/// `\p{Z}`: space, line and paragraph separators.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// The tag pattern of both models: `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`.
/// (`\p{L}` is approximated by Rust's `char::is_alphabetic`, which also admits letter-like
/// numerals and combining vowel signs.)
fn is_tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || is_separator(c)
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// A tag map: a JSON object of string values (or `null`: remove the tag), at most
/// `max_count` entries, keys and values per the models' `TagKey` / `TagValue`; keys starting
/// with `aws:` are reserved by AWS. Returns the tags to set and the keys to remove.
pub(crate) fn tags(
    path: &str,
    v: &Value,
    max_count: usize,
) -> Result<(BTreeMap<String, String>, BTreeSet<String>), DecodeError> {
    let map = match v {
        Value::Object(map) => map,
        other => {
            return Err(DecodeError::new(format!(
                "{path}: expected an object of string values, got {}",
                kind(other)
            )))
        }
    };
    if map.len() > max_count {
        return Err(DecodeError::new(format!(
            "{path}: at most {max_count} tags, got {}",
            map.len()
        )));
    }
    let (mut out, mut removed) = (BTreeMap::new(), BTreeSet::new());
    for (key, value) in map {
        let at = super::json::join(path, key);
        check_len(&at, key, TAG_KEY_CHARS.0, TAG_KEY_CHARS.1)
            .map_err(|e| DecodeError::new(format!("{} (tag key)", e.reason)))?;
        if !key.chars().all(is_tag_char) {
            return Err(DecodeError::new(format!(
                "{at}: tag keys may hold only letters, digits, spaces and _.:/=+-@"
            )));
        }
        if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(DecodeError::new(format!(
                "{at}: tag keys starting with \"aws:\" are reserved by AWS"
            )));
        }
        if value.is_null() {
            removed.insert(key.clone());
            continue;
        }
        let value = as_str(value, &at)?;
        check_len(&at, value, TAG_VALUE_CHARS.0, TAG_VALUE_CHARS.1)?;
        if !value.chars().all(is_tag_char) {
            let shown = if is_secret_key(key) {
                String::new()
            } else {
                format!(", got {}", echo(value))
            };
            return Err(DecodeError::new(format!(
                "{at}: tag values may hold only letters, digits, spaces and _.:/=+-@{shown}"
            )));
        }
        out.insert(key.clone(), value.to_owned());
    }
    Ok((out, removed))
}

/// A WorkSpaces Web portal ARN, checked against the model's `ARN` pattern and narrowed to a
/// portal: `arn:<partition>:workspaces-web:<region>:<12-digit account>:portal/<36-char id>`.
/// Returns the account id (the portal's owner, whose role the function assumes).
pub(crate) fn portal_arn(path: &str, s: &str) -> Result<String, DecodeError> {
    let wrong = || {
        DecodeError::new(format!(
            "{path}: expected arn:<partition>:workspaces-web:<region>:<12-digit account>:portal/<36-character id>, got {}",
            echo(s)
        ))
    };
    check_len(path, s, PORTAL_ARN_CHARS.0, PORTAL_ARN_CHARS.1)?;
    let mut parts = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(wrong());
    };
    let partition_ok = !partition.is_empty()
        && partition.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | '/' | ',' | '.' | '@' | '-')
        });
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let id_ok = resource
        .strip_prefix("portal/")
        .is_some_and(|id| id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    if partition_ok && service == "workspaces-web" && region_ok && account_ok && id_ok {
        Ok(account.to_owned())
    } else {
        Err(wrong())
    }
}

/// WorkSpaces Web `IdentityProviderName`: 1-32 characters and the model's pattern
/// `^[^_][\p{L}\p{M}\p{S}\p{N}\p{P}][^_]+$` (so in practice at least 3 characters, no `_`
/// except in second place, and a visible second character).
pub(crate) fn provider_name(path: &str, s: &str) -> Result<String, DecodeError> {
    check_len(path, s, PROVIDER_NAME_CHARS.0, PROVIDER_NAME_CHARS.1)?;
    let mut chars = s.chars();
    let first = chars.next();
    let second = chars.next();
    let rest: Vec<char> = chars.collect();
    let visible = |c: char| {
        !c.is_whitespace()
            && !c.is_control()
            && !is_separator(c)
            && !matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
    };
    let ok = first.is_some_and(|c| c != '_')
        && second.is_some_and(visible)
        && !rest.is_empty()
        && rest.iter().all(|&c| c != '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(DecodeError::new(format!(
            "{path}: expected 3-32 characters, no \"_\" except as the second character, a visible second character; got {}",
            echo(s)
        )))
    }
}

/// Secrets Manager `SecretId`: a secret ARN (`arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`)
/// or a name of 1-512 characters from `A-Za-z0-9/_+=.@-`.
pub(crate) fn secret_id(path: &str, s: &str) -> Result<String, DecodeError> {
    check_len(path, s, SECRET_ID_CHARS.0, SECRET_ID_CHARS.1)?;
    let name_ok = |n: &str| {
        check_len(path, n, SECRET_NAME_CHARS.0, SECRET_NAME_CHARS.1).is_ok()
            && n.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '=' | '.' | '@' | '-')
            })
    };
    let ok = if s.starts_with("arn:") {
        let parts: Vec<&str> = s.splitn(7, ':').collect();
        matches!(
            parts.as_slice(),
            ["arn", partition, "secretsmanager", region, account, "secret", name]
                if !partition.is_empty()
                    && !region.is_empty()
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && name_ok(name)
        )
    } else {
        name_ok(s)
    };
    if ok {
        Ok(s.to_owned())
    } else {
        Err(DecodeError::new(format!(
            "{path}: expected a Secrets Manager secret name (A-Za-z0-9/_+=.@-, at most 512) or secret ARN, got {}",
            echo(s)
        )))
    }
}

/// `identityProviderDetails` of the given type: string values only, keys from the documented
/// set, required keys present and non-empty; secret keys refused (value never echoed).
pub(crate) fn details(
    fields: Fields<'_>,
    provider_type: ProviderType,
) -> Result<BTreeMap<String, String>, DecodeError> {
    let path = fields.path();
    let map = fields.map();
    // Secrets first, whatever their value type.
    if let Some(key) = map.keys().find(|k| is_secret_key(k)) {
        return Err(secret_in_event(&fields.at(key)));
    }
    let allowed = provider_type.allowed_details();
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(DecodeError::new(format!(
            "{}: not a detail of {provider_type} providers (allowed: {})",
            fields.at(key),
            allowed.join(", ")
        )));
    }
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let at = fields.at(key);
        let value = match value {
            Value::String(s) => s,
            other => {
                return Err(DecodeError::new(format!(
                    "{at}: expected a string (booleans as \"true\"/\"false\"), got {}",
                    kind(other)
                )))
            }
        };
        check_len(&at, value, 0, DETAIL_VALUE_MAX_CHARS)?;
        match key.as_str() {
            "IDPSignout" | "IDPInit" | "EncryptedResponses"
                if !matches!(value.as_str(), "true" | "false") =>
            {
                return Err(DecodeError::new(format!(
                    "{at}: expected \"true\" or \"false\", got {}",
                    echo(value)
                )));
            }
            "RequestSigningAlgorithm" if value != "rsa-sha256" => {
                return Err(DecodeError::new(format!(
                    "{at}: only \"rsa-sha256\" is accepted, got {}",
                    echo(value)
                )));
            }
            "attributes_request_method" if !matches!(value.as_str(), "GET" | "POST") => {
                return Err(DecodeError::new(format!(
                    "{at}: expected \"GET\" or \"POST\", got {}",
                    echo(value)
                )));
            }
            _ => {}
        }
        out.insert(key.clone(), value.clone());
    }
    for key in provider_type.required_details() {
        match out.get(*key) {
            None => {
                return Err(DecodeError::new(format!(
                    "{path}.{key}: missing (required for {provider_type} providers)"
                )))
            }
            Some(v) if v.trim().is_empty() => {
                return Err(DecodeError::new(format!("{path}.{key}: must not be empty")))
            }
            Some(_) => {}
        }
    }
    if provider_type == ProviderType::Saml {
        let file = out
            .get("MetadataFile")
            .is_some_and(|v| !v.trim().is_empty());
        let url = out.get("MetadataURL").is_some_and(|v| !v.trim().is_empty());
        if file == url {
            return Err(DecodeError::new(format!(
                "{path}: SAML providers need exactly one of MetadataFile or MetadataURL, got {}",
                if file { "both" } else { "neither" }
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_ascii_digits() {
        assert_eq!(account_id("a", "012345678901").unwrap(), "012345678901");
        for bad in [
            "12345678901",
            "1234567890123",
            "12ab56789012",
            "١٢٣٤٥٦٧٨٩٠١٢",
            "",
        ] {
            let e = account_id("detail.accountId", bad).unwrap_err();
            assert!(
                e.reason
                    .starts_with("detail.accountId: expected 12 digits, got "),
                "{e}"
            );
        }
    }

    #[test]
    fn instance_names_follow_the_sso_admin_pattern() {
        assert!(instance_name("n", "payments-prod_1+=,.@").is_ok());
        assert!(instance_name("n", &"a".repeat(255)).is_ok());
        assert!(instance_name("n", &"a".repeat(256)).is_err());
        assert!(instance_name("n", "has space").is_err());
        assert!(instance_name("n", "").is_err());
        assert!(instance_name("n", "naïve").is_err());
    }

    #[test]
    fn tags_follow_the_models() {
        let ok = serde_json::json!({"CostCenter": "1234", "owner:team": "a b/c=d+e-f@g", "Ünïcode": "値", "empty": ""});
        assert_eq!(tags("t", &ok, 75).unwrap().0.len(), 4);
        let (set, removed) = tags("t", &serde_json::json!({"a": "1", "b": null}), 75).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(removed.into_iter().collect::<Vec<_>>(), ["b"]);
        let e = tags("t", &serde_json::json!({"aws:createdBy": "x"}), 75).unwrap_err();
        assert!(e.reason.contains("reserved"), "{e}");
        let e = tags("t", &serde_json::json!({"k": "semi;colon"}), 75).unwrap_err();
        assert!(e.reason.starts_with("t.k: tag values"), "{e}");
        let e = tags("t", &serde_json::json!({"k": 1}), 75).unwrap_err();
        assert_eq!(e.reason, "t.k: expected a string, got a number");
        let e = tags("t", &serde_json::json!({"k": "v".repeat(257)}), 75).unwrap_err();
        assert_eq!(e.reason, "t.k: expected 0-256 characters, got 257");
        let e = tags("t", &serde_json::json!({"": "v"}), 75).unwrap_err();
        assert!(e.reason.contains("(tag key)"), "{e}");
        let many: serde_json::Map<String, Value> = (0..76)
            .map(|i| (format!("k{i}"), Value::from("v")))
            .collect();
        let e = tags("t", &Value::Object(many), 75).unwrap_err();
        assert_eq!(e.reason, "t: at most 75 tags, got 76");
        let e = tags("t", &serde_json::json!([{"Key": "a", "Value": "b"}]), 75).unwrap_err();
        assert_eq!(
            e.reason,
            "t: expected an object of string values, got an array"
        );
        // values under secret-looking keys are not echoed
        let e = tags("t", &serde_json::json!({"client_secret": "CANARY;1"}), 75).unwrap_err();
        assert!(!e.reason.contains("CANARY"), "{e}");
    }

    #[test]
    fn portal_arns_are_workspaces_web_portals() {
        let good = "arn:aws:workspaces-web:us-east-1:123456789012:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b";
        assert_eq!(portal_arn("p", good).unwrap(), "123456789012");
        let gov = "arn:aws-us-gov:workspaces-web:us-gov-west-1:123456789012:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b";
        assert!(portal_arn("p", gov).is_ok());
        for bad in [
            "arn:aws:workspaces-web:us-east-1:123456789012:portal/2f1c7d5e",
            "arn:aws:workspaces:us-east-1:123456789012:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b",
            "arn:aws:workspaces-web:us-east-1:12345:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b",
            "arn:aws:workspaces-web:us-east-1:123456789012:browserSettings/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b",
            "arn:aws:workspaces-web::123456789012:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b",
            "arn:aws:workspaces-web:us-east-1:123456789012:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b",
            "arn:aws:workspaces-web:us-east-1:123456789012:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4dzz",
            "not an arn at all, but long enough",
            "arn:",
        ] {
            let e = portal_arn("webIdentityProvider.portalArn", bad).unwrap_err();
            assert!(e.reason.starts_with("webIdentityProvider.portalArn: "), "{e}");
        }
    }

    #[test]
    fn provider_names_follow_the_model_pattern() {
        for good in ["corp-oidc", "a_b", "Okta SSO", "ÄÖÜ", &"x".repeat(32)] {
            assert!(provider_name("n", good).is_ok(), "{good}");
        }
        for bad in ["ab", "_abc", "abc_d", "a bc", "", &"x".repeat(33)] {
            assert!(provider_name("n", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secret_ids_are_names_or_secret_arns() {
        assert!(secret_id("s", "onboarding/corp-oidc").is_ok());
        assert!(secret_id(
            "s",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:onboarding/corp-oidc-AbCdEf"
        )
        .is_ok());
        assert!(secret_id("s", "arn:aws:ssm:us-east-1:123456789012:parameter/x").is_err());
        assert!(secret_id("s", "has space").is_err());
        assert!(secret_id("s", "").is_err());
    }
}
