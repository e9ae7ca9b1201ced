use std::sync::Arc;

use infra::herald::Herald;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub herald: Arc<Herald>,
}
