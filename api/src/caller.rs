//! Who a request acts as, resolved once: the outermost of the middlewares
//! that need it (rate limits, idempotency keys) authenticates the bearer
//! token and leaves a [`Caller`] in the request's extensions; the others and
//! the `Key`/`Root` extractors read it from there. A missing or unknown
//! token, or a failed lookup, leaves `Caller(None)`: the extractors then
//! answer the precise 401 or 503 themselves.

use axum::http::{HeaderMap, header};
use infra::auth::Principal;

use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct Caller(pub Option<Principal>);

/// The bearer token of `Authorization: Bearer <token>`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The caller of a request with `headers`, from its extensions when an
/// earlier middleware resolved it, else by authenticating its token.
pub(crate) async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Caller {
    if let Some(caller) = extensions.get::<Caller>() {
        return caller.clone();
    }
    let Some(token) = bearer(headers) else {
        return Caller(None);
    };
    Caller(
        state
            .services
            .auth
            .authenticate(&token)
            .await
            .ok()
            .flatten(),
    )
}
