//! The application services the HTTP layer calls: each takes a request
//! context, builds commands, runs them, and waits for the read models the
//! caller will read next (read-your-writes).

pub mod callbacks;
pub mod change_queues;
pub mod devices;
pub mod flags;
pub mod forget;
pub mod notifications;
pub mod push_credentials;
pub mod send_now;
pub mod tenancy;
pub mod users;
pub mod webhooks;

use domain::Metadata;
use domain::ids::AppId;
use uuid::Uuid;

use crate::runtime::commands::CommandError;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::Followers;
use crate::store::EventStore;
use crate::store::StoreError;

/// Who is asking, and the ids that tie their request to what it causes.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `key:<id>`, `root`, or `system:<reactor>`.
    pub actor: String,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<Uuid>,
    pub trace_id: Option<String>,
    /// A read's consistency token (`Herald-Min-Position`): the read models
    /// it uses must have applied this position first.
    pub min_position: Option<i64>,
    /// Whether a command's answer waits until the read models serving the
    /// resource have applied it (read-your-writes on the next read). `false`
    /// when the client said it does not need that (`Prefer: return=minimal`).
    pub wait_for_read_models: bool,
}

/// A resource a command created: its id, and the resource as its read
/// model shows it, unless the client did not wait for the read models
/// (`Prefer: return=minimal`): they may not hold it yet, so it is not read.
#[derive(Debug)]
pub struct Created<I, T> {
    pub id: I,
    pub record: Option<T>,
}

impl Default for RequestContext {
    fn default() -> Self {
        Self {
            actor: String::new(),
            request_id: None,
            correlation_id: None,
            causation_id: None,
            trace_id: None,
            min_position: None,
            wait_for_read_models: true,
        }
    }
}

impl RequestContext {
    pub fn metadata(&self, app_id: AppId) -> Metadata {
        Metadata {
            app_id,
            actor: self.actor.clone(),
            request_id: self.request_id.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id,
            trace_id: self.trace_id.clone(),
        }
    }
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// What every service reads through: the projections (to wait for read
/// models, and to gate reads on them) and the log (reads "as of").
#[derive(Clone)]
pub struct Reads {
    projections: Followers,
    store: Arc<dyn EventStore>,
    /// How long a read or a command waits for read models.
    timeout: Duration,
}

impl Reads {
    pub fn new(projections: Followers, store: Arc<dyn EventStore>, timeout: Duration) -> Self {
        Self {
            projections,
            store,
            timeout,
        }
    }

    /// The position a read model has applied, as it moves.
    pub(crate) fn watch(&self, projection: &str) -> Option<tokio::sync::watch::Receiver<i64>> {
        self.projections.subscribe(projection)
    }

    /// The log's last committed position.
    pub(crate) async fn head(&self) -> Result<i64, StoreError> {
        self.store.head().await
    }

    /// Waits (bounded) until a read model has applied `position`.
    pub(crate) async fn wait_for(
        &self,
        projection: &str,
        position: i64,
        timeout: Duration,
    ) -> bool {
        self.projections
            .wait_for(projection, position, timeout)
            .await
    }

    /// Waits (bounded) until the named read models have applied `position`,
    /// unless the client does not need to read its write at once.
    pub(crate) async fn settle(
        &self,
        ctx: &RequestContext,
        projections: &[&str],
        position: Option<i64>,
    ) {
        let Some(position) = position.filter(|_| ctx.wait_for_read_models) else {
            return;
        };
        for projection in projections {
            if !self
                .projections
                .wait_for(projection, position, self.timeout)
                .await
            {
                tracing::warn!(
                    projection,
                    position,
                    "read model did not catch up in time; answering anyway"
                );
            }
        }
    }

    /// Whether the read models `models` can serve `app` now, once they have
    /// applied the request's consistency token (waiting for that, bounded).
    pub async fn fresh(
        &self,
        ctx: &RequestContext,
        app: AppId,
        models: &[&'static str],
    ) -> Result<(), CommandError> {
        self.projections
            .ready(app, models, ctx.min_position, self.timeout)
            .await
            .map_err(CommandError::NotReady)
    }

    /// A stream's events recorded at or before `as_of`, for reads "as of"
    /// an instant.
    pub async fn history_until(
        &self,
        app_id: AppId,
        stream: &str,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<domain::RecordedEvent>, CommandError> {
        const PAGE: usize = 1000;
        let mut filter = crate::store::EventFilter {
            stream: Some(stream.to_owned()),
            until: Some(as_of + chrono::Duration::microseconds(1)),
            ..Default::default()
        };
        let mut events = Vec::new();
        loop {
            let page = self.store.read_filtered(app_id, &filter, PAGE).await?;
            let full = page.len() == PAGE;
            if let Some(last) = page.last() {
                filter.after = last.position;
            }
            events.extend(page);
            if !full {
                return Ok(events);
            }
        }
    }
}

/// The log itself, as auditors read it (events, streams, the live tail,
/// exports, chain verification).
#[derive(Clone)]
pub struct Log {
    store: Arc<dyn EventStore>,
    stored: Arc<dyn EventStore>,
    personal: Arc<crate::privacy::Personal>,
    db: projections::db::Db,
}

impl Log {
    pub fn new(
        store: &Arc<crate::privacy::SealedStore>,
        personal: Arc<crate::privacy::Personal>,
        db: projections::db::Db,
    ) -> Self {
        Self {
            store: store.clone(),
            stored: store.stored().clone(),
            personal,
            db,
        }
    }

    /// The log with personal values opened (or the placeholder).
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The log as stored, personal values sealed: what the hash chain
    /// covers (verification, exports).
    pub fn stored(&self) -> &Arc<dyn EventStore> {
        &self.stored
    }

    /// Opens the personal values of events read from [`Log::stored`].
    pub fn personal(&self) -> &Arc<crate::privacy::Personal> {
        &self.personal
    }

    /// The database the log lives in (verification reads it in bulk).
    pub fn db(&self) -> &projections::db::Db {
        &self.db
    }
}
