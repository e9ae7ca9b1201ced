//! Webhooks as configuration: a declaration checked whole (one wrong entry
//! changes nothing), applied to match (create, update, delete), idempotent,
//! with a dry run; and the same through `herald webhooks apply --file`.

use herald_tests::receiver::Receiver;
use herald_tests::{Backend, on_both};
use serde_json::{Value, json};

use super::Hooked;

impl Hooked {
    async fn apply(&self, webhooks: Value, dry_run: bool) -> herald_tests::app::Resp {
        self.app
            .post(
                "/v1/webhooks/apply",
                &self.key.token,
                json!({"webhooks": webhooks, "dry_run": dry_run}),
            )
            .await
    }

    async fn urls(&self) -> Vec<(String, Value)> {
        let list = self
            .app
            .get("/v1/webhooks?limit=100", &self.key.token)
            .await;
        let mut out: Vec<(String, Value)> = list.body["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| (w["url"].as_str().unwrap_or_default().to_owned(), w.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn actions(plan: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = plan["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["action"].as_str().unwrap_or_default().to_owned(),
                s["url"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

on_both!(
    a_declaration_is_checked_whole_and_applied_to_match,
    declaration
);
async fn declaration(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let (a, b, c) = (receiver.url("/a"), receiver.url("/b"), receiver.url("/c"));
    let first = json!([
        {"url": a, "event_types": ["user.*"], "auth": {"bearer": "t1"}},
        {"url": b, "method": "PUT"},
    ]);

    // A dry run plans and changes nothing.
    let dry = h.apply(first.clone(), true).await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.body["applied"], false);
    assert_eq!(
        actions(&dry.body),
        [("create".into(), a.clone()), ("create".into(), b.clone())]
    );
    assert!(h.urls().await.is_empty());

    let applied = h.apply(first.clone(), false).await;
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert!(
        applied.body["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|s| s["secret"]
                .as_str()
                .is_some_and(|k| k.starts_with("whsec_"))),
        "{}",
        applied.body
    );
    assert_eq!(h.urls().await.len(), 2);

    // Again: nothing to do, no event written.
    let events = h.app.events(&h.key.token).await.len();
    let again = h.apply(first, false).await;
    assert_eq!(
        actions(&again.body),
        [
            ("unchanged".into(), a.clone()),
            ("unchanged".into(), b.clone())
        ]
    );
    assert_eq!(h.app.events(&h.key.token).await.len(), events);

    // One wrong entry among good ones: 400 naming it, nothing changes.
    let wrong = h
        .apply(
            json!([
                {"url": a, "event_types": ["device.*"]},
                {"url": "ftp://nope.example/", "nonsense": 1},
                {"url": c, "method": "GET", "payload_template": {"x": 1}},
            ]),
            false,
        )
        .await;
    let mut fields = wrong.invalid_fields();
    fields.sort();
    assert_eq!(
        fields,
        ["webhooks[1]", "webhooks[2].payload_template"],
        "{}",
        wrong.body
    );
    assert_eq!(h.app.events(&h.key.token).await.len(), events);

    // Change a (types, credential), drop b, add c.
    let next = h
        .apply(
            json!([
                {"url": a, "event_types": ["device.*"], "auth": {"bearer": "t2"}},
                {"url": c, "method": "GET", "enabled": false},
            ]),
            false,
        )
        .await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(
        actions(&next.body),
        [
            ("create".into(), c.clone()),
            ("delete".into(), b.clone()),
            ("update".into(), a.clone())
        ]
    );
    let update = next.body["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["action"] == "update")
        .cloned()
        .unwrap_or_default();
    assert_eq!(update["changes"], json!(["event_types", "auth"]));
    let now = h.urls().await;
    assert_eq!(
        now.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>(),
        [a.clone(), c.clone()]
    );
    assert_eq!(now[0].1["event_types"], json!(["device.*"]));
    assert_eq!(
        (now[1].1["method"].as_str(), now[1].1["enabled"].as_bool()),
        (Some("GET"), Some(false))
    );

    // An entry may name its endpoint by id, whatever its URL now.
    let id = now[0].1["id"].as_str().unwrap_or_default().to_owned();
    let moved = h
        .apply(
            json!([
                {"id": id, "url": b, "event_types": ["device.*"], "auth": {"bearer": "t2"}},
                {"url": c, "method": "GET"},
            ]),
            false,
        )
        .await;
    assert_eq!(
        actions(&moved.body),
        [
            ("unchanged".into(), c.clone()),
            ("update".into(), b.clone())
        ],
        "{}",
        moved.body
    );
    let unknown = h
        .apply(
            json!([{"id": "00000000-0000-4000-8000-000000000000", "url": a}]),
            false,
        )
        .await;
    assert_eq!(unknown.invalid_fields(), ["webhooks[0].id"]);
}

on_both!(the_cli_applies_a_yaml_file, cli_apply);
async fn cli_apply(backend: Backend) {
    let Some(h) = Hooked::spawn(backend).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let dir = std::env::temp_dir().join(format!("herald-apply-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("webhooks.yaml");
    let yaml = format!(
        "webhooks:\n  - url: {}\n    event_types: [user.*]\n    auth:\n      bearer: \"${{HERALD_TEST_CRM_TOKEN}}\"\n",
        receiver.url("/crm")
    );
    std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("{e}"));
    let run = |extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_herald-under-test"));
        command
            .args(["webhooks", "apply", "--file"])
            .arg(&file)
            .args(["--url", &h.app.url(""), "--token", &h.key.token])
            .args(extra)
            .env("HERALD_TEST_CRM_TOKEN", "sekret");
        command.output().unwrap_or_else(|e| panic!("{e}"))
    };
    let out = tokio::task::block_in_place(|| run(&["--dry-run"]));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("+ create") && printed.contains("dry run"),
        "{printed}"
    );
    assert!(h.urls().await.is_empty());

    let out = tokio::task::block_in_place(|| run(&[]));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("signing secret") && printed.ends_with("applied\n"),
        "{printed}"
    );
    let endpoints = h.urls().await;
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].1["auth"]["kind"], "bearer");

    let out = tokio::task::block_in_place(|| run(&[]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("= unchanged"));

    // A wrong file: the errors are printed, the exit is 1, nothing changes.
    std::fs::write(&file, "webhooks:\n  - url: ftp://x.example/\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = tokio::task::block_in_place(|| run(&[]));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        stderr.contains("webhooks[0].url") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(h.urls().await.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
