use serde_json::json;

use super::*;

fn paths(raw: Value) -> Vec<String> {
    match Condition::parse(&raw) {
        Err(DomainError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn leaf(key: &str, op: &str, value: Value) -> Value {
    json!({"key": key, "operator": op, "value": value})
}

#[test]
fn a_nested_tree_parses() {
    let tree = json!({"join_type": "AND", "conditions": [
        leaf("plan", "str_eq", json!("pro")),
        {"not": leaf("age", "int_lt", json!(18))},
        {"join_type": "or", "conditions": [leaf("random_bucket", "int_lte", json!(1000)), leaf("beta", "exists", Value::Null)]},
    ]});
    let parsed = Condition::parse(&tree).unwrap_or_else(|e| panic!("{e}"));
    let Condition::All(children) = parsed else {
        panic!("not an AND")
    };
    assert_eq!(children.len(), 3);
    assert!(
        matches!(&children[1], Condition::Not(inner) if matches!(**inner, Condition::Leaf(Leaf { op: Op::IntLt(18), .. })))
    );
    assert!(
        matches!(&children[2], Condition::Any(c) if c[0] == Condition::Leaf(Leaf { key: Key::RandomBucket, op: Op::IntLte(1000) }))
    );
}

#[test]
fn refusals_name_the_path_of_the_bad_node() {
    let tree = json!({"join_type": "AND", "conditions": [
        leaf("a", "str_eq", json!("x")),
        {"join_type": "OR", "conditions": [{"key": "b", "operator": "str_like", "value": "x"}]},
    ]});
    assert_eq!(paths(tree), ["conditions[1].conditions[0].operator"]);
    assert_eq!(paths(leaf("a", "int_gt", json!("5"))), ["conditions.value"]);
    assert_eq!(
        paths(leaf("a", "str_in", json!(["x", 1]))),
        ["conditions.value"]
    );
    assert_eq!(paths(leaf("a", "bool_eq", json!(1))), ["conditions.value"]);
    assert_eq!(
        paths(leaf("a", "version_gte", json!("1.x"))),
        ["conditions.value"]
    );
    assert_eq!(
        paths(leaf("bad key", "exists", Value::Null)),
        ["conditions.key"]
    );
    assert_eq!(
        paths(json!({"join_type": "XOR", "conditions": [leaf("a", "exists", Value::Null)]})),
        ["conditions.join_type"]
    );
    assert_eq!(
        paths(json!({"not": {"join_type": "AND", "conditions": []}})),
        ["conditions.not.conditions"]
    );
    assert_eq!(paths(json!(5)), ["conditions"]);
    assert_eq!(
        paths(leaf("random_bucket", "str_eq", json!("5"))),
        ["conditions.operator"]
    );
}

#[test]
fn depth_and_size_are_bounded() {
    let mut tree = leaf("a", "exists", Value::Null);
    for _ in 0..15 {
        tree = json!({"not": tree});
    }
    assert!(Condition::parse(&tree).is_ok(), "16 levels are fine");
    let deeper = json!({"not": tree});
    assert_eq!(paths(deeper).len(), 1);

    let many: Vec<Value> = (0..257)
        .map(|i| leaf(&format!("k{i}"), "exists", Value::Null))
        .collect();
    assert_eq!(
        paths(json!({"join_type": "OR", "conditions": many})),
        ["conditions"]
    );
    let enough: Vec<Value> = (0..256)
        .map(|i| leaf(&format!("k{i}"), "exists", Value::Null))
        .collect();
    assert!(Condition::parse(&json!({"join_type": "OR", "conditions": enough})).is_ok());
}

#[test]
fn versions_sort_numerically() {
    let key = |v: &str| version_key(v).unwrap_or_else(|| panic!("{v}"));
    assert!(key("1.10.0") > key("1.9.2"));
    assert_eq!(key("1.2.0"), key("1.2"));
    assert!(key("2") > key("1.999.999"));
    assert!(key("1.0.1") > key("1"));
    for bad in ["", "1.", ".1", "1..2", "v1", "1.2-beta", "12345678901"] {
        assert_eq!(version_key(bad), None, "{bad}");
    }
}
