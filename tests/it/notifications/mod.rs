//! Notifications: campaigns end to end on the log provider, the API's
//! rules, each provider against its local stand-in (every error class),
//! scheduling across a restart, the crash-resume bound, and the quota.

mod api;
mod apns;
mod campaigns;
pub(crate) mod fcm;
mod history;
mod quota;
mod resume;
mod send;
mod webpush;

use std::time::Duration;

use chrono::Utc;
use herald_tests::app::AppKey;
use herald_tests::{Backend, TestApp, TestDb};
use infra::clock::ManualClock;
use infra::config::Config;
use serde_json::{Value, json};

use crate::webhooks::on_clock;

/// A Herald on a manual clock, with quick retries, and the stand-ins'
/// addresses when a test gives them.
pub struct Pushy {
    pub app: TestApp,
    pub key: AppKey,
    pub clock: ManualClock,
}

pub fn quick(config: &mut Config) {
    config.push.retry_base = Duration::from_millis(10);
    config.push.max_retries = 2;
    config.push.max_retry_wait = Duration::from_secs(2);
    config.push.timeout = Duration::from_secs(5);
}

impl Pushy {
    pub async fn spawn(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let clock = ManualClock::starting_at(Utc::now());
        let app = TestApp::spawn_on(db, |c| {
            on_clock(c, &clock);
            quick(c);
            configure(c);
        })
        .await;
        let key = app.create_app("push").await;
        Some(Self { app, key, clock })
    }

    pub async fn device(
        &self,
        id: &str,
        token: &str,
        send: &str,
        platform: &str,
        user: Option<&str>,
    ) {
        let mut body =
            json!({"push_token": token, "send_platform": send, "device_platform": platform});
        if let Some(u) = user {
            body["user_id"] = json!(u);
        }
        let resp = self
            .app
            .put(&format!("/v1/devices/{id}"), &self.key.token, body)
            .await;
        assert!(resp.status == 201 || resp.status == 200, "{}", resp.body);
    }

    /// Creates a notification; returns it (201 expected).
    pub async fn notify(&self, body: Value) -> Value {
        let resp = self
            .app
            .post("/v1/notifications", &self.key.token, body)
            .await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        resp.body
    }

    pub async fn get(&self, id: &str) -> Value {
        let resp = self
            .app
            .get(&format!("/v1/notifications/{id}"), &self.key.token)
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.body
    }

    /// Runs the reactors until idle; the notification must then be sent,
    /// errored or canceled.
    pub async fn finished(&self, id: &str) -> Value {
        self.app.idle().await;
        let n = self.get(id).await;
        assert!(
            matches!(n["status"].as_str(), Some("sent" | "error" | "canceled")),
            "notification {id} did not finish: {n}"
        );
        n
    }

    pub async fn history(&self, device: &str) -> Vec<Value> {
        let resp = self
            .app
            .get(
                &format!("/v1/devices/{device}/notifications"),
                &self.key.token,
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.body["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn credentials(&self, provider: &str, body: Value) -> Value {
        let resp = self
            .app
            .put(
                &format!("/v1/push-credentials/{provider}"),
                &self.key.token,
                body,
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.body
    }

    pub async fn events_of(&self, event_type: &str) -> Vec<Value> {
        self.app
            .events(&self.key.token)
            .await
            .into_iter()
            .filter(|e| e["event_type"] == event_type)
            .collect()
    }
}

/// The outcome each device's history gives for a notification.
pub async fn outcomes(p: &Pushy, devices: &[&str], id: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in devices {
        let h = p.history(d).await;
        let outcome = h
            .iter()
            .find(|n| n["notification_id"] == json!(id))
            .and_then(|n| n["outcome"].as_str())
            .unwrap_or("none")
            .to_owned();
        out.push(((*d).to_owned(), outcome));
    }
    out
}
