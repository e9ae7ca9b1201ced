//! Forgetting a user (an erasure request): their personal data, and that of
//! every device ever linked to them, becomes unreadable for good, while
//! the log keeps every event and every hash. A user the app knows only
//! from its devices (registered with their `user_id` or linked to them,
//! never created through the users API) is forgotten all the same: what
//! those devices held while they were theirs is theirs.
//!
//! In order, each step safe to repeat (a retried forget finishes the job):
//! 1. destroy the subjects' data keys (`privacy::KeyRing::destroy`): from
//!    here on nobody can open their sealed values; of a device, only the
//!    key generations written while it was the user's (a device passing to
//!    another owner starts a new one, see `privacy::Personal::seal`);
//! 2. record `subject.forgotten` in each subject's stream (unless nothing
//!    of theirs was written there since the last forget), with nothing
//!    written between the destruction and it: the read models, the change
//!    queues and the webhook messages replace what they hold of the
//!    subject with the placeholder as they apply it. A device that has
//!    passed to someone else since it was the user's gets one that names
//!    them as its former owner and what it still carries from their time
//!    (`domain::device::Carried`): only that is replaced, so the models
//!    applying it equal a rebuild, which opens those values no more, and
//!    the new owner's values stay;
//! 3. wait for those models, then clear what is kept beside the log:
//!    idempotent replies that name the subjects, the push sender's copies
//!    of their tokens; on SQLite, fold the write-ahead log into the file so
//!    that no old page keeps the values.

use std::collections::BTreeSet;

use domain::device::{Device, DeviceCommand};
use domain::ids::{AppId, ExternalId, UserId};
use domain::personal;
use domain::user::{self, User, UserCommand};
use domain::{Aggregate, DomainError, Metadata, RecordedEvent};
use projections::db::Db;

use super::RequestContext;
use super::users::Users;
use crate::idempotency::{Idempotency, Scope};
use crate::privacy::sealing;
use crate::runtime::commands::{CommandError, Executed};
use crate::store::StoreError;

/// The read models and feeds that hold a subject's personal values.
const HOLDERS: [&str; 4] = ["users", "devices", "change_queues", "webhooks"];

/// Rounds of destroying a subject's keys and recording its forget, at most,
/// while other writers keep appending to its stream in between.
const ATTEMPTS: usize = 16;

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
        let devices = crate::store::filter::device_streams_of_user(
            &self.db,
            app_id,
            user_id.as_str(),
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
        )
        .await?;
        // Known from a device's link alone, they have data here all the
        // same; a user id the app never saw has none.
        if history.is_empty() && devices.is_empty() {
            return Err(DomainError::NotFound("user").into());
        }
        let mut subjects = vec![user_stream.clone()];
        subjects.extend(devices.iter().cloned());

        let metadata = ctx.metadata(app_id);
        let (mut keys_destroyed, done, _) = self
            .forget_subject::<User>(
                app_id,
                &user_stream,
                &metadata,
                UserCommand::Forget {
                    user_id: user_id.clone(),
                    linked_devices: !devices.is_empty(),
                },
                None,
            )
            .await?;
        let mut recorded = done.event_ids.len();
        let mut position = done.appended.as_ref().map(|a| a.last_position);
        let mut caused = metadata.clone();
        caused.causation_id = done.event_ids.first().copied();
        // The devices still theirs: what is kept beside the log of the
        // others is someone else's now.
        let mut theirs = Vec::new();
        for stream in &devices {
            let Some(external_id) = stream
                .strip_prefix("device:")
                .and_then(|id| ExternalId::parse(id.to_owned()).ok())
            else {
                continue;
            };
            let (destroyed, forgot, still_theirs) = self
                .forget_subject::<Device>(
                    app_id,
                    stream,
                    &caused,
                    DeviceCommand::Forget {
                        external_id,
                        user_id: user_id.clone(),
                    },
                    Some(&user_id),
                )
                .await?;
            keys_destroyed += destroyed;
            recorded += forgot.event_ids.len();
            position = forgot.appended.map(|a| a.last_position).or(position);
            if still_theirs {
                theirs.push(stream.clone());
            }
        }
        self.reads.settle(ctx, &HOLDERS, position).await;
        clear_beside_the_log(&self.db, &self.idempotency, app_id, &user_id, &theirs).await?;
        let plaintext_events = self.plaintext_events(app_id, &subjects).await?;
        Ok(Forgetting {
            user_id,
            subjects,
            keys_destroyed,
            events_recorded: recorded,
            plaintext_events,
        })
    }

    /// Destroys the keys of a subject, then records `subject.forgotten` in
    /// its stream with nothing written in between: the append expects the
    /// version read before the keys were destroyed, and if another writer
    /// got in (maybe under a generation made after the destruction) both
    /// run again. So every value before the marker is sealed under a
    /// destroyed key. Meanwhile this node's writers seal under the key they
    /// remember, destroyed, rather than make new ones; it is dropped once
    /// the marker is written.
    ///
    /// `device_of`: the stream is a device of this user: only the
    /// generations written while it was theirs are destroyed, and the
    /// device decides what it records (all of it while it is theirs, else
    /// what it still carries from their time). A device that has passed to
    /// someone else is recorded too: the marker is what makes the models
    /// replace what it carried, every node drop its copies of the destroyed
    /// keys, and the command bus its kept history of the stream, opened.
    /// Answers the keys destroyed, the command's outcome, and whether the
    /// subject is still the user's (always, but for a device).
    async fn forget_subject<A>(
        &self,
        app_id: AppId,
        stream: &str,
        metadata: &Metadata,
        command: A::Command,
        device_of: Option<&UserId>,
    ) -> Result<(u64, Executed<A>, bool), CommandError>
    where
        A: Aggregate,
        A::Command: Clone,
    {
        let keys = self.personal_log.personal().keys();
        let mut destroyed = 0;
        let mut theirs = true;
        let outcome = async {
            for _ in 0..ATTEMPTS {
                let events = self
                    .personal_log
                    .stored()
                    .load_stream(app_id, stream)
                    .await?;
                let version = events.last().map_or(0, |e| e.stream_version);
                let generations = device_of.map(|user_id| {
                    let (generations, still) = device_era(&events, user_id.as_str());
                    theirs = still;
                    generations
                });
                if generations.as_ref().is_none_or(|g| !g.is_empty()) {
                    destroyed += keys.destroy(app_id, stream, generations.as_deref()).await?;
                }
                match self
                    .commands
                    .execute_at::<A>(stream, metadata, command.clone(), version)
                    .await
                {
                    Err(CommandError::Conflict) => continue,
                    done => return done,
                }
            }
            Err(CommandError::Conflict)
        }
        .await;
        // This node reads the subject's keys again from here on.
        keys.evict(app_id, stream);
        Ok((destroyed, outcome?, theirs))
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

/// Of a device's stream as stored: the key generations of the values
/// written while it belonged to `user_id`, and whether it is still theirs
/// (not registered afresh, or linked to someone else, since; unlinked, it
/// is). A device passing on starts a new generation, so none of these
/// holds another owner's values.
fn device_era(events: &[RecordedEvent], user_id: &str) -> (Vec<i64>, bool) {
    let mut owners = personal::Owners::default();
    let mut generations = BTreeSet::new();
    for event in events {
        if owners.follow(&event.event_type, &event.data) == Some(user_id) {
            personal::any(&event.event_type, &event.data, |value| {
                generations.extend(sealing::generation(value));
                false
            });
        }
    }
    (
        generations.into_iter().collect(),
        owners.holder() == Some(user_id),
    )
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
    // Old page images (write-ahead log, free pages) still hold the values.
    crate::privacy::scrub::scrub(db).await
}
