//! Personal data at rest, and forgetting it (crypto-shredding).
//!
//! The personal values of a user's or a device's events (see
//! `domain::personal`) are sealed, before they reach the log, under a data
//! key of their subject ([`keyring`]); the log's hash chain covers the sealed
//! form ([`sealing`]). Every read goes through [`SealedStore`], which opens
//! them again. Forgetting a subject destroys its keys: its values can no
//! longer be opened by anyone and read as `domain::personal::PLACEHOLDER`,
//! while every event, and so every hash, stays as it was written.

pub mod keyring;
pub mod scrub;
pub mod sealing;
mod store;

use std::sync::Arc;

use domain::RecordedEvent;
use domain::ids::AppId;
use domain::personal::{self, FORGOTTEN, PLACEHOLDER};
use serde_json::Value;

pub use keyring::{KeyRing, WritingKey};
pub use store::SealedStore;

use crate::store::{AppendRequest, StoreError};
use crate::vault::VaultError;

impl From<VaultError> for StoreError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Store(e) => e,
            VaultError::Undecryptable => StoreError::Internal(
                "a subject's data key cannot be decrypted (is HERALD_SECRET_KEY the one it was sealed with?)"
                    .into(),
            ),
        }
    }
}

/// An append sealed under a key made for it.
pub struct Sealed {
    made: WritingKey,
    subject: String,
    /// The request as it was before sealing, to seal again under another
    /// key if this one's generation was taken meanwhile.
    unsealed: AppendRequest,
}

/// Seals and opens the personal values of events.
pub struct Personal {
    keys: KeyRing,
}

/// Whether `event` may hold personal values to open.
fn personal_subject<'a>(stream: &'a str, event_type: &str) -> Option<&'a str> {
    personal::subject_of(stream).filter(|_| personal::holds_personal(event_type))
}

impl Personal {
    pub fn new(keys: KeyRing) -> Arc<Self> {
        Arc::new(Self { keys })
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Seals the personal values of an append, under its subject's key.
    /// When that key is new, the request carries it (`new_key`) and the
    /// answer holds what to do once the append is answered (see
    /// [`Sealed`]).
    pub async fn seal(&self, request: &mut AppendRequest) -> Result<Option<Sealed>, StoreError> {
        let Some(subject) = personal::subject_of(&request.stream) else {
            return Ok(None);
        };
        let app_id = request.app_id();
        let new_stream = request.expected == crate::store::ExpectedVersion::NoStream;
        // A device passing to another owner starts a new generation, even
        // with no value to seal yet: forgetting its previous owner destroys
        // only the generations written while it was theirs (see
        // `services::forget`). A new stream has no previous owner.
        let fresh = !new_stream
            && request
                .events
                .iter()
                .any(|e| personal::passes_on(&e.event_type));
        if !fresh
            && !request
                .events
                .iter()
                .any(|e| personal::any(&e.event_type, &e.data, |_| true))
        {
            return Ok(None);
        }
        let made = self
            .keys
            .writing_key(app_id, subject, new_stream, fresh)
            .await?;
        let unsealed = made.new.is_some().then(|| request.clone());
        for event in &mut request.events {
            personal::visit(&event.event_type, &mut event.data, |value| {
                if !sealing::is_sealed(value) {
                    *value = sealing::seal(&made.key, made.generation, app_id, subject, value);
                }
            });
        }
        request.new_key = made.new.clone();
        Ok(unsealed.map(|unsealed| Sealed {
            made,
            subject: subject.to_owned(),
            unsealed,
        }))
    }

    /// Whether reading `event` needs [`Personal::open`].
    pub fn holds_sealed(event: &RecordedEvent) -> bool {
        personal_subject(&event.stream, &event.event_type).is_some()
            || event.event_type == FORGOTTEN
    }

    /// Forgets what this node remembers of subjects forgotten in `events`,
    /// then reads the subjects' keys the events need in one query per app.
    pub async fn prepare(&self, events: &[&RecordedEvent]) -> Result<(), StoreError> {
        for event in events.iter().filter(|e| e.event_type == FORGOTTEN) {
            self.keys.evict(event.app_id, &event.stream);
        }
        let wanted: Vec<(AppId, &str)> = events
            .iter()
            .filter_map(|e| personal_subject(&e.stream, &e.event_type).map(|s| (e.app_id, s)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        self.keys.prefetch(&wanted).await?;
        Ok(())
    }

    /// Opens the personal values of one event body in place: a sealed value
    /// whose key is gone, or a value stored in clear (before sealing) of a
    /// subject since forgotten, reads as the placeholder.
    pub async fn open(
        &self,
        app_id: AppId,
        stream: &str,
        event_type: &str,
        data: &mut Value,
    ) -> Result<(), StoreError> {
        let Some(subject) = personal_subject(stream, event_type) else {
            return Ok(());
        };
        let mut keys = self.keys.subject(app_id, subject, false).await?;
        // A generation created by another node since this one looked.
        if personal::any(event_type, data, |v| {
            sealing::generation(v).is_some_and(|g| keys.key(g).is_none())
        }) {
            keys = self.keys.subject(app_id, subject, true).await?;
        }
        personal::visit(event_type, data, |value| {
            let opened = match sealing::generation(value) {
                Some(g) => keys
                    .key(g)
                    .flatten()
                    .and_then(|key| sealing::open(key, app_id, subject, value)),
                None if keys.forgotten => None,
                None => return,
            };
            *value = opened.unwrap_or_else(|| Value::String(PLACEHOLDER.to_owned()));
        });
        Ok(())
    }

    /// [`Personal::open`] for a whole event.
    pub async fn open_event(&self, event: &mut RecordedEvent) -> Result<(), StoreError> {
        let RecordedEvent {
            app_id,
            stream,
            event_type,
            data,
            ..
        } = event;
        self.open(*app_id, stream, event_type, data).await
    }

    /// For a page read as stored: each event's body with its personal
    /// values opened, where that differs from the stored one.
    pub async fn opened_bodies(
        &self,
        events: &[RecordedEvent],
    ) -> Result<Vec<Option<Value>>, StoreError> {
        let refs: Vec<&RecordedEvent> = events.iter().collect();
        self.prepare(&refs).await?;
        let mut bodies = Vec::with_capacity(events.len());
        for event in events {
            if personal_subject(&event.stream, &event.event_type).is_none() {
                bodies.push(None);
                continue;
            }
            let mut data = event.data.clone();
            self.open(event.app_id, &event.stream, &event.event_type, &mut data)
                .await?;
            bodies.push((data != event.data).then_some(data));
        }
        Ok(bodies)
    }

    /// Opens a page of events read from the log.
    pub async fn open_all(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        let refs: Vec<&RecordedEvent> = events.iter().collect();
        self.prepare(&refs).await?;
        for event in events.iter_mut().filter(|e| Self::holds_sealed(e)) {
            self.open_event(event).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl projections::Unseal for Personal {
    async fn open(
        &self,
        app_id: AppId,
        stream: &str,
        event_type: &str,
        data: &mut Value,
    ) -> Result<(), projections::ProjectionError> {
        Personal::open(self, app_id, stream, event_type, data)
            .await
            .map_err(|e| projections::ProjectionError::Unavailable(e.to_string()))
    }
}
