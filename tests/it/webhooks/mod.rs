//! Webhooks: endpoints, signed delivery to real local receivers, the retry
//! schedule on a manual clock, failure handling, ordering, rate limits,
//! crashes, several nodes, templates and the SSRF guard.

mod apply;
mod callbacks;
mod delivery;
mod encrypted;
mod endpoints;
mod failures;
mod methods;
mod nodes;
mod retention;
mod schedule;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use herald_tests::app::AppKey;
use herald_tests::{Backend, TestApp, TestDb};
use infra::clock::ManualClock;
use infra::config::Config;
use infra::reactors::webhooks::address::{AddressPolicy, Net};
use serde_json::{Value, json};

/// How long a test waits for something that should happen at once.
pub const WITHIN: Duration = Duration::from_secs(20);

/// A Herald whose webhook reactor runs on a manual clock and may reach
/// 127.0.0.0/8.
pub struct Hooked {
    pub app: TestApp,
    pub key: AppKey,
    pub clock: ManualClock,
}

pub fn allow_loopback(config: &mut Config) {
    let loopback = Net::parse("127.0.0.0/8").unwrap_or_else(|e| panic!("{e}"));
    config.webhooks.addresses = AddressPolicy::allowing(vec![loopback]);
}

pub fn on_clock(config: &mut Config, clock: &ManualClock) {
    config.clock = Arc::new(clock.clone());
    allow_loopback(config);
}

impl Hooked {
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let clock = ManualClock::starting_at(Utc::now());
        let app = TestApp::spawn_on(db, |c| {
            on_clock(c, &clock);
            configure(c);
        })
        .await;
        let key = app.create_app("hooks").await;
        Some(Self { app, key, clock })
    }

    /// Creates an endpoint; returns (id, secret).
    pub async fn endpoint(&self, body: Value) -> (String, String) {
        let resp = self.app.post("/v1/webhooks", &self.key.token, body).await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        (
            resp.body["id"].as_str().unwrap_or_default().to_owned(),
            resp.body["secret"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Every attempt of an endpoint, oldest first.
    pub async fn attempts(&self, id: &str) -> Vec<Value> {
        let resp = self
            .app
            .get(
                &format!("/v1/webhooks/{id}/attempts?limit=250"),
                &self.key.token,
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        let mut all = resp.body["attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        all.reverse();
        all
    }

    /// Runs the reactors until idle; the endpoint must then have at least
    /// `n` recorded attempts. Returns them.
    pub async fn wait_attempts(&self, id: &str, n: usize) -> Vec<Value> {
        self.app.idle().await;
        let a = self.attempts(id).await;
        assert!(a.len() >= n, "{} attempts, not {n}: {a:?}", a.len());
        a
    }

    pub async fn register(&self, device: &str) -> Value {
        let resp = self
            .app
            .put(
                &format!("/v1/devices/{device}"),
                &self.key.token,
                herald_tests::app::device_body("tok"),
            )
            .await;
        assert!(resp.status == 200 || resp.status == 201, "{}", resp.body);
        resp.body
    }

    pub async fn user(&self, id: &str, body: Value) {
        let resp = self
            .app
            .put(&format!("/v1/users/{id}"), &self.key.token, body)
            .await;
        assert!(resp.status == 200 || resp.status == 201, "{}", resp.body);
    }

    pub async fn set_status(&self, id: &str, status: &str) {
        let resp = self
            .app
            .put(
                &format!("/v1/users/{id}/status"),
                &self.key.token,
                json!({"status": status}),
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
    }

    /// Moves the reactor's clock on.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    /// The app's events of one type.
    pub async fn events_of(&self, event_type: &str) -> Vec<Value> {
        self.app
            .events(&self.key.token)
            .await
            .into_iter()
            .filter(|e| e["event_type"] == event_type)
            .collect()
    }
}

/// Polls `check` until it answers, failing the test after [`WITHIN`]. Only
/// for work that never becomes idle on purpose (a provider that hangs while
/// a node is killed); everything else runs the reactors until idle.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
