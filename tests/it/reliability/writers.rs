//! Concurrent writers: tasks that issue commands back to back (PUT a
//! device, PATCH its properties, PUT a user), each carrying a unique marker
//! that lands in the one event it writes, and record every attempt: when it
//! was sent, how long the answer took, the status, `Retry-After`, and the
//! `Herald-Position` of an acknowledgement.
//!
//! Each writer owns its resources, so commands never conflict with another
//! writer's. The server's address is read from a watch before every
//! command, so the writers follow a restarted server to its new port.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herald_tests::app::device_body;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Devices and users per writer.
const DEVICES: usize = 4;
const USERS: usize = 2;
/// The pause after a failed attempt (a refused connection fails at once).
const AFTER_FAILURE: Duration = Duration::from_millis(20);
/// The most one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What a command's marker sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `PUT /v1/devices/{id}`: the push token (`device.registered` or `device.updated`).
    PushToken,
    /// `PATCH /v1/devices/{id}/properties`: property `marker` (`device.properties_changed`).
    Property,
    /// `PUT /v1/users/{id}`: the name (`user.created` or `user.updated`).
    UserName,
}

/// A resource's field: where a marker is written and read back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The resource's id, also its stream's suffix (`device:<id>`, `user:<id>`).
    pub id: String,
    pub field: Field,
}

impl Target {
    pub fn stream(&self) -> String {
        match self.field {
            Field::PushToken | Field::Property => format!("device:{}", self.id),
            Field::UserName => format!("user:{}", self.id),
        }
    }

    /// The resource to GET.
    pub fn path(&self) -> String {
        match self.field {
            Field::PushToken | Field::Property => format!("/v1/devices/{}", self.id),
            Field::UserName => format!("/v1/users/{}", self.id),
        }
    }

    /// The marker a read of the resource shows.
    pub fn visible(&self, body: &Value) -> Option<String> {
        let value = match self.field {
            Field::PushToken => &body["push_token"],
            Field::Property => &body["properties"]["marker"],
            Field::UserName => &body["name"],
        };
        value.as_str().map(str::to_owned)
    }
}

/// One command as the client saw it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub marker: String,
    pub target: Target,
    pub sent: Instant,
    /// `sent` on the wall clock (to compare with `recorded_at`).
    pub sent_at: chrono::DateTime<chrono::Utc>,
    pub latency: Duration,
    /// `None`: no HTTP answer (refused, reset, timed out).
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub position: Option<i64>,
    pub error: Option<String>,
}

impl Attempt {
    /// Sends `request` and records what came back: acknowledged only once
    /// the whole answer is read.
    pub async fn send(request: reqwest::RequestBuilder, marker: String, target: Target) -> Self {
        let sent = Instant::now();
        let sent_at = chrono::Utc::now();
        let result = request.send().await;
        let mut attempt = Attempt {
            marker,
            target,
            sent,
            sent_at,
            latency: Duration::ZERO,
            status: None,
            retry_after: None,
            position: None,
            error: None,
        };
        match result {
            Ok(response) => {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                attempt.status = Some(response.status().as_u16());
                attempt.retry_after = header("retry-after");
                attempt.position = header("herald-position").and_then(|p| p.parse().ok());
                if let Err(e) = response.bytes().await {
                    attempt.error = Some(e.to_string());
                    attempt.status = None;
                    attempt.position = None;
                }
            }
            Err(e) => attempt.error = Some(e.to_string()),
        }
        attempt.latency = sent.elapsed();
        attempt
    }

    pub fn answered(&self) -> Instant {
        self.sent + self.latency
    }

    /// A 2xx with its `Herald-Position`: the client was told it is done.
    pub fn acknowledged(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s)) && self.position.is_some()
    }
}

pub struct Writers {
    tasks: Vec<JoinHandle<Vec<Attempt>>>,
    stop: watch::Sender<bool>,
    acknowledged: Arc<AtomicUsize>,
}

/// Starts `count` writers with the app's write key against the address in `base`.
pub fn start(count: usize, token: &str, base: watch::Receiver<String>) -> Writers {
    herald_tests::app::install_crypto();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let (stop, stopped) = watch::channel(false);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let tasks = (0..count)
        .map(|writer| {
            let writer = Writer {
                number: writer,
                client: client.clone(),
                token: token.to_owned(),
                base: base.clone(),
                stopped: stopped.clone(),
                acknowledged: acknowledged.clone(),
            };
            tokio::spawn(writer.run())
        })
        .collect();
    Writers {
        tasks,
        stop,
        acknowledged,
    }
}

impl Writers {
    /// Commands acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Waits until `n` commands have been acknowledged (at most `within`).
    pub async fn wait_acknowledged(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.acknowledged() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} commands acknowledged within {within:?}",
                self.acknowledged()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Tells the writers to stop after their current command; every attempt.
    pub async fn stop(self) -> Vec<Attempt> {
        let _ = self.stop.send(true);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(
                task.await
                    .unwrap_or_else(|e| panic!("a writer failed: {e}")),
            );
        }
        all.sort_by_key(|a| a.sent);
        all
    }
}

struct Writer {
    number: usize,
    client: reqwest::Client,
    token: String,
    base: watch::Receiver<String>,
    stopped: watch::Receiver<bool>,
    acknowledged: Arc<AtomicUsize>,
}

impl Writer {
    async fn run(self) -> Vec<Attempt> {
        let mut attempts = Vec::new();
        let mut seq = 0usize;
        while !*self.stopped.borrow() {
            let attempt = self.command(seq).await;
            seq += 1;
            if attempt.acknowledged() {
                self.acknowledged.fetch_add(1, Ordering::Relaxed);
            } else {
                tokio::time::sleep(AFTER_FAILURE).await;
            }
            attempts.push(attempt);
        }
        attempts
    }

    /// The `seq`th command: a device's token, that device's property, a
    /// user's name, in turn.
    async fn command(&self, seq: usize) -> Attempt {
        let w = self.number;
        let marker = format!("rel-{w}-{seq}");
        let round = seq / 3;
        let device = format!("rel-w{w}-d{}", round % DEVICES);
        let user = format!("rel-w{w}-u{}", round % USERS);
        let base = self.base.borrow().clone();
        let (request, target) = match seq % 3 {
            0 => (
                self.client
                    .put(format!("{base}/v1/devices/{device}"))
                    .json(&device_body(&marker)),
                Target {
                    id: device,
                    field: Field::PushToken,
                },
            ),
            1 => (
                self.client
                    .patch(format!("{base}/v1/devices/{device}/properties"))
                    .json(&json!({"properties": {"marker": marker}})),
                Target {
                    id: device,
                    field: Field::Property,
                },
            ),
            _ => (
                self.client
                    .put(format!("{base}/v1/users/{user}"))
                    .json(&json!({"name": marker})),
                Target {
                    id: user,
                    field: Field::UserName,
                },
            ),
        };
        Attempt::send(request.bearer_auth(&self.token), marker, target).await
    }
}

/// The `q` quantile (0..=1) of `values`.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
