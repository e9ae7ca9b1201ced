//! Forgetting a user (an erasure request): their personal data, and that of
//! every device ever linked to them, becomes unreadable for good, while
//! the log keeps every event and every hash.
//!
//! In order, each step safe to repeat (a retried forget finishes the job):
//! 1. destroy the subjects' data keys (`privacy::KeyRing::forget`): from
//!    here on nobody can open their sealed values;
//! 2. record `subject.forgotten` in each subject's stream (unless nothing
//!    was written there since the last forget): the read models, the
//!    change queues and the webhook messages replace what they hold of the
//!    subject with the placeholder as they apply it;
//! 3. wait for those models, then clear what is kept beside the log:
//!    idempotent replies that name the subjects, the push sender's copies
//!    of their tokens; on SQLite, fold the write-ahead log into the file so
//!    that no old page keeps the values.

use domain::device::{Device, DeviceCommand};
use domain::ids::{AppId, ExternalId, UserId};
use domain::personal;
use domain::user::{self, User, UserCommand};
use domain::{DomainError, RecordedEvent};
use projections::db::Db;

use super::RequestContext;
use super::users::Users;
use crate::idempotency::{Idempotency, Scope};
use crate::privacy::sealing;
use crate::runtime::commands::CommandError;
use crate::store::StoreError;

/// The read models and feeds that hold a subject's personal values.
const HOLDERS: [&str; 4] = ["users", "devices", "change_queues", "webhooks"];

/// What a forget did.
#[derive(Debug, Clone)]
pub struct Forgetting {
    pub user_id: UserId,
    /// `user:<id>` and `device:<external id>` of every device ever linked.
    pub subjects: Vec<String>,
    /// Data keys destroyed now (0 when repeated).
    pub keys_destroyed: u64,
    /// `subject.forgotten` events recorded now (0 when repeated).
    pub events_recorded: usize,
    /// Events of these subjects written before personal values were sealed:
    /// they still hold the values in clear in the log's table (every read
    /// masks them; see docs/privacy.md).
    pub plaintext_events: u64,
}

impl Users {
    pub async fn forget(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        user_id: UserId,
    ) -> Result<Forgetting, CommandError> {
        let user_stream = user::stream(&user_id);
        let (history, _) = self.commands.load::<User>(app_id, &user_stream).await?;
        if history.is_empty() {
            return Err(DomainError::NotFound("user").into());
        }
        let devices = crate::store::filter::device_streams_of_user(
            &self.db,
            app_id,
            user_id.as_str(),
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
        )
        .await?;
        let mut subjects = vec![user_stream.clone()];
        subjects.extend(devices.iter().cloned());
        let keys_destroyed = self
            .personal_log
            .personal()
            .keys()
            .forget(app_id, &subjects)
            .await?;

        let metadata = ctx.metadata(app_id);
        let done = self
            .commands
            .execute::<User>(
                &user_stream,
                &metadata,
                UserCommand::Forget {
                    user_id: user_id.clone(),
                },
            )
            .await?;
        let mut recorded = done.event_ids.len();
        let mut position = done.appended.as_ref().map(|a| a.last_position);
        let mut caused = metadata.clone();
        caused.causation_id = done.event_ids.first().copied();
        for stream in &devices {
            let Some(external_id) = stream
                .strip_prefix("device:")
                .and_then(|id| ExternalId::parse(id.to_owned()).ok())
            else {
                continue;
            };
            let forgot = self
                .commands
                .execute::<Device>(stream, &caused, DeviceCommand::Forget { external_id })
                .await?;
            recorded += forgot.event_ids.len();
            position = forgot.appended.map(|a| a.last_position).or(position);
        }
        self.reads.settle(ctx, &HOLDERS, position).await;
        clear_beside_the_log(&self.db, &self.idempotency, app_id, &user_id, &devices).await?;
        let plaintext_events = self.plaintext_events(app_id, &subjects).await?;
        Ok(Forgetting {
            user_id,
            subjects,
            keys_destroyed,
            events_recorded: recorded,
            plaintext_events,
        })
    }

    /// Events of `subjects` whose personal values are stored in clear.
    async fn plaintext_events(
        &self,
        app_id: AppId,
        subjects: &[String],
    ) -> Result<u64, CommandError> {
        let stored = self.personal_log.stored();
        let mut count = 0;
        for subject in subjects {
            let events = stored.load_stream(app_id, subject).await?;
            count += events.iter().filter(|e| holds_clear_values(e)).count() as u64;
        }
        Ok(count)
    }
}

/// Whether a stored event holds a personal value that is not sealed.
pub fn holds_clear_values(event: &RecordedEvent) -> bool {
    personal::any(&event.event_type, &event.data, |v| !sealing::is_sealed(v))
}

/// Clears what is kept of the subjects outside the log and its models.
async fn clear_beside_the_log(
    db: &Db,
    idempotency: &Idempotency,
    app_id: AppId,
    user_id: &UserId,
    devices: &[String],
) -> Result<(), StoreError> {
    let scope = app_id.0.to_string();
    let mut needles = vec![serde_json::Value::from(user_id.as_str()).to_string()];
    let external_ids: Vec<&str> = devices
        .iter()
        .filter_map(|s| s.strip_prefix("device:"))
        .collect();
    needles.extend(
        external_ids
            .iter()
            .map(|id| serde_json::Value::from(*id).to_string()),
    );
    // Replies kept for retried requests: those that name a subject go (a
    // retry with the same key runs again).
    idempotency.forget_naming(Scope(&scope), &needles).await?;
    let mut tx = db.begin().await?;
    for external_id in &external_ids {
        projections::on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE notification_audience SET push_token = $1 WHERE external_id = $2 \
                 AND notification_id IN (SELECT notification_id FROM notifications WHERE app_id = $3)",
            )
            .bind(personal::PLACEHOLDER)
            .bind(*external_id)
            .bind(app_id.0)
            .execute(&mut *c)
            .await?;
        });
    }
    tx.commit().await?;
    if let Db::Sqlite(sqlite) = db {
        // Old page images in the write-ahead log still hold the values.
        let _guard = sqlite.write_lock.lock().await;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&sqlite.writer)
            .await?;
    }
    Ok(())
}
