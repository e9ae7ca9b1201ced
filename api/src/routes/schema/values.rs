//! Schemas of free-form JSON values the domain checks itself (typed
//! properties, condition trees), written as JSON Schema and registered as
//! components; fields point at them with `#[schema(schema_with = ...)]`.

use serde_json::{Value, json};
use utoipa::openapi::schema::{Components, Schema};
use utoipa::openapi::{Ref, RefOr};

const PROPERTY_NAME: &str = "^[A-Za-z0-9_.-]{1,64}$";

/// Every component of this file, by name.
fn components() -> Vec<(&'static str, Value)> {
    vec![
        (
            "PropertyValue",
            json!({
                "description": "A property's value; its JSON type is its type. Strings are at most 1024 bytes; a list holds at most 100 items, all strings (at most 1024 bytes) or all integers.",
                "oneOf": [
                    {"type": "boolean"},
                    {"type": "integer", "format": "int64"},
                    {"type": "string", "maxLength": 1024},
                    {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 1024}},
                    {"type": "array", "maxItems": 100, "items": {"type": "integer", "format": "int64"}},
                ],
            }),
        ),
        (
            "SendPlatformInput",
            json!({
                "description": "A push provider: its name, or its code (1 FCM, 2 APNs, 3 Web Push). Answers always name it.",
                "oneOf": [
                    {"type": "string", "enum": ["fcm", "apns", "webpush"]},
                    {"type": "integer", "minimum": 1, "maximum": 3},
                ],
            }),
        ),
        (
            "DevicePlatformInput",
            json!({
                "description": "A device's platform: its name, or its code (1 Android, 2 iOS, 3 web). Answers always name it.",
                "oneOf": [
                    {"type": "string", "enum": ["android", "ios", "web"]},
                    {"type": "integer", "minimum": 1, "maximum": 3},
                ],
            }),
        ),
        (
            "Properties",
            json!({
                "type": "object",
                "description": "Typed properties: at most 100; names are 1-64 characters of `[A-Za-z0-9_.-]`.",
                "maxProperties": 100,
                "propertyNames": {"type": "string", "pattern": PROPERTY_NAME},
                "additionalProperties": {"$ref": "#/components/schemas/PropertyValue"},
            }),
        ),
        (
            "PropertyPatch",
            json!({
                "type": "object",
                "description": "`{\"name\": value}` sets a property, `{\"name\": null}` removes it. Names are 1-64 characters of `[A-Za-z0-9_.-]` other than the built-in search keys (`device_platform`, `send_platform`, `user_id`, `random_bucket`, `has_permission`); at most 200 names in one request and 100 properties in all.",
                "maxProperties": 200,
                "propertyNames": {"type": "string", "pattern": PROPERTY_NAME},
                "additionalProperties": {"oneOf": [
                    {"$ref": "#/components/schemas/PropertyValue"},
                    {"type": "null"},
                ]},
            }),
        ),
        (
            "WebhookHeaders",
            json!({
                "type": "object",
                "description": "Extra headers sent with every message: at most 20. Names are HTTP tokens (stored lower-cased) other than those Herald sets itself (`authorization`, `content-length`, `content-type`, `connection`, `host`, `transfer-encoding`, `user-agent`, `webhook-id`, `webhook-signature`, `webhook-timestamp`); values are at most 1024 bytes of visible ASCII and spaces.",
                "maxProperties": 20,
                "propertyNames": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$"},
                "additionalProperties": {"type": "string", "maxLength": 1024, "pattern": "^[ -~]*$"},
            }),
        ),
        (
            "Condition",
            json!({
                "description": "A condition tree: a group, a negation or a leaf; at most 16 levels deep and 256 leaves. A leaf over a property of another type, or a missing one, is false.",
                "oneOf": [
                    {"$ref": "#/components/schemas/ConditionGroup"},
                    {"$ref": "#/components/schemas/ConditionNot"},
                    {"$ref": "#/components/schemas/ConditionLeaf"},
                ],
            }),
        ),
        (
            "ConditionGroup",
            json!({
                "type": "object",
                "description": "All (`AND`) or any (`OR`) of the conditions.",
                "required": ["join_type", "conditions"],
                "additionalProperties": false,
                "properties": {
                    "join_type": {
                        "description": "`AND` or `OR` (in any case).",
                        "anyOf": [
                            {"type": "string", "enum": ["AND", "OR"]},
                            {"type": "string", "pattern": "^([Aa][Nn][Dd]|[Oo][Rr])$"},
                        ],
                    },
                    "conditions": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"$ref": "#/components/schemas/Condition"},
                    },
                },
            }),
        ),
        (
            "ConditionNot",
            json!({
                "type": "object",
                "description": "The negation of a condition.",
                "required": ["not"],
                "additionalProperties": false,
                "properties": {"not": {"$ref": "#/components/schemas/Condition"}},
            }),
        ),
        (
            "ConditionLeaf",
            json!({
                "type": "object",
                "description": "A test of one key: a property name or a built-in (`device_platform`, `send_platform`, `user_id`: strings; `random_bucket`: integer 1-10000; `has_permission`: boolean).",
                "required": ["key", "operator"],
                "additionalProperties": false,
                "properties": {
                    "key": {"type": "string", "pattern": PROPERTY_NAME},
                    "operator": {
                        "type": "string",
                        "enum": [
                            "int_eq", "int_gt", "int_gte", "int_lt", "int_lte",
                            "str_eq", "str_ne", "str_in", "str_prefix", "str_exists", "int_exists",
                            "bool_eq", "exists", "not_exists", "version_gte", "version_lt",
                        ],
                    },
                    "value": {
                        "type": ["integer", "string", "boolean", "array", "null"],
                        "items": {"type": "string"},
                        "description": "`int_*`: an integer; `str_eq`, `str_ne`, `str_prefix`, `str_exists`: a string; `int_exists`: an integer (the integer list holds it); `str_in`: 1 to 1000 strings; `bool_eq`: a boolean; `version_*`: a dotted numeric version such as \"1.10.2\"; `exists`, `not_exists`: none (absent or null).",
                    },
                },
            }),
        ),
    ]
}

/// Adds this file's components.
pub fn register(components: &mut Components) {
    for (name, value) in self::components() {
        match serde_json::from_value::<Schema>(value) {
            Ok(schema) => {
                components.schemas.insert(name.to_owned(), RefOr::T(schema));
            }
            Err(e) => tracing::error!(name, error = %e, "an OpenAPI component does not parse"),
        }
    }
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn nullable(name: &str) -> RefOr<Schema> {
    let value =
        json!({"oneOf": [{"$ref": format!("#/components/schemas/{name}")}, {"type": "null"}]});
    serde_json::from_value(value).unwrap_or_else(|_| reference(name))
}

pub fn properties() -> RefOr<Schema> {
    reference("Properties")
}

pub fn send_platform_input() -> RefOr<Schema> {
    reference("SendPlatformInput")
}

pub fn device_platform_input() -> RefOr<Schema> {
    reference("DevicePlatformInput")
}

pub fn property_patch() -> RefOr<Schema> {
    reference("PropertyPatch")
}

pub fn nullable_property_patch() -> RefOr<Schema> {
    nullable("PropertyPatch")
}

pub fn webhook_headers() -> RefOr<Schema> {
    reference("WebhookHeaders")
}

pub fn nullable_webhook_headers() -> RefOr<Schema> {
    nullable("WebhookHeaders")
}

pub fn nullable_condition() -> RefOr<Schema> {
    nullable("Condition")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_component_parses() {
        for (name, value) in components() {
            let parsed = serde_json::from_value::<Schema>(value);
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
        }
    }
}
