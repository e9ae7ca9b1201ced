//! Step 1 for the models that do not fold stream by stream (notifications,
//! flags, apps…): the events of their types, in log order.

use domain::RecordedEvent;
use projections::Projection;
use projections::db::Db;

use super::shadow::Shadow;
use super::{Progress, Run, apply_batch};
use crate::clock::{Clock, SystemClock};
use crate::runtime::RuntimeError as RunnerError;
use crate::runtime::checkpoints::write as write_checkpoint;
use crate::store::scan::Range;
use crate::store::{EventStore, StoreError};

/// The models that do not fold stream by stream take just the events of
/// their types (few, in any log), in log order, up to `snapshot`.
pub(super) async fn apply_in_order<F: FnMut(Progress)>(
    shadow: &Shadow,
    store: &dyn EventStore,
    models: &mut [(&dyn Projection, i64)],
    types: &[String],
    snapshot: i64,
    batch: usize,
    run: &mut Run<'_, F>,
) -> Result<(), RunnerError> {
    let Some(lowest) = models.iter().map(|(_, p)| *p).min() else {
        return Ok(());
    };
    if !types.is_empty() {
        let mut scan = store.scan(Range::Types {
            app: None,
            types: types.to_vec().into(),
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
    let position = super::lowest(models);
    run.report(position).await;
    Ok(())
}

/// The event types in the log that any of `models` handles (none when
/// there are no models).
pub(super) async fn handled_types(
    live: &Db,
    models: &[(&dyn Projection, i64)],
) -> Result<Vec<String>, StoreError> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<String> = projections::on_db!(live, |pool| {
        sqlx::query_scalar("SELECT DISTINCT event_type FROM events")
            .fetch_all(pool)
            .await?
    });
    Ok(all
        .into_iter()
        .filter(|t| models.iter().any(|(m, _)| m.handles(t)))
        .collect())
}
