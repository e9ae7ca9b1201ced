//! `Idempotency-Key`: a retried request gets the first answer and writes
//! nothing; the same key with another request is a 422, while the first
//! runs a 409; keys are per app, checked, and expire.

use chrono::Duration as Days;
use futures::future::join_all;
use herald_tests::app::{Resp, device_body, read};
use herald_tests::{Backend, TestApp, TestDb, on_both};
use infra::clock::ManualClock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::notifications::fcm::with_fcm;
use crate::webhooks::on_clock;

async fn keyed(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> Resp {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    read(response).await
}

async fn count_events(app: &TestApp, token: &str, event_type: &str) -> usize {
    app.events(token)
        .await
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .count()
}

on_both!(
    a_retried_campaign_is_created_and_sent_once,
    retried_campaign
);
async fn retried_campaign(backend: Backend) {
    let Some((p, fake)) = with_fcm(backend).await else {
        return;
    };
    for d in ["ok-1", "ok-2"] {
        p.device(d, d, "fcm", "android", None).await;
    }
    let body =
        json!({"title": "Sale", "body": "Today", "external_ids": ["ok-1", "ok-2"], "launch": true});
    let first = keyed(
        &p.app,
        Method::POST,
        "/v1/notifications",
        &p.key.token,
        "campaign-1",
        &body,
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);

    // The client timed out and retries, before and after the campaign ran.
    let again = keyed(
        &p.app,
        Method::POST,
        "/v1/notifications",
        &p.key.token,
        "campaign-1",
        &body,
    )
    .await;
    let id = first.body["id"].as_str().unwrap_or_default().to_owned();
    let done = p.finished(&id).await;
    let late = keyed(
        &p.app,
        Method::POST,
        "/v1/notifications",
        &p.key.token,
        "campaign-1",
        &body,
    )
    .await;
    for retry in [&again, &late] {
        assert_eq!(retry.status, 201);
        assert_eq!(retry.body, first.body, "the first answer, unchanged");
        assert_eq!(retry.header("idempotent-replayed"), Some("true"));
        assert_eq!(
            retry.header("herald-position"),
            first.header("herald-position")
        );
        assert_eq!(retry.header("content-type"), first.header("content-type"));
    }
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(
        count_events(&p.app, &p.key.token, "notification.created").await,
        1
    );
    let mut delivered = fake.log.delivered();
    delivered.sort();
    assert_eq!(
        delivered,
        ["ok-1", "ok-2"],
        "each device got the campaign once"
    );
}

on_both!(concurrent_retries_execute_once, concurrent_retries);
async fn concurrent_retries(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let body = json!({"title": "T", "body": "B", "external_ids": ["nobody"]});
    let answers = join_all((0..8).map(|_| {
        keyed(
            &app,
            Method::POST,
            "/v1/notifications",
            &key.token,
            "same-key",
            &body,
        )
    }))
    .await;
    let created: Vec<&Resp> = answers.iter().filter(|r| r.status == 201).collect();
    let busy = answers.iter().filter(|r| r.status == 409).count();
    assert!(!created.is_empty(), "one of them ran");
    assert_eq!(
        created.len() + busy,
        8,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(created.iter().all(|r| r.body == created[0].body));
    for r in answers.iter().filter(|r| r.status == 409) {
        assert_eq!(
            r.problem(409)["type"],
            "urn:herald:problem:idempotency-key-in-flight"
        );
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    app.settled().await;
    assert_eq!(
        count_events(&app, &key.token, "notification.created").await,
        1
    );
}

on_both!(a_key_reused_for_another_request_is_refused, reused_key);
async fn reused_key(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let other = app.create_app("b").await;
    let put = |path: &'static str, token: String, body: Value| {
        let app = &app;
        async move { keyed(app, Method::PUT, path, &token, "k-1", &body).await }
    };
    let first = put("/v1/devices/d1", key.token.clone(), device_body("t1")).await;
    assert_eq!(first.status, 201, "{}", first.body);

    // Another body, another path, another method: 422, nothing written.
    let body = put("/v1/devices/d1", key.token.clone(), device_body("t2")).await;
    let path = put("/v1/devices/d2", key.token.clone(), device_body("t1")).await;
    let method = keyed(
        &app,
        Method::POST,
        "/v1/devices/d1",
        &key.token,
        "k-1",
        &device_body("t1"),
    )
    .await;
    for r in [&body, &path, &method] {
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(
            r.problem(422)["type"],
            "urn:herald:problem:idempotency-key-reused"
        );
    }
    assert_eq!(app.get("/v1/devices/d2", &key.token).await.status, 404);
    let d1 = app.get("/v1/devices/d1", &key.token).await;
    assert_eq!(d1.body["push_token"], "t1");

    // Keys belong to their app: the same key elsewhere is a new request.
    let elsewhere = put("/v1/devices/d1", other.token.clone(), device_body("t9")).await;
    assert_eq!(elsewhere.status, 201);
    assert_eq!(elsewhere.header("idempotent-replayed"), None);

    // A request without a key is never replayed.
    let plain = app
        .put("/v1/devices/d1", &key.token, device_body("t3"))
        .await;
    assert_eq!(plain.status, 200);
    assert_eq!(
        count_events(&app, &key.token, "device.registered").await
            + count_events(&app, &key.token, "device.updated").await,
        2
    );
}

on_both!(malformed_keys_are_a_400_and_change_nothing, malformed_keys);
async fn malformed_keys(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    for bad in [
        String::new(),
        "x".repeat(256),
        "tab\there".into(),
        "ключ".into(),
    ] {
        let r = app
            .client
            .put(app.url("/v1/devices/d"))
            .bearer_auth(&key.token)
            .header("idempotency-key", bad.as_bytes())
            .json(&device_body("t"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = read(r).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
        assert!(
            r.problem(400)["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Idempotency-Key")),
            "{}",
            r.body
        );
    }
    assert_eq!(app.get("/v1/devices/d", &key.token).await.status, 404);
    // 255 printable characters are fine.
    let longest = "k".repeat(255);
    let ok = keyed(
        &app,
        Method::PUT,
        "/v1/devices/d",
        &key.token,
        &longest,
        &device_body("t"),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

on_both!(answers_are_kept_for_the_configured_time, expiry);
async fn expiry(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let clock = ManualClock::starting_at(chrono::Utc::now());
    let app = TestApp::spawn_on(db, |c| {
        on_clock(c, &clock);
        c.idempotency_ttl = std::time::Duration::from_secs(3600);
    })
    .await;
    let key = app.create_app("a").await;
    let body = json!({"name": "Ada"});
    let path = "/v1/users/u1";
    let first = keyed(&app, Method::PUT, path, &key.token, "k", &body).await;
    assert!(first.status < 300, "{}", first.body);
    clock.advance(Days::minutes(59));
    let kept = keyed(&app, Method::PUT, path, &key.token, "k", &body).await;
    assert_eq!(kept.header("idempotent-replayed"), Some("true"));
    assert_eq!(kept.status, first.status);

    // An hour on, the key is free again: the same request runs anew, and
    // another one may use the key.
    clock.advance(Days::minutes(2));
    let other = json!({"name": "Grace"});
    let fresh = keyed(&app, Method::PUT, path, &key.token, "k", &other).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.header("idempotent-replayed"), None);
    assert_eq!(fresh.body["name"], "Grace");

    // Expired answers are deleted, not only ignored.
    clock.advance(Days::minutes(61));
    app.herald
        .services()
        .idempotency
        .purge()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        app.herald
            .services()
            .idempotency
            .count()
            .await
            .unwrap_or(-1),
        0
    );
}

on_both!(
    a_kept_answer_holding_a_secret_is_sealed_and_replayed_whole,
    sealed_answers
);
async fn sealed_answers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let body = json!({"name": "ci", "roles": ["admin"]});
    let first = keyed(&app, Method::POST, "/v1/api-keys", &key.token, "k1", &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let token = first.body["token"].as_str().unwrap_or_default().to_owned();
    assert!(token.len() > 20, "{}", first.body);

    // The retry gets the token it missed.
    let again = keyed(&app, Method::POST, "/v1/api-keys", &key.token, "k1", &body).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.status, 201);
    assert_eq!(again.body["token"], token.as_str());

    // What is kept does not show it.
    let kept: Vec<Option<Vec<u8>>> = match &app.herald.db() {
        projections::db::Db::Sqlite(s) => sqlx::query_scalar("SELECT body FROM idempotency_keys")
            .fetch_all(&s.reader)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        projections::db::Db::Postgres(p) => sqlx::query_scalar("SELECT body FROM idempotency_keys")
            .fetch_all(&p.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    };
    assert_eq!(kept.len(), 1);
    let stored = kept[0].clone().unwrap_or_default();
    assert!(!stored.is_empty());
    let text = String::from_utf8_lossy(&stored);
    assert!(!text.contains(&token), "the token is kept in clear");
    assert!(
        !text.contains("\"name\""),
        "the body is kept in clear: {text}"
    );
}

on_both!(
    forgetting_a_user_drops_the_kept_answers_that_name_them,
    forgotten_answers
);
async fn forgotten_answers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_app("a").await;
    let ada = json!({"name": "Ada Lovelace", "email": "ada@example.com"});
    let bob = json!({"name": "Bob"});
    let first = put_user(&app, &key.token, "ada", "k-ada", &ada).await;
    assert!(first.status < 300, "{}", first.body);
    let other = put_user(&app, &key.token, "bob", "k-bob", &bob).await;
    assert!(other.status < 300, "{}", other.body);

    let forgot = app
        .post("/v1/users/ada/forget", &key.token, json!({}))
        .await;
    assert_eq!(forgot.status, 200, "{}", forgot.body);

    // Ada's kept answer is gone: the retry runs again (and writes anew).
    let retried = put_user(&app, &key.token, "ada", "k-ada", &ada).await;
    assert!(retried.status < 300, "{}", retried.body);
    assert_eq!(retried.header("idempotent-replayed"), None);
    // Bob's is kept.
    let kept = put_user(&app, &key.token, "bob", "k-bob", &bob).await;
    assert_eq!(kept.header("idempotent-replayed"), Some("true"));
    assert_eq!(kept.body["name"], "Bob");
}

/// `PUT /v1/users/{id}` with `Idempotency-Key: key`.
async fn put_user(app: &TestApp, token: &str, id: &str, key: &str, body: &Value) -> Resp {
    keyed(
        app,
        Method::PUT,
        &format!("/v1/users/{id}"),
        token,
        key,
        body,
    )
    .await
}
