//! A subject's data key is stored in the transaction of the first append
//! sealed under it. Writers racing to make the same subject's first key
//! (two nodes registering one new device at once) agree on one: the loser's
//! append is refused before anything is written, sealed again under the
//! stored key, and every value stays readable everywhere.

use futures::future::join_all;
use herald_tests::app::device_body;
use herald_tests::{Backend, TestApp, on_both};
use projections::db::Db;
use serde_json::Value;

const DEVICES: usize = 12;
const WRITERS: usize = 6;

on_both!(
    writers_racing_for_a_subjects_first_key_agree_on_one,
    racing_first_keys
);
async fn racing_first_keys(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let other = app.another_node(|_| {}).await;
    let key = app.create_app("keys").await;
    let nodes = [&app, &other];
    let puts = (0..DEVICES).flat_map(|d| {
        (0..WRITERS).map(move |w| (d, w)).map(|(d, w)| {
            let (node, token) = (nodes[w % 2], key.token.clone());
            async move {
                let body = device_body(&format!("tok-{d}-{w}"));
                (
                    d,
                    node.put(&format!("/v1/devices/k{d}"), &token, body).await,
                )
            }
        })
    });
    for (d, resp) in join_all(puts).await {
        assert!(
            resp.status == 200 || resp.status == 201,
            "k{d}: {} {}",
            resp.status,
            resp.body
        );
    }
    app.settled().await;
    other.settled().await;

    for d in 0..DEVICES {
        let sent = format!("tok-{d}-");
        for node in nodes {
            let device = node.get(&format!("/v1/devices/k{d}"), &key.token).await;
            assert_eq!(device.status, 200, "{}", device.body);
            let token = device.body["push_token"].as_str().unwrap_or_default();
            assert!(token.starts_with(&sent), "k{d} reads {token:?}");
        }
        // Every event of the stream, not just the last, opens.
        let events = app.stream_events(&key.token, &format!("device:k{d}")).await;
        assert!(!events.is_empty());
        for event in &events {
            if let Some(token) = event["data"].get("push_token").and_then(Value::as_str) {
                assert!(token.starts_with(&sent), "k{d}: {event}");
            }
        }
    }

    // One key per subject: the racing writers' own keys were never stored.
    let generations: Vec<i64> = match &app.db.db {
        Db::Sqlite(s) => sqlx::query_scalar("SELECT generation FROM subject_keys")
            .fetch_all(&s.reader)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        Db::Postgres(p) => sqlx::query_scalar("SELECT generation FROM subject_keys")
            .fetch_all(&p.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    };
    assert_eq!(generations, vec![1; DEVICES]);
}

on_both!(
    an_append_whose_new_key_was_taken_is_sealed_again_under_the_stored_one,
    taken_keys
);
/// Appends that expect any version are not stopped by a stream conflict:
/// only the key's own check keeps a value from being sealed under a key
/// that was never stored. A user without personal values has no key yet;
/// writers on two nodes then append names to them at once.
async fn taken_keys(backend: Backend) {
    use domain::Metadata;
    use domain::ids::AppId;
    use infra::store::{AppendRequest, ExpectedVersion, NewEvent};
    use serde_json::json;

    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let other = app.another_node(|_| {}).await;
    let key = app.create_app("keys").await;
    let app_id = AppId(key.app_id.parse().unwrap_or_else(|e| panic!("{e}")));
    let users = 6;
    for u in 0..users {
        let created = app
            .put(&format!("/v1/users/racer{u}"), &key.token, json!({}))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let nodes = [&app, &other];
    let appends = (0..users).flat_map(|u| {
        (0..4).map(move |w| {
            let store = nodes[w % 2].herald.store().clone();
            async move {
                let request = AppendRequest {
                    stream: format!("user:racer{u}"),
                    expected: ExpectedVersion::Any,
                    events: vec![NewEvent {
                        event_id: uuid::Uuid::now_v7(),
                        event_type: "user.updated".into(),
                        schema_version: 1,
                        data: json!({"user_id": format!("racer{u}"), "name": format!("Writer {w}")}),
                    }],
                    metadata: Metadata::system(app_id, "test"),
                    new_key: None,
                };
                store.append(request).await
            }
        })
    });
    for appended in join_all(appends).await {
        appended.unwrap_or_else(|e| panic!("append: {e}"));
    }
    for u in 0..users {
        for node in nodes {
            let events = node
                .stream_events(&key.token, &format!("user:racer{u}"))
                .await;
            let names: Vec<&str> = events
                .iter()
                .filter_map(|e| e["data"]["name"].as_str())
                .collect();
            assert_eq!(names.len(), 4, "racer{u}: {names:?}");
            assert!(
                names.iter().all(|n| n.starts_with("Writer ")),
                "racer{u} on a node reads {names:?}"
            );
        }
    }
}
