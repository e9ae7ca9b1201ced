//! Feature flags as last set, per app (`feature_flags`). Evaluation reads
//! them once into memory (`infra::services::flags`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::flag::{FlagEvent, Settings};
use domain::{DomainEvent, RecordedEvent};
use uuid::Uuid;

use crate::db::{Db, Tx};
use crate::time::{from_micros, micros};
use crate::{Projection, ProjectionError, on_db, on_tx};

pub const NAME: &str = "feature_flags";

pub struct FeatureFlagsProjection;

impl crate::ReadModel for FeatureFlagsProjection {}

/// A flag as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagRecord {
    pub name: String,
    pub settings: Settings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

#[async_trait]
impl Projection for FeatureFlagsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["feature_flags"]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("feature_flag.")
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        for event in events {
            let decoded = FlagEvent::decode(&event.event_type, event.schema_version, &event.data)
                .map_err(|e| ProjectionError::event(event, e))?;
            let at = micros(event.recorded_at);
            match decoded {
                FlagEvent::Created { name, settings } | FlagEvent::Updated { name, settings } => {
                    let settings = serde_json::to_string(&settings)
                        .map_err(|e| ProjectionError::event(event, e))?;
                    on_tx!(tx, |c| {
                        sqlx::query(
                            "INSERT INTO feature_flags (app_id, name, settings, created_at, updated_at, version) \
                             VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (app_id, name) DO UPDATE SET \
                             settings = excluded.settings, updated_at = excluded.updated_at, version = excluded.version",
                        )
                        .bind(event.app_id.0)
                        .bind(name.as_str())
                        .bind(settings)
                        .bind(at)
                        .bind(event.stream_version)
                        .execute(&mut *c)
                        .await?;
                    });
                }
                FlagEvent::Deleted { name } => on_tx!(tx, |c| {
                    sqlx::query("DELETE FROM feature_flags WHERE app_id = $1 AND name = $2")
                        .bind(event.app_id.0)
                        .bind(name.as_str())
                        .execute(&mut *c)
                        .await?;
                }),
            }
        }
        Ok(())
    }
}

type Row = (String, String, i64, i64, i64);

fn record((name, settings, created, updated, version): Row) -> Result<FlagRecord, sqlx::Error> {
    Ok(FlagRecord {
        name,
        settings: serde_json::from_str(&settings).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at: from_micros(created),
        updated_at: from_micros(updated),
        version,
    })
}

/// Every flag of the app, by name.
pub async fn flags_of(db: &Db, app_id: Uuid) -> Result<Vec<FlagRecord>, sqlx::Error> {
    let rows: Vec<Row> = on_db!(db, |p| {
        sqlx::query_as(
            "SELECT name, settings, created_at, updated_at, version FROM feature_flags \
             WHERE app_id = $1 ORDER BY name",
        )
        .bind(app_id)
        .fetch_all(p)
        .await?
    });
    rows.into_iter().map(record).collect()
}

/// One flag of the app.
pub async fn flag_of(db: &Db, app_id: Uuid, name: &str) -> Result<Option<FlagRecord>, sqlx::Error> {
    let row: Option<Row> = on_db!(db, |p| {
        sqlx::query_as(
            "SELECT name, settings, created_at, updated_at, version FROM feature_flags \
             WHERE app_id = $1 AND name = $2",
        )
        .bind(app_id)
        .bind(name)
        .fetch_optional(p)
        .await?
    });
    row.map(record).transpose()
}
