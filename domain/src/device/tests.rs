use serde_json::json;

use super::*;
use crate::properties::PropertyValue;
use crate::testing::given;

fn id() -> ExternalId {
    ExternalId::parse("dev-1").unwrap_or_else(|e| panic!("{e}"))
}

fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap_or_else(|e| panic!("{e}"))
}

fn token(t: &str) -> PushToken {
    PushToken::parse(t).unwrap_or_else(|e| panic!("{e}"))
}

fn registration(t: &str) -> Registration {
    Registration {
        push_token: token(t),
        send_platform: SendPlatform::Fcm,
        device_platform: DevicePlatform::Android,
        user: UserLink::Keep,
        has_permission: None,
    }
}

fn registered(t: &str) -> DeviceEvent {
    DeviceEvent::Registered {
        external_id: id(),
        push_token: token(t),
        send_platform: SendPlatform::Fcm,
        device_platform: DevicePlatform::Android,
        random_bucket: 42,
        user_id: None,
        has_permission: true,
    }
}

fn register(t: &str) -> DeviceCommand {
    DeviceCommand::Register {
        external_id: id(),
        registration: registration(t),
        random_bucket: 42,
        by: By::Server,
        new_secret: None,
    }
}

fn by_client(presented: Option<&str>) -> By {
    By::Client {
        presented: presented.map(str::to_owned),
    }
}

fn client_register(t: &str, presented: Option<&str>) -> DeviceCommand {
    DeviceCommand::Register {
        external_id: id(),
        registration: registration(t),
        random_bucket: 42,
        by: by_client(presented),
        new_secret: Some("new".into()),
    }
}

fn issued(secret: &str) -> DeviceEvent {
    DeviceEvent::SecretIssued {
        external_id: id(),
        secret_sha256: secret.into(),
    }
}

fn patch(v: serde_json::Value) -> DeviceCommand {
    DeviceCommand::SetProperties {
        external_id: id(),
        patch: PropertyPatch::parse("properties", &v).unwrap_or_else(|e| panic!("{e}")),
    }
}

#[test]
fn a_new_device_is_registered_with_its_bucket() {
    given::<Device>([])
        .when(register("t1"))
        .then([registered("t1")]);
}

#[test]
fn registering_the_same_again_changes_nothing() {
    given::<Device>([registered("t1")])
        .when(register("t1"))
        .then([]);
}

#[test]
fn a_new_token_is_an_update_of_that_field_only() {
    given::<Device>([registered("t1")])
        .when(register("t2"))
        .then([DeviceEvent::Updated {
            external_id: id(),
            push_token: Some(token("t2")),
            send_platform: None,
            device_platform: None,
            has_permission: None,
        }]);
}

#[test]
fn linking_moves_a_device_between_users() {
    let mut r = registration("t1");
    r.user = UserLink::Link(user("b"));
    given::<Device>([
        registered("t1"),
        DeviceEvent::UserLinked {
            external_id: id(),
            user_id: user("a"),
        },
    ])
    .when(DeviceCommand::Register {
        external_id: id(),
        registration: r,
        random_bucket: 1,
        by: By::Server,
        new_secret: None,
    })
    .then([
        DeviceEvent::UserUnlinked {
            external_id: id(),
            user_id: user("a"),
            reason: "request".into(),
        },
        DeviceEvent::UserLinked {
            external_id: id(),
            user_id: user("b"),
        },
    ]);
}

#[test]
fn a_deleted_device_registers_afresh() {
    given::<Device>([registered("t1"), DeviceEvent::Deleted { external_id: id() }])
        .when(register("t1"))
        .then([registered("t1")]);
}

#[test]
fn properties_change_once() {
    let history = [
        registered("t1"),
        DeviceEvent::PropertiesChanged {
            external_id: id(),
            set: [("plan".to_owned(), PropertyValue::Str("pro".into()))].into(),
            removed: vec![],
        },
    ];
    given::<Device>(history.clone())
        .when(patch(json!({"plan": "pro", "gone": null})))
        .then([]);
    given::<Device>(history)
        .when(patch(json!({"plan": null, "age": 3})))
        .then([DeviceEvent::PropertiesChanged {
            external_id: id(),
            set: [("age".to_owned(), PropertyValue::Int(3))].into(),
            removed: vec!["plan".into()],
        }]);
}

#[test]
fn an_unknown_device_has_no_properties_to_set() {
    given::<Device>([])
        .when(patch(json!({"a": 1})))
        .then_error(DomainError::NotFound("device"));
}

#[test]
fn only_the_owner_deletes_through_the_user() {
    let linked = [
        registered("t1"),
        DeviceEvent::UserLinked {
            external_id: id(),
            user_id: user("a"),
        },
    ];
    given::<Device>(linked.clone())
        .when(DeviceCommand::DeleteOwned {
            external_id: id(),
            user_id: user("b"),
        })
        .then_error(DomainError::NotFound("device"));
    given::<Device>(linked)
        .when(DeviceCommand::DeleteOwned {
            external_id: id(),
            user_id: user("a"),
        })
        .then([DeviceEvent::Deleted { external_id: id() }]);
}

#[test]
fn only_the_current_token_is_invalidated() {
    let invalidate = |t: &str| DeviceCommand::InvalidateToken {
        external_id: id(),
        push_token: t.into(),
        reason: "unregistered".into(),
    };
    given::<Device>([registered("t1")])
        .when(invalidate("old"))
        .then([]);
    given::<Device>([registered("t1")])
        .when(invalidate("t1"))
        .then([DeviceEvent::PushTokenInvalidated {
            external_id: id(),
            push_token: "t1".into(),
            reason: "unregistered".into(),
        }]);
}

#[test]
fn re_registering_a_dead_token_revives_it() {
    let dead = [
        registered("t1"),
        DeviceEvent::PushTokenInvalidated {
            external_id: id(),
            push_token: "t1".into(),
            reason: "unregistered".into(),
        },
    ];
    let state = Device::replay(dead.iter());
    assert!(!state.token_valid);
    given::<Device>(dead)
        .when(register("t1"))
        .then([DeviceEvent::Updated {
            external_id: id(),
            push_token: Some(token("t1")),
            send_platform: None,
            device_platform: None,
            has_permission: None,
        }]);
}

#[test]
fn events_round_trip_through_the_log_form() {
    let event = DeviceEvent::Updated {
        external_id: id(),
        push_token: None,
        send_platform: Some(SendPlatform::Apns),
        device_platform: None,
        has_permission: Some(false),
    };
    let (event_type, data) = event.encode();
    assert_eq!(event_type, "device.updated");
    assert_eq!(
        data,
        json!({"external_id": "dev-1", "send_platform": "apns", "has_permission": false})
    );
    assert_eq!(DeviceEvent::decode(&event_type, 1, &data), Ok(event));
}

#[test]
fn a_client_key_registering_a_new_device_is_issued_its_secret() {
    given::<Device>([])
        .when(client_register("t1", None))
        .then([registered("t1"), issued("new")]);
}

#[test]
fn a_client_key_changes_its_own_device_only_with_the_secret() {
    let history = [registered("t1"), issued("s1")];
    for presented in [None, Some("wrong")] {
        let refused = given::<Device>(history.clone())
            .when(client_register("t2", presented))
            .then_refused();
        assert!(matches!(refused, DomainError::Forbidden(_)), "{refused:?}");
    }
    given::<Device>(history.clone())
        .when(client_register("t2", Some("s1")))
        .then([DeviceEvent::Updated {
            external_id: id(),
            push_token: Some(token("t2")),
            send_platform: None,
            device_platform: None,
            has_permission: None,
        }]);
    given::<Device>(history)
        .when(DeviceCommand::Delete {
            external_id: id(),
            by: by_client(Some("s1")),
        })
        .then([DeviceEvent::Deleted { external_id: id() }]);
}

#[test]
fn a_client_key_cannot_touch_a_device_the_server_registered() {
    for command in [
        client_register("t2", Some("anything")),
        DeviceCommand::Delete {
            external_id: id(),
            by: by_client(Some("anything")),
        },
    ] {
        let refused = given::<Device>([registered("t1")])
            .when(command)
            .then_refused();
        assert!(matches!(refused, DomainError::Forbidden(_)), "{refused:?}");
    }
}

#[test]
fn a_client_key_cannot_link_a_user() {
    let mut r = registration("t1");
    r.user = UserLink::Link(user("someone-else"));
    let refused = given::<Device>([])
        .when(DeviceCommand::Register {
            external_id: id(),
            registration: r,
            random_bucket: 1,
            by: by_client(None),
            new_secret: Some("new".into()),
        })
        .then_refused();
    assert!(matches!(refused, DomainError::Forbidden(_)), "{refused:?}");
}

#[test]
fn the_server_keeps_full_control_of_a_client_registered_device() {
    given::<Device>([registered("t1"), issued("s1")])
        .when(register("t2"))
        .then([DeviceEvent::Updated {
            external_id: id(),
            push_token: Some(token("t2")),
            send_platform: None,
            device_platform: None,
            has_permission: None,
        }]);
}

#[test]
fn a_deleted_device_forgets_its_secret() {
    given::<Device>([
        registered("t1"),
        issued("s1"),
        DeviceEvent::Deleted { external_id: id() },
    ])
    .when(client_register("t1", None))
    .then([registered("t1"), issued("new")]);
}

#[test]
fn the_secret_event_is_outside_the_device_family() {
    let (event_type, _) = issued("s").encode();
    assert_eq!(event_type, SECRET_ISSUED);
    assert!(!crate::change_queue::is_integration(&event_type));
}
