//! API rate limits per key: the node's default, an app's own limit set by
//! the root token, the RateLimit-* headers on every answer, 429 with
//! Retry-After over the limit. Driven by a manual clock: no timing.

use chrono::Duration;
use herald_tests::app::Resp;
use herald_tests::{Backend, TestApp, TestDb, on_both};
use infra::clock::ManualClock;
use serde_json::json;

use crate::webhooks::on_clock;

async fn limited(backend: Backend, per_second: u32) -> Option<(TestApp, ManualClock)> {
    let db = TestDb::new(backend).await?;
    let clock = ManualClock::starting_at(chrono::Utc::now());
    let app = TestApp::spawn_on(db, |c| {
        on_clock(c, &clock);
        c.api_rate_limit = per_second;
    })
    .await;
    Some((app, clock))
}

fn limits(r: &Resp) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        r.header("ratelimit-limit"),
        r.header("ratelimit-remaining"),
        r.header("ratelimit-reset"),
    )
}

on_both!(
    a_key_over_the_limit_gets_429_until_its_bucket_refills,
    over_the_limit
);
async fn over_the_limit(backend: Backend) {
    let Some((app, clock)) = limited(backend, 3).await else {
        return;
    };
    let key = app.create_app("a").await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = app.get("/v1/devices/nope", &key.token).await;
        assert_eq!(r.status, 404, "limited answers are the real ones");
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        remaining.push(
            r.header("ratelimit-remaining")
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let over = app.get("/v1/devices/nope", &key.token).await;
    assert_eq!(over.status, 429, "{}", over.body);
    assert_eq!(
        over.problem(429)["type"],
        "urn:herald:problem:too-many-requests"
    );
    assert_eq!(over.header("retry-after"), Some("1"));
    assert_eq!(limits(&over), (Some("3"), Some("0"), Some("1")));
    // Writes count too, and a refused one changes nothing.
    let put = app
        .put(
            "/v1/devices/d",
            &key.token,
            herald_tests::app::device_body("t"),
        )
        .await;
    assert_eq!(put.status, 429);

    clock.advance(Duration::seconds(1));
    let again = app
        .put(
            "/v1/devices/d",
            &key.token,
            herald_tests::app::device_body("t"),
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(
        app.events(&key.token)
            .await
            .iter()
            .filter(|e| e["event_type"] == "device.registered")
            .count(),
        1
    );

    // Another key of the same app has a bucket of its own; the root token
    // is not limited.
    let other = app.create_app("b").await;
    assert_eq!(app.get("/v1/devices/nope", &other.token).await.status, 404);
    for i in 0..5 {
        let created = app
            .send(
                reqwest::Method::POST,
                "/v1/apps",
                Some(herald_tests::app::ROOT_TOKEN),
                Some(&json!({"name": format!("r{i}")})),
            )
            .await;
        assert_eq!(created.status, 201);
        assert_eq!(created.header("ratelimit-limit"), None);
    }
}

on_both!(an_app_can_have_its_own_limit, own_limit);
async fn own_limit(backend: Backend) {
    let Some((app, clock)) = limited(backend, 3).await else {
        return;
    };
    let key = app.create_app("a").await;
    let other = app.create_app("b").await;
    let patch = |body: serde_json::Value| {
        let app = &app;
        let path = format!("/v1/apps/{}", key.app_id);
        async move {
            app.send(
                reqwest::Method::PATCH,
                &path,
                Some(herald_tests::app::ROOT_TOKEN),
                Some(&body),
            )
            .await
        }
    };
    let set = patch(json!({"rate_limit_per_second": 1})).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["rate_limit_per_second"], 1);
    assert_eq!(set.body["daily_quota"], serde_json::Value::Null);
    assert_eq!(app.get("/v1/devices/x", &key.token).await.status, 404);
    let over = app.get("/v1/devices/x", &key.token).await;
    assert_eq!(over.status, 429);
    assert_eq!(over.header("ratelimit-limit"), Some("1"));
    // The other app keeps the default.
    for _ in 0..3 {
        assert_eq!(app.get("/v1/devices/x", &other.token).await.status, 404);
    }

    // 0: no limit at all; null: back to the default.
    assert_eq!(patch(json!({"rate_limit_per_second": 0})).await.status, 200);
    for _ in 0..10 {
        let r = app.get("/v1/devices/x", &key.token).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.header("ratelimit-limit"), None);
    }
    let reset = patch(json!({"rate_limit_per_second": null})).await;
    assert_eq!(reset.body["rate_limit_per_second"], serde_json::Value::Null);
    clock.advance(Duration::seconds(5));
    assert_eq!(
        app.get("/v1/devices/x", &key.token)
            .await
            .header("ratelimit-limit"),
        Some("3")
    );
    // The change is in the log.
    let changes = app
        .events(&key.token)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "app.rate_limit_set")
        .count();
    assert_eq!(changes, 3);

    // Bad input is a 400 naming the field, and changes nothing.
    for (body, field) in [
        (
            json!({"rate_limit_per_second": -1}),
            "rate_limit_per_second",
        ),
        (
            json!({"rate_limit_per_second": 5_000_000_000_i64}),
            "rate_limit_per_second",
        ),
        (json!({}), "body"),
    ] {
        let r = patch(body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.invalid_fields(), [field]);
    }
    let unknown = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/apps/{}", uuid::Uuid::new_v4()),
            Some(herald_tests::app::ROOT_TOKEN),
            Some(&json!({"rate_limit_per_second": 1})),
        )
        .await;
    assert_eq!(unknown.status, 404);
}

on_both!(a_client_key_is_limited_like_any_key, client_key_limited);
async fn client_key_limited(backend: Backend) {
    let Some((app, _clock)) = limited(backend, 3).await else {
        return;
    };
    let admin = app.create_app("shipped").await;
    let client = app.key_with_roles(&admin.token, &["client"]).await;
    let statuses: Vec<u16> = {
        let mut all = Vec::new();
        for _ in 0..4 {
            all.push(app.get("/v1/feature-flags/evaluate", &client).await.status);
        }
        all
    };
    assert_eq!(statuses, [200, 200, 200, 429]);
}
