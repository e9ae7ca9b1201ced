//! The compiler's shape: merged ranges, anti-joins, prefix bounds.

use super::*;

fn leaf(key: &str, op: Op) -> Condition {
    Condition::Leaf(Leaf {
        key: Key::Property(key.into()),
        op,
    })
}

#[test]
fn bounds_on_one_property_become_one_range() {
    let tree = Condition::All(vec![
        leaf("age", Op::IntGte(30)),
        leaf("plan", Op::StrEq("pro".into())),
        leaf("age", Op::IntLt(35)),
    ]);
    let compiled = compile(AppId(Uuid::nil()), Some(&tree));
    assert_eq!(
        compiled.sql.matches("device_properties").count(),
        2,
        "{}",
        compiled.sql
    );
    assert!(
        compiled.sql.contains("i >= $3 AND i < $4"),
        "{}",
        compiled.sql
    );
    assert_eq!(compiled.binds[2..4], [Bind::Int(30), Bind::Int(35)]);
    // Under OR nothing merges.
    let tree = Condition::Any(vec![
        leaf("age", Op::IntGte(30)),
        leaf("age", Op::IntLt(35)),
    ]);
    let compiled = compile(AppId(Uuid::nil()), Some(&tree));
    assert_eq!(
        compiled.sql.matches("device_properties").count(),
        2,
        "{}",
        compiled.sql
    );
}

#[test]
fn a_negated_property_test_is_an_anti_join() {
    let tree = Condition::Not(Box::new(leaf("plan", Op::StrEq("free".into()))));
    let compiled = compile(AppId(Uuid::nil()), Some(&tree));
    assert!(compiled.sql.starts_with("NOT EXISTS ("), "{}", compiled.sql);
    assert!(
        compiled.sql.contains("p.device_key = d.device_key"),
        "{}",
        compiled.sql
    );
    // A negated group stays a negation of its parts.
    let group = Condition::Not(Box::new(Condition::Any(vec![tree.clone(), tree])));
    let compiled = compile(AppId(Uuid::nil()), Some(&group));
    assert!(compiled.sql.starts_with("(NOT ("), "{}", compiled.sql);
}

#[test]
fn successors_bound_prefixes() {
    assert_eq!(successor("ab").as_deref(), Some("ac"));
    assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
    assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(successor("\u{10FFFF}"), None);
}
