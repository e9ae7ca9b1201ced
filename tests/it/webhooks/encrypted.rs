//! Payloads encrypted to the receiver's public key: the body is a JWE only
//! the private key opens (decrypted here by `docs/decrypt_webhook.py`, the
//! receiver-side example), and the signature covers it as sent.

use std::io::Write;
use std::process::{Command, Stdio};

use herald_tests::receiver::Receiver;
use herald_tests::{Backend, on_both};
use serde_json::{Value, json};

use super::{Hooked, WITHIN};

const PUBLIC: &str = include_str!("../../fixtures/jwe-receiver.pub.pem");
const SMALL: &str = include_str!("../../fixtures/rsa-1024.pub.pem");

/// The receiver-side example, run on a received body.
fn decrypted_by_the_example(body: &[u8]) -> Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut child = Command::new("python3")
        .arg(format!("{root}/docs/decrypt_webhook.py"))
        .arg(format!("{root}/tests/fixtures/jwe-receiver.key.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(body))
        .transpose()
        .unwrap_or_else(|e| panic!("{e}"));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

on_both!(
    an_encrypted_endpoint_gets_a_jwe_only_its_key_opens,
    encrypted
);
async fn encrypted(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let small = h
        .app
        .post(
            "/v1/webhooks",
            &h.key.token,
            json!({"url": receiver.url("/"), "encryption_public_key": SMALL}),
        )
        .await;
    assert_eq!(
        small.invalid_fields(),
        ["encryption_public_key"],
        "{}",
        small.body
    );
    let (id, secret) = h
        .endpoint(json!({"url": receiver.url("/"), "encryption_public_key": PUBLIC}))
        .await;
    h.user("u1", json!({"name": "Ada"})).await;
    let got = receiver.wait_for(1, WITHIN).await;
    assert_eq!(got[0].header("content-type"), Some("application/jose"));
    assert!(got[0].signed_by(&secret), "the signature covers the JWE");
    let text = String::from_utf8_lossy(&got[0].body).into_owned();
    assert_eq!(text.split('.').count(), 5, "{text}");
    assert!(!text.contains("Ada"));
    let payload = decrypted_by_the_example(&got[0].body);
    assert_eq!(payload["type"], "user.created");
    assert_eq!(payload["data"]["name"], "Ada");

    // The key shows on the endpoint; null stops encrypting.
    let read = h.app.get(&format!("/v1/webhooks/{id}"), &h.key.token).await;
    assert_eq!(
        read.body["encryption_public_key"].as_str(),
        Some(PUBLIC.trim())
    );
    let cleared = h
        .app
        .patch(
            &format!("/v1/webhooks/{id}"),
            &h.key.token,
            json!({"encryption_public_key": null}),
        )
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    h.user("u2", json!({})).await;
    let got = receiver.wait_for(2, WITHIN).await;
    assert_eq!(got[1].header("content-type"), Some("application/json"));
    assert_eq!(got[1].json()["type"], "user.created");
}
