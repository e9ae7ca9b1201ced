//! Reading the log as an auditor: filters, streams, the live tail and the
//! NDJSON export (checked by the independent Python verifier).

use std::time::Duration;

use herald_tests::app::device_body;
use herald_tests::{Backend, TestApp, on_both};
use serde_json::{Value, json};

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e["event_type"].as_str().map(str::to_owned))
        .collect()
}

async fn page(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let resp = app.get(&format!("/v1/events?{query}"), token).await;
    assert_eq!(resp.status, 200, "{query}: {}", resp.body);
    resp.body["events"].as_array().cloned().unwrap_or_default()
}

on_both!(
    the_log_filters_by_type_stream_actor_correlation_and_time,
    filters
);
async fn filters(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    assert_eq!(
        app.put("/v1/devices/d1", &a.token, device_body("t1"))
            .await
            .status,
        201
    );
    let resp = app
        .client
        .put(app.url("/v1/users/u1"))
        .bearer_auth(&a.token)
        .header("x-correlation-id", "case-7")
        .json(&json!({"name": "Ann"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 201);
    let middle = app.events(&a.token).await;
    let cut = middle
        .last()
        .and_then(|e| e["recorded_at"].as_str())
        .map(str::to_owned)
        .unwrap_or_default();
    let props = json!({"properties": {"plan": "pro"}});
    assert_eq!(
        app.patch("/v1/devices/d1/properties", &a.token, props)
            .await
            .status,
        200
    );
    assert_eq!(
        app.put("/v1/devices/d2", &a.token, device_body("t2"))
            .await
            .status,
        201
    );

    let all = app.events(&a.token).await;
    assert_eq!(
        types(&all),
        [
            "app.created",
            "api_key.created",
            "device.registered",
            "user.created",
            "device.properties_changed",
            "device.registered"
        ]
    );
    assert_eq!(
        types(&page(&app, &a.token, "type=device.*").await),
        [
            "device.registered",
            "device.properties_changed",
            "device.registered"
        ]
    );
    assert_eq!(
        types(&page(&app, &a.token, "type=user.created&type=app.created").await),
        ["app.created", "user.created"]
    );
    assert_eq!(
        types(
            &page(
                &app,
                &a.token,
                "type=user.created,device.properties_changed"
            )
            .await
        ),
        ["user.created", "device.properties_changed"]
    );
    assert_eq!(
        types(&page(&app, &a.token, "stream=device%3Ad1").await),
        ["device.registered", "device.properties_changed"]
    );
    assert_eq!(
        types(&page(&app, &a.token, "correlation_id=case-7").await),
        ["user.created"]
    );
    assert_eq!(
        types(&page(&app, &a.token, "actor=root").await),
        ["app.created", "api_key.created"]
    );
    let actor = all[2]["metadata"]["actor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        page(
            &app,
            &a.token,
            &format!("actor={}", herald_tests::app::segment(&actor))
        )
        .await
        .len(),
        4
    );
    // since is inclusive, until exclusive.
    let since = herald_tests::app::segment(&cut);
    assert_eq!(
        types(&page(&app, &a.token, &format!("since={since}")).await),
        [
            "user.created",
            "device.properties_changed",
            "device.registered"
        ]
    );
    assert_eq!(
        types(&page(&app, &a.token, &format!("until={since}")).await),
        ["app.created", "api_key.created", "device.registered"]
    );
    // Filters combine, and `after` pages through filtered results.
    let first = page(&app, &a.token, "type=device.*&limit=1").await;
    let after = first[0]["position"].as_i64().unwrap_or_default();
    assert_eq!(
        types(
            &page(
                &app,
                &a.token,
                &format!("type=device.*&after={after}&stream=device%3Ad2")
            )
            .await
        ),
        ["device.registered"]
    );
    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
    ] {
        assert_eq!(
            app.get(&format!("/v1/events?{query}"), &a.token)
                .await
                .invalid_fields(),
            [field]
        );
    }
}

on_both!(a_stream_reads_from_a_version, stream_reads);
async fn stream_reads(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let b = app.create_app("b").await;
    assert_eq!(
        app.put("/v1/users/u1", &a.token, json!({"name": "A"}))
            .await
            .status,
        201
    );
    assert_eq!(
        app.put("/v1/users/u1", &a.token, json!({"name": "B"}))
            .await
            .status,
        200
    );
    let status = json!({"status": "suspended"});
    assert_eq!(
        app.put("/v1/users/u1/status", &a.token, status)
            .await
            .status,
        200
    );
    let resp = app
        .get("/v1/streams/user%3Au1/events?from_version=2", &a.token)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let events = resp.body["events"].as_array().cloned().unwrap_or_default();
    let versions: Vec<i64> = events
        .iter()
        .filter_map(|e| e["stream_version"].as_i64())
        .collect();
    assert_eq!(versions, [2, 3]);
    assert_eq!(types(&events), ["user.updated", "user.status_updated"]);
    // Paged by version: the next page starts after the last one read.
    assert_eq!(resp.body["next_from_version"], 4);
    assert_eq!(resp.body.get("next_after"), None);
    let page = app
        .get(
            "/v1/streams/user%3Au1/events?from_version=2&limit=1",
            &a.token,
        )
        .await;
    assert_eq!(page.body["next_from_version"], 3);
    let past = app
        .get("/v1/streams/user%3Au1/events?from_version=9", &a.token)
        .await;
    assert_eq!(past.body["events"], json!([]));
    assert_eq!(past.body["next_from_version"], 9);
    // Another app sees nothing of it.
    let other = app.get("/v1/streams/user%3Au1/events", &b.token).await;
    assert_eq!(other.body["events"], json!([]));
    assert_eq!(
        app.get("/v1/streams/user%3Au1/events?from_version=0", &a.token)
            .await
            .invalid_fields(),
        ["from_version"]
    );
    // Auditors only.
    let reader = app.key_with_roles(&a.token, &["read"]).await;
    assert_eq!(
        app.get("/v1/streams/user%3Au1/events", &reader)
            .await
            .status,
        403
    );
}

/// Reads SSE frames until `count` events arrived; returns (id, event, data).
async fn read_sse(mut response: reqwest::Response, count: usize) -> Vec<(i64, String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no SSE event within 10 s; got {events:?}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the stream ended"));
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let (mut id, mut name, mut data) = (None, String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if let Some(id) = id {
                let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                events.push((id, name, data));
            }
        }
    }
    events
}

on_both!(the_live_tail_follows_the_log_and_resumes, live_tail);
async fn live_tail(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    assert_eq!(
        app.put("/v1/devices/d1", &a.token, device_body("t1"))
            .await
            .status,
        201
    );
    let open = |last: Option<i64>, query: &str| {
        let mut request = app
            .client
            .get(app.url(&format!("/v1/events/live{query}")))
            .bearer_auth(&a.token);
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        request.send()
    };
    let resp = open(None, "").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    );
    // The backlog first, then an event appended while connected.
    let writer = async {
        // Once the backlog has been read the tail waits; this write wakes it.
        assert_eq!(
            app.put("/v1/devices/d2", &a.token, device_body("t2"))
                .await
                .status,
            201
        );
    };
    let got = tokio::join!(read_sse(resp, 4), writer).0;
    let names: Vec<&str> = got.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "app.created",
            "api_key.created",
            "device.registered",
            "device.registered"
        ]
    );
    assert_eq!(got[3].2["stream"], "device:d2");
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "ids are increasing positions"
    );
    assert_eq!(got[1].0, got[1].2["position"].as_i64().unwrap_or_default());

    // Resume after the first event with Last-Event-ID, filtered by type.
    let resp = open(Some(got[1].0), "?type=device.*")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let resumed = read_sse(resp, 2).await;
    assert_eq!(
        resumed.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
        [got[2].0, got[3].0]
    );
    let bad = open(Some(-3), "").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.status(), 400);
}

on_both!(
    an_export_verifies_with_the_independent_script,
    export_verifies
);
async fn export_verifies(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let b = app.create_app("b").await;
    for i in 0..30 {
        let key = if i % 3 == 0 { &b } else { &a };
        let body = device_body(&format!("t{i}"));
        assert!(
            app.put(&format!("/v1/devices/d{i}"), &key.token, body)
                .await
                .status
                < 300
        );
        let props = json!({"properties": {"n": i, "name": format!("Zoë \"{i}\"\n\u{1}"), "tags": ["ü", "é"]}});
        assert_eq!(
            app.patch(&format!("/v1/devices/d{i}/properties"), &key.token, props)
                .await
                .status,
            200
        );
    }
    let resp = app
        .client
        .get(app.url("/v1/events/export"))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let body = resp.text().await.unwrap_or_default();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2 + 20 * 2, "only app a's events");

    let dir = herald_tests::backend::temp_dir("export");
    let file = dir.join("a.ndjson");
    std::fs::write(&file, &body).unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = run_verifier(&file);
    let verify = app.get("/v1/audit/verify", &a.token).await;
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        format!(
            "ok 42 {} {}",
            verify.body["head_position"],
            verify.body["head_hash"].as_str().unwrap_or_default()
        )
    );

    // The CLI writes the same export.
    let cli_file = dir.join("cli.ndjson");
    let database = app.db.cli_args();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald-under-test"))
        .args(["export", "--app", a.app_id.as_str(), "--output"])
        .arg(&cli_file)
        .args(&database)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&cli_file).unwrap_or_default(), body);
    // With a secret key that opens nothing, the export fails and leaves no
    // file to be taken for one.
    let refused_file = dir.join("refused.ndjson");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald-under-test"))
        .args(["export", "--app", a.app_id.as_str(), "--output"])
        .arg(&refused_file)
        .args(&database)
        .args(["--secret-key", "not-the-key-this-database-was-sealed-with"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(!refused_file.exists(), "a partial export was left");

    // One changed character anywhere is caught, at that event.
    let mut event: Value = serde_json::from_str(lines[7]).unwrap_or_default();
    event["data"]["set"]["n"] = json!(999);
    let mut altered: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    altered[7] = event.to_string();
    std::fs::write(&file, altered.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = run_verifier(&file);
    assert!(!ok);
    assert!(
        out.contains(&format!("broken at position {}", event["position"])),
        "{out}"
    );

    // A slice verifies from the hash before it.
    let since = serde_json::from_str::<Value>(lines[10]).unwrap_or_default();
    let before: Value = serde_json::from_str(lines[9]).unwrap_or_default();
    let query = format!(
        "/v1/events/export?since={}",
        herald_tests::app::segment(since["recorded_at"].as_str().unwrap_or_default())
    );
    let slice = app
        .client
        .get(app.url(&query))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert_eq!(slice.lines().count(), lines.len() - 10);
    std::fs::write(&file, &slice).unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = run_verifier_from(&file, before["hash"].as_str());
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

fn run_verifier(file: &std::path::Path) -> (bool, String) {
    run_verifier_from(file, None)
}

fn run_verifier_from(file: &std::path::Path, previous: Option<&str>) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/verify_export.py");
    let mut command = std::process::Command::new("python3");
    command.arg(script).arg(file);
    if let Some(previous) = previous {
        command.args(["--previous", previous]);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to run {script}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
