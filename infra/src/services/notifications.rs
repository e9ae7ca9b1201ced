//! Notifications: create, change, launch, cancel, delete (commands); read,
//! list, a device's history, usage (reads). Launching now checks the app's
//! daily quota first: a launch that would pass it is refused (429), with
//! the time until the UTC day turns.

use chrono::{DateTime, Duration, Utc};
use domain::DomainError;
use domain::ids::AppId;
use domain::notification::message::Message;
use domain::notification::{self, Notification, NotificationCommand, Status};
use projections::notifications::query::{self, After, KeyValue, NotificationRecord, SortKey};
use projections::notifications::timeline::{self, History, HistoryFilter};
use uuid::Uuid;

use super::{Created, Reads, RequestContext};
use crate::clock::Clock;
use crate::reactors::push::sender::Sender;
use crate::reactors::push::sender::audience;
use crate::runtime::commands::CommandBus;
use crate::runtime::commands::CommandError;
use crate::store::StoreError;
use projections::db::Db;
use std::sync::Arc;

const PROJECTIONS: [&str; 2] = [
    projections::notifications::NAME,
    projections::notifications::jobs::NAME,
];

/// Seconds until the next UTC midnight.
fn until_tomorrow(now: DateTime<Utc>) -> std::time::Duration {
    let tomorrow = (now + Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);
    (tomorrow - now).to_std().unwrap_or_default()
}

/// Campaigns: created, changed, launched, read; the daily quota.
#[derive(Clone)]
pub struct Notifications {
    commands: CommandBus,
    db: Db,
    reads: Reads,
    clock: Arc<dyn Clock>,
    push: Arc<Sender>,
}

impl Notifications {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        commands: CommandBus,
        db: Db,
        reads: Reads,
        clock: Arc<dyn Clock>,
        push: Arc<Sender>,
    ) -> Self {
        Self {
            commands,
            db,
            reads,
            clock,
            push,
        }
    }
}

impl Notifications {
    /// The app's daily push quota, if it has one.
    pub async fn daily_quota(&self, app_id: AppId) -> Result<Option<i64>, CommandError> {
        Ok(projections::apps::daily_quota(&self.db, app_id).await?)
    }

    /// Today, on the clock quotas count by (UTC).
    pub fn today(&self) -> chrono::NaiveDate {
        self.clock.now().date_naive()
    }
}

impl Notifications {
    /// Refuses a launch now that would take the app past its daily quota.
    async fn check_quota(&self, app_id: AppId, message: &Message) -> Result<(), CommandError> {
        let Some(quota) = projections::apps::daily_quota(&self.db, app_id).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        let today = now.format("%Y-%m-%d").to_string();
        let used = query::usage_on(&self.db, app_id.0, &today).await?;
        let needed = audience::count(&self.db, app_id, &message.targets).await?;
        if used.saturating_add(needed) > quota {
            return Err(CommandError::TooMany {
                message: format!(
                    "launching would send {needed} push messages; {used} of the app's daily quota of {quota} are used"
                ),
                retry_after: until_tomorrow(now),
            });
        }
        Ok(())
    }

    async fn record(&self, app_id: AppId, id: Uuid) -> Result<NotificationRecord, CommandError> {
        query::get(&self.db, app_id.0, id)
            .await
            .map_err(StoreError::from)?
            .ok_or(CommandError::Domain(DomainError::NotFound("notification")))
    }

    async fn run(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: Uuid,
        command: NotificationCommand,
    ) -> Result<(), CommandError> {
        let done = self
            .commands
            .execute::<Notification>(&notification::stream(id), &ctx.metadata(app_id), command)
            .await?;
        self.reads
            .settle(
                ctx,
                &PROJECTIONS,
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        self.push.wake();
        Ok(())
    }

    pub async fn create(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        message: Message,
        launch: bool,
    ) -> Result<Created<Uuid, NotificationRecord>, CommandError> {
        message.validate()?;
        let now = self.clock.now();
        if launch && launches_now(&message, now) {
            self.check_quota(app_id, &message).await?;
        }
        let id = Uuid::now_v7();
        let command = NotificationCommand::Create {
            id,
            message,
            launch,
            now,
        };
        self.run(ctx, app_id, id, command).await?;
        let record = if ctx.wait_for_read_models {
            Some(self.record(app_id, id).await?)
        } else {
            None
        };
        Ok(Created { id, record })
    }

    /// The current message, for a partial change.
    pub async fn current(
        &self,
        app_id: AppId,
        id: Uuid,
    ) -> Result<(Status, Message), CommandError> {
        let (_, state) = self
            .commands
            .load::<Notification>(app_id, &notification::stream(id))
            .await?;
        match (state.status, state.message) {
            (Some(status), Some(message)) if status != Status::Deleted => Ok((status, message)),
            _ => Err(DomainError::NotFound("notification").into()),
        }
    }

    pub async fn update(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: Uuid,
        message: Message,
    ) -> Result<NotificationRecord, CommandError> {
        self.run(ctx, app_id, id, NotificationCommand::Update { message })
            .await?;
        self.record(app_id, id).await
    }

    pub async fn launch(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: Uuid,
    ) -> Result<NotificationRecord, CommandError> {
        let (status, message) = self.current(app_id, id).await?;
        let now = self.clock.now();
        if matches!(status, Status::Draft | Status::Queued)
            && (status == Status::Queued || launches_now(&message, now))
        {
            self.check_quota(app_id, &message).await?;
        }
        self.run(ctx, app_id, id, NotificationCommand::Launch { now })
            .await?;
        self.record(app_id, id).await
    }

    pub async fn cancel(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: Uuid,
    ) -> Result<NotificationRecord, CommandError> {
        self.run(ctx, app_id, id, NotificationCommand::Cancel)
            .await?;
        self.record(app_id, id).await
    }

    pub async fn delete(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: Uuid,
    ) -> Result<(), CommandError> {
        self.run(ctx, app_id, id, NotificationCommand::Delete).await
    }

    /// `PUT …/status`: the transitions a caller may ask for by name.
    pub async fn set_status(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        id: Uuid,
        status: Status,
    ) -> Result<NotificationRecord, CommandError> {
        match status {
            Status::Launched => self.launch(ctx, app_id, id).await,
            Status::Canceled => self.cancel(ctx, app_id, id).await,
            Status::Draft => {
                self.run(ctx, app_id, id, NotificationCommand::Unschedule)
                    .await?;
                self.record(app_id, id).await
            }
            // The notification as it was, now deleted (a later read is 404).
            Status::Deleted => {
                let mut last = self.record(app_id, id).await?;
                self.delete(ctx, app_id, id).await?;
                last.status = Status::Deleted;
                last.updated_at = self.clock.now();
                Ok(last)
            }
            other => {
                let (current, _) = self.current(app_id, id).await?;
                Err(DomainError::StateConflict(format!(
                    "the notification is {}; {} is reached by sending, not set by hand",
                    current.as_str(),
                    other.as_str()
                ))
                .into())
            }
        }
    }

    pub(crate) fn reads(&self) -> &Reads {
        &self.reads
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub async fn get(&self, app_id: AppId, id: Uuid) -> Result<NotificationRecord, CommandError> {
        self.record(app_id, id).await
    }

    /// The notification as it was at `as_of`, rebuilt from its stream.
    pub async fn get_as_of(
        &self,
        app_id: AppId,
        id: Uuid,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<NotificationRecord, CommandError> {
        let history = self
            .reads
            .history_until(app_id, &domain::notification::stream(id), as_of)
            .await?;
        projections::notifications::fold::as_of(&history)
            .map_err(CommandError::Internal)?
            .ok_or(CommandError::Domain(DomainError::NotFound("notification")))
    }

    pub async fn list(
        &self,
        app_id: AppId,
        status: Option<Status>,
        order: &[SortKey],
        after: Option<&After>,
        limit: i64,
    ) -> Result<Vec<(Vec<KeyValue>, NotificationRecord)>, CommandError> {
        Ok(query::list(&self.db, app_id.0, status, order, after, limit)
            .await
            .map_err(StoreError::from)?)
    }

    /// What became of notifications on these devices (see `timeline`).
    pub async fn history(
        &self,
        app_id: AppId,
        filter: &HistoryFilter,
    ) -> Result<History, CommandError> {
        Ok(timeline::history(&self.db, app_id.0, filter)
            .await
            .map_err(StoreError::from)?)
    }

    /// The external ids of the user's devices now.
    pub async fn devices_of_user(
        &self,
        app_id: AppId,
        user_id: &str,
    ) -> Result<Vec<String>, CommandError> {
        const PAGE: i64 = 500;
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let page =
                projections::devices::devices_of_user(&self.db, app_id, user_id, after, PAGE)
                    .await
                    .map_err(StoreError::from)?;
            ids.extend(page.iter().map(|d| d.external_id.clone()));
            match page.last() {
                Some(last) if page.len() as i64 == PAGE => after = last.device_key,
                _ => return Ok(ids),
            }
        }
    }

    pub async fn usage(
        &self,
        app_id: AppId,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, i64)>, CommandError> {
        Ok(query::usage(&self.db, app_id.0, from, to)
            .await
            .map_err(StoreError::from)?)
    }
}

fn launches_now(message: &Message, now: DateTime<Utc>) -> bool {
    message.scheduled_at.is_none_or(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn retry_after_runs_to_utc_midnight() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 23, 23, 59, 0)
            .single()
            .unwrap_or_default();
        assert_eq!(until_tomorrow(at).as_secs(), 60);
    }
}
