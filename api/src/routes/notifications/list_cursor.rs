//! The cursor of a notification list: the last row's sort-key values and
//! id, bound to the `order_by` it was made for.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use projections::notifications::query::{After, KeyValue, SortKey};
use uuid::Uuid;

use crate::error::ApiError;

pub fn encode(kind: &str, keys: &[KeyValue], id: Uuid) -> String {
    let body = serde_json::json!({"o": kind, "k": keys, "id": id});
    URL_SAFE_NO_PAD.encode(body.to_string())
}

/// `None` for no cursor (the first page); a cursor of another `order_by`
/// (or none of Herald's: keys of the wrong kind, text holding NUL) is a 400.
pub fn decode(
    kind: &str,
    cursor: Option<&str>,
    order: &[SortKey],
) -> Result<Option<After>, ApiError> {
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
    let fits = |(key, (field, _)): (&KeyValue, &SortKey)| match key {
        KeyValue::Text(t) => field.is_text() && !t.contains('\0'),
        KeyValue::Int(_) => !field.is_text(),
    };
    if parts.o != kind || parts.k.len() != order.len() || !parts.k.iter().zip(order).all(fits) {
        return Err(invalid());
    }
    Ok(Some(After {
        keys: parts.k,
        id: parts.id,
    }))
}
