//! The auditors' minimal log read.

use herald_tests::{Backend, TestApp, on_both};
use serde_json::json;

on_both!(auditors_read_their_apps_log_in_order, read_log);
async fn read_log(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let b = app.create_app("b").await;
    for i in 0..5 {
        for key in [&a, &b] {
            let body = json!({"push_token": format!("t{i}"), "send_platform": "apns", "device_platform": "ios"});
            assert!(
                app.put(&format!("/v1/devices/d{i}"), &key.token, body)
                    .await
                    .status
                    < 300
            );
        }
    }
    let page = app.get("/v1/events?limit=3", &a.token).await;
    assert_eq!(page.status, 200);
    let events = page.body["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 3);
    let first = &events[0];
    for field in [
        "position",
        "event_id",
        "app_id",
        "stream",
        "stream_version",
        "event_type",
        "schema_version",
        "data",
        "metadata",
        "recorded_at",
        "hash",
    ] {
        assert!(
            first.get(field).is_some_and(|v| !v.is_null()),
            "missing {field}: {first}"
        );
    }
    assert_eq!(first["event_type"], "app.created");
    assert_eq!(first["metadata"]["actor"], "root");
    assert_eq!(
        first["metadata"]["app_id"].as_str(),
        Some(a.app_id.as_str())
    );
    assert!(
        first["metadata"]["request_id"].is_string()
            && first["metadata"]["correlation_id"].is_string()
    );
    assert_eq!(first["hash"].as_str().map(str::len), Some(64));
    assert_eq!(page.body["next_after"], events[2]["position"]);

    let all = app.events(&a.token).await;
    assert_eq!(all.len(), 2 + 5);
    assert!(
        all.iter()
            .all(|e| e["app_id"].as_str() == Some(a.app_id.as_str())),
        "only the caller's app"
    );
    let positions: Vec<i64> = all.iter().filter_map(|e| e["position"].as_i64()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let device_event = all
        .iter()
        .find(|e| e["event_type"] == "device.registered")
        .cloned()
        .unwrap_or_default();
    assert!(
        device_event["metadata"]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("key:"))
    );

    // Past the end: nothing, and next_after stays.
    let last = positions.last().copied().unwrap_or_default();
    let end = app.get(&format!("/v1/events?after={last}"), &a.token).await;
    assert_eq!(end.body["events"], json!([]));
    assert_eq!(end.body["next_after"], json!(last));
}

on_both!(log_reads_check_their_parameters, log_parameters);
async fn log_parameters(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("after=-1", "after"),
    ] {
        assert_eq!(
            app.get(&format!("/v1/events?{query}"), &a.token)
                .await
                .invalid_fields(),
            [field],
            "{query}"
        );
    }
    assert_eq!(app.get("/v1/events?limit=1000", &a.token).await.status, 200);
}

on_both!(request_and_correlation_ids_reach_the_log, ids_reach_the_log);
async fn ids_reach_the_log(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let resp = app
        .client
        .put(app.url("/v1/devices/d"))
        .bearer_auth(&a.token)
        .header("x-correlation-id", "order-42")
        .json(&json!({"push_token": "t", "send_platform": "fcm", "device_platform": "android"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert!(request_id.is_some());
    let events = app.events(&a.token).await;
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(last["metadata"]["correlation_id"], "order-42");
    assert_eq!(
        last["metadata"]["request_id"].as_str(),
        request_id.as_deref()
    );
    let echoed = |resp: &reqwest::Response| {
        resp.headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(echoed(&resp).as_deref(), Some("order-42"));

    // One that cannot be used (a space) is replaced, and the answer says by
    // what: the events are found under it.
    let replaced = app
        .client
        .put(app.url("/v1/devices/e"))
        .bearer_auth(&a.token)
        .header("x-correlation-id", "order 43")
        .json(&json!({"push_token": "t", "send_platform": "fcm", "device_platform": "android"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let used = echoed(&replaced).unwrap_or_default();
    assert!(!used.is_empty() && used != "order 43", "{used:?}");
    let found = app
        .get(&format!("/v1/events?correlation_id={used}"), &a.token)
        .await;
    let streams: Vec<&str> = found.body["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["stream"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(streams, ["device:e"], "{}", found.body);
}
