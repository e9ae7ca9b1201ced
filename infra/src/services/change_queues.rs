//! Change queues: create and delete (commands), list and drain (reads).

use domain::DomainError;
use domain::change_queue::{self, ChangeQueue, ChangeQueueCommand, EventTypes, QueueName};
use domain::ids::AppId;
use projections::change_queues::drain::{self, Change, DrainError, QueueInfo};

use super::{Reads, RequestContext};
use crate::clock::Clock;
use crate::runtime::commands::CommandBus;
use crate::runtime::commands::CommandError;
use crate::store::StoreError;
use projections::db::Db;
use std::sync::Arc;

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

/// Change queues: created, deleted, listed, drained.
#[derive(Clone)]
pub struct ChangeQueues {
    commands: CommandBus,
    db: Db,
    reads: Reads,
    clock: Arc<dyn Clock>,
}

impl ChangeQueues {
    #[allow(clippy::too_many_arguments)]
    pub fn new(commands: CommandBus, db: Db, reads: Reads, clock: Arc<dyn Clock>) -> Self {
        Self {
            commands,
            db,
            reads,
            clock,
        }
    }
}

impl ChangeQueues {
    /// Creates a queue; returns it as listed once the projection has it.
    pub async fn create(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        queue: NewQueue,
    ) -> Result<QueueInfo, CommandError> {
        if let Some(from) = queue.from_position {
            // A backfill from past the head would wait for positions that
            // are not there yet and stay empty meanwhile: surely a mistake.
            let head = self.commands.store().head().await?;
            if from > head {
                return Err(DomainError::invalid(
                    "from_position",
                    format!(
                        "must be a position the log has reached (now {head}); leave it out to \
                         start with the changes to come"
                    ),
                )
                .into());
            }
        }
        let name = queue.name.clone();
        let asked = (
            queue.event_types.clone(),
            queue.from_position,
            queue.max_age_seconds,
        );
        let done = self
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
        self.reads
            .settle(
                ctx,
                &[PROJECTION],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        if let Some(listed) = self.find(app_id, name.as_str()).await? {
            return Ok(listed);
        }
        // Not in the feed yet (the client asked not to wait, or the feed is
        // behind): the queue as the command made it, with nothing in it yet.
        let (event_types, from_position, max_age_seconds) = asked;
        let (position, created_at) = match done.appended {
            Some(a) => (a.last_position, a.recorded_at),
            None => (
                done.history.last().map_or(0, |e| e.position),
                done.history
                    .last()
                    .map_or_else(|| self.clock.now(), |e| e.recorded_at),
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
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        name: QueueName,
    ) -> Result<(), CommandError> {
        let done = self
            .commands
            .execute::<ChangeQueue>(
                &change_queue::stream(&name),
                &ctx.metadata(app_id),
                ChangeQueueCommand::Delete { name },
            )
            .await?;
        self.reads
            .settle(
                ctx,
                &[PROJECTION],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        Ok(())
    }

    pub async fn list(&self, app_id: AppId) -> Result<Vec<QueueInfo>, CommandError> {
        Ok(drain::list(&self.db, app_id.0)
            .await
            .map_err(StoreError::from)?)
    }

    pub async fn find(&self, app_id: AppId, name: &str) -> Result<Option<QueueInfo>, CommandError> {
        Ok(self
            .list(app_id)
            .await?
            .into_iter()
            .find(|q| q.name == name))
    }

    /// Hands out and deletes the oldest `limit` changes; see [`drain::drain`].
    pub async fn take<T>(
        &self,
        app_id: AppId,
        name: &str,
        limit: i64,
        respond: impl FnOnce(&[Change], i64) -> Result<T, String>,
    ) -> Result<Option<T>, CommandError> {
        match drain::drain(
            &self.db,
            app_id.0,
            name,
            limit.clamp(1, MAX_DRAIN),
            self.clock.now(),
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
}
