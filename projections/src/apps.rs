//! Apps and their API keys, as authentication and key listings need them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::app::AppEvent;
use domain::ids::{ApiKeyId, AppId};
use domain::role::Role;
use domain::{DomainEvent, RecordedEvent};
use sqlx::Row;
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::time::{from_micros, micros};
use crate::{Projection, ProjectionError, on_db, on_tx};

pub struct AppsProjection;

impl crate::ReadModel for AppsProjection {}

#[async_trait]
impl Projection for AppsProjection {
    fn name(&self) -> &'static str {
        "apps"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["apps", "api_keys", "push_credentials"]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("app.") || event_type.starts_with("api_key.")
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        for event in events {
            let decoded = AppEvent::decode(&event.event_type, event.schema_version, &event.data)
                .map_err(|e| ProjectionError::event(event, e))?;
            let at = micros(event.recorded_at);
            match decoded {
                AppEvent::Created { app_id, name } => on_tx!(tx, |c| {
                    sqlx::query(
                        "INSERT INTO apps (app_id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                         ON CONFLICT (app_id) DO UPDATE SET name = excluded.name",
                    )
                    .bind(app_id.0)
                    .bind(name)
                    .bind(at)
                    .execute(c)
                    .await?;
                }),
                AppEvent::ApiKeyCreated {
                    key_id,
                    name,
                    roles,
                    token_sha256,
                } => on_tx!(tx, |c| {
                    sqlx::query(
                        "INSERT INTO api_keys (key_id, app_id, name, roles, token_sha256, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id) DO NOTHING",
                    )
                    .bind(key_id.0)
                    .bind(event.app_id.0)
                    .bind(name)
                    .bind(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","))
                    .bind(token_sha256)
                    .bind(at)
                    .execute(c)
                    .await?;
                }),
                AppEvent::ApiKeyRevoked { key_id } => on_tx!(tx, |c| {
                    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2")
                        .bind(at)
                        .bind(key_id.0)
                        .execute(c)
                        .await?;
                }),
                AppEvent::DailyQuotaSet { daily_quota } => on_tx!(tx, |c| {
                    sqlx::query(
                        "UPDATE apps SET daily_quota = $1, updated_at = $2 WHERE app_id = $3",
                    )
                    .bind(daily_quota.map(|q| i64::try_from(q).unwrap_or(i64::MAX)))
                    .bind(at)
                    .bind(event.app_id.0)
                    .execute(c)
                    .await?;
                }),
                AppEvent::RateLimitSet {
                    rate_limit_per_second,
                } => on_tx!(tx, |c| {
                    sqlx::query(
                        "UPDATE apps SET rate_limit_per_second = $1, updated_at = $2 WHERE app_id = $3",
                    )
                    .bind(rate_limit_per_second.map(i64::from))
                    .bind(at)
                    .bind(event.app_id.0)
                    .execute(c)
                    .await?;
                }),
                AppEvent::PushCredentialsSet {
                    provider,
                    fingerprint,
                    details,
                } => on_tx!(tx, |c| {
                    sqlx::query(
                        "INSERT INTO push_credentials (app_id, provider, fingerprint, details, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, provider) DO UPDATE \
                         SET fingerprint = excluded.fingerprint, details = excluded.details, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(event.app_id.0)
                    .bind(provider.as_str())
                    .bind(fingerprint)
                    .bind(details.to_string())
                    .bind(at)
                    .execute(c)
                    .await?;
                }),
                AppEvent::PushCredentialsRemoved { provider } => on_tx!(tx, |c| {
                    sqlx::query("DELETE FROM push_credentials WHERE app_id = $1 AND provider = $2")
                        .bind(event.app_id.0)
                        .bind(provider.as_str())
                        .execute(c)
                        .await?;
                }),
            };
        }
        Ok(())
    }
}

/// An API key as the API shows it (never with its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub key_id: ApiKeyId,
    pub app_id: AppId,
    pub name: String,
    pub roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn key_from_row<R>(row: &R) -> Result<ApiKeyRecord, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Uuid: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let roles: String = row.try_get("roles")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    Ok(ApiKeyRecord {
        key_id: ApiKeyId(row.try_get("key_id")?),
        app_id: AppId(row.try_get("app_id")?),
        name: row.try_get("name")?,
        roles: roles.split(',').filter_map(Role::parse).collect(),
        created_at: from_micros(row.try_get("created_at")?),
        revoked_at: revoked_at.map(from_micros),
    })
}

/// The key whose token has this SHA-256 (hex), revoked or not.
pub async fn key_by_token_hash(
    db: &Db,
    token_sha256: &str,
) -> Result<Option<ApiKeyRecord>, sqlx::Error> {
    on_db!(db, |pool| {
        let row = sqlx::query(
            "SELECT key_id, app_id, name, roles, created_at, revoked_at FROM api_keys \
             WHERE token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    })
}

/// The app's keys that are not revoked, oldest first.
pub async fn list_keys(db: &Db, app_id: AppId) -> Result<Vec<ApiKeyRecord>, sqlx::Error> {
    on_db!(db, |pool| {
        let rows = sqlx::query(
            "SELECT key_id, app_id, name, roles, created_at, revoked_at FROM api_keys \
             WHERE app_id = $1 AND revoked_at IS NULL ORDER BY created_at, key_id",
        )
        .bind(app_id.0)
        .fetch_all(pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub app_id: AppId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub async fn get_app(db: &Db, app_id: AppId) -> Result<Option<AppRecord>, sqlx::Error> {
    on_db!(db, |pool| {
        let row = sqlx::query("SELECT app_id, name, created_at FROM apps WHERE app_id = $1")
            .bind(app_id.0)
            .fetch_optional(pool)
            .await?;
        row.map(|r| {
            Ok(AppRecord {
                app_id: AppId(r.try_get("app_id")?),
                name: r.try_get("name")?,
                created_at: from_micros(r.try_get("created_at")?),
            })
        })
        .transpose()
    })
}

/// The app's daily push quota (`None`: unlimited or no such app).
pub async fn daily_quota(db: &Db, app_id: AppId) -> Result<Option<i64>, sqlx::Error> {
    let quota: Option<Option<i64>> = on_db!(db, |p| {
        sqlx::query_scalar("SELECT daily_quota FROM apps WHERE app_id = $1")
            .bind(app_id.0)
            .fetch_optional(p)
            .await?
    });
    Ok(quota.flatten())
}

/// The app's own API rate limit per key (`None`: the node's default, or no
/// such app).
pub async fn rate_limit(db: &Db, app_id: AppId) -> Result<Option<i64>, sqlx::Error> {
    let limit: Option<Option<i64>> = on_db!(db, |p| {
        sqlx::query_scalar("SELECT rate_limit_per_second FROM apps WHERE app_id = $1")
            .bind(app_id.0)
            .fetch_optional(p)
            .await?
    });
    Ok(limit.flatten())
}

/// Push credentials as the API shows them: never the secret parts.
#[derive(Debug, Clone, PartialEq)]
pub struct PushCredentialRecord {
    pub provider: String,
    pub fingerprint: String,
    pub details: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

pub async fn push_credentials(
    db: &Db,
    app_id: AppId,
) -> Result<Vec<PushCredentialRecord>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64)> = on_db!(db, |p| {
        sqlx::query_as(
            "SELECT provider, fingerprint, details, updated_at FROM push_credentials \
             WHERE app_id = $1 ORDER BY provider",
        )
        .bind(app_id.0)
        .fetch_all(p)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(provider, fingerprint, details, updated_at)| PushCredentialRecord {
                provider,
                fingerprint,
                details: serde_json::from_str(&details).unwrap_or_default(),
                updated_at: from_micros(updated_at),
            },
        )
        .collect())
}
