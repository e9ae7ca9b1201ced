//! `Prefer: return=minimal` (RFC 7240) on a command: the client does not
//! need the resource back nor to read its write at once. The command then
//! answers as soon as its events are in the log (no wait for read models,
//! see `RequestContext::wait_for_read_models`), and its answer carries no
//! body: 200 becomes 204, 201 stays 201; `Herald-Position` is kept, so a
//! later read can still ask for read-your-writes with `Herald-Min-Position`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

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
