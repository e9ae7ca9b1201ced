//! A user the app knows only from its devices (registered with their
//! `user_id`, or linked to them, never created through the users API):
//! forgetting them forgets what those devices held while they were theirs,
//! and records the erasure in a stream of their own. A user id nothing
//! ever named is still a 404.

use herald_tests::{Backend, on_both};
use serde_json::json;

use super::{CITY, PLACEHOLDER, TOKEN, device_of, forget_user, stream_events};
use crate::rebuild::rebuild_keeps_the_models;
use crate::webhooks::Hooked;

on_both!(
    a_user_known_only_from_their_devices_can_be_forgotten,
    forget_a_user_known_from_devices
);
async fn forget_a_user_known_from_devices(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    // Never created: their devices alone name them. One is still theirs;
    // the other passed to someone else, with a token of their own.
    device_of(&h, "only-d1", TOKEN, "linked-only").await;
    let set = h
        .app
        .patch(
            "/v1/devices/only-d1/properties",
            &h.key.token,
            json!({"properties": {"home": CITY}}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    device_of(&h, "only-d2", "LINKEDONLYTOKEN", "linked-only").await;
    device_of(&h, "only-d2", "NEXTTOKEN", "next-owner").await;
    h.app
        .get("/v1/users/linked-only", &h.key.token)
        .await
        .problem(404);

    let forgot = forget_user(&h, "linked-only").await;
    assert_eq!(
        forgot["subjects"],
        json!(["user:linked-only", "device:only-d1", "device:only-d2"])
    );
    // The key of their time on each device; the record in their own new
    // stream and in each device's.
    assert_eq!(forgot["keys_destroyed"], 2, "{forgot}");
    assert_eq!(forgot["events_recorded"], 3, "{forgot}");
    h.app.idle().await;

    let d1 = h.app.get("/v1/devices/only-d1", &h.key.token).await;
    assert_eq!(d1.body["push_token"], PLACEHOLDER, "{}", d1.body);
    assert_eq!(d1.body["properties"]["home"], PLACEHOLDER, "{}", d1.body);
    let d2 = h.app.get("/v1/devices/only-d2", &h.key.token).await;
    assert_eq!(d2.body["push_token"], "NEXTTOKEN", "{}", d2.body);
    assert_eq!(d2.body["push_token_valid"], true, "{}", d2.body);
    assert_eq!(d2.body["user_id"], "next-owner", "{}", d2.body);
    let d2_events = stream_events(&h, "device:only-d2").await;
    assert_eq!(d2_events[0]["data"]["push_token"], PLACEHOLDER);
    // The erasure is on record; they are still no user of the app.
    let own = stream_events(&h, "user:linked-only").await;
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0]["event_type"], "subject.forgotten");
    h.app
        .get("/v1/users/linked-only", &h.key.token)
        .await
        .problem(404);

    let again = forget_user(&h, "linked-only").await;
    assert_eq!(again["keys_destroyed"], 0, "{again}");
    assert_eq!(again["events_recorded"], 0, "{again}");
    h.app
        .post("/v1/users/never-named/forget", &h.key.token, json!({}))
        .await
        .problem(404);
    rebuild_keeps_the_models(&h.app).await;

    // Created afterwards, they are a user like any other.
    h.user("linked-only", json!({"name": "Now Known"})).await;
    let user = h.app.get("/v1/users/linked-only", &h.key.token).await;
    assert_eq!(user.body["name"], "Now Known", "{}", user.body);
}
