//! A node keeps the histories of the streams its commands used lately and
//! decides the next command on one without reading the log
//! (`infra/src/runtime/histories.rs`). Another node's writes in between
//! must never be hidden by it: a change decided on a stale history
//! conflicts and is decided again; a command that a stale history would
//! call a no-op, or refuse, is decided again on the log's history.

use herald_tests::app::device_body;
use herald_tests::{Backend, TestApp, on_both};
use serde_json::{Value, json};

on_both!(
    a_kept_history_never_hides_another_nodes_write,
    stale_histories
);
async fn stale_histories(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let other = app.another_node(|_| {}).await;
    let key = app.create_app("histories").await;
    let token = key.token.as_str();
    // `other` keeps the device's history after registering it; this node
    // changes the token behind its back.
    put(&other, token, "tok-a").await;
    put(&app, token, "tok-b").await;
    // What `other`'s history already shows is not "nothing to change".
    put(&other, token, "tok-a").await;
    // A change decided on a stale history is decided again.
    put(&app, token, "tok-c").await;
    put(&other, token, "tok-d").await;

    let tokens: Vec<String> = app
        .stream_events(token, "device:h1")
        .await
        .iter()
        .filter_map(|e| e["data"].get("push_token").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    assert_eq!(tokens, ["tok-a", "tok-b", "tok-a", "tok-c", "tok-d"]);
    app.settled().await;
    other.settled().await;
    for node in [&app, &other] {
        let device = node.get("/v1/devices/h1", token).await;
        assert_eq!(device.body["push_token"], "tok-d", "{}", device.body);
    }

    // A refusal on a stale history is decided again: `other` saw the
    // device deleted; this node registers it anew.
    assert_eq!(
        other
            .put("/v1/devices/h2", token, device_body("tok-e"))
            .await
            .status,
        201
    );
    assert_eq!(other.delete("/v1/devices/h2", token).await.status, 204);
    assert_eq!(
        app.put("/v1/devices/h2", token, device_body("tok-f"))
            .await
            .status,
        201
    );
    let patched = other
        .patch(
            "/v1/devices/h2/properties",
            token,
            json!({"properties": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["properties"]["plan"], "pro");
    assert_eq!(patched.body["push_token"], "tok-f");
}

/// Puts device `h1` with `push_token` through `node`; the answer shows it.
async fn put(node: &TestApp, token: &str, push_token: &str) {
    let resp = node
        .put("/v1/devices/h1", token, device_body(push_token))
        .await;
    assert!(
        resp.status == 200 || resp.status == 201,
        "{push_token}: {} {}",
        resp.status,
        resp.body
    );
    assert_eq!(resp.body["push_token"], push_token, "{}", resp.body);
}
