//! W3C Trace Context end to end: a request's `traceparent` is the parent
//! of its span and its trace id is on every event it writes; the webhook
//! and push reactors continue the event's trace, and their requests carry
//! `traceparent` to the receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_tests::app::{Resp, read};
use herald_tests::receiver::Receiver;
use herald_tests::{Backend, TestApp, on_both};
use infra::telemetry::context::TraceParent;
use opentelemetry::trace::{SpanId, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

use crate::notifications::fcm::with_fcm;
use crate::webhooks::Hooked;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn caller() -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-01")
}

async fn traced_put(app: &TestApp, path: &str, token: &str, body: Value) -> Resp {
    let response = app
        .client
        .put(app.url(path))
        .bearer_auth(token)
        .header("traceparent", caller())
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    read(response).await
}

/// A webhook endpoint on `user.*` and user u1 created in the caller's trace.
async fn traced_user(backend: Backend) -> Option<(Hooked, Receiver)> {
    let h = Hooked::spawn(backend).await?;
    let receiver = Receiver::start().await;
    h.endpoint(json!({"url": receiver.url("/t"), "event_types": ["user.*"]}))
        .await;
    let put = traced_put(&h.app, "/v1/users/u1", &h.key.token, json!({"name": "Ada"})).await;
    assert_eq!(put.status, 201, "{}", put.body);
    Some((h, receiver))
}

fn event_trace(events: &[Value], event_type: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .map(|e| {
            e["metadata"]["trace_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

on_both!(
    the_callers_trace_reaches_events_webhooks_and_pushes,
    trace_flows
);
async fn trace_flows(backend: Backend) {
    // Webhooks: the delivery of a traced write carries its trace.
    let Some((h, receiver)) = traced_user(backend).await else {
        return;
    };
    h.user("u2", json!({"name": "Untraced"})).await;
    h.app.idle().await;
    let events = h.app.events(&h.key.token).await;
    assert_eq!(
        event_trace(&events, "user.created")
            .first()
            .map(String::as_str),
        Some(TRACE)
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let traced: Vec<TraceParent> = got
        .iter()
        .filter_map(|r| r.header("traceparent"))
        .map(|t| TraceParent::parse(t).unwrap_or_else(|| panic!("invalid traceparent {t}")))
        .collect();
    assert_eq!(traced.len(), 1, "only the traced write's delivery: {got:?}");
    assert_eq!(traced[0].trace_id.to_string(), TRACE);
    assert_ne!(
        traced[0].span_id.to_string(),
        CALLER_SPAN,
        "a span of its own"
    );

    // Push: every send of a campaign launched in a trace carries it.
    let Some((p, fake)) = with_fcm(backend).await else {
        return;
    };
    p.device("d1", "d1", "fcm", "android", None).await;
    p.device("d2", "d2", "fcm", "android", None).await;
    let launched = p
        .app
        .client
        .post(p.app.url("/v1/notifications"))
        .bearer_auth(&p.key.token)
        .header("traceparent", caller())
        .json(&json!({"title": "T", "body": "B", "external_ids": ["d1", "d2"], "launch": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let launched = read(launched).await;
    assert_eq!(launched.status, 201, "{}", launched.body);
    let done = p
        .finished(launched.body["id"].as_str().unwrap_or_default())
        .await;
    assert_eq!(done["status"], "sent", "{done}");
    let sends = fake.log.requests();
    assert_eq!(sends.len(), 2);
    for send in &sends {
        let header = send
            .headers
            .get("traceparent")
            .unwrap_or_else(|| panic!("no traceparent: {:?}", send.headers));
        let tp = TraceParent::parse(header).unwrap_or_else(|| panic!("{header}"));
        assert_eq!(tp.trace_id.to_string(), TRACE);
    }
}

/// Collects every finished span.
#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Collected {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if let Ok(mut spans) = self.0.lock() {
            spans.push(span);
        }
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

impl Collected {
    fn named(&self, name: &str) -> Vec<SpanData> {
        self.0
            .lock()
            .map(|s| s.iter().filter(|d| d.name == name).cloned().collect())
            .unwrap_or_default()
    }
}

/// Set in the process that runs [`spans_in_their_own_process`].
const CHILD: &str = "HERALD_TEST_TRACES_CHILD";

/// Span export needs the process's global subscriber (a scoped one races
/// with other tests for tracing's per-callsite caches), so the check runs
/// alone, in a child process of this test binary.
#[test]
fn with_export_on_spans_nest_under_the_callers_span() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let output = std::process::Command::new(exe)
        .args([
            "traces::spans_in_their_own_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the child: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child ran nothing: {stdout}"
    );
}

#[tokio::test]
async fn spans_in_their_own_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let collected = Collected::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(collected.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap_or_else(|e| panic!("{e}"));

    let Some((h, receiver)) = traced_user(Backend::Sqlite).await else {
        return;
    };
    h.app.idle().await;

    let caller_span = SpanId::from_hex(CALLER_SPAN).unwrap_or(SpanId::INVALID);
    let requests = collected.named("request");
    let request = requests
        .iter()
        .find(|s| s.parent_span_id == caller_span)
        .unwrap_or_else(|| panic!("no request span under the caller's: {requests:?}"));
    assert_eq!(request.span_context.trace_id().to_string(), TRACE);
    assert!(request.parent_span_is_remote);
    let events = h.app.events(&h.key.token).await;
    assert_eq!(event_trace(&events, "user.created"), [TRACE]);

    let deliveries = collected.named("webhook.deliver");
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let delivery = &deliveries[0];
    assert_eq!(delivery.span_context.trace_id().to_string(), TRACE);
    let got = receiver.received();
    let header = got[0].header("traceparent").unwrap_or_default();
    let tp = TraceParent::parse(header).unwrap_or_else(|| panic!("{header}"));
    assert_eq!(tp.trace_id.to_string(), TRACE);
    assert_eq!(
        tp.span_id,
        delivery.span_context.span_id(),
        "the receiver's parent is the delivery span"
    );
    // The current context outside any span has no trace.
    assert!(
        !opentelemetry::Context::current()
            .span()
            .span_context()
            .is_valid()
    );
}
