//! `GET /docs`: the API reference, a page that renders `/openapi.json` in
//! the browser. The page, its script and its style sheet are this
//! project's own, embedded in the binary; the page loads nothing but them
//! and the document, all from the same origin (the Content-Security-Policy
//! says so). The addresses are relative (`docs/docs.js`, `openapi.json`),
//! so the page also works behind a proxy that adds a path prefix.
//!
//! `/docs` is in the OpenAPI document; its two assets are not (they are the
//! page's parts, not API operations).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("docs.js");
const STYLE: &str = include_str!("docs.css");

/// Same-origin scripts, styles and fetches only; no inline script or style,
/// no plugins, no framing, no forms.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub const SCRIPT_PATH: &str = "/docs/docs.js";
pub const STYLE_PATH: &str = "/docs/docs.css";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(docs_page))
        .route(SCRIPT_PATH, get(script))
        .route(STYLE_PATH, get(style))
}

/// An embedded asset, with the headers every part of the page carries. The
/// assets change only with the binary: a browser revalidates each time
/// (`no-cache`), which costs little at this size.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The API reference: this document, rendered in the browser (JavaScript
/// needed).
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "The API reference page", content_type = "text/html")))]
async fn docs_page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::{PAGE, SCRIPT, STYLE};

    #[test]
    fn the_page_loads_its_own_assets_and_runs_no_inline_code() {
        assert!(PAGE.contains("<title>Herald API</title>"));
        assert!(PAGE.contains(r#"<script src="docs/docs.js" defer></script>"#));
        assert!(PAGE.contains(r#"<link rel="stylesheet" href="docs/docs.css">"#));
        assert!(PAGE.contains(r#"data-spec="openapi.json""#));
        assert_eq!(PAGE.matches("<script").count(), 1, "one script, by src");
        assert_eq!(PAGE.matches("<link").count(), 1, "one style sheet");
        // No inline code or style, and nothing from another origin.
        for banned in [" style=", "<style", "javascript:", "//"] {
            assert!(!PAGE.contains(banned), "the page holds {banned:?}");
        }
        let handler = PAGE.split(" on").skip(1).any(|rest| {
            let name = rest.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            name.len() < rest.len() && name.starts_with('=')
        });
        assert!(!handler, "the page holds an inline event handler");
    }

    #[test]
    fn the_script_writes_text_not_markup() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute(\"style",
            "import(",
        ] {
            assert!(!SCRIPT.contains(sink), "docs.js uses {sink}");
        }
        assert!(SCRIPT.contains("\"use strict\""));
        assert!(!STYLE.contains("@import") && !STYLE.contains("url("));
    }

    #[test]
    fn the_page_is_documented_and_its_assets_are_not() {
        let (_, doc) = super::router().split_for_parts();
        let doc = serde_json::to_value(&doc).unwrap_or_else(|e| panic!("{e}"));
        let page = &doc["paths"]["/docs"]["get"];
        assert!(
            page["responses"]["200"]["content"]["text/html"].is_object(),
            "{page}"
        );
        assert_eq!(page["tags"][0], "operations");
        assert!(page.get("security").is_none());
        assert_eq!(doc["paths"].as_object().map(|p| p.len()), Some(1));
    }
}
