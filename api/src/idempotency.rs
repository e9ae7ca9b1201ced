//! `Idempotency-Key` on state-changing requests (POST, PUT, PATCH, DELETE).
//!
//! The first request with a key runs; its answer (status, body and the
//! headers worth repeating) is kept per app and key (see
//! `infra::idempotency`). A repeat with the same method, path, query and
//! body gets that answer again, marked `Idempotent-Replayed: true`, and
//! writes nothing. The same key with another request is a 422; a repeat
//! while the first still runs is a 409 with `Retry-After`. A 5xx answer is
//! not kept (its outcome is unknown to the client): the key is released and
//! a retry runs again. Requests that fail authentication are not recorded.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use infra::auth::Principal;
use infra::idempotency::{Claim, Saved, Scope, key_problem};

use crate::caller::{Caller, resolve};
use crate::error::{ApiError, problem};
use crate::extract::BodyTimeout;
use crate::server::BODY_LIMIT;
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";
/// The most of an answer kept (answers here are far smaller).
const ANSWER_LIMIT: usize = 8 << 20;
/// The answer headers kept and replayed.
const KEPT_HEADERS: [&str; 5] = [
    "content-type",
    "location",
    "herald-position",
    "preference-applied",
    "etag",
];

pub async fn replay_or_run(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return next.run(request).await;
    }
    let Some(raw) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match raw.to_str() {
        Ok(key) => match key_problem(key) {
            None => key.to_owned(),
            Some(why) => return ApiError::BadRequest(why.into()).into_response(),
        },
        Err(_) => {
            return ApiError::BadRequest(
                "the Idempotency-Key header may hold printable ASCII characters only".into(),
            )
            .into_response();
        }
    };
    let caller = resolve(&state, request.headers(), request.extensions()).await;
    let Some(scope) = scope_of(caller) else {
        // Not authenticated: the handler answers 401/403 and nothing is kept.
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let timeout = parts
        .extensions
        .get::<BodyTimeout>()
        .map_or(std::time::Duration::from_secs(30), |t| t.0);
    let bytes = match tokio::time::timeout(timeout, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Err(_) => return ApiError::RequestTimeout.into_response(),
        Ok(Err(_)) => return ApiError::PayloadTooLarge.into_response(),
        Ok(Ok(bytes)) => bytes,
    };
    let fingerprint = fingerprint(&parts.method, &parts.uri, &bytes);
    let keys = &state.services.idempotency;
    let scope = Scope(&scope);
    match keys.claim(scope, &key, &fingerprint).await {
        Err(e) => {
            tracing::warn!(error = %infra::database::redact(&e.to_string()), "idempotency key claim failed");
            ApiError::Unavailable.into_response()
        }
        Ok(Claim::Replay(saved)) => replay(saved),
        Ok(Claim::InFlight) => {
            let mut response = problem(
                StatusCode::CONFLICT,
                "idempotency-key-in-flight",
                "Request in progress",
                "a request with this Idempotency-Key is still running; retry shortly".into(),
                vec![],
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Ok(Claim::Mismatch) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
            "this Idempotency-Key was used with a different request (method, path or body); \
             use a new key for a new request"
                .into(),
            vec![],
        ),
        Ok(Claim::Unreadable) => {
            tracing::error!(
                "a kept idempotent answer does not open: was HERALD_SECRET_KEY changed?"
            );
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "idempotency-answer-unreadable",
                "Kept answer unreadable",
                "the answer kept for this Idempotency-Key cannot be read by this server; \
                 the request is not run again"
                    .into(),
                vec![],
            )
        }
        Ok(Claim::Fresh) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            keep(keys, scope, &key, &fingerprint, response).await
        }
    }
}

/// The caller's app (or `root`); `None` when the request does not
/// authenticate.
fn scope_of(caller: Caller) -> Option<String> {
    match caller.0? {
        Principal::Root => Some("root".into()),
        Principal::Key { app_id, .. } => Some(app_id.0.to_string()),
    }
}

/// A digest of what makes two requests the same one.
fn fingerprint(method: &Method, uri: &axum::http::Uri, body: &Bytes) -> String {
    infra::idempotency::fingerprint(
        method.as_str(),
        uri.path_and_query().map_or("", |p| p.as_str()),
        body,
    )
}

/// Keeps the answer (or releases the key after a 5xx) and hands it on.
async fn keep(
    keys: &infra::idempotency::Idempotency,
    scope: Scope<'_>,
    key: &str,
    fingerprint: &str,
    response: Response,
) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, ANSWER_LIMIT).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = keys.release(scope, key, fingerprint).await;
            return ApiError::Internal(format!("cannot read the answer to keep it: {e}"))
                .into_response();
        }
    };
    let outcome = if parts.status.is_server_error() {
        keys.release(scope, key, fingerprint).await
    } else {
        let saved = Saved {
            status: parts.status.as_u16(),
            headers: KEPT_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = parts.headers.get(*name)?.to_str().ok()?;
                    Some(((*name).to_owned(), value.to_owned()))
                })
                .collect(),
            body: bytes.to_vec(),
        };
        keys.complete(scope, key, fingerprint, &saved).await
    };
    if let Err(e) = outcome {
        // The command ran; a retry finds the claim and answers 409 until its
        // lease runs out, then runs again.
        tracing::warn!(error = %infra::database::redact(&e.to_string()),
            "the answer to an idempotent request could not be kept");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(saved: Saved) -> Response {
    let status = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK);
    let mut response = (status, saved.body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in saved.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
