//! Generators for the parsers' property tests: what a careless or hostile
//! client can send. Strings with control characters and NUL, strings near
//! and past the limits, any Unicode; numbers of every JSON kind (i64, past
//! i64, floats); JSON trees of bounded depth and size whose object keys and
//! strings the caller chooses, so each parser can be fed inputs shaped like
//! the ones it expects.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Any string, weighted towards the awkward ones.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[\\x00-\\x1f\\x7f a-zA-Z0-9_.{}:'\"\\\\-]{0,16}",
        1 => "(?s).{0,8}\\x00.{0,8}",
        1 => "[a-z0-9]{250,260}",
        1 => "[a-zé]{1020,1030}",
        1 => Just(String::new()),
    ]
    .boxed()
}

/// Any JSON number: i64, u64 past i64, floats (huge, tiny, zero, negative
/// zero; a JSON number past f64 does not parse at all).
pub fn number() -> BoxedStrategy<Number> {
    prop_oneof![
        3 => any::<i64>().prop_map(Number::from),
        1 => ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Number::from),
        1 => any::<f64>().prop_filter_map("finite", Number::from_f64),
        1 => prop::sample::select(vec![0.0, -0.0, 1.0, 1e300, -1e-300])
            .prop_filter_map("finite", Number::from_f64),
    ]
    .boxed()
}

/// JSON of depth at most 5 and about 100 nodes at most, whose object keys
/// come from `keys` and strings from `strings`.
pub fn json_with(
    keys: BoxedStrategy<String>,
    strings: BoxedStrategy<String>,
) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        strings.prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 100, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// Any JSON, keys and strings from [`text`].
pub fn json() -> BoxedStrategy<Value> {
    json_with(text(), text())
}

/// `words` (weighted 3) or any [`text`] (weighted 1).
pub fn one_of_or_text(words: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(words).prop_map(str::to_owned),
        1 => text(),
    ]
    .boxed()
}

/// `value` with its `n`-th node (pre-order, modulo the node count) replaced
/// by `with`: a valid input with one part gone wrong.
pub fn replace_node(value: &Value, n: usize, with: Value) -> Value {
    let count = count_nodes(value);
    let mut target = n % count;
    let mut with = Some(with);
    replace(value, &mut target, &mut with)
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn replace(value: &Value, target: &mut usize, with: &mut Option<Value>) -> Value {
    if *target == 0
        && let Some(new) = with.take()
    {
        return new;
    }
    *target = target.wrapping_sub(1);
    match value {
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| replace(v, target, with)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), replace(v, target, with)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Cases per property: 512, or `PROPTEST_CASES` to dig deeper.
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512)
}
