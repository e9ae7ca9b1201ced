//! A device as the read model holds it and the API shows it.

use chrono::{DateTime, Utc};
use domain::properties::Properties;
use serde::Serialize;
use sqlx::Row;

use crate::time::from_micros;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRecord {
    /// The position of the device's registration: stable, unique, and the
    /// order lists and searches page in.
    pub device_key: i64,
    pub external_id: String,
    pub push_token: String,
    pub send_platform: String,
    pub device_platform: String,
    pub user_id: Option<String>,
    pub has_permission: bool,
    pub token_valid: bool,
    pub properties: Properties,
    pub random_bucket: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    /// SHA-256 (hex) of the device secret handed to the client key that
    /// registered it; never shown.
    #[serde(skip)]
    pub secret_sha256: Option<String>,
}

/// The columns `from_row` reads, for `SELECT` lists.
pub(crate) const COLUMNS: &str = "device_key, external_id, push_token, send_platform, device_platform, \
     user_id, has_permission, token_valid, properties, random_bucket, created_at, updated_at, version, secret_sha256";

pub(crate) fn from_row<R>(row: &R) -> Result<DeviceRecord, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let properties: String = row.try_get("properties")?;
    Ok(DeviceRecord {
        device_key: row.try_get("device_key")?,
        external_id: row.try_get("external_id")?,
        push_token: row.try_get("push_token")?,
        send_platform: row.try_get("send_platform")?,
        device_platform: row.try_get("device_platform")?,
        user_id: row.try_get("user_id")?,
        has_permission: row.try_get("has_permission")?,
        token_valid: row.try_get("token_valid")?,
        properties: serde_json::from_str(&properties)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        random_bucket: row.try_get("random_bucket")?,
        created_at: from_micros(row.try_get("created_at")?),
        updated_at: from_micros(row.try_get("updated_at")?),
        version: row.try_get("version")?,
        secret_sha256: row.try_get("secret_sha256")?,
    })
}
