//! The error answers that follow from what an operation is, added to every
//! operation in one place (a route annotates only its own: 404, 409, 429):
//!
//! - secured (it takes a bearer key): 401, 403, 429 (rate limit), and 503 (every such
//!   operation reads the database, and waits, bounded, for the read models
//!   it uses); and the consistency token on those that read read models
//!   (`Herald-Min-Position` or `?min_position=`, see
//!   `extract::context::takes_consistency_token`), so 400 when that is
//!   malformed; a secured command (not a GET) also
//!   takes `Prefer: return=minimal` (see `minimal.rs`), which turns its 200
//!   into a 204;
//!   a secured command also takes `Idempotency-Key` (see `idempotency.rs`):
//!   409 while the first request with the key runs, 422 for a key reused
//!   with another request;
//! - takes a request body: 400, 413, 415;
//! - takes path or query parameters: 400 (a malformed or invalid one).
//!
//! Each is a shared response in `components.responses`, described once, as
//! `application/problem+json` with the `Problem` schema. Responses a route
//! declared without a description get the status's reason phrase.

use axum::http::{Method, StatusCode};

use crate::extract::context::takes_consistency_token;
use serde_json::json;
use utoipa::Modify;
use utoipa::openapi::path::{Operation, Parameter};
use utoipa::openapi::response::Response;
use utoipa::openapi::{OpenApi, Ref, RefOr};

use crate::error::PROBLEM_JSON;

/// A response header: name, JSON type, description.
type HeaderDoc = (&'static str, &'static str, &'static str);

/// (status, component name, description, headers)
const COMMON: [(&str, &str, &str, &[HeaderDoc]); 9] = [
    (
        "400",
        "BadRequest",
        "Malformed or invalid input: `errors` names each invalid field (`field` is a body path such as `conditions[1].operator`, a parameter's name, or `body`).",
        &[],
    ),
    (
        "401",
        "Unauthorized",
        "No API key, or an unknown or revoked one.",
        &[("www-authenticate", "string", "`Bearer`")],
    ),
    (
        "403",
        "Forbidden",
        "The key lacks the role this operation needs (or is the root token where an app key is needed, or the reverse).",
        &[],
    ),
    (
        "409",
        "IdempotencyKeyInFlight",
        "A request with this `Idempotency-Key` is still running (or, where the operation says so, the resource is in a conflicting state); retry after `Retry-After` seconds.",
        &[("retry-after", "integer", "Seconds to wait before retrying.")],
    ),
    (
        "422",
        "IdempotencyKeyReused",
        "This `Idempotency-Key` was used with a different request (method, path or body).",
        &[],
    ),
    (
        "413",
        "PayloadTooLarge",
        "The request body is over 1 MiB.",
        &[],
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body was not sent as `Content-Type: application/json`.",
        &[],
    ),
    (
        "429",
        "TooManyRequests",
        "The API key is over its rate limit (`HERALD_API_RATE_LIMIT` per second, or the app's own); retry after `Retry-After` seconds. Every answer to an app key carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.",
        &[
            ("retry-after", "integer", "Seconds to wait before retrying."),
            (
                "ratelimit-limit",
                "integer",
                "Requests per second allowed to this key (the burst is the same).",
            ),
            (
                "ratelimit-remaining",
                "integer",
                "Requests left in the burst.",
            ),
            (
                "ratelimit-reset",
                "integer",
                "Seconds until the burst is whole again.",
            ),
        ],
    ),
    (
        "503",
        "Unavailable",
        "The database is unavailable, or a read model this answer needs is behind the consistency token or stopped for the app; retry after `Retry-After` seconds.",
        &[("retry-after", "integer", "Seconds to wait before retrying.")],
    ),
];

/// Applied to the whole document once every route is in it (see
/// [`super::complete`]), not as an `#[openapi(modifiers)]`, which run before
/// the routes are merged.
pub struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, doc: &mut OpenApi) {
        add(doc);
    }
}

/// `Prefer: return=minimal` on commands.
fn prefer_parameter() -> serde_json::Value {
    json!({"name": "Prefer", "in": "header", "required": false,
        "description": "`return=minimal` (RFC 7240): answer once the events are in the log, without waiting for read models and without a body (200 becomes 204, 201 and 202 come without a body); `Herald-Position` is kept.",
        "schema": {"type": "string"}})
}

/// `Idempotency-Key` on commands (see `api::idempotency`).
fn idempotency_parameter() -> serde_json::Value {
    json!({"name": "Idempotency-Key", "in": "header", "required": false,
        "description": "Makes a retry safe: the first answer to this key (per app) is kept for 24 hours (`HERALD_IDEMPOTENCY_TTL_SECONDS`) and returned again, with `Idempotent-Replayed: true`, to a repeat with the same method, path and body, which writes nothing. Another request with the key is a 422; a repeat while the first runs is a 409. 5xx answers are not kept.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]{1,255}$"}})
}

/// The consistency token's parameters: (component name, JSON).
fn token_parameters() -> [(&'static str, serde_json::Value); 2] {
    let about = "The consistency token: a log position (a command's `Herald-Position`) that the read models this operation uses must have reached first (bounded wait, else 503).";
    let schema = json!({"type": "integer", "format": "int64", "minimum": 0});
    [
        (
            "MinPositionHeader",
            json!({"name": "Herald-Min-Position", "in": "header", "required": false, "description": about, "schema": schema}),
        ),
        (
            "MinPositionQuery",
            json!({"name": "min_position", "in": "query", "required": false, "description": about, "schema": schema}),
        ),
    ]
}

fn add(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (_, name, description, headers) in COMMON {
        components
            .responses
            .insert(name.to_owned(), RefOr::T(problem(description, headers)));
    }
    let prefer = ("Prefer", prefer_parameter());
    let idempotency = ("IdempotencyKey", idempotency_parameter());
    for (name, value) in token_parameters().into_iter().chain([prefer, idempotency]) {
        match serde_json::from_value::<Parameter>(value) {
            Ok(p) => {
                components.parameters.insert(name.to_owned(), RefOr::T(p));
            }
            Err(e) => tracing::error!(name, error = %e, "an OpenAPI parameter does not parse"),
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
        ] {
            if let Some(op) = op {
                let token = takes_consistency_token(&method, path);
                add_to(op, method != Method::GET, token);
            }
        }
    }
}

/// `command`: not a GET (it takes `Prefer` and `Idempotency-Key`); `token`:
/// it takes the consistency token.
fn add_to(op: &mut Operation, command: bool, token: bool) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    if secured {
        let parameters = op.parameters.get_or_insert_with(Vec::new);
        let mut names: Vec<&str> = Vec::new();
        if token {
            names.extend(token_parameters().iter().map(|(n, _)| *n));
        }
        if command {
            names.extend(["Prefer", "IdempotencyKey"]);
        }
        for name in names {
            parameters.push(RefOr::Ref(Ref::new(format!(
                "#/components/parameters/{name}"
            ))));
        }
        let responses = &mut op.responses.responses;
        if command && responses.contains_key("200") && !responses.contains_key("204") {
            responses.insert(
                "204".to_owned(),
                RefOr::T(Response::new(
                    "Done, without a body (`Prefer: return=minimal`).",
                )),
            );
        }
    }
    let body = op.request_body.is_some();
    let parameters = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let wanted = |status: &str| match status {
        "400" => body || parameters,
        "401" | "403" | "429" | "503" => secured,
        "409" | "422" => secured && command,
        "413" | "415" => body,
        _ => false,
    };
    let responses = &mut op.responses.responses;
    for (status, name, _, _) in COMMON {
        if wanted(status) && !responses.contains_key(status) {
            responses.insert(
                status.to_owned(),
                RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))),
            );
        }
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            response.description = reason(status);
        }
    }
}

fn reason(status: &str) -> String {
    status
        .parse::<u16>()
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Answer")
        .to_owned()
}

/// A problem document response.
fn problem(description: &str, headers: &[HeaderDoc]) -> Response {
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, kind, about)| {
            (
                (*name).to_owned(),
                json!({"description": about, "schema": {"type": kind}}),
            )
        })
        .collect();
    let value = json!({
        "description": description,
        "headers": headers,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    serde_json::from_value(value).unwrap_or_else(|_| Response::new(description))
}
