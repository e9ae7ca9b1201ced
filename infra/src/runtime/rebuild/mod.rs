//! Rebuilding read models beside the live ones.
//!
//! The new version is built in a *shadow* (`shadow`: a sibling PostgreSQL
//! schema, or a SQLite file next to the live one) while reads keep being
//! served from the live tables and the live runner keeps them current. The
//! shadow has its own checkpoints, so an interrupted rebuild resumes where
//! it stopped. It is built in three steps:
//!
//! 1. **Bulk**, up to a snapshot of the log's head. A model that folds
//!    stream by stream (`projections::bulk`: devices, users) reads its
//!    streams whole in stream order and writes each stream's rows once, to
//!    tables whose secondary indexes are set aside meanwhile (`bulk`; rows
//!    bound into prepared statements on SQLite, `COPY` on PostgreSQL). The
//!    other models apply just the events of their types, in log order.
//! 2. **Indexes** set aside are built, each in one pass.
//! 3. **Catch-up** from the snapshot, event batches applied as the live
//!    runner applies them; then the switch (`switch`): one transaction on
//!    the live database stops the live runner, applies the last few events
//!    to the shadow, puts its tables in place of the live ones and hands
//!    its checkpoints over. The live runner carries on from there.
//!
//! A rebuild is an operator's tool run beside (or without) a node: its
//! checkpoints are stamped by the system clock. One runs at a time per
//! database (`rebuild_guard`); a second is refused.

mod bulk;
mod pg_writer;
mod shadow;
pub use self::shadow::discard_stopped;
mod sqlite_writer;
mod switch;
mod switch_sqlite;

use std::sync::Arc;
use std::time::Instant;

use domain::RecordedEvent;
use projections::db::{Db, Tx};
use projections::{Projection, ReadModel};

use self::shadow::{Location, Shadow};
use crate::clock::{Clock, SystemClock};
use crate::runtime::checkpoints::{
    analyze, prepare as prepare_checkpoint, write as write_checkpoint,
};
use crate::runtime::{Kind, RuntimeError as RunnerError, rebuild_guard};
use crate::store::scan::Range;
use crate::store::{EventStore, StoreError};

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
    /// The longest the switch held the live database's write lock (or, on
    /// PostgreSQL, the live checkpoints): what appends (or the live
    /// runner) waited at most.
    pub longest_lock: std::time::Duration,
    /// How long each step took, in order (`bulk`, `indexes`, `copy` on
    /// SQLite, `catch-up`, `switch`): where a rebuild's time goes.
    pub steps: Vec<(&'static str, std::time::Duration)>,
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

/// [`rebuild`], applying `batch` events per shadow transaction in the
/// catch-up (and committing a bulk load every `batch` × 20 events).
pub async fn rebuild_in_batches(
    live: &Db,
    store: &dyn EventStore,
    models: &[Arc<dyn ReadModel>],
    batch: usize,
    mut progress: impl FnMut(Progress),
) -> Result<Rebuilt, RunnerError> {
    let started = Instant::now();
    let names: Vec<&str> = models.iter().map(|p| p.name()).collect();
    let (mut guard, shadow) = guarded_shadow(live, &names).await?;
    let batch = batch.max(1);
    let result = async {
        let mut run = Run {
            started,
            head: store.head().await?,
            read: 0,
            guard: &mut guard,
            progress: &mut progress,
        };
        // Seen from its first moment, before anything is read.
        run.tick(0).await;
        let mut positions = Vec::with_capacity(models.len());
        for m in models {
            let position =
                prepare_checkpoint(&shadow.db, m.as_ref(), Kind::ReadModel, SystemClock.now())
                    .await?;
            positions.push((m.as_ref(), position));
        }
        let mut steps = Steps::starting();
        build_in_bulk(live, &shadow, store, &mut positions, batch, &mut run).await?;
        steps.done("bulk");
        let mut positions: Vec<(&dyn Projection, i64)> = positions
            .into_iter()
            .map(|(m, p)| (m as &dyn Projection, p))
            .collect();
        let position = match (live, &shadow.location) {
            (Db::Postgres(p), Location::Schema(name)) => {
                shadow.restore_indexes().await?;
                steps.done("indexes");
                catch_up(&shadow, store, &mut positions, batch, &mut run).await?;
                steps.done("catch-up");
                let held = Instant::now();
                let position = switch::switch_postgres(p, store, name, &mut positions).await?;
                steps.done("switch");
                (position, held.elapsed())
            }
            (Db::Sqlite(_), Location::File(path)) => {
                // The live file's copy and the shadow's indexes are built
                // side by side: two files, two cores.
                let tables: Vec<&'static str> = models
                    .iter()
                    .flat_map(|m| m.tables().iter().copied())
                    .collect();
                let side_by_side = Instant::now();
                let (indexed, staging) = tokio::join!(
                    async {
                        let indexed = shadow.restore_indexes().await;
                        (indexed, side_by_side.elapsed())
                    },
                    switch_sqlite::Staging::prepare(live, &shadow.db, path, &tables)
                );
                let (indexed, indexes_took) = indexed;
                indexed?;
                let staging = staging?;
                steps.took("indexes", indexes_took);
                steps.done("copy");
                catch_up(&shadow, store, &mut positions, batch, &mut run).await?;
                steps.done("catch-up");
                let switched = staging
                    .finish(live, store, &shadow.db, &mut positions)
                    .await?;
                steps.done("switch");
                switched
            }
            _ => return Err(StoreError::Internal("shadow of another backend".into()).into()),
        };
        Ok::<_, RunnerError>((position, run.read, steps.0))
    }
    .await;
    let ((position, longest_lock), events, steps) = match result {
        Ok(done) => done,
        Err(e) => {
            // Keep the shadow: the next run resumes from its checkpoints.
            shadow.db.close().await;
            guard.release().await;
            return Err(e);
        }
    };
    let removed = shadow.remove(live).await;
    // Under the guard still: a second rebuild is refused until all is done.
    for m in models {
        analyze(live, m.as_ref()).await;
    }
    guard.finish().await?;
    removed?;
    Ok(Rebuilt {
        projections: names,
        position,
        events,
        seconds: started.elapsed().as_secs_f64(),
        longest_lock,
        steps,
    })
}

/// Applies `projections` to a scratch copy from the start of the log, in
/// batches as the live runner does (no bulk load), and throws the copy
/// away: how long the incremental path takes for any projection (reactor
/// feeds too, since nothing is switched in). For benchmarks.
pub async fn dry_run(
    live: &Db,
    store: &dyn EventStore,
    projections: &[Arc<dyn Projection>],
) -> Result<Rebuilt, RunnerError> {
    let started = Instant::now();
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    let (mut guard, shadow) = guarded_shadow(live, &names).await?;
    let mut ignore = |_: Progress| {};
    let result = async {
        let mut run = Run {
            started,
            head: store.head().await?,
            read: 0,
            guard: &mut guard,
            progress: &mut ignore,
        };
        let mut positions = Vec::with_capacity(projections.len());
        for p in projections {
            let position =
                prepare_checkpoint(&shadow.db, p.as_ref(), Kind::ReadModel, SystemClock.now())
                    .await?;
            positions.push((p.as_ref(), position));
        }
        catch_up(&shadow, store, &mut positions, BATCH, &mut run).await?;
        let position = positions.iter().map(|(_, p)| *p).min().unwrap_or(0);
        Ok::<_, RunnerError>((position, run.read))
    }
    .await;
    let removed = shadow.remove(live).await;
    guard.release().await;
    let (position, events) = result?;
    removed?;
    Ok(Rebuilt {
        projections: names,
        position,
        events,
        seconds: started.elapsed().as_secs_f64(),
        longest_lock: std::time::Duration::ZERO,
        steps: Vec::new(),
    })
}

/// The steps of a rebuild and how long each took.
struct Steps(Vec<(&'static str, std::time::Duration)>, Instant);

impl Steps {
    /// The first step begins now.
    fn starting() -> Self {
        Self(Vec::new(), Instant::now())
    }

    /// `step` ended now (it began when the step before it ended).
    fn done(&mut self, step: &'static str) {
        let now = Instant::now();
        self.0.push((step, now - self.1));
        self.1 = now;
    }

    /// `step` ran beside the next one and took `took`.
    fn took(&mut self, step: &'static str, took: std::time::Duration) {
        self.0.push((step, took));
    }
}

/// A rebuild under way: what it has read, and who hears of it.
pub(super) struct Run<'a, F: FnMut(Progress)> {
    started: Instant,
    head: i64,
    read: u64,
    guard: &'a mut rebuild_guard::Guard,
    progress: &'a mut F,
}

/// Takes the rebuild guard of `names` (a second rebuild is refused) and
/// opens the shadow beside `live`; the guard is given back if that fails.
async fn guarded_shadow(
    live: &Db,
    names: &[&str],
) -> Result<(rebuild_guard::Guard, Shadow), RunnerError> {
    let guard = rebuild_guard::take(live, names).await?;
    match Shadow::open(live).await {
        Ok(shadow) => Ok((guard, shadow)),
        Err(e) => {
            guard.release().await;
            Err(e.into())
        }
    }
}

impl<F: FnMut(Progress)> Run<'_, F> {
    /// Tells the operator (and the rebuilds table) how far it is: the
    /// lowest checkpoint, or while loading in bulk the events read so far.
    async fn report(&mut self, position: i64) {
        let now = self.at(position);
        self.guard.report(now).await;
        (self.progress)(now);
    }

    fn at(&self, position: i64) -> Progress {
        Progress {
            position,
            head: self.head,
            applied: self.read,
            events_per_second: self.read as f64 / self.started.elapsed().as_secs_f64().max(1e-9),
        }
    }

    /// While loading in bulk: the events read so far, at most `snapshot`.
    async fn report_read(&mut self, snapshot: i64) {
        let read = i64::try_from(self.read).unwrap_or(i64::MAX);
        self.report(read.min(snapshot)).await;
    }

    /// Between the bulk load's commits: the rebuilds table only (at most
    /// every second), so that `GET /v1/admin/projections` and a refused
    /// second rebuild see it move.
    async fn tick(&mut self, snapshot: i64) {
        let read = i64::try_from(self.read).unwrap_or(i64::MAX);
        let now = self.at(read.min(snapshot));
        self.guard.report(now).await;
    }
}

/// Step 1: every model not yet past it is loaded up to a snapshot (the
/// head now, or the one a resumed load started with).
async fn build_in_bulk<F: FnMut(Progress)>(
    live: &Db,
    shadow: &Shadow,
    store: &dyn EventStore,
    positions: &mut [(&dyn ReadModel, i64)],
    batch: usize,
    run: &mut Run<'_, F>,
) -> Result<(), RunnerError> {
    let snapshot = run.head;
    let apps = crate::audit::apps_in_log(live).await?;
    let load = bulk::Load {
        shadow,
        store,
        apps: &apps,
        per_commit: batch.saturating_mul(20),
    };
    for (model, position) in positions.iter_mut() {
        let Some(fold) = model.stream_fold() else {
            continue;
        };
        let progress = match shadow.bulk_progress(model.name()).await? {
            Some(p) if p.done => continue,
            Some(p) => p,
            None if *position > 0 => continue,
            None => {
                shadow.set_indexes_aside(model.tables()).await?;
                shadow.begin_bulk(model.name(), snapshot).await?;
                shadow::BulkProgress {
                    snapshot,
                    last: None,
                    done: false,
                }
            }
        };
        bulk::load(&load, *model, fold, &progress, run).await?;
        *position = progress.snapshot;
    }
    let mut in_order: Vec<(&dyn Projection, i64)> = positions
        .iter()
        .filter(|(m, p)| m.stream_fold().is_none() && *p < snapshot)
        .map(|(m, p)| (*m as &dyn Projection, *p))
        .collect();
    apply_in_order(live, shadow, store, &mut in_order, snapshot, batch, run).await?;
    for (model, position) in positions.iter_mut() {
        if let Some((_, p)) = in_order.iter().find(|(m, _)| m.name() == model.name()) {
            *position = *p;
        }
    }
    Ok(())
}

/// The models that do not fold stream by stream take just the events of
/// their types (few, in any log), in log order, up to `snapshot`.
async fn apply_in_order<F: FnMut(Progress)>(
    live: &Db,
    shadow: &Shadow,
    store: &dyn EventStore,
    models: &mut [(&dyn Projection, i64)],
    snapshot: i64,
    batch: usize,
    run: &mut Run<'_, F>,
) -> Result<(), RunnerError> {
    let Some(lowest) = models.iter().map(|(_, p)| *p).min() else {
        return Ok(());
    };
    let types: Vec<String> = event_types(live)
        .await?
        .into_iter()
        .filter(|t| models.iter().any(|(m, _)| m.handles(t)))
        .collect();
    if !types.is_empty() {
        let mut scan = store.scan(Range::Types {
            app: None,
            types: types.into(),
            after: lowest,
            upto: snapshot,
        });
        let mut pending: Vec<RecordedEvent> = Vec::new();
        while let Some(page) = scan.next().await {
            for event in page? {
                pending.push(
                    event
                        .to_recorded()
                        .map_err(|e| StoreError::Internal(e.to_string()))?,
                );
                if pending.len() >= batch {
                    apply_stretch(shadow, store, models, &mut pending, run).await?;
                }
            }
        }
        apply_stretch(shadow, store, models, &mut pending, run).await?;
    }
    // Every event up to the snapshot is in, whatever the last one was.
    let mut tx = shadow.db.begin_relaxed().await?;
    for (model, position) in models.iter_mut() {
        if *position < snapshot {
            write_checkpoint(
                &mut tx,
                model.name(),
                model.version(),
                snapshot,
                SystemClock.now(),
            )
            .await?;
            *position = snapshot;
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn apply_stretch<F: FnMut(Progress)>(
    shadow: &Shadow,
    store: &dyn EventStore,
    models: &mut [(&dyn Projection, i64)],
    events: &mut Vec<RecordedEvent>,
    run: &mut Run<'_, F>,
) -> Result<(), RunnerError> {
    if events.is_empty() {
        return Ok(());
    }
    store.open(events).await?;
    let mut tx = shadow.db.begin_relaxed().await?;
    apply_batch(&mut tx, models, events).await?;
    tx.commit().await?;
    run.read += events.len() as u64;
    events.clear();
    let position = models.iter().map(|(_, p)| *p).min().unwrap_or(0);
    run.report(position).await;
    Ok(())
}

/// Every event type in the log.
async fn event_types(live: &Db) -> Result<Vec<String>, StoreError> {
    Ok(projections::on_db!(live, |pool| {
        sqlx::query_scalar("SELECT DISTINCT event_type FROM events")
            .fetch_all(pool)
            .await?
    }))
}

/// Step 3: batches of events from the lowest checkpoint to the head.
async fn catch_up<F: FnMut(Progress)>(
    shadow: &Shadow,
    store: &dyn EventStore,
    positions: &mut [(&dyn Projection, i64)],
    batch: usize,
    run: &mut Run<'_, F>,
) -> Result<(), RunnerError> {
    loop {
        let lowest = positions.iter().map(|(_, p)| *p).min().unwrap_or(0);
        let events = store.read_all(lowest, batch).await?;
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = shadow.db.begin_relaxed().await?;
        apply_batch(&mut tx, positions, &events).await?;
        tx.commit().await?;
        run.read += events.len() as u64;
        let position = positions.iter().map(|(_, p)| *p).min().unwrap_or(0);
        run.report(position).await;
    }
}

/// Gives each projection the events of `events` past its own position (and
/// of the types it handles), then moves its checkpoint to the end of the
/// batch, all in `tx`. Returns how many events each projection applied.
pub(super) async fn apply_batch(
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
