//! A projection that cannot apply an event stops *for that event's app
//! alone*. Apps are independent tenants (every row of every projection
//! belongs to one app), so the projection can go on with every other app's
//! events and come back to this app's later, in its own log order.
//!
//! A fault is one row of `projection_faults`: the projection, the app, the
//! first of the app's events not applied (`position`), and the error. Reads
//! of that app from that projection answer 503 naming it; `/readyz` and
//! `GET /v1/admin/projections` list it. The way out is an operator's:
//! - `skip`: the event is recorded in `projection_skipped` (kept, never
//!   silently lost) and the app's events after it are replayed;
//! - `retry`: after a fix (a new build), the app's events are replayed from
//!   the faulty one; if it fails again the fault stays, with the new error.
//!
//! Either is asked for by setting `action` (`herald projections skip|retry`
//! or `POST /v1/admin/projections/{name}/faults/{app_id}/skip|retry`); the
//! node running the projection sees it within a second and replays.

use chrono::{DateTime, Utc};
use domain::ids::AppId;
use projections::db::{Db, Tx};
use projections::{on_db, on_tx};
use serde::Serialize;
use uuid::Uuid;

use super::RuntimeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Skip,
    Retry,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Skip => "skip",
            Action::Retry => "retry",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "skip" => Some(Action::Skip),
            "retry" => Some(Action::Retry),
            _ => None,
        }
    }
}

/// One app a projection has stopped for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    pub app_id: AppId,
    /// The first of the app's events not applied.
    pub position: i64,
    pub event_type: String,
    pub error: String,
    pub since: DateTime<Utc>,
    /// What an operator asked for, not done yet.
    pub action: Option<Action>,
}

/// An event an operator skipped.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub name: String,
    pub position: i64,
    pub app_id: AppId,
    pub event_type: String,
    pub error: String,
    pub skipped_at: DateTime<Utc>,
}

type FaultRow = (Uuid, i64, String, String, i64, Option<String>);

fn from_row((app, position, event_type, error, since, action): FaultRow) -> Fault {
    Fault {
        app_id: AppId(app),
        position,
        event_type,
        error,
        since: DateTime::from_timestamp_micros(since).unwrap_or_default(),
        action: action.as_deref().and_then(Action::parse),
    }
}

/// The faults of projection `name`.
pub async fn list(db: &Db, name: &str) -> Result<Vec<Fault>, RuntimeError> {
    let rows: Vec<FaultRow> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT app_id, position, event_type, error, since, action \
             FROM projection_faults WHERE name = $1 ORDER BY since",
        )
        .bind(name)
        .fetch_all(pool)
        .await?
    });
    Ok(rows.into_iter().map(from_row).collect())
}

/// Every projection's faults, oldest first: `(projection, fault)`.
pub async fn list_all(db: &Db) -> Result<Vec<(String, Fault)>, RuntimeError> {
    type Row = (String, Uuid, i64, String, String, i64, Option<String>);
    let rows: Vec<Row> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT name, app_id, position, event_type, error, since, action \
             FROM projection_faults ORDER BY since",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(name, app, position, event_type, error, since, action)| {
            (
                name,
                from_row((app, position, event_type, error, since, action)),
            )
        })
        .collect())
}

/// The fault of `app` in `name`, locked for the transaction on PostgreSQL.
pub(crate) async fn locked(
    tx: &mut Tx,
    name: &str,
    app: AppId,
) -> Result<Option<Fault>, RuntimeError> {
    let lock = match tx {
        Tx::Pg(_) => " FOR UPDATE",
        Tx::Sqlite(..) => "",
    };
    let sql = format!(
        "SELECT app_id, position, event_type, error, since, action \
         FROM projection_faults WHERE name = $1 AND app_id = $2{lock}"
    );
    let row: Option<FaultRow> = on_tx!(tx, |c| {
        sqlx::query_as(&sql)
            .bind(name)
            .bind(app.0)
            .fetch_optional(c)
            .await?
    });
    Ok(row.map(from_row))
}

/// The apps `name` is stopped for, as the table says now.
pub(crate) async fn stopped_apps(tx: &mut Tx, name: &str) -> Result<Vec<AppId>, RuntimeError> {
    let apps: Vec<Uuid> = on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT app_id FROM projection_faults WHERE name = $1")
            .bind(name)
            .fetch_all(c)
            .await?
    });
    Ok(apps.into_iter().map(AppId).collect())
}

/// Records a fault (a second one for the same app keeps the first).
pub(crate) async fn record(tx: &mut Tx, name: &str, fault: &Fault) -> Result<(), RuntimeError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO projection_faults (name, app_id, position, event_type, error, since, action) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (name, app_id) DO NOTHING",
        )
        .bind(name)
        .bind(fault.app_id.0)
        .bind(fault.position)
        .bind(&fault.event_type)
        .bind(&fault.error)
        .bind(fault.since.timestamp_micros())
        .execute(c)
        .await?;
    });
    Ok(())
}

/// Replaces a fault's position, error and action (a replay's progress, or
/// a retry that failed again).
pub(crate) async fn update(tx: &mut Tx, name: &str, fault: &Fault) -> Result<(), RuntimeError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE projection_faults SET position = $3, event_type = $4, error = $5, action = $6 \
             WHERE name = $1 AND app_id = $2",
        )
        .bind(name)
        .bind(fault.app_id.0)
        .bind(fault.position)
        .bind(&fault.event_type)
        .bind(&fault.error)
        .bind(fault.action.map(Action::as_str))
        .execute(c)
        .await?;
    });
    Ok(())
}

pub(crate) async fn clear(tx: &mut Tx, name: &str, app: AppId) -> Result<(), RuntimeError> {
    on_tx!(tx, |c| {
        sqlx::query("DELETE FROM projection_faults WHERE name = $1 AND app_id = $2")
            .bind(name)
            .bind(app.0)
            .execute(c)
            .await?;
    });
    Ok(())
}

pub(crate) async fn record_skipped(
    tx: &mut Tx,
    name: &str,
    fault: &Fault,
    at: DateTime<Utc>,
) -> Result<(), RuntimeError> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO projection_skipped (name, position, app_id, event_type, error, skipped_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name, position) DO NOTHING",
        )
        .bind(name)
        .bind(fault.position)
        .bind(fault.app_id.0)
        .bind(&fault.event_type)
        .bind(&fault.error)
        .bind(at.timestamp_micros())
        .execute(c)
        .await?;
    });
    Ok(())
}

/// Asks for `action` on `name`'s fault of `app` (at `position`, when given,
/// so that an operator never skips an event other than the one they saw).
/// Returns whether such a fault exists.
pub async fn request(
    db: &Db,
    name: &str,
    app: AppId,
    position: Option<i64>,
    action: Action,
) -> Result<bool, RuntimeError> {
    let mut tx = db.begin().await?;
    let found = locked(&mut tx, name, app).await?;
    let Some(mut fault) = found.filter(|f| position.is_none_or(|p| p == f.position)) else {
        return Ok(false);
    };
    fault.action = Some(action);
    update(&mut tx, name, &fault).await?;
    tx.commit().await?;
    Ok(true)
}

/// The events skipped so far, newest first, at most `limit`.
pub async fn skipped(db: &Db, limit: i64) -> Result<Vec<Skipped>, RuntimeError> {
    let rows: Vec<(String, i64, Uuid, String, String, i64)> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT name, position, app_id, event_type, error, skipped_at \
             FROM projection_skipped ORDER BY skipped_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(name, position, app, event_type, error, at)| Skipped {
            name,
            position,
            app_id: AppId(app),
            event_type,
            error,
            skipped_at: DateTime::from_timestamp_micros(at).unwrap_or_default(),
        })
        .collect())
}
