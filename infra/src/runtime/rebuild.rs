//! Rebuilding read models beside the live ones.
//!
//! The new version is built in a *shadow* copy of the projection tables (a
//! sibling PostgreSQL schema, or a separate SQLite file next to the live
//! one) from the log, while reads keep being served from the live tables and
//! the live runner keeps them current. The shadow has its own checkpoints,
//! so an interrupted rebuild resumes where it stopped. When the shadow has
//! caught up, one transaction on the live database stops the live runner
//! (it holds the live checkpoints), applies the last few events to the
//! shadow, puts the shadow tables in place of the live ones, and sets the
//! live checkpoints to the shadow's. The live runner then carries on from
//! there.
//!
//! - PostgreSQL: the shadow tables move into the live schema
//!   (`ALTER TABLE … SET SCHEMA`): the switch costs no copying.
//! - SQLite: the shadow file is attached and its rows copied into the live
//!   tables inside the switch transaction; appends wait for that copy.
//!
//! A rebuild is an operator's tool run beside (or without) a node: its
//! checkpoints are stamped by the system clock. One runs at a time per
//! database (`rebuild_guard`); a second is refused.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use domain::RecordedEvent;
use projections::db::{Db, PgDb, Tx};
use projections::{Projection, ReadModel};
use sqlx::{Connection, SqliteConnection};

use crate::clock::{Clock, SystemClock};
use crate::database::{self, DbOptions};
use crate::runtime::checkpoints::{
    analyze, prepare as prepare_checkpoint, read as read_checkpoint, write as write_checkpoint,
};
use crate::runtime::{Kind, RuntimeError as RunnerError, rebuild_guard};
use crate::store::{EventStore, StoreError, rows};

/// Events read and applied per shadow transaction.
const BATCH: usize = 5000;

/// Where a rebuild is, for progress reports.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The lowest shadow checkpoint.
    pub position: i64,
    /// The log's head when the rebuild started.
    pub head: i64,
    /// Events applied by this run so far.
    pub applied: u64,
    pub events_per_second: f64,
}

/// What a finished rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub projections: Vec<&'static str>,
    /// The position the new read models were switched in at.
    pub position: i64,
    /// Events this run read from the log (less when it resumed).
    pub events: u64,
    pub seconds: f64,
}

/// Rebuilds `projections` from the log and switches them in.
pub async fn rebuild(
    live: &Db,
    store: &dyn EventStore,
    projections: &[Arc<dyn ReadModel>],
    progress: impl FnMut(Progress),
) -> Result<Rebuilt, RunnerError> {
    rebuild_in_batches(live, store, projections, BATCH, progress).await
}

/// [`rebuild`], reading and applying `batch` events per shadow transaction.
pub async fn rebuild_in_batches(
    live: &Db,
    store: &dyn EventStore,
    models: &[Arc<dyn ReadModel>],
    batch: usize,
    progress: impl FnMut(Progress),
) -> Result<Rebuilt, RunnerError> {
    let projections: Vec<Arc<dyn Projection>> = models
        .iter()
        .map(|m| m.clone() as Arc<dyn Projection>)
        .collect();
    build(live, store, &projections, batch, progress, true).await
}

/// Builds `projections` from the log into a scratch copy and throws it
/// away: how long a rebuild takes, for any projection (reactor feeds too,
/// since nothing is switched in). For benchmarks and capacity planning.
pub async fn dry_run(
    live: &Db,
    store: &dyn EventStore,
    projections: &[Arc<dyn Projection>],
) -> Result<Rebuilt, RunnerError> {
    build(live, store, projections, BATCH, |_| {}, false).await
}

async fn build(
    live: &Db,
    store: &dyn EventStore,
    projections: &[Arc<dyn Projection>],
    batch: usize,
    mut progress: impl FnMut(Progress),
    switch: bool,
) -> Result<Rebuilt, RunnerError> {
    let started = Instant::now();
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    let mut guard = rebuild_guard::take(live, &names).await?;
    let shadow = match Shadow::open(live).await {
        Ok(shadow) => shadow,
        Err(e) => {
            guard.release().await;
            return Err(e.into());
        }
    };
    let result = async {
        let mut positions = Vec::with_capacity(projections.len());
        for p in projections {
            let position =
                prepare_checkpoint(&shadow.db, p.as_ref(), Kind::ReadModel, SystemClock.now())
                    .await?;
            positions.push((p.as_ref(), position));
        }
        let head = store.head().await?;
        let mut applied = 0u64;
        loop {
            let lowest = positions.iter().map(|(_, p)| *p).min().unwrap_or(0);
            let events = store.read_all(lowest, batch.max(1)).await?;
            if events.is_empty() {
                break;
            }
            let mut tx = shadow.db.begin_relaxed().await?;
            apply_batch(&mut tx, &mut positions, &events).await?;
            tx.commit().await?;
            applied += events.len() as u64;
            let now = Progress {
                position: positions.iter().map(|(_, p)| *p).min().unwrap_or(0),
                head,
                applied,
                events_per_second: applied as f64 / started.elapsed().as_secs_f64().max(1e-9),
            };
            if switch {
                guard.report(now).await;
            }
            progress(now);
        }
        for (projection, _) in &positions {
            analyze(&shadow.db, *projection).await;
        }
        if !switch {
            let position = positions.iter().map(|(_, p)| *p).min().unwrap_or(0);
            return Ok::<_, RunnerError>((position, applied));
        }
        let position = match (live, &shadow.location) {
            (Db::Postgres(p), Location::Schema(name)) => {
                switch_postgres(p, store, name, &mut positions).await?
            }
            (Db::Sqlite(_), Location::File(path)) => {
                switch_sqlite(live, store, &shadow.db, path, &mut positions).await?
            }
            _ => return Err(StoreError::Internal("shadow of another backend".into()).into()),
        };
        Ok::<_, RunnerError>((position, applied))
    }
    .await;
    let (position, events) = match result {
        Ok(done) => done,
        Err(e) => {
            // Keep the shadow: the next run resumes from its checkpoints.
            shadow.db.close().await;
            guard.release().await;
            return Err(e);
        }
    };
    let removed = shadow.remove(live).await;
    if switch {
        guard.finish().await?;
    } else {
        guard.release().await;
    }
    removed?;
    if switch {
        for p in projections {
            analyze(live, p.as_ref()).await;
        }
    }
    Ok(Rebuilt {
        projections: projections.iter().map(|p| p.name()).collect(),
        position,
        events,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Gives each projection the events of `events` past its own position (and
/// of the types it handles), then moves its checkpoint to the end of the
/// batch, all in `tx`. Returns how many events each projection applied.
async fn apply_batch(
    tx: &mut Tx,
    projections: &mut [(&dyn Projection, i64)],
    events: &[RecordedEvent],
) -> Result<Vec<u64>, RunnerError> {
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(vec![0; projections.len()]);
    };
    let mut applied = Vec::with_capacity(projections.len());
    for (projection, position) in projections.iter_mut() {
        let relevant: Vec<_> = events
            .iter()
            .filter(|e| e.position > *position && projection.handles(&e.event_type))
            .collect();
        if !relevant.is_empty() {
            projection.apply(tx, &relevant).await?;
        }
        applied.push(relevant.len() as u64);
        if last > *position {
            write_checkpoint(
                tx,
                projection.name(),
                projection.version(),
                last,
                SystemClock.now(),
            )
            .await?;
            *position = last;
        }
    }
    Ok(applied)
}

enum Location {
    Schema(String),
    File(PathBuf),
}

struct Shadow {
    db: Db,
    location: Location,
}

impl Shadow {
    /// Opens (creating and migrating if new) the shadow of `live`.
    async fn open(live: &Db) -> Result<Self, StoreError> {
        let options = DbOptions {
            max_connections: 2,
            ..DbOptions::default()
        };
        let (db, location) = match live {
            Db::Postgres(p) => {
                let name = format!("{}_rebuild", p.schema);
                sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&name)))
                    .execute(&p.pool)
                    .await?;
                let connect = (*p.pool.connect_options())
                    .clone()
                    .options([("search_path", name.as_str())]);
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .connect_with(connect)
                    .await?;
                let db = Db::Postgres(PgDb {
                    pool,
                    schema: name.clone(),
                });
                (db, Location::Schema(name))
            }
            Db::Sqlite(_) => {
                let dir = shadow_dir(live).await?;
                let db = database::open_sqlite(&dir, &options).await?;
                (db, Location::File(dir.join(database::SQLITE_FILE)))
            }
        };
        if let Err(e) = database::migrate(&db).await {
            db.close().await;
            return Err(e);
        }
        Ok(Self { db, location })
    }

    async fn remove(self, live: &Db) -> Result<(), StoreError> {
        self.db.close().await;
        match (&self.location, live) {
            (Location::Schema(name), Db::Postgres(p)) => {
                sqlx::query(&format!("DROP SCHEMA {} CASCADE", quote(name)))
                    .execute(&p.pool)
                    .await?;
            }
            (Location::File(path), _) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `<live file>.rebuild/`, next to the live SQLite file.
async fn shadow_dir(live: &Db) -> Result<PathBuf, StoreError> {
    let Db::Sqlite(s) = live else {
        return Err(StoreError::Internal("not SQLite".into()));
    };
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&s.reader)
            .await?;
    Ok(PathBuf::from(format!("{file}.rebuild")))
}

/// Stops the live runner, finishes the shadow, moves its tables into the
/// live schema and hands its checkpoints over: one transaction.
async fn switch_postgres(
    live: &PgDb,
    store: &dyn EventStore,
    shadow: &str,
    positions: &mut [(&dyn Projection, i64)],
) -> Result<i64, RunnerError> {
    let live_schema = quote(&live.schema);
    let shadow_schema = quote(shadow);
    let mut tx = live.pool.begin().await?;
    positions.sort_by_key(|(p, _)| p.name());
    // The live runner locks every checkpoint row in name order for each
    // batch; holding these stops it (for these projections) until commit.
    let mut wrapped = Tx::Pg(tx);
    for (projection, _) in positions.iter() {
        read_checkpoint(&mut wrapped, projection.name()).await?;
    }
    let Tx::Pg(t) = wrapped else { unreachable!() };
    tx = t;
    loop {
        let lowest = positions.iter().map(|(_, p)| *p).min().unwrap_or(0);
        let found = sqlx::query(rows::READ_AFTER)
            .bind(lowest)
            .bind(BATCH as i64)
            .fetch_all(&mut *tx)
            .await?;
        let mut events = found
            .iter()
            .map(rows::decode)
            .collect::<Result<Vec<RecordedEvent>, _>>()?;
        if events.is_empty() {
            break;
        }
        store.open(&mut events).await?;
        set_search_path(&mut tx, &shadow_schema).await?;
        let mut wrapped = Tx::Pg(tx);
        apply_batch(&mut wrapped, positions, &events).await?;
        let Tx::Pg(t) = wrapped else { unreachable!() };
        tx = t;
        set_search_path(&mut tx, &live_schema).await?;
    }
    let position = positions.iter().map(|(_, p)| *p).min().unwrap_or(0);
    for (projection, _) in positions.iter() {
        for table in projection.tables() {
            sqlx::query(&format!("DROP TABLE {live_schema}.{table}"))
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "ALTER TABLE {shadow_schema}.{table} SET SCHEMA {live_schema}"
            ))
            .execute(&mut *tx)
            .await?;
        }
    }
    let mut wrapped = Tx::Pg(tx);
    for (projection, _) in positions.iter() {
        write_checkpoint(
            &mut wrapped,
            projection.name(),
            projection.version(),
            position,
            SystemClock.now(),
        )
        .await?;
    }
    wrapped.commit().await?;
    Ok(position)
}

async fn set_search_path(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    schema: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SET LOCAL search_path TO {schema}"))
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Takes the live write lock, finishes the shadow, copies its rows over the
/// live tables and hands its checkpoints over: one transaction.
async fn switch_sqlite(
    live: &Db,
    store: &dyn EventStore,
    shadow: &Db,
    shadow_file: &std::path::Path,
    positions: &mut [(&dyn Projection, i64)],
) -> Result<i64, RunnerError> {
    let Db::Sqlite(s) = live else {
        return Err(StoreError::Internal("not SQLite".into()).into());
    };
    let _in_process = s.write_lock.clone().lock_owned().await;
    let mut conn = SqliteConnection::connect_with(&s.relaxed.connect_options()).await?;
    sqlx::query("ATTACH DATABASE $1 AS rebuild")
        .bind(shadow_file.to_string_lossy().as_ref())
        .execute(&mut conn)
        .await?;
    let result = async {
        // Deferred, so only the live file is locked: the shadow stays
        // writable through its own connections until the copy.
        let mut tx = conn.begin().await?;
        sqlx::query("UPDATE main.projection_checkpoints SET updated_at = updated_at")
            .execute(&mut *tx)
            .await?;
        loop {
            let lowest = positions.iter().map(|(_, p)| *p).min().unwrap_or(0);
            // Unqualified names resolve to `main` before attached files.
            let found = sqlx::query(rows::READ_AFTER)
            .bind(lowest)
            .bind(BATCH as i64)
            .fetch_all(&mut *tx)
            .await?;
            let mut events =
                found.iter().map(rows::decode).collect::<Result<Vec<RecordedEvent>, _>>()?;
            if events.is_empty() {
                break;
            }
            store.open(&mut events).await?;
            let mut shadow_tx = shadow.begin_relaxed().await?;
            apply_batch(&mut shadow_tx, positions, &events).await?;
            shadow_tx.commit().await?;
        }
        let position = positions.iter().map(|(_, p)| *p).min().unwrap_or(0);
        for (projection, _) in positions.iter() {
            for table in projection.tables() {
                sqlx::query(&format!("DELETE FROM main.{table}"))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&format!(
                    "INSERT INTO main.{table} SELECT * FROM rebuild.{table}"
                ))
                .execute(&mut *tx)
                .await?;
            }
            // An offline operator tool: the switch is stamped by the system clock.
            let now = SystemClock.now().timestamp_micros();
            sqlx::query(
                "INSERT INTO main.projection_checkpoints (name, version, position, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
                 position = excluded.position, updated_at = excluded.updated_at",
            )
            .bind(projection.name())
            .bind(projection.version())
            .bind(position)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok::<_, RunnerError>(position)
    }
    .await;
    let _ = sqlx::query("DETACH DATABASE rebuild")
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    result
}
