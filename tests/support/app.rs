//! The real application on a random port, with its own database, and
//! request helpers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use infra::config::Config;
use infra::herald::Herald;
use infra::secrets::Secret;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::{Backend, TestDb};

pub const ROOT_TOKEN: &str = "hr_test-root-token";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub herald: Arc<Herald>,
    /// Shared by every node started on it; dropped with the last.
    pub db: Arc<TestDb>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Connections still open keep the server's state alive; the node's
        // background work must stop now, as if its process died.
        self.herald.stop();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.abort();
    }
}

/// A response, with its body parsed as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem document with this status; returns it.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        assert_eq!(self.body["status"], json!(status));
        for key in ["type", "title", "detail"] {
            assert!(
                self.body[key].is_string(),
                "problem without {key}: {}",
                self.body
            );
        }
        &self.body
    }

    /// The fields named in a 400's `errors`.
    #[track_caller]
    pub fn invalid_fields(&self) -> Vec<String> {
        self.problem(400);
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An app and its first (all-roles) key.
#[derive(Debug, Clone)]
pub struct AppKey {
    pub app_id: String,
    pub token: String,
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Herald's warnings and errors go to the test's captured output, so a
/// failing test shows what the node complained about (`HERALD_TEST_LOG`
/// sets another filter, e.g. `infra=debug`).
fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_TEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

impl TestApp {
    /// The app on a fresh database, or `None` if the backend is unavailable.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        Some(Self::spawn_on(db, |_| {}).await)
    }

    /// The app on `db`, with the configuration adjusted by `configure`.
    pub async fn spawn_on(db: TestDb, configure: impl FnOnce(&mut Config)) -> Self {
        let pool = db.db.clone();
        Self::spawn_with(db, pool, configure).await
    }

    /// The app on `pool` (another route to `db`'s database, a proxy say).
    pub async fn spawn_with(
        db: TestDb,
        pool: projections::db::Db,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        Self::spawn_shared(Arc::new(db), pool, configure).await
    }

    /// Another node (process) on this one's database, with its own pool.
    pub async fn another_node(&self, configure: impl FnOnce(&mut Config)) -> Self {
        let pool = self.db.another_pool().await;
        Self::spawn_shared(self.db.clone(), pool, configure).await
    }

    async fn spawn_shared(
        db: Arc<TestDb>,
        pool: projections::db::Db,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        install_crypto();
        capture_logs();
        let mut config = Config::with_data_dir(&db.dir);
        config.root_token = Some(Secret::new(ROOT_TOKEN.to_owned()));
        config.read_your_writes_timeout = Duration::from_secs(10);
        config.shutdown_grace = Duration::from_secs(5);
        configure(&mut config);
        let started = Herald::start_on(config, pool)
            .await
            .unwrap_or_else(|e| panic!("herald did not start: {e:#}"));
        let herald = started.herald;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let (tx, rx) = oneshot::channel::<()>();
        let server_herald = herald.clone();
        let server = tokio::spawn(async move {
            let _ = api::serve(listener, server_herald, async {
                let _ = rx.await;
            })
            .await;
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("client: {e}"));
        Self {
            addr,
            client,
            herald,
            db,
            shutdown: Some(tx),
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
        read(response).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Some(token), Some(&body)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(token), Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Some(token), Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.send(Method::DELETE, path, Some(token), None).await
    }

    /// Waits until every projection (read models and reactor feeds) has
    /// applied the whole log: what a test does before reading something a
    /// command does not wait for (a change queue, a webhook message).
    pub async fn settled(&self) {
        let head = self
            .herald
            .store()
            .head()
            .await
            .unwrap_or_else(|e| panic!("head: {e}"));
        assert!(
            self.herald
                .projections()
                .wait_for_all(head, Duration::from_secs(20))
                .await,
            "the projections did not reach {head}"
        );
    }

    /// Runs until nothing is left to do now: the projections have applied
    /// the whole log and every reactor has found nothing due on its clock,
    /// with nothing in flight (`Herald::until_idle`). Deterministic: no
    /// polling.
    pub async fn idle(&self) {
        if self.herald.until_idle(Duration::from_secs(60)).await {
            return;
        }
        let head = self.herald.store().head().await;
        let standing: Vec<String> = match self.herald.projection_status().await {
            Ok(all) => all
                .iter()
                .map(|(s, stall)| format!("{} at {} (stall: {stall:?})", s.name, s.position))
                .collect(),
            Err(e) => vec![format!("status unavailable: {e}")],
        };
        panic!(
            "the reactors did not become idle: head {head:?}, projections {standing:?}, \
             in flight: {:?}",
            self.herald.in_flight()
        );
    }

    /// A GET carrying a consistency token (`Herald-Min-Position`).
    pub async fn get_at(&self, path: &str, token: &str, position: &str) -> Resp {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .header("herald-min-position", position)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
        read(response).await
    }

    /// Creates an app with the root token.
    pub async fn create_app(&self, name: &str) -> AppKey {
        let resp = self
            .post("/v1/apps", ROOT_TOKEN, json!({"name": name}))
            .await;
        assert_eq!(resp.status, 201, "{:?}", resp.body);
        AppKey {
            app_id: resp.body["id"].as_str().unwrap_or_default().to_owned(),
            token: resp.body["api_key"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// A new key of the admin key's app with these roles; returns its token.
    pub async fn key_with_roles(&self, admin_token: &str, roles: &[&str]) -> String {
        let resp = self
            .post(
                "/v1/api-keys",
                admin_token,
                json!({"name": "test", "roles": roles}),
            )
            .await;
        assert_eq!(resp.status, 201, "{:?}", resp.body);
        resp.body["token"].as_str().unwrap_or_default().to_owned()
    }

    /// The events of one stream (its first 100), as `GET /v1/events`
    /// answers them.
    pub async fn stream_events(&self, token: &str, stream: &str) -> Vec<Value> {
        let resp = self
            .get(
                &format!("/v1/events?stream={}&limit=100", segment(stream)),
                token,
            )
            .await;
        assert_eq!(resp.status, 200, "{:?}", resp.body);
        resp.body["events"].as_array().cloned().unwrap_or_default()
    }

    /// Every event of the key's app, in order.
    pub async fn events(&self, token: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let resp = self
                .get(&format!("/v1/events?after={after}&limit=1000"), token)
                .await;
            assert_eq!(resp.status, 200, "{:?}", resp.body);
            let page = resp.body["events"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return all;
            }
            after = resp.body["next_after"].as_i64().unwrap_or_default();
            all.extend(page);
        }
    }
}

pub async fn read(response: reqwest::Response) -> Resp {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Resp {
        status,
        headers,
        body,
    }
}

/// Percent-encodes a path segment (every byte outside A-Z a-z 0-9 - . _ ~).
pub fn segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A Web Push subscription (the token of a `webpush` device) whose endpoint
/// is on a public address literal that no test contacts.
pub fn webpush_token(id: &str) -> String {
    json!({
        "endpoint": format!("https://8.8.8.8/push/{id}"),
        "keys": {"p256dh": "BAAA", "auth": "AAAA"},
    })
    .to_string()
}

/// A device registration body with this push token (FCM, Android).
pub fn device_body(push_token: &str) -> Value {
    json!({"push_token": push_token, "send_platform": "fcm", "device_platform": "android"})
}

/// The log of `db` as another process of Herald writes and reads it:
/// personal values sealed under the subjects' keys (the secret key saved in
/// the data directory by the first node).
pub async fn sealed_log(
    db: &TestDb,
) -> (
    Arc<infra::privacy::SealedStore>,
    Arc<infra::privacy::Personal>,
) {
    let (secret, _) =
        infra::vault::load_or_create_key(None, &db.dir).unwrap_or_else(|e| panic!("{e}"));
    let vault = infra::vault::Vault::new(db.db.clone(), &secret);
    let personal = infra::privacy::Personal::new(infra::privacy::KeyRing::new(
        db.db.clone(),
        vault,
        infra::clock::system(),
    ));
    let raw = infra::store::SqlEventStore::open(db.db.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (
        Arc::new(infra::privacy::SealedStore::new(
            Arc::new(raw),
            personal.clone(),
        )),
        personal,
    )
}
