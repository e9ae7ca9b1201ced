//! Endpoints as last seen: written from their events, read by the API and
//! the delivery reactor.

use chrono::{DateTime, Utc};
use domain::RecordedEvent;
use domain::ids::WebhookId;
use domain::webhook::WebhookEvent;
use domain::webhook::settings::{AuthInfo, Settings};
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::time::{from_micros, micros};
use crate::{ProjectionError, on_db, on_tx};

#[derive(Debug, Clone)]
pub struct EndpointRecord {
    pub webhook_id: WebhookId,
    pub app_id: Uuid,
    pub settings: Settings,
    pub auth: Option<AuthInfo>,
    pub secret_fingerprint: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The endpoint stream's version.
    pub version: i64,
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Writes one endpoint event to `webhook_endpoints`.
pub(super) async fn apply(
    tx: &mut Tx,
    event: &RecordedEvent,
    decoded: &WebhookEvent,
) -> Result<(), ProjectionError> {
    let at = micros(event.recorded_at);
    let version = event.stream_version;
    on_tx!(tx, |c| {
        match decoded {
            WebhookEvent::Created {
                webhook_id,
                settings,
                auth,
                secret_fingerprint,
            } => {
                sqlx::query(
                    "INSERT INTO webhook_endpoints (webhook_id, app_id, settings, auth, secret_fingerprint, \
                     enabled, disabled_reason, created_at, updated_at, version, ordered, rate_limit) \
                     VALUES ($1, $2, $3, $4, $5, TRUE, NULL, $6, $6, $7, $8, $9) ON CONFLICT (webhook_id) DO NOTHING",
                )
                .bind(webhook_id.0)
                .bind(event.app_id.0)
                .bind(to_json(settings))
                .bind(auth.as_ref().map(to_json))
                .bind(secret_fingerprint)
                .bind(at)
                .bind(version)
                .bind(settings.ordered)
                .bind(settings.rate_limit_per_second.map(i64::from))
                .execute(&mut *c)
                .await?;
            }
            WebhookEvent::Updated {
                webhook_id,
                settings,
                auth,
                ..
            } => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET settings = $2, auth = $3, updated_at = $4, version = $5, \
                     ordered = $6, rate_limit = $7 WHERE webhook_id = $1",
                )
                .bind(webhook_id.0)
                .bind(to_json(settings))
                .bind(auth.as_ref().map(to_json))
                .bind(at)
                .bind(version)
                .bind(settings.ordered)
                .bind(settings.rate_limit_per_second.map(i64::from))
                .execute(&mut *c)
                .await?;
            }
            WebhookEvent::Disabled { webhook_id, reason } => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $2, updated_at = $3, \
                     version = $4 WHERE webhook_id = $1",
                )
                .bind(webhook_id.0)
                .bind(reason)
                .bind(at)
                .bind(version)
                .execute(&mut *c)
                .await?;
                // Out of the delivery queue's way until enabled again.
                sqlx::query(
                    "UPDATE webhook_messages SET status = 'paused' WHERE endpoint_id = $1 AND status = 'pending'",
                )
                .bind(webhook_id.0)
                .execute(&mut *c)
                .await?;
            }
            WebhookEvent::Enabled { webhook_id } => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET enabled = TRUE, disabled_reason = NULL, updated_at = $2, \
                     version = $3 WHERE webhook_id = $1",
                )
                .bind(webhook_id.0)
                .bind(at)
                .bind(version)
                .execute(&mut *c)
                .await?;
                sqlx::query(
                    "UPDATE webhook_messages SET status = 'pending' WHERE endpoint_id = $1 AND status = 'paused'",
                )
                .bind(webhook_id.0)
                .execute(&mut *c)
                .await?;
                // A fresh start: the failure streak that disabled it is over.
                sqlx::query(
                    "UPDATE webhook_endpoint_state SET failing_since = NULL WHERE endpoint_id = $1",
                )
                .bind(webhook_id.0)
                .execute(&mut *c)
                .await?;
            }
            WebhookEvent::SecretRotated {
                webhook_id,
                secret_fingerprint,
            } => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET secret_fingerprint = $2, updated_at = $3, version = $4 \
                     WHERE webhook_id = $1",
                )
                .bind(webhook_id.0)
                .bind(secret_fingerprint)
                .bind(at)
                .bind(version)
                .execute(&mut *c)
                .await?;
            }
            WebhookEvent::Deleted { webhook_id } => {
                for table in [
                    "webhook_messages",
                    "webhook_attempts",
                    "webhook_endpoint_state",
                ] {
                    let sql = format!("DELETE FROM {table} WHERE endpoint_id = $1");
                    sqlx::query(&sql)
                        .bind(webhook_id.0)
                        .execute(&mut *c)
                        .await?;
                }
                sqlx::query("DELETE FROM webhook_endpoints WHERE webhook_id = $1")
                    .bind(webhook_id.0)
                    .execute(&mut *c)
                    .await?;
            }
        }
    });
    Ok(())
}

/// The endpoint after `history` (its stream from the first event, up to
/// an instant): `None` if it did not exist or was deleted. The same
/// changes as [`apply`], in memory.
pub fn as_of(history: &[RecordedEvent]) -> Result<Option<EndpointRecord>, String> {
    use domain::DomainEvent;
    let mut endpoint: Option<EndpointRecord> = None;
    for event in history {
        let decoded = WebhookEvent::decode(&event.event_type, event.schema_version, &event.data)
            .map_err(|e| e.to_string())?;
        if let WebhookEvent::Created {
            webhook_id,
            settings,
            auth,
            secret_fingerprint,
        } = decoded
        {
            endpoint = Some(EndpointRecord {
                webhook_id,
                app_id: event.app_id.0,
                settings,
                auth,
                secret_fingerprint,
                enabled: true,
                disabled_reason: None,
                created_at: event.recorded_at,
                updated_at: event.recorded_at,
                version: event.stream_version,
            });
            continue;
        }
        let Some(e) = endpoint.as_mut() else {
            continue;
        };
        e.updated_at = event.recorded_at;
        e.version = event.stream_version;
        match decoded {
            WebhookEvent::Created { .. } => {}
            WebhookEvent::Updated { settings, auth, .. } => {
                e.settings = settings;
                e.auth = auth;
            }
            WebhookEvent::Disabled { reason, .. } => {
                e.enabled = false;
                e.disabled_reason = Some(reason);
            }
            WebhookEvent::Enabled { .. } => {
                e.enabled = true;
                e.disabled_reason = None;
            }
            WebhookEvent::SecretRotated {
                secret_fingerprint, ..
            } => e.secret_fingerprint = secret_fingerprint,
            WebhookEvent::Deleted { .. } => endpoint = None,
        }
    }
    Ok(endpoint)
}

type Row = (
    Uuid,
    Uuid,
    String,
    Option<String>,
    String,
    bool,
    Option<String>,
    i64,
    i64,
    i64,
);

const COLUMNS: &str = "webhook_id, app_id, settings, auth, secret_fingerprint, enabled, \
                       disabled_reason, created_at, updated_at, version";

fn record(row: Row) -> Result<EndpointRecord, sqlx::Error> {
    let (id, app_id, settings, auth, fingerprint, enabled, reason, created, updated, version) = row;
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    Ok(EndpointRecord {
        webhook_id: WebhookId(id),
        app_id,
        settings: serde_json::from_str(&settings).map_err(decode)?,
        auth: auth
            .map(|a| serde_json::from_str(&a))
            .transpose()
            .map_err(decode)?,
        secret_fingerprint: fingerprint,
        enabled,
        disabled_reason: reason,
        created_at: from_micros(created),
        updated_at: from_micros(updated),
        version,
    })
}

/// One endpoint of an app.
pub async fn get(
    db: &Db,
    app_id: Uuid,
    webhook_id: Uuid,
) -> Result<Option<EndpointRecord>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE app_id = $1 AND webhook_id = $2");
    let row: Option<Row> = on_db!(db, |p| {
        sqlx::query_as(&sql)
            .bind(app_id)
            .bind(webhook_id)
            .fetch_optional(p)
            .await?
    });
    row.map(record).transpose()
}

/// An app's endpoints in creation order (ids are time-ordered), after `after`.
pub async fn list(
    db: &Db,
    app_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<EndpointRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE app_id = $1 AND webhook_id > $2 \
         ORDER BY webhook_id LIMIT $3"
    );
    let rows: Vec<Row> = on_db!(db, |p| {
        sqlx::query_as(&sql)
            .bind(app_id)
            .bind(after.unwrap_or(Uuid::nil()))
            .bind(limit)
            .fetch_all(p)
            .await?
    });
    rows.into_iter().map(record).collect()
}
