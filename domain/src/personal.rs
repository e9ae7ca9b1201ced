//! Personal data in events, and what is left of it once its subject is
//! forgotten.
//!
//! Each user and each device is a *subject*: its stream (`user:<id>`,
//! `device:<external id>`). The values below are the subject's personal
//! data. The log stores them sealed under a key of the subject's own (kept
//! outside the log, see `infra::privacy`); forgetting the subject destroys
//! the key, and from then on every value reads as [`PLACEHOLDER`].
//!
//! | event | personal values | why |
//! |---|---|---|
//! | `user.created` | `name`, `email`, every `properties` value | who the person is and what the app knows of them |
//! | `user.updated` | `name`, `email`, every `properties_set` value | the same, changed |
//! | `user.status_updated` | `reason` | free text written about the person |
//! | `device.registered`, `device.updated` | `push_token` | reaches the person's phone; stable across apps |
//! | `device.properties_changed` | every `set` value | Herald cannot tell a locale from a phone number, so every value counts |
//! | `device.push_token_invalidated` | `push_token` | the same token |
//!
//! Identifiers (`user_id`, `external_id`), property *names*, statuses,
//! platforms and times stay in clear: they are what an auditor follows
//! through the log, and an app should not put personal data in them.

use serde_json::Value;

use crate::properties::{Properties, PropertyValue};

/// What a forgotten value reads as, everywhere: reads, exports, webhook
/// re-sends, change queues, rebuilt read models.
pub const PLACEHOLDER: &str = "[forgotten]";

/// The event type that records a subject being forgotten (in the subject's
/// own stream).
pub const FORGOTTEN: &str = "subject.forgotten";

/// The subject whose personal data an event of `stream` holds.
pub fn subject_of(stream: &str) -> Option<&str> {
    (stream.starts_with("user:") || stream.starts_with("device:")).then_some(stream)
}

/// Whether events of this type can hold personal data.
pub fn holds_personal(event_type: &str) -> bool {
    matches!(
        event_type,
        "user.created"
            | "user.updated"
            | "user.status_updated"
            | "device.registered"
            | "device.updated"
            | "device.properties_changed"
            | "device.push_token_invalidated"
    )
}

/// Whether an event of this type passes its device to an owner (registered
/// afresh, linked to a user) or from one (unlinked): the device's values
/// written from then on are no longer its previous owner's, and are sealed
/// under a new key generation.
pub fn passes_on(event_type: &str) -> bool {
    matches!(
        event_type,
        "device.registered" | "device.user_linked" | "device.user_unlinked"
    )
}

/// Where an event type keeps personal values: plain fields, and objects
/// whose every value is personal.
fn places(event_type: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match event_type {
        "user.created" => (&["name", "email"], &["properties"]),
        "user.updated" => (&["name", "email"], &["properties_set"]),
        "user.status_updated" => (&["reason"], &[]),
        "device.registered" | "device.updated" | "device.push_token_invalidated" => {
            (&["push_token"], &[])
        }
        "device.properties_changed" => (&[], &["set"]),
        _ => (&[], &[]),
    }
}

/// Calls `f` on every personal value in `data`, an event body of
/// `event_type` (`null` values hold nothing and are skipped).
pub fn visit(event_type: &str, data: &mut Value, mut f: impl FnMut(&mut Value)) {
    let Value::Object(map) = data else { return };
    let (fields, maps) = places(event_type);
    for field in fields {
        if let Some(value) = map.get_mut(*field)
            && !value.is_null()
        {
            f(value);
        }
    }
    for field in maps {
        if let Some(Value::Object(values)) = map.get_mut(*field) {
            values
                .values_mut()
                .filter(|v| !v.is_null())
                .for_each(&mut f);
        }
    }
}

/// [`visit`] without changing anything: whether any personal value of
/// `data` passes `test`.
pub fn any(event_type: &str, data: &Value, mut test: impl FnMut(&Value) -> bool) -> bool {
    let Value::Object(map) = data else {
        return false;
    };
    let (fields, maps) = places(event_type);
    fields
        .iter()
        .filter_map(|f| map.get(*f))
        .filter(|v| !v.is_null())
        .any(&mut test)
        || maps
            .iter()
            .filter_map(|f| map.get(*f).and_then(Value::as_object))
            .flat_map(|values| values.values())
            .filter(|v| !v.is_null())
            .any(&mut test)
}

/// Every value of `properties` replaced by the placeholder.
pub fn forget_properties(properties: &mut Properties) {
    for value in properties.values_mut() {
        *value = PropertyValue::Str(PLACEHOLDER.to_owned());
    }
}

/// `data` with every personal value replaced by the placeholder.
pub fn forget_in(event_type: &str, data: &mut Value) {
    visit(event_type, data, |v| {
        *v = Value::String(PLACEHOLDER.to_owned())
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_listed_values_are_visited() {
        let mut data = json!({
            "user_id": "u1", "name": "Ada", "email": null, "status": "active",
            "properties": {"city": "Paris", "age": 36},
        });
        forget_in("user.created", &mut data);
        assert_eq!(
            data,
            json!({
                "user_id": "u1", "name": PLACEHOLDER, "email": null, "status": "active",
                "properties": {"city": PLACEHOLDER, "age": PLACEHOLDER},
            })
        );
        let mut token = json!({"external_id": "d1", "push_token": "tok", "send_platform": "fcm"});
        forget_in("device.updated", &mut token);
        assert_eq!(token["push_token"], PLACEHOLDER);
        assert_eq!(token["external_id"], "d1");
        assert!(any("device.updated", &json!({"push_token": "t"}), |_| true));
        assert!(!any("device.updated", &json!({"push_token": null}), |_| {
            true
        }));
        assert!(any("user.created", &json!({"properties": {"a": 1}}), |v| v
            == &json!(1)));
        let mut other = json!({"title": "Hi"});
        forget_in("notification.created", &mut other);
        assert_eq!(other, json!({"title": "Hi"}));
    }

    #[test]
    fn every_type_that_holds_personal_data_has_fields() {
        for t in [
            "user.created",
            "user.updated",
            "user.status_updated",
            "device.registered",
            "device.updated",
            "device.properties_changed",
            "device.push_token_invalidated",
        ] {
            assert!(holds_personal(t), "{t}");
        }
        assert!(!holds_personal("user.deleted"));
        assert_eq!(subject_of("user:u1"), Some("user:u1"));
        assert_eq!(subject_of("notification:x"), None);
    }
}
