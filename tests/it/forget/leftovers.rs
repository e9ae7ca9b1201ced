//! What a forget must not leave behind: values written by writers racing
//! it, pages a rebuild freed, a stopped rebuild's working copy.

use herald_tests::{Backend, on_both};
use serde_json::json;

use super::{
    database_bytes, device_of, forget_user, holds_any, nothing_left_in_the_files, person,
    stream_events,
};
use crate::rebuild::{rebuild_all, rebuild_keeps_the_models};
use crate::webhooks::Hooked;

on_both!(
    nothing_written_before_a_forget_racing_writers_stays_readable,
    forget_racing_writers
);
async fn forget_racing_writers(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    const DEVICES: usize = 4;
    const SECRET: &str = "racer-secret-";
    h.user("racer", json!({"name": format!("{SECRET}start")}))
        .await;
    for d in 0..DEVICES {
        device_of(
            &h,
            &format!("racer-d{d}"),
            &format!("{SECRET}d{d}"),
            "racer",
        )
        .await;
    }
    // Eight writers (user and devices in turn) while the user is forgotten:
    // the forget starts once each has written once.
    let started = tokio::sync::Barrier::new(9);
    let writer = |w: usize| {
        let (h, started) = (&h, &started);
        async move {
            for n in 0..10 {
                if n == 1 {
                    started.wait().await;
                }
                let value = format!("{SECRET}{w}-{n}");
                if w.is_multiple_of(2) {
                    h.app
                        .put("/v1/users/racer", &h.key.token, json!({"name": value}))
                        .await;
                } else {
                    let mut body = herald_tests::app::device_body(&value);
                    body["user_id"] = json!("racer");
                    h.app
                        .put(
                            &format!("/v1/devices/racer-d{}", w % DEVICES),
                            &h.key.token,
                            body,
                        )
                        .await;
                }
            }
        }
    };
    let forget = async {
        started.wait().await;
        for _ in 0..20 {
            let resp = h
                .app
                .post("/v1/users/racer/forget", &h.key.token, json!({}))
                .await;
            if resp.status == 200 {
                return resp.body;
            }
            assert_eq!(resp.status, 409, "{}", resp.body);
        }
        panic!("the forget kept conflicting with the writers");
    };
    let (_, forgot) = tokio::join!(futures::future::join_all((0..8).map(writer)), forget);
    assert_eq!(forgot["forgotten"], true, "{forgot}");
    h.app.idle().await;

    let mut streams = vec!["user:racer".to_owned()];
    streams.extend((0..DEVICES).map(|d| format!("device:racer-d{d}")));
    for stream in streams {
        let events = stream_events(&h, &stream).await;
        let marker = events
            .iter()
            .rposition(|e| e["event_type"] == "subject.forgotten")
            .unwrap_or_else(|| panic!("{stream} was not forgotten: {events:?}"));
        for event in &events[..marker] {
            assert!(
                !event["data"].to_string().contains(SECRET),
                "{stream}: version {} is readable before the forget at version {}: {}",
                event["stream_version"],
                events[marker]["stream_version"],
                event["data"]
            );
        }
    }
}

on_both!(
    a_forget_leaves_nothing_in_pages_a_rebuild_freed_or_in_a_stopped_rebuild,
    forget_after_rebuilds
);
async fn forget_after_rebuilds(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    person(&h).await;
    h.app.idle().await;
    // A rebuild switched in: the tables it replaced (holding the person's
    // values) were dropped, their pages freed whole.
    rebuild_all(&h.app).await.unwrap_or_else(|e| panic!("{e}"));
    // Another stopped midway: its working copy stays beside the models.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let herald = h.app.herald.clone();
    let stopped = tokio::spawn(async move {
        let models = infra::runtime::read_models();
        infra::runtime::rebuild::rebuild_in_batches(
            herald.db(),
            herald.store().as_ref(),
            &models,
            1,
            |p| {
                let _ = tx.send(p.position);
            },
        )
        .await
    });
    rx.recv().await.unwrap_or_else(|| panic!("no progress"));
    stopped.abort();
    let _ = stopped.await;
    assert!(
        holds_any(&database_bytes(&h).await).is_some(),
        "the values are there first"
    );

    let forgot = forget_user(&h, "ada").await;
    assert_eq!(forgot["forgotten"], true, "{forgot}");
    h.app.idle().await;
    nothing_left_in_the_files(&h).await;
    // The next rebuild starts afresh and yields the same models.
    rebuild_keeps_the_models(&h.app).await;
}
