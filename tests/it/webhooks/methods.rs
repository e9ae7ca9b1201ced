//! Endpoints called with GET, HEAD or DELETE: no body, the event's values
//! rendered percent-encoded into the URL's path and query, the signature
//! over the empty body.

use herald_tests::receiver::Receiver;
use herald_tests::{Backend, on_both};
use serde_json::json;

use super::{Hooked, WITHIN};

on_both!(
    body_less_methods_carry_the_event_in_the_url,
    body_less_methods
);
async fn body_less_methods(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let mut secrets = Vec::new();
    for method in ["GET", "HEAD", "DELETE"] {
        let url = receiver.url(&format!(
            "/{method}/users/{{{{user.id}}}}?status={{{{user.status}}}}&name={{{{user.name}}}}&hook={{{{webhook.id}}}}"
        ));
        let (id, secret) = h
            .endpoint(json!({"url": url, "method": method, "event_types": ["user.status_updated"]}))
            .await;
        secrets.push((method, id, secret));
    }
    h.user("u1", json!({"name": "Ada & Co/#1"})).await;
    h.set_status("u1", "suspended").await;
    let mut got = receiver.wait_for(3, WITHIN).await;
    got.sort_by_key(|r| r.method.to_string());
    for r in &got {
        let (_, id, secret) = secrets
            .iter()
            .find(|(m, _, _)| *m == r.method.as_str())
            .unwrap_or_else(|| panic!("unexpected {}", r.method));
        assert_eq!(r.path, format!("/{}/users/u1", r.method));
        assert_eq!(
            r.query.as_deref(),
            Some(format!("status=suspended&name=Ada%20%26%20Co%2F%231&hook={id}").as_str()),
            "every value stays inside its parameter"
        );
        assert!(r.body.is_empty(), "{} carried a body", r.method);
        assert_eq!(r.header("content-type"), None);
        assert!(r.signed_by(secret), "signed over the empty body");
    }
    let methods: Vec<String> = got.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(methods, ["DELETE", "GET", "HEAD"]);
}

on_both!(
    a_url_placeholder_outside_path_and_query_or_a_template_without_body_is_refused,
    refused_settings
);
async fn refused_settings(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    for (body, field) in [
        (json!({"url": "https://{{user.id}}.example.com/"}), "url"),
        (json!({"url": "https://example.com/{{user.nope}}"}), "url"),
        (
            json!({"url": "http://127.0.0.1:9/", "method": "GET", "payload_template": {"a": 1}}),
            "payload_template",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "method": "OPTIONS"}),
            "method",
        ),
    ] {
        let resp = h.app.post("/v1/webhooks", &h.key.token, body.clone()).await;
        assert_eq!(resp.invalid_fields(), [field], "{body}: {}", resp.body);
    }
    // Changing a templated POST endpoint to GET without clearing the
    // template is refused too, and changes nothing.
    let (id, _) = h
        .endpoint(json!({"url": "http://127.0.0.1:9/", "payload_template": {"a": 1}}))
        .await;
    let patched = h
        .app
        .patch(
            &format!("/v1/webhooks/{id}"),
            &h.key.token,
            json!({"method": "GET"}),
        )
        .await;
    assert_eq!(
        patched.invalid_fields(),
        ["payload_template"],
        "{}",
        patched.body
    );
    let read = h.app.get(&format!("/v1/webhooks/{id}"), &h.key.token).await;
    assert_eq!(read.body["method"], "POST");
}
