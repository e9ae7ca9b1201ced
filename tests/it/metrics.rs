//! `/metrics`: scraped and parsed after real traffic (HTTP, appends, read
//! models, webhook deliveries and push sends), for the root token only on
//! the API address, and without authentication on its own address.

use std::collections::HashMap;

use herald_tests::app::ROOT_TOKEN;
use herald_tests::receiver::{Receiver, Reply};
use herald_tests::{Backend, TestApp, TestDb, on_both};
use serde_json::json;

use crate::notifications::fcm::{self, with_fcm};
use crate::webhooks::Hooked;

/// One sample: the metric name and its labels.
type Series = (String, Vec<(String, String)>);

/// A parsed exposition: every sample, and each family's declared type.
struct Scrape {
    samples: HashMap<Series, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    /// Parses the text format strictly: every sample belongs to a family
    /// declared before it, every line is a comment or a well-formed sample.
    fn parse(text: &str) -> Self {
        let mut samples = HashMap::new();
        let mut types = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(
                    types.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "twice: {line}"
                );
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'), line)),
                None => (series, Vec::new()),
            };
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(name);
            assert!(types.contains_key(family), "no # TYPE before {line}");
            assert!(
                name.starts_with("herald_")
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            assert!(
                samples.insert((name.to_owned(), labels), value).is_none(),
                "duplicate series {line}"
            );
        }
        Self { samples, types }
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.samples.get(&(name.to_owned(), labels)).copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in the scrape"))
    }
}

fn parse_labels(raw: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("{line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label in {line}"),
            }
        };
        labels.push((name.to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels.sort();
    labels
}

async fn scrape(app: &TestApp) -> Scrape {
    let response = reqwest::Client::new()
        .get(app.url("/metrics"))
        .bearer_auth(ROOT_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Scrape::parse(&response.text().await.unwrap_or_default())
}

on_both!(metrics_describe_real_traffic, real_traffic);
async fn real_traffic(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let ok = Receiver::start().await;
    let down = Receiver::start().await;
    down.by_default(Reply::Status(503));
    h.endpoint(json!({"url": ok.url("/ok"), "event_types": ["user.*"]}))
        .await;
    h.endpoint(json!({"url": down.url("/down"), "event_types": ["user.*"]}))
        .await;
    for d in ["d1", "d2", "d3"] {
        h.register(d).await;
    }
    assert_eq!(
        h.app.get("/v1/devices/nope", &h.key.token).await.status,
        404
    );
    h.user("u1", json!({"name": "Ada"})).await;
    h.user("u2", json!({"name": "Bob"})).await;
    h.app.idle().await;
    h.advance(chrono::Duration::seconds(30));
    // The first retries (due after 5 s) run and fail again; the next waits minutes.
    h.app.idle().await;

    let before = scrape(&h.app).await;
    assert_eq!(before.types["herald_http_requests_total"], "counter");
    assert_eq!(
        before.types["herald_http_request_duration_seconds"],
        "histogram"
    );
    let put = [
        ("route", "/v1/devices/{external_id}"),
        ("method", "PUT"),
        ("status", "2xx"),
    ];
    assert_eq!(before.value("herald_http_requests_total", &put), 3.0);
    assert_eq!(
        before.value("herald_http_request_duration_seconds_count", &put),
        3.0
    );
    let mut le_inf = put.to_vec();
    le_inf.push(("le", "+Inf"));
    assert_eq!(
        before.value("herald_http_request_duration_seconds_bucket", &le_inf),
        3.0
    );
    let missing = [
        ("route", "/v1/devices/{external_id}"),
        ("method", "GET"),
        ("status", "4xx"),
    ];
    assert_eq!(before.value("herald_http_requests_total", &missing), 1.0);

    // Read models: caught up after idle, every one named.
    for projection in ["devices", "users", "webhooks"] {
        let labels = |kind| [("projection", projection), ("kind", kind)];
        let lag = before
            .get("herald_projection_lag_events", &labels("read_model"))
            .or_else(|| before.get("herald_projection_lag_events", &labels("reactor_feed")))
            .unwrap_or_else(|| panic!("no lag for {projection}"));
        assert_eq!(lag, 0.0, "{projection}");
    }
    let head = before.value("herald_log_head_position", &[]);
    assert!(head >= 7.0, "head {head}");
    assert!(before.value("herald_appends_total", &[]) >= 7.0);
    assert!(before.value("herald_appended_events_total", &[]) >= 7.0);
    assert!(before.value("herald_append_duration_seconds_count", &[]) >= 7.0);

    // Webhooks: two users to each endpoint; one receiver answers, the other
    // is down (retried later, so still in the backlog, 30 s old).
    let outcome = |o| [("outcome", o)];
    assert_eq!(
        before.value("herald_webhook_deliveries_total", &outcome("delivered")),
        2.0
    );
    let refused = down.received().len();
    assert!(refused >= 2, "{refused}");
    assert_eq!(
        before.value("herald_webhook_deliveries_total", &outcome("retried")),
        refused as f64,
        "each refused attempt, retried later"
    );
    assert_eq!(
        before.value(
            "herald_reactor_delivery_latency_seconds_count",
            &[("reactor", "webhooks")]
        ),
        2.0,
        "only final outcomes are timed"
    );
    assert_eq!(
        before.value("herald_reactor_backlog", &[("reactor", "webhooks")]),
        2.0
    );
    assert!(before.value("herald_webhook_backlog_oldest_seconds", &[]) >= 30.0);
    assert_eq!(
        before.value("herald_reactor_in_flight", &[("reactor", "webhooks")]),
        0.0
    );
    assert_eq!(before.value("herald_database_up", &[]), 1.0);
    let pools: Vec<_> = before
        .samples
        .keys()
        .filter(|(name, _)| name == "herald_db_pool_max_connections")
        .collect();
    assert!(!pools.is_empty());

    // A change queue's depth counts what it holds.
    let queues = before.value("herald_change_queues", &[]);
    let depth = before.value("herald_change_queue_depth", &[]);
    let queue = h
        .app
        .post(
            "/v1/change-queues",
            &h.key.token,
            json!({"name": "crm", "event_types": ["user.created"]}),
        )
        .await;
    assert_eq!(queue.status, 201, "{}", queue.body);
    h.user("u3", json!({"name": "Cy"})).await;
    h.app.settled().await;
    let after = scrape(&h.app).await;
    assert_eq!(after.value("herald_change_queues", &[]), queues + 1.0);
    assert!(
        after.value("herald_change_queue_depth", &[]) >= depth + 1.0,
        "the new queue holds u3's creation"
    );
    assert!(after.value("herald_change_queue_depth_max", &[]) >= 1.0);
    assert!(after.value("herald_log_head_position", &[]) > head);
    // Counters only grow; the scrape itself is counted.
    assert_eq!(after.value("herald_http_requests_total", &put), 3.0);
    let scrapes = [("route", "/metrics"), ("method", "GET"), ("status", "2xx")];
    assert_eq!(after.value("herald_http_requests_total", &scrapes), 1.0);
}

on_both!(metrics_count_push_outcomes_per_provider, push_outcomes);
async fn push_outcomes(backend: Backend) {
    let Some((p, _fake)) = with_fcm(backend).await else {
        return;
    };
    let devices = fcm::DEVICES;
    for d in devices {
        p.device(d, d, "fcm", "android", None).await;
    }
    let n = p
        .notify(json!({"title": "T", "body": "B", "external_ids": devices, "launch": true}))
        .await;
    let done = p.finished(n["id"].as_str().unwrap_or_default()).await;
    assert_eq!(done["status"], "sent", "{done}");
    let s = scrape(&p.app).await;
    let fcm = |o| [("provider", "fcm"), ("outcome", o)];
    assert_eq!(s.value("herald_push_sends_total", &fcm("delivered")), 4.0);
    assert_eq!(
        s.value("herald_push_sends_total", &fcm("invalid_token")),
        2.0
    );
    assert_eq!(
        s.value("herald_push_sends_total", &fcm("error")),
        1.0,
        "internal-1 ran out of retries"
    );
    // busy-1 and quota-1 once each, internal-1 twice before giving up.
    assert_eq!(s.value("herald_push_sends_total", &fcm("retryable")), 4.0);
    assert_eq!(
        s.value(
            "herald_reactor_delivery_latency_seconds_count",
            &[("reactor", "push")]
        ),
        7.0
    );
    assert_eq!(
        s.value("herald_reactor_backlog", &[("reactor", "push")]),
        0.0
    );
}

#[tokio::test]
async fn metrics_need_the_root_token_on_the_api_address_and_nothing_on_their_own() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let address = free.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(free);
    let app = TestApp::spawn_on(db, |c| c.metrics_listen = Some(address)).await;
    let key = app.create_app("m").await;
    let client = reqwest::Client::new();
    let anonymous = client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.get("/metrics", &key.token).await.status, 403);

    let alone = client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alone.status(), 200);
    let s = Scrape::parse(&alone.text().await.unwrap_or_default());
    assert_eq!(
        s.value(
            "herald_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // The same node's series: the app creation went through the API.
    let created = [("route", "/v1/apps"), ("method", "POST"), ("status", "2xx")];
    assert_eq!(s.value("herald_http_requests_total", &created), 1.0);
    let other = client
        .get(format!("http://{address}/v1/apps"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.status(), 404, "only /metrics is served there");
}
