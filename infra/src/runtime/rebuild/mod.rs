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
mod in_order;
use self::in_order::{apply_in_order, handled_types};
mod progress;
pub use self::progress::Progress;
use self::progress::{Run, Steps};
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
            position: 0,
            step: "",
            read: 0,
            total: 0,
            guard: &mut guard,
            progress: &mut progress,
        };
        let mut positions = Vec::with_capacity(models.len());
        for m in models {
            let position =
                prepare_checkpoint(&shadow.db, m.as_ref(), Kind::ReadModel, SystemClock.now())
                    .await?;
            positions.push((m.as_ref(), position));
        }
        run.position = lowest(&positions);
        let mut steps = Steps::starting();
        build_in_bulk(live, &shadow, store, &mut positions, batch, &mut run).await?;
        run.report(lowest(&positions)).await;
        steps.done("bulk");
        let mut positions: Vec<(&dyn Projection, i64)> = positions
            .into_iter()
            .map(|(m, p)| (m as &dyn Projection, p))
            .collect();
        let position = match (live, &shadow.location) {
            (Db::Postgres(p), Location::Schema(name)) => {
                run.begin("indexes").await;
                shadow.restore_indexes().await?;
                steps.done("indexes");
                run.begin("catch-up").await;
                catch_up(live, &shadow, store, &mut positions, batch, &mut run).await?;
                steps.done("catch-up");
                run.begin("switch").await;
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
                run.begin("indexes and copy into the live file").await;
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
                run.begin("catch-up").await;
                catch_up(live, &shadow, store, &mut positions, batch, &mut run).await?;
                steps.done("catch-up");
                run.begin("switch").await;
                let switched = staging
                    .finish(live, store, &shadow.db, &mut positions)
                    .await?;
                steps.done("switch");
                switched
            }
            _ => return Err(StoreError::Internal("shadow of another backend".into()).into()),
        };
        // All read: the last word says so, whatever the count foresaw.
        run.total = run.read;
        run.position = position.0;
        run.step = "done";
        let finished = run.at();
        (run.progress)(finished);
        Ok::<_, RunnerError>((position, run.read, steps.0))
    }
    .await;
    let ((position, longest_lock), events, steps) = match result {
        Ok(done) => done,
        Err(e) => {
            // Keep the shadow: the next run resumes from its checkpoints.
            shadow.db.close().await;
            guard.fail(&e.to_string()).await;
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
            position: 0,
            step: "",
            read: 0,
            total: 0,
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
        catch_up(live, &shadow, store, &mut positions, BATCH, &mut run).await?;
        let position = lowest(&positions);
        Ok::<_, RunnerError>((position, run.read))
    }
    .await;
    let removed = shadow.remove(live).await;
    // Nothing to resume: the row goes with the scratch copy.
    let finished = guard.finish().await;
    let (position, events) = result?;
    removed?;
    finished?;
    Ok(Rebuilt {
        projections: names,
        position,
        events,
        seconds: started.elapsed().as_secs_f64(),
        longest_lock: std::time::Duration::ZERO,
        steps: Vec::new(),
    })
}

/// The lowest of `positions` (0 for none).
pub(super) fn lowest<P>(positions: &[(P, i64)]) -> i64 {
    positions.iter().map(|(_, p)| *p).min().unwrap_or(0)
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
            let e = RunnerError::from(e);
            guard.fail(&e.to_string()).await;
            Err(e)
        }
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
    // What each model loads in bulk (none for a model past it), counted
    // before any is loaded: the run's progress has a total from the start.
    let mut bulk_loads = Vec::new();
    for (i, (model, position)) in positions.iter().enumerate() {
        let Some(fold) = model.stream_fold() else {
            continue;
        };
        // A model whose load has not begun starts one (fresh); one that
        // began goes on from its last commit.
        let (progress, fresh) = match shadow.bulk_progress(model.name()).await? {
            Some(p) if p.done => continue,
            Some(p) => (p, false),
            None if *position > 0 => continue,
            None => {
                let p = shadow::BulkProgress {
                    snapshot,
                    last: None,
                    done: false,
                };
                (p, true)
            }
        };
        run.total += bulk::count(live, &apps, fold.prefix(), &progress).await?;
        bulk_loads.push((i, fold, progress, fresh));
    }
    // The models that take just the events of their types, in log order.
    let mut in_order: Vec<(&dyn Projection, i64)> = positions
        .iter()
        .filter(|(m, p)| m.stream_fold().is_none() && *p < snapshot)
        .map(|(m, p)| (*m as &dyn Projection, *p))
        .collect();
    let types = handled_types(live, &in_order).await?;
    if let Some(lowest) = in_order.iter().map(|(_, p)| *p).min() {
        let range = Range::Types {
            app: None,
            types: types.clone().into(),
            after: lowest,
            upto: snapshot,
        };
        run.total += range.count(live).await?;
    }
    run.begin("bulk load").await;
    for (i, fold, progress, fresh) in bulk_loads {
        let (model, position) = &mut positions[i];
        if fresh {
            shadow.set_indexes_aside(model.tables()).await?;
            shadow.begin_bulk(model.name(), snapshot).await?;
        }
        bulk::load(&load, *model, fold, &progress, run).await?;
        *position = progress.snapshot;
    }
    apply_in_order(shadow, store, &mut in_order, &types, snapshot, batch, run).await?;
    for (model, position) in positions.iter_mut() {
        if let Some((_, p)) = in_order.iter().find(|(m, _)| m.name() == model.name()) {
            *position = *p;
        }
    }
    Ok(())
}

/// Step 3: batches of events from the lowest checkpoint to the head (the
/// events after it, counted first, go into the run's total).
async fn catch_up<F: FnMut(Progress)>(
    live: &Db,
    shadow: &Shadow,
    store: &dyn EventStore,
    positions: &mut [(&dyn Projection, i64)],
    batch: usize,
    run: &mut Run<'_, F>,
) -> Result<(), RunnerError> {
    let after = lowest(positions);
    run.total = run.read + Range::All { after }.count(live).await?;
    loop {
        let events = store.read_all(lowest(positions), batch).await?;
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = shadow.db.begin_relaxed().await?;
        apply_batch(&mut tx, positions, &events).await?;
        tx.commit().await?;
        run.read += events.len() as u64;
        run.report(lowest(positions)).await;
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
