use std::sync::Arc;

use infra::herald::{Herald, Services};
use tokio::sync::watch;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// What handlers call.
    pub services: Arc<Services>,
    /// The running node, for operations (readiness, status, faults).
    pub herald: Arc<Herald>,
    /// Turns true when the server starts shutting down, so long-lived
    /// responses (live tails, exports) end instead of holding it up.
    pub stopping: watch::Receiver<bool>,
    /// API rate limits per key (this node's buckets).
    pub rate_limits: Arc<crate::rate_limit::RateLimits>,
    /// Requests by route, method and status class (for `/metrics`).
    pub http_metrics: Arc<crate::metrics::http::HttpMetrics>,
}

impl AppState {
    /// Before a read: the read models `models` must be able to serve the
    /// caller's app, and have applied the request's consistency token
    /// (`Herald-Min-Position`), else 503 naming why.
    pub async fn fresh(
        &self,
        ctx: &infra::services::RequestContext,
        app: domain::ids::AppId,
        models: &[&'static str],
    ) -> Result<(), crate::error::ApiError> {
        Ok(self.services.reads.fresh(ctx, app, models).await?)
    }
}
