//! Change queues: create and delete (commands), list and drain (reads).

use chrono::Utc;
use domain::change_queue::{self, ChangeQueue, ChangeQueueCommand, EventTypes, QueueName};
use domain::ids::AppId;
use projections::change_queues::drain::{self, Change, DrainError, QueueInfo};

use super::{RequestContext, settle};
use crate::commands::CommandError;
use crate::herald::Herald;
use crate::store::StoreError;

/// The projection that feeds the queues.
pub const PROJECTION: &str = "change_queues";
/// Drains hand out at most this many changes.
pub const MAX_DRAIN: i64 = 500;

pub struct NewQueue {
    pub name: QueueName,
    pub event_types: EventTypes,
    pub from_position: Option<i64>,
    pub max_age_seconds: Option<i64>,
}

/// Creates a queue; returns it as listed once the projection has it.
pub async fn create(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    queue: NewQueue,
) -> Result<QueueInfo, CommandError> {
    let name = queue.name.clone();
    let asked = (
        queue.event_types.clone(),
        queue.from_position,
        queue.max_age_seconds,
    );
    let done = herald
        .commands
        .execute::<ChangeQueue>(
            &change_queue::stream(&name),
            &ctx.metadata(app_id),
            ChangeQueueCommand::Create {
                name: queue.name,
                event_types: queue.event_types,
                from_position: queue.from_position,
                max_age_seconds: queue.max_age_seconds,
            },
        )
        .await?;
    settle(
        herald,
        ctx,
        &[PROJECTION],
        done.appended.map(|a| a.last_position),
    )
    .await;
    if let Some(listed) = find(herald, app_id, name.as_str()).await? {
        return Ok(listed);
    }
    // Not in the feed yet (the client asked not to wait, or the feed is
    // behind): the queue as the command made it, with nothing in it yet.
    let (event_types, from_position, max_age_seconds) = asked;
    let (position, created_at) = match done.appended {
        Some(a) => (a.last_position, a.recorded_at),
        None => (
            done.history.last().map_or(0, |e| e.position),
            done.history.last().map_or_else(Utc::now, |e| e.recorded_at),
        ),
    };
    Ok(QueueInfo {
        name: name.as_str().to_owned(),
        event_types: event_types.as_slice().to_vec(),
        max_age_seconds,
        starts_after: from_position.unwrap_or(position),
        expired: 0,
        depth: 0,
        oldest_at: None,
        created_at,
    })
}

pub async fn delete(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    name: QueueName,
) -> Result<(), CommandError> {
    let done = herald
        .commands
        .execute::<ChangeQueue>(
            &change_queue::stream(&name),
            &ctx.metadata(app_id),
            ChangeQueueCommand::Delete { name },
        )
        .await?;
    settle(
        herald,
        ctx,
        &[PROJECTION],
        done.appended.map(|a| a.last_position),
    )
    .await;
    Ok(())
}

pub async fn list(herald: &Herald, app_id: AppId) -> Result<Vec<QueueInfo>, CommandError> {
    Ok(drain::list(&herald.db, app_id.0)
        .await
        .map_err(StoreError::from)?)
}

pub async fn find(
    herald: &Herald,
    app_id: AppId,
    name: &str,
) -> Result<Option<QueueInfo>, CommandError> {
    Ok(list(herald, app_id)
        .await?
        .into_iter()
        .find(|q| q.name == name))
}

/// Hands out and deletes the oldest `limit` changes; see [`drain::drain`].
pub async fn take<T>(
    herald: &Herald,
    app_id: AppId,
    name: &str,
    limit: i64,
    respond: impl FnOnce(&[Change], i64) -> Result<T, String>,
) -> Result<Option<T>, CommandError> {
    match drain::drain(
        &herald.db,
        app_id.0,
        name,
        limit.clamp(1, MAX_DRAIN),
        Utc::now(),
        respond,
    )
    .await
    {
        Ok(t) => Ok(Some(t)),
        Err(DrainError::NotFound) => Ok(None),
        Err(DrainError::Database(e)) => Err(StoreError::from(e).into()),
        Err(DrainError::Abandoned(reason)) => Err(CommandError::Internal(reason)),
    }
}
