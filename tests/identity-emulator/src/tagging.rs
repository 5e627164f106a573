//! Tag rules shared by SSO Admin and WorkSpaces Web: `[{Key, Value}]` lists, the reserved
//! `aws:` prefix, duplicate keys, and AWS's usual 50 user tags per resource. Messages never
//! name a key or a value (WorkSpaces Web tags are `@sensitive`).

use serde_json::Value;

use crate::state::Tags;

/// User tags one resource may carry.
pub(crate) const MAX_TAGS_PER_RESOURCE: usize = 50;

/// Keys beginning with `aws:` (any case) are reserved for AWS.
fn reserved(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
}

/// The tags of a `[{Key, Value}]` list (already checked against the model), refusing
/// duplicate and reserved keys.
pub(crate) fn tag_list(list: Option<&Value>) -> Result<Tags, String> {
    let mut tags = Tags::new();
    for tag in list.and_then(Value::as_array).into_iter().flatten() {
        let key = tag.get("Key").and_then(Value::as_str).unwrap_or_default();
        let value = tag.get("Value").and_then(Value::as_str).unwrap_or_default();
        if reserved(key) {
            return Err("Tag keys beginning with 'aws:' are reserved for AWS use.".into());
        }
        if tags.insert(key.to_string(), value.to_string()).is_some() {
            return Err("The request holds the same tag key more than once.".into());
        }
    }
    Ok(tags)
}

/// The keys of a tag key list, refusing reserved ones.
pub(crate) fn tag_keys(list: Option<&Value>) -> Result<Vec<String>, String> {
    let keys: Vec<String> = list
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if keys.iter().any(|k| reserved(k)) {
        return Err("Tag keys beginning with 'aws:' are reserved for AWS use.".into());
    }
    Ok(keys)
}

/// `existing` with `added` merged in (values of existing keys replaced), unless that makes
/// more than [`MAX_TAGS_PER_RESOURCE`].
pub(crate) fn merged(existing: &Tags, added: Tags) -> Result<Tags, String> {
    let mut all = existing.clone();
    all.extend(added);
    if all.len() > MAX_TAGS_PER_RESOURCE {
        return Err(format!(
            "A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; this request would \
             leave it with {}.",
            all.len()
        ));
    }
    Ok(all)
}

/// `[{Key, Value}]`, the wire form of both services.
pub(crate) fn to_list(tags: &Tags) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reserved_and_duplicate_keys_are_refused_without_showing_them() {
        let ok = tag_list(Some(&json!([{"Key": "team", "Value": "a"}]))).unwrap();
        assert_eq!(ok.get("team").map(String::as_str), Some("a"));
        let err = tag_list(Some(&json!([{"Key": "AWS:x", "Value": "SECRET"}]))).unwrap_err();
        assert!(!err.contains("SECRET") && !err.contains("AWS:x"), "{err}");
        assert!(tag_list(Some(&json!([
            {"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}
        ])))
        .is_err());
        assert!(tag_keys(Some(&json!(["aws:cloudformation:stack-name"]))).is_err());
    }

    #[test]
    fn at_most_fifty_tags_per_resource() {
        let full: Tags = (0..50).map(|i| (format!("k{i}"), String::new())).collect();
        // replacing a value keeps the count
        assert!(merged(&full, [("k1".to_string(), "v".to_string())].into()).is_ok());
        assert!(merged(&full, [("k50".to_string(), String::new())].into()).is_err());
    }
}
