//! Property tests of the `POST /v1/devices/search` body, parsed as the
//! handler parses it (the JSON extractor, then the checks): any body, even
//! invalid JSON, huge numbers or deep nesting, is a query or a 4xx, never a
//! panic; a valid body gives the tree the domain parser gives, the page size
//! and the cursor's position; NUL in an operand or the cursor is a 400
//! naming the field.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::arbitrary::{cases, json_with, one_of_or_text, status_of, text};
use crate::error::ApiError;
use crate::extract::json::parse;

const FIELDS: &[&str] = &[
    "conditions",
    "limit",
    "cursor",
    "join_type",
    "not",
    "key",
    "operator",
    "value",
];
const WORDS: &[&str] = &[
    "AND",
    "OR",
    "plan",
    "user_id",
    "str_eq",
    "str_in",
    "int_lt",
    "exists",
    "bool_eq",
    "version_gte",
    "1.2.3",
    "ZGV2aWNlczo0Mg",
];

fn check(bytes: &[u8]) -> ApiResult<SearchQuery> {
    parse::<SearchDevices>(bytes).and_then(SearchDevices::check)
}

fn operand() -> impl Strategy<Value = String> {
    text().prop_map(|s| s.replace('\0', ""))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        ("[a-z]{1,8}", any::<i64>())
            .prop_map(|(k, v)| json!({"key": k, "operator": "int_gte", "value": v})),
        ("[a-z]{1,8}", operand())
            .prop_map(|(k, v)| json!({"key": k, "operator": "str_eq", "value": v})),
        ("[a-z]{1,8}", prop::collection::vec(operand(), 1..4))
            .prop_map(|(k, v)| json!({"key": k, "operator": "str_in", "value": v})),
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}"
            .prop_map(|v| json!({"key": "app_version", "operator": "version_gte", "value": v})),
        any::<bool>()
            .prop_map(|b| json!({"key": "has_permission", "operator": "bool_eq", "value": b})),
        Just(json!({"key": "plan", "operator": "not_exists"})),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (
                prop::sample::select(vec!["AND", "or"]),
                prop::collection::vec(inner.clone(), 1..4)
            )
                .prop_map(|(join, c)| json!({"join_type": join, "conditions": c})),
            inner.prop_map(|c| json!({ "not": c })),
        ]
    })
}

/// Bodies that are not JSON, or JSON at the edges of what parses.
fn raw_body() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        "-?[0-9]{19,40}",
        Just("1e400".to_owned()),
        Just("-0".to_owned()),
        Just("1.5".to_owned()),
        Just("1000".to_owned()),
    ];
    prop_oneof![
        text(),
        number.prop_map(|n| format!(r#"{{"limit": {n}}}"#)),
        (1usize..300).prop_map(|n| format!(
            r#"{{"conditions": {}{}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )),
        (1usize..40).prop_map(|n| format!(
            r#"{{"conditions": {}{{"key": "a", "operator": "exists"}}{}}}"#,
            r#"{"not": "#.repeat(n),
            "}".repeat(n)
        )),
        text().prop_map(|s| format!(r#"{{"cursor": "{s}"}}"#)),
    ]
}

fn accepted_sensibly(query: &SearchQuery) -> Result<(), TestCaseError> {
    prop_assert!((1..=1000).contains(&query.limit), "{:?}", query);
    prop_assert!(query.after >= 0, "{:?}", query);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_json_body_is_a_query_or_a_4xx(
        body in json_with(one_of_or_text(FIELDS), one_of_or_text(WORDS))
    ) {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        match check(&bytes) {
            Ok(query) => accepted_sensibly(&query)?,
            Err(e) => {
                let status = status_of(e);
                prop_assert!((400..500).contains(&status), "{}", status);
            }
        }
    }

    #[test]
    fn any_raw_body_is_a_query_or_a_4xx(body in raw_body()) {
        match check(body.as_bytes()) {
            Ok(query) => accepted_sensibly(&query)?,
            Err(e) => {
                let status = status_of(e);
                prop_assert!((400..500).contains(&status), "{}", status);
            }
        }
    }

    #[test]
    fn a_valid_body_gives_the_tree_the_page_size_and_the_position(
        conditions in prop::option::of(tree()),
        limit in prop::option::of(1i64..=1000),
        after in prop::option::of(0..=i64::MAX),
    ) {
        let mut body = serde_json::Map::new();
        if let Some(c) = &conditions {
            body.insert("conditions".into(), c.clone());
        }
        if let Some(l) = limit {
            body.insert("limit".into(), l.into());
        }
        if let Some(a) = after {
            body.insert("cursor".into(), cursor::encode(CURSOR_KIND, a).into());
        }
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
        let query = check(&bytes);
        prop_assert!(query.is_ok(), "{:?}", query.err());
        let query = query.unwrap_or_else(|e| panic!("{e:?}"));
        let expected = conditions.as_ref().map(Condition::parse).transpose();
        prop_assert_eq!(Ok(query.condition), expected);
        prop_assert_eq!(query.limit, limit.unwrap_or(100));
        prop_assert_eq!(query.after, after.unwrap_or(0));
    }

    #[test]
    fn a_nul_in_an_operand_is_a_400_naming_its_value(
        siblings in prop::collection::vec(tree(), 0..4),
        at in any::<prop::sample::Index>(),
        before in operand(),
        after in operand(),
        in_list in any::<bool>(),
    ) {
        let bad = format!("{before}\0{after}");
        let value = if in_list { json!(["ok", bad]) } else { json!(bad) };
        let poisoned = json!({"key": "plan", "operator": if in_list { "str_in" } else { "str_eq" }, "value": value});
        let i = at.index(siblings.len() + 1);
        let mut children = siblings;
        children.insert(i, poisoned);
        let body = json!({"conditions": {"join_type": "AND", "conditions": children}});
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let Err(e) = check(&bytes) else {
            return Err(TestCaseError::fail("a NUL was accepted"));
        };
        let ApiError::Validation(errors) = e else {
            return Err(TestCaseError::fail(format!("not a validation error: {e:?}")));
        };
        let leaf = format!("conditions[{i}].value");
        prop_assert!(errors.iter().any(|f| f.field.contains(&leaf)), "{} not named: {:?}", leaf, errors);
        prop_assert_eq!(status_of(ApiError::Validation(errors)), 400);
    }

    #[test]
    fn a_nul_in_the_cursor_is_a_400_naming_it(before in "[A-Za-z0-9_-]{0,12}", after in "[A-Za-z0-9_-]{0,12}") {
        let body = json!({"cursor": format!("{before}\0{after}")});
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        match check(&bytes) {
            Err(ApiError::Validation(errors)) => {
                prop_assert!(errors.iter().any(|f| f.field == "cursor"), "{:?}", errors);
            }
            other => prop_assert!(false, "expected a 400 naming cursor, got {other:?}"),
        }
    }
}
