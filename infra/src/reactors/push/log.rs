//! The `log` provider: delivers into Herald's own log output. It stands in
//! for every platform of an app that has no credentials at all, so that the
//! embedded default works end to end (devices, campaigns, counters,
//! history) before any provider is configured.

use async_trait::async_trait;

use super::{Outcome, Provider, PushMessage};

pub struct LogProvider;

#[async_trait]
impl Provider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, message: &PushMessage, _token: &str) -> Outcome {
        tracing::debug!(
            notification = %message.notification_id,
            title = %message.content.title,
            "push delivered to the log provider"
        );
        Outcome::Delivered
    }
}
