//! A device that passes to someone else (registered afresh after a delete,
//! or linked to another user): forgetting its first owner forgets only
//! what was written while it was theirs, including what the device still
//! carries from their time, in its model as in a rebuild; and a device
//! that is theirs again keeps what someone else wrote in between.

use herald_tests::receiver::Receiver;
use herald_tests::{Backend, on_both};
use serde_json::{Value, json};

use super::{CITY, NAME, PLACEHOLDER, TOKEN, device_of, forget_user, stream_events};
use crate::rebuild::rebuild_keeps_the_models;
use crate::webhooks::{Hooked, WITHIN};

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
    // The user's, and the device's naming her as its former owner.
    assert_eq!(forgot["events_recorded"], 2, "{forgot}");
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

on_both!(
    a_device_linked_to_someone_else_forgets_what_it_carried_from_its_first_owner_as_a_rebuild_does,
    forget_what_a_relinked_device_carried
);
async fn forget_what_a_relinked_device_carried(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (endpoint, _) = h.endpoint(json!({"url": receiver.url("/plain")})).await;
    h.user("ada", json!({"name": NAME})).await;
    h.user("bob", json!({"name": "Bob"})).await;
    device_of(&h, "ada-d4", TOKEN, "ada").await;
    set_device_property(&h, "ada-d4", "a", CITY).await;
    // Bob takes the phone over and sends the same token: the token and
    // ada's property are carried over from her time; his property is his.
    device_of(&h, "ada-d4", TOKEN, "bob").await;
    set_device_property(&h, "ada-d4", "b", "bob-value").await;
    h.app.idle().await;

    let forgot = forget_user(&h, "ada").await;
    assert_eq!(forgot["keys_destroyed"], 2, "{forgot}");
    assert_eq!(forgot["events_recorded"], 2, "{forgot}");
    h.app.idle().await;
    let events = stream_events(&h, "device:ada-d4").await;
    let marker = events.last().cloned().unwrap_or_default();
    assert_eq!(marker["event_type"], "subject.forgotten", "{marker}");
    assert_eq!(
        marker["data"],
        json!({
            "external_id": "ada-d4", "former_owner": "ada",
            "carried": {"push_token": true, "properties": ["a"]},
        })
    );
    let device = h.app.get("/v1/devices/ada-d4", &h.key.token).await;
    let body = &device.body;
    assert_eq!(body["push_token"], PLACEHOLDER, "{body}");
    assert_eq!(body["push_token_valid"], false, "{body}");
    assert_eq!(body["properties"]["a"], PLACEHOLDER, "{body}");
    assert_eq!(body["properties"]["b"], "bob-value", "{body}");
    assert_eq!(body["user_id"], "bob", "{body}");
    // The model as applied is the model rebuilt.
    rebuild_keeps_the_models(&h.app).await;
    let again = forget_user(&h, "ada").await;
    assert_eq!(again["keys_destroyed"], 0, "{again}");
    assert_eq!(again["events_recorded"], 0, "{again}");

    // The queued changes and the webhook messages forget her part only.
    let changes = h
        .app
        .get("/v1/change-queues/default/changes?limit=100", &h.key.token)
        .await;
    assert_eq!(changes.status, 200, "{}", changes.body);
    let sets: Vec<Value> = changes.body["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "device.properties_changed")
        .map(|c| c["data"]["set"].clone())
        .collect();
    assert_eq!(sets, [json!({"a": PLACEHOLDER}), json!({"b": "bob-value"})]);
    let changed: Vec<String> = events
        .iter()
        .filter(|e| e["event_type"] == "device.properties_changed")
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(changed.len(), 2, "{events:?}");
    let before = receiver.received().len();
    for id in &changed {
        let resend = h
            .app
            .post(
                &format!("/v1/webhooks/{endpoint}/messages/{id}/resend"),
                &h.key.token,
                json!({}),
            )
            .await;
        assert_eq!(resend.status, 202, "{}", resend.body);
    }
    h.app.idle().await;
    let got = receiver.wait_for(before + 2, WITHIN).await;
    let resent = |id: &str| {
        got[before..]
            .iter()
            .find(|r| r.webhook_id() == id)
            .map(|r| r.json()["data"]["set"].clone())
            .unwrap_or_else(|| panic!("no re-send of {id}"))
    };
    assert_eq!(resent(&changed[0]), json!({"a": PLACEHOLDER}));
    assert_eq!(resent(&changed[1]), json!({"b": "bob-value"}));

    // This node's next command on the device answers from the log, not
    // from what it kept of the device before the forget.
    let patched = h
        .app
        .patch(
            "/v1/devices/ada-d4/properties",
            &h.key.token,
            json!({"properties": {"c": "bob-too"}}),
        )
        .await;
    let answer = &patched.body;
    assert_eq!(patched.status, 200, "{answer}");
    assert_eq!(answer["properties"]["a"], PLACEHOLDER, "{answer}");
    assert_eq!(answer["push_token"], PLACEHOLDER, "{answer}");
}

on_both!(
    a_device_that_is_theirs_again_keeps_what_someone_else_wrote_between,
    forget_keeps_what_others_wrote
);
async fn forget_keeps_what_others_wrote(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    // ada, then bob (his own token, his lang), then ada again.
    device_of(&h, "back-d", TOKEN, "ada-back").await;
    set_device_property(&h, "back-d", "home", CITY).await;
    device_of(&h, "back-d", "BOBSOWNTOKEN", "bob-back").await;
    set_device_property(&h, "back-d", "lang", "BOBS-OWN-LANG").await;
    device_of(&h, "back-d", "ADASLATERTOKEN", "ada-back").await;
    set_device_property(&h, "back-d", "pet", "ADAS-LATER-PET").await;

    let forgot = forget_user(&h, "ada-back").await;
    assert_eq!(
        forgot["subjects"],
        json!(["user:ada-back", "device:back-d"])
    );
    h.app.idle().await;
    // Ada's values read as the placeholder; bob's lang stays his, in the
    // model as in the log.
    let d = h.app.get("/v1/devices/back-d", &h.key.token).await;
    assert_eq!(d.body["push_token"], PLACEHOLDER, "{}", d.body);
    assert_eq!(d.body["push_token_valid"], false, "{}", d.body);
    assert_eq!(d.body["properties"]["home"], PLACEHOLDER, "{}", d.body);
    assert_eq!(d.body["properties"]["pet"], PLACEHOLDER, "{}", d.body);
    assert_eq!(d.body["properties"]["lang"], "BOBS-OWN-LANG", "{}", d.body);
    let log = serde_json::to_string(&stream_events(&h, "device:back-d").await).unwrap_or_default();
    assert!(log.contains("BOBS-OWN-LANG") && log.contains("BOBSOWNTOKEN"));
    assert!(!log.contains(CITY) && !log.contains("ADAS-LATER-PET") && !log.contains(TOKEN));
    rebuild_keeps_the_models(&h.app).await;
}
