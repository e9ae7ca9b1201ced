//! Generators for the API parsers' property tests: hostile strings and
//! JSON (the domain crate has the same kind for its own parsers).

use axum::response::IntoResponse;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use crate::error::ApiError;

/// Any string, weighted towards the awkward ones: control characters,
/// NUL, quotes and backslashes, long ones.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[\\x00-\\x1f\\x7f a-zA-Z0-9_.:=+/'\"\\\\-]{0,24}",
        1 => "[A-Za-z0-9_-]{200,300}",
        1 => Just(String::new()),
    ]
    .boxed()
}

/// JSON of depth at most 5, keys from `keys`, strings from `strings`,
/// numbers of every kind.
pub fn json_with(
    keys: BoxedStrategy<String>,
    strings: BoxedStrategy<String>,
) -> BoxedStrategy<Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number.prop_map(Value::Number),
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

/// `words` (weighted 3) or any [`text`].
pub fn one_of_or_text(words: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(words).prop_map(str::to_owned),
        1 => text(),
    ]
    .boxed()
}

/// The HTTP status an error becomes.
pub fn status_of(error: ApiError) -> u16 {
    error.into_response().status().as_u16()
}

/// Cases per property: 512, or `PROPTEST_CASES` to dig deeper.
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512)
}
