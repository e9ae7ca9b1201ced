//! Whose time a device's values were written in.
//!
//! A device passes from owner to owner (`personal::passes_on`), and the
//! values written in each owner's time are sealed under key generations of
//! their own: forgetting a user destroys only theirs. But a device carries
//! values over from one owner's time into the next (a property the next
//! owner did not change, the push token when they sent none), and the read
//! models hold those opened. So forgetting a former owner records in the
//! device's stream what it still carried of theirs ([`Carried`]), and every
//! fold (this aggregate, the `devices` model, reads "as of") replaces those
//! values with the placeholder, as a rebuild opening them would.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Device, DeviceEvent, PushToken};
use crate::ids::{ExternalId, UserId};
use crate::personal::PLACEHOLDER;
use crate::properties::{Properties, PropertyValue};

/// What a device still carried from a former owner's time when they were
/// forgotten: these values read as the placeholder from then on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    /// The push token was sent while the device was theirs: nothing is
    /// sent to it until a new token is registered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub push_token: bool,
    /// The properties whose values they set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<String>,
}

impl Carried {
    pub fn is_empty(&self) -> bool {
        !self.push_token && self.properties.is_empty()
    }

    /// Replaces the carried property values with the placeholder.
    pub fn forget(&self, properties: &mut Properties) {
        for name in &self.properties {
            if let Some(value) = properties.get_mut(name) {
                *value = PropertyValue::Str(PLACEHOLDER.to_owned());
            }
        }
    }
}

/// Whose time each of a device's values was written in, and which users'
/// part of it is still to be forgotten. It follows the owners as
/// `personal::Owners` does through the stream as stored, and it outlives a
/// deletion and a registration afresh: what was written before is still
/// someone's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eras {
    /// The user the device is theirs: its owner, or while it is unlinked
    /// its last one (what it holds is still theirs).
    holder: Option<UserId>,
    /// Users whose time on the device has events not followed by their
    /// forget yet.
    unforgotten: BTreeSet<UserId>,
    /// Whose time the current push token was sent in (`None`: no one's).
    token: Option<UserId>,
    /// Whose time each property's value was set in (absent: no one's).
    properties: BTreeMap<String, UserId>,
    /// Whose time every event of the stream was written in, while that is
    /// one user's (or no one's) alone.
    sole: Sole,
}

/// Whose time a stream's events were written in, all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Sole {
    #[default]
    NoEvents,
    /// One owner's (or, `None`, no one's) alone.
    One(Option<UserId>),
    /// Several owners', or some owner's and no one's.
    Mixed,
}

impl Eras {
    /// Follows one event; `owner` is the device's owner after it.
    pub(super) fn evolve(&mut self, event: &DeviceEvent, owner: Option<&UserId>) {
        match event {
            DeviceEvent::Registered { user_id, .. } => {
                self.holder = user_id.clone();
                self.token = user_id.clone();
                self.properties.clear();
            }
            DeviceEvent::UserLinked { user_id, .. } => self.holder = Some(user_id.clone()),
            DeviceEvent::Updated {
                push_token: Some(_),
                ..
            } => self.token = owner.cloned(),
            DeviceEvent::PropertiesChanged { set, removed, .. } => {
                for name in removed {
                    self.properties.remove(name);
                }
                for name in set.keys() {
                    match owner {
                        Some(owner) => self.properties.insert(name.clone(), owner.clone()),
                        None => self.properties.remove(name),
                    };
                }
            }
            DeviceEvent::Deleted { .. } => {
                self.token = None;
                self.properties.clear();
            }
            // Every value reads as the placeholder: no one's any more.
            DeviceEvent::Forgotten {
                former_owner: None, ..
            } => {
                if let Some(holder) = &self.holder {
                    self.unforgotten.remove(holder);
                }
                self.token = None;
                self.properties.clear();
                return;
            }
            DeviceEvent::Forgotten {
                former_owner: Some(user),
                ..
            } => {
                self.unforgotten.remove(user);
                if self.token.as_ref() == Some(user) {
                    self.token = None;
                }
                self.properties.retain(|_, owner| *owner != *user);
                return;
            }
            _ => {}
        }
        self.sole = match std::mem::take(&mut self.sole) {
            Sole::NoEvents => Sole::One(owner.cloned()),
            Sole::One(only) if only.as_ref() == owner => Sole::One(only),
            _ => Sole::Mixed,
        };
        if let Some(owner) = owner {
            self.unforgotten.insert(owner.clone());
        }
    }
}

impl Device {
    /// What forgetting `user_id` records in the device's stream, if
    /// anything. Theirs from its first event on, all of it is forgotten
    /// (unless nothing was written since the last time). Otherwise —
    /// passed to someone else since, or written in someone else's time (or
    /// no one's) before it was theirs again — only what it still carries
    /// from their time, the rest being others' (under keys this forget
    /// leaves alone); and nothing if nothing was written in their time
    /// since they were last forgotten. Such a part is recorded even when
    /// it carries nothing of theirs any more: every node reading it drops
    /// its copies of the keys just destroyed, and the feeds render again
    /// what they kept of the events of their time.
    pub(super) fn forgetting(
        &self,
        external_id: ExternalId,
        user_id: UserId,
    ) -> Option<DeviceEvent> {
        // Every event theirs: all of it is theirs to forget. Otherwise the
        // rest was written in someone else's time (or no one's), under
        // keys this forget leaves alone, and stays readable: only what was
        // written in theirs is forgotten, whether or not the device is
        // still theirs.
        if self.eras.holder.as_ref() == Some(&user_id)
            && self.eras.sole == Sole::One(Some(user_id.clone()))
        {
            return (!self.forgotten).then_some(DeviceEvent::Forgotten {
                external_id,
                former_owner: None,
                carried: Carried::default(),
            });
        }
        if !self.eras.unforgotten.contains(&user_id) {
            return None;
        }
        let carried = Carried {
            push_token: self.eras.token.as_ref() == Some(&user_id),
            properties: self
                .eras
                .properties
                .iter()
                .filter(|(_, owner)| **owner == user_id)
                .map(|(name, _)| name.clone())
                .collect(),
        };
        Some(DeviceEvent::Forgotten {
            external_id,
            former_owner: Some(user_id),
            carried,
        })
    }

    /// Applies a former owner's forget: what the device carried of theirs
    /// reads as the placeholder.
    pub(super) fn forget_carried(&mut self, carried: &Carried) {
        if carried.push_token {
            if self.push_token.is_some() {
                self.push_token = Some(PushToken::forgotten());
            }
            self.token_valid = false;
        }
        carried.forget(&mut self.properties);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregate::Aggregate;
    use crate::device::DeviceCommand;
    use crate::event::DomainEvent;
    use crate::platform::{DevicePlatform, SendPlatform};
    use crate::testing::given;

    fn id() -> ExternalId {
        ExternalId::parse("dev-1").unwrap_or_else(|e| panic!("{e}"))
    }

    fn user(u: &str) -> UserId {
        UserId::parse(u).unwrap_or_else(|e| panic!("{e}"))
    }

    fn registered(owner: &str) -> DeviceEvent {
        DeviceEvent::Registered {
            external_id: id(),
            push_token: PushToken::parse("t1").unwrap_or_else(|e| panic!("{e}")),
            send_platform: SendPlatform::Fcm,
            device_platform: DevicePlatform::Android,
            random_bucket: 42,
            user_id: Some(user(owner)),
            has_permission: true,
        }
    }

    fn linked(owner: &str) -> DeviceEvent {
        DeviceEvent::UserLinked {
            external_id: id(),
            user_id: user(owner),
        }
    }

    fn set(name: &str, value: &str) -> DeviceEvent {
        DeviceEvent::PropertiesChanged {
            external_id: id(),
            set: Properties::from([(name.to_owned(), PropertyValue::Str(value.to_owned()))]),
            removed: vec![],
        }
    }

    fn forget(owner: &str) -> DeviceCommand {
        DeviceCommand::Forget {
            external_id: id(),
            user_id: user(owner),
        }
    }

    fn forgotten_part(owner: &str, push_token: bool, properties: &[&str]) -> DeviceEvent {
        DeviceEvent::Forgotten {
            external_id: id(),
            former_owner: Some(user(owner)),
            carried: Carried {
                push_token,
                properties: properties.iter().map(|p| (*p).to_owned()).collect(),
            },
        }
    }

    fn forgotten_all() -> DeviceEvent {
        DeviceEvent::Forgotten {
            external_id: id(),
            former_owner: None,
            carried: Carried::default(),
        }
    }

    #[test]
    fn a_former_owner_is_forgotten_in_what_the_device_still_carries_of_theirs() {
        // a registers it (their token) and sets two properties; b takes it
        // over and changes one.
        let history = [
            registered("a"),
            set("city", "Paris"),
            set("lang", "fr"),
            linked("b"),
            set("lang", "en"),
        ];
        given::<Device>(history.clone())
            .when(forget("a"))
            .then([forgotten_part("a", true, &["city"])]);
        // Still b's, but a's token and city are not b's to forget: only
        // what b wrote. Never c's: nothing.
        given::<Device>(history.clone())
            .when(forget("b"))
            .then([forgotten_part("b", false, &["lang"])]);
        given::<Device>(history.clone()).when(forget("c")).then([]);

        let mut after = history.to_vec();
        after.push(forgotten_part("a", true, &["city"]));
        let device = Device::replay(after.iter());
        assert_eq!(device.push_token, Some(PushToken::forgotten()));
        assert!(!device.token_valid);
        let forgotten = PropertyValue::Str(PLACEHOLDER.to_owned());
        assert_eq!(device.properties.get("city"), Some(&forgotten));
        assert_eq!(
            device.properties.get("lang"),
            Some(&PropertyValue::Str("en".to_owned()))
        );
        // Recorded once; b's own forget is not taken for done by it.
        given::<Device>(after.clone()).when(forget("a")).then([]);
        given::<Device>(after)
            .when(forget("b"))
            .then([forgotten_part("b", false, &["lang"])]);
    }

    #[test]
    fn a_device_that_is_theirs_again_keeps_what_others_wrote_between() {
        // a, then b (who sets lang), then a again: b's lang is b's.
        given::<Device>([
            registered("a"),
            set("city", "Paris"),
            linked("b"),
            set("lang", "en"),
            linked("a"),
            set("pet", "cat"),
        ])
        .when(forget("a"))
        .then([forgotten_part("a", true, &["city", "pet"])]);
        // Registered by a, and only ever a's: all of it, whole.
        given::<Device>([registered("a"), set("city", "Paris")])
            .when(forget("a"))
            .then([forgotten_all()]);
    }

    #[test]
    fn only_what_was_written_in_their_time_since_their_last_forget_is_recorded() {
        // Forgotten whole while theirs, a writes again, then b takes over.
        given::<Device>([
            registered("a"),
            set("city", "Paris"),
            forgotten_all(),
            set("city", "Lyon"),
            linked("b"),
        ])
        .when(forget("a"))
        .then([forgotten_part("a", false, &["city"])]);
        // Registered afresh by b after a's forget: nothing of a's since.
        given::<Device>([
            registered("a"),
            forgotten_all(),
            DeviceEvent::Deleted { external_id: id() },
            registered("b"),
        ])
        .when(forget("a"))
        .then([]);
        // Unlinked, what the device holds of a's time is still a's (the
        // unlink itself holds nothing personal).
        given::<Device>([
            registered("a"),
            DeviceEvent::UserUnlinked {
                external_id: id(),
                user_id: user("a"),
                reason: "request".into(),
            },
        ])
        .when(forget("a"))
        .then([forgotten_part("a", true, &[])]);
    }

    #[test]
    fn a_former_owners_forget_round_trips_through_the_log_form() {
        let event = forgotten_part("a", true, &["city"]);
        let (event_type, data) = event.encode();
        assert_eq!(event_type, "subject.forgotten");
        assert_eq!(
            data,
            json!({
                "external_id": "dev-1", "former_owner": "a",
                "carried": {"push_token": true, "properties": ["city"]},
            })
        );
        assert_eq!(DeviceEvent::decode(&event_type, 1, &data), Ok(event));
        // The whole device forgotten reads as it always did.
        let (_, data) = forgotten_all().encode();
        assert_eq!(data, json!({"external_id": "dev-1"}));
        assert_eq!(
            DeviceEvent::decode(&event_type, 1, &data),
            Ok(forgotten_all())
        );
    }
}
