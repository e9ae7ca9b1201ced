//! How push delivery behaves: provider addresses, concurrency, batches,
//! retries.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PushConfig {
    /// FCM HTTP v1 base, `https://fcm.googleapis.com`.
    pub fcm_url: String,
    /// Overrides the service account's `token_uri` (tests, proxies).
    pub fcm_token_url: Option<String>,
    /// Overrides the APNs host chosen by the credentials' environment
    /// (`https://api.push.apple.com` or `https://api.sandbox.push.apple.com`).
    pub apns_url: Option<String>,
    /// One provider request, at most.
    pub timeout: Duration,
    /// Requests in flight per provider (and process).
    pub concurrency: usize,
    /// Devices per batch: the unit recorded in the log, and what may be sent
    /// twice after a crash.
    pub batch_size: usize,
    /// Retries of a retryable failure, with exponential backoff and jitter.
    pub max_retries: u32,
    pub retry_base: Duration,
    /// A provider's Retry-After is honoured up to this long.
    pub max_retry_wait: Duration,
    /// Apps without any credentials deliver through the `log` provider.
    pub log_without_credentials: bool,
    /// Whether this process runs the sender (launches and fan-out).
    pub send: bool,
    /// How often to look for due work no local event announced.
    pub poll_interval: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            fcm_url: "https://fcm.googleapis.com".into(),
            fcm_token_url: None,
            apns_url: None,
            timeout: Duration::from_secs(10),
            concurrency: 256,
            batch_size: 1000,
            max_retries: 3,
            retry_base: Duration::from_millis(500),
            max_retry_wait: Duration::from_secs(30),
            log_without_credentials: true,
            send: true,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl PushConfig {
    /// A send lease: long enough for a batch with its retries.
    pub fn lease(&self) -> Duration {
        self.timeout * (self.max_retries + 2)
            + self.max_retry_wait * self.max_retries
            + Duration::from_secs(60)
    }
}
