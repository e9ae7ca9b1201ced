//! `AppJson<T>`: a JSON body whose every rejection is a problem document
//! naming the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct AppJson<T>(pub T);

/// How long a request body may take to arrive whole (a request extension,
/// set by the server from `HttpLimits::body_timeout`). A client sending its
/// body a byte at a time gets 408 instead of holding a connection forever.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let timeout = req
            .extensions()
            .get::<BodyTimeout>()
            .map_or(std::time::Duration::from_secs(30), |t| t.0);
        let bytes = tokio::time::timeout(timeout, Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest(e.body_text())
                }
            })?;
        parse(&bytes).map(AppJson)
    }
}

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON document into `T`, naming the field that does not fit.
/// A string holding NUL is refused wherever it is (see `domain::storable`).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    refuse_nul(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A field's own parser may report a syntax error on valid JSON (an
        // object that holds two alternatives, say): then name the field.
        let valid = || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        if (inner.is_syntax() || inner.is_eof()) && !valid() {
            return ApiError::BadRequest(format!("the body is not valid JSON: {inner}"));
        }
        let message = strip_position(&inner.to_string());
        field_error(&path, message)
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// JSON can carry NUL only as the escape `\u0000`; a body without those six
/// bytes needs no further look. One with them is parsed to find the field.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    match domain::storable::find_unstorable(&value, "") {
        Some((field, message)) if message == domain::storable::NUL_MESSAGE => {
            let field = if field.is_empty() {
                "body".into()
            } else {
                field
            };
            Err(ApiError::invalid(field, message))
        }
        _ => Ok(()),
    }
}

fn field_error(path: &str, message: String) -> ApiError {
    if path == "." {
        if let Some(name) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            return ApiError::invalid(name, "is required");
        }
        if let Some(name) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            return ApiError::invalid(name, "is not a known field");
        }
        return ApiError::invalid("body", message);
    }
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        return ApiError::invalid(format!("{path}.{name}"), "is required");
    }
    ApiError::invalid(path, message)
}

/// serde_json appends " at line 1 column 27"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u8,
    }

    fn field_of(raw: &str) -> Vec<String> {
        match parse::<Body>(raw.as_bytes()) {
            Err(ApiError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejections_name_the_field() {
        assert_eq!(field_of(r#"{}"#), ["name"]);
        assert_eq!(field_of(r#"{"name": 1}"#), ["name"]);
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"count": 300}}"#),
            ["inner.count"]
        );
        assert_eq!(field_of(r#"{"name": "a", "inner": {}}"#), ["inner.count"]);
        assert_eq!(field_of(r#"{"name": "a", "extra": 1}"#), ["extra"]);
    }

    #[test]
    fn nul_is_refused_naming_the_field() {
        assert_eq!(field_of(r#"{"name": "a\u0000b"}"#), ["name"]);
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"k\u0000": 1}}"#),
            ["inner.k\u{0}"]
        );
        // An escaped backslash before "u0000" is text, not NUL.
        assert!(parse::<Body>(br#"{"name": "a\\u0000"}"#).is_ok());
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert!(matches!(parse::<Body>(b"{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            parse::<Body>(br#"{"name":"a"} x"#),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn json_content_types() {
        let v = |s: &'static str| header::HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json; charset=utf-8"))));
        assert!(is_json(Some(&v("application/merge-patch+json"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(None));
    }
}
