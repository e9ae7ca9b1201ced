//! The OpenAPI document says what the API really answers and accepts: the
//! error responses each operation can give, and the rules of its inputs.

use herald_tests::{Backend, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

async fn document() -> Option<Value> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let doc = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    Some(doc.body)
}

/// Follows a `$ref` within the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{r} does not resolve")),
        None => value,
    }
}

fn operations(doc: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            out.push((format!("{} {path}", method.to_uppercase()), op));
        }
    }
    out
}

#[tokio::test]
async fn every_operation_lists_the_errors_it_can_give() {
    let Some(doc) = document().await else {
        return;
    };
    let mut secured = 0;
    for (name, op) in operations(&doc) {
        let is_secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let has_body = op.get("requestBody").is_some();
        let has_params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
        let mut wanted = Vec::new();
        if is_secured {
            secured += 1;
            wanted.extend(["401", "403", "429", "503"]);
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| resolve(&doc, p)["name"].as_str())
                .collect();
            // Reads take the consistency token; commands (which write to
            // the always current log) and operators' reports (which wait
            // for no read model) do not.
            let report = name.contains(" /v1/admin/") || name.ends_with(" /metrics");
            let read = name.starts_with("GET ") || name == "POST /v1/devices/search";
            assert_eq!(
                names.contains(&"Herald-Min-Position") && names.contains(&"min_position"),
                read && !report,
                "{name} and the consistency token: {names:?}"
            );
            if !name.starts_with("GET ") {
                assert!(
                    names.contains(&"Idempotency-Key"),
                    "{name} does not take Idempotency-Key: {names:?}"
                );
                wanted.extend(["409", "422"]);
            }
        }
        if has_body || has_params {
            wanted.push("400");
        }
        if has_body {
            wanted.extend(["413", "415"]);
        }
        for status in wanted {
            let response = resolve(&doc, &op["responses"][status]);
            assert_eq!(
                response["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{name} does not document {status} as a problem document"
            );
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{name}: {status} has no description"
            );
        }
    }
    assert!(secured >= 50, "only {secured} secured operations");
    let unavailable = resolve(
        &doc,
        &doc["paths"]["/v1/devices/search"]["post"]["responses"]["503"],
    );
    assert!(unavailable["headers"]["retry-after"].is_object());
    for (path, method) in [
        ("/v1/devices/{external_id}", "get"),
        ("/v1/webhooks/{id}", "patch"),
        ("/v1/notifications/{id}/launch", "post"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"]["404"].is_object(),
            "{method} {path} lacks 404"
        );
    }
    for (path, method) in [
        ("/v1/notifications", "post"),
        ("/v1/notifications/{id}/launch", "post"),
    ] {
        let quota = &doc["paths"][path][method]["responses"]["429"];
        assert!(
            quota["headers"]["retry-after"].is_object(),
            "{method} {path}: {quota}"
        );
    }
}

fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

#[tokio::test]
async fn schemas_state_lengths_ranges_and_enums() {
    let Some(doc) = document().await else {
        return;
    };
    let schemas = &doc["components"]["schemas"];
    // Client ids: 1 to 255 bytes, wherever they appear.
    let client_id = &schemas["ClientId"];
    assert_eq!(
        (
            client_id["minLength"].clone(),
            client_id["maxLength"].clone()
        ),
        (json!(1), json!(255))
    );
    assert!(
        client_id["description"]
            .as_str()
            .is_some_and(|d| d.contains("bytes"))
    );
    for (path, name) in [
        ("/v1/devices/{external_id}", "external_id"),
        ("/v1/users/{user_id}", "user_id"),
    ] {
        let id = parameter(&doc, path, "get", name);
        assert_eq!(
            (id["minLength"].clone(), id["maxLength"].clone()),
            (json!(1), json!(255)),
            "{path}"
        );
    }
    assert_eq!(
        schemas["DeviceBody"]["properties"]["external_id"]["$ref"],
        "#/components/schemas/ClientId"
    );
    let put_device = &schemas["PutDevice"]["properties"];
    assert_eq!(put_device["push_token"]["maxLength"], 4096);
    assert_eq!(schemas["CreateApp"]["properties"]["name"]["maxLength"], 200);

    // Enums.
    for (name, values) in [
        ("SendPlatform", json!(["fcm", "apns", "webpush"])),
        ("DevicePlatform", json!(["android", "ios", "web"])),
        (
            "UserStatus",
            json!(["active", "pending", "suspended", "webhook_error"]),
        ),
        ("Role", json!(["admin", "write", "read", "audit", "client"])),
        (
            "HttpMethod",
            json!(["POST", "PUT", "PATCH", "GET", "HEAD", "DELETE"]),
        ),
    ] {
        assert_eq!(schemas[name]["enum"], values, "{name}");
    }
    assert_eq!(
        put_device["send_platform"]["$ref"],
        "#/components/schemas/SendPlatformInput"
    );
    assert_eq!(
        schemas["SendPlatformInput"]["oneOf"][0]["enum"],
        json!(["fcm", "apns", "webpush"])
    );
    let operators = &schemas["ConditionLeaf"]["properties"]["operator"]["enum"];
    assert!(
        operators
            .as_array()
            .is_some_and(|o| o.len() == 16 && o.contains(&json!("int_exists")))
    );
    assert!(
        schemas["NotificationStatus"]["enum"]
            .as_array()
            .is_some_and(|s| s.contains(&json!("sending")) && s.contains(&json!("deleted")))
    );
    assert_eq!(
        schemas["SubjectKind"]["enum"],
        json!(["device", "user", "notification", "feature_flag"])
    );

    // Ranges.
    assert_eq!(
        schemas["SearchDevices"]["properties"]["limit"]["maximum"],
        1000
    );
    for (path, max) in [
        ("/v1/events", 1000),
        ("/v1/notifications", 100),
        ("/v1/webhooks", 100),
    ] {
        let limit = parameter(&doc, path, "get", "limit");
        assert_eq!(
            (limit["minimum"].clone(), limit["maximum"].clone()),
            (json!(1), json!(max)),
            "{path}"
        );
    }
    assert_eq!(
        parameter(&doc, "/v1/events", "get", "since")["format"],
        "date-time"
    );
    assert_eq!(
        parameter(&doc, "/v1/webhooks/{id}", "get", "id")["format"],
        "uuid"
    );
}
