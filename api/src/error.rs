//! Every error leaves as RFC 9457 `application/problem+json`. Internal
//! details are logged here, once, and never returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{DomainError, FieldError};
use infra::runtime::commands::CommandError;
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Each invalid input, on validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub enum ApiError {
    Validation(Vec<FieldError>),
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    /// It existed and is no more (a used or expired callback URL): 410.
    Gone(String),
    PayloadTooLarge,
    /// The body did not arrive in time.
    RequestTimeout,
    /// The URI is longer than this many bytes.
    UriTooLong(usize),
    /// The headers are larger than this many bytes.
    HeadersTooLarge(usize),
    UnsupportedMediaType,
    TooManyRequests {
        detail: String,
        retry_after: std::time::Duration,
    },
    Unavailable,
    /// A read model cannot serve the read: `(slug, detail)`.
    NotReady(&'static str, String),
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, "validation", "Invalid request"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone", "Gone"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            ApiError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri-too-long", "URI too long"),
            ApiError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request header fields too large",
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            ApiError::NotReady(slug, _) => (
                StatusCode::SERVICE_UNAVAILABLE,
                slug,
                "Read model not ready",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

/// Builds a problem response for any status.
pub fn problem(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: String,
    errors: Vec<FieldError>,
) -> Response {
    let body = Problem {
        kind: format!("urn:herald:problem:{slug}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        errors: errors
            .into_iter()
            .map(|e| ProblemField {
                field: e.field,
                message: e.message,
            })
            .collect(),
    };
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            _ => None,
        };
        let (detail, errors) = match self {
            ApiError::Validation(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                (detail, errors)
            }
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Gone(m)
            | ApiError::Conflict(m) => (m, vec![]),
            ApiError::PayloadTooLarge => {
                ("the request body is over the 1 MiB limit".into(), vec![])
            }
            ApiError::RequestTimeout => ("the request body did not arrive in time".into(), vec![]),
            ApiError::UriTooLong(max) => (
                format!("the request URI is longer than {max} bytes"),
                vec![],
            ),
            ApiError::HeadersTooLarge(max) => (
                format!("the request's headers are over {max} bytes"),
                vec![],
            ),
            ApiError::UnsupportedMediaType => (
                "send the body as JSON with Content-Type: application/json".into(),
                vec![],
            ),
            ApiError::Unavailable => ("the database is unavailable; retry shortly".into(), vec![]),
            ApiError::NotReady(_, detail) => (detail, vec![]),
            ApiError::TooManyRequests { detail, .. } => (detail, vec![]),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "request failed");
                ("the server failed; the error was logged".into(), vec![])
            }
        };
        let mut response = problem(status, slug, title, detail, errors);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(errors) => ApiError::Validation(errors),
            DomainError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            DomainError::StateConflict(m) => ApiError::Conflict(m),
            DomainError::Forbidden(m) => ApiError::Forbidden(m),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(d) => d.into(),
            CommandError::Conflict => ApiError::Conflict(
                "the resource was changed concurrently; retry the request".into(),
            ),
            CommandError::Unavailable(m) => {
                tracing::warn!(error = %infra::database::redact(&m), "database unavailable");
                ApiError::Unavailable
            }
            CommandError::NotReady(ref n) => {
                let slug = match n {
                    infra::runtime::NotReady::Stopped { .. } => "read-model-stopped",
                    infra::runtime::NotReady::Behind { .. } => "read-model-behind",
                };
                ApiError::NotReady(slug, e.to_string())
            }
            CommandError::Internal(m) => ApiError::Internal(m),
            CommandError::TooMany {
                message,
                retry_after,
            } => ApiError::TooManyRequests {
                detail: message,
                retry_after,
            },
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        CommandError::from(e).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
