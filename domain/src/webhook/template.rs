//! Payload templates: JSON whose string values may hold `{{placeholder}}`s.
//!
//! * A string that is exactly one placeholder (`"{{user.id}}"`) becomes the
//!   value itself, with its JSON type (a number stays a number, a missing
//!   value becomes `null`).
//! * A string that is exactly one placeholder in single quotes
//!   (`"'{{user.id}}'"`) becomes the value as a string (`""` when missing).
//! * Placeholders inside longer text are replaced by the value's text.
//!
//! Object keys are kept as written. Unknown placeholders are refused when
//! the template is parsed, so a delivery never meets one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DomainError, FieldError};

pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

/// A single-use URL on Herald that the receiver may call back to set the
/// status of the user a message is about (see `docs/webhooks.md`,
/// "Callback URLs"); a message about no user has none (`null`).
pub const CALLBACK_URL: &str = "callback.url";

/// Every placeholder a template may use.
pub const PLACEHOLDERS: [&str; 19] = [
    "event.id",
    "event.type",
    "event.timestamp",
    "event.position",
    "event.stream",
    "event.data",
    "webhook.id",
    "user.id",
    "user.name",
    "user.email",
    "user.status",
    "device.external_id",
    "device.platform",
    "device.send_platform",
    "device.user_id",
    "notification.id",
    "notification.title",
    "notification.status",
    CALLBACK_URL,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Template(Value);

/// A piece of a template string.
pub(super) enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits a string into text and `{{name}}` placeholders (names trimmed).
/// An opening `{{` without a closing `}}` is text.
pub(super) fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        out.push(Piece::Placeholder(rest[open + 2..open + 2 + close].trim()));
        rest = &rest[open + 2 + close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// `Some(name)` when `s` is exactly one placeholder.
fn sole_placeholder(s: &str) -> Option<&str> {
    match pieces(s).as_slice() {
        [Piece::Placeholder(name)] => Some(name),
        _ => None,
    }
}

/// A value as text: strings as they are, `null` as nothing, the rest as JSON.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Template {
    pub fn parse(raw: Value) -> Result<Self, DomainError> {
        if raw.to_string().len() > MAX_TEMPLATE_BYTES {
            return Err(DomainError::invalid(
                "payload_template",
                format!("must be at most {MAX_TEMPLATE_BYTES} bytes of JSON"),
            ));
        }
        crate::storable::check_value(&raw, "payload_template")?;
        let mut errors = Vec::new();
        check(&raw, "payload_template", &mut errors);
        if errors.is_empty() {
            Ok(Self(raw))
        } else {
            Err(DomainError::Invalid(errors))
        }
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The placeholders the template uses.
    pub fn placeholders(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        walk_strings(&self.0, &mut |s| {
            for piece in pieces(s) {
                if let Piece::Placeholder(name) = piece {
                    names.insert(name.to_owned());
                }
            }
        });
        names
    }

    /// The payload, with `lookup` giving each placeholder's value.
    pub fn render(&self, lookup: &dyn Fn(&str) -> Value) -> Value {
        render(&self.0, lookup)
    }
}

fn walk_strings(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

fn check(value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(s) => {
            for piece in pieces(s) {
                if let Piece::Placeholder(name) = piece
                    && !PLACEHOLDERS.contains(&name)
                {
                    errors.push(FieldError::new(
                        path,
                        format!("unknown placeholder {{{{{name}}}}}"),
                    ));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check(item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                check(item, &format!("{path}.{key}"), errors);
            }
        }
        _ => {}
    }
}

fn render(value: &Value, lookup: &dyn Fn(&str) -> Value) -> Value {
    match value {
        Value::String(s) => {
            if let Some(name) = sole_placeholder(s) {
                return lookup(name);
            }
            if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\''))
                && let Some(name) = sole_placeholder(inner)
            {
                return Value::String(as_text(&lookup(name)));
            }
            let text = pieces(s)
                .into_iter()
                .map(|piece| match piece {
                    Piece::Text(t) => t.to_owned(),
                    Piece::Placeholder(name) => as_text(&lookup(name)),
                })
                .collect();
            Value::String(text)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, lookup)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render(v, lookup)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lookup(name: &str) -> Value {
        match name {
            "user.id" => json!(42),
            "user.name" => json!("Ada"),
            "user.email" => Value::Null,
            "event.data" => json!({"to": "suspended"}),
            _ => Value::Null,
        }
    }

    fn template(raw: Value) -> Template {
        Template::parse(raw).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_sole_placeholder_keeps_the_value_type() {
        let t =
            template(json!({"id": "{{user.id}}", "d": "{{ event.data }}", "e": "{{user.email}}"}));
        assert_eq!(
            t.render(&lookup),
            json!({"id": 42, "d": {"to": "suspended"}, "e": null})
        );
    }

    #[test]
    fn fractions_big_numbers_and_nul_are_refused() {
        let field = |raw: Value| match Template::parse(raw) {
            Err(DomainError::Invalid(errors)) => errors[0].field.clone(),
            other => panic!("accepted: {other:?}"),
        };
        assert_eq!(field(json!({"a": 0.0})), "payload_template.a");
        let big: Value = serde_json::from_str(r#"{"n": [1, 99999999999999999999999]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(field(big), "payload_template.n[1]");
        assert_eq!(field(json!({"s": "a\u{0}"})), "payload_template.s");
        assert!(Template::parse(json!({"n": i64::MAX, "m": -1})).is_ok());
    }

    #[test]
    fn single_quotes_force_a_string() {
        let t = template(json!({"id": "'{{user.id}}'", "e": "'{{user.email}}'"}));
        assert_eq!(t.render(&lookup), json!({"id": "42", "e": ""}));
    }

    #[test]
    fn placeholders_in_text_are_substituted_as_text() {
        let t = template(json!([
            "user {{user.id}} is {{user.name}}!",
            7,
            true,
            "{{ not closed"
        ]));
        assert_eq!(
            t.render(&lookup),
            json!(["user 42 is Ada!", 7, true, "{{ not closed"])
        );
    }

    #[test]
    fn unknown_placeholders_are_refused_with_their_path() {
        let err = Template::parse(json!({"a": [1, "{{user.nope}}"], "b": {"c": "x {{secret}}"}}))
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        let DomainError::Invalid(fields) = err else {
            panic!("{err:?}")
        };
        let paths: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(paths, ["payload_template.a[1]", "payload_template.b.c"]);
    }

    #[test]
    fn placeholders_are_listed() {
        let t = template(json!({"a": "{{user.name}} {{event.type}}", "b": ["{{user.name}}"]}));
        assert_eq!(
            t.placeholders().into_iter().collect::<Vec<_>>(),
            ["event.type", "user.name"]
        );
    }
}

#[cfg(test)]
mod proptests;
