//! Notifications: create, change, launch, cancel, delete (commands); read,
//! list, a device's history, usage (reads). Launching now checks the app's
//! daily quota first: a launch that would pass it is refused (429), with
//! the time until the UTC day turns.

use chrono::{DateTime, Duration, Utc};
use domain::DomainError;
use domain::ids::AppId;
use domain::notification::message::Message;
use domain::notification::{self, Notification, NotificationCommand, Status};
use projections::notifications::query::{
    self, After, DeviceNotification, NotificationRecord, Order,
};
use uuid::Uuid;

use super::{RequestContext, settle};
use crate::commands::CommandError;
use crate::herald::Herald;
use crate::push::sender::audience;
use crate::store::StoreError;

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

/// Refuses a launch now that would take the app past its daily quota.
async fn check_quota(
    herald: &Herald,
    app_id: AppId,
    message: &Message,
) -> Result<(), CommandError> {
    let Some(quota) = projections::apps::daily_quota(&herald.db, app_id).await? else {
        return Ok(());
    };
    let now = herald.config.clock.now();
    let today = now.format("%Y-%m-%d").to_string();
    let used = query::usage_on(&herald.db, app_id.0, &today).await?;
    let needed = audience::count(&herald.db, app_id, &message.targets).await?;
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

fn launches_now(message: &Message, now: DateTime<Utc>) -> bool {
    message.scheduled_at.is_none_or(|at| at <= now)
}

async fn record(
    herald: &Herald,
    app_id: AppId,
    id: Uuid,
) -> Result<NotificationRecord, CommandError> {
    query::get(&herald.db, app_id.0, id)
        .await
        .map_err(StoreError::from)?
        .ok_or(CommandError::Domain(DomainError::NotFound("notification")))
}

async fn run(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: Uuid,
    command: NotificationCommand,
) -> Result<(), CommandError> {
    let done = herald
        .commands
        .execute::<Notification>(&notification::stream(id), &ctx.metadata(app_id), command)
        .await?;
    settle(
        herald,
        ctx,
        &PROJECTIONS,
        done.appended.map(|a| a.last_position),
    )
    .await;
    herald.push.wake();
    Ok(())
}

pub async fn create(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    message: Message,
    launch: bool,
) -> Result<NotificationRecord, CommandError> {
    message.validate()?;
    let now = herald.config.clock.now();
    if launch && launches_now(&message, now) {
        check_quota(herald, app_id, &message).await?;
    }
    let id = Uuid::now_v7();
    let command = NotificationCommand::Create {
        id,
        message,
        launch,
        now,
    };
    run(herald, ctx, app_id, id, command).await?;
    record(herald, app_id, id).await
}

/// The current message, for a partial change.
pub async fn current(
    herald: &Herald,
    app_id: AppId,
    id: Uuid,
) -> Result<(Status, Message), CommandError> {
    let (_, state) = herald
        .commands
        .load::<Notification>(app_id, &notification::stream(id))
        .await?;
    match (state.status, state.message) {
        (Some(status), Some(message)) if status != Status::Deleted => Ok((status, message)),
        _ => Err(DomainError::NotFound("notification").into()),
    }
}

pub async fn update(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: Uuid,
    message: Message,
) -> Result<NotificationRecord, CommandError> {
    run(
        herald,
        ctx,
        app_id,
        id,
        NotificationCommand::Update { message },
    )
    .await?;
    record(herald, app_id, id).await
}

pub async fn launch(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: Uuid,
) -> Result<NotificationRecord, CommandError> {
    let (status, message) = current(herald, app_id, id).await?;
    let now = herald.config.clock.now();
    if matches!(status, Status::Draft | Status::Queued)
        && (status == Status::Queued || launches_now(&message, now))
    {
        check_quota(herald, app_id, &message).await?;
    }
    run(herald, ctx, app_id, id, NotificationCommand::Launch { now }).await?;
    record(herald, app_id, id).await
}

pub async fn cancel(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: Uuid,
) -> Result<NotificationRecord, CommandError> {
    run(herald, ctx, app_id, id, NotificationCommand::Cancel).await?;
    record(herald, app_id, id).await
}

pub async fn delete(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: Uuid,
) -> Result<(), CommandError> {
    run(herald, ctx, app_id, id, NotificationCommand::Delete).await
}

/// `PUT …/status`: the transitions a caller may ask for by name.
pub async fn set_status(
    herald: &Herald,
    ctx: &RequestContext,
    app_id: AppId,
    id: Uuid,
    status: Status,
) -> Result<NotificationRecord, CommandError> {
    match status {
        Status::Launched => launch(herald, ctx, app_id, id).await,
        Status::Canceled => cancel(herald, ctx, app_id, id).await,
        Status::Draft => {
            run(herald, ctx, app_id, id, NotificationCommand::Unschedule).await?;
            record(herald, app_id, id).await
        }
        Status::Deleted => {
            delete(herald, ctx, app_id, id).await?;
            Err(DomainError::NotFound("notification").into())
        }
        other => {
            let (current, _) = current(herald, app_id, id).await?;
            Err(DomainError::StateConflict(format!(
                "the notification is {}; {} is reached by sending, not set by hand",
                current.as_str(),
                other.as_str()
            ))
            .into())
        }
    }
}

pub async fn get(
    herald: &Herald,
    app_id: AppId,
    id: Uuid,
) -> Result<NotificationRecord, CommandError> {
    record(herald, app_id, id).await
}

pub async fn list(
    herald: &Herald,
    app_id: AppId,
    status: Option<Status>,
    order: Order,
    after: Option<After>,
    limit: i64,
) -> Result<Vec<(i64, NotificationRecord)>, CommandError> {
    Ok(
        query::list(&herald.db, app_id.0, status, order, after, limit)
            .await
            .map_err(StoreError::from)?,
    )
}

pub async fn device_history(
    herald: &Herald,
    app_id: AppId,
    external_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeviceNotification>, CommandError> {
    Ok(
        query::device_history(&herald.db, app_id.0, external_id, before, limit)
            .await
            .map_err(StoreError::from)?,
    )
}

pub async fn usage(
    herald: &Herald,
    app_id: AppId,
    from: &str,
    to: &str,
) -> Result<Vec<(String, i64)>, CommandError> {
    Ok(query::usage(&herald.db, app_id.0, from, to)
        .await
        .map_err(StoreError::from)?)
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
