//! The ids that tie a request to the events it writes.

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use infra::services::RequestContext;
use uuid::Uuid;

use crate::error::ApiError;

/// The consistency token's header; `min_position` in the query does the same.
pub const MIN_POSITION: &str = "herald-min-position";

/// Reads that go by POST (their query is a body).
const POSTED_READS: &[&str] = &["/v1/devices/search"];

/// Whether the operation `method` `path` reads read models, and so takes
/// the consistency token: every GET but the operators' reports (which say
/// where the read models are, and wait for none), and the reads that go by
/// POST. A command writes to the log, which is always current: a token
/// sent with one means nothing and is ignored, as it is on the reports.
pub fn takes_consistency_token(method: &Method, path: &str) -> bool {
    let report = path.starts_with("/v1/admin/") || path == "/metrics";
    match *method {
        Method::GET | Method::HEAD => !report,
        Method::POST => POSTED_READS.contains(&path),
        _ => false,
    }
}

/// The request context of `parts`, with the consistency token (`Herald-Min-
/// Position` or `?min_position=`, where it applies: see
/// [`takes_consistency_token`]) and the client's preference about waiting
/// for read models (`Prefer: return=minimal`: don't).
pub fn from_parts(parts: &Parts, actor: String) -> Result<RequestContext, ApiError> {
    let mut ctx = request_context(&parts.headers, actor);
    ctx.wait_for_read_models = !prefers_minimal(&parts.headers);
    if !takes_consistency_token(&parts.method, parts.uri.path()) {
        return Ok(ctx);
    }
    let from_query = parts.uri.query().into_iter().flat_map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .filter(|(k, _)| k == "min_position")
            .map(|(_, v)| ("min_position", v.into_owned()))
    });
    let from_header = parts.headers.get_all(MIN_POSITION).iter().map(|v| {
        (
            "Herald-Min-Position",
            v.to_str().unwrap_or("?").trim().to_owned(),
        )
    });
    let mut tokens: Vec<(&str, String)> = from_header.chain(from_query).collect();
    if tokens.len() > 1 {
        // Which one should win is anyone's guess: refuse rather than
        // silently drop a wait the client asked for.
        return Err(ApiError::invalid(
            tokens[1].0,
            "the consistency token is given more than once (Herald-Min-Position and \
             min_position together, or repeated); give it once",
        ));
    }
    if let Some((field, raw)) = tokens.pop() {
        let position =
            raw.parse::<i64>().ok().filter(|p| *p >= 0).ok_or_else(|| {
                ApiError::invalid(field, "must be a log position (an integer >= 0)")
            })?;
        ctx.min_position = Some(position);
    }
    Ok(ctx)
}

/// `Prefer: return=minimal` (RFC 7240), among other preferences.
pub fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
}

/// Builds the request context: the request id (set by the request-id layer,
/// or the client's `X-Request-Id`), a correlation id (the client's
/// `X-Correlation-Id`, else the trace id of `traceparent`, else new), and the
/// trace id.
pub fn request_context(headers: &HeaderMap, actor: String) -> RequestContext {
    let traceparent_id = usable(headers, "traceparent").and_then(|tp| trace_id_of(&tp));
    let trace_id = infra::telemetry::current_trace_id().or(traceparent_id);
    RequestContext {
        actor,
        request_id: usable(headers, "x-request-id"),
        correlation_id: Some(correlation_id(headers)),
        causation_id: None,
        trace_id,
        ..RequestContext::default()
    }
}

/// The client's correlation-id header.
pub const CORRELATION_ID: &str = "x-correlation-id";

/// The request's correlation id: the client's `X-Correlation-Id` when it is
/// usable, else the trace id of its `traceparent`, else a new one.
pub fn correlation_id(headers: &HeaderMap) -> String {
    usable(headers, CORRELATION_ID)
        .or_else(|| usable(headers, "traceparent").and_then(|tp| trace_id_of(&tp)))
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

/// A header's value when it is 1 to 128 printable ASCII characters (no
/// spaces), trimmed.
fn usable(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
}

/// The trace id of a valid W3C `traceparent`.
fn trace_id_of(traceparent: &str) -> Option<String> {
    infra::telemetry::context::TraceParent::parse(traceparent).map(|tp| tp.trace_id.to_string())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn correlation_comes_from_the_header_then_traceparent() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let ctx = request_context(&headers, "root".into());
        assert_eq!(
            ctx.correlation_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        headers.insert("x-correlation-id", HeaderValue::from_static("order-17"));
        let ctx = request_context(&headers, "root".into());
        assert_eq!(ctx.correlation_id.as_deref(), Some("order-17"));
    }

    #[test]
    fn a_fresh_correlation_id_otherwise() {
        let ctx = request_context(&HeaderMap::new(), "root".into());
        assert!(
            ctx.correlation_id
                .is_some_and(|c| Uuid::parse_str(&c).is_ok())
        );
    }
}
