//! Change queues: what enters them, drains that hand out and delete exactly
//! what they return, concurrency, backfill, expiry, and refusals.

use std::collections::HashSet;
use std::sync::Arc;

use domain::Metadata;
use domain::device::{self, DeviceEvent, PushToken};
use domain::event::DomainEvent;
use domain::ids::{AppId, ExternalId};
use domain::platform::{DevicePlatform, SendPlatform};
use domain::properties::PropertyValue;
use herald_tests::app::device_body;
use herald_tests::{Backend, TestApp, on_both};
use infra::store::{AppendRequest, ExpectedVersion, NewEvent};
use projections::change_queues::drain;
use serde_json::{Value, json};

async fn drain_all(app: &TestApp, token: &str, queue: &str, limit: usize) -> Vec<Value> {
    // A command does not wait for the change-queue feed: let it catch up.
    app.settled().await;
    let mut all = Vec::new();
    loop {
        let resp = app
            .get(
                &format!("/v1/change-queues/{queue}/changes?limit={limit}"),
                token,
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        let changes = resp.body["changes"].as_array().cloned().unwrap_or_default();
        if changes.is_empty() {
            return all;
        }
        all.extend(changes);
    }
}

/// Appends a device registration and `n - 1` property changes in one go.
async fn bulk(app: &TestApp, app_id: &str, n: usize) {
    let app_id = AppId(app_id.parse().unwrap_or_else(|e| panic!("{e}")));
    let external_id = ExternalId::parse("bulk").unwrap_or_else(|e| panic!("{e}"));
    let mut events = vec![DeviceEvent::Registered {
        external_id: external_id.clone(),
        push_token: PushToken::parse("bulk-token").unwrap_or_else(|e| panic!("{e}")),
        send_platform: SendPlatform::Fcm,
        device_platform: DevicePlatform::Android,
        random_bucket: 1,
        user_id: None,
        has_permission: true,
    }];
    for i in 1..n {
        events.push(DeviceEvent::PropertiesChanged {
            external_id: external_id.clone(),
            set: [("n".to_owned(), PropertyValue::Int(i as i64))]
                .into_iter()
                .collect(),
            removed: vec![],
        });
    }
    let request = AppendRequest {
        stream: device::stream(&external_id),
        expected: ExpectedVersion::NoStream,
        events: events
            .iter()
            .map(|e| {
                let (event_type, data) = e.encode();
                NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    event_type,
                    schema_version: 1,
                    data,
                }
            })
            .collect(),
        metadata: Metadata::system(app_id, "test"),
        new_key: None,
    };
    let done = app
        .herald
        .store()
        .append(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        app.herald
            .projections()
            .wait_for(
                "change_queues",
                done.last_position,
                std::time::Duration::from_secs(30)
            )
            .await
    );
}

on_both!(
    the_default_queue_hands_out_integration_events_once,
    default_queue
);
async fn default_queue(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    let b = app.create_app("b").await;
    assert_eq!(
        app.put("/v1/devices/d1", &a.token, device_body("t1"))
            .await
            .status,
        201
    );
    assert_eq!(
        app.put("/v1/devices/d1", &b.token, device_body("t1"))
            .await
            .status,
        201
    );
    assert_eq!(
        app.put("/v1/users/u1", &a.token, json!({"name": "Ann"}))
            .await
            .status,
        201
    );
    let status = json!({"status": "suspended"});
    let written = app.put("/v1/users/u1/status", &a.token, status).await;
    assert_eq!(written.status, 200);
    let position = written
        .header("herald-position")
        .unwrap_or_default()
        .to_owned();

    // The write's consistency token makes the read wait for the feed.
    let list = app.get_at("/v1/change-queues", &a.token, &position).await;
    assert_eq!(list.status, 200);
    let queues = list.body["change_queues"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0]["name"], "default");
    assert_eq!(queues[0]["depth"], 3);
    assert!(queues[0]["oldest_change_at"].is_string());

    let first = app
        .get("/v1/change-queues/default/changes?limit=2", &a.token)
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["remaining"], 1);
    let changes = first.body["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let log = app.events(&a.token).await;
    let registered = log
        .iter()
        .find(|e| e["event_type"] == "device.registered")
        .cloned()
        .unwrap_or_default();
    assert_eq!(changes[0]["id"], registered["event_id"]);
    assert_eq!(changes[0]["type"], "device.registered");
    assert_eq!(changes[0]["subject"], json!({"kind": "device", "id": "d1"}));
    assert_eq!(changes[0]["data"], registered["data"]);
    assert_eq!(changes[0]["position"], registered["position"]);
    assert!(changes[0]["at"].is_string());
    assert_eq!(changes[1]["type"], "user.created");
    let rest = drain_all(&app, &a.token, "default", 100).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["type"], "user.status_updated");
    assert_eq!(rest[0]["subject"], json!({"kind": "user", "id": "u1"}));
    // Handed out means gone; the other app's queue is its own.
    assert!(drain_all(&app, &a.token, "default", 100).await.is_empty());
    assert_eq!(drain_all(&app, &b.token, "default", 100).await.len(), 1);
}

on_both!(drain_limits_are_checked_and_clamped, limits);
async fn limits(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    for bad in ["0", "-1", "abc", "1.5"] {
        let resp = app
            .get(
                &format!("/v1/change-queues/default/changes?limit={bad}"),
                &a.token,
            )
            .await;
        assert_eq!(resp.invalid_fields(), ["limit"], "{bad}");
    }
    bulk(&app, &a.app_id, 520).await;
    let resp = app
        .get("/v1/change-queues/default/changes?limit=100000", &a.token)
        .await;
    assert_eq!(resp.body["changes"].as_array().map(Vec::len), Some(500));
    assert_eq!(resp.body["remaining"], 20);
    let resp = app.get("/v1/change-queues/default/changes", &a.token).await;
    assert_eq!(
        resp.body["changes"].as_array().map(Vec::len),
        Some(20),
        "default 100"
    );
    assert_eq!(
        app.get("/v1/change-queues/nope/changes", &a.token)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get("/v1/change-queues/Bad%20Name/changes", &a.token)
            .await
            .status,
        404
    );
}

on_both!(parallel_drains_never_share_a_change_and_lose_none, parallel);
async fn parallel(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    bulk(&app, &a.app_id, 400).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let app = app.clone();
        let token = a.token.clone();
        tasks.push(tokio::spawn(async move {
            drain_all(&app, &token, "default", 7).await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let got = task.await.unwrap_or_else(|e| panic!("{e}"));
        let positions: Vec<i64> = got.iter().filter_map(|c| c["position"].as_i64()).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "each drainer sees log order"
        );
        ids.extend(
            got.into_iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned)),
        );
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a change was handed out twice");
    assert_eq!(ids.len(), 400, "changes were lost");
    let list = app.get("/v1/change-queues", &a.token).await;
    assert_eq!(
        list.body["change_queues"][0]["depth"], 0,
        "the depth counter kept up"
    );
}

on_both!(a_drain_that_does_not_commit_leaves_its_changes, uncommitted);
async fn uncommitted(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.create_app("a").await;
    for i in 0..5 {
        assert_eq!(
            app.put(&format!("/v1/devices/d{i}"), &a.token, device_body("t"))
                .await
                .status,
            201
        );
    }
    // The queue's feed follows the log apart from the commands.
    app.settled().await;
    let app_id: uuid::Uuid = a.app_id.parse().unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::Utc::now();
    let failed = drain::drain(app.herald.db(), app_id, "default", 3, now, |changes, _| {
        assert_eq!(changes.len(), 3);
        Err::<(), _>("the client went away".to_owned())
    })
    .await;
    assert!(matches!(failed, Err(drain::DrainError::Abandoned(_))));
    let all = drain_all(&app, &a.token, "default", 100).await;
    assert_eq!(all.len(), 5, "nothing was lost");
}

on_both!(
    queues_choose_types_start_at_the_head_or_backfill_and_expire,
    custom_queues
);
async fn custom_queues(backend: Backend) {
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
    assert_eq!(
        app.put("/v1/users/u1", &a.token, json!({})).await.status,
        201
    );
    let before = app.events(&a.token).await;
    let start = before[1]["position"].as_i64().unwrap_or_default(); // after api_key.created

    let created = app
        .post(
            "/v1/change-queues",
            &a.token,
            json!({"name": "users", "event_types": ["user.*"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["depth"], 0, "a new queue starts at the head");
    let backfill =
        json!({"name": "all-devices", "event_types": ["device.*"], "from_position": start});
    let created = app.post("/v1/change-queues", &a.token, backfill).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["depth"], 1, "backfilled: {}", created.body);
    let expiring = json!({"name": "short", "max_age_seconds": 1});
    assert_eq!(
        app.post("/v1/change-queues", &a.token, expiring)
            .await
            .status,
        201
    );

    assert_eq!(
        app.put("/v1/users/u2", &a.token, json!({})).await.status,
        201
    );
    assert_eq!(
        app.put("/v1/devices/d2", &a.token, device_body("t2"))
            .await
            .status,
        201
    );

    let users = drain_all(&app, &a.token, "users", 100).await;
    assert_eq!(
        users
            .iter()
            .map(|c| c["subject"]["id"].clone())
            .collect::<Vec<_>>(),
        ["u2"]
    );
    let devices = drain_all(&app, &a.token, "all-devices", 100).await;
    assert_eq!(
        devices
            .iter()
            .map(|c| c["subject"]["id"].clone())
            .collect::<Vec<_>>(),
        ["d1", "d2"]
    );
    // `default` got everything since the app was created.
    assert_eq!(drain_all(&app, &a.token, "default", 100).await.len(), 4);

    // Two changes in `short`; seen from two seconds on, both expired.
    let app_id: uuid::Uuid = a.app_id.parse().unwrap_or_else(|e| panic!("{e}"));
    let later = chrono::Utc::now() + chrono::Duration::seconds(2);
    let drained = drain::drain(
        app.herald.db(),
        app_id,
        "short",
        100,
        later,
        |c, remaining| Ok((c.len(), remaining)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(drained, (0, 0));
    let list = app.get("/v1/change-queues", &a.token).await;
    let short = list.body["change_queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "short").cloned())
        .unwrap_or_default();
    assert_eq!(short["expired"], 2);
    assert_eq!(short["depth"], 0);

    // A queue created before ages were bounded may hold any age: its
    // drain expires nothing (the cut-off saturates; it once overflowed).
    let mut tx = app
        .herald
        .db()
        .begin()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    projections::on_tx!(&mut tx, |c| {
        sqlx::query("UPDATE change_queues SET max_age_seconds = $1 WHERE name = 'default'")
            .bind(i64::MAX)
            .execute(c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        app.put("/v1/users/u3", &a.token, json!({})).await.status,
        201
    );
    let kept = drain_all(&app, &a.token, "default", 100).await;
    assert_eq!(
        kept.iter()
            .map(|c| c["subject"]["id"].clone())
            .collect::<Vec<_>>(),
        ["u3"]
    );
    let list = app.get("/v1/change-queues", &a.token).await;
    let default = list.body["change_queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "default").cloned())
        .unwrap_or_default();
    assert_eq!(default["expired"], 0, "{default}");

    // Deleting a queue; refusals.
    assert_eq!(
        app.delete("/v1/change-queues/users", &a.token).await.status,
        204
    );
    assert_eq!(
        app.get("/v1/change-queues/users/changes", &a.token)
            .await
            .status,
        404
    );
    assert_eq!(
        app.delete("/v1/change-queues/users", &a.token).await.status,
        404
    );
    app.delete("/v1/change-queues/default", &a.token)
        .await
        .problem(409);
    app.post("/v1/change-queues", &a.token, json!({"name": "short"}))
        .await
        .problem(409);
    app.post("/v1/change-queues", &a.token, json!({"name": "default"}))
        .await
        .problem(409);
    // An age past ten years is refused (a large one once overflowed the
    // expiry cut-off) and creates nothing.
    for age in [315_360_001i64, 9_223_372_036_855, i64::MAX] {
        let long = json!({"name": "long", "max_age_seconds": age});
        assert_eq!(
            app.post("/v1/change-queues", &a.token, long)
                .await
                .invalid_fields(),
            ["max_age_seconds"]
        );
    }
    // A backfill from a position the log has not reached would sit empty
    // while changes go by: refused, nothing created.
    for from in [1_000_000_000i64, i64::MAX] {
        let ahead = json!({"name": "ahead", "from_position": from});
        assert_eq!(
            app.post("/v1/change-queues", &a.token, ahead)
                .await
                .invalid_fields(),
            ["from_position"]
        );
    }
    for name in ["long", "ahead"] {
        assert_eq!(
            app.get(&format!("/v1/change-queues/{name}/changes"), &a.token)
                .await
                .status,
            404
        );
    }
    // The API document states the same bound as the domain.
    let doc = app.get("/openapi.json", &a.token).await;
    assert_eq!(
        doc.body["components"]["schemas"]["CreateQueue"]["properties"]["max_age_seconds"]
            ["maximum"]
            .as_i64(),
        Some(domain::change_queue::MAX_AGE_SECONDS)
    );
    let bad = json!({"name": "No Spaces", "event_types": ["app.created", "device.*"]});
    assert_eq!(
        app.post("/v1/change-queues", &a.token, bad)
            .await
            .invalid_fields(),
        ["name", "event_types[0]"]
    );
    let reader = app.key_with_roles(&a.token, &["read"]).await;
    assert_eq!(
        app.post("/v1/change-queues", &reader, json!({"name": "x"}))
            .await
            .status,
        403
    );
    assert_eq!(
        app.get("/v1/change-queues/default/changes", &reader)
            .await
            .status,
        200
    );
}
