//! Callback URLs: `{{callback.url}}` gives each message about a user a
//! single-use URL on Herald that the receiver calls (no API key) to set
//! that user's status; refused once used, once expired, after the user is
//! forgotten, and without a public URL to issue it under.

use herald_tests::receiver::{Received, Receiver};
use herald_tests::{Backend, on_both};
use infra::reactors::webhooks::callbacks::PublicUrl;
use serde_json::{Value, json};

use super::Hooked;

const PUBLIC: &str = "https://herald.example.com/base";

async fn hooked(backend: Backend) -> Option<Hooked> {
    Hooked::spawn_with(backend, |c| {
        c.webhooks.public_url = Some(PublicUrl::parse(PUBLIC).unwrap_or_else(|e| panic!("{e}")));
        c.webhooks.callback_ttl = std::time::Duration::from_secs(3600);
    })
    .await
}

/// The token of a callback URL issued under [`PUBLIC`].
fn token_of(url: &Value) -> String {
    let url = url
        .as_str()
        .unwrap_or_else(|| panic!("no callback URL: {url}"));
    url.strip_prefix(&format!("{PUBLIC}/v1/callbacks/"))
        .unwrap_or_else(|| panic!("not under the public URL: {url}"))
        .to_owned()
}

async fn call_back(h: &Hooked, token: &str, body: Value) -> herald_tests::app::Resp {
    let resp = h
        .app
        .client
        .post(h.app.url(&format!("/v1/callbacks/{token}")))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    herald_tests::app::read(resp).await
}

/// Every message received so far, after running the reactors until idle.
async fn messages(h: &Hooked, receiver: &Receiver) -> Vec<Received> {
    h.app.idle().await;
    receiver.received()
}

async fn templated_endpoint(h: &Hooked, receiver: &Receiver) -> String {
    h.endpoint(json!({
        "url": receiver.url("/hook"),
        "event_types": ["user.created", "device.*"],
        "payload_template": {
            "type": "{{event.type}}",
            "user": "{{user.id}}",
            "device": "{{device.external_id}}",
            "callback": "{{callback.url}}"
        }
    }))
    .await
    .0
}

on_both!(
    a_receiver_sets_the_users_status_once_through_its_callback_url,
    used_once
);
async fn used_once(backend: Backend) {
    let Some(h) = hooked(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let endpoint = templated_endpoint(&h, &receiver).await;
    h.user("u1", json!({"name": "Ada"})).await;
    let got = messages(&h, &receiver).await;
    assert_eq!(got.len(), 1);
    let message = got[0].json();
    assert_eq!(message["user"], "u1");
    let token = token_of(&message["callback"]);

    // Bad input is refused and spends nothing.
    let bad = call_back(&h, &token, json!({"status": "banned"})).await;
    assert_eq!(bad.invalid_fields(), ["status"], "{}", bad.body);
    let unknown_field = call_back(&h, &token, json!({"status": "active", "x": 1})).await;
    assert_eq!(unknown_field.status, 400, "{}", unknown_field.body);

    let used = call_back(
        &h,
        &token,
        json!({"status": "suspended", "reason": "asked by CRM"}),
    )
    .await;
    assert_eq!(used.status, 200, "{}", used.body);
    assert_eq!(used.body, json!({"user_id": "u1", "status": "suspended"}));
    assert!(used.header("herald-position").is_some());
    let user = h.app.get("/v1/users/u1", &h.key.token).await;
    assert_eq!(user.body["status"], "suspended");

    // Recorded as a command of its own actor, caused by the message's event.
    let changes = h.events_of("user.status_updated").await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        changes[0]["metadata"]["actor"],
        format!("callback:{endpoint}")
    );
    assert_eq!(
        changes[0]["metadata"]["causation_id"].as_str(),
        Some(got[0].webhook_id().as_str())
    );
    assert_eq!(changes[0]["data"]["to"], "suspended");
    // The token is in no event.
    let log = serde_json::to_string(&h.app.events(&h.key.token).await).unwrap_or_default();
    assert!(!log.contains(&token));

    // Good once: the same status or another, it is gone.
    for status in ["suspended", "active"] {
        let again = call_back(&h, &token, json!({"status": status})).await;
        assert_eq!(
            again.problem(410)["type"],
            "urn:herald:problem:gone",
            "{}",
            again.body
        );
    }
    assert_eq!(h.events_of("user.status_updated").await.len(), 1);

    // Tokens never issued, or not even well formed.
    let never = format!("hcb_{}", "A".repeat(43));
    assert_eq!(
        call_back(&h, &never, json!({"status": "active"}))
            .await
            .status,
        404
    );
    assert_eq!(
        call_back(&h, "nonsense", json!({"status": "active"}))
            .await
            .status,
        404
    );
}

on_both!(
    racing_uses_of_one_callback_url_set_the_status_once,
    racing_uses
);
async fn racing_uses(backend: Backend) {
    let Some(h) = hooked(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    templated_endpoint(&h, &receiver).await;
    h.user("u1", json!({})).await;
    let token = token_of(&messages(&h, &receiver).await[0].json()["callback"]);
    // (A new user is active: each of these changes it.)
    let statuses = [
        "suspended",
        "pending",
        "suspended",
        "webhook_error",
        "pending",
        "suspended",
    ];
    let answers = futures::future::join_all(
        statuses
            .iter()
            .map(|s| call_back(&h, &token, json!({"status": s}))),
    )
    .await;
    let codes: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 410), "{codes:?}");
    assert_eq!(h.events_of("user.status_updated").await.len(), 1);
}

on_both!(
    a_callback_url_expires_its_ttl_after_the_message_was_last_sent,
    expiry
);
async fn expiry(backend: Backend) {
    let Some(h) = hooked(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let endpoint = templated_endpoint(&h, &receiver).await;
    h.user("u1", json!({})).await;
    h.user("u2", json!({})).await;
    let got = messages(&h, &receiver).await;
    let token_of_user = |user: &str| {
        got.iter()
            .map(Received::json)
            .find(|m| m["user"] == user)
            .map(|m| token_of(&m["callback"]))
            .unwrap_or_else(|| panic!("no message about {user}"))
    };
    let (first, second) = (token_of_user("u1"), token_of_user("u2"));
    h.advance(chrono::Duration::minutes(61));
    let late = call_back(&h, &first, json!({"status": "suspended"})).await;
    assert_eq!(late.status, 410, "{}", late.body);
    assert!(
        late.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("expired")
    );

    // Sending the message again renews it (TTL from the last send).
    let message = got
        .iter()
        .find(|m| m.json()["user"] == "u2")
        .map(Received::webhook_id)
        .unwrap_or_default();
    let resent = h
        .app
        .post(
            &format!("/v1/webhooks/{endpoint}/messages/{message}/resend"),
            &h.key.token,
            json!({}),
        )
        .await;
    assert!(resent.status < 300, "{}", resent.body);
    h.app.idle().await;
    let renewed = call_back(&h, &second, json!({"status": "suspended"})).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
}

on_both!(
    a_device_message_calls_back_for_its_user_and_get_endpoints_carry_it_encoded,
    devices_and_urls
);
async fn devices_and_urls(backend: Backend) {
    let Some(h) = hooked(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    templated_endpoint(&h, &receiver).await;
    h.endpoint(json!({
        "url": format!("{}?cb={{{{callback.url}}}}", receiver.url("/get")),
        "method": "GET",
        "event_types": ["user.created"]
    }))
    .await;
    h.user("u1", json!({})).await;
    let linked = h
        .app
        .put(
            "/v1/devices/d1",
            &h.key.token,
            json!({"push_token": "t", "send_platform": "fcm", "device_platform": "android", "user_id": "u1"}),
        )
        .await;
    assert!(linked.status < 300, "{}", linked.body);
    h.register("d2").await;
    let got = messages(&h, &receiver).await;
    let posted: Vec<Value> = got
        .iter()
        .filter(|r| r.path == "/hook")
        .map(Received::json)
        .collect();
    let of_device = |id: &str| {
        posted
            .iter()
            .find(|m| m["type"] == "device.registered" && m["device"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no message for {id}: {posted:?}"))
    };
    // A device linked to a user calls back for that user; one without a
    // user has no callback URL.
    let d1 = of_device("d1");
    assert_eq!(d1["user"], "u1");
    let d2 = of_device("d2");
    assert_eq!(d2["callback"], Value::Null);
    let used = call_back(&h, &token_of(&d1["callback"]), json!({"status": "pending"})).await;
    assert_eq!(used.body, json!({"user_id": "u1", "status": "pending"}));

    // The GET endpoint's URL carries its own callback URL, percent-encoded.
    let get = got
        .iter()
        .find(|r| r.path == "/get")
        .unwrap_or_else(|| panic!("no GET message"));
    let query = get.query.clone().unwrap_or_default();
    let encoded = query
        .strip_prefix("cb=")
        .unwrap_or_else(|| panic!("{query}"));
    assert!(
        encoded.starts_with("https%3A%2F%2Fherald.example.com%2Fbase%2Fv1%2Fcallbacks%2Fhcb_"),
        "{encoded}"
    );
    let decoded: String = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "cb")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let own = call_back(&h, &token_of(&json!(decoded)), json!({"status": "active"})).await;
    assert_eq!(own.status, 200, "{}", own.body);
}

on_both!(forgetting_a_user_withdraws_their_callback_urls, forgotten);
async fn forgotten(backend: Backend) {
    let Some(h) = hooked(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let endpoint = templated_endpoint(&h, &receiver).await;
    h.user("u1", json!({})).await;
    let got = messages(&h, &receiver).await;
    let token = token_of(&got[0].json()["callback"]);
    let forget = h
        .app
        .post("/v1/users/u1/forget", &h.key.token, json!({}))
        .await;
    assert_eq!(forget.status, 200, "{}", forget.body);
    h.app.idle().await;
    let after = call_back(&h, &token, json!({"status": "suspended"})).await;
    assert_eq!(after.status, 404, "{}", after.body);
    // A re-send carries no callback URL any more.
    let resent = h
        .app
        .post(
            &format!(
                "/v1/webhooks/{endpoint}/messages/{}/resend",
                got[0].webhook_id()
            ),
            &h.key.token,
            json!({}),
        )
        .await;
    assert!(resent.status < 300, "{}", resent.body);
    let again = messages(&h, &receiver).await;
    let last = again
        .iter()
        .rev()
        .find(|r| r.webhook_id() == got[0].webhook_id())
        .map(Received::json)
        .unwrap_or_default();
    assert_eq!(last["callback"], Value::Null, "{last}");
}

on_both!(
    an_interrupted_use_may_finish_with_its_own_status_only,
    interrupted
);
async fn interrupted(backend: Backend) {
    let Some(h) = hooked(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    templated_endpoint(&h, &receiver).await;
    h.user("u1", json!({})).await;
    let token = token_of(&messages(&h, &receiver).await[0].json()["callback"]);
    // As if the node had claimed the token for `suspended` and died before
    // the command was recorded.
    let db = &h.app.db.db;
    let mut tx = db.begin().await.unwrap_or_else(|e| panic!("{e}"));
    projections::on_tx!(&mut tx, |c| {
        sqlx::query("UPDATE webhook_callbacks SET used_at = 1, used_status = 'suspended'")
            .execute(c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
    let other = call_back(&h, &token, json!({"status": "active"})).await;
    assert_eq!(other.status, 410, "{}", other.body);
    let same = call_back(&h, &token, json!({"status": "suspended"})).await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(
        call_back(&h, &token, json!({"status": "suspended"}))
            .await
            .status,
        410
    );
}

on_both!(
    without_a_public_url_the_callback_placeholder_is_refused,
    no_public_url
);
async fn no_public_url(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    for (body, field) in [
        (
            json!({"url": "http://127.0.0.1:9/", "payload_template": {"cb": "{{callback.url}}"}}),
            "payload_template",
        ),
        (
            json!({"url": "http://127.0.0.1:9/?cb={{callback.url}}", "method": "GET"}),
            "url",
        ),
    ] {
        let resp = h.app.post("/v1/webhooks", &h.key.token, body.clone()).await;
        assert_eq!(resp.invalid_fields(), [field], "{body}: {}", resp.body);
        assert!(
            resp.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("HERALD_PUBLIC_URL"),
            "{}",
            resp.body
        );
    }
    let (id, _) = h.endpoint(json!({"url": "http://127.0.0.1:9/"})).await;
    let patched = h
        .app
        .patch(
            &format!("/v1/webhooks/{id}"),
            &h.key.token,
            json!({"payload_template": {"cb": "{{callback.url}}"}}),
        )
        .await;
    assert_eq!(
        patched.invalid_fields(),
        ["payload_template"],
        "{}",
        patched.body
    );
}
