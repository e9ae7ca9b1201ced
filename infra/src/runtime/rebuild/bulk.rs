//! The bulk load of a read model that folds stream by stream
//! (`projections::bulk`): its streams read from the log app by app, each
//! whole and in version order, up to a snapshot position; folded and
//! written by a [`StreamWriter`] of the shadow's backend; committed every
//! so many events together with the last stream written, so that an
//! interrupted load resumes after it.

use std::sync::Arc;

use domain::StoredEvent;
use domain::ids::AppId;
use projections::Projection;
use projections::bulk::{StreamFold, Table};
use projections::db::Db;

use super::shadow::{BulkProgress, Location, Shadow};
use super::{Progress, Run};
use super::{pg_writer::PgWriter, sqlite_writer::SqliteWriter};
use crate::clock::Clock;
use crate::runtime::RuntimeError;
use crate::store::EventStore;
use crate::store::scan::Range;

/// Streams handed to the writer at a time.
const STREAMS_PER_HANDOFF: usize = 512;

/// What a commit records.
#[derive(Debug, Clone)]
pub(super) enum Mark {
    /// Every stream up to this one (of this app) is written.
    Stream { app: AppId, stream: String },
    /// The load is complete: the model stands at `snapshot` (microseconds
    /// `at` stamp its checkpoint).
    Done { snapshot: i64, at: i64 },
}

/// Folds streams into a shadow's tables.
#[async_trait::async_trait]
pub(super) trait StreamWriter: Send {
    /// Folds and writes these streams (each one's events, in order).
    async fn streams(&mut self, streams: Vec<Vec<StoredEvent>>) -> Result<(), RuntimeError>;

    /// Makes everything written so far durable, with `mark`.
    async fn commit(&mut self, mark: Mark) -> Result<(), RuntimeError>;
}

/// `INSERT INTO t (a, b) VALUES (?, ?)`, with `placeholder` for each value.
pub(super) fn insert_sql(table: &Table, placeholder: &str) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        table.columns.join(", "),
        vec![placeholder; table.columns.len()].join(", ")
    )
}

/// What a load needs besides the model.
pub(super) struct Load<'a> {
    pub shadow: &'a Shadow,
    pub store: &'a dyn EventStore,
    pub apps: &'a [AppId],
    /// Events between commits.
    pub per_commit: usize,
}

/// Loads `projection` (which folds with `fold`) from `progress` on,
/// reporting to `run` after each commit.
pub(super) async fn load<F: FnMut(Progress)>(
    load: &Load<'_>,
    projection: &dyn Projection,
    fold: Arc<dyn StreamFold>,
    progress: &BulkProgress,
    run: &mut Run<'_, F>,
) -> Result<(), RuntimeError> {
    let name = projection.name();
    let mut writer: Box<dyn StreamWriter> = match (&load.shadow.db, &load.shadow.location) {
        (Db::Sqlite(_), Location::File(path)) => Box::new(SqliteWriter::start(
            path.clone(),
            fold.clone(),
            name,
            projection.version(),
        )),
        (Db::Postgres(p), _) => Box::new(PgWriter::start(
            p.pool.clone(),
            fold.clone(),
            name,
            projection.version(),
        )),
        _ => {
            return Err(
                crate::store::StoreError::Internal("a shadow of another kind".into()).into(),
            );
        }
    };
    let mut since_commit = 0usize;
    for app in load.apps {
        let Some(after_stream) = resumes_after(app, &progress.last) else {
            continue;
        };
        let mut scan = load.store.scan(Range::Streams {
            app: *app,
            prefix: fold.prefix(),
            after_stream,
            upto: progress.snapshot,
        });
        let mut current = String::new();
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut ready: Vec<Vec<StoredEvent>> = Vec::new();
        while let Some(page) = scan.next().await {
            for event in page? {
                run.read += 1;
                if event.stream != current {
                    // The stream before is whole.
                    if !events.is_empty() {
                        ready.push(std::mem::take(&mut events));
                    }
                    if since_commit >= load.per_commit && !current.is_empty() {
                        hand_over(load.store, writer.as_mut(), &mut ready).await?;
                        writer
                            .commit(Mark::Stream {
                                app: *app,
                                stream: current.clone(),
                            })
                            .await?;
                        run.tick().await;
                        since_commit = 0;
                    } else if ready.len() >= STREAMS_PER_HANDOFF {
                        hand_over(load.store, writer.as_mut(), &mut ready).await?;
                    }
                    current.clone_from(&event.stream);
                }
                since_commit += 1;
                if projection.handles(&event.event_type) {
                    events.push(event);
                }
            }
            run.tick().await;
        }
        if !events.is_empty() {
            ready.push(events);
        }
        hand_over(load.store, writer.as_mut(), &mut ready).await?;
    }
    writer
        .commit(Mark::Done {
            snapshot: progress.snapshot,
            at: crate::clock::SystemClock.now().timestamp_micros(),
        })
        .await?;
    run.tick().await;
    Ok(())
}

/// How many events [`load`] reads for a model that folds the streams
/// under `prefix`, from where `progress` left off.
pub(super) async fn count(
    live: &Db,
    apps: &[AppId],
    prefix: &'static str,
    progress: &BulkProgress,
) -> Result<u64, RuntimeError> {
    let mut total = 0;
    for app in apps {
        let Some(after_stream) = resumes_after(app, &progress.last) else {
            continue;
        };
        let range = Range::Streams {
            app: *app,
            prefix,
            after_stream,
            upto: progress.snapshot,
        };
        total += range.count(live).await?;
    }
    Ok(total)
}

/// Where a load resumed from `last` (the last stream committed) goes on
/// in `app`: `None` for an app it has done, `Some(None)` for one it has
/// not begun.
fn resumes_after(app: &AppId, last: &Option<(AppId, String)>) -> Option<Option<String>> {
    match last {
        Some((last_app, _)) if app < last_app => None,
        Some((last_app, stream)) if app == last_app => Some(Some(stream.clone())),
        _ => Some(None),
    }
}

/// Opens the sealed values of `ready` (as every read of the store does)
/// and hands the streams to the writer.
async fn hand_over(
    store: &dyn EventStore,
    writer: &mut dyn StreamWriter,
    ready: &mut Vec<Vec<StoredEvent>>,
) -> Result<(), RuntimeError> {
    if ready.is_empty() {
        return Ok(());
    }
    let mut streams = std::mem::take(ready);
    open_sealed(store, &mut streams).await?;
    writer.streams(streams).await
}

/// Events holding sealed values get them opened: parsed, opened by the
/// store, written back as text. Events without any are left untouched.
async fn open_sealed(
    store: &dyn EventStore,
    streams: &mut [Vec<StoredEvent>],
) -> Result<(), RuntimeError> {
    let sealed: Vec<&mut StoredEvent> = streams
        .iter_mut()
        .flatten()
        .filter(|e| e.data.contains("\"$sealed\""))
        .collect();
    if sealed.is_empty() {
        return Ok(());
    }
    let mut recorded = sealed
        .iter()
        .map(|e| {
            e.to_recorded()
                .map_err(|e| crate::store::StoreError::Internal(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    store.open(&mut recorded).await?;
    for (event, opened) in sealed.into_iter().zip(recorded) {
        event.data = opened.data.to_string();
    }
    Ok(())
}
