//! The tags the project sets on a resource, as the `tags` field of a step's state. Only
//! these keys are ever changed or removed: tags someone else set are never touched.

use std::collections::{BTreeMap, BTreeSet};

use crate::step::Fields;

/// The field of a step's state that holds the project's tags.
pub const TAGS: &str = "tags";

/// The project's tags in a state (none when the state has no `tags`); a key asked removed
/// (`null`) is no tag.
pub fn tags_of(fields: &Fields) -> BTreeMap<String, String> {
    split(fields).0
}

/// A request's tags as the `tags` field it asks: each value to set, and `null` for each
/// key it removes; `None` when it names no tag (no preference).
pub fn asked(
    set: &BTreeMap<String, String>,
    removed: &BTreeSet<String>,
) -> Option<serde_json::Value> {
    if set.is_empty() && removed.is_empty() {
        return None;
    }
    let mut map = serde_json::Map::new();
    for key in removed {
        map.insert(key.clone(), serde_json::Value::Null);
    }
    for (key, value) in set {
        map.insert(key.clone(), serde_json::Value::String(value.clone()));
    }
    Some(serde_json::Value::Object(map))
}

/// What [`asked`] made, read back: the tags to set and the keys to remove.
pub fn split(fields: &Fields) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let (mut set, mut removed) = (BTreeMap::new(), BTreeSet::new());
    if let Some(serde_json::Value::Object(map)) = fields.get(TAGS) {
        for (key, value) in map {
            match value.as_str() {
                Some(v) => {
                    set.insert(key.clone(), v.to_owned());
                }
                None => {
                    removed.insert(key.clone());
                }
            }
        }
    }
    (set, removed)
}

/// Every tag key the project set before, wants now, or asks removed: the only keys it reads
/// or changes.
pub fn keys_of(applied: &Fields, wanted: &Fields) -> BTreeSet<String> {
    let (applied, removed_before) = split(applied);
    let (wanted, removed) = split(wanted);
    applied
        .into_keys()
        .chain(wanted.into_keys())
        .chain(removed_before)
        .chain(removed)
        .collect()
}

/// What bringing the tags from `applied` to `wanted` takes: the keys to remove (set by the
/// project, no longer wanted) and the tags to set (new or changed values).
pub struct TagChange {
    pub remove: Vec<String>,
    pub set: BTreeMap<String, String>,
}

pub fn change(applied: &Fields, wanted: &Fields) -> TagChange {
    let (before, after) = (tags_of(applied), tags_of(wanted));
    TagChange {
        remove: before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect(),
        set: after
            .into_iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(tags: serde_json::Value) -> Fields {
        let mut f = Fields::new();
        f.insert(TAGS.into(), tags);
        f
    }

    #[test]
    fn only_the_projects_keys_change() {
        let c = change(
            &state(json!({"CostCenter": "1", "Team": "a"})),
            &state(json!({"Team": "b", "Env": "prod"})),
        );
        assert_eq!(c.remove, vec!["CostCenter".to_string()]);
        assert_eq!(
            c.set,
            BTreeMap::from([
                ("Env".to_string(), "prod".to_string()),
                ("Team".to_string(), "b".to_string())
            ])
        );
        let none = change(&state(json!({"A": "1"})), &state(json!({"A": "1"})));
        assert!(none.remove.is_empty() && none.set.is_empty());
    }
}
