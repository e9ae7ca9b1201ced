//! The projection runner: catch-up after downtime, checkpoints, versions.

use std::sync::Arc;
use std::time::Duration;

use domain::Metadata;
use herald_tests::{Backend, TestApp, TestDb, on_both};
use infra::runtime::{self, Followers};
use infra::store::EventStore;
use serde_json::json;

on_both!(a_restarted_app_catches_up_and_never_applies_twice, catch_up);
async fn catch_up(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let pool = db.db.clone();
    let app = TestApp::spawn_on(db, |_| {}).await;
    let key = app.create_app("a").await;
    for i in 0..30 {
        let body = json!({"push_token": format!("t{i}"), "send_platform": "fcm", "device_platform": "android"});
        assert!(
            app.put(&format!("/v1/devices/d{}", i % 7), &key.token, body)
                .await
                .status
                < 300
        );
    }
    // Events written while no runner follows the log (another process, say)…
    let (sealed, personal) = herald_tests::app::sealed_log(&app.db).await;
    let store: Arc<dyn EventStore> = sealed;
    let app_id = key.app_id.parse().unwrap_or_else(|e| panic!("{e}"));
    let bus = infra::runtime::commands::CommandBus::new(store.clone());
    let registration = domain::device::Registration {
        push_token: domain::device::PushToken::parse("late").unwrap_or_else(|e| panic!("{e}")),
        send_platform: domain::platform::SendPlatform::Apns,
        device_platform: domain::platform::DevicePlatform::Ios,
        user: domain::device::UserLink::Keep,
        has_permission: Some(false),
    };
    let external_id =
        domain::ids::ExternalId::parse("late-device").unwrap_or_else(|e| panic!("{e}"));
    let done = bus
        .execute::<domain::device::Device>(
            &domain::device::stream(&external_id),
            &Metadata::system(app_id, "test"),
            domain::device::DeviceCommand::Register {
                external_id: external_id.clone(),
                registration,
                random_bucket: 7,
                by: domain::device::By::Server,
                new_secret: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let position = done.appended.map(|a| a.last_position).unwrap_or_default();

    // …are picked up by a runner started later, exactly once.
    let runner = Followers::new(
        pool.clone(),
        store.clone(),
        infra::clock::system(),
        runtime::registered_with(personal, None),
    );
    runner.start().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(runner.wait_for_all(position, Duration::from_secs(20)).await);
    let late = app.get("/v1/devices/late-device", &key.token).await;
    assert_eq!(late.status, 200);
    assert_eq!(
        (
            late.body["send_platform"].as_str(),
            late.body["has_permission"].as_bool()
        ),
        (Some("apns"), Some(false))
    );
    // Every device equals its own stream folded from scratch.
    for i in 0..7 {
        let id = domain::ids::ExternalId::parse(format!("d{i}")).unwrap_or_else(|e| panic!("{e}"));
        let history = store
            .load_stream(app_id, &domain::device::stream(&id))
            .await
            .unwrap_or_default();
        let folded = infra::services::devices::fold(&history)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_record();
        let read = projections::devices::get_device(&pool, app_id, id.as_str())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, folded, "device d{i}");
    }
    for (name, _, checkpoint) in runner.checkpoints() {
        assert!(checkpoint >= position, "{name} at {checkpoint}");
    }
}
