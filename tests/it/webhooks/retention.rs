//! Finished deliveries are deleted once past the retention, with their
//! attempts; newer ones, and the log, stay.

use chrono::Duration;
use herald_tests::receiver::Receiver;
use herald_tests::{Backend, on_both};
use infra::clock::Clock;
use infra::reactors::webhooks::retention::{self, Purged};
use serde_json::json;

use super::{Hooked, WITHIN};

on_both!(
    finished_messages_past_the_retention_go_with_their_attempts,
    retention_purge
);
async fn retention_purge(backend: Backend) {
    // The node's own purge is off: the test runs it at chosen times.
    let Some(h) = Hooked::spawn_with(backend, |c| c.webhooks.retention = None).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (id, _) = h.endpoint(json!({"url": receiver.url("/")})).await;
    h.user("old", json!({})).await;
    let first = h.wait_attempts(&id, 1).await;
    let old_message = first[0]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    h.advance(Duration::days(20));
    h.user("new", json!({})).await;
    let both = h.wait_attempts(&id, 2).await;
    let new_message = both[1]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(old_message, new_message);
    assert_eq!(receiver.wait_for(2, WITHIN).await.len(), 2);

    // 29 days after the first: nothing is old enough.
    h.advance(Duration::days(9));
    let purge = || {
        retention::purge(
            h.app.herald.db(),
            h.clock.now(),
            retention::DEFAULT_RETENTION,
        )
    };
    assert_eq!(
        purge().await.unwrap_or_else(|e| panic!("{e}")),
        Purged::default()
    );

    // 31 days after: the first message and its attempt go, the second stays.
    h.advance(Duration::days(2));
    let purged = purge().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((purged.messages, purged.attempts), (1, 1), "{purged:?}");
    let left = h.attempts(&id).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["message_id"], new_message.as_str());
    let old = resend(&h, &id, &old_message).await;
    assert_eq!(old.status, 404, "{}", old.body);
    let again = resend(&h, &id, &new_message).await;
    assert!(again.status < 300, "{}", again.body);

    // The log keeps both events; a second purge finds nothing more.
    assert_eq!(h.events_of("user.created").await.len(), 2);
    assert_eq!(
        purge().await.unwrap_or_else(|e| panic!("{e}")),
        Purged::default()
    );
}

async fn resend(h: &Hooked, endpoint: &str, message: &str) -> herald_tests::app::Resp {
    h.app
        .post(
            &format!("/v1/webhooks/{endpoint}/messages/{message}/resend"),
            &h.key.token,
            json!({}),
        )
        .await
}

#[test]
fn thirty_days_is_the_default() {
    let config = infra::reactors::webhooks::policy::WebhookConfig::default();
    assert_eq!(
        config.retention,
        Some(std::time::Duration::from_secs(30 * 24 * 3600))
    );
}
