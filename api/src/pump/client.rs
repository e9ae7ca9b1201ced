//! A small client for Herald's change queues: drain a batch.

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;

pub struct ChangesClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Debug, Deserialize)]
pub struct Batch {
    pub changes: Vec<Value>,
    pub remaining: i64,
}

impl ChangesClient {
    pub fn new(base_url: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
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
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|p| p["detail"].as_str().map(str::to_owned))
                .unwrap_or(body);
            anyhow::bail!("draining {queue} failed: {status}: {detail}");
        }
        Ok(response.json().await?)
    }
}
