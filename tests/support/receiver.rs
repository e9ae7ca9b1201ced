//! A real local webhook receiver: records every request and answers as the
//! test scripts it (succeed, fail, hang, redirect, 410, 429 with
//! Retry-After, a JSON body). It can be stopped and started again on the same port, and
//! verifies Standard Webhooks signatures independently of Herald's code.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// A status with extra headers (Retry-After, say).
    WithHeaders(u16, Vec<(&'static str, String)>),
    Redirect(String),
    /// 200 with this JSON body (a stand-in for an API).
    Json(Value),
    /// Never answers.
    Hang,
    /// Answers 200 once [`Receiver::open_gate`] is called.
    Gate,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn webhook_id(&self) -> String {
        self.header("webhook-id").unwrap_or_default().to_owned()
    }

    /// Whether one of the `v1,` signatures verifies with `secret`.
    pub fn signed_by(&self, secret: &str) -> bool {
        verify(
            secret,
            self.header("webhook-id").unwrap_or_default(),
            self.header("webhook-timestamp").unwrap_or_default(),
            &self.body,
            self.header("webhook-signature").unwrap_or_default(),
        )
    }
}

/// Standard Webhooks verification, written from the specification.
pub fn verify(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(encoded) = secret.strip_prefix("whsec_") else {
        return false;
    };
    let Ok(key) = STANDARD.decode(encoded) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    header.split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|sig| STANDARD.decode(sig).ok())
            .is_some_and(|sig| hmac::verify(&key, &signed, &sig).is_ok())
    })
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    received: Mutex<Vec<Received>>,
    count: watch::Sender<usize>,
    /// Open: `Reply::Gate` requests are answered.
    gate: watch::Sender<bool>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    /// Tells the running server to stop accepting and close idle connections.
    server: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Ok(mut server) = self.server.lock()
            && let Some((stop, task)) = server.take()
        {
            let _ = stop.send(true);
            task.abort();
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let next = shared.script.lock().ok().and_then(|mut s| s.pop_front());
        next.unwrap_or_else(|| {
            shared
                .default
                .lock()
                .map(|d| d.clone())
                .unwrap_or(Reply::Status(200))
        })
    };
    if let Ok(mut received) = shared.received.lock() {
        received.push(Received {
            method,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            body: body.to_vec(),
            at: Instant::now(),
        });
        let n = received.len();
        shared.count.send_replace(n);
    }
    let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    match reply {
        Reply::Status(code) => (status(code), "answer from the test receiver").into_response(),
        Reply::WithHeaders(code, headers) => {
            let mut response = (status(code), "busy").into_response();
            for (name, value) in headers {
                if let Ok(v) = value.parse() {
                    response.headers_mut().insert(name, v);
                }
            }
            response
        }
        Reply::Json(body) => axum::Json(body).into_response(),
        Reply::Redirect(to) => {
            let mut response = StatusCode::FOUND.into_response();
            if let Ok(v) = to.parse() {
                response.headers_mut().insert("location", v);
            }
            response
        }
        Reply::Hang => std::future::pending().await,
        Reply::Gate => {
            let mut open = shared.gate.subscribe();
            let _ = open.wait_for(|o| *o).await;
            (StatusCode::OK, "let through").into_response()
        }
    }
}

impl Receiver {
    /// A receiver on a free port, answering 200 unless scripted otherwise.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::Status(200)),
            received: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            gate: watch::Sender::new(false),
        });
        let receiver = Self {
            addr,
            shared,
            server: Mutex::new(None),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        if let Ok(mut server) = self.server.lock() {
            *server = Some((stop, task));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        if let Ok(mut script) = self.shared.script.lock() {
            script.extend(replies);
        }
    }

    /// Answers the requests held by `Reply::Gate` (and any later ones).
    pub fn open_gate(&self) {
        self.shared.gate.send_replace(true);
    }

    /// Answers with `reply` whenever the script is empty.
    pub fn by_default(&self, reply: Reply) {
        if let Ok(mut d) = self.shared.default.lock() {
            *d = reply;
        }
    }

    /// Stops listening and closes idle connections; returns once new
    /// connections are refused (until `restart`).
    pub async fn stop(&self) {
        let server = self.server.lock().ok().and_then(|mut s| s.take());
        if let Some((stop, _task)) = server {
            let _ = stop.send(true);
        }
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the receiver at {} did not stop listening", self.addr);
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Waits until at least `n` requests have arrived (at most `within`),
    /// and returns them all.
    #[track_caller]
    pub fn wait_for(
        &self,
        n: usize,
        within: Duration,
    ) -> impl std::future::Future<Output = Vec<Received>> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let mut rx = self.shared.count.subscribe();
            let reached = tokio::time::timeout(within, rx.wait_for(|c| *c >= n)).await;
            if reached.is_err() {
                let got = self.received();
                panic!(
                    "{caller}: expected {n} requests within {within:?}, got {}: {:?}",
                    got.len(),
                    got.iter()
                        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                        .collect::<Vec<_>>()
                );
            }
            self.received()
        }
    }
}
