//! An operator's way out for a projection stopped for an app (see
//! `faults`): skip the event it cannot apply, or retry it, then catch the
//! app up to the projection's checkpoint. Runs on the projection's own task,
//! between steps.

use domain::RecordedEvent;
use domain::ids::AppId;

use super::faults::{self, Action};
use super::follower::{BATCH, Follower, Log};
use super::{RuntimeError, checkpoints};

/// Acts on an operator's request for `app`: records a skipped event, then
/// applies the app's events from the fault up to the checkpoint, in
/// batches, each with the fault's progress. Runs on the projection's own
/// task, between steps; on PostgreSQL the checkpoint and fault rows are
/// locked for each batch, so two nodes never replay the same events.
pub(super) async fn replay(f: &Follower, log: &Log, app: AppId) -> Result<(), RuntimeError> {
    loop {
        let mut tx = log.db.begin_relaxed().await?;
        let upto = checkpoints::read(&mut tx, f.name())
            .await?
            .map_or(0, |(_, p)| p);
        let Some(mut fault) = faults::locked(&mut tx, f.name(), app).await? else {
            return Ok(());
        };
        match fault.action {
            None => return Ok(()),
            Some(Action::Skip) => {
                faults::record_skipped(&mut tx, f.name(), &fault, log.clock.now()).await?;
                tracing::warn!(projection = f.name(), app_id = %app, position = fault.position,
                    "event skipped by an operator");
                fault.position += 1;
                fault.action = Some(Action::Retry);
                faults::update(&mut tx, f.name(), &fault).await?;
                tx.commit().await?;
                continue;
            }
            Some(Action::Retry) => {}
        }
        let page = log.store.read_app(app, fault.position - 1, BATCH).await?;
        let full = page.len() == BATCH;
        let todo: Vec<&RecordedEvent> = page
            .iter()
            .filter(|e| e.position <= upto && f.projection.handles(&e.event_type))
            .collect();
        let reached_end = !full || page.last().is_some_and(|e| e.position >= upto);
        let next = page
            .last()
            .map_or(upto + 1, |e| e.position + 1)
            .min(upto + 1);
        let applied = match todo.as_slice() {
            [] => Ok(()),
            events => f
                .projection
                .apply(&mut tx, events)
                .await
                .map_err(RuntimeError::from),
        };
        match applied {
            Ok(()) if reached_end => {
                faults::clear(&mut tx, f.name(), app).await?;
                tx.commit().await?;
                if let Ok(mut faults) = f.faults.write() {
                    faults.remove(&app);
                }
                tracing::info!(projection = f.name(), app_id = %app, "projection resumed for this app");
                return Ok(());
            }
            Ok(()) => {
                fault.position = next;
                faults::update(&mut tx, f.name(), &fault).await?;
                tx.commit().await?;
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) if todo.len() > 1 => {
                // Find the event that fails: replay this page one by one.
                drop(tx);
                return replay_one_by_one(f, log, app, &todo, e).await;
            }
            Err(e) => {
                drop(tx);
                let event = todo.first().copied();
                return fail_again(f, log, app, event, &e).await;
            }
        }
    }
}

async fn replay_one_by_one(
    f: &Follower,
    log: &Log,
    app: AppId,
    events: &[&RecordedEvent],
    first_error: RuntimeError,
) -> Result<(), RuntimeError> {
    for event in events {
        let mut tx = log.db.begin_relaxed().await?;
        let Some(mut fault) = faults::locked(&mut tx, f.name(), app).await? else {
            return Ok(());
        };
        if event.position < fault.position {
            continue;
        }
        if let Err(e) = f.projection.apply(&mut tx, &[event]).await {
            drop(tx);
            return fail_again(f, log, app, Some(event), &e.into()).await;
        }
        fault.position = event.position + 1;
        faults::update(&mut tx, f.name(), &fault).await?;
        tx.commit().await?;
    }
    // Each alone applied: the batch's failure was not theirs. Try again later.
    Err(first_error)
}

/// A retried event failed again: the fault stays, with the new error, and
/// waits for the operator.
async fn fail_again(
    f: &Follower,
    log: &Log,
    app: AppId,
    event: Option<&RecordedEvent>,
    error: &RuntimeError,
) -> Result<(), RuntimeError> {
    let mut tx = log.db.begin_relaxed().await?;
    let Some(mut fault) = faults::locked(&mut tx, f.name(), app).await? else {
        return Ok(());
    };
    if let Some(event) = event {
        fault.position = event.position;
        fault.event_type = event.event_type.clone();
    }
    fault.error = error.to_string();
    fault.action = None;
    faults::update(&mut tx, f.name(), &fault).await?;
    tx.commit().await?;
    tracing::error!(projection = f.name(), app_id = %app, position = fault.position, error = %error,
        "the retried event failed again; the projection stays stopped for this app");
    Ok(())
}
