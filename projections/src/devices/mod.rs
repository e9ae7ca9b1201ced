//! The `devices` read model: one row per live device.

mod query;
mod view;

use async_trait::async_trait;
use domain::device::DeviceEvent;
use domain::properties::Properties;
use domain::{DomainEvent, RecordedEvent};

pub use query::{DeviceRecord, get_device};
pub use view::DeviceView;

use crate::db::Tx;
use crate::time::micros;
use crate::{Projection, ProjectionError, on_tx};

pub struct DevicesProjection;

#[async_trait]
impl Projection for DevicesProjection {
    fn name(&self) -> &'static str {
        "devices"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["devices"]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("device.")
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        for event in events {
            let decoded = DeviceEvent::decode(&event.event_type, event.schema_version, &event.data)
                .map_err(|e| ProjectionError::event(event, e))?;
            apply_one(tx, event, decoded).await?;
        }
        Ok(())
    }
}

async fn apply_one(
    tx: &mut Tx,
    event: &RecordedEvent,
    decoded: DeviceEvent,
) -> Result<(), ProjectionError> {
    let app = event.app_id.0;
    let at = micros(event.recorded_at);
    let version = event.stream_version;
    match decoded {
        DeviceEvent::Registered {
            external_id,
            push_token,
            send_platform,
            device_platform,
            random_bucket,
            user_id,
            has_permission,
        } => on_tx!(tx, |c| {
            sqlx::query("DELETE FROM devices WHERE app_id = $1 AND external_id = $2")
                .bind(app)
                .bind(external_id.as_str())
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO devices (device_key, app_id, external_id, push_token, send_platform, \
                   device_platform, user_id, has_permission, token_valid, random_bucket, properties, \
                   created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE, $9, '{}', $10, $10, $11)",
            )
            .bind(event.position)
            .bind(app)
            .bind(external_id.as_str())
            .bind(push_token.as_str())
            .bind(send_platform.as_str())
            .bind(device_platform.as_str())
            .bind(user_id.as_ref().map(|u| u.as_str()))
            .bind(has_permission)
            .bind(i64::from(random_bucket))
            .bind(at)
            .bind(version)
            .execute(&mut *c)
            .await?;
        }),
        DeviceEvent::Updated {
            external_id,
            push_token,
            send_platform,
            device_platform,
            has_permission,
        } => {
            on_tx!(tx, |c| {
                sqlx::query(
                    "UPDATE devices SET push_token = COALESCE($1, push_token), \
                       token_valid = CASE WHEN $1 IS NULL THEN token_valid ELSE TRUE END, \
                       send_platform = COALESCE($2, send_platform), \
                       device_platform = COALESCE($3, device_platform), \
                       has_permission = COALESCE($4, has_permission), \
                       updated_at = $5, version = $6 \
                     WHERE app_id = $7 AND external_id = $8",
                )
                .bind(push_token.as_ref().map(|t| t.as_str()))
                .bind(send_platform.map(|p| p.as_str()))
                .bind(device_platform.map(|p| p.as_str()))
                .bind(has_permission)
                .bind(at)
                .bind(version)
                .bind(app)
                .bind(external_id.as_str())
                .execute(c)
                .await?;
            })
        }
        DeviceEvent::UserLinked {
            external_id,
            user_id,
        } => {
            set_user(
                tx,
                app,
                external_id.as_str(),
                Some(user_id.as_str()),
                at,
                version,
            )
            .await?
        }
        DeviceEvent::UserUnlinked { external_id, .. } => {
            set_user(tx, app, external_id.as_str(), None, at, version).await?
        }
        DeviceEvent::PropertiesChanged {
            external_id,
            set,
            removed,
        } => on_tx!(tx, |c| {
            let current: Option<String> = sqlx::query_scalar(
                "SELECT properties FROM devices WHERE app_id = $1 AND external_id = $2",
            )
            .bind(app)
            .bind(external_id.as_str())
            .fetch_optional(&mut *c)
            .await?;
            let mut properties: Properties = current
                .map(|p| serde_json::from_str(&p))
                .transpose()
                .map_err(|e| ProjectionError::event(event, e))?
                .unwrap_or_default();
            for key in &removed {
                properties.remove(key);
            }
            properties.extend(set);
            let json =
                serde_json::to_string(&properties).map_err(|e| ProjectionError::event(event, e))?;
            sqlx::query(
                "UPDATE devices SET properties = $1, updated_at = $2, version = $3 \
                 WHERE app_id = $4 AND external_id = $5",
            )
            .bind(json)
            .bind(at)
            .bind(version)
            .bind(app)
            .bind(external_id.as_str())
            .execute(&mut *c)
            .await?;
        }),
        DeviceEvent::PushTokenInvalidated { external_id, .. } => on_tx!(tx, |c| {
            sqlx::query(
                "UPDATE devices SET token_valid = FALSE, updated_at = $1, version = $2 \
                 WHERE app_id = $3 AND external_id = $4",
            )
            .bind(at)
            .bind(version)
            .bind(app)
            .bind(external_id.as_str())
            .execute(c)
            .await?;
        }),
        DeviceEvent::Deleted { external_id } => on_tx!(tx, |c| {
            sqlx::query("DELETE FROM devices WHERE app_id = $1 AND external_id = $2")
                .bind(app)
                .bind(external_id.as_str())
                .execute(c)
                .await?;
        }),
    };
    Ok(())
}

async fn set_user(
    tx: &mut Tx,
    app: uuid::Uuid,
    external_id: &str,
    user_id: Option<&str>,
    at: i64,
    version: i64,
) -> Result<(), ProjectionError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE devices SET user_id = $1, updated_at = $2, version = $3 \
             WHERE app_id = $4 AND external_id = $5",
        )
        .bind(user_id)
        .bind(at)
        .bind(version)
        .bind(app)
        .bind(external_id)
        .execute(c)
        .await?;
    });
    Ok(())
}
