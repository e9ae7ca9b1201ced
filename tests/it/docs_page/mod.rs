//! The API reference at `/docs`: its answers, and the page as a real
//! headless browser (Chromium) renders it from `/openapi.json`.
//!
//! Chromium is `HERALD_TEST_CHROMIUM`, else `chromium` or `chromium-browser`
//! on `PATH`. Without it the browser tests are skipped, unless
//! `HERALD_TEST_REQUIRE_CHROMIUM=1` (set by `.ci/run`) makes them fail.

mod browser;
mod dom;

use std::net::SocketAddr;

use axum::http::{StatusCode, header};
use axum::routing::get;
use herald_tests::{Backend, TestApp};
use reqwest::Method;

use self::browser::{browser, dump_dom};
use self::dom::{Tag, elements, section_end, start_tags, strip_tags, text_of, within};

const METHODS: [&str; 8] = [
    "get", "put", "post", "patch", "delete", "head", "options", "trace",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_answer_with_their_types_and_policy() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    for (path, content_type, holds) in [
        ("/docs", "text/html", "<title>Herald API</title>"),
        ("/docs/docs.js", "text/javascript", "openapi"),
        ("/docs/docs.css", "text/css", ".operation"),
    ] {
        let resp = app.send(Method::GET, path, None, None).await;
        assert_eq!(resp.status, 200, "{path}: {:?}", resp.body);
        assert_eq!(
            resp.header("content-type"),
            Some(format!("{content_type}; charset=utf-8").as_str()),
            "{path}"
        );
        let policy = resp.header("content-security-policy").unwrap_or_default();
        assert!(policy.starts_with("default-src 'self'"), "{path}: {policy}");
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        assert!(
            resp.body.as_str().is_some_and(|b| b.contains(holds)),
            "{path}"
        );
    }
    let page = app.send(Method::GET, "/docs", None, None).await;
    let page = page.body.as_str().unwrap_or_default();
    assert!(page.contains(r#"src="docs/docs.js""#) && page.contains(r#"href="docs/docs.css""#));

    let doc = app
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let documented = &doc["paths"]["/docs"]["get"];
    assert!(documented["responses"]["200"]["content"]["text/html"].is_object());
    assert!(doc["paths"]["/docs/docs.js"].is_null() && doc["paths"]["/docs/docs.css"].is_null());
    let wrong = app.send(Method::POST, "/docs", None, None).await;
    wrong.problem(405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_browser_renders_the_document_and_lists_the_device_routes() {
    let Some(browser) = browser() else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let doc = app
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let dom = dump_dom(&browser, &app.url("/docs")).await;
    let tags = start_tags(&dom);
    assert_rendered(&dom, &tags);
    assert!(dom.contains("<title>Herald API</title>"));
    assert_eq!(text_of(&dom, &tags, "h1", "id", "docs-title"), "Herald API");

    // Every operation, under its tag, the tags in the document's order.
    let mut expected = Vec::new();
    let mut tag_order: Vec<String> = Vec::new();
    for name in doc["tags"].as_array().into_iter().flatten() {
        tag_order.extend(name["name"].as_str().map(str::to_owned));
    }
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if METHODS.contains(&method.as_str()) {
                let tag = op["tags"][0].as_str().unwrap_or("other").to_owned();
                expected.push((method.clone(), path.clone(), tag));
            }
        }
    }
    let operations = elements(&tags, "section", "operation");
    let mut rendered: Vec<(String, String, String)> = operations
        .iter()
        .map(|t| {
            (
                t.attr("data-method"),
                t.attr("data-path"),
                t.attr("data-tag"),
            )
        })
        .collect();
    expected.sort();
    rendered.sort();
    assert!(expected.len() > 50, "{} operations", expected.len());
    assert_eq!(rendered, expected, "the rendered operations");
    let sections: Vec<String> = elements(&tags, "section", "tag")
        .iter()
        .map(|t| t.attr("data-tag"))
        .collect();
    let with_operations: Vec<String> = tag_order
        .into_iter()
        .filter(|t| expected.iter().any(|(_, _, tag)| tag == t))
        .chain(["schemas".to_owned()])
        .collect();
    assert_eq!(sections, with_operations);

    // The devices section: its description and its routes.
    let devices = text_of(&dom, &tags, "section", "data-tag", "devices");
    assert!(
        devices.contains("Devices and their push tokens"),
        "{devices}"
    );
    let device_routes = rendered.iter().filter(|(_, _, t)| t == "devices").count();
    assert!(device_routes >= 6, "{device_routes} device routes");
    for (method, path) in [
        ("put", "/v1/devices/{external_id}"),
        ("get", "/v1/devices/{external_id}"),
        ("delete", "/v1/devices/{external_id}"),
        ("post", "/v1/devices/search"),
    ] {
        assert!(
            rendered.contains(&(method.into(), path.into(), "devices".into())),
            "{method} {path} is not rendered under devices"
        );
    }

    // PUT /v1/devices/{external_id} in full.
    let put = operations
        .iter()
        .find(|t| {
            t.attr("data-method") == "put" && t.attr("data-path") == "/v1/devices/{external_id}"
        })
        .unwrap_or_else(|| panic!("no PUT device operation"));
    let inside = within(&dom, &tags, put);
    let op = &doc["paths"]["/v1/devices/{external_id}"]["put"];
    let text = strip_tags(&dom[put.at..section_end(&dom, put.at)]);
    assert!(
        text.contains(op["summary"].as_str().unwrap_or("?")),
        "{text}"
    );
    assert!(inside.iter().any(|t| t.name == "tr"
        && t.attr("data-name") == "external_id"
        && t.attr("data-in") == "path"));
    assert!(
        inside
            .iter()
            .any(|t| t.name == "tr" && t.attr("data-name") == "Idempotency-Key")
    );
    for property in ["push_token", "send_platform", "device_platform"] {
        assert!(
            inside
                .iter()
                .any(|t| t.name == "li" && t.attr("data-name") == property),
            "the request body's {property} is not listed"
        );
    }
    let statuses: Vec<String> = inside
        .iter()
        .filter(|t| t.has_class("response"))
        .map(|t| t.attr("data-status"))
        .collect();
    let documented: Vec<String> = op["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(statuses, documented);
    assert!(statuses.contains(&"201".into()) && statuses.contains(&"401".into()));
    assert!(
        inside
            .iter()
            .any(|t| t.has_class("security") && t.attr("data-security") == "bearer")
    );
    let link = format!("#{}", put.attr("id"));
    assert!(
        tags.iter().any(|t| t.name == "a" && t.attr("href") == link),
        "no sidebar link {link}"
    );

    let healthz = operations
        .iter()
        .find(|t| t.attr("data-path") == "/healthz");
    let healthz = healthz.unwrap_or_else(|| panic!("no /healthz"));
    assert!(
        within(&dom, &tags, healthz)
            .iter()
            .any(|t| t.attr("data-security") == "none")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_from_the_address_shows_only_matching_operations() {
    let Some(browser) = browser() else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dom = dump_dom(&browser, &app.url("/docs?filter=DEVICES%2Fsearch")).await;
    let tags = start_tags(&dom);
    assert_rendered(&dom, &tags);
    let shown: Vec<String> = elements(&tags, "section", "operation")
        .iter()
        .filter(|t| !t.attrs.contains_key("hidden"))
        .map(|t| format!("{} {}", t.attr("data-method"), t.attr("data-path")))
        .collect();
    assert_eq!(shown, ["post /v1/devices/search"]);
    let value = tags.iter().find(|t| t.attr("id") == "docs-empty");
    assert!(value.is_some_and(|t| t.attrs.contains_key("hidden")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_so_when_the_document_cannot_be_fetched() {
    let Some(browser) = browser() else {
        return;
    };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    // Herald's own page and assets, from a server whose document fails.
    let mut parts = Vec::new();
    for path in ["/docs", "/docs/docs.js", "/docs/docs.css"] {
        let resp = app.client.get(app.url(path)).send().await;
        let resp = resp.unwrap_or_else(|e| panic!("{path}: {e}"));
        let content_type = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        parts.push((content_type, resp.text().await.unwrap_or_default()));
    }
    let addr = serve_failing_document(parts).await;
    let dom = dump_dom(&browser, &format!("http://{addr}/docs")).await;
    let tags = start_tags(&dom);
    let root = tags.iter().find(|t| t.attr("id") == "docs");
    assert_eq!(
        root.map(|t| t.attr("data-state")).as_deref(),
        Some("error"),
        "{dom}"
    );
    let error = text_of(&dom, &tags, "div", "class", "load-error");
    assert!(
        error.contains("could not be loaded") && error.contains("503"),
        "{error}"
    );
    assert!(elements(&tags, "section", "operation").is_empty());
}

async fn serve_failing_document(parts: Vec<(String, String)>) -> SocketAddr {
    let mut router = axum::Router::new();
    for (path, (content_type, body)) in ["/docs", "/docs/docs.js", "/docs/docs.css"]
        .into_iter()
        .zip(parts)
    {
        router = router.route(
            path,
            get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }),
        );
    }
    let router = router.route(
        "/openapi.json",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
    let listener = listener.unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The page finished rendering: no error shown.
#[track_caller]
fn assert_rendered(dom: &str, tags: &[Tag]) {
    let error = tags.iter().find(|t| t.has_class("load-error"));
    assert!(
        error.is_none(),
        "the page shows an error: {}",
        text_of(dom, tags, "div", "class", "load-error")
    );
    let root = tags.iter().find(|t| t.attr("id") == "docs");
    assert_eq!(root.map(|t| t.attr("data-state")).as_deref(), Some("ready"));
}
