//! The daily quota: set by root, a launch that would pass it is refused
//! with 429 and Retry-After, usage counts what was sent.

use herald_tests::app::ROOT_TOKEN;
use herald_tests::{Backend, on_both};
use serde_json::json;

use super::Pushy;

on_both!(a_launch_past_the_daily_quota_is_refused, quota);
async fn quota(backend: Backend) {
    let Some(p) = Pushy::spawn(backend, |_| {}).await else {
        return;
    };
    for d in ["d1", "d2", "d3", "d4"] {
        p.device(d, &format!("t-{d}"), "fcm", "android", None).await;
    }
    let path = format!("/v1/apps/{}", p.key.app_id);
    p.app
        .patch(&path, &p.key.token, json!({"daily_quota": 3}))
        .await
        .problem(403);
    let set = p
        .app
        .patch(&path, ROOT_TOKEN, json!({"daily_quota": 3}))
        .await;
    assert_eq!(
        (set.status, set.body["daily_quota"].as_i64()),
        (200, Some(3)),
        "{}",
        set.body
    );
    let before = p.app.events(&p.key.token).await.len();

    let all = json!({"title": "T", "body": "B", "external_ids": ["d1", "d2", "d3", "d4"], "launch": true});
    let refused = p
        .app
        .post("/v1/notifications", &p.key.token, all.clone())
        .await;
    refused.problem(429);
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    assert!((1..=86_400).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        p.app.events(&p.key.token).await.len(),
        before,
        "nothing written"
    );

    let two = p
        .notify(json!({"title": "T", "body": "B", "external_ids": ["d1", "d2"], "launch": true}))
        .await;
    assert_eq!(
        p.finished(two["id"].as_str().unwrap_or_default()).await["status"],
        "sent"
    );
    // Two sent today: two more would pass three.
    let draft = p
        .notify(json!({"title": "T", "body": "B", "external_ids": ["d3", "d4"]}))
        .await;
    let launch = format!(
        "/v1/notifications/{}/launch",
        draft["id"].as_str().unwrap_or_default()
    );
    p.app
        .post(&launch, &p.key.token, json!({}))
        .await
        .problem(429);
    assert_eq!(
        p.get(draft["id"].as_str().unwrap_or_default()).await["status"],
        "draft"
    );

    let usage = p.app.get("/v1/usage", &p.key.token).await;
    assert_eq!(
        (
            usage.body["total"].as_i64(),
            usage.body["daily_quota"].as_i64()
        ),
        (Some(2), Some(3))
    );
    let bad = p.app.get("/v1/usage?from=yesterday", &p.key.token).await;
    assert_eq!(bad.invalid_fields(), ["from"]);
    // The calendar's first and last days are answered, not a failure
    // (computing the day before or after them once overflowed).
    let (first, last) = (chrono::NaiveDate::MIN, chrono::NaiveDate::MAX);
    let edges = [
        format!("to={}", first.format("%Y-%m-%d")),
        format!(
            "from={}&to={}",
            last.pred_opt().unwrap_or(last).format("%Y-%m-%d"),
            last.format("%Y-%m-%d")
        ),
    ];
    for (query, days) in edges.iter().zip([1, 2]) {
        let edge = p
            .app
            .get(
                &format!("/v1/usage?{}", query.replace('+', "%2B")),
                &p.key.token,
            )
            .await;
        assert_eq!(edge.status, 200, "{query}: {}", edge.body);
        assert_eq!(
            edge.body["days"].as_array().map(Vec::len),
            Some(days),
            "{query}: {}",
            edge.body
        );
    }

    // Lifted: the launch goes through.
    let lifted = p
        .app
        .patch(&path, ROOT_TOKEN, json!({"daily_quota": null}))
        .await;
    assert!(lifted.body["daily_quota"].is_null());
    assert_eq!(
        p.app.post(&launch, &p.key.token, json!({})).await.status,
        202
    );
    assert_eq!(
        p.finished(draft["id"].as_str().unwrap_or_default()).await["status"],
        "sent"
    );
}
