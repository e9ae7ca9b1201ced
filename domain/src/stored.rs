//! An event exactly as the log stores it: its body and metadata as the JSON
//! text they were written as. What bulk readers (rebuilds, verification,
//! export) walk: nothing is parsed until someone needs it, and the hash can
//! be recomputed from the stored text directly.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::envelope::{RecordedEvent, write_str};
use crate::ids::AppId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub app_id: AppId,
    pub stream: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    /// The body as stored (JSON text).
    pub data: String,
    /// The metadata as stored (JSON text).
    pub metadata: String,
    /// Microseconds since the Unix epoch, UTC.
    pub recorded_at: i64,
    /// The stored SHA-256.
    pub hash: Vec<u8>,
}

/// A stored event whose JSON text does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the stored event at position {position} has an unreadable {what}: {reason}")]
pub struct Unreadable {
    pub position: i64,
    pub what: &'static str,
    pub reason: String,
}

impl StoredEvent {
    pub fn recorded_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.recorded_at).unwrap_or_default()
    }

    /// The event with its body and metadata parsed.
    pub fn to_recorded(&self) -> Result<RecordedEvent, Unreadable> {
        let parse = |what: &'static str, text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| Unreadable {
                position: self.position,
                what,
                reason: e.to_string(),
            })
        };
        Ok(RecordedEvent {
            position: self.position,
            event_id: self.event_id,
            app_id: self.app_id,
            stream: self.stream.clone(),
            stream_version: self.stream_version,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            data: parse("data", &self.data)?,
            metadata: parse("metadata", &self.metadata)?,
            recorded_at: self.recorded_at(),
            hash: hex::encode(&self.hash),
        })
    }

    /// The canonical bytes of the event *if its stored text is already in
    /// canonical form* — as everything Herald writes is (compact JSON,
    /// keys sorted, the canonical escapes): the envelope written around
    /// the stored text, without parsing it. Whoever checks a hash with
    /// these and finds a mismatch must try [`RecordedEvent::canonical_bytes`]
    /// before calling the event altered, since text that is not canonical
    /// (but means the same) would differ here.
    pub fn canonical_bytes_as_stored(&self, out: &mut Vec<u8>) {
        out.clear();
        let mut uuid = Uuid::encode_buffer();
        out.extend_from_slice(b"{\"app_id\":\"");
        out.extend_from_slice(
            self.app_id
                .0
                .hyphenated()
                .encode_lower(&mut uuid)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"data\":");
        out.extend_from_slice(self.data.as_bytes());
        out.extend_from_slice(b",\"event_id\":\"");
        out.extend_from_slice(
            self.event_id
                .hyphenated()
                .encode_lower(&mut uuid)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"event_type\":");
        write_str(out, &self.event_type);
        out.extend_from_slice(b",\"metadata\":");
        out.extend_from_slice(self.metadata.as_bytes());
        out.extend_from_slice(b",\"position\":");
        push_int(out, self.position);
        out.extend_from_slice(b",\"recorded_at\":\"");
        push_timestamp(out, self.recorded_at());
        out.extend_from_slice(b"\",\"schema_version\":");
        push_int(out, i64::from(self.schema_version));
        out.extend_from_slice(b",\"stream\":");
        write_str(out, &self.stream);
        out.extend_from_slice(b",\"stream_version\":");
        push_int(out, self.stream_version);
        out.push(b'}');
    }
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut rest = n;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, as `envelope::format_timestamp` writes
/// it, without allocating.
fn push_timestamp(out: &mut Vec<u8>, at: DateTime<Utc>) {
    let year = at.year();
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(crate::envelope::format_timestamp(at).as_bytes());
        return;
    }
    push_padded(out, year as u32, 4);
    out.push(b'-');
    push_padded(out, at.month(), 2);
    out.push(b'-');
    push_padded(out, at.day(), 2);
    out.push(b'T');
    push_padded(out, at.hour(), 2);
    out.push(b':');
    push_padded(out, at.minute(), 2);
    out.push(b':');
    push_padded(out, at.second(), 2);
    out.push(b'.');
    push_padded(out, at.timestamp_subsec_micros(), 6);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stored(data: &Value, metadata: &Value, recorded_at: i64) -> StoredEvent {
        StoredEvent {
            position: 1_234_567,
            event_id: Uuid::now_v7(),
            app_id: AppId(Uuid::now_v7()),
            stream: "device:a \"quoted\" \u{1} é".into(),
            stream_version: 3,
            event_type: "device.registered".into(),
            schema_version: 1,
            data: data.to_string(),
            metadata: metadata.to_string(),
            recorded_at,
            hash: vec![0; 32],
        }
    }

    #[test]
    fn stored_text_gives_the_canonical_bytes() {
        let data =
            json!({"z": [1, -2, {"b": "x\ty\u{7f}", "a": null}], "a": "é\u{0}\"\\", "n": i64::MIN});
        let metadata = json!({"app_id": "x", "actor": "key:1", "trace_id": null});
        for micros in [0, 1_733_000_000_123_456, 1_733_000_000_000_001, -1] {
            let event = stored(&data, &metadata, micros);
            let mut fast = Vec::new();
            event.canonical_bytes_as_stored(&mut fast);
            let slow = event
                .to_recorded()
                .and_then(|r| {
                    r.canonical_bytes().map_err(|e| Unreadable {
                        position: 0,
                        what: "data",
                        reason: e.to_string(),
                    })
                })
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&slow),
                "at {micros}"
            );
        }
    }

    #[test]
    fn text_that_is_not_canonical_differs_and_parses() {
        let mut event = stored(&json!({"a": 1}), &json!({}), 5);
        event.data = "{ \"a\" : 1 }".into();
        let mut fast = Vec::new();
        event.canonical_bytes_as_stored(&mut fast);
        let slow = event
            .to_recorded()
            .map(|r| r.canonical_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(fast, slow);
        event.data = "{".into();
        assert!(event.to_recorded().is_err());
    }
}
