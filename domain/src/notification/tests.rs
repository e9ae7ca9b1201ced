use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use super::message::{Content, Priority, Targets};
use super::*;
use crate::testing::given;

fn id() -> Uuid {
    Uuid::from_u128(42)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn message(scheduled_at: Option<DateTime<Utc>>) -> Message {
    Message {
        content: Content {
            name: None,
            title: "Hello".into(),
            body: "World".into(),
            deep_link: Some("myapp://inbox/1".into()),
            image_url: None,
            icon_url: None,
            data: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            ttl_seconds: Some(3600),
            priority: Priority::High,
            collapse_key: None,
        },
        targets: Targets {
            conditions: Some(json!({"key": "plan", "operator": "str_eq", "value": "pro"})),
            user_ids: vec![],
            external_ids: vec![],
        },
        scheduled_at,
    }
}

fn created(scheduled_at: Option<DateTime<Utc>>) -> NotificationEvent {
    NotificationEvent::Created {
        notification_id: id(),
        message: message(scheduled_at),
    }
}

fn ext(s: &str) -> ExternalId {
    ExternalId::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn batch(n: u64, delivered: &[&str]) -> BatchOutcome {
    BatchOutcome {
        batch: n,
        delivered: delivered.iter().map(|d| ext(d)).collect(),
        failed: vec![],
        invalid: vec![],
        sent: PerPlatform {
            android: delivered.len() as u64,
            ios: 0,
            web: 0,
        },
        failures: PerPlatform::default(),
    }
}

fn sending() -> Vec<NotificationEvent> {
    vec![
        created(None),
        NotificationEvent::Launched {
            notification_id: id(),
        },
        NotificationEvent::AudienceResolved {
            notification_id: id(),
            total: 3,
            by_platform: PerPlatform {
                android: 3,
                ios: 0,
                web: 0,
            },
            batches: 2,
        },
    ]
}

#[test]
fn a_launch_with_a_future_schedule_queues() {
    let later = now() + Duration::hours(1);
    given::<Notification>([])
        .when(NotificationCommand::Create {
            id: id(),
            message: message(Some(later)),
            launch: true,
            now: now(),
        })
        .then([
            created(Some(later)),
            NotificationEvent::Queued {
                notification_id: id(),
                scheduled_at: later,
            },
        ]);
    given::<Notification>([created(Some(now() - Duration::hours(1)))])
        .when(NotificationCommand::Launch { now: now() })
        .then([NotificationEvent::Launched {
            notification_id: id(),
        }]);
}

#[test]
fn only_drafts_change_and_illegal_transitions_name_the_status() {
    let err = given::<Notification>(sending())
        .when(NotificationCommand::Update {
            message: message(None),
        })
        .then_refused();
    assert!(
        matches!(&err, DomainError::StateConflict(m) if m.contains("sending")),
        "{err:?}"
    );
    let err = given::<Notification>(sending())
        .when(NotificationCommand::Delete)
        .then_refused();
    assert!(matches!(&err, DomainError::StateConflict(m) if m.contains("sending")));
    given::<Notification>([created(None)])
        .when(NotificationCommand::ResolveAudience {
            total: 1,
            by_platform: PerPlatform::default(),
            batches: 1,
        })
        .then_refused();
}

#[test]
fn a_batch_is_recorded_once_and_counters_are_its_sum() {
    let mut history = sending();
    history.push(NotificationEvent::BatchSent {
        notification_id: id(),
        outcome: batch(1, &["a", "b"]),
    });
    given::<Notification>(history.clone())
        .when(NotificationCommand::RecordBatch(batch(1, &["a", "b"])))
        .then([]);
    history.push(NotificationEvent::BatchSent {
        notification_id: id(),
        outcome: batch(2, &["c"]),
    });
    given::<Notification>(history)
        .when(NotificationCommand::Finish)
        .then([NotificationEvent::Sent {
            notification_id: id(),
            sent: PerPlatform {
                android: 3,
                ios: 0,
                web: 0,
            },
            failed: PerPlatform::default(),
        }]);
}

#[test]
fn nothing_sent_is_an_error_with_a_reason() {
    given::<Notification>(sending())
        .when(NotificationCommand::Finish)
        .then([NotificationEvent::Errored {
            notification_id: id(),
            reason: "no device matched the targets".into(),
            sent: PerPlatform::default(),
            failed: PerPlatform::default(),
        }]);
}

#[test]
fn content_is_validated_field_by_field() {
    let mut m = message(None);
    m.content.title = String::new();
    m.content.image_url = Some("ftp://x/y.png".into());
    m.content.data.insert("google.x".into(), "v".into());
    m.content.collapse_key = Some("has space".into());
    m.content.ttl_seconds = Some(3_000_000);
    m.targets = Targets {
        conditions: None,
        user_ids: vec![],
        external_ids: vec![],
    };
    let Err(DomainError::Invalid(errors)) = m.validate() else {
        panic!("accepted")
    };
    let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "collapse_key",
            "conditions",
            "data.google.x",
            "image_url",
            "title",
            "ttl_seconds"
        ]
    );
}

#[test]
fn a_payload_over_the_provider_limit_names_the_field_to_shorten() {
    let mut m = message(None);
    for i in 0..40 {
        m.content.data.insert(format!("key{i}"), "x".repeat(100));
    }
    let Err(DomainError::Invalid(errors)) = m.validate() else {
        panic!("accepted")
    };
    assert_eq!(errors[0].field, "data");
    assert!(errors[0].message.contains("bytes"), "{}", errors[0].message);
}

#[test]
fn events_round_trip_through_the_log_form() {
    for event in [
        created(None),
        NotificationEvent::BatchSent {
            notification_id: id(),
            outcome: batch(1, &["a"]),
        },
    ] {
        let (event_type, data) = event.encode();
        assert_eq!(NotificationEvent::decode(&event_type, 1, &data), Ok(event));
    }
}
