//! Property tests of payload templates: any JSON is parsed or refused with
//! fields under `payload_template` (never a panic); an accepted template is
//! kept as written, uses only known placeholders, and renders to the same
//! shape; what the log cannot store (a fraction, an integer outside i64, a
//! NUL in a value or a key) is refused naming its path; the size is bounded.

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

use super::*;
use crate::arbitrary::{cases, json_with, replace_node, text};

/// Template strings: text and placeholders, known, unknown, unclosed.
fn template_string() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        Just("{{user.id}}".to_owned()),
        Just("{{ event.data }}".to_owned()),
        Just("'{{user.email}}'".to_owned()),
        Just("{{nope}}".to_owned()),
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{{}}".to_owned()),
        text(),
    ];
    prop::collection::vec(piece, 0..4)
        .prop_map(|pieces| pieces.concat())
        .boxed()
}

/// Templates the log can store: keys `[a-z]{1,4}` (so paths are plain),
/// strings without NUL, integers of i64 only.
fn storable_template() -> impl Strategy<Value = Value> {
    let strings = template_string().prop_map(|s| s.replace('\0', "")).boxed();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        strings.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every node's path as errors name it, in the order `replace_node` counts.
fn paths(value: &Value, path: String, out: &mut Vec<String>) {
    out.push(path.clone());
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                paths(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                paths(item, format!("{path}.{key}"), out);
            }
        }
        _ => {}
    }
}

/// `raw` with node `n` made `bad`, and that node's path.
fn spoil(raw: &Value, n: usize, bad: Value) -> (Value, String) {
    let mut all = Vec::new();
    paths(raw, "payload_template".into(), &mut all);
    let path = all[n % all.len()].clone();
    (replace_node(raw, n, bad), path)
}

fn refused_at(raw: Value, path: &str) -> Result<(), TestCaseError> {
    // Past the size limit, that is the one error named.
    prop_assume!(raw.to_string().len() <= MAX_TEMPLATE_BYTES);
    match Template::parse(raw) {
        Err(DomainError::Invalid(errors)) => {
            prop_assert!(
                errors.iter().any(|e| e.field == path),
                "{} not named: {:?}",
                path,
                errors
            );
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "{path}: expected a 400, got {other:?}"
        ))),
    }
}

/// `rendered` has `raw`'s shape: plain strings and scalars as they were,
/// strings with placeholders replaced by a string or a looked-up value.
fn same_shape(raw: &Value, rendered: &Value) -> bool {
    match (raw, rendered) {
        (Value::String(s), other) if s.contains("{{") => other.is_string() || other == &looked_up(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_shape(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| same_shape(x, y)))
        }
        (x, y) => x == y,
    }
}

fn looked_up() -> Value {
    json!({"looked": "up"})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_json_is_parsed_or_refused_under_payload_template(
        raw in json_with(text(), template_string())
    ) {
        match Template::parse(raw.clone()) {
            Ok(template) => {
                prop_assert_eq!(template.as_value(), &raw, "kept as written");
                for name in template.placeholders() {
                    prop_assert!(PLACEHOLDERS.contains(&name.as_str()), "{}", name);
                }
                let rendered = template.render(&|_| looked_up());
                prop_assert!(same_shape(&raw, &rendered), "{} rendered as {}", raw, rendered);
            }
            Err(DomainError::Invalid(errors)) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(e.field.starts_with("payload_template"), "{:?}", e);
                }
            }
            Err(other) => prop_assert!(false, "not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_fraction_is_refused_naming_its_path(
        raw in storable_template(),
        n in any::<usize>(),
        float in prop_oneof![Just(0.0), Just(-0.0), any::<f64>()].prop_filter_map("finite", Number::from_f64),
    ) {
        let (raw, path) = spoil(&raw, n, Value::Number(float));
        refused_at(raw, &path)?;
    }

    #[test]
    fn an_integer_outside_i64_is_refused_naming_its_path(
        raw in storable_template(),
        n in any::<usize>(),
        big in prop_oneof![
            ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(|u| u.to_string()),
            "[1-9][0-9]{20,40}",
            "-[1-9][0-9]{19,40}",
        ],
    ) {
        let big: Value = serde_json::from_str(&big).unwrap_or_else(|e| panic!("{big}: {e}"));
        prop_assume!(big.as_i64().is_none());
        let (raw, path) = spoil(&raw, n, big);
        refused_at(raw, &path)?;
    }

    #[test]
    fn a_nul_in_a_value_or_a_key_is_refused_naming_its_path(
        raw in storable_template(),
        n in any::<usize>(),
        s in text(),
        in_key in any::<bool>(),
    ) {
        let bad = format!("{s}\0");
        if in_key {
            let mut map = Map::new();
            map.insert(bad.clone(), Value::from(1));
            let (raw, path) = spoil(&raw, n, Value::Object(map));
            refused_at(raw, &format!("{path}.{bad}"))?;
        } else {
            let (raw, path) = spoil(&raw, n, Value::String(bad));
            refused_at(raw, &path)?;
        }
    }

    #[test]
    fn the_size_is_bounded(s in "[a-z ]{16370,16390}") {
        let raw = json!({ "s": s });
        let fits = raw.to_string().len() <= MAX_TEMPLATE_BYTES;
        prop_assert_eq!(Template::parse(raw).is_ok(), fits);
    }
}
