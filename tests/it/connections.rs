//! What one client can hold: connections that send nothing, half a head, a
//! body a byte at a time, or sit idle after an answer are closed on time
//! while other requests go on; oversized URIs and heads get problem
//! documents like every other error, including the ones hyper answers
//! before Herald's code runs.

use std::time::{Duration, Instant};

use herald_tests::app::device_body;
use herald_tests::{Backend, TestApp, TestDb};
use infra::config::HttpLimits;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: HttpLimits = HttpLimits {
    header_timeout: Duration::from_secs(4),
    keep_alive_timeout: Duration::from_secs(6),
    body_timeout: Duration::from_secs(4),
    idle_timeout: Duration::from_secs(10),
    max_connections: 200,
};

async fn spawn() -> TestApp {
    let db = TestDb::new(Backend::Sqlite)
        .await
        .unwrap_or_else(|| panic!("SQLite is always there"));
    TestApp::spawn_on(db, |c| c.http = LIMITS).await
}

async fn open(app: &TestApp, first_bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    stream
        .write_all(first_bytes)
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    stream
}

/// Reads until the server closes; returns what it sent and when it closed.
async fn until_closed(mut stream: TcpStream, deadline: Duration) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let result = tokio::time::timeout(deadline, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "still open after {deadline:?}; got {:?}",
        String::from_utf8_lossy(&got)
    );
    (got, Instant::now())
}

/// Status and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(raw: &[u8]) -> (u16, String, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (
        status,
        content_type,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_idle_connections_are_closed_while_others_are_served() {
    let app = spawn().await;
    let key = app.create_app("a").await;
    let started = Instant::now();
    let mut silent = Vec::new();
    let mut half_head = Vec::new();
    let mut slow_body = Vec::new();
    let mut kept_alive = Vec::new();
    for i in 0..20 {
        silent.push(open(&app, b"").await);
        half_head.push(open(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await);
        let head = format!(
            "PUT /v1/devices/slow-{i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{",
            key.token
        );
        slow_body.push(open(&app, head.as_bytes()).await);
        let mut alive = open(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut buf = [0u8; 1024];
        let n = alive.read(&mut buf).await.unwrap_or_default();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        kept_alive.push(alive);
    }

    // Meanwhile, everybody else is served (on fresh connections: this
    // server's keep-alive timeout is short enough to race a pooled one).
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..20 {
        let resp = fresh
            .put(app.url(&format!("/v1/devices/ok-{i}")))
            .bearer_auth(&key.token)
            .json(&device_body("t"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("a normal request failed: {e:?}"));
        assert_eq!(resp.status(), 201);
    }
    assert!(
        started.elapsed() < LIMITS.header_timeout,
        "served only after the slow ones were closed"
    );

    let margin = Duration::from_secs(3);
    let within = |closed: Instant, limit: Duration| {
        let after = closed - started;
        assert!(
            after >= limit - Duration::from_millis(100) && after <= limit + margin,
            "closed after {after:?}, the limit is {limit:?}"
        );
    };
    for stream in half_head.into_iter().chain(silent) {
        let (_, closed) = until_closed(stream, LIMITS.header_timeout + margin).await;
        within(closed, LIMITS.header_timeout);
    }
    for stream in kept_alive {
        let (_, closed) = until_closed(stream, LIMITS.keep_alive_timeout + margin).await;
        within(closed, LIMITS.keep_alive_timeout);
    }
    for stream in slow_body {
        let (answer, _) = until_closed(stream, LIMITS.body_timeout + margin).await;
        let (status, content_type, body) = parse_answer(&answer);
        assert_eq!(status, 408, "{:?}", String::from_utf8_lossy(&answer));
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["status"], 408);
    }
    // Nothing half-sent was written.
    let events = app.events(&key.token).await;
    assert!(
        events
            .iter()
            .all(|e| !e["stream"].as_str().unwrap_or_default().contains("slow"))
    );
    eprintln!(
        "connections: 80 slow or idle connections closed on time (last after {:?}); 20 writes served meanwhile",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_uris_and_heads_get_problem_documents() {
    let app = spawn().await;
    let long_path = |n: usize| format!("/v1/devices/{}", "a".repeat(n));
    let cases: Vec<(String, u16)> = vec![
        // Herald's own limit.
        (
            format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", long_path(10_000)),
            414,
        ),
        // Past hyper's: answered by hyper, rewritten on the way out.
        (
            format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", long_path(70_000)),
            414,
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "b".repeat(70_000)
            ),
            431,
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "b".repeat(200_000)
            ),
            431,
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..150)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>()
            ),
            431,
        ),
        ("GET /healthz HTTP/1.1\r\nHost x\r\n\r\n".to_owned(), 400),
    ];
    for (request, expected) in cases {
        let request = request.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        let stream = open(&app, request.as_bytes()).await;
        let (answer, _) = until_closed(stream, Duration::from_secs(5)).await;
        let (status, content_type, body) = parse_answer(&answer);
        let shown = String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
        assert_eq!(status, expected, "{shown}");
        assert_eq!(content_type, "application/problem+json", "{shown}");
        assert_eq!(body["status"], expected, "{shown}");
        assert!(
            body["type"].is_string() && body["detail"].is_string(),
            "{shown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let app = spawn().await;
    let mut stream = open(&app, b"G").await;
    let started = Instant::now();
    let drip = tokio::spawn(async move {
        for byte in b"ET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if stream.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        started.elapsed()
    });
    let cut_after = tokio::time::timeout(LIMITS.header_timeout * 3, drip)
        .await
        .unwrap_or_else(|_| panic!("a dripping head was never cut off"))
        .unwrap_or_default();
    assert!(
        cut_after < LIMITS.header_timeout * 2,
        "cut after {cut_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_connection_cap_clients_wait_for_a_free_slot() {
    let db = TestDb::new(Backend::Sqlite)
        .await
        .unwrap_or_else(|| panic!("SQLite is always there"));
    let limits = HttpLimits {
        max_connections: 10,
        header_timeout: Duration::from_secs(2),
        ..LIMITS
    };
    let app = TestApp::spawn_on(db, |c| c.http = limits).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(open(&app, b"").await);
    }
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .get(app.url("/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(resp.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "served at once ({waited:?}): the cap did not bind"
    );
    drop(held);
}
