//! Property tests of the condition-tree parser: any JSON is parsed or
//! refused with named fields (never a panic); a valid tree serialises to
//! the wire form and parses back equal; trees past the depth or leaf limits
//! are refused. (NUL in an operand is refused at the edge, with the body:
//! see `api::routes::devices::search::proptests`.)

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::arbitrary::{cases, json_with, one_of_or_text, replace_node, text};

const FIELDS: &[&str] = &["join_type", "conditions", "not", "key", "operator", "value"];
const WORDS: &[&str] = &[
    "AND",
    "OR",
    "and",
    "Or",
    "plan",
    "user_id",
    "random_bucket",
    "has_permission",
    "device_platform",
    "send_platform",
    "int_eq",
    "int_gt",
    "int_gte",
    "int_lt",
    "int_lte",
    "str_eq",
    "str_ne",
    "str_in",
    "str_prefix",
    "str_exists",
    "bool_eq",
    "exists",
    "not_exists",
    "version_gte",
    "version_lt",
    "1.10.2",
    "1..2",
    "01.2",
];

/// The wire form of a tree (what the parser reads).
fn to_json(condition: &Condition) -> Value {
    match condition {
        Condition::All(children) => group("AND", children),
        Condition::Any(children) => group("OR", children),
        Condition::Not(inner) => json!({ "not": to_json(inner) }),
        Condition::Leaf(leaf) => {
            let key = match &leaf.key {
                Key::Property(name) => name.as_str(),
                Key::DevicePlatform => "device_platform",
                Key::SendPlatform => "send_platform",
                Key::UserId => "user_id",
                Key::RandomBucket => "random_bucket",
                Key::HasPermission => "has_permission",
                Key::ExternalId => "external_id",
            };
            let (operator, value) = match &leaf.op {
                Op::IntEq(i) => ("int_eq", json!(i)),
                Op::IntGt(i) => ("int_gt", json!(i)),
                Op::IntGte(i) => ("int_gte", json!(i)),
                Op::IntLt(i) => ("int_lt", json!(i)),
                Op::IntLte(i) => ("int_lte", json!(i)),
                Op::StrEq(s) => ("str_eq", json!(s)),
                Op::StrNe(s) => ("str_ne", json!(s)),
                Op::StrIn(list) => ("str_in", json!(list)),
                Op::StrPrefix(s) => ("str_prefix", json!(s)),
                Op::StrExists(s) => ("str_exists", json!(s)),
                Op::IntExists(i) => ("int_exists", json!(i)),
                Op::BoolEq(b) => ("bool_eq", json!(b)),
                Op::Exists => return json!({"key": key, "operator": "exists"}),
                Op::NotExists => ("not_exists", Value::Null),
                Op::VersionGte(v) => ("version_gte", json!(v)),
                Op::VersionLt(v) => ("version_lt", json!(v)),
            };
            json!({"key": key, "operator": operator, "value": value})
        }
    }
}

fn group(join: &str, children: &[Condition]) -> Value {
    json!({"join_type": join, "conditions": children.iter().map(to_json).collect::<Vec<_>>()})
}

/// A string operand: anything but NUL (which no query may hold).
fn operand() -> BoxedStrategy<String> {
    text().prop_map(|s| s.replace('\0', "")).boxed()
}

fn version() -> impl Strategy<Value = String> {
    "[0-9]{1,10}(\\.[0-9]{1,10}){0,15}"
}

fn int_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<i64>().prop_map(Op::IntEq),
        any::<i64>().prop_map(Op::IntGt),
        any::<i64>().prop_map(Op::IntGte),
        any::<i64>().prop_map(Op::IntLt),
        any::<i64>().prop_map(Op::IntLte),
    ]
}

fn str_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        operand().prop_map(Op::StrEq),
        operand().prop_map(Op::StrNe),
        operand().prop_map(Op::StrPrefix),
        prop::collection::vec(operand(), 1..8).prop_map(Op::StrIn),
    ]
}

/// Operators whose operand has no built-in type.
fn untyped_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        operand().prop_map(Op::StrExists),
        any::<i64>().prop_map(Op::IntExists),
        version().prop_map(Op::VersionGte),
        version().prop_map(Op::VersionLt),
        Just(Op::Exists),
        Just(Op::NotExists),
    ]
}

fn property_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,64}".prop_filter("not a built-in key", |k| {
        !BUILT_IN_KEYS.contains(&k.as_str())
    })
}

/// A leaf the parser accepts: built-in keys only with operators of their type.
fn leaf() -> impl Strategy<Value = Condition> {
    let any_op = prop_oneof![
        int_op().boxed(),
        str_op().boxed(),
        untyped_op().boxed(),
        any::<bool>().prop_map(Op::BoolEq).boxed(),
    ];
    let string_key =
        prop::sample::select(vec![Key::DevicePlatform, Key::SendPlatform, Key::UserId]);
    prop_oneof![
        3 => (property_name().prop_map(Key::Property), any_op),
        1 => (string_key, prop_oneof![str_op().boxed(), untyped_op().boxed()]),
        1 => (Just(Key::RandomBucket), prop_oneof![int_op().boxed(), Just(Op::Exists).boxed()]),
        1 => (Just(Key::HasPermission), any::<bool>().prop_map(Op::BoolEq)),
    ]
    .prop_map(|(key, op)| Condition::Leaf(Leaf { key, op }))
}

/// A valid tree: at most 5 levels, well under the leaf limit.
fn tree() -> impl Strategy<Value = Condition> {
    leaf().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..5).prop_map(Condition::All),
            prop::collection::vec(inner.clone(), 1..5).prop_map(Condition::Any),
            inner.prop_map(|c| Condition::Not(Box::new(c))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_json_is_parsed_or_refused_with_named_fields(
        raw in json_with(one_of_or_text(FIELDS), one_of_or_text(WORDS))
    ) {
        match Condition::parse(&raw) {
            Ok(parsed) => {
                prop_assert_eq!(Condition::parse(&to_json(&parsed)), Ok(parsed));
            }
            Err(DomainError::Invalid(errors)) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(e.field.starts_with("conditions"), "{:?}", e);
                    prop_assert!(!e.message.is_empty());
                }
            }
            Err(other) => prop_assert!(false, "not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_valid_tree_with_one_node_gone_wrong_is_parsed_or_refused_with_named_fields(
        tree in tree(),
        n in any::<usize>(),
        with in json_with(one_of_or_text(FIELDS), one_of_or_text(WORDS)),
    ) {
        let raw = replace_node(&to_json(&tree), n, with);
        match Condition::parse(&raw) {
            Ok(parsed) => prop_assert_eq!(Condition::parse(&to_json(&parsed)), Ok(parsed)),
            Err(DomainError::Invalid(errors)) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(e.field.starts_with("conditions"), "{:?}", e);
                }
            }
            Err(other) => prop_assert!(false, "not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_valid_tree_serialises_and_parses_back_equal(tree in tree()) {
        prop_assert_eq!(Condition::parse(&to_json(&tree)), Ok(tree));
    }

    #[test]
    fn depth_is_bounded(depth in 0usize..40) {
        let mut raw = json!({"key": "plan", "operator": "exists"});
        for _ in 0..depth {
            raw = json!({ "not": raw });
        }
        // The leaf sits at level depth + 1.
        prop_assert_eq!(Condition::parse(&raw).is_ok(), depth < MAX_DEPTH);
    }

    #[test]
    fn leaves_are_bounded(n in 1usize..400) {
        let leaves: Vec<Value> = (0..n).map(|i| json!({"key": "n", "operator": "int_eq", "value": i})).collect();
        let raw = json!({"join_type": "OR", "conditions": leaves});
        prop_assert_eq!(Condition::parse(&raw).is_ok(), n <= MAX_LEAVES);
    }
}
