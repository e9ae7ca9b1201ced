//! Users: profile and status, their devices, and deletion (which unlinks
//! their devices).

use domain::device::{self, Device, DeviceCommand};
use domain::ids::{AppId, ExternalId, UserId};
use domain::user::{self, Profile, User, UserCommand, UserEvent, UserStatus};
use domain::{DomainEvent, RecordedEvent};
use projections::devices::{self as devices_read, At, DeviceRecord};
use projections::users::{self as read, UserRecord};

use super::{Reads, RequestContext};
use crate::runtime::commands::CommandBus;
use crate::runtime::commands::{CommandError, Executed};
use projections::db::Db;

/// Pages of a user's devices read while unlinking them.
const DEVICE_PAGE: i64 = 500;

/// A user as the API shows it.
#[derive(Debug, Clone)]
pub struct UserView {
    pub user: UserRecord,
    pub device_count: i64,
}

#[derive(Debug, Clone)]
pub struct UserOutcome {
    pub user: Option<UserView>,
    pub created: bool,
}

/// Users, their status and their devices.
#[derive(Clone)]
pub struct Users {
    pub(crate) commands: CommandBus,
    pub(crate) db: Db,
    pub(crate) reads: Reads,
    /// The log as stored and the subjects' keys, for forgetting.
    pub(crate) personal_log: super::Log,
    /// Kept answers, some of which may name a person to forget.
    pub(crate) idempotency: crate::idempotency::Idempotency,
}

impl Users {
    pub fn new(
        commands: CommandBus,
        db: Db,
        reads: Reads,
        personal_log: super::Log,
        idempotency: crate::idempotency::Idempotency,
    ) -> Self {
        Self {
            commands,
            db,
            reads,
            personal_log,
            idempotency,
        }
    }
}

impl Users {
    pub async fn upsert(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        user_id: UserId,
        profile: Profile,
    ) -> Result<UserOutcome, CommandError> {
        self.run(
            ctx,
            app_id,
            &user_id,
            UserCommand::Upsert {
                user_id: user_id.clone(),
                profile,
            },
        )
        .await
    }

    pub async fn set_status(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        user_id: UserId,
        status: UserStatus,
        reason: Option<String>,
    ) -> Result<UserOutcome, CommandError> {
        self.run(
            ctx,
            app_id,
            &user_id,
            UserCommand::SetStatus {
                user_id: user_id.clone(),
                status,
                reason,
            },
        )
        .await
    }

    async fn run(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        user_id: &UserId,
        command: UserCommand,
    ) -> Result<UserOutcome, CommandError> {
        let done = self
            .commands
            .execute::<User>(&user::stream(user_id), &ctx.metadata(app_id), command)
            .await?;
        self.reads
            .settle(
                ctx,
                &["users"],
                done.appended.as_ref().map(|a| a.last_position),
            )
            .await;
        let created = done
            .events
            .iter()
            .any(|e| matches!(e, UserEvent::Created { .. }));
        let user = match view_after(&done)? {
            Some(user) => {
                let device_count =
                    devices_read::count_of_user(&self.db, app_id, user_id.as_str()).await?;
                Some(UserView { user, device_count })
            }
            None => None,
        };
        Ok(UserOutcome { user, created })
    }

    pub async fn get(
        &self,
        app_id: AppId,
        user_id: &UserId,
    ) -> Result<Option<UserView>, CommandError> {
        let Some(user) = read::get_user(&self.db, app_id, user_id.as_str()).await? else {
            return Ok(None);
        };
        let device_count = devices_read::count_of_user(&self.db, app_id, user_id.as_str()).await?;
        Ok(Some(UserView { user, device_count }))
    }

    /// The user as they were at `as_of`, rebuilt from their stream, with
    /// the devices linked to them then (each device that ever named them,
    /// rebuilt from its own stream up to `as_of`).
    pub async fn get_as_of(
        &self,
        app_id: AppId,
        user_id: &UserId,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<UserView>, CommandError> {
        let history = self
            .reads
            .history_until(app_id, &user::stream(user_id), as_of)
            .await?;
        let Some(user) = fold(&history)? else {
            return Ok(None);
        };
        let streams =
            crate::store::filter::device_streams_of_user(&self.db, app_id, user_id.as_str(), as_of)
                .await?;
        let mut device_count = 0;
        for stream in streams {
            let history = self.reads.history_until(app_id, &stream, as_of).await?;
            let device = super::devices::fold(&history)?.into_record();
            if device.is_some_and(|d| d.user_id.as_deref() == Some(user_id.as_str())) {
                device_count += 1;
            }
        }
        Ok(Some(UserView { user, device_count }))
    }

    /// Deletes the user, then unlinks each of their devices (each unlink is an
    /// event on that device, caused by the deletion).
    pub async fn delete(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        user_id: UserId,
    ) -> Result<(), CommandError> {
        let done = self
            .commands
            .execute::<User>(
                &user::stream(&user_id),
                &ctx.metadata(app_id),
                UserCommand::Delete {
                    user_id: user_id.clone(),
                },
            )
            .await?;
        let Some(appended) = done.appended else {
            return Ok(());
        };
        // Every link made before the deletion is in the read model once it has
        // caught up with the deletion.
        self.reads
            .settle(ctx, &["devices", "users"], Some(appended.last_position))
            .await;
        let mut caused = ctx.clone();
        caused.causation_id = done.event_ids.first().copied();
        let mut after = 0;
        let mut last_position = appended.last_position;
        loop {
            let page = devices_read::devices_of_user(
                &self.db,
                app_id,
                user_id.as_str(),
                after,
                DEVICE_PAGE,
            )
            .await?;
            for d in &page {
                let external_id = ExternalId::parse(d.external_id.clone())?;
                let command = DeviceCommand::UnlinkDeletedUser {
                    external_id: external_id.clone(),
                    user_id: user_id.clone(),
                };
                let unlinked = self
                    .commands
                    .execute::<Device>(
                        &device::stream(&external_id),
                        &caused.metadata(app_id),
                        command,
                    )
                    .await?;
                if let Some(a) = unlinked.appended {
                    last_position = last_position.max(a.last_position);
                }
            }
            match page.last() {
                Some(last) if page.len() as i64 == DEVICE_PAGE => after = last.device_key,
                _ => break,
            }
        }
        self.reads
            .settle(ctx, &["devices"], Some(last_position))
            .await;
        Ok(())
    }

    /// A user's devices (any user id, known or not), in registration order.
    pub async fn devices(
        &self,
        app_id: AppId,
        user_id: &UserId,
        after_key: i64,
        limit: i64,
    ) -> Result<Vec<DeviceRecord>, CommandError> {
        Ok(
            devices_read::devices_of_user(&self.db, app_id, user_id.as_str(), after_key, limit)
                .await?,
        )
    }
}

fn view_after(done: &Executed<User>) -> Result<Option<UserRecord>, CommandError> {
    let mut user = fold(&done.history)?;
    if let Some(appended) = &done.appended {
        let count = done.events.len() as i64;
        for (i, event) in done.events.iter().enumerate() {
            let i = i as i64;
            read::apply(
                &mut user,
                event,
                At {
                    position: appended.last_position - count + 1 + i,
                    recorded_at: appended.recorded_at,
                    stream_version: appended.stream_version - count + 1 + i,
                },
            );
        }
    }
    Ok(user)
}

/// Folds a user stream from its first event.
pub fn fold(history: &[RecordedEvent]) -> Result<Option<UserRecord>, CommandError> {
    let mut user = None;
    for recorded in history {
        let event = UserEvent::decode(
            &recorded.event_type,
            recorded.schema_version,
            &recorded.data,
        )
        .map_err(|e| CommandError::Internal(e.to_string()))?;
        read::apply(
            &mut user,
            &event,
            At {
                position: recorded.position,
                recorded_at: recorded.recorded_at,
                stream_version: recorded.stream_version,
            },
        );
    }
    Ok(user)
}
