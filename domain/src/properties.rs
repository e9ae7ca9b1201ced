//! Typed device (and user) properties.
//!
//! A value's JSON type is its type: string, integer (i64), boolean, a list
//! of strings, or a list of integers (an empty list is a list of strings). `null` in a patch removes the key. Floats and nested objects
//! are refused, and so are the names of the built-in search keys.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DomainError, FieldError};

pub const MAX_KEY_CHARS: usize = 64;
pub const MAX_PROPERTIES: usize = 100;
pub const MAX_STRING_BYTES: usize = 1024;
pub const MAX_LIST_ITEMS: usize = 100;

/// Search keys that are columns of a device, not properties.
pub const BUILT_IN_KEYS: [&str; 5] = [
    "device_platform",
    "send_platform",
    "user_id",
    "random_bucket",
    "has_permission",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<String>),
    IntList(Vec<i64>),
}

impl PropertyValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            PropertyValue::Bool(_) => "boolean",
            PropertyValue::Int(_) => "integer",
            PropertyValue::Str(_) => "string",
            PropertyValue::List(_) => "list",
            PropertyValue::IntList(_) => "integer_list",
        }
    }
}

pub type Properties = BTreeMap<String, PropertyValue>;

/// What one request asks to set and to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyPatch {
    pub set: Properties,
    pub remove: BTreeSet<String>,
}

impl PropertyPatch {
    /// Parses `{"key": value | null, ...}`; errors name `<prefix>.<key>`.
    pub fn parse(prefix: &str, raw: &Value) -> Result<Self, DomainError> {
        let Value::Object(map) = raw else {
            return Err(DomainError::invalid(prefix, "must be an object"));
        };
        let mut patch = PropertyPatch::default();
        let mut errors = Vec::new();
        for (key, value) in map {
            let field = format!("{prefix}.{key}");
            if let Err(message) = check_key(key) {
                errors.push(FieldError::new(field, message));
                continue;
            }
            match parse_value(value) {
                Ok(Some(v)) => {
                    patch.set.insert(key.clone(), v);
                }
                Ok(None) => {
                    patch.remove.insert(key.clone());
                }
                Err(message) => errors.push(FieldError::new(field, message)),
            }
        }
        if map.len() > MAX_PROPERTIES * 2 {
            errors.push(FieldError::new(
                prefix,
                format!("too many keys in one request ({})", map.len()),
            ));
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(DomainError::Invalid(errors))
        }
    }

    /// The part of this patch that changes `current`, or `None` if nothing
    /// would change. Refuses a result over [`MAX_PROPERTIES`].
    pub fn against(
        &self,
        prefix: &str,
        current: &Properties,
    ) -> Result<Option<PropertyPatch>, DomainError> {
        let set: Properties = self
            .set
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let remove: BTreeSet<String> = self
            .remove
            .iter()
            .filter(|k| current.contains_key(*k))
            .cloned()
            .collect();
        let added = set.keys().filter(|k| !current.contains_key(*k)).count();
        let total = current.len() + added - remove.len();
        if total > MAX_PROPERTIES {
            return Err(DomainError::invalid(
                prefix,
                format!("at most {MAX_PROPERTIES} properties are allowed; this would make {total}"),
            ));
        }
        if set.is_empty() && remove.is_empty() {
            Ok(None)
        } else {
            Ok(Some(PropertyPatch { set, remove }))
        }
    }

    /// Applies this patch.
    pub fn apply_to(&self, properties: &mut Properties) {
        for key in &self.remove {
            properties.remove(key);
        }
        for (key, value) in &self.set {
            properties.insert(key.clone(), value.clone());
        }
    }
}

fn check_key(key: &str) -> Result<(), String> {
    let len = key.chars().count();
    if len == 0 || len > MAX_KEY_CHARS {
        return Err(format!(
            "property names are 1 to {MAX_KEY_CHARS} characters"
        ));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err("property names may hold only A-Z, a-z, 0-9, '_', '.' and '-'".into());
    }
    if BUILT_IN_KEYS.contains(&key) {
        return Err(format!(
            "'{key}' is a built-in key and cannot be a property"
        ));
    }
    Ok(())
}

fn check_string(s: &str) -> Result<(), String> {
    if s.len() > MAX_STRING_BYTES {
        Err(format!("strings are at most {MAX_STRING_BYTES} bytes"))
    } else if s.contains('\0') {
        Err(crate::storable::NUL_MESSAGE.to_owned())
    } else {
        Ok(())
    }
}

fn parse_value(value: &Value) -> Result<Option<PropertyValue>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(PropertyValue::Bool(*b))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Some(PropertyValue::Int(i))),
            None if n.is_u64() => Err("integers must fit in a signed 64-bit integer".into()),
            None => {
                Err("floating-point numbers are not supported; use an integer or a string".into())
            }
        },
        Value::String(s) => check_string(s).map(|()| Some(PropertyValue::Str(s.clone()))),
        Value::Array(items) => {
            if items.len() > MAX_LIST_ITEMS {
                return Err(format!("lists hold at most {MAX_LIST_ITEMS} items"));
            }
            if items.first().is_some_and(Value::is_number) {
                return int_list(items).map(|l| Some(PropertyValue::IntList(l)));
            }
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Value::String(s) = item else {
                    return Err(format!(
                        "list item {i} is not a string; a list holds strings only or integers only"
                    ));
                };
                check_string(s).map_err(|m| format!("list item {i}: {m}"))?;
                list.push(s.clone());
            }
            Ok(Some(PropertyValue::List(list)))
        }
        Value::Object(_) => Err("nested objects are not supported".into()),
    }
}

/// A list that starts with a number: every item a signed 64-bit integer.
fn int_list(items: &[Value]) -> Result<Vec<i64>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Number(n) => n.as_i64().ok_or_else(|| {
                format!("list item {i} is not an integer that fits in a signed 64-bit integer")
            }),
            _ => Err(format!(
                "list item {i} is not an integer; a list holds strings only or integers only"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(err: DomainError) -> Vec<String> {
        match err {
            DomainError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn values_take_their_json_type() {
        let patch = PropertyPatch::parse(
            "properties",
            &json!({"plan": "pro", "age": 31, "beta": true, "tags": ["a", "b"], "old": null}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(patch.set["plan"], PropertyValue::Str("pro".into()));
        assert_eq!(patch.set["age"], PropertyValue::Int(31));
        assert_eq!(patch.set["beta"], PropertyValue::Bool(true));
        assert_eq!(
            patch.set["tags"],
            PropertyValue::List(vec!["a".into(), "b".into()])
        );
        assert!(patch.remove.contains("old"));
    }

    #[test]
    fn a_list_of_integers_is_its_own_type() {
        let patch = PropertyPatch::parse(
            "properties",
            &json!({"levels": [1, 2, 3], "none": [], "mixed": [1, "a"]}),
        );
        assert!(patch.is_err());
        let patch = PropertyPatch::parse("properties", &json!({"levels": [1, -2, 3], "none": []}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(patch.set["levels"], PropertyValue::IntList(vec![1, -2, 3]));
        assert_eq!(patch.set["levels"].type_name(), "integer_list");
        assert_eq!(patch.set["none"], PropertyValue::List(vec![]));
        let stored = serde_json::to_value(&patch.set).unwrap_or_default();
        let back: Properties = serde_json::from_value(stored).unwrap_or_default();
        assert_eq!(back, patch.set);
    }

    #[test]
    fn each_bad_value_is_named() {
        let err = PropertyPatch::parse(
            "properties",
            &json!({
                "f": 1.5, "o": {"a": 1}, "bad key": 1, "user_id": "x",
                "s": "x".repeat(1025), "l": vec!["a"; 101], "m": [1, "a"], "big": u64::MAX,
                "ok": 1
            }),
        );
        let Err(err) = err else {
            panic!("accepted bad values")
        };
        let mut got = fields(err);
        got.sort();
        let mut want: Vec<String> = ["big", "f", "l", "m", "o", "s", "bad key", "user_id"]
            .iter()
            .map(|k| format!("properties.{k}"))
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn a_patch_against_the_current_state_keeps_only_changes() {
        let mut current = Properties::new();
        current.insert("a".into(), PropertyValue::Int(1));
        current.insert("b".into(), PropertyValue::Str("x".into()));
        let patch = PropertyPatch::parse("p", &json!({"a": 1, "b": 2, "c": null}))
            .unwrap_or_else(|e| panic!("{e}"));
        let diff = patch
            .against("p", &current)
            .unwrap_or_else(|e| panic!("{e}"));
        let diff = diff.unwrap_or_default();
        assert_eq!(diff.set.len(), 1);
        assert_eq!(diff.set["b"], PropertyValue::Int(2));
        assert!(diff.remove.is_empty());
        let unchanged = PropertyPatch::parse("p", &json!({"a": 1, "zz": null}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unchanged.against("p", &current), Ok(None));
    }

    #[test]
    fn the_property_count_is_bounded() {
        let current: Properties = (0..100)
            .map(|i| (format!("k{i}"), PropertyValue::Int(i)))
            .collect();
        let one_more =
            PropertyPatch::parse("p", &json!({"new": 1})).unwrap_or_else(|e| panic!("{e}"));
        assert!(one_more.against("p", &current).is_err());
        let swap = PropertyPatch::parse("p", &json!({"new": 1, "k1": null}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(swap.against("p", &current).is_ok());
    }
}

#[cfg(test)]
mod proptests;
