//! Responses that did not come from a handler (unknown route, wrong method,
//! a layer's rejection) are rewritten as problem documents too, so that every
//! error a client sees has the same shape.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{ApiError, PROBLEM_JSON, problem};

/// Unknown routes.
pub async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

pub async fn problems_everywhere(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (slug, title, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "Method not allowed",
            format!("{method} is not allowed on this resource"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload-too-large",
            "Payload too large",
            "the request body is over the 1 MiB limit".into(),
        ),
        StatusCode::NOT_FOUND => ("not-found", "Not found", non_empty(text, "not found")),
        s if s.is_client_error() => (
            "bad-request",
            "Bad request",
            non_empty(text, "the request is not valid"),
        ),
        _ => (
            "internal",
            "Internal server error",
            "the server failed; the error was logged".into(),
        ),
    };
    let mut rewritten = problem(status, slug, title, detail, vec![]);
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            rewritten.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(id) = parts.headers.get("x-request-id") {
        rewritten.headers_mut().insert("x-request-id", id.clone());
    }
    rewritten
}

fn non_empty(text: String, default: &str) -> String {
    if text.trim().is_empty() {
        default.to_owned()
    } else {
        text
    }
}
