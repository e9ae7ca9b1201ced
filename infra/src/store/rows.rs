//! Event rows as written to and read from either database.

use chrono::DateTime;
use domain::RecordedEvent;
use domain::ids::AppId;
use uuid::Uuid;

use super::StoreError;

/// `SELECT <every column> FROM events `, in the order [`decode`] reads them.
macro_rules! select_events {
    () => {
        "SELECT position, event_id, app_id, stream, stream_version, event_type, \
           schema_version, data, metadata, recorded_at, hash FROM events "
    };
}
pub(crate) use select_events;

/// Events after a position (`$1`), at most `$2`, in order: the projection
/// runner's, a rebuild's and `read_all`'s one read.
pub(crate) const READ_AFTER: &str = concat!(
    select_events!(),
    "WHERE position > $1 ORDER BY position LIMIT $2"
);

/// One row ready to insert.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub position: i64,
    pub event_id: Uuid,
    pub app_id: Uuid,
    pub stream: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub data: String,
    pub metadata: String,
    pub recorded_at: i64,
    pub hash: Vec<u8>,
}

/// Decodes a row selected with [`select_events`].
pub(crate) fn decode<R>(row: &R) -> Result<RecordedEvent, StoreError>
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Uuid: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Internal(format!("stored event has an unreadable {what}: {e}"))
    };
    let data: String = row.try_get("data")?;
    let metadata: String = row.try_get("metadata")?;
    let recorded_at: i64 = row.try_get("recorded_at")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        app_id: AppId(row.try_get("app_id")?),
        stream: row.try_get("stream")?,
        stream_version: row.try_get("stream_version")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        data: serde_json::from_str(&data).map_err(|e| corrupt("data", &e))?,
        metadata: serde_json::from_str(&metadata).map_err(|e| corrupt("metadata", &e))?,
        recorded_at: DateTime::from_timestamp_micros(recorded_at)
            .ok_or_else(|| corrupt("recorded_at", &recorded_at))?,
        hash: hex::encode(hash),
    })
}
