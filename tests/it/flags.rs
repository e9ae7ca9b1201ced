//! Feature flags: admin CRUD as events, evaluation for a registered device
//! or from the `X-App-*` headers (versions, platforms, properties,
//! percentage rollouts), an unknown flag off, and changes seen at once.

use herald_tests::app::{AppKey, device_body};
use herald_tests::{Backend, TestApp, on_both};
use serde_json::{Value, json};

async fn evaluate(app: &TestApp, key: &AppKey, query: &str, headers: &[(&str, &str)]) -> Value {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/feature-flags/evaluate{query}")))
        .bearer_auth(&key.token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp =
        herald_tests::app::read(request.send().await.unwrap_or_else(|e| panic!("{e}"))).await;
    assert_eq!(resp.status, 200, "{query}: {}", resp.body);
    resp.body
}

/// name -> is_active, from an evaluation of every flag.
fn active(body: &Value) -> Vec<(String, bool)> {
    body["flags"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap_or_default().to_owned(),
                        e["is_active"].as_bool().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn on(body: &Value, name: &str) -> bool {
    active(body).iter().any(|(n, a)| n == name && *a)
}

async fn create(app: &TestApp, key: &AppKey, body: Value) -> Value {
    let resp = app
        .post("/v1/feature-flags", &key.token, body.clone())
        .await;
    assert_eq!(resp.status, 201, "{body}: {}", resp.body);
    resp.body
}

on_both!(
    feature_flags_are_events_and_evaluate_per_device,
    flags_end_to_end
);
async fn flags_end_to_end(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("flags").await;
    for (id, plan, platform) in [("d1", "pro", "android"), ("d2", "free", "ios")] {
        let mut body = device_body(&format!("tok-{id}"));
        body["device_platform"] = json!(platform);
        assert_eq!(
            app.put(&format!("/v1/devices/{id}"), &key.token, body)
                .await
                .status,
            201
        );
        let r = app
            .patch(
                &format!("/v1/devices/{id}/properties"),
                &key.token,
                json!({"properties": {"plan": plan, "app_version": "1.4.0"}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let bucket = app.get("/v1/devices/d1", &key.token).await.body["random_bucket"]
        .as_i64()
        .unwrap_or_default();

    let created = create(
        &app,
        &key,
        json!({"name": "always", "enabled": true, "description": "on for all", "metadata": {"color": "blue", "n": 3}}),
    )
    .await;
    assert_eq!(created["metadata"], json!({"color": "blue", "n": 3}));
    assert_eq!(created["description"], "on for all");
    create(&app, &key, json!({"name": "off"})).await;
    create(
        &app,
        &key,
        json!({"name": "pro", "enabled": true, "conditions": {"key": "plan", "operator": "str_eq", "value": "pro"}}),
    )
    .await;
    create(
        &app,
        &key,
        json!({"name": "v2", "enabled": true, "conditions": {"key": "app_version", "operator": "version_gte", "value": "2.0"}}),
    )
    .await;
    create(
        &app,
        &key,
        json!({"name": "rollout", "enabled": true, "conditions": {"key": "random_bucket", "operator": "int_lte", "value": bucket}}),
    )
    .await;
    create(
        &app,
        &key,
        json!({"name": "ios.only", "enabled": true, "conditions": {"key": "device_platform", "operator": "str_eq", "value": "ios"}}),
    )
    .await;

    // Refusals.
    let writer = app.key_with_roles(&key.token, &["write", "read"]).await;
    app.post("/v1/feature-flags", &writer, json!({"name": "x"}))
        .await
        .problem(403);
    app.get("/v1/feature-flags", &writer).await.problem(403);
    app.post("/v1/feature-flags", &key.token, json!({"name": "always"}))
        .await
        .problem(409);
    for (body, field) in [
        (json!({"name": "no spaces"}), "name"),
        (json!({"name": "evaluate"}), "name"),
        (
            json!({"name": "c", "conditions": {"key": "plan", "operator": "nope"}}),
            "conditions.operator",
        ),
        (json!({"name": "m", "metadata": {"f": 1.5}}), "metadata.f"),
    ] {
        let resp = app
            .post("/v1/feature-flags", &key.token, body.clone())
            .await;
        assert_eq!(resp.invalid_fields(), [field], "{body}: {}", resp.body);
    }
    let not_object = app
        .post(
            "/v1/feature-flags",
            &key.token,
            json!({"name": "m", "metadata": [1]}),
        )
        .await;
    assert_eq!(not_object.status, 400, "{}", not_object.body);

    // A registered device.
    let d1 = evaluate(&app, &key, "?external_id=d1", &[]).await;
    assert_eq!(
        active(&d1),
        [
            ("always".to_owned(), true),
            ("ios.only".to_owned(), false),
            ("off".to_owned(), false),
            ("pro".to_owned(), true),
            ("rollout".to_owned(), true),
            ("v2".to_owned(), false),
        ]
    );
    assert_eq!(d1["flags"][0]["metadata"], json!({"color": "blue", "n": 3}));
    let d2 = evaluate(&app, &key, "?external_id=d2", &[]).await;
    assert!(!on(&d2, "pro") && on(&d2, "ios.only"));
    // The app's version from the header overrides the stored one.
    let newer = evaluate(&app, &key, "?external_id=d1", &[("X-App-Version", "2.1")]).await;
    assert!(on(&newer, "v2"));

    // A device not registered yet: its headers; its bucket is stable.
    let fresh = [
        ("X-App-Device-Id", "new-1"),
        ("X-App-Version", "2.0.0"),
        ("X-App-Platform", "2"),
    ];
    let first = evaluate(&app, &key, "", &fresh).await;
    assert!(on(&first, "v2") && on(&first, "ios.only") && !on(&first, "pro"));
    assert_eq!(
        active(&evaluate(&app, &key, "", &fresh).await),
        active(&first)
    );
    let unknown = evaluate(
        &app,
        &key,
        "?external_id=not-registered",
        &[("X-App-Platform", "ios")],
    )
    .await;
    assert!(on(&unknown, "ios.only"));
    let bad = app
        .client
        .get(app.url("/v1/feature-flags/evaluate"))
        .bearer_auth(&key.token)
        .header("X-App-Platform", "amiga")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.status(), 400);

    // One flag; an unknown one is off.
    let one = evaluate(&app, &key, "/pro?external_id=d1", &[]).await;
    assert_eq!(
        one,
        json!({"name": "pro", "is_active": true, "metadata": {}})
    );
    let missing = evaluate(&app, &key, "/nothing-here", &[]).await;
    assert_eq!(
        missing,
        json!({"name": "nothing-here", "is_active": false, "metadata": {}})
    );

    // Changes show at once; a deleted flag is gone.
    let patched = app
        .patch(
            "/v1/feature-flags/pro",
            &key.token,
            json!({"conditions": null, "metadata": {"v": 2}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["conditions"], Value::Null);
    assert!(on(
        &evaluate(&app, &key, "?external_id=d2", &[]).await,
        "pro"
    ));
    let off = app
        .patch(
            "/v1/feature-flags/always",
            &key.token,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(off.body["enabled"], false);
    assert!(!on(
        &evaluate(&app, &key, "?external_id=d1", &[]).await,
        "always"
    ));
    assert_eq!(
        app.delete("/v1/feature-flags/off", &key.token).await.status,
        204
    );
    app.get("/v1/feature-flags/off", &key.token)
        .await
        .problem(404);
    app.delete("/v1/feature-flags/off", &key.token)
        .await
        .problem(404);
    app.patch(
        "/v1/feature-flags/off",
        &key.token,
        json!({"enabled": true}),
    )
    .await
    .problem(404);
    let list = app.get("/v1/feature-flags", &key.token).await;
    let names: Vec<&str> = list.body["flags"]
        .as_array()
        .map(|f| f.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["always", "ios.only", "pro", "rollout", "v2"]);
    let got = app.get("/v1/feature-flags/pro", &key.token).await;
    assert_eq!(got.body["metadata"], json!({"v": 2}));

    // Every change is in the log and reaches the change queue.
    let events = app.events(&key.token).await;
    let count = |t: &str| events.iter().filter(|e| e["event_type"] == t).count();
    assert_eq!(
        (
            count("feature_flag.created"),
            count("feature_flag.updated"),
            count("feature_flag.deleted")
        ),
        (6, 2, 1)
    );
    app.idle().await;
    let changes = app
        .get("/v1/change-queues/default/changes?limit=500", &key.token)
        .await;
    let types: Vec<&str> = changes.body["changes"]
        .as_array()
        .map(|c| c.iter().filter_map(|x| x["type"].as_str()).collect())
        .unwrap_or_default();
    assert!(types.contains(&"feature_flag.deleted"), "{types:?}");
}

on_both!(
    a_device_changed_on_another_node_is_evaluated_afresh_with_the_consistency_token,
    token_across_nodes
);
async fn token_across_nodes(backend: Backend) {
    let Some(a) = TestApp::spawn(backend).await else {
        return;
    };
    let key = a.create_app("flags").await;
    let b = a.another_node(|_| {}).await;
    create(
        &a,
        &key,
        json!({"name": "pro-only", "enabled": true,
               "conditions": {"key": "plan", "operator": "str_eq", "value": "pro"}}),
    )
    .await;
    let put = a.put("/v1/devices/d1", &key.token, device_body("t1")).await;
    assert!(put.status < 300, "{}", put.body);
    let free = a
        .patch(
            "/v1/devices/d1/properties",
            &key.token,
            json!({"properties": {"plan": "free"}}),
        )
        .await;
    assert!(free.status < 300, "{}", free.body);
    let position = free
        .header("herald-position")
        .unwrap_or_default()
        .to_owned();
    let before = evaluate(
        &b,
        &key,
        "?external_id=d1",
        &[("Herald-Min-Position", &position)],
    )
    .await;
    assert!(!on(&before, "pro-only"), "{before}");
    // B now keeps d1 (plan free) in memory; A changes it.
    let pro = a
        .patch(
            "/v1/devices/d1/properties",
            &key.token,
            json!({"properties": {"plan": "pro"}}),
        )
        .await;
    assert!(pro.status < 300, "{}", pro.body);
    let position = pro.header("herald-position").unwrap_or_default().to_owned();
    // On A, which made the change, at once; on B with the write's token.
    assert!(on(
        &evaluate(&a, &key, "?external_id=d1", &[]).await,
        "pro-only"
    ));
    let after = evaluate(
        &b,
        &key,
        "?external_id=d1",
        &[("Herald-Min-Position", &position)],
    )
    .await;
    assert!(on(&after, "pro-only"), "{after}");
}
