//! The `users` read model. Batches are applied like devices: load the rows
//! the batch touches, fold the events in memory (the same fold as command
//! responses and reads "as of"), write back in bulk.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ids::AppId;
use domain::personal;
use domain::properties::Properties;
use domain::user::UserEvent;
use domain::{DomainEvent, RecordedEvent, StoredEvent};
use serde::Serialize;
use sqlx::{QueryBuilder, Row};
use uuid::Uuid;

use crate::bulk::{Cell, Folding, Rows, StreamFold, Table, decode};
use crate::db::{Db, Tx};
use crate::devices::At;
use crate::time::{from_micros, micros};
use crate::{Projection, ProjectionError, on_db, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    pub user_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub status: String,
    pub properties: Properties,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// Applies one event. `None` is "no live user".
pub fn apply(user: &mut Option<UserRecord>, event: &UserEvent, at: At) {
    match event {
        UserEvent::Created {
            user_id,
            name,
            email,
            status,
            properties,
        } => {
            *user = Some(UserRecord {
                user_id: user_id.as_str().to_owned(),
                name: name.clone(),
                email: email.clone(),
                status: status.as_str().to_owned(),
                properties: properties.clone(),
                created_at: at.recorded_at,
                updated_at: at.recorded_at,
                version: at.stream_version,
            });
            return;
        }
        UserEvent::Deleted { .. } => {
            *user = None;
            return;
        }
        _ => {}
    }
    let Some(u) = user.as_mut() else { return };
    u.updated_at = at.recorded_at;
    u.version = at.stream_version;
    match event {
        UserEvent::Updated {
            name,
            email,
            properties_set,
            properties_removed,
            ..
        } => {
            if let Some(n) = name {
                u.name = n.clone();
            }
            if let Some(e) = email {
                u.email = e.clone();
            }
            for key in properties_removed {
                u.properties.remove(key);
            }
            u.properties
                .extend(properties_set.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        UserEvent::StatusUpdated { to, .. } => u.status = to.as_str().to_owned(),
        UserEvent::Forgotten { .. } => {
            for value in [&mut u.name, &mut u.email].into_iter().flatten() {
                *value = personal::PLACEHOLDER.to_owned();
            }
            personal::forget_properties(&mut u.properties);
        }
        UserEvent::Created { .. } | UserEvent::Deleted { .. } => {}
    }
}

fn user_id_of(event: &UserEvent) -> &str {
    match event {
        UserEvent::Created { user_id, .. }
        | UserEvent::Updated { user_id, .. }
        | UserEvent::StatusUpdated { user_id, .. }
        | UserEvent::Deleted { user_id }
        | UserEvent::Forgotten { user_id } => user_id.as_str(),
    }
}

const COLUMNS: &str =
    "app_id, user_id, name, email, status, properties, created_at, updated_at, version";

fn from_row<R>(row: &R) -> Result<(Uuid, UserRecord), sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Uuid: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let properties: String = row.try_get("properties")?;
    Ok((
        row.try_get("app_id")?,
        UserRecord {
            user_id: row.try_get("user_id")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            status: row.try_get("status")?,
            properties: serde_json::from_str(&properties)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            created_at: from_micros(row.try_get("created_at")?),
            updated_at: from_micros(row.try_get("updated_at")?),
            version: row.try_get("version")?,
        },
    ))
}

pub struct UsersProjection;

type UserKey = (Uuid, String);

/// The users model rebuilt stream by stream (see `crate::bulk`).
pub struct UsersBulk;

const BULK_TABLES: &[Table] = &[Table {
    name: "users",
    columns: &[
        "app_id",
        "user_id",
        "name",
        "email",
        "status",
        "properties",
        "created_at",
        "updated_at",
        "version",
    ],
}];

impl StreamFold for UsersBulk {
    fn prefix(&self) -> &'static str {
        "user:"
    }

    fn tables(&self) -> &'static [Table] {
        BULK_TABLES
    }

    fn start(&self) -> Box<dyn Folding> {
        Box::new(UsersBulk)
    }
}

impl Folding for UsersBulk {
    fn stream(
        &mut self,
        events: &[StoredEvent],
        rows: &mut dyn Rows,
    ) -> Result<(), ProjectionError> {
        let mut user = None;
        let mut app = None;
        for event in events {
            let decoded: UserEvent = decode(event)?;
            let at = At {
                position: event.position,
                recorded_at: event.recorded_at(),
                stream_version: event.stream_version,
            };
            apply(&mut user, &decoded, at);
            app = Some(event.app_id.0);
        }
        let (Some(u), Some(app)) = (user, app) else {
            return Ok(());
        };
        let properties = serde_json::to_string(&u.properties).unwrap_or_else(|_| "{}".into());
        rows.row(
            0,
            &[
                Cell::Uuid(app),
                Cell::Text(&u.user_id),
                u.name.as_deref().into(),
                u.email.as_deref().into(),
                Cell::Text(&u.status),
                Cell::Text(&properties),
                Cell::Int(micros(u.created_at)),
                Cell::Int(micros(u.updated_at)),
                Cell::Int(u.version),
            ],
        );
        Ok(())
    }
}

impl crate::ReadModel for UsersProjection {
    fn stream_fold(&self) -> Option<std::sync::Arc<dyn StreamFold>> {
        Some(std::sync::Arc::new(UsersBulk))
    }
}

#[async_trait]
impl Projection for UsersProjection {
    fn name(&self) -> &'static str {
        "users"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["users"]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("user.") || event_type == personal::FORGOTTEN
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        let mut decoded = Vec::with_capacity(events.len());
        let mut order: Vec<UserKey> = Vec::new();
        let mut seen = HashSet::new();
        // `subject.forgotten` is written to devices' streams too.
        for event in events.iter().filter(|e| e.stream.starts_with("user:")) {
            let user = UserEvent::decode(&event.event_type, event.schema_version, &event.data)
                .map_err(|e| ProjectionError::event(event, e))?;
            let key = (event.app_id.0, user_id_of(&user).to_owned());
            if seen.insert(key.clone()) {
                order.push(key.clone());
            }
            decoded.push((key, user, event));
        }
        let before = load(tx, &order).await?;
        let mut after: HashMap<UserKey, Option<UserRecord>> = order
            .iter()
            .map(|k| (k.clone(), before.get(k).cloned()))
            .collect();
        for (key, user, event) in &decoded {
            let at = At {
                position: event.position,
                recorded_at: event.recorded_at,
                stream_version: event.stream_version,
            };
            if let Some(state) = after.get_mut(key) {
                apply(state, user, at);
            }
        }
        for key in &order {
            match (before.get(key), after.get(key).and_then(Option::as_ref)) {
                (Some(_), None) => on_tx!(tx, |c| {
                    sqlx::query("DELETE FROM users WHERE app_id = $1 AND user_id = $2")
                        .bind(key.0)
                        .bind(key.1.as_str())
                        .execute(&mut *c)
                        .await?;
                }),
                (old, Some(new)) if old != Some(new) => on_tx!(tx, |c| {
                    sqlx::query(
                        "INSERT INTO users (app_id, user_id, name, email, status, properties, created_at, \
                           updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (app_id, user_id) DO UPDATE SET name = excluded.name, email = excluded.email, \
                           status = excluded.status, properties = excluded.properties, \
                           created_at = excluded.created_at, updated_at = excluded.updated_at, version = excluded.version",
                    )
                    .bind(key.0)
                    .bind(key.1.as_str())
                    .bind(new.name.as_deref())
                    .bind(new.email.as_deref())
                    .bind(new.status.as_str())
                    .bind(serde_json::to_string(&new.properties).unwrap_or_else(|_| "{}".into()))
                    .bind(micros(new.created_at))
                    .bind(micros(new.updated_at))
                    .bind(new.version)
                    .execute(&mut *c)
                    .await?;
                }),
                _ => {}
            }
        }
        Ok(())
    }
}

async fn load(tx: &mut Tx, keys: &[UserKey]) -> Result<HashMap<UserKey, UserRecord>, sqlx::Error> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(500) {
        let head = format!("SELECT {COLUMNS} FROM users WHERE (app_id, user_id) IN (");
        on_tx!(tx, |c| {
            let mut query = QueryBuilder::new(head.as_str());
            query.push_values(chunk, |mut b, (app, user)| {
                b.push_bind(*app).push_bind(user.as_str());
            });
            query.push(")");
            for row in query.build().fetch_all(&mut *c).await? {
                let (app, user) = from_row(&row)?;
                found.insert((app, user.user_id.clone()), user);
            }
        });
    }
    Ok(found)
}

pub async fn get_user(
    db: &Db,
    app_id: AppId,
    user_id: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE app_id = $1 AND user_id = $2");
    on_db!(db, |pool| {
        let row = sqlx::query(sql.as_str())
            .bind(app_id.0)
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
        row.as_ref()
            .map(|r| from_row(r).map(|(_, u)| u))
            .transpose()
    })
}
