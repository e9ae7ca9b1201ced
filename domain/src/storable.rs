//! What the log accepts, every backend and every read model can store.
//!
//! One rule, checked at the edge (request bodies, paths, queries) and again
//! by the store before anything is appended:
//! - no string (value or object key) holds NUL (U+0000): SQLite keeps it,
//!   PostgreSQL `text` refuses it, so a NUL accepted into the log would stop
//!   every PostgreSQL read model that copies the string into a column;
//! - numbers are integers in the signed 64-bit range: the canonical form
//!   the hash chain covers has no fractions (see `envelope`), and every
//!   backend's integer column (`BIGINT`) holds exactly that range.
//!
//! JSON has no other value a backend cannot hold: raw control characters are
//! not valid JSON, and a lone surrogate escape (`"\ud800"`) is refused by the
//! parser.

use serde_json::Value;

use crate::error::DomainError;

/// Why a string cannot be stored.
pub const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// Why a number cannot be stored.
pub const NUMBER_MESSAGE: &str =
    "numbers must be integers from -9223372036854775808 to 9223372036854775807";

/// Refuses a string holding NUL, naming `field`.
pub fn check_str(field: &str, s: &str) -> Result<(), DomainError> {
    if s.contains('\0') {
        Err(DomainError::invalid(field, NUL_MESSAGE))
    } else {
        Ok(())
    }
}

/// Whether every string and number in `value` can be stored (no allocation:
/// this runs on every append).
pub fn is_storable(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.contains('\0'),
        Value::Number(n) => n.is_i64(),
        Value::Array(items) => items.iter().all(is_storable),
        Value::Object(map) => map
            .iter()
            .all(|(key, item)| !key.contains('\0') && is_storable(item)),
        Value::Null | Value::Bool(_) => true,
    }
}

/// The first place in `value` that cannot be stored, as a field path under
/// `root` (`properties.name`, `tags[2]`) and the reason.
pub fn find_unstorable(value: &Value, root: &str) -> Option<(String, &'static str)> {
    if is_storable(value) {
        return None;
    }
    locate(value, root)
}

fn locate(value: &Value, root: &str) -> Option<(String, &'static str)> {
    match value {
        Value::String(s) if s.contains('\0') => Some((root.to_owned(), NUL_MESSAGE)),
        Value::Number(n) if !n.is_i64() => Some((root.to_owned(), NUMBER_MESSAGE)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| locate(item, &format!("{root}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let path = join(root, key);
            if key.contains('\0') {
                Some((path, NUL_MESSAGE))
            } else {
                locate(item, &path)
            }
        }),
        _ => None,
    }
}

/// Refuses a JSON value that cannot be stored, naming the field.
pub fn check_value(value: &Value, root: &str) -> Result<(), DomainError> {
    match find_unstorable(value, root) {
        Some((field, message)) => Err(DomainError::invalid(field, message)),
        None => Ok(()),
    }
}

fn join(root: &str, key: &str) -> String {
    if root.is_empty() {
        key.to_owned()
    } else {
        format!("{root}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_is_found_wherever_it_is() {
        assert_eq!(
            find_unstorable(&json!({"a": "ok", "b": [1, "x"]}), ""),
            None
        );
        assert_eq!(
            find_unstorable(&json!({"properties": {"tags": ["a", "b\u{0}"]}}), ""),
            Some(("properties.tags[1]".into(), NUL_MESSAGE))
        );
        assert_eq!(
            find_unstorable(&json!({"k\u{0}": 1}), "body"),
            Some(("body.k\u{0}".into(), NUL_MESSAGE))
        );
        assert!(check_str("user_id", "a\u{0}").is_err());
        assert!(check_str("user_id", "a\u{1}b").is_ok());
    }

    #[test]
    fn numbers_must_be_64_bit_integers() {
        assert_eq!(
            find_unstorable(&json!({"a": 0.0}), "payload_template"),
            Some(("payload_template.a".into(), NUMBER_MESSAGE))
        );
        let huge: Value =
            serde_json::from_str("{\"a\": 123456789012345678901234567890}").unwrap_or_default();
        assert!(find_unstorable(&huge, "").is_some());
        assert_eq!(find_unstorable(&json!([i64::MIN, i64::MAX]), ""), None);
        assert!(find_unstorable(&json!([u64::MAX]), "").is_some());
    }
}
