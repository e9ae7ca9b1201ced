//! The log's filters read through indexes; whatever the index, each returns
//! exactly what a scan of the whole app log, filtered here, returns, page
//! by page.

use herald_tests::app::{device_body, segment};
use herald_tests::{Backend, TestApp, on_both};
use serde_json::{Value, json};

/// Every event the filter `query` returns, following `next_after` with
/// pages of `limit`.
async fn filtered(app: &TestApp, token: &str, query: &str, limit: usize) -> Vec<i64> {
    let mut after = 0;
    let mut out = Vec::new();
    loop {
        let r = app
            .get(
                &format!("/v1/events?{query}&after={after}&limit={limit}"),
                token,
            )
            .await;
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        let page = r.body["events"].as_array().cloned().unwrap_or_default();
        out.extend(page.iter().filter_map(|e| e["position"].as_i64()));
        match r.body["next_after"].as_i64() {
            Some(next) if !page.is_empty() => after = next,
            _ => return out,
        }
    }
}

async fn send_as(app: &TestApp, token: &str, correlation: &str, path: &str, body: Value) {
    let r = app
        .client
        .put(app.url(path))
        .bearer_auth(token)
        .header("x-correlation-id", correlation)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

on_both!(
    every_indexed_filter_returns_what_a_full_scan_returns,
    same_as_scan
);
async fn same_as_scan(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let b = app.create_app("b").await;
    let second = app.key_with_roles(&a.token, &["write", "read"]).await;
    for i in 0..12 {
        let (token, correlation) = if i % 3 == 0 {
            (&second, "batch-x")
        } else {
            (&a.token, "batch-y")
        };
        send_as(
            &app,
            token,
            correlation,
            &format!("/v1/devices/d{i}"),
            device_body(&format!("t{i}")),
        )
        .await;
        send_as(
            &app,
            token,
            correlation,
            &format!("/v1/users/u{i}"),
            json!({"name": format!("n{i}")}),
        )
        .await;
        // The other app writes the same streams, types, correlations.
        send_as(
            &app,
            &b.token,
            correlation,
            &format!("/v1/devices/d{i}"),
            device_body("o"),
        )
        .await;
        if i % 4 == 0 {
            let props = json!({"properties": {"plan": "pro"}});
            let r = app
                .patch(&format!("/v1/devices/d{i}/properties"), token, props)
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    let all = app.events(&a.token).await;
    assert!(all.len() >= 28, "{}", all.len());
    let middle = &all[all.len() / 3]["recorded_at"];
    let late = &all[2 * all.len() / 3]["recorded_at"];
    let (since, until) = (
        middle.as_str().unwrap_or_default(),
        late.as_str().unwrap_or_default(),
    );
    let second_actor = all
        .iter()
        .find(|e| e["metadata"]["correlation_id"] == "batch-x")
        .map(|e| {
            e["metadata"]["actor"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    assert!(second_actor.starts_with("key:"), "{second_actor}");

    type Check = Box<dyn Fn(&Value) -> bool>;
    let field = |name: &'static str, value: String| -> Check {
        Box::new(move |e: &Value| e["metadata"][name] == value.as_str())
    };
    let typed = |t: &'static str| -> Check { Box::new(move |e: &Value| e["event_type"] == t) };
    let prefixed = |p: &'static str| -> Check {
        Box::new(move |e: &Value| e["event_type"].as_str().is_some_and(|t| t.starts_with(p)))
    };
    let (s, u) = (since.to_owned(), until.to_owned());
    let cases: Vec<(String, Check)> = vec![
        ("type=user.created".into(), typed("user.created")),
        ("type=device.*".into(), prefixed("device.")),
        ("type=dev*".into(), prefixed("dev")),
        (
            "type=device.registered,user.*".into(),
            Box::new(|e: &Value| {
                e["event_type"] == "device.registered"
                    || e["event_type"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("user."))
            }),
        ),
        ("type=device".into(), typed("device")),
        ("type=nothing.*".into(), prefixed("nothing.")),
        (
            format!("actor={}", segment(&second_actor)),
            field("actor", second_actor.clone()),
        ),
        (
            "correlation_id=batch-x".into(),
            field("correlation_id", "batch-x".into()),
        ),
        (
            "stream=device%3Ad4".into(),
            Box::new(|e: &Value| e["stream"] == "device:d4"),
        ),
        // Empty values filter nothing, as an empty `type` does.
        (
            "type=&stream=&actor=&correlation_id=".into(),
            Box::new(|_: &Value| true),
        ),
        (
            format!("since={}&until={}", segment(since), segment(until)),
            Box::new(move |e: &Value| {
                let t = e["recorded_at"].as_str().unwrap_or_default();
                parse(t) >= parse(&s) && parse(t) < parse(&u)
            }),
        ),
        (
            format!(
                "type=device.*&correlation_id=batch-y&since={}",
                segment(since)
            ),
            {
                let s = since.to_owned();
                Box::new(move |e: &Value| {
                    e["event_type"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("device."))
                        && e["metadata"]["correlation_id"] == "batch-y"
                        && parse(e["recorded_at"].as_str().unwrap_or_default()) >= parse(&s)
                })
            },
        ),
    ];
    for (query, check) in &cases {
        let expected: Vec<i64> = all
            .iter()
            .filter(|e| check(e))
            .filter_map(|e| e["position"].as_i64())
            .collect();
        for limit in [1000, 3] {
            assert_eq!(
                filtered(&app, &a.token, query, limit).await,
                expected,
                "{query} (limit {limit})"
            );
        }
    }
}

fn parse(t: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|e| panic!("{t}: {e}"))
}
