//! How an aggregate's events map to the log's `event_type`, `schema_version`
//! and `data`.
//!
//! Each aggregate declares its events as one serde enum tagged
//! `{"type": ..., "data": ...}`; the tag is the log's `event_type`. Reading an
//! event back goes through [`DomainEvent::upcast`] first, the hook where an
//! old `schema_version` is rewritten to the current shape.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An event type that can be written to and read back from the log.
pub trait DomainEvent: Sized + Serialize + DeserializeOwned {
    /// The current schema version of every event of this enum.
    const SCHEMA_VERSION: i32 = 1;

    /// Rewrites a stored body of an older schema version into the current
    /// shape. The default accepts only the current version.
    fn upcast(event_type: &str, schema_version: i32, data: Value) -> Result<Value, UnknownEvent> {
        if schema_version == Self::SCHEMA_VERSION {
            Ok(data)
        } else {
            Err(UnknownEvent(format!(
                "{event_type} schema version {schema_version}"
            )))
        }
    }

    /// The log's `event_type` and `data` for this event.
    fn encode(&self) -> (String, Value) {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => {
                let event_type = match map.remove("type") {
                    Some(Value::String(t)) => t,
                    _ => String::new(),
                };
                let data = map.remove("data").unwrap_or_else(|| json!({}));
                (event_type, data)
            }
            // Event enums are plain data; serialising them cannot fail.
            _ => (String::new(), Value::Null),
        }
    }

    /// Reads an event back from its stored parts.
    fn decode(event_type: &str, schema_version: i32, data: &Value) -> Result<Self, UnknownEvent> {
        let data = Self::upcast(event_type, schema_version, data.clone())?;
        serde_json::from_value(json!({"type": event_type, "data": data}))
            .map_err(|e| UnknownEvent(format!("{event_type}: {e}")))
    }

    /// [`decode`](Self::decode) from the body's JSON text as stored: the
    /// current schema version is read straight from the text, with no
    /// intermediate `Value` (bulk readers decode millions of these).
    fn decode_text(
        event_type: &str,
        schema_version: i32,
        data: &str,
    ) -> Result<Self, UnknownEvent> {
        if schema_version != Self::SCHEMA_VERSION {
            let value: Value = serde_json::from_str(data)
                .map_err(|e| UnknownEvent(format!("{event_type}: {e}")))?;
            return Self::decode(event_type, schema_version, &value);
        }
        // The tag first, so serde reads the content in one pass.
        let mut text = String::with_capacity(data.len() + event_type.len() + 20);
        text.push_str("{\"type\":");
        text.push_str(&Value::String(event_type.to_owned()).to_string());
        text.push_str(",\"data\":");
        text.push_str(data);
        text.push('}');
        serde_json::from_str(&text).map_err(|e| UnknownEvent(format!("{event_type}: {e}")))
    }
}

/// A stored event this code cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable event: {0}")]
pub struct UnknownEvent(pub String);
