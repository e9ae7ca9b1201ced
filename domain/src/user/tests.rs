use serde_json::json;

use super::*;
use crate::testing::given;

fn uid() -> UserId {
    UserId::parse("u-1").unwrap_or_else(|e| panic!("{e}"))
}

fn profile(name: Change<&str>, properties: serde_json::Value) -> Profile {
    Profile {
        name: match name {
            Change::Keep => Change::Keep,
            Change::Clear => Change::Clear,
            Change::Set(n) => Change::Set(Name::parse("name", n).unwrap_or_else(|e| panic!("{e}"))),
        },
        email: Change::Keep,
        properties: PropertyPatch::parse("properties", &properties)
            .unwrap_or_else(|e| panic!("{e}")),
    }
}

fn created() -> UserEvent {
    UserEvent::Created {
        user_id: uid(),
        name: Some("Ada".into()),
        email: None,
        status: UserStatus::Active,
        properties: Properties::new(),
    }
}

#[test]
fn a_new_user_is_created_active() {
    given::<User>([])
        .when(UserCommand::Upsert {
            user_id: uid(),
            profile: profile(Change::Set("Ada"), json!({})),
        })
        .then([created()]);
}

#[test]
fn only_changes_are_recorded() {
    given::<User>([created()])
        .when(UserCommand::Upsert {
            user_id: uid(),
            profile: profile(Change::Set("Ada"), json!({"x": null})),
        })
        .then([]);
    given::<User>([created()])
        .when(UserCommand::Upsert {
            user_id: uid(),
            profile: profile(Change::Clear, json!({"tier": 2})),
        })
        .then([UserEvent::Updated {
            user_id: uid(),
            name: Some(None),
            email: None,
            properties_set: [("tier".to_owned(), crate::properties::PropertyValue::Int(2))].into(),
            properties_removed: vec![],
        }]);
}

#[test]
fn status_changes_record_from_and_to_once() {
    let set = |s| UserCommand::SetStatus {
        user_id: uid(),
        status: s,
        reason: Some("why".into()),
    };
    given::<User>([created()])
        .when(set(UserStatus::Suspended))
        .then([UserEvent::StatusUpdated {
            user_id: uid(),
            from: UserStatus::Active,
            to: UserStatus::Suspended,
            reason: Some("why".into()),
        }]);
    given::<User>([created()])
        .when(set(UserStatus::Active))
        .then([]);
    given::<User>([])
        .when(set(UserStatus::Active))
        .then_error(DomainError::NotFound("user"));
}

#[test]
fn a_deleted_user_is_gone_and_can_return() {
    let history = [created(), UserEvent::Deleted { user_id: uid() }];
    given::<User>(history.clone())
        .when(UserCommand::Delete { user_id: uid() })
        .then_error(DomainError::NotFound("user"));
    given::<User>(history)
        .when(UserCommand::Upsert {
            user_id: uid(),
            profile: profile(Change::Set("Ada"), json!({})),
        })
        .then([created()]);
}

#[test]
fn a_user_known_only_from_their_devices_can_be_forgotten() {
    let forget = |linked_devices| UserCommand::Forget {
        user_id: uid(),
        linked_devices,
    };
    let forgotten = UserEvent::Forgotten { user_id: uid() };
    given::<User>([])
        .when(forget(false))
        .then_error(DomainError::NotFound("user"));
    given::<User>([])
        .when(forget(true))
        .then([forgotten.clone()]);
    given::<User>([forgotten.clone()])
        .when(forget(true))
        .then([]);
    // Created afterwards, they are a user like any other.
    given::<User>([forgotten])
        .when(UserCommand::Upsert {
            user_id: uid(),
            profile: profile(Change::Set("Ada"), json!({})),
        })
        .then([created()]);
}

#[test]
fn cleared_fields_survive_the_log_form() {
    let event = UserEvent::Updated {
        user_id: uid(),
        name: Some(None),
        email: None,
        properties_set: Properties::new(),
        properties_removed: vec!["a".into()],
    };
    let (event_type, data) = event.encode();
    assert_eq!(
        data,
        json!({"user_id": "u-1", "name": null, "properties_removed": ["a"]})
    );
    assert_eq!(UserEvent::decode(&event_type, 1, &data), Ok(event));
}

#[test]
fn emails_are_checked_loosely() {
    assert!(Email::parse("a@b.example").is_ok());
    for bad in ["", "a", "a@", "@b", "a@b@c", "a b@c"] {
        assert!(Email::parse(bad).is_err(), "{bad}");
    }
}
