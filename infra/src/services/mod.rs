//! The application services the HTTP layer calls: each takes a request
//! context, builds commands, runs them, and waits for the read models the
//! caller will read next (read-your-writes).

pub mod change_queues;
pub mod devices;
pub mod key_cache;
pub mod notifications;
pub mod push_credentials;
pub mod tenancy;
pub mod users;
pub mod webhooks;

use domain::Metadata;
use domain::ids::AppId;
use uuid::Uuid;

use crate::commands::CommandError;
use crate::herald::Herald;
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

/// Waits (bounded) until the named read models have applied `position`,
/// unless the client does not need to read its write at once.
pub(crate) async fn settle(
    herald: &Herald,
    ctx: &RequestContext,
    projections: &[&str],
    position: Option<i64>,
) {
    let Some(position) = position.filter(|_| ctx.wait_for_read_models) else {
        return;
    };
    let timeout = herald.config.read_your_writes_timeout;
    for projection in projections {
        if !herald
            .projections
            .wait_for(projection, position, timeout)
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
    herald: &Herald,
    ctx: &RequestContext,
    app: AppId,
    models: &[&'static str],
) -> Result<(), CommandError> {
    herald
        .projections
        .ready(
            app,
            models,
            ctx.min_position,
            herald.config.read_your_writes_timeout,
        )
        .await
        .map_err(CommandError::NotReady)
}

/// A stream's events recorded at or before `as_of`, for reads "as of" an
/// instant.
pub async fn history_until(
    herald: &Herald,
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
        let page = herald.store.read_filtered(app_id, &filter, PAGE).await?;
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
