//! The notification API's rules: validation naming every bad field, drafts
//! only change, illegal transitions name the status, lists page.

use herald_tests::{Backend, on_both};
use serde_json::json;

use super::Pushy;

on_both!(bad_notifications_are_refused_naming_each_field, validation);
async fn validation(backend: Backend) {
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    let before = p.app.events(&p.key.token).await.len();
    let resp = p
        .app
        .post(
            "/v1/notifications",
            &p.key.token,
            json!({
                "title": "", "body": "ok",
                "image_url": "ftp://example.com/a.png",
                "data": {"n": 1},
                "ttl_seconds": -1,
                "priority": "urgent",
                "collapse_key": "has space",
                "user_ids": [""],
                "conditions": {"key": "plan", "operator": "nope", "value": 1},
            }),
        )
        .await;
    let mut fields = resp.invalid_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "collapse_key",
            "conditions.operator",
            "data.n",
            "image_url",
            "priority",
            "title",
            "ttl_seconds",
            "user_ids[0]"
        ]
    );
    let no_target = p
        .app
        .post(
            "/v1/notifications",
            &p.key.token,
            json!({"title": "t", "body": "b"}),
        )
        .await;
    assert_eq!(no_target.invalid_fields(), ["conditions"]);
    let big = p
        .app
        .post(
            "/v1/notifications",
            &p.key.token,
            json!({"title": "t", "body": "b", "external_ids": ["d"], "data": {"blob": "x".repeat(5000)}}),
        )
        .await;
    assert_eq!(big.invalid_fields(), ["data"]);
    assert!(
        big.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("bytes")),
        "{}",
        big.body
    );
    assert_eq!(
        p.app.events(&p.key.token).await.len(),
        before,
        "nothing written"
    );
}

on_both!(
    only_drafts_change_and_transitions_name_the_status,
    transitions
);
async fn transitions(backend: Backend) {
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    p.device("d1", "t1", "fcm", "android", None).await;
    let draft = p
        .notify(json!({"title": "Draft", "body": "b", "external_ids": ["d1"]}))
        .await;
    assert_eq!(draft["status"], "draft");
    let id = draft["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/notifications/{id}");
    let changed = p
        .app
        .patch(
            &path,
            &p.key.token,
            json!({"title": "Changed", "deep_link": "myapp://x", "data": {"a": "b"}}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        (
            changed.body["title"].as_str(),
            changed.body["deep_link"].as_str()
        ),
        (Some("Changed"), Some("myapp://x"))
    );
    let bad = p.app.patch(&path, &p.key.token, json!({"title": ""})).await;
    assert_eq!(bad.invalid_fields(), ["title"]);

    let launched = p
        .app
        .post(&format!("{path}/launch"), &p.key.token, json!({}))
        .await;
    assert_eq!(launched.status, 202, "{}", launched.body);
    let done = p.finished(&id).await;
    assert_eq!(done["status"], "sent");
    assert_eq!(done["title"], "Changed");

    let late = p
        .app
        .patch(&path, &p.key.token, json!({"title": "Again"}))
        .await;
    assert!(
        late.problem(409)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("sent")),
        "{}",
        late.body
    );
    let cancel = p
        .app
        .post(&format!("{path}/cancel"), &p.key.token, json!({}))
        .await;
    assert!(
        cancel.problem(409)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("sent"))
    );
    let by_hand = p
        .app
        .put(
            &format!("{path}/status"),
            &p.key.token,
            json!({"status": "sending"}),
        )
        .await;
    by_hand.problem(409);
    let nonsense = p
        .app
        .put(
            &format!("{path}/status"),
            &p.key.token,
            json!({"status": "flying"}),
        )
        .await;
    assert_eq!(nonsense.invalid_fields(), ["status"]);

    // A draft can be canceled, then deleted; the log keeps it.
    let other = p
        .notify(json!({"title": "x", "body": "y", "external_ids": ["d1"]}))
        .await;
    let other_path = format!(
        "/v1/notifications/{}",
        other["id"].as_str().unwrap_or_default()
    );
    let canceled = p
        .app
        .put(
            &format!("{other_path}/status"),
            &p.key.token,
            json!({"status": "canceled"}),
        )
        .await;
    assert_eq!(
        (canceled.status, canceled.body["status"].as_str()),
        (200, Some("canceled"))
    );
    assert_eq!(p.app.delete(&other_path, &p.key.token).await.status, 204);
    p.app.get(&other_path, &p.key.token).await.problem(404);
    assert_eq!(p.events_of("notification.deleted").await.len(), 1);
    assert_eq!(p.app.delete(&path, &p.key.token).await.status, 204);

    // `deleted` by status answers the notification as it was, now deleted.
    let third = p
        .notify(json!({"title": "gone", "body": "soon", "external_ids": ["d1"]}))
        .await;
    let third_path = format!(
        "/v1/notifications/{}",
        third["id"].as_str().unwrap_or_default()
    );
    let deleted = p
        .app
        .put(
            &format!("{third_path}/status"),
            &p.key.token,
            json!({"status": "deleted"}),
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["status"], "deleted");
    assert_eq!(deleted.body["title"], "gone");
    assert_eq!(deleted.body["id"], third["id"]);
    p.app.get(&third_path, &p.key.token).await.problem(404);
    p.app
        .put(
            &format!("{third_path}/status"),
            &p.key.token,
            json!({"status": "deleted"}),
        )
        .await
        .problem(404);
}

on_both!(notifications_list_in_order_and_page, listing);
async fn listing(backend: Backend) {
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..3 {
        let n = p
            .notify(
                json!({"title": format!("n{i}"), "body": "b", "external_ids": ["d"],
                           "scheduled_at": format!("2030-01-0{}T00:00:00Z", 3 - i)}),
            )
            .await;
        ids.push(n["id"].as_str().unwrap_or_default().to_owned());
    }
    let list = |q: String| {
        let p = &p;
        async move {
            let r = p
                .app
                .get(&format!("/v1/notifications?{q}"), &p.key.token)
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let titles = |b: &serde_json::Value| -> Vec<String> {
        b["notifications"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["title"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        titles(&list("order_by=created_at".into()).await),
        ["n0", "n1", "n2"]
    );
    assert_eq!(titles(&list(String::new()).await), ["n2", "n1", "n0"]);
    assert_eq!(
        titles(&list("order_by=scheduled_at".into()).await),
        ["n2", "n1", "n0"]
    );
    let first = list("order_by=created_at&limit=2".into()).await;
    assert_eq!(titles(&first), ["n0", "n1"]);
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let second = list(format!("order_by=created_at&limit=2&cursor={cursor}")).await;
    assert_eq!(titles(&second), ["n2"]);
    assert!(second["next_cursor"].is_null());
    assert_eq!(
        titles(&list("status=sent".into()).await),
        Vec::<String>::new()
    );
    let bad = p
        .app
        .get("/v1/notifications?order_by=title", &p.key.token)
        .await;
    assert_eq!(bad.invalid_fields(), ["order_by"]);
    let wrong_cursor = p
        .app
        .get(&format!("/v1/notifications?cursor={cursor}"), &p.key.token)
        .await;
    assert_eq!(
        wrong_cursor.invalid_fields(),
        ["cursor"],
        "a cursor of another order"
    );
    // Several fields: status (alphabetical), then newest first; pages keep
    // the order.
    let canceled = p
        .app
        .put(
            &format!("/v1/notifications/{}/status", ids[1]),
            &p.key.token,
            json!({"status": "canceled"}),
        )
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.body);
    assert_eq!(
        titles(&list("order_by=status,-created_at".into()).await),
        ["n1", "n2", "n0"]
    );
    assert_eq!(
        titles(&list("order_by=-status,created_at".into()).await),
        ["n0", "n2", "n1"]
    );
    let mut paged = Vec::new();
    let mut query = "order_by=status,-created_at&limit=1".to_owned();
    loop {
        let page = list(query.clone()).await;
        paged.extend(titles(&page));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("order_by=status,-created_at&limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, ["n1", "n2", "n0"]);
    for bad in [
        "status,status",
        "status,,created_at",
        "created_at,updated_at,scheduled_at,status,-created_at",
    ] {
        let resp = p
            .app
            .get(&format!("/v1/notifications?order_by={bad}"), &p.key.token)
            .await;
        assert_eq!(resp.invalid_fields(), ["order_by"], "{bad}");
    }
    let reader = p.app.key_with_roles(&p.key.token, &["read"]).await;
    p.app
        .post(
            "/v1/notifications",
            &reader,
            json!({"title": "t", "body": "b", "external_ids": ["d"]}),
        )
        .await
        .problem(403);
    assert_eq!(ids.len(), 3);
}

on_both!(
    a_tampered_list_cursor_is_a_400_not_a_database_error,
    tampered_cursors
);
async fn tampered_cursors(backend: Backend) {
    use base64::Engine;
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    let n = p
        .notify(json!({"title": "t", "body": "b", "external_ids": ["d"]}))
        .await;
    let id = n["id"].as_str().unwrap_or_default().to_owned();
    let encode = |raw: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let cases = [
        // A text key where the order wants a time, and the other way round.
        (
            "",
            json!({"id": id, "k": ["x"], "o": "n-order:-created_at"}).to_string(),
        ),
        (
            "order_by=status",
            json!({"id": id, "k": [5], "o": "n-order:status"}).to_string(),
        ),
        (
            "order_by=status",
            json!({"id": id, "k": ["a\u{0}"], "o": "n-order:status"}).to_string(),
        ),
    ];
    for (query, raw) in cases {
        let resp = p
            .app
            .get(
                &format!("/v1/notifications?{query}&cursor={}", encode(&raw)),
                &p.key.token,
            )
            .await;
        assert_eq!(resp.invalid_fields(), ["cursor"], "{raw}: {}", resp.body);
    }
    // A NUL in a keyed cursor's text.
    let resp = p
        .app
        .get(
            &format!(
                "/v1/devices/d/notifications?cursor={}",
                encode("notification-history:1:a\u{0}")
            ),
            &p.key.token,
        )
        .await;
    assert_eq!(resp.invalid_fields(), ["cursor"], "{}", resp.body);
}
