//! `AppQuery<T>`: a query string whose rejection is a problem document.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default();
        // The consistency token is every read's, read by `context`.
        let without_token;
        let raw = if form_urlencoded::parse(raw.as_bytes()).any(|(k, _)| k == "min_position") {
            without_token = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(
                    form_urlencoded::parse(raw.as_bytes()).filter(|(k, _)| k != "min_position"),
                )
                .finish();
            without_token.as_str()
        } else {
            raw
        };
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(AppQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let named = |prefix: &str| {
                    message
                        .strip_prefix(prefix)
                        .and_then(|m| m.split('`').next())
                        .map(str::to_owned)
                };
                if let Some(name) = named("missing field `") {
                    ApiError::invalid(name, "is required")
                } else if let Some(name) = named("duplicate field `") {
                    ApiError::invalid(name, "is given more than once; give it once")
                } else {
                    ApiError::invalid(path, message)
                }
            })
    }
}
