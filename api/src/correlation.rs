//! `X-Correlation-Id` answered on every response: the id the request's
//! events are recorded with (the client's, when usable; else its trace id,
//! else a new one), so a client can find them with `?correlation_id=` even
//! when the one it sent was replaced.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::extract::context::{CORRELATION_ID, correlation_id};

/// Settles the request's correlation id before anything reads it, and
/// echoes it.
pub async fn echo(mut request: Request, next: Next) -> Response {
    let Ok(id) = HeaderValue::from_str(&correlation_id(request.headers())) else {
        return next.run(request).await;
    };
    request.headers_mut().insert(CORRELATION_ID, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(CORRELATION_ID, id);
    response
}
