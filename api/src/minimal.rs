//! `Prefer: return=minimal` (RFC 7240) on a command: the client does not
//! need the resource back nor to read its write at once. The command then
//! answers as soon as its events are in the log (no wait for read models,
//! see `RequestContext::wait_for_read_models`), and its answer carries no
//! body: 200 becomes 204, 201 stays 201 (a creation says where the new
//! resource is in `Location`, see [`created`]); `Herald-Position` is kept, so a
//! later read can still ask for read-your-writes with `Herald-Min-Position`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::extract::prefers_minimal;

pub async fn return_minimal(request: Request, next: Next) -> Response {
    let minimal = !matches!(*request.method(), Method::GET | Method::HEAD)
        && prefers_minimal(request.headers());
    let response = next.run(request).await;
    if !minimal || !response.status().is_success() {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    if parts.status == StatusCode::OK {
        parts.status = StatusCode::NO_CONTENT;
    }
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        "preference-applied",
        HeaderValue::from_static("return=minimal"),
    );
    Response::from_parts(parts, Body::empty())
}

/// The answer of a command that created a resource: `status` (201, or 202
/// for a send still under way), its address in `Location`, and the resource
/// as read back — absent when the client preferred `return=minimal`, as the
/// read models need not hold it yet (the answer has no body then anyway).
pub fn created<B: serde::Serialize>(
    status: StatusCode,
    location: String,
    body: Option<B>,
) -> Response {
    let mut response = match body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
