//! A condition tree evaluated in memory against one device's facts, with
//! the semantics device search has in SQL (`projections::devices::search`):
//! a leaf over a property of another type, or a missing one, is false; a
//! missing built-in (no user, no push provider yet) behaves like a missing
//! property.

use super::{Condition, Key, Leaf, Op, version_key};
use crate::properties::{Properties, PropertyValue};

/// What a condition can look at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub external_id: &'a str,
    pub properties: &'a Properties,
    pub device_platform: Option<&'a str>,
    pub send_platform: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub random_bucket: i64,
    pub has_permission: bool,
}

/// A built-in value.
enum Column<'a> {
    Str(Option<&'a str>),
    Int(i64),
    Bool(bool),
}

impl Condition {
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        match self {
            Condition::All(children) => children.iter().all(|c| c.matches(facts)),
            Condition::Any(children) => children.iter().any(|c| c.matches(facts)),
            Condition::Not(inner) => !inner.matches(facts),
            Condition::Leaf(leaf) => leaf.matches(facts),
        }
    }
}

impl Leaf {
    fn matches(&self, facts: &Facts<'_>) -> bool {
        let column = match &self.key {
            Key::Property(name) => return property(facts.properties.get(name), &self.op),
            Key::DevicePlatform => Column::Str(facts.device_platform),
            Key::SendPlatform => Column::Str(facts.send_platform),
            Key::UserId => Column::Str(facts.user_id),
            Key::ExternalId => Column::Str(Some(facts.external_id)),
            Key::RandomBucket => Column::Int(facts.random_bucket),
            Key::HasPermission => Column::Bool(facts.has_permission),
        };
        built_in(&column, &self.op)
    }
}

fn text(s: &str, op: &Op) -> bool {
    match op {
        Op::StrEq(v) => s == v,
        Op::StrNe(v) => s != v,
        Op::StrIn(values) => values.iter().any(|v| v == s),
        Op::StrPrefix(p) => s.starts_with(p.as_str()),
        _ => false,
    }
}

fn integer(i: i64, op: &Op) -> bool {
    match op {
        Op::IntEq(v) => i == *v,
        Op::IntGt(v) => i > *v,
        Op::IntGte(v) => i >= *v,
        Op::IntLt(v) => i < *v,
        Op::IntLte(v) => i <= *v,
        _ => false,
    }
}

fn built_in(column: &Column<'_>, op: &Op) -> bool {
    match (column, op) {
        (Column::Str(None), Op::NotExists) => true,
        (Column::Str(None), _) => false,
        (_, Op::Exists) => true,
        (_, Op::NotExists) => false,
        (Column::Str(Some(s)), op) => text(s, op),
        (Column::Int(i), op) => integer(*i, op),
        (Column::Bool(b), Op::BoolEq(v)) => b == v,
        (Column::Bool(_), _) => false,
    }
}

fn property(value: Option<&PropertyValue>, op: &Op) -> bool {
    let Some(value) = value else {
        return matches!(op, Op::NotExists);
    };
    match (value, op) {
        (_, Op::Exists) => true,
        (_, Op::NotExists) => false,
        (PropertyValue::Str(s), Op::VersionGte(v)) => version(s, v).is_some_and(|o| o.is_ge()),
        (PropertyValue::Str(s), Op::VersionLt(v)) => version(s, v).is_some_and(|o| o.is_lt()),
        (PropertyValue::Str(s), op) => text(s, op),
        (PropertyValue::Int(i), op) => integer(*i, op),
        (PropertyValue::Bool(b), Op::BoolEq(v)) => b == v,
        (PropertyValue::List(items), Op::StrExists(v)) => items.contains(v),
        (PropertyValue::IntList(items), Op::IntExists(v)) => items.contains(v),
        _ => false,
    }
}

/// How the version `s` compares with `wanted`; `None` if `s` is not one.
fn version(s: &str, wanted: &str) -> Option<std::cmp::Ordering> {
    Some(version_key(s)?.cmp(&version_key(wanted)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn facts(properties: &Properties) -> Facts<'_> {
        Facts {
            external_id: "d1",
            properties,
            device_platform: Some("android"),
            send_platform: Some("fcm"),
            user_id: None,
            random_bucket: 42,
            has_permission: true,
        }
    }

    fn check(tree: serde_json::Value, properties: serde_json::Value) -> bool {
        let condition = Condition::parse(&tree).unwrap_or_else(|e| panic!("{e}"));
        let properties: Properties = serde_json::from_value(properties).unwrap_or_default();
        condition.matches(&facts(&properties))
    }

    #[test]
    fn leaves_follow_the_search_semantics() {
        let props = json!({"app_version": "1.10.0", "age": 31, "tags": ["a"], "levels": [3]});
        let leaf = |key: &str, op: &str, v: serde_json::Value| json!({"key": key, "operator": op, "value": v});
        assert!(check(
            leaf("app_version", "version_gte", json!("1.9.2")),
            props.clone()
        ));
        assert!(!check(
            leaf("app_version", "version_lt", json!("1.10")),
            props.clone()
        ));
        assert!(check(leaf("age", "int_gte", json!(18)), props.clone()));
        assert!(!check(leaf("age", "str_eq", json!("31")), props.clone()));
        assert!(check(leaf("tags", "str_exists", json!("a")), props.clone()));
        assert!(check(leaf("levels", "int_exists", json!(3)), props.clone()));
        assert!(!check(leaf("missing", "str_ne", json!("x")), props.clone()));
        assert!(check(
            json!({"not": leaf("missing", "str_eq", json!("x"))}),
            props.clone()
        ));
        assert!(check(
            json!({"key": "missing", "operator": "not_exists"}),
            props.clone()
        ));
        assert!(check(
            json!({"key": "user_id", "operator": "not_exists"}),
            props.clone()
        ));
        assert!(check(
            leaf("random_bucket", "int_lte", json!(50)),
            props.clone()
        ));
        assert!(!check(
            leaf("random_bucket", "int_lte", json!(41)),
            props.clone()
        ));
        assert!(check(
            leaf("device_platform", "str_in", json!(["ios", "android"])),
            props.clone()
        ));
        assert!(check(
            json!({"join_type": "AND", "conditions": [
                leaf("has_permission", "bool_eq", json!(true)),
                {"join_type": "OR", "conditions": [leaf("age", "int_lt", json!(18)), leaf("tags", "str_exists", json!("a"))]},
            ]}),
            props
        ));
    }
}
