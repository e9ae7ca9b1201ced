//! Forgetting a user (crypto-shredding): personal values are sealed in the
//! log; after `POST /v1/users/{id}/forget` every read, export, webhook
//! re-send and queued change shows the placeholder, the chain and the
//! exported NDJSON still verify, a rebuild stays forgotten, and no plaintext
//! is left in the database's files. Devices that pass to someone else
//! (`owners`), users known only from their devices (`linked`) and what a
//! forget must not leave behind (`leftovers`) have their own files.

use herald_tests::receiver::Receiver;
use herald_tests::{Backend, on_both};
use projections::db::Db;
use serde_json::{Value, json};

use crate::rebuild::rebuild_keeps_the_models;
use crate::webhooks::{Hooked, WITHIN};

const NAME: &str = "Ada Lovelace-Byron";
const EMAIL: &str = "ada.byron@example.org";
const CITY: &str = "Londonderry-Kirkby";
const TOKEN: &str = "tok-personal-3141592653";
const REASON: &str = "asked-by-phone-0612345678";
const PLACEHOLDER: &str = "[forgotten]";

fn personal() -> [&'static str; 5] {
    [NAME, EMAIL, CITY, TOKEN, REASON]
}

fn holds_any(text: &str) -> Option<&'static str> {
    personal().into_iter().find(|p| text.contains(p))
}

/// Every byte the database keeps: the SQLite file, its write-ahead log and
/// a rebuild's copy beside them, or a `pg_dump` of the schema and of a
/// rebuild's beside it.
async fn database_bytes(h: &Hooked) -> String {
    fn read_all(dir: &std::path::Path, all: &mut Vec<u8>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() && name.starts_with("herald.db") {
                read_all(&path, all);
            } else if name.starts_with("herald.db") {
                all.extend(std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    match &h.app.db.db {
        Db::Sqlite(_) => {
            let mut all = Vec::new();
            read_all(&h.app.db.dir, &mut all);
            assert!(!all.is_empty(), "no SQLite file in {:?}", h.app.db.dir);
            String::from_utf8_lossy(&all).into_owned()
        }
        Db::Postgres(_) => {
            let url = std::env::var("HERALD_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let out = std::process::Command::new("pg_dump")
                .args([
                    "--data-only",
                    "--schema",
                    &format!("{}*", h.app.db.schema),
                    &url,
                ])
                .output()
                .unwrap_or_else(|e| panic!("pg_dump is needed: {e}"));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }
}

/// No plaintext of the person is left in the database's files, which do
/// hold the live data (Grace Hopper, never forgotten).
async fn nothing_left_in_the_files(h: &Hooked) {
    let bytes = database_bytes(h).await;
    assert_eq!(
        holds_any(&bytes),
        None,
        "plaintext left in the database files"
    );
    assert!(bytes.contains("Grace Hopper"), "the dump misses live data");
}

async fn export(h: &Hooked) -> String {
    h.app
        .client
        .get(h.app.url("/v1/events/export"))
        .bearer_auth(&h.key.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default()
}

fn verify_export(text: &str) -> (bool, String) {
    let dir = herald_tests::backend::temp_dir("forget-export");
    let file = dir.join("app.ndjson");
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/verify_export.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to run {script}: {e}"));
    let _ = std::fs::remove_dir_all(dir);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn stream_events(h: &Hooked, stream: &str) -> Vec<Value> {
    h.app.stream_events(&h.key.token, stream).await
}

/// A user with a name, an e-mail, a property and a status reason, and a
/// device of theirs with a token and a property.
async fn person(h: &Hooked) {
    h.user(
        "ada",
        json!({"name": NAME, "email": EMAIL, "properties": {"city": CITY}}),
    )
    .await;
    let status = h
        .app
        .put(
            "/v1/users/ada/status",
            &h.key.token,
            json!({"status": "suspended", "reason": REASON}),
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    let mut body = herald_tests::app::device_body(TOKEN);
    body["user_id"] = json!("ada");
    let device = h.app.put("/v1/devices/d1", &h.key.token, body).await;
    assert_eq!(device.status, 201, "{}", device.body);
    let properties = h
        .app
        .patch(
            "/v1/devices/d1/properties",
            &h.key.token,
            json!({"properties": {"home": CITY, "level": 3}}),
        )
        .await;
    assert_eq!(properties.status, 200, "{}", properties.body);
    // Someone else, who is not forgotten.
    h.user("grace", json!({"name": "Grace Hopper"})).await;
}

on_both!(
    forgetting_a_user_leaves_only_placeholders_and_a_chain_that_verifies,
    forget_everywhere
);
async fn forget_everywhere(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (plain, _) = h.endpoint(json!({"url": receiver.url("/plain")})).await;
    let (templated, _) = h
        .endpoint(json!({
            "url": receiver.url("/templated"),
            "payload_template": {"who": "{{user.name}} <{{user.email}}>", "type": "{{event.type}}"},
        }))
        .await;
    person(&h).await;
    h.app.idle().await;

    // Sealed at rest, open on every read.
    let user_events = stream_events(&h, "user:ada").await;
    assert_eq!(user_events[0]["data"]["name"], NAME);
    assert_eq!(user_events[1]["data"]["reason"], REASON);
    let sealed_rows: Vec<String> = match &h.app.db.db {
        Db::Sqlite(s) => sqlx::query_scalar(
            "SELECT data FROM events WHERE stream LIKE 'user:ada' OR stream = 'device:d1'",
        )
        .fetch_all(&s.reader)
        .await
        .unwrap_or_else(|e| panic!("{e}")),
        Db::Postgres(p) => sqlx::query_scalar(
            "SELECT data FROM events WHERE stream = 'user:ada' OR stream = 'device:d1'",
        )
        .fetch_all(&p.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}")),
    };
    assert!(sealed_rows.len() >= 3);
    for row in &sealed_rows {
        assert_eq!(
            holds_any(row),
            None,
            "the log holds a personal value in clear: {row}"
        );
    }
    assert!(sealed_rows.iter().any(|r| r.contains("$sealed")));
    let delivered = receiver.wait_for(8, WITHIN).await;
    assert!(
        delivered
            .iter()
            .any(|r| r.path == "/templated" && r.json()["who"] == format!("{NAME} <{EMAIL}>"))
    );

    // Only an admin key forgets; an unknown user is 404.
    let writer = h.app.key_with_roles(&h.key.token, &["write", "read"]).await;
    h.app
        .post("/v1/users/ada/forget", &writer, json!({}))
        .await
        .problem(403);
    h.app
        .post("/v1/users/nobody/forget", &h.key.token, json!({}))
        .await
        .problem(404);

    let forgot = h
        .app
        .post("/v1/users/ada/forget", &h.key.token, json!({}))
        .await;
    assert_eq!(forgot.status, 200, "{}", forgot.body);
    assert_eq!(forgot.body["subjects"], json!(["user:ada", "device:d1"]));
    assert_eq!(forgot.body["keys_destroyed"], 2);
    assert_eq!(forgot.body["events_recorded"], 2);
    assert_eq!(forgot.body["plaintext_events"], 0);
    let again = h
        .app
        .post("/v1/users/ada/forget", &h.key.token, json!({}))
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["keys_destroyed"], 0);
    assert_eq!(again.body["events_recorded"], 0);
    h.app.idle().await;

    // Reads.
    let user = h.app.get("/v1/users/ada", &h.key.token).await;
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.body["name"], PLACEHOLDER);
    assert_eq!(user.body["email"], PLACEHOLDER);
    assert_eq!(user.body["properties"]["city"], PLACEHOLDER);
    assert_eq!(user.body["status"], "suspended");
    let device = h.app.get("/v1/devices/d1", &h.key.token).await;
    assert_eq!(device.body["push_token"], PLACEHOLDER, "{}", device.body);
    assert_eq!(device.body["properties"]["home"], PLACEHOLDER);
    let grace = h.app.get("/v1/users/grace", &h.key.token).await;
    assert_eq!(grace.body["name"], "Grace Hopper");
    let user_events = stream_events(&h, "user:ada").await;
    assert_eq!(user_events[0]["data"]["name"], PLACEHOLDER);
    assert_eq!(user_events[1]["data"]["reason"], PLACEHOLDER);
    assert_eq!(
        user_events.last().map(|e| e["event_type"].clone()),
        Some(json!("subject.forgotten"))
    );
    let device_events = stream_events(&h, "device:d1").await;
    assert_eq!(device_events[0]["data"]["push_token"], PLACEHOLDER);
    let all = h.app.events(&h.key.token).await;
    assert_eq!(holds_any(&Value::Array(all).to_string()), None);

    // The chain, the export and its stdlib verifier.
    let verified = h.app.get("/v1/audit/verify", &h.key.token).await;
    assert_eq!(verified.body["ok"], true, "{}", verified.body);
    let exported = export(&h).await;
    assert_eq!(holds_any(&exported), None);
    assert!(exported.contains(PLACEHOLDER));
    let (ok, out) = verify_export(&exported);
    assert!(ok, "{out}");

    // A webhook re-send and the change queue show the placeholder.
    // A message's id is its event's.
    let created = user_events[0]["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(user_events[0]["event_type"], "user.created");
    let before = receiver.received().len();
    let resend = h
        .app
        .post(
            &format!("/v1/webhooks/{templated}/messages/{created}/resend"),
            &h.key.token,
            json!({}),
        )
        .await;
    assert_eq!(resend.status, 202, "{}", resend.body);
    h.app.idle().await;
    let got = receiver.wait_for(before + 1, WITHIN).await;
    let resent = got[before..]
        .iter()
        .find(|r| r.path == "/templated" && r.json()["type"] == "user.created")
        .unwrap_or_else(|| panic!("no re-send among {:?}", got.len()));
    assert_eq!(
        resent.json()["who"],
        format!("{PLACEHOLDER} <{PLACEHOLDER}>")
    );
    let _ = plain;
    let changes = h
        .app
        .get("/v1/change-queues/default/changes?limit=100", &h.key.token)
        .await;
    assert_eq!(changes.status, 200, "{}", changes.body);
    let text = changes.body.to_string();
    assert_eq!(holds_any(&text), None);
    assert!(text.contains(PLACEHOLDER));
    assert!(text.contains("subject.forgotten"));

    // A rebuild yields the same forgotten models.
    rebuild_keeps_the_models(&h.app).await;

    // Nothing of the person is left in the database's files.
    h.app.idle().await;
    nothing_left_in_the_files(&h).await;

    // What is written after the forget is readable again (a new key).
    h.user("ada", json!({"name": "Ada Again"})).await;
    let user = h.app.get("/v1/users/ada", &h.key.token).await;
    assert_eq!(user.body["name"], "Ada Again");
    assert_eq!(user.body["email"], PLACEHOLDER);
    let third = h
        .app
        .post("/v1/users/ada/forget", &h.key.token, json!({}))
        .await;
    assert_eq!(third.body["keys_destroyed"], 1, "{}", third.body);
    assert_eq!(third.body["events_recorded"], 1, "{}", third.body);
    let user = h.app.get("/v1/users/ada", &h.key.token).await;
    assert_eq!(user.body["name"], PLACEHOLDER);
}

on_both!(the_cli_forgets_through_a_running_node, forget_from_the_cli);
async fn forget_from_the_cli(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    person(&h).await;
    let run = |user: &str, token: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald-under-test"))
            .args([
                "forget",
                "--user",
                user,
                "--url",
                &h.app.url(""),
                "--token",
                token,
            ])
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = tokio::task::block_in_place(|| run("ada", &h.key.token));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(answer["forgotten"], true, "{answer}");
    assert_eq!(answer["keys_destroyed"], 2, "{answer}");
    let user = h.app.get("/v1/users/ada", &h.key.token).await;
    assert_eq!(user.body["name"], PLACEHOLDER);

    let out = tokio::task::block_in_place(|| run("nobody", &h.key.token));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Registers (or re-registers) `device` with `token`, linked to `user`.
async fn device_of(h: &Hooked, device: &str, token: &str, user: &str) {
    let mut body = herald_tests::app::device_body(token);
    body["user_id"] = json!(user);
    let resp = h
        .app
        .put(&format!("/v1/devices/{device}"), &h.key.token, body)
        .await;
    assert!(resp.status == 200 || resp.status == 201, "{}", resp.body);
}

async fn forget_user(h: &Hooked, user: &str) -> Value {
    let resp = h
        .app
        .post(&format!("/v1/users/{user}/forget"), &h.key.token, json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.body
}

mod leftovers;
mod linked;
mod owners;
