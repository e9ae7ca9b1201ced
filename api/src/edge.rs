//! What every request is checked for before any handler runs: a URI longer
//! than [`MAX_URI_BYTES`] is a 414, headers over [`MAX_HEADER_BYTES`] a 431
//! (hyper answers longer heads itself, see `connections`), and a path or a query string that
//! decodes to NUL (`%00`) is a 400, on every backend alike (PostgreSQL
//! cannot hold NUL in text; see `domain::storable`). Bodies are checked by
//! the JSON extractor (`extract::json`).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::storable::NUL_MESSAGE;

use crate::error::ApiError;

/// The longest path and query string served (no route needs more; ids are
/// at most 255 bytes).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

pub async fn refuse_unstorable(request: Request, next: Next) -> Response {
    let length = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if length > MAX_URI_BYTES {
        return ApiError::UriTooLong(MAX_URI_BYTES).into_response();
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge(MAX_HEADER_BYTES).into_response();
    }
    match unstorable_part(request.uri()) {
        Some(field) => ApiError::invalid(field, NUL_MESSAGE).into_response(),
        None => next.run(request).await,
    }
}

/// The field to name when the URI decodes to NUL: `path`, or the query
/// parameter's name.
fn unstorable_part(uri: &axum::http::Uri) -> Option<String> {
    if uri.path().contains("%00") {
        return Some("path".into());
    }
    let query = uri.query()?;
    if !query.contains("%00") {
        return None;
    }
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, value)| key.contains('\0') || value.contains('\0'))
        .map(|(key, _)| key.replace('\0', "%00"))
}

#[cfg(test)]
mod tests {
    use axum::http::Uri;

    use super::unstorable_part;

    fn part(uri: &'static str) -> Option<String> {
        unstorable_part(&Uri::from_static(uri))
    }

    #[test]
    fn nul_in_the_path_or_query_is_named() {
        assert_eq!(part("/v1/devices/a%00b"), Some("path".into()));
        assert_eq!(
            part("/v1/events?type=device.*&actor=%00"),
            Some("actor".into())
        );
        assert_eq!(part("/v1/events?x%00=1"), Some("x%00".into()));
        assert_eq!(part("/v1/devices/a%2500"), None);
        assert_eq!(part("/v1/events?actor=a%2500"), None);
    }
}
