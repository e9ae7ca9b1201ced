//! The envelope every event is stored in, and its canonical byte form.
//!
//! The canonical form is what the tamper-evident hash chain covers. It is
//! defined so that an auditor can recompute it with any JSON library:
//!
//! * a JSON object with exactly these keys: `app_id`, `data`, `event_id`,
//!   `event_type`, `metadata`, `position`, `recorded_at`, `schema_version`,
//!   `stream`, `stream_version`;
//! * every object's keys sorted by Unicode code point, no whitespace;
//! * strings escaped as JSON requires (`"`, `\`, and control characters; the
//!   short forms `\b \f \n \r \t`, otherwise `\u00xx` in lower-case hex), all
//!   other characters written as UTF-8;
//! * numbers are integers written in decimal (events never hold fractions);
//! * `recorded_at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, six digits).
//!
//! Python's `json.dumps(obj, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)` produces exactly these bytes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ids::AppId;

/// Who did it and why: stored with every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub app_id: AppId,
    /// `key:<api key id>`, `root`, or `system:<reactor>`.
    pub actor: String,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    /// The event that caused a reactor's command.
    pub causation_id: Option<Uuid>,
    pub trace_id: Option<String>,
}

impl Metadata {
    pub fn system(app_id: AppId, reactor: &str) -> Self {
        Self {
            app_id,
            actor: format!("system:{reactor}"),
            request_id: None,
            correlation_id: None,
            causation_id: None,
            trace_id: None,
        }
    }
}

/// One event as stored in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub app_id: AppId,
    pub stream: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    /// Kept as stored so that the hash can be re-checked byte for byte; see
    /// [`RecordedEvent::meta`] for the typed view.
    pub metadata: Value,
    #[serde(with = "micros")]
    pub recorded_at: DateTime<Utc>,
    /// Lower-case hex SHA-256, see the module docs.
    pub hash: String,
}

impl RecordedEvent {
    /// The typed metadata, if it has the expected shape.
    pub fn meta(&self) -> Option<Metadata> {
        serde_json::from_value(self.metadata.clone()).ok()
    }

    /// The canonical bytes of this event (what its hash covers).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, NonCanonical> {
        canonical_bytes(&CanonicalFields {
            app_id: self.app_id,
            data: &self.data,
            event_id: self.event_id,
            event_type: &self.event_type,
            metadata: &self.metadata,
            position: self.position,
            recorded_at: self.recorded_at,
            schema_version: self.schema_version,
            stream: &self.stream,
            stream_version: self.stream_version,
        })
    }
}

/// The fields the canonical form covers, borrowed.
pub struct CanonicalFields<'a> {
    pub app_id: AppId,
    pub data: &'a Value,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub metadata: &'a Value,
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub schema_version: i32,
    pub stream: &'a str,
    pub stream_version: i64,
}

/// An event body that has no canonical form (it holds a fraction).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("events may hold integers only; found the number {0}")]
pub struct NonCanonical(pub String);

pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn canonical_bytes(f: &CanonicalFields<'_>) -> Result<Vec<u8>, NonCanonical> {
    let mut out = Vec::with_capacity(256 + f.data.to_string().len());
    // Keys in code point order, written by hand to avoid building a map.
    out.extend_from_slice(b"{\"app_id\":");
    write_str(&mut out, &f.app_id.to_string());
    out.extend_from_slice(b",\"data\":");
    write_value(&mut out, f.data)?;
    out.extend_from_slice(b",\"event_id\":");
    write_str(&mut out, &f.event_id.to_string());
    out.extend_from_slice(b",\"event_type\":");
    write_str(&mut out, f.event_type);
    out.extend_from_slice(b",\"metadata\":");
    write_value(&mut out, f.metadata)?;
    out.extend_from_slice(b",\"position\":");
    out.extend_from_slice(f.position.to_string().as_bytes());
    out.extend_from_slice(b",\"recorded_at\":");
    write_str(&mut out, &format_timestamp(f.recorded_at));
    out.extend_from_slice(b",\"schema_version\":");
    out.extend_from_slice(f.schema_version.to_string().as_bytes());
    out.extend_from_slice(b",\"stream\":");
    write_str(&mut out, f.stream);
    out.extend_from_slice(b",\"stream_version\":");
    out.extend_from_slice(f.stream_version.to_string().as_bytes());
    out.push(b'}');
    Ok(out)
}

/// Checks that a value has a canonical form (no fractions anywhere).
pub fn check_canonical(value: &Value) -> Result<(), NonCanonical> {
    write_value(&mut Vec::new(), value)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), NonCanonical> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else {
                return Err(NonCanonical(n.to_string()));
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) -> Result<(), NonCanonical> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    out.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, &map[key])?;
    }
    out.push(b'}');
    Ok(())
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// `recorded_at` travels as RFC 3339 with microseconds.
mod micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_timestamp(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields<'a>(data: &'a Value, metadata: &'a Value) -> CanonicalFields<'a> {
        CanonicalFields {
            app_id: AppId(Uuid::nil()),
            data,
            event_id: Uuid::nil(),
            event_type: "device.registered",
            metadata,
            position: 7,
            recorded_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default(),
            schema_version: 1,
            stream: "device:a",
            stream_version: 2,
        }
    }

    #[test]
    fn canonical_form_sorts_keys_and_escapes_like_python() {
        let data = json!({"z": 1, "a": {"y": [true, null], "b": "q\"\\\n\u{1}é"}});
        let meta = json!({"actor": "root"});
        let bytes = canonical_bytes(&fields(&data, &meta)).unwrap_or_default();
        let expected = concat!(
            r#"{"app_id":"00000000-0000-0000-0000-000000000000","#,
            r#""data":{"a":{"b":"q\"\\\n\u0001é","y":[true,null]},"z":1},"#,
            r#""event_id":"00000000-0000-0000-0000-000000000000","#,
            r#""event_type":"device.registered","metadata":{"actor":"root"},"#,
            r#""position":7,"recorded_at":"2023-11-14T22:13:20.123456Z","#,
            r#""schema_version":1,"stream":"device:a","stream_version":2}"#
        );
        assert_eq!(String::from_utf8(bytes).unwrap_or_default(), expected);
    }

    #[test]
    fn fractions_have_no_canonical_form() {
        assert!(check_canonical(&json!({"a": [1, 2.5]})).is_err());
        assert!(check_canonical(&json!({"a": [1, -2, u64::MAX]})).is_ok());
    }
}
