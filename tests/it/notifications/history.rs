//! Notification histories of a device and of a user: the notification
//! embedded, filters by outcome, name and time, both orders, a total on
//! every page, and paging through entries that share a batch.

use chrono::Duration;
use herald_tests::{Backend, on_both};
use infra::clock::Clock;
use serde_json::{Value, json};

use super::Pushy;

async fn history(p: &Pushy, path: &str) -> Value {
    let resp = p.app.get(path, &p.key.token).await;
    assert_eq!(resp.status, 200, "{path}: {}", resp.body);
    resp.body
}

fn titles(page: &Value) -> Vec<String> {
    page["notifications"]
        .as_array()
        .map(|n| {
            n.iter()
                .map(|e| {
                    format!(
                        "{}@{}",
                        e["notification"]["title"].as_str().unwrap_or("-"),
                        e["external_id"].as_str().unwrap_or("-")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn campaign(p: &Pushy, body: Value) -> String {
    let mut body = body;
    body["body"] = json!("b");
    body["launch"] = json!(true);
    let created = p.notify(body).await;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(p.finished(&id).await["status"], "sent");
    id
}

on_both!(
    histories_embed_the_notification_and_filter_order_count_and_page,
    histories
);
async fn histories(backend: Backend) {
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    p.device("a1", "t-a1", "fcm", "android", Some("u1")).await;
    p.device("i1", "t-i1", "apns", "ios", Some("u1")).await;
    p.device("x", "t-x", "fcm", "android", None).await;
    let welcome = campaign(
        &p,
        json!({"name": "welcome", "title": "Hi", "external_ids": ["a1", "i1"]}),
    )
    .await;
    p.clock.advance(Duration::hours(1));
    let since = (p.clock.now() - Duration::minutes(1)).to_rfc3339();
    campaign(
        &p,
        json!({"name": "promo", "title": "Sale", "external_ids": ["a1"]}),
    )
    .await;
    campaign(&p, json!({"title": "News", "external_ids": ["x", "a1"]})).await;

    let read = p.get(&welcome).await;
    assert_eq!(read["name"], "welcome");

    // One device, newest first, the notification embedded.
    let page = history(&p, "/v1/devices/a1/notifications").await;
    assert_eq!(titles(&page), ["News@a1", "Sale@a1", "Hi@a1"]);
    assert_eq!(page["total"], 3);
    let first = &page["notifications"][2];
    assert_eq!(first["notification"]["id"], json!(welcome));
    assert_eq!(first["notification"]["name"], "welcome");
    assert_eq!(first["notification_id"], json!(welcome));
    assert_eq!(first["outcome"], "delivered");
    assert_eq!(
        page["notifications"][0]["notification"]["name"],
        Value::Null
    );
    let oldest = history(&p, "/v1/devices/a1/notifications?order=oldest").await;
    assert_eq!(titles(&oldest), ["Hi@a1", "Sale@a1", "News@a1"]);

    // Pages of one, with the same total each time.
    let mut seen = Vec::new();
    let mut path = "/v1/devices/a1/notifications?order=oldest&limit=1".to_owned();
    loop {
        let page = history(&p, &path).await;
        assert_eq!(page["total"], 3);
        seen.extend(titles(&page));
        match page["next_cursor"].as_str() {
            Some(c) => {
                path = format!("/v1/devices/a1/notifications?order=oldest&limit=1&cursor={c}")
            }
            None => break,
        }
    }
    assert_eq!(seen, ["Hi@a1", "Sale@a1", "News@a1"]);

    // Outcomes.
    let delivered = history(&p, "/v1/devices/a1/notifications?outcome=delivered,failed").await;
    assert_eq!(delivered["total"], 3);
    let failed = history(&p, "/v1/devices/a1/notifications?outcome=invalid_token").await;
    assert_eq!(
        (failed["total"].clone(), titles(&failed).len()),
        (json!(0), 0)
    );
    for bad in ["outcome=lost", "order=sideways", "limit=0", "cursor=nope"] {
        let resp = p
            .app
            .get(&format!("/v1/devices/a1/notifications?{bad}"), &p.key.token)
            .await;
        assert_eq!(resp.status, 400, "{bad}: {}", resp.body);
    }

    // A user: every device of theirs, by name and time; pages through
    // entries of one batch (a1 and i1 share the welcome batch).
    let user = history(&p, "/v1/users/u1/notifications?names=welcome").await;
    assert_eq!(user["total"], 2);
    let mut both = titles(&user);
    both.sort();
    assert_eq!(both, ["Hi@a1", "Hi@i1"]);
    let mut paged = Vec::new();
    let mut path = "/v1/users/u1/notifications?names=welcome&limit=1".to_owned();
    loop {
        let page = history(&p, &path).await;
        paged.extend(titles(&page));
        match page["next_cursor"].as_str() {
            Some(c) => {
                path = format!("/v1/users/u1/notifications?names=welcome&limit=1&cursor={c}")
            }
            None => break,
        }
    }
    paged.sort();
    assert_eq!(paged, ["Hi@a1", "Hi@i1"]);
    let recent = history(
        &p,
        &format!(
            "/v1/users/u1/notifications?since={}",
            herald_tests::app::segment(&since)
        ),
    )
    .await;
    assert_eq!(titles(&recent), ["News@a1", "Sale@a1"]);
    let all = history(&p, "/v1/users/u1/notifications?names=welcome,promo").await;
    assert_eq!(all["total"], 3);
    let nobody = history(&p, "/v1/users/nobody/notifications").await;
    assert_eq!(nobody["total"], 0);

    // A name can be changed and cleared.
    let cleared = p
        .app
        .patch(
            &format!("/v1/notifications/{welcome}"),
            &p.key.token,
            json!({"name": null}),
        )
        .await;
    assert_eq!(
        cleared.status, 409,
        "a sent notification is not edited: {}",
        cleared.body
    );
    let bad = p
        .app
        .post(
            "/v1/notifications",
            &p.key.token,
            json!({"name": "", "title": "t", "body": "b", "external_ids": ["x"]}),
        )
        .await;
    assert_eq!(bad.invalid_fields(), ["name"]);
}
