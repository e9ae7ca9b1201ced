//! Targeting conditions: a tree of AND / OR groups, negations and typed
//! leaves over device properties and built-in device keys.
//!
//! Wire form (errors name the path of the bad node, e.g.
//! `conditions[1].conditions[0].operator`):
//!
//! ```json
//! {"join_type": "AND", "conditions": [
//!     {"key": "plan", "operator": "str_eq", "value": "pro"},
//!     {"not": {"key": "age", "operator": "int_lt", "value": 18}}
//! ]}
//! ```
//!
//! A leaf over a property whose stored type differs from the operator's
//! does not match (no error); a property that is missing matches only
//! `not_exists` (and a `not` around anything else).

mod eval;

pub use eval::Facts;

use serde_json::{Map, Value};

use crate::error::{DomainError, FieldError};
use crate::properties::{BUILT_IN_KEYS, MAX_KEY_CHARS};

pub const MAX_DEPTH: usize = 16;
pub const MAX_LEAVES: usize = 256;
pub const MAX_IN_VALUES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Leaf(Leaf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub key: Key,
    pub op: Op,
}

/// What a leaf looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Property(String),
    DevicePlatform,
    SendPlatform,
    UserId,
    RandomBucket,
    HasPermission,
    /// The device's own id: not a key of the wire form, built by a search
    /// limited to a list of devices ([`Condition::external_ids`]).
    ExternalId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    IntEq(i64),
    IntGt(i64),
    IntGte(i64),
    IntLt(i64),
    IntLte(i64),
    StrEq(String),
    StrNe(String),
    StrIn(Vec<String>),
    StrPrefix(String),
    /// The list property contains the string.
    StrExists(String),
    /// The integer list property contains the integer.
    IntExists(i64),
    BoolEq(bool),
    Exists,
    NotExists,
    /// Dotted numeric versions, compared by [`version_key`].
    VersionGte(String),
    VersionLt(String),
}

/// The type a key's values have, when it is a built-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuiltInType {
    Str,
    Int,
    Bool,
}

impl Key {
    fn parse(raw: &str) -> Result<Key, String> {
        Ok(match raw {
            "device_platform" => Key::DevicePlatform,
            "send_platform" => Key::SendPlatform,
            "user_id" => Key::UserId,
            "random_bucket" => Key::RandomBucket,
            "has_permission" => Key::HasPermission,
            _ => {
                let len = raw.chars().count();
                if len == 0 || len > MAX_KEY_CHARS {
                    return Err(format!("keys are 1 to {MAX_KEY_CHARS} characters"));
                }
                if !raw
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                {
                    return Err("keys hold only A-Z, a-z, 0-9, '_', '.' and '-'".into());
                }
                debug_assert!(!BUILT_IN_KEYS.contains(&raw));
                Key::Property(raw.to_owned())
            }
        })
    }

    fn built_in_type(&self) -> Option<BuiltInType> {
        match self {
            Key::Property(_) => None,
            Key::DevicePlatform | Key::SendPlatform | Key::UserId | Key::ExternalId => {
                Some(BuiltInType::Str)
            }
            Key::RandomBucket => Some(BuiltInType::Int),
            Key::HasPermission => Some(BuiltInType::Bool),
        }
    }
}

impl Op {
    fn operand_type(&self) -> Option<BuiltInType> {
        match self {
            Op::IntEq(_) | Op::IntGt(_) | Op::IntGte(_) | Op::IntLt(_) | Op::IntLte(_) => {
                Some(BuiltInType::Int)
            }
            Op::StrEq(_) | Op::StrNe(_) | Op::StrIn(_) | Op::StrPrefix(_) => Some(BuiltInType::Str),
            Op::BoolEq(_) => Some(BuiltInType::Bool),
            Op::StrExists(_)
            | Op::IntExists(_)
            | Op::VersionGte(_)
            | Op::VersionLt(_)
            | Op::Exists
            | Op::NotExists => None,
        }
    }
}

/// A sortable form of a dotted numeric version ("1.10.0" > "1.9.2"):
/// trailing zero components dropped ("1.2.0" == "1.2"), every component
/// zero-padded to ten digits. `None` if `raw` is not such a version.
pub fn version_key(raw: &str) -> Option<String> {
    let mut parts: Vec<u64> = Vec::new();
    for part in raw.split('.') {
        if part.is_empty() || part.len() > 10 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        parts.push(part.parse().ok()?);
    }
    if parts.len() > 16 {
        return None;
    }
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    Some(
        parts
            .iter()
            .map(|p| format!("{p:010}"))
            .collect::<Vec<_>>()
            .join("."),
    )
}

impl Condition {
    /// Parses the tree found at body field `conditions`.
    /// Only the devices with these ids (1 to [`MAX_IN_VALUES`]), and, if
    /// given, matching `and`.
    pub fn external_ids(ids: Vec<String>, and: Option<Condition>) -> Condition {
        let ids = Condition::Leaf(Leaf {
            key: Key::ExternalId,
            op: Op::StrIn(ids),
        });
        match and {
            Some(c) => Condition::All(vec![ids, c]),
            None => ids,
        }
    }

    pub fn parse(raw: &Value) -> Result<Condition, DomainError> {
        let mut parser = Parser {
            errors: Vec::new(),
            leaves: 0,
        };
        let condition = parser.node(raw, "conditions", 1);
        if parser.leaves > MAX_LEAVES {
            parser.errors.push(FieldError::new(
                "conditions",
                format!(
                    "at most {MAX_LEAVES} leaves are allowed; this tree has {}",
                    parser.leaves
                ),
            ));
        }
        match condition {
            Some(c) if parser.errors.is_empty() => Ok(c),
            _ => Err(DomainError::Invalid(parser.errors)),
        }
    }
}

struct Parser {
    errors: Vec<FieldError>,
    leaves: usize,
}

fn child_path(parent: &str, index: usize) -> String {
    if parent == "conditions" {
        format!("conditions[{index}]")
    } else {
        format!("{parent}.conditions[{index}]")
    }
}

impl Parser {
    fn fail<T>(&mut self, path: impl Into<String>, message: impl Into<String>) -> Option<T> {
        self.errors.push(FieldError::new(path, message));
        None
    }

    fn node(&mut self, raw: &Value, path: &str, depth: usize) -> Option<Condition> {
        if depth > MAX_DEPTH {
            return self.fail(path, format!("the tree is deeper than {MAX_DEPTH} levels"));
        }
        let Value::Object(map) = raw else {
            return self.fail(path, "must be an object: a group, a negation or a leaf");
        };
        if map.contains_key("join_type")
            || (map.contains_key("conditions") && !map.contains_key("key"))
        {
            self.group(map, path, depth)
        } else if let Some(inner) = map.get("not") {
            if map.len() > 1 {
                return self.fail(path, "a negation holds only \"not\"");
            }
            let inner = self.node(inner, &format!("{path}.not"), depth + 1)?;
            Some(Condition::Not(Box::new(inner)))
        } else if map.contains_key("key") || map.contains_key("operator") {
            self.leaf(map, path)
        } else {
            self.fail(path, "must be a group {join_type, conditions}, a negation {not} or a leaf {key, operator, value}")
        }
    }

    fn group(&mut self, map: &Map<String, Value>, path: &str, depth: usize) -> Option<Condition> {
        let join = match map
            .get("join_type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("AND") => Some(true),
            Some("OR") => Some(false),
            _ => self.fail(format!("{path}.join_type"), "must be \"AND\" or \"OR\""),
        };
        let Some(Value::Array(items)) = map.get("conditions") else {
            return self.fail(format!("{path}.conditions"), "must be a list of conditions");
        };
        if items.is_empty() {
            return self.fail(
                format!("{path}.conditions"),
                "must hold at least one condition",
            );
        }
        for extra in map
            .keys()
            .filter(|k| *k != "join_type" && *k != "conditions")
        {
            self.fail::<()>(format!("{path}.{extra}"), "is not a field of a group");
        }
        let children: Vec<Option<Condition>> = items
            .iter()
            .enumerate()
            .map(|(i, c)| self.node(c, &child_path(path, i), depth + 1))
            .collect();
        let children: Option<Vec<Condition>> = children.into_iter().collect();
        match (join?, children?) {
            (true, c) => Some(Condition::All(c)),
            (false, c) => Some(Condition::Any(c)),
        }
    }

    fn leaf(&mut self, map: &Map<String, Value>, path: &str) -> Option<Condition> {
        self.leaves += 1;
        for extra in map
            .keys()
            .filter(|k| !matches!(k.as_str(), "key" | "operator" | "value"))
        {
            self.fail::<()>(format!("{path}.{extra}"), "is not a field of a leaf");
        }
        let key = match map.get("key") {
            Some(Value::String(k)) => match Key::parse(k) {
                Ok(key) => Some(key),
                Err(m) => self.fail(format!("{path}.key"), m),
            },
            _ => self.fail(format!("{path}.key"), "must be a string"),
        };
        let Some(Value::String(operator)) = map.get("operator") else {
            return self.fail(format!("{path}.operator"), "must be a string");
        };
        let value = map.get("value").unwrap_or(&Value::Null);
        let value_path = format!("{path}.value");
        let op = self.op(operator, value, path, &value_path)?;
        let key = key?;
        if let (Some(key_type), Some(op_type)) = (key.built_in_type(), op.operand_type())
            && key_type != op_type
        {
            let wanted = match key_type {
                BuiltInType::Str => "a string; use str_* operators",
                BuiltInType::Int => "an integer; use int_* operators",
                BuiltInType::Bool => "a boolean; use bool_eq",
            };
            return self.fail(
                format!("{path}.operator"),
                format!("this built-in key is {wanted}"),
            );
        }
        if (key == Key::HasPermission || key == Key::RandomBucket)
            && matches!(
                op,
                Op::StrExists(_) | Op::IntExists(_) | Op::VersionGte(_) | Op::VersionLt(_)
            )
        {
            return self.fail(
                format!("{path}.operator"),
                "does not apply to this built-in key",
            );
        }
        Some(Condition::Leaf(Leaf { key, op }))
    }

    fn op(&mut self, operator: &str, value: &Value, path: &str, value_path: &str) -> Option<Op> {
        let int = |p: &mut Parser| match value.as_i64() {
            Some(i) => Some(i),
            None => p.fail(value_path, format!("{operator} takes an integer")),
        };
        let string = |p: &mut Parser| match value {
            Value::String(s) => Some(s.clone()),
            _ => p.fail(value_path, format!("{operator} takes a string")),
        };
        Some(match operator {
            "int_eq" => Op::IntEq(int(self)?),
            "int_gt" => Op::IntGt(int(self)?),
            "int_gte" => Op::IntGte(int(self)?),
            "int_lt" => Op::IntLt(int(self)?),
            "int_lte" => Op::IntLte(int(self)?),
            "str_eq" => Op::StrEq(string(self)?),
            "str_ne" => Op::StrNe(string(self)?),
            "str_prefix" => Op::StrPrefix(string(self)?),
            "str_exists" => Op::StrExists(string(self)?),
            "int_exists" => Op::IntExists(int(self)?),
            "str_in" => match value {
                Value::Array(items) if !items.is_empty() && items.len() <= MAX_IN_VALUES => {
                    let strings: Option<Vec<String>> = items
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect();
                    match strings {
                        Some(s) => Op::StrIn(s),
                        None => return self.fail(value_path, "str_in takes a list of strings"),
                    }
                }
                _ => {
                    return self.fail(
                        value_path,
                        format!("str_in takes a list of 1 to {MAX_IN_VALUES} strings"),
                    );
                }
            },
            "bool_eq" => match value {
                Value::Bool(b) => Op::BoolEq(*b),
                _ => return self.fail(value_path, "bool_eq takes a boolean"),
            },
            "exists" | "not_exists" => {
                if !value.is_null() {
                    return self.fail(value_path, format!("{operator} takes no value"));
                }
                if operator == "exists" {
                    Op::Exists
                } else {
                    Op::NotExists
                }
            }
            "version_gte" | "version_lt" => {
                let raw = string(self)?;
                if version_key(&raw).is_none() {
                    return self.fail(
                        value_path,
                        "must be a dotted numeric version such as \"1.10.2\"",
                    );
                }
                if operator == "version_gte" {
                    Op::VersionGte(raw)
                } else {
                    Op::VersionLt(raw)
                }
            }
            other => {
                return self.fail(
                    format!("{path}.operator"),
                    format!(
                        "unknown operator '{other}'; use int_eq, int_gt, int_gte, int_lt, int_lte, str_eq, \
                         str_ne, str_in, str_prefix, str_exists, int_exists, bool_eq, exists, not_exists, version_gte \
                         or version_lt"
                    ),
                );
            }
        })
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
