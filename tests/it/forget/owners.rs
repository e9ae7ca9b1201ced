//! A device that passes to someone else (registered afresh after a delete,
//! or linked to another user): forgetting its first owner forgets only
//! what was written while it was theirs.

use herald_tests::{Backend, on_both};
use serde_json::{Value, json};

use super::{CITY, NAME, PLACEHOLDER, TOKEN, device_of, forget_user, stream_events};
use crate::webhooks::Hooked;

async fn set_device_property(h: &Hooked, device: &str, name: &str, value: &str) {
    let resp = h
        .app
        .patch(
            &format!("/v1/devices/{device}/properties"),
            &h.key.token,
            json!({"properties": {name: value}}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
}

/// The device reads as its current owner left it: their token (valid),
/// their property, their link.
async fn still_theirs(h: &Hooked, device: &str, user: &str, token: &str, property: (&str, &str)) {
    let device = h
        .app
        .get(&format!("/v1/devices/{device}"), &h.key.token)
        .await;
    let body = &device.body;
    assert_eq!(body["push_token"], token, "{body}");
    assert_eq!(body["push_token_valid"], true, "{body}");
    assert_eq!(body["properties"][property.0], property.1, "{body}");
    assert_eq!(body["user_id"], user, "{body}");
}

/// The values of `field` in a stream's events of `event_type`, in order.
async fn values_of(h: &Hooked, stream: &str, event_type: &str, field: &str) -> Vec<Value> {
    stream_events(h, stream)
        .await
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .map(|e| e["data"].pointer(field).cloned().unwrap_or(Value::Null))
        .collect()
}

on_both!(
    a_device_registered_afresh_by_someone_else_is_not_forgotten_with_its_first_owner,
    forget_spares_a_device_registered_afresh
);
async fn forget_spares_a_device_registered_afresh(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    h.user("frank", json!({"name": "Frank"})).await;
    h.user("gina", json!({"name": "Gina"})).await;
    device_of(&h, "fdev", "FRANKTOKEN", "frank").await;
    let deleted = h.app.delete("/v1/devices/fdev", &h.key.token).await;
    assert!(deleted.status < 300, "{}", deleted.body);
    let forgot = forget_user(&h, "frank").await;
    assert_eq!(forgot["keys_destroyed"], 2, "{forgot}");

    // Someone else registers the same external id afresh.
    device_of(&h, "fdev", "GINATOKEN", "gina").await;
    set_device_property(&h, "fdev", "g", "gina-value").await;
    let again = forget_user(&h, "frank").await;
    assert_eq!(again["keys_destroyed"], 0, "{again}");
    assert_eq!(again["events_recorded"], 0, "{again}");
    h.app.idle().await;

    still_theirs(&h, "fdev", "gina", "GINATOKEN", ("g", "gina-value")).await;
    assert_eq!(
        values_of(&h, "device:fdev", "device.registered", "/push_token").await,
        [json!(PLACEHOLDER), json!("GINATOKEN")]
    );

    // Forgetting gina forgets her part.
    forget_user(&h, "gina").await;
    let device = h.app.get("/v1/devices/fdev", &h.key.token).await;
    assert_eq!(device.body["push_token"], PLACEHOLDER, "{}", device.body);
}

on_both!(
    a_device_linked_to_someone_else_keeps_what_they_wrote_when_its_first_owner_is_forgotten,
    forget_spares_a_relinked_device
);
async fn forget_spares_a_relinked_device(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    h.user("ada", json!({"name": NAME})).await;
    h.user("bob", json!({"name": "Bob"})).await;
    device_of(&h, "ada-d3", TOKEN, "ada").await;
    set_device_property(&h, "ada-d3", "a", CITY).await;
    // Bob takes the phone over: a new token, his link, his property.
    device_of(&h, "ada-d3", "BOBTOKEN", "bob").await;
    set_device_property(&h, "ada-d3", "b", "bob-value").await;

    let forgot = forget_user(&h, "ada").await;
    assert_eq!(forgot["keys_destroyed"], 2, "{forgot}");
    assert_eq!(forgot["events_recorded"], 1, "{forgot}");
    h.app.idle().await;
    still_theirs(&h, "ada-d3", "bob", "BOBTOKEN", ("b", "bob-value")).await;
    // In the log: what was written while the device was ada's reads as
    // the placeholder, what bob wrote does not.
    assert_eq!(
        values_of(&h, "device:ada-d3", "device.registered", "/push_token").await,
        [json!(PLACEHOLDER)]
    );
    assert_eq!(
        values_of(&h, "device:ada-d3", "device.updated", "/push_token").await,
        [json!("BOBTOKEN")]
    );
    assert_eq!(
        values_of(&h, "device:ada-d3", "device.properties_changed", "/set").await,
        [json!({"a": PLACEHOLDER}), json!({"b": "bob-value"})]
    );
    let again = forget_user(&h, "ada").await;
    assert_eq!(again["keys_destroyed"], 0, "{again}");
    assert_eq!(again["events_recorded"], 0, "{again}");
    let device = h.app.get("/v1/devices/ada-d3", &h.key.token).await;
    assert_eq!(device.body["push_token"], "BOBTOKEN", "{}", device.body);

    // Forgetting bob forgets his part.
    let bob = forget_user(&h, "bob").await;
    assert_eq!(bob["keys_destroyed"], 2, "{bob}");
    assert_eq!(
        values_of(&h, "device:ada-d3", "device.properties_changed", "/set").await,
        [json!({"a": PLACEHOLDER}), json!({"b": PLACEHOLDER})]
    );
}
