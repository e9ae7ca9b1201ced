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
    find(herald, app_id, name.as_str())
        .await?
        .ok_or_else(|| CommandError::Internal("the new queue is not visible yet".into()))
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
