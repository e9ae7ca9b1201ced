//! Client keys: the key an app ships inside its code on end users'
//! devices. It evaluates flags and registers a device, which answers a
//! `device_secret` once; only a request sending it back may change or
//! delete that device with the client key. Every other route refuses it.

use herald_tests::app::{Resp, device_body, read};
use herald_tests::{Backend, TestApp, on_both};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "herald-device-secret";

/// A request with a bearer token and optional device secret.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    secret: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(secret) = secret {
        request = request.header(SECRET, secret);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .await
}

/// The routes a client key may call; everything else must refuse it.
const ALLOWED: [&str; 4] = [
    "PUT /v1/devices/{external_id}",
    "DELETE /v1/devices/{external_id}",
    "GET /v1/feature-flags/evaluate",
    "GET /v1/feature-flags/evaluate/{name}",
];

on_both!(
    a_client_key_is_refused_by_every_route_but_flags_and_its_device,
    route_by_route
);
async fn route_by_route(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.create_app("shipped").await;
    let client = app.key_with_roles(&admin.token, &["client"]).await;
    let doc = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    // A value every path parameter accepts (ids, names, queue names).
    let param = "00000000-0000-4000-8000-000000000001";
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (path, item) in doc.body["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let operation = format!("{} {path}", method.to_uppercase());
            if op.get("security").is_none() || ALLOWED.contains(&operation.as_str()) {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { param } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            let body =
                matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let resp = call(&app, method, &concrete, &client, None, body).await;
            checked += 1;
            if resp.status != 403 {
                wrong.push(format!("{operation}: {} {}", resp.status, resp.body));
            }
        }
    }
    assert!(checked > 40, "only {checked} operations were tried");
    assert!(wrong.is_empty(), "answered a client key: {wrong:#?}");
    // The refusal says what the key is for.
    let refused = app.get("/v1/users/u1", &client).await;
    assert!(
        refused.problem(403)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("client key")),
        "{}",
        refused.body
    );
}

on_both!(
    a_client_registration_answers_a_secret_once_and_needs_it_after,
    own_device
);
async fn own_device(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.create_app("shipped").await;
    let mixed = app
        .post(
            "/v1/api-keys",
            &admin.token,
            json!({"name": "mixed", "roles": ["client", "read"]}),
        )
        .await;
    assert_eq!(mixed.invalid_fields(), ["roles"], "{}", mixed.body);
    let client = app.key_with_roles(&admin.token, &["client"]).await;

    let created = call(
        &app,
        Method::PUT,
        "/v1/devices/d1",
        &client,
        None,
        Some(device_body("t1")),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["device_secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(secret.starts_with("hd_") && secret.len() > 40, "{secret}");

    // Changing it needs the secret: none, or another, is refused.
    let body = device_body("t2");
    for presented in [None, Some("hd_not-it")] {
        let r = call(
            &app,
            Method::PUT,
            "/v1/devices/d1",
            &client,
            presented,
            Some(body.clone()),
        )
        .await;
        r.problem(403);
    }
    let updated = call(
        &app,
        Method::PUT,
        "/v1/devices/d1",
        &client,
        Some(&secret),
        Some(body),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["push_token"], "t2");
    assert!(
        updated.body.get("device_secret").is_none(),
        "shown once only"
    );
    // A client key cannot link its device to a user.
    let mut linking = device_body("t2");
    linking["user_id"] = json!("someone");
    call(
        &app,
        Method::PUT,
        "/v1/devices/d1",
        &client,
        Some(&secret),
        Some(linking),
    )
    .await
    .problem(403);

    // The server sees it as any device, without the secret; the client key
    // cannot read it.
    let read_back = app.get("/v1/devices/d1", &admin.token).await;
    assert_eq!(read_back.status, 200);
    assert!(read_back.body.get("device_secret").is_none());
    app.get("/v1/devices/d1", &client).await.problem(403);

    // A device the server registered is out of a client key's reach.
    let server = app
        .put("/v1/devices/s1", &admin.token, device_body("ts"))
        .await;
    assert_eq!(server.status, 201);
    assert!(server.body.get("device_secret").is_none());
    call(
        &app,
        Method::PUT,
        "/v1/devices/s1",
        &client,
        Some(&secret),
        Some(device_body("x")),
    )
    .await
    .problem(403);
    call(
        &app,
        Method::DELETE,
        "/v1/devices/s1",
        &client,
        Some(&secret),
        None,
    )
    .await
    .problem(403);

    // Flags: from headers, for its own device with the secret, not for others.
    let flag = app
        .post(
            "/v1/feature-flags",
            &admin.token,
            json!({"name": "beta", "enabled": true}),
        )
        .await;
    assert_eq!(flag.status, 201, "{}", flag.body);
    let anonymous = evaluate(&app, &client, "/beta", None).await;
    assert_eq!(
        (anonymous.status, &anonymous.body["is_active"]),
        (200, &json!(true))
    );
    let own = evaluate(&app, &client, "?external_id=d1", Some(&secret)).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["flags"][0]["name"], "beta");
    evaluate(&app, &client, "?external_id=d1", None)
        .await
        .problem(403);
    evaluate(&app, &client, "?external_id=s1", Some(&secret))
        .await
        .problem(403);
    assert_eq!(
        evaluate(&app, &client, "?external_id=not-yet", None)
            .await
            .status,
        200
    );

    // The log holds the secret's hash, never the secret; no integration
    // event carries it.
    let events = app.events(&admin.token).await;
    let text = serde_json::to_string(&events).unwrap_or_default();
    assert!(!text.contains(&secret), "the secret reached the log");
    let issued: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "device_secret.issued")
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        issued[0]["data"]["secret_sha256"],
        json!(infra::secrets::sha256_hex(secret.as_bytes()))
    );

    // Deleting it needs the secret too; then the id is free again.
    call(&app, Method::DELETE, "/v1/devices/d1", &client, None, None)
        .await
        .problem(403);
    let deleted = call(
        &app,
        Method::DELETE,
        "/v1/devices/d1",
        &client,
        Some(&secret),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    app.get("/v1/devices/d1", &admin.token).await.problem(404);
    let again = call(
        &app,
        Method::PUT,
        "/v1/devices/d1",
        &client,
        None,
        Some(device_body("t3")),
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_ne!(again.body["device_secret"].as_str(), Some(secret.as_str()));
}

async fn evaluate(app: &TestApp, client: &str, query: &str, secret: Option<&str>) -> Resp {
    let path = format!("/v1/feature-flags/evaluate{query}");
    call(app, Method::GET, &path, client, secret, None).await
}
