//! Change queues as a projection: every integration event enters each of
//! its app's queues that wants its type, in log order. Drains (see
//! [`drain`]) delete what they hand out, so unlike the other read models
//! these tables hold delivery state: rebuilding them would hand every change
//! out again (see [`Projection::rebuildable`]).

pub mod drain;
mod forget;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use domain::RecordedEvent;
use domain::change_queue::{self, ChangeQueueEvent, EventTypes};
use domain::event::DomainEvent;
use domain::personal;
use uuid::Uuid;

use crate::db::{Tx, insert_chunks, values_list};
use crate::{Projection, ProjectionError, Unseal, on_tx};

pub struct ChangeQueuesProjection {
    unseal: Arc<dyn Unseal>,
}

impl ChangeQueuesProjection {
    /// `unseal` opens the sealed values of events a backfill reads.
    pub fn new(unseal: Arc<dyn Unseal>) -> Self {
        Self { unseal }
    }
}

/// A queue as the projection needs it.
#[derive(Debug, Clone)]
struct Queue {
    name: String,
    types: EventTypes,
    starts_after: i64,
}

/// One change ready to insert.
struct Row<'a> {
    app_id: Uuid,
    queue: String,
    position: i64,
    event_id: Uuid,
    event_type: &'a str,
    kind: &'a str,
    id: &'a str,
    data: String,
    /// Microseconds since the epoch.
    recorded_at: i64,
}

impl<'a> Row<'a> {
    fn of(app_id: Uuid, queue: &Queue, event: &'a RecordedEvent) -> Self {
        let (kind, id) = subject(&event.stream);
        Self {
            app_id,
            queue: queue.name.clone(),
            position: event.position,
            event_id: event.event_id,
            event_type: &event.event_type,
            kind,
            id,
            data: event.data.to_string(),
            recorded_at: event.recorded_at.timestamp_micros(),
        }
    }
}

/// `device:d1` -> (`device`, `d1`).
pub fn subject(stream: &str) -> (&str, &str) {
    stream.split_once(':').unwrap_or((stream, ""))
}

impl crate::ReactorFeed for ChangeQueuesProjection {}

#[async_trait]
impl Projection for ChangeQueuesProjection {
    fn name(&self) -> &'static str {
        "change_queues"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["change_queues", "changes"]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type == "app.created"
            || event_type.starts_with("change_queue.")
            || change_queue::is_integration(event_type)
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        let mut queues: HashMap<Uuid, Vec<Queue>> = HashMap::new();
        let mut rows: Vec<Row> = Vec::new();
        for event in events {
            let app = event.app_id.0;
            if let std::collections::hash_map::Entry::Vacant(e) = queues.entry(app) {
                let loaded = load_queues(tx, app).await?;
                e.insert(loaded);
            }
            let app_queues = queues.entry(app).or_default();
            if event.event_type == "app.created" {
                let queue = Queue {
                    name: change_queue::DEFAULT.into(),
                    types: EventTypes::default(),
                    starts_after: event.position,
                };
                // Rows first: the queue table is written in order below.
                write_pending(tx, &mut rows).await?;
                insert_queue(tx, app, &queue, None, event).await?;
                app_queues.push(queue);
            } else if event.event_type.starts_with("change_queue.") {
                let decoded =
                    ChangeQueueEvent::decode(&event.event_type, event.schema_version, &event.data)
                        .map_err(|e| ProjectionError::event(event, e))?;
                write_pending(tx, &mut rows).await?;
                match decoded {
                    ChangeQueueEvent::Created {
                        name,
                        event_types,
                        from_position,
                        max_age_seconds,
                    } => {
                        let queue = Queue {
                            name: name.as_str().to_owned(),
                            types: event_types,
                            starts_after: from_position.unwrap_or(event.position),
                        };
                        insert_queue(tx, app, &queue, max_age_seconds, event).await?;
                        // A backfill reads the log up to this event, which is
                        // committed, before later events of the batch.
                        if queue.starts_after < event.position {
                            fill(tx, self.unseal.as_ref(), app, &queue, event.position).await?;
                        }
                        app_queues.retain(|q| q.name != queue.name);
                        app_queues.push(queue);
                    }
                    ChangeQueueEvent::Deleted { name } => {
                        delete_queue(tx, app, name.as_str()).await?;
                        app_queues.retain(|q| q.name != name.as_str());
                    }
                }
            } else {
                if event.event_type == personal::FORGOTTEN {
                    write_pending(tx, &mut rows).await?;
                    forget::forget(tx, event).await?;
                }
                for queue in app_queues.iter() {
                    if event.position > queue.starts_after && queue.types.admits(&event.event_type)
                    {
                        rows.push(Row::of(app, queue, event));
                    }
                }
            }
        }
        write_pending(tx, &mut rows).await
    }
}

async fn load_queues(tx: &mut Tx, app: Uuid) -> Result<Vec<Queue>, ProjectionError> {
    let found: Vec<(String, String, i64)> = on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT name, event_types, starts_after FROM change_queues WHERE app_id = $1",
        )
        .bind(app)
        .fetch_all(c)
        .await?
    });
    found
        .into_iter()
        .map(|(name, types, starts_after)| {
            let types: Vec<String> =
                serde_json::from_str(&types).map_err(|e| ProjectionError::Event {
                    position: starts_after,
                    reason: format!("stored event types of queue {name} are unreadable: {e}"),
                })?;
            Ok(Queue {
                name,
                types: EventTypes::parse(&types).unwrap_or_default(),
                starts_after,
            })
        })
        .collect()
}

async fn insert_queue(
    tx: &mut Tx,
    app: Uuid,
    queue: &Queue,
    max_age_seconds: Option<i64>,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let types = serde_json::to_string(queue.types.as_slice()).unwrap_or_else(|_| "[]".into());
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO change_queues (app_id, name, event_types, max_age_seconds, starts_after, expired, created_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (app_id, name) DO NOTHING",
        )
        .bind(app)
        .bind(&queue.name)
        .bind(types)
        .bind(max_age_seconds)
        .bind(queue.starts_after)
        .bind(event.recorded_at.timestamp_micros())
        .execute(c)
        .await?;
    });
    Ok(())
}

async fn delete_queue(tx: &mut Tx, app: Uuid, name: &str) -> Result<(), ProjectionError> {
    on_tx!(tx, |c| {
        sqlx::query("DELETE FROM changes WHERE app_id = $1 AND queue = $2")
            .bind(app)
            .bind(name)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM change_queues WHERE app_id = $1 AND name = $2")
            .bind(app)
            .bind(name)
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// Backfills `queue` with the app's events after its start and before `until`.
async fn fill(
    tx: &mut Tx,
    unseal: &dyn Unseal,
    app: Uuid,
    queue: &Queue,
    until: i64,
) -> Result<(), ProjectionError> {
    const PAGE: i64 = 1000;
    let mut after = queue.starts_after;
    loop {
        let found: Vec<(i64, Uuid, String, String, String, i64)> = on_tx!(tx, |c| {
            sqlx::query_as(
                "SELECT position, event_id, event_type, stream, data, recorded_at FROM events \
                 WHERE app_id = $1 AND position > $2 AND position < $3 ORDER BY position LIMIT $4",
            )
            .bind(app)
            .bind(after)
            .bind(until)
            .bind(PAGE)
            .fetch_all(c)
            .await?
        });
        let Some(last) = found.last().map(|r| r.0) else {
            return Ok(());
        };
        after = last;
        // The log's text goes into the queue as it is (it is valid JSON),
        // personal values opened.
        let mut found = found;
        for (_, _, event_type, stream, data, _) in &mut found {
            if personal::holds_personal(event_type) && personal::subject_of(stream).is_some() {
                let mut value: serde_json::Value =
                    serde_json::from_str(data).map_err(|e| ProjectionError::Event {
                        position: last,
                        reason: format!("an event's data is not JSON: {e}"),
                    })?;
                unseal
                    .open(domain::ids::AppId(app), stream, event_type, &mut value)
                    .await?;
                *data = value.to_string();
            }
        }
        let mut rows: Vec<Row> = found
            .iter()
            .filter(|(_, _, event_type, ..)| queue.types.admits(event_type))
            .map(
                |(position, event_id, event_type, stream, data, recorded_at)| {
                    let (kind, id) = subject(stream);
                    Row {
                        app_id: app,
                        queue: queue.name.clone(),
                        position: *position,
                        event_id: *event_id,
                        event_type,
                        kind,
                        id,
                        data: data.clone(),
                        recorded_at: *recorded_at,
                    }
                },
            )
            .collect();
        write_pending(tx, &mut rows).await?;
    }
}

/// Inserts the collected rows (in statements small enough for PostgreSQL)
/// and adds what each queue gained to its depth.
async fn write_pending(tx: &mut Tx, rows: &mut Vec<Row<'_>>) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    // One queue at a time (log order within it), so that each statement's
    // row count is that queue's gain.
    rows.sort_by(|a, b| (a.app_id, &a.queue, a.position).cmp(&(b.app_id, &b.queue, b.position)));
    let mut start = 0;
    while start < rows.len() {
        let end = rows[start..]
            .iter()
            .position(|r| r.app_id != rows[start].app_id || r.queue != rows[start].queue)
            .map_or(rows.len(), |n| start + n);
        let group = &rows[start..end];
        let mut gained = 0u64;
        let backend = tx.backend();
        for chunk in insert_chunks(backend, group, CHANGE_COLUMNS) {
            gained += insert_chunk(tx, chunk).await?;
        }
        let (app, queue) = (group[0].app_id, group[0].queue.as_str());
        on_tx!(tx, |c| {
            sqlx::query(
                "UPDATE change_queues SET depth = depth + $3 WHERE app_id = $1 AND name = $2",
            )
            .bind(app)
            .bind(queue)
            .bind(i64::try_from(gained).unwrap_or(i64::MAX))
            .execute(c)
            .await?;
        });
        start = end;
    }
    rows.clear();
    Ok(())
}

/// Columns of a `changes` row.
const CHANGE_COLUMNS: usize = 9;

/// Inserts one chunk of changes; returns how many were new.
async fn insert_chunk(tx: &mut Tx, chunk: &[Row<'_>]) -> Result<u64, ProjectionError> {
    let sql = format!(
        "INSERT INTO changes (app_id, queue, position, event_id, event_type, subject_kind, subject_id, data, \
         recorded_at) VALUES {} ON CONFLICT (app_id, queue, position) DO NOTHING",
        values_list(tx.backend(), chunk.len(), CHANGE_COLUMNS, "")
    );
    let inserted = on_tx!(tx, |c| {
        let mut query = sqlx::query(sql.as_str());
        for r in chunk {
            query = query
                .bind(r.app_id)
                .bind(r.queue.as_str())
                .bind(r.position)
                .bind(r.event_id)
                .bind(r.event_type)
                .bind(r.kind)
                .bind(r.id)
                .bind(r.data.as_str())
                .bind(r.recorded_at);
        }
        query.execute(c).await?.rows_affected()
    });
    Ok(inserted)
}
