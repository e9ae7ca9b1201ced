//! `Herald-Position` on every command's answer: the log position its
//! events reached (or, for a command that changed nothing, its stream's
//! last event). Sent back as `Herald-Min-Position` on a read, it makes the
//! read wait until the read models it uses have applied that position
//! (read-your-writes, on any node).

use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use infra::runtime::reached;

pub const HEADER: &str = "herald-position";

/// Notes the positions the request's commands reach and, on a successful
/// answer, sends the highest.
pub async fn answer_position(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let (mut response, position) = reached::tracking(next.run(request)).await;
    if let Some(position) = position
        && response.status().is_success()
    {
        response
            .headers_mut()
            .insert(HEADER, HeaderValue::from(position));
    }
    response
}
