//! The cluster of the three-node test: a slow hop in front of the webhook
//! receiver, the nodes behind a round-robin client, and the user writers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use projections::db::Db;
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use super::super::client;
use super::super::writers::{Attempt, Field, Target};

use super::*;

/// A hop in front of the receiver: notes when each message arrives from a
/// node (which, unlike the receiver's own times, includes the requests of
/// a node that died before the answer), waits [`RECEIVER_LATENCY`], then
/// hands the request on unchanged and answers with the receiver's status.
/// While held ([`SlowHop::hold`]) no answer goes back: the messages in
/// flight stay with the nodes that sent them.
pub(super) struct SlowHop {
    pub(super) addr: std::net::SocketAddr,
    pub(super) arrivals: Arc<Mutex<Vec<(Instant, String)>>>,
    gate: watch::Sender<bool>,
    passing: Arc<AtomicUsize>,
}

#[derive(Clone)]
pub(super) struct Hop {
    client: reqwest::Client,
    target: String,
    arrivals: Arc<Mutex<Vec<(Instant, String)>>>,
    /// Open (true) lets answers go back.
    gate: watch::Receiver<bool>,
    /// Requests past the gate, not yet answered.
    passing: Arc<AtomicUsize>,
}

/// Counts a request past the gate until it is answered.
struct Passing(Arc<AtomicUsize>);

impl Drop for Passing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) async fn hop(
    axum::extract::State(hop): axum::extract::State<Hop>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if let Ok(mut arrivals) = hop.arrivals.lock() {
        arrivals.push((Instant::now(), header("webhook-id")));
    }
    tokio::time::sleep(RECEIVER_LATENCY).await;
    let mut gate = hop.gate.clone();
    let _passing = loop {
        let _ = gate.wait_for(|open| *open).await;
        hop.passing.fetch_add(1, Ordering::SeqCst);
        let passing = Passing(hop.passing.clone());
        // Held between the wait and the count: wait again.
        if *gate.borrow() {
            break passing;
        }
    };
    let mut request = hop.client.post(&hop.target).body(body);
    for name in [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
    ] {
        request = request.header(name, header(name));
    }
    let status = request.send().await.map_or(502, |r| r.status().as_u16());
    axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY)
}

impl SlowHop {
    pub(super) async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (gate, open) = watch::channel(true);
        let passing = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().fallback(hop).with_state(Hop {
            client: client(),
            target,
            arrivals: arrivals.clone(),
            gate: open,
            passing: passing.clone(),
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            arrivals,
            gate,
            passing,
        }
    }

    /// Stops answering; returns once every request already past the gate
    /// has been answered, so that what is in flight from now on stays so.
    pub(super) async fn hold(&self) {
        self.gate.send_replace(false);
        while self.passing.load(Ordering::SeqCst) > 0 {
            tokio::task::yield_now().await;
        }
    }

    pub(super) fn release(&self) {
        self.gate.send_replace(true);
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(super) fn arrivals(&self) -> Vec<(Instant, String)> {
        self.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// The nodes' addresses, taken in turn.
pub(super) struct Cluster {
    pub(super) bases: Vec<String>,
    pub(super) next: AtomicUsize,
}

impl Cluster {
    pub(super) fn next(&self) -> &str {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.bases[n % self.bases.len()]
    }
}

pub(super) async fn get(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(super) async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let response = client
        .request(method.clone(), url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(super) fn pg(db: &Db) -> &sqlx::PgPool {
    match db {
        Db::Postgres(p) => &p.pool,
        Db::Sqlite(_) => panic!("this test runs on PostgreSQL only"),
    }
}

/// `user:{id}` → the id of its `user.created` event (the webhook id).
pub(super) async fn users_created(db: &Db) -> HashMap<String, String> {
    let rows: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT stream, event_id FROM events WHERE event_type = 'user.created'")
            .fetch_all(pg(db))
            .await
            .unwrap_or_else(|e| panic!("reading the log: {e}"));
    rows.into_iter()
        .map(|(stream, id)| {
            let user = stream.strip_prefix("user:").unwrap_or(&stream).to_owned();
            (user, id.to_string())
        })
        .collect()
}

/// Writer `number`: creates a new user per command (`PUT /v1/users/{id}`,
/// its name the command's marker), each on the next node in turn; a
/// command that got no answer is not retried as such (its user may exist),
/// the writer goes on with a new one on the next node.
pub(super) async fn user_writer(
    number: usize,
    client: reqwest::Client,
    cluster: Arc<Cluster>,
    token: String,
    stopped: watch::Receiver<bool>,
) -> Vec<(usize, Attempt)> {
    let mut attempts = Vec::new();
    let mut seq = 0;
    while !*stopped.borrow() {
        let node = (number + seq) % cluster.bases.len();
        let marker = format!("rel-n{number}-{seq}");
        seq += 1;
        let request = client
            .put(format!("{}/v1/users/{marker}", cluster.bases[node]))
            .bearer_auth(&token)
            .json(&json!({"name": marker}));
        let target = Target {
            id: marker.clone(),
            field: Field::UserName,
        };
        attempts.push((node, Attempt::send(request, marker, target).await));
    }
    attempts
}
