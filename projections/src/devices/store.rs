//! Bulk reads and writes of the `devices` and `device_properties` tables,
//! so that a batch of events costs a handful of statements, not one per
//! event.

use std::collections::HashMap;

use domain::conditions::version_key;
use domain::properties::PropertyValue;
use sqlx::{QueryBuilder, Row};
use uuid::Uuid;

use super::DeviceRecord;
use super::record::{COLUMNS, from_row};
use crate::db::Tx;
use crate::on_tx;
use crate::time::micros;

/// A device as an app knows it: (app, external id).
pub(crate) type DeviceId = (Uuid, String);

const KEYS_PER_SELECT: usize = 500;
const ROWS_PER_INSERT: usize = 1000;
const PROPERTY_ROWS_PER_INSERT: usize = 2000;

/// The current rows of these devices.
pub(crate) async fn load(
    tx: &mut Tx,
    ids: &[DeviceId],
) -> Result<HashMap<DeviceId, DeviceRecord>, sqlx::Error> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(KEYS_PER_SELECT) {
        let head =
            format!("SELECT app_id, {COLUMNS} FROM devices WHERE (app_id, external_id) IN (");
        on_tx!(tx, |c| {
            let mut query = QueryBuilder::new(head.as_str());
            query.push_values(chunk, |mut b, (app, external_id)| {
                b.push_bind(*app).push_bind(external_id.as_str());
            });
            query.push(")");
            for row in query.build().fetch_all(&mut *c).await? {
                let app: Uuid = row.try_get("app_id")?;
                let record = from_row(&row)?;
                found.insert((app, record.external_id.clone()), record);
            }
        });
    }
    Ok(found)
}

/// Deletes devices (and their property rows) by key.
pub(crate) async fn delete(
    tx: &mut Tx,
    keys: &[i64],
    with_devices: bool,
) -> Result<(), sqlx::Error> {
    for chunk in keys.chunks(ROWS_PER_INSERT) {
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let properties = format!("DELETE FROM device_properties WHERE device_key IN ({list})");
        let devices = format!("DELETE FROM devices WHERE device_key IN ({list})");
        on_tx!(tx, |c| {
            sqlx::query(properties.as_str()).execute(&mut *c).await?;
            if with_devices {
                sqlx::query(devices.as_str()).execute(&mut *c).await?;
            }
        });
    }
    Ok(())
}

/// Inserts or replaces device rows.
pub(crate) async fn upsert(tx: &mut Tx, rows: &[(Uuid, &DeviceRecord)]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        on_tx!(tx, |c| {
            let mut query = QueryBuilder::new(
                "INSERT INTO devices (device_key, app_id, external_id, push_token, send_platform, \
                 device_platform, user_id, has_permission, token_valid, random_bucket, properties, \
                 created_at, updated_at, version, secret_sha256) ",
            );
            query.push_values(chunk, |mut b, (app, d)| {
                b.push_bind(d.device_key)
                    .push_bind(*app)
                    .push_bind(d.external_id.as_str())
                    .push_bind(d.push_token.as_str())
                    .push_bind(d.send_platform.as_str())
                    .push_bind(d.device_platform.as_str())
                    .push_bind(d.user_id.as_deref())
                    .push_bind(d.has_permission)
                    .push_bind(d.token_valid)
                    .push_bind(d.random_bucket)
                    .push_bind(serde_json::to_string(&d.properties).unwrap_or_else(|_| "{}".into()))
                    .push_bind(micros(d.created_at))
                    .push_bind(micros(d.updated_at))
                    .push_bind(d.version)
                    .push_bind(d.secret_sha256.as_deref());
            });
            query.push(
                " ON CONFLICT (device_key) DO UPDATE SET push_token = excluded.push_token, \
                 send_platform = excluded.send_platform, device_platform = excluded.device_platform, \
                 user_id = excluded.user_id, has_permission = excluded.has_permission, \
                 token_valid = excluded.token_valid, properties = excluded.properties, \
                 updated_at = excluded.updated_at, version = excluded.version, \
                 secret_sha256 = excluded.secret_sha256",
            );
            query.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}

/// One searchable row per scalar property, one per list item (`l` for a
/// string, `n` for an integer; one `e` row for an empty list).
pub(crate) struct PropertyRow<'a> {
    pub device_key: i64,
    pub app: Uuid,
    pub key: &'a str,
    pub kind: &'static str,
    pub s: Option<&'a str>,
    pub i: Option<i64>,
    pub v: Option<String>,
}

pub(crate) fn property_rows<'a>(app: Uuid, d: &'a DeviceRecord, out: &mut Vec<PropertyRow<'a>>) {
    for (key, value) in &d.properties {
        let row = |kind, s: Option<&'a str>, i| PropertyRow {
            device_key: d.device_key,
            app,
            key: key.as_str(),
            kind,
            s,
            i,
            v: s.and_then(version_key),
        };
        match value {
            PropertyValue::Str(s) => out.push(row("s", Some(s.as_str()), None)),
            PropertyValue::Int(i) => out.push(row("i", None, Some(*i))),
            PropertyValue::Bool(b) => out.push(row("b", None, Some(i64::from(*b)))),
            // An empty list still exists: one row without a value.
            PropertyValue::List(items) if items.is_empty() => out.push(row("e", None, None)),
            PropertyValue::List(items) => {
                for item in items {
                    out.push(PropertyRow {
                        v: None,
                        ..row("l", Some(item.as_str()), None)
                    });
                }
            }
            PropertyValue::IntList(items) if items.is_empty() => out.push(row("e", None, None)),
            PropertyValue::IntList(items) => {
                for item in items {
                    out.push(row("n", None, Some(*item)));
                }
            }
        }
    }
}

/// Writes the property rows of these devices (whose old rows are gone).
pub(crate) async fn insert_properties(
    tx: &mut Tx,
    devices: &[(Uuid, &DeviceRecord)],
) -> Result<(), sqlx::Error> {
    let mut rows = Vec::new();
    for (app, d) in devices {
        property_rows(*app, d, &mut rows);
    }
    for chunk in rows.chunks(PROPERTY_ROWS_PER_INSERT) {
        on_tx!(tx, |c| {
            let mut query = QueryBuilder::new(
                "INSERT INTO device_properties (device_key, app_id, key, kind, s, i, v) ",
            );
            query.push_values(chunk, |mut b, r| {
                b.push_bind(r.device_key)
                    .push_bind(r.app)
                    .push_bind(r.key)
                    .push_bind(r.kind)
                    .push_bind(r.s)
                    .push_bind(r.i)
                    .push_bind(r.v.as_deref());
            });
            query.build().execute(&mut *c).await?;
        });
    }
    Ok(())
}
