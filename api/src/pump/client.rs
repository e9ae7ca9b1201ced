//! A small client for Herald's change queues: drain a batch.
//!
//! A server that is busy (429) or unavailable (503) is waited out: as long
//! as its `Retry-After` asks, or with backoff (1 s doubling, at most 60 s)
//! when it says nothing, then the drain is sent again. Neither answer
//! handed anything out, so a retry loses and duplicates nothing. One drain
//! waits at most `max_wait` in all; past that the run stops.

use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::retry_after;

pub struct ChangesClient {
    http: reqwest::Client,
    base: String,
    token: String,
    /// The longest one drain waits, in all, on 429 and 503 answers.
    pub max_wait: Duration,
}

#[derive(Debug, Deserialize)]
pub struct Batch {
    pub changes: Vec<Value>,
    pub remaining: i64,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl ChangesClient {
    pub fn new(base_url: &str, token: &str, max_wait: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            max_wait,
        })
    }

    /// Drains up to `limit` changes of `queue`. Once the server answers,
    /// those changes are no longer on the server: persist them before
    /// anything else.
    pub async fn drain(&self, queue: &str, limit: u32) -> anyhow::Result<Batch> {
        let url = format!(
            "{}/v1/change-queues/{queue}/changes?limit={limit}",
            self.base
        );
        let mut waited = Duration::ZERO;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let response = self
                .http
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .await
                .with_context(|| format!("cannot reach {}", self.base))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response.json().await?);
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                let asked = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after::parse(v, chrono::Utc::now()));
                let wait = match asked {
                    Some(wait) => wait,
                    None => {
                        let wait = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        wait
                    }
                };
                if waited.saturating_add(wait) > self.max_wait {
                    anyhow::bail!(
                        "draining {queue}: the server kept answering {status}; waiting {}s more \
                         would pass --max-wait-seconds {} (waited {}s)",
                        wait.as_secs(),
                        self.max_wait.as_secs(),
                        waited.as_secs()
                    );
                }
                tracing::info!(%status, wait_ms = wait.as_millis(), from_header = asked.is_some(),
                    "the server asks to wait; draining again after that");
                tokio::time::sleep(wait).await;
                waited += wait;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|p| p["detail"].as_str().map(str::to_owned))
                .unwrap_or(body);
            anyhow::bail!("draining {queue} failed: {status}: {detail}");
        }
    }
}
