//! The cursor of a notification list: the last row's sort-key values and
//! id, bound to the `order_by` it was made for.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use projections::notifications::query::{After, KeyValue};
use uuid::Uuid;

use crate::error::ApiError;

pub fn encode(kind: &str, keys: &[KeyValue], id: Uuid) -> String {
    let body = serde_json::json!({"o": kind, "k": keys, "id": id});
    URL_SAFE_NO_PAD.encode(body.to_string())
}

/// `None` for no cursor (the first page); a cursor of another `order_by`
/// (or none of Herald's) is a 400.
pub fn decode(kind: &str, cursor: Option<&str>, keys: usize) -> Result<Option<After>, ApiError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::invalid(
            "cursor",
            "is not a cursor of this list; pass next_cursor back unchanged, with the same order_by",
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    #[derive(serde::Deserialize)]
    struct Parts {
        o: String,
        k: Vec<KeyValue>,
        id: Uuid,
    }
    let parts: Parts = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    if parts.o != kind || parts.k.len() != keys {
        return Err(invalid());
    }
    Ok(Some(After {
        keys: parts.k,
        id: parts.id,
    }))
}
