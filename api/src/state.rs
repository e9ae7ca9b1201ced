use std::sync::Arc;

use infra::herald::Herald;
use tokio::sync::watch;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub herald: Arc<Herald>,
    /// Turns true when the server starts shutting down, so long-lived
    /// responses (live tails, exports) end instead of holding it up.
    pub stopping: watch::Receiver<bool>,
}
