use std::collections::BTreeMap;

use uuid::Uuid;

use super::settings::{self, EndpointUrl, Headers, HttpMethod};
use super::*;
use crate::testing::given;

fn id() -> WebhookId {
    WebhookId(Uuid::from_u128(7))
}

fn base() -> Settings {
    Settings {
        url: EndpointUrl::parse("https://example.com/hook").unwrap_or_else(|e| panic!("{e}")),
        description: None,
        event_types: EventTypes::default(),
        method: HttpMethod::Post,
        headers: Headers::default(),
        payload_template: None,
        rate_limit_per_second: None,
        ordered: false,
        set_user_status_on_failure: false,
        encryption_public_key: None,
    }
}

fn created() -> WebhookEvent {
    WebhookEvent::Created {
        webhook_id: id(),
        settings: base(),
        auth: None,
        secret_fingerprint: "f1".into(),
    }
}

#[test]
fn an_update_records_the_new_settings_and_what_changed() {
    let patch = SettingsPatch {
        ordered: Some(true),
        description: Change::Set("d".into()),
        method: Some(HttpMethod::Post),
        ..Default::default()
    };
    let mut expected = base();
    expected.ordered = true;
    expected.description = Some("d".into());
    given::<Endpoint>([created()])
        .when(WebhookCommand::Update {
            webhook_id: id(),
            patch,
        })
        .then([WebhookEvent::Updated {
            webhook_id: id(),
            settings: expected,
            auth: None,
            changed: vec!["description".into(), "ordered".into()],
        }]);
}

#[test]
fn an_update_that_changes_nothing_writes_nothing() {
    given::<Endpoint>([created()])
        .when(WebhookCommand::Update {
            webhook_id: id(),
            patch: SettingsPatch {
                url: Some(base().url),
                ..Default::default()
            },
        })
        .then([]);
}

#[test]
fn disabling_happens_once_and_enabling_undoes_it() {
    let disable = || WebhookCommand::Disable {
        webhook_id: id(),
        reason: "gone".into(),
    };
    let disabled = WebhookEvent::Disabled {
        webhook_id: id(),
        reason: "gone".into(),
    };
    given::<Endpoint>([created()])
        .when(disable())
        .then([disabled.clone()]);
    given::<Endpoint>([created(), disabled.clone()])
        .when(disable())
        .then([]);
    given::<Endpoint>([created(), disabled])
        .when(WebhookCommand::Enable { webhook_id: id() })
        .then([WebhookEvent::Enabled { webhook_id: id() }]);
}

#[test]
fn a_deleted_endpoint_is_gone_and_its_id_stays_taken() {
    let history = [created(), WebhookEvent::Deleted { webhook_id: id() }];
    given::<Endpoint>(history.clone())
        .when(WebhookCommand::Enable { webhook_id: id() })
        .then_error(DomainError::NotFound("webhook"));
    let err = given::<Endpoint>(history)
        .when(WebhookCommand::Create {
            webhook_id: id(),
            settings: base(),
            auth: None,
            secret_fingerprint: "f2".into(),
        })
        .then_refused();
    assert!(matches!(err, DomainError::StateConflict(_)));
}

#[test]
fn urls_must_be_absolute_http_without_credentials() {
    for bad in [
        "ftp://example.com/",
        "/relative",
        "https://user:pw@example.com/",
        "https://example.com/#frag",
        "http://",
    ] {
        assert!(EndpointUrl::parse(bad).is_err(), "{bad} was accepted");
    }
    assert!(EndpointUrl::parse("http://127.0.0.1:9000/x?y=1").is_ok());
}

#[test]
fn aliases_stand_for_user_events() {
    let types = settings::event_types(&["create_user".into(), "update_user_status".into()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(types.admits("user.created") && types.admits("user.status_updated"));
    assert!(!types.admits("user.deleted") && !types.admits("webhook.endpoint_created"));
    assert!(settings::event_types(&["app.created".into()]).is_err());
}

#[test]
fn reserved_and_malformed_headers_are_refused() {
    let headers: BTreeMap<String, String> = [
        ("Webhook-Signature".to_owned(), "x".to_owned()),
        ("bad name".to_owned(), "x".to_owned()),
        ("x-ok".to_owned(), "line\nbreak".to_owned()),
        ("X-Team".to_owned(), "blue".to_owned()),
    ]
    .into();
    let Err(DomainError::Invalid(errors)) = Headers::parse(&headers) else {
        panic!("accepted")
    };
    assert_eq!(errors.len(), 3, "{errors:?}");
    let one: BTreeMap<String, String> = [("X-Team".to_owned(), "blue".to_owned())].into();
    let parsed = Headers::parse(&one).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        parsed.iter().collect::<Vec<_>>(),
        [(&"x-team".to_owned(), &"blue".to_owned())]
    );
}

#[test]
fn events_round_trip_through_the_log_form() {
    let event = created();
    let (event_type, data) = event.encode();
    assert_eq!(event_type, "webhook.endpoint_created");
    assert_eq!(WebhookEvent::decode(&event_type, 1, &data), Ok(event));
}
