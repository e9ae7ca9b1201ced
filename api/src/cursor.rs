//! Opaque list cursors. A cursor names the last item of a page; clients
//! pass it back unchanged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;

/// Encodes the position in a keyed list (`kind` tells lists apart, so a
/// cursor from one list is refused by another).
pub fn encode(kind: &str, key: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{key}"))
}

/// Decodes a cursor of `kind`; an absent cursor is the start (0).
pub fn decode(kind: &str, cursor: Option<&str>) -> Result<i64, ApiError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(0);
    };
    let text = text_of(cursor)?;
    let (found_kind, key) = text.split_once(':').ok_or_else(invalid)?;
    if found_kind != kind {
        return Err(invalid());
    }
    key.parse::<i64>()
        .ok()
        .filter(|k| *k >= 0)
        .ok_or_else(invalid)
}

/// Encodes the position in a list keyed by time-ordered ids.
pub fn encode_id(kind: &str, id: uuid::Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{}", id.simple()))
}

/// Decodes an id cursor of `kind`; an absent cursor is `None` (the start).
pub fn decode_id(kind: &str, cursor: Option<&str>) -> Result<Option<uuid::Uuid>, ApiError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let text = text_of(cursor)?;
    match text.split_once(':') {
        Some((k, id)) if k == kind => uuid::Uuid::parse_str(id).map(Some).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

fn invalid() -> ApiError {
    ApiError::invalid(
        "cursor",
        "is not a cursor of this list; pass next_cursor back unchanged",
    )
}

/// A cursor's text: base64 of UTF-8 without NUL (no key Herald stores
/// holds one; a database would refuse it as a 5xx).
fn text_of(cursor: &str) -> Result<String, ApiError> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    String::from_utf8(raw)
        .ok()
        .filter(|t| !t.contains('\0'))
        .ok_or_else(invalid)
}

/// Encodes a position in a list ordered by a key, then a text (any
/// characters: it is the cursor's tail).
pub fn encode_keyed(kind: &str, key: i64, text: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{key}:{text}"))
}

/// Decodes a keyed cursor of `kind`; absent is `None` (the start).
pub fn decode_keyed(kind: &str, cursor: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let text = text_of(cursor)?;
    let rest = text
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(invalid)?;
    let (key, tail) = rest.split_once(':').ok_or_else(invalid)?;
    let key = key.parse::<i64>().map_err(|_| invalid())?;
    Ok(Some((key, tail.to_owned())))
}

/// Checks a page size: `1..=max`, `default` when absent.
pub fn limit(raw: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let limit = raw.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {max}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        let c = encode("devices", 42);
        assert_eq!(decode("devices", Some(&c)).ok(), Some(42));
        assert!(decode("users", Some(&c)).is_err());
        assert!(decode("devices", Some("!!")).is_err());
        assert_eq!(decode("devices", None).ok(), Some(0));
        let id = uuid::Uuid::now_v7();
        let c = encode_id("webhooks", id);
        assert_eq!(decode_id("webhooks", Some(&c)).ok(), Some(Some(id)));
        assert!(decode_id("attempts", Some(&c)).is_err());
        let c = encode_keyed("history", 1, "a\0");
        assert!(decode_keyed("history", Some(&c)).is_err(), "NUL");
        let c = encode_keyed("history", 1, "a");
        assert_eq!(
            decode_keyed("history", Some(&c)).ok(),
            Some(Some((1, "a".to_owned())))
        );
    }
}

#[cfg(test)]
mod proptests;
