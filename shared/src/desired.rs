//! Desired state: what the requests for one step ask, field by field, the latest request
//! winning for each field it names.
//!
//! A request names fields (a step's [`crate::step::Plan::desired`]): a scalar (an instance
//! name, a provider type, a secret's name) or a map whose every key is a field of its own
//! (each tag, each provider detail). A JSON `null` under a map key asks for that key's
//! removal. [`Desired`] keeps, for every field ever named, the value and the [`Revision`] of
//! the newest request that named it. [`Desired::merge`] takes, per field, the entry with the
//! greater revision, so it is commutative, associative and idempotent: every delivery
//! order, every duplicate and every crash between merges ends in the same desired state.
//! A request that names nothing changes nothing, and a field a request leaves out is no
//! preference (Control Tower's events name none).
//!
//! The desired state holds no secret: a provider's secret is named, never held.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::revision::Revision;

/// A request's or a resource's fields as JSON (the step's own names: `name`, `tags`, ...).
pub type Fields = serde_json::Map<String, Value>;

/// One field: `name` (`name`, `type`) or a key of a map field (`tags` / `env`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Field {
    pub name: String,
    pub key: Option<String>,
}

impl Field {
    /// How the field is shown: `name`, `tags.env`.
    pub fn label(&self) -> String {
        match &self.key {
            Some(key) => format!("{}.{key}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The newest value asked for one field: `None` asks for a map key's removal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Option<Value>,
    pub revision: Revision,
}

impl Entry {
    /// The entry that wins: the newer revision; for one revision (the same request twice,
    /// or a corrupted store) the greater value, so that merging never depends on order.
    fn wins_over(&self, other: &Entry) -> bool {
        (&self.revision, value_order(&self.value)) > (&other.revision, value_order(&other.value))
    }
}

fn value_order(v: &Option<Value>) -> String {
    v.as_ref().map_or_else(String::new, |v| format!("1{v}"))
}

/// The desired state of one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    entries: BTreeMap<Field, Entry>,
}

impl Desired {
    /// What one request asks: every field its `fields` name, at its `revision`.
    pub fn of(fields: &Fields, revision: &Revision) -> Desired {
        let mut entries = BTreeMap::new();
        for (name, value) in fields {
            let entry = |value: Option<Value>| Entry {
                value,
                revision: revision.clone(),
            };
            match value {
                Value::Object(keys) => {
                    for (key, value) in keys {
                        let field = Field {
                            name: name.clone(),
                            key: Some(key.clone()),
                        };
                        entries.insert(field, entry((!value.is_null()).then(|| value.clone())));
                    }
                }
                // A scalar asked as null is no preference (only map keys are removed).
                Value::Null => {}
                value => {
                    let field = Field {
                        name: name.clone(),
                        key: None,
                    };
                    entries.insert(field, entry(Some(value.clone())));
                }
            }
        }
        Desired { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = (&Field, &Entry)> {
        self.entries.iter()
    }

    /// Merges `other` in, field by field, the newer entry winning. Returns whether anything
    /// changed: `false` means `other` was already known (a duplicate, an older request, or
    /// one that names nothing).
    pub fn merge(&mut self, other: &Desired) -> bool {
        let mut changed = false;
        for (field, entry) in &other.entries {
            let take = self
                .entries
                .get(field)
                .is_none_or(|mine| entry.wins_over(mine));
            if take {
                self.entries.insert(field.clone(), entry.clone());
                changed = true;
            }
        }
        changed
    }

    /// The newest revision of any field.
    pub fn newest(&self) -> Option<&Revision> {
        self.entries.values().map(|e| &e.revision).max()
    }

    /// `state` brought to the desired state: every desired value set, every removal done;
    /// fields no request named are kept as they are.
    pub fn target(&self, state: &Fields) -> Fields {
        let mut target = state.clone();
        for (field, entry) in &self.entries {
            match (&field.key, &entry.value) {
                (None, Some(value)) => {
                    target.insert(field.name.clone(), value.clone());
                }
                (None, None) => {}
                (Some(key), value) => {
                    let map = target
                        .entry(field.name.clone())
                        .or_insert_with(|| Value::Object(Default::default()));
                    if !map.is_object() {
                        *map = Value::Object(Default::default());
                    }
                    let Value::Object(map) = map else {
                        unreachable!("made an object above")
                    };
                    match value {
                        Some(value) => {
                            map.insert(key.clone(), value.clone());
                        }
                        None => {
                            map.remove(key);
                        }
                    }
                }
            }
        }
        // A map every key of which was removed (or never set) is no field at all.
        target.retain(|_, v| !matches!(v, Value::Object(m) if m.is_empty()));
        target
    }

    /// Every field named, as fields (a removal as `null`): what a holder that cannot trust
    /// the recorded state must set, or remove, again.
    pub fn named(&self) -> Fields {
        let mut named = Fields::new();
        for (field, entry) in &self.entries {
            let value = entry.value.clone().unwrap_or(Value::Null);
            match &field.key {
                None => {
                    named.insert(field.name.clone(), value);
                }
                Some(key) => {
                    let map = named
                        .entry(field.name.clone())
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Value::Object(map) = map {
                        map.insert(key.clone(), value);
                    }
                }
            }
        }
        named
    }

    /// Whether the resource, holding `state`, still has to change.
    pub fn pending(&self, state: &Fields) -> bool {
        self.target(state) != *state
    }

    /// Stored form: a JSON array of `{"f": field, "k": key?, "v": value (null: removal),
    /// "r": revision}`, unambiguous whatever a tag key is.
    pub fn to_json(&self) -> String {
        let list: Vec<Value> = self
            .entries
            .iter()
            .map(|(field, entry)| {
                let mut item = serde_json::json!({
                    "f": field.name,
                    "v": entry.value,
                    "r": entry.revision.as_str(),
                });
                if let Some(key) = &field.key {
                    item["k"] = Value::String(key.clone());
                }
                item
            })
            .collect();
        Value::Array(list).to_string()
    }

    /// Reads what [`Desired::to_json`] wrote; anything else is an error naming what.
    pub fn from_json(stored: &str) -> Result<Desired, String> {
        let list: Vec<Value> = serde_json::from_str(stored)
            .map_err(|e| format!("desired state is not a JSON array: {e}"))?;
        let mut entries = BTreeMap::new();
        for (i, item) in list.into_iter().enumerate() {
            let text = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_owned);
            let (Some(name), Some(revision)) = (text("f"), text("r")) else {
                return Err(format!("desired state entry {i} has no field or revision"));
            };
            let value = item.get("v").filter(|v| !v.is_null()).cloned();
            let field = Field {
                name,
                key: text("k"),
            };
            entries.insert(
                field,
                Entry {
                    value,
                    revision: Revision::parse(&revision),
                },
            );
        }
        Ok(Desired { entries })
    }
}

/// Shown (`onboarding status --json`) as its stored form: a list of fields with their
/// values and revisions.
impl serde::Serialize for Desired {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let stored: Value = serde_json::from_str(&self.to_json()).unwrap_or(Value::Null);
        stored.serialize(serializer)
    }
}

/// The fields whose values differ between two states, as [`Field::label`]s (`name`,
/// `tags.env`): what an update changed.
pub fn changed(before: &Fields, after: &Fields) -> Vec<String> {
    let mut out = Vec::new();
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        match (before.get(name), after.get(name)) {
            (a, b) if a == b => {}
            (Some(Value::Object(_)) | None, Some(Value::Object(_)) | None) => {
                let empty = serde_json::Map::new();
                let a = before
                    .get(name)
                    .and_then(Value::as_object)
                    .unwrap_or(&empty);
                let b = after.get(name).and_then(Value::as_object).unwrap_or(&empty);
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                out.extend(
                    keys.into_iter()
                        .filter(|k| a.get(*k) != b.get(*k))
                        .map(|k| format!("{name}.{k}")),
                );
            }
            _ => out.push(name.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        v.as_object().cloned().unwrap()
    }

    fn rev(t: &str) -> Revision {
        Revision::at(Some(&format!("2026-01-01T{t}:00Z")), "e")
    }

    #[test]
    fn a_control_tower_event_after_a_named_request_changes_nothing() {
        let mut d = Desired::of(&fields(json!({"name": "payments"})), &rev("11:00"));
        assert!(!d.merge(&Desired::of(&Fields::new(), &rev("12:00"))));
        assert_eq!(
            d.target(&Fields::new()),
            fields(json!({"name": "payments"}))
        );
    }

    #[test]
    fn an_older_request_arriving_late_sets_only_what_nobody_newer_set() {
        let mut d = Desired::of(&fields(json!({"tags": {"env": "prod"}})), &rev("12:00"));
        let late = fields(json!({"name": "payments", "tags": {"env": "dev", "team": "a"}}));
        assert!(d.merge(&Desired::of(&late, &rev("11:00"))));
        assert_eq!(
            d.target(&Fields::new()),
            fields(json!({"name": "payments", "tags": {"env": "prod", "team": "a"}}))
        );
    }

    #[test]
    fn a_null_tag_removes_it_and_an_older_value_does_not_bring_it_back() {
        let state = fields(json!({"tags": {"env": "prod", "team": "a"}}));
        let mut d = Desired::of(&state, &rev("10:00"));
        d.merge(&Desired::of(
            &fields(json!({"tags": {"team": null}})),
            &rev("12:00"),
        ));
        d.merge(&Desired::of(
            &fields(json!({"tags": {"team": "b"}})),
            &rev("11:00"),
        ));
        assert_eq!(d.target(&state), fields(json!({"tags": {"env": "prod"}})));
        assert!(d.pending(&state));
        let all_gone = Desired::of(&fields(json!({"tags": {"env": null}})), &rev("13:00"));
        d.merge(&all_gone);
        assert_eq!(d.target(&state), Fields::new());
    }

    #[test]
    fn the_stored_form_reads_back_whatever_the_keys_hold() {
        let f = fields(json!({"name": "n", "tags": {"f": "x", "k": null, "a.b#c/é": "v"}}));
        let d = Desired::of(&f, &rev("10:00"));
        assert_eq!(Desired::from_json(&d.to_json()).unwrap(), d);
        assert!(Desired::from_json("{}").unwrap_err().contains("JSON array"));
        assert!(Desired::from_json(r#"[{"v": 1}]"#)
            .unwrap_err()
            .contains("entry 0"));
    }

    #[test]
    fn changed_names_each_key_of_a_map() {
        let a = fields(json!({"name": "a", "tags": {"x": "1", "y": "2"}}));
        let b = fields(json!({"name": "b", "tags": {"x": "1", "z": "3"}}));
        assert_eq!(changed(&a, &b), ["name", "tags.y", "tags.z"]);
        assert!(changed(&a, &a).is_empty());
    }

    fn arb_request() -> impl Strategy<Value = Desired> {
        let value = prop_oneof![Just(None), "[ab]".prop_map(Some)];
        let tags = prop::collection::btree_map("[xyz]", value, 0..3);
        let name = prop::option::of("[nm]");
        (name, tags, 0u8..4, "[pq]").prop_map(|(name, tags, hour, id)| {
            let mut f = Fields::new();
            if let Some(name) = name {
                f.insert("name".into(), json!(name));
            }
            if !tags.is_empty() {
                f.insert("tags".into(), json!(tags));
            }
            Desired::of(
                &f,
                &Revision::at(Some(&format!("2026-01-01T0{hour}:00:00Z")), &id),
            )
        })
    }

    proptest! {
        /// The merge is a semilattice: every order of delivery, with any duplicates, ends in
        /// the same desired state.
        #[test]
        fn every_delivery_order_ends_in_the_same_state(
            requests in prop::collection::vec(arb_request(), 1..6),
            order in prop::collection::vec(any::<prop::sample::Index>(), 1..14),
        ) {
            let mut in_order = Desired::default();
            for r in &requests {
                in_order.merge(r);
            }
            // Shuffled, duplicated deliveries; every request delivered at least once.
            let mut shuffled = Desired::default();
            for i in &order {
                shuffled.merge(&requests[i.index(requests.len())]);
            }
            for r in requests.iter().rev() {
                shuffled.merge(r);
            }
            prop_assert_eq!(&shuffled, &in_order);
            // Idempotent: merging the result into itself changes nothing.
            let mut again = in_order.clone();
            prop_assert!(!again.merge(&in_order));
        }
    }
}
