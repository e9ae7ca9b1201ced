//! Property tests of property patches: any JSON is parsed or refused with
//! every bad key named (never a panic); what is accepted keeps each value
//! exactly (and through its stored JSON form); NUL is refused; a patch
//! reduced against the current state changes it exactly as the whole patch.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;
use crate::arbitrary::{cases, json, json_with, one_of_or_text, text};

const KEYS: &[&str] = &[
    "plan",
    "age",
    "tags",
    "a.b-c_D9",
    "user_id",
    "random_bucket",
    "bad key",
    "",
];

/// A valid property name.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,64}".prop_filter("not a built-in key", |k| {
        !BUILT_IN_KEYS.contains(&k.as_str())
    })
}

/// A string a property may hold: at most 1024 bytes, no NUL.
fn stored_text() -> impl Strategy<Value = String> {
    text().prop_map(|s| {
        let mut s = s.replace('\0', "");
        while s.len() > MAX_STRING_BYTES {
            s.pop();
        }
        s
    })
}

fn value() -> impl Strategy<Value = PropertyValue> {
    prop_oneof![
        any::<bool>().prop_map(PropertyValue::Bool),
        any::<i64>().prop_map(PropertyValue::Int),
        stored_text().prop_map(PropertyValue::Str),
        prop::collection::vec(stored_text(), 0..8).prop_map(PropertyValue::List),
    ]
}

/// Current properties (up to the limit), and a patch body that sets,
/// resets or removes some of them and adds new ones.
fn state_and_patch() -> impl Strategy<Value = (Properties, Map<String, Value>)> {
    prop::collection::btree_map(name(), value(), 0..=MAX_PROPERTIES).prop_flat_map(|current| {
        let keys: Vec<String> = current.keys().cloned().collect();
        let n = keys.len();
        let touched = prop::sample::subsequence(keys, 0..=n.min(8));
        let existing = (
            touched,
            prop::collection::vec(prop::option::of(value()), 8),
            any::<bool>(),
        )
            .prop_map({
                let current = current.clone();
                move |(keys, values, same)| {
                    keys.into_iter()
                        .zip(values)
                        .map(|(k, v)| {
                            let v = match v {
                                _ if same => json_of(&current[&k]),
                                Some(v) => json_of(&v),
                                None => Value::Null,
                            };
                            (k, v)
                        })
                        .collect::<Map<String, Value>>()
                }
            });
        (Just(current), existing, patch_body()).prop_map(|(current, mut body, new)| {
            body.extend(new);
            (current, body)
        })
    })
}

/// A patch body: valid names mapped to values, or to null (remove).
fn patch_body() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(name(), prop::option::of(value()), 0..12).prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, v.map_or(Value::Null, |v| json_of(&v))))
            .collect()
    })
}

fn json_of(value: &PropertyValue) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_json_is_parsed_or_refused_naming_each_bad_key(
        raw in prop_oneof![
            1 => json(),
            3 => prop::collection::btree_map(one_of_or_text(KEYS), json_with(text(), text()), 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    ) {
        match PropertyPatch::parse("properties", &raw) {
            Ok(patch) => {
                let Value::Object(map) = &raw else {
                    return Err(TestCaseError::fail("accepted a non-object"));
                };
                prop_assert_eq!(patch.set.len() + patch.remove.len(), map.len());
                for (key, value) in map {
                    match patch.set.get(key) {
                        Some(v) => prop_assert_eq!(&json_of(v), value, "{} changed", key),
                        None => prop_assert!(value.is_null() && patch.remove.contains(key)),
                    }
                }
            }
            Err(DomainError::Invalid(errors)) => {
                prop_assert!(!errors.is_empty());
                let keys: Vec<String> = match &raw {
                    Value::Object(map) => map.keys().map(|k| format!("properties.{k}")).collect(),
                    _ => Vec::new(),
                };
                for e in &errors {
                    prop_assert!(
                        e.field == "properties" || keys.contains(&e.field),
                        "{:?} names neither the body nor one of its keys", e
                    );
                }
            }
            Err(other) => prop_assert!(false, "not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_valid_patch_keeps_every_value_and_each_value_round_trips_as_stored(
        body in patch_body()
    ) {
        let raw = Value::Object(body.clone());
        let patch = PropertyPatch::parse("properties", &raw);
        prop_assert!(patch.is_ok(), "{:?}", patch);
        let patch = patch.unwrap_or_default();
        for (key, value) in &body {
            if value.is_null() {
                prop_assert!(patch.remove.contains(key));
            } else {
                prop_assert_eq!(&json_of(&patch.set[key]), value);
                // Events store values as JSON: they read back as they were.
                let back: Option<PropertyValue> = serde_json::from_value(value.clone()).ok();
                prop_assert_eq!(back.as_ref(), Some(&patch.set[key]));
            }
        }
    }

    #[test]
    fn a_nul_in_a_string_or_list_item_is_refused_naming_its_key(
        key in name(), before in stored_text(), after in stored_text(), in_list in any::<bool>()
    ) {
        let bad = format!("{before}\0{after}");
        let value = if in_list { Value::from(vec![Value::from("ok"), Value::from(bad)]) } else { Value::from(bad) };
        let raw = Value::Object(Map::from_iter([(key.clone(), value)]));
        let Err(DomainError::Invalid(errors)) = PropertyPatch::parse("properties", &raw) else {
            return Err(TestCaseError::fail("a NUL was accepted"));
        };
        let field = format!("properties.{key}");
        prop_assert!(errors.iter().any(|e| e.field == field), "{:?}", errors);
    }

    #[test]
    fn a_patch_against_the_current_state_changes_it_as_the_whole_patch(
        (current, body) in state_and_patch()
    ) {
        let patch = PropertyPatch::parse("p", &Value::Object(body)).unwrap_or_default();
        let mut whole = current.clone();
        patch.apply_to(&mut whole);
        match patch.against("p", &current) {
            Ok(Some(diff)) => {
                let mut reduced = current.clone();
                diff.apply_to(&mut reduced);
                prop_assert_eq!(&reduced, &whole);
                prop_assert!(reduced != current, "a diff that changes nothing");
            }
            Ok(None) => prop_assert_eq!(&whole, &current),
            Err(DomainError::Invalid(_)) => prop_assert!(whole.len() > MAX_PROPERTIES),
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }
}
