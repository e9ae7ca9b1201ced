//! The command path: load the stream, `decide`, append with the expected
//! version, and retry a bounded number of times when another writer got
//! there first.

use std::sync::Arc;

use domain::ids::AppId;
use domain::personal::FORGOTTEN;
use domain::{Aggregate, DomainError, DomainEvent, Metadata, RecordedEvent};
use uuid::Uuid;

use super::histories::{Histories, History, LONGEST};
use super::reached;
use crate::store::{AppendRequest, Appended, EventStore, ExpectedVersion, NewEvent, StoreError};

/// Attempts per command before a conflict is reported. Every round lets at
/// least one contender through, so this many writers racing for one stream
/// all succeed.
const MAX_ATTEMPTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command was refused (4xx).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Other writers kept changing the stream (409).
    #[error("the resource was changed concurrently; try again")]
    Conflict,
    /// The database is down or overloaded (503).
    #[error("the event store is unavailable")]
    Unavailable(String),
    /// A limit was reached; try again after this long (429).
    #[error("{message}")]
    TooMany {
        message: String,
        retry_after: std::time::Duration,
    },
    /// The read models a read needs cannot serve it (yet): stopped for
    /// the app, or behind the consistency token (503).
    #[error("{}", describe_not_ready(.0))]
    NotReady(crate::runtime::NotReady),
    /// Anything else (500).
    #[error("the command failed: {0}")]
    Internal(String),
}

fn describe_not_ready(n: &crate::runtime::NotReady) -> String {
    match n {
        crate::runtime::NotReady::Stopped {
            model,
            position,
            error,
        } => format!(
            "the read model {model} is stopped for this app at log position {position} \
             (it cannot apply that event: {error}); an operator can skip or retry it"
        ),
        crate::runtime::NotReady::Behind {
            model,
            position,
            wanted,
        } => format!(
            "the read model {model} has applied position {position}, not yet {wanted}; retry shortly"
        ),
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => CommandError::Conflict,
            StoreError::Unavailable(m) => CommandError::Unavailable(m),
            StoreError::Unstorable(m) => CommandError::Domain(DomainError::invalid("body", m)),
            other => CommandError::Internal(other.to_string()),
        }
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    /// The stream's history before the command.
    pub history: History,
    /// The state after the command.
    pub state: A,
    /// The events written (empty when the command changed nothing).
    pub events: Vec<A::Event>,
    /// Where they were written.
    pub appended: Option<Appended>,
    /// The ids of the events written, in order.
    pub event_ids: Vec<Uuid>,
}

impl<A: Aggregate> Executed<A> {
    /// A command that changed nothing; the request reached its stream's
    /// last event.
    fn unchanged(history: History, state: A) -> Self {
        if let Some(last) = history.last() {
            reached::note(last.position);
        }
        Self {
            history,
            state,
            events: Vec::new(),
            appended: None,
            event_ids: Vec::new(),
        }
    }

    /// The version of the stream after the command.
    pub fn version(&self) -> i64 {
        self.appended.as_ref().map_or_else(
            || self.history.last().map_or(0, |e| e.stream_version),
            |a| a.stream_version,
        )
    }
}

#[derive(Clone)]
pub struct CommandBus {
    store: Arc<dyn EventStore>,
    histories: Arc<Histories>,
}

impl CommandBus {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            histories: Arc::new(Histories::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Loads and folds a stream, as the log holds it now.
    pub async fn load<A: Aggregate>(
        &self,
        app_id: AppId,
        stream: &str,
    ) -> Result<(Vec<RecordedEvent>, A), CommandError> {
        let history = self.store.load_stream(app_id, stream).await?;
        let state = fold::<A>(&history)?;
        Ok((history, state))
    }

    /// The stream's history: the one kept from this node's last command
    /// on it when `kept` allows and there is one (it may be stale; see
    /// `histories`), otherwise read from the log (and kept). Says which.
    async fn history<A: Aggregate>(
        &self,
        app_id: AppId,
        stream: &str,
        kept: bool,
    ) -> Result<(History, A, bool), CommandError> {
        if kept && let Some(history) = self.histories.get(app_id, stream) {
            let state = fold::<A>(&history)?;
            return Ok((history, state, true));
        }
        let (history, state) = self.load::<A>(app_id, stream).await?;
        let history = Arc::new(history);
        self.histories.put(app_id, stream, history.clone());
        Ok((history, state, false))
    }

    /// Runs `command` against a stream whose state the caller keeps
    /// (`state` after `version` events), so that a long-lived writer (the
    /// push sender, one event per batch) does not reload a growing stream
    /// for every command. On a conflict the stream is reloaded and the
    /// command decided again. Returns the events written.
    pub async fn execute_on<A>(
        &self,
        stream: &str,
        metadata: &Metadata,
        state: &mut A,
        version: &mut i64,
        command: A::Command,
    ) -> Result<Vec<A::Event>, CommandError>
    where
        A: Aggregate,
        A::Command: Clone,
        A::Event: Clone,
    {
        for _ in 0..MAX_ATTEMPTS {
            let events = state.decide(command.clone())?;
            if events.is_empty() {
                return Ok(events);
            }
            let request = append_request::<A>(stream, *version, &events, metadata);
            match self.store.append(request).await {
                Ok(appended) => {
                    for event in &events {
                        state.evolve(event);
                    }
                    *version = appended.stream_version;
                    return Ok(events);
                }
                Err(StoreError::Conflict { .. }) => {
                    let (history, fresh) = self.load::<A>(metadata.app_id, stream).await?;
                    *state = fresh;
                    *version = history.last().map_or(0, |e| e.stream_version);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CommandError::Conflict)
    }

    /// Runs `command` against the stream.
    #[tracing::instrument(skip_all, fields(stream = %stream))]
    pub async fn execute<A>(
        &self,
        stream: &str,
        metadata: &Metadata,
        command: A::Command,
    ) -> Result<Executed<A>, CommandError>
    where
        A: Aggregate,
        A::Command: Clone,
    {
        let app_id = metadata.app_id;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // A little jitter keeps racing writers from colliding in lockstep.
                let jitter =
                    u64::from(crate::secrets::random_in_1_to(1000)) * attempt.min(4) as u64;
                tokio::time::sleep(std::time::Duration::from_micros(jitter)).await;
            }
            let (mut history, mut state, kept) = self.history::<A>(app_id, stream, true).await?;
            let mut decided = state.decide(command.clone());
            if kept && !matches!(&decided, Ok(events) if !events.is_empty()) {
                // A refusal, or nothing to append: no append checks the
                // kept history, so decide again on the log's.
                (history, state, _) = self.history::<A>(app_id, stream, false).await?;
                decided = state.decide(command.clone());
            }
            let events = decided?;
            if events.is_empty() {
                return Ok(Executed::unchanged(history, state));
            }
            let version = history.last().map_or(0, |e| e.stream_version);
            let request = append_request::<A>(stream, version, &events, metadata);
            let event_ids: Vec<Uuid> = request.events.iter().map(|e| e.event_id).collect();
            let written = (history.len() + events.len() <= LONGEST).then(|| request.events.clone());
            match self.store.append(request).await {
                Ok(appended) => {
                    reached::note(appended.last_position);
                    self.keep(stream, &history, written, &appended, metadata);
                    for event in &events {
                        state.evolve(event);
                    }
                    return Ok(Executed {
                        history,
                        state,
                        events,
                        appended: Some(appended),
                        event_ids,
                    });
                }
                Err(StoreError::Conflict { .. }) => {
                    self.histories.forget(app_id, stream);
                }
                Err(e) => {
                    self.histories.forget(app_id, stream);
                    return Err(e.into());
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// Runs `command` once, if the stream is still at `version` (read by
    /// the caller before it did something that needs the stream unchanged
    /// since, see `services::forget`): the log is read, not a kept
    /// history, and the append expects that version. A stream that moved
    /// is a conflict, answered and not retried.
    pub async fn execute_at<A: Aggregate>(
        &self,
        stream: &str,
        metadata: &Metadata,
        command: A::Command,
        version: i64,
    ) -> Result<Executed<A>, CommandError> {
        let app_id = metadata.app_id;
        let (history, mut state) = self.load::<A>(app_id, stream).await?;
        if history.last().map_or(0, |e| e.stream_version) != version {
            return Err(CommandError::Conflict);
        }
        let history: History = Arc::new(history);
        let events = state.decide(command)?;
        if events.is_empty() {
            return Ok(Executed::unchanged(history, state));
        }
        let request = append_request::<A>(stream, version, &events, metadata);
        let event_ids: Vec<Uuid> = request.events.iter().map(|e| e.event_id).collect();
        let appended = self.store.append(request).await;
        // Not kept: a kept history must be exactly the log's (see `keep`).
        self.histories.forget(app_id, stream);
        let appended = appended?;
        reached::note(appended.last_position);
        for event in &events {
            state.evolve(event);
        }
        Ok(Executed {
            history,
            state,
            events,
            appended: Some(appended),
            event_ids,
        })
    }

    /// Keeps the stream's history after an append of `written` (the
    /// events as decided, personal values in clear, as a read of the log
    /// returns them), or drops it when it cannot be told exactly or must
    /// not be kept (a subject forgotten: its earlier values no longer open).
    fn keep(
        &self,
        stream: &str,
        before: &History,
        written: Option<Vec<NewEvent>>,
        appended: &Appended,
        metadata: &Metadata,
    ) {
        let app_id = metadata.app_id;
        let kept = written
            .filter(|w| {
                w.len() == appended.hashes.len() && w.iter().all(|e| e.event_type != FORGOTTEN)
            })
            .zip(serde_json::to_value(metadata).ok());
        let Some((written, metadata)) = kept else {
            self.histories.forget(app_id, stream);
            return;
        };
        let first_version = appended.stream_version - written.len() as i64 + 1;
        let mut history = Vec::with_capacity(before.len() + written.len());
        history.extend(before.iter().cloned());
        for (i, (event, hash)) in written.into_iter().zip(&appended.hashes).enumerate() {
            history.push(RecordedEvent {
                position: appended.first_position + i as i64,
                event_id: event.event_id,
                app_id,
                stream: stream.to_owned(),
                stream_version: first_version + i as i64,
                event_type: event.event_type,
                schema_version: event.schema_version,
                data: event.data,
                metadata: metadata.clone(),
                recorded_at: appended.recorded_at,
                hash: hash.clone(),
            });
        }
        self.histories.put(app_id, stream, Arc::new(history));
    }
}

/// The state after `history`.
fn fold<A: Aggregate>(history: &[RecordedEvent]) -> Result<A, CommandError> {
    let mut state = A::default();
    for recorded in history {
        let event = A::Event::decode(
            &recorded.event_type,
            recorded.schema_version,
            &recorded.data,
        )
        .map_err(|e| CommandError::Internal(e.to_string()))?;
        state.evolve(&event);
    }
    Ok(state)
}

/// The append of `events`, decided on a history that ends at `version`.
fn append_request<A: Aggregate>(
    stream: &str,
    version: i64,
    events: &[A::Event],
    metadata: &Metadata,
) -> AppendRequest {
    AppendRequest {
        stream: stream.to_owned(),
        expected: ExpectedVersion::from_loaded(version),
        events: events
            .iter()
            .map(|e| {
                let (event_type, data) = e.encode();
                NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type,
                    schema_version: A::Event::SCHEMA_VERSION,
                    data,
                }
            })
            .collect(),
        metadata: metadata.clone(),
        new_key: None,
    }
}
