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

/// The field of a device's `subject.forgotten` that names the owner
/// (former, or current) whose part alone was forgotten: the device had
/// been someone else's (or no one's) too, and only what it still carried
/// from their time reads as the placeholder (see `device::Carried`).
/// Absent, the whole subject was forgotten.
pub const FORMER_OWNER: &str = "former_owner";

/// Of a `subject.forgotten` event's body: the former owner whose part of a
/// device alone was forgotten, if that is what it records.
pub fn former_owner(data: &Value) -> Option<&str> {
    data.get(FORMER_OWNER).and_then(Value::as_str)
}

/// Follows who a device belongs to through its stream as the log holds it
/// (a `user_id` is never sealed), event by event. Each owner's values are
/// sealed under key generations of their own (see [`passes_on`]), so this
/// tells which events forgetting a user reaches. The device aggregate folds
/// the same owners from its events (`device::Eras`).
#[derive(Debug, Default, Clone)]
pub struct Owners {
    owner: Option<String>,
    holder: Option<String>,
}

impl Owners {
    /// Moves past one event (its type and body) and answers whose time it
    /// was written in: the device's owner then, `None` while it has none
    /// (unlinked, or registered without a user). An event that passes the
    /// device on is its new owner's, as is the key generation it starts.
    pub fn follow(&mut self, event_type: &str, data: &Value) -> Option<&str> {
        if passes_on(event_type) {
            let unlinked = event_type == "device.user_unlinked";
            self.owner = if unlinked {
                None
            } else {
                data.get("user_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            // Unlinked, the device is no one else's: what it holds is
            // still its last owner's.
            if !unlinked {
                self.holder = self.owner.clone();
            }
        }
        self.owner.as_deref()
    }

    /// The user the device is theirs: its owner, or while it is unlinked
    /// its last one.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }
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
    fn owners_follow_a_device_from_one_user_to_the_next() {
        let mut owners = Owners::default();
        let mut step = |event_type: &str, user: Value| {
            let owner = owners
                .follow(event_type, &json!({ "user_id": user }))
                .map(str::to_owned);
            (owner, owners.holder().map(str::to_owned))
        };
        let (a, b) = (Some("a".to_owned()), Some("b".to_owned()));
        assert_eq!(
            step("device.registered", json!("a")),
            (a.clone(), a.clone())
        );
        assert_eq!(
            step("device.properties_changed", Value::Null),
            (a.clone(), a.clone())
        );
        // Unlinked, it is no one's, but what it holds is still a's.
        assert_eq!(step("device.user_unlinked", json!("a")), (None, a.clone()));
        assert_eq!(step("device.updated", Value::Null), (None, a));
        assert_eq!(
            step("device.user_linked", json!("b")),
            (b.clone(), b.clone())
        );
        assert_eq!(step("subject.forgotten", Value::Null), (b.clone(), b));
        // Registered afresh without a user: no one's at all.
        assert_eq!(step("device.registered", Value::Null), (None, None));
        assert_eq!(former_owner(&json!({"former_owner": "a"})), Some("a"));
        assert_eq!(former_owner(&json!({"external_id": "d1"})), None);
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
