//! The synchronous send: named devices and users, each device's outcome in
//! the answer, a campaign in the log like any other, and its limits.

use herald_tests::{Backend, on_both};
use serde_json::json;

use super::Pushy;

on_both!(
    a_synchronous_send_answers_with_every_devices_outcome,
    send_now
);
async fn send_now(backend: Backend) {
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    p.device("a1", "t-a1", "fcm", "android", Some("u1")).await;
    p.device("i1", "t-i1", "apns", "ios", Some("u1")).await;
    p.device("a2", "t-a2", "fcm", "android", None).await;
    p.device("other", "t-o", "fcm", "android", None).await;

    let resp = p
        .app
        .post(
            "/v1/notifications/send",
            &p.key.token,
            json!({"name": "receipt", "title": "Paid", "body": "Thanks", "external_ids": ["a2"], "user_ids": ["u1"]}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["complete"], true);
    assert_eq!(resp.body["notification"]["status"], "sent");
    assert_eq!(resp.body["notification"]["name"], "receipt");
    let outcomes: Vec<(String, String)> = resp.body["outcomes"]
        .as_array()
        .map(|o| {
            o.iter()
                .map(|x| {
                    (
                        x["external_id"].as_str().unwrap_or_default().to_owned(),
                        x["outcome"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        outcomes,
        [
            ("a1".to_owned(), "delivered".to_owned()),
            ("a2".to_owned(), "delivered".to_owned()),
            ("i1".to_owned(), "delivered".to_owned()),
        ]
    );
    // A campaign like any other: in the log, in the lists and the histories.
    let id = resp.body["notification"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(p.get(&id).await["status"], "sent");
    assert_eq!(p.events_of("notification.created").await.len(), 1);
    let history = p.history("a2").await;
    assert_eq!(history[0]["notification_id"], json!(id));
    assert!(p.history("other").await.is_empty());

    for (body, query, field) in [
        (
            json!({"title": "t", "body": "b", "conditions": {"key": "plan", "operator": "exists"}}),
            "",
            "conditions",
        ),
        (
            json!({"title": "t", "body": "b", "external_ids": ["a1"], "scheduled_at": "2030-01-01T00:00:00Z"}),
            "",
            "scheduled_at",
        ),
        (
            json!({"title": "t", "body": "b", "external_ids": ["a1"], "launch": true}),
            "",
            "launch",
        ),
        (
            json!({"title": "t", "body": "b", "external_ids": (0..101).map(|i| format!("d{i}")).collect::<Vec<_>>()}),
            "",
            "external_ids",
        ),
        (
            json!({"title": "t", "body": "b", "external_ids": ["a1"]}),
            "?timeout_seconds=0",
            "timeout_seconds",
        ),
        (
            json!({"title": "", "body": "b", "external_ids": ["a1"]}),
            "",
            "title",
        ),
    ] {
        let resp = p
            .app
            .post(
                &format!("/v1/notifications/send{query}"),
                &p.key.token,
                body.clone(),
            )
            .await;
        assert_eq!(resp.invalid_fields(), [field], "{body}: {}", resp.body);
    }
    assert_eq!(
        p.events_of("notification.created").await.len(),
        1,
        "a refused send records nothing"
    );
    let reader = p.app.key_with_roles(&p.key.token, &["read"]).await;
    p.app
        .post(
            "/v1/notifications/send",
            &reader,
            json!({"title": "t", "body": "b", "external_ids": ["a1"]}),
        )
        .await
        .problem(403);
}
