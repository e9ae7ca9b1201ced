//! Extractors: JSON bodies and query strings whose rejections are problems,
//! and the caller's identity and request context.

mod auth;
pub(crate) mod context;
pub(crate) mod json;
mod query;

pub use auth::{Admin, Audit, Key, KeyOrClient, Read, Root, Write};
pub use context::{prefers_minimal, request_context};
pub use json::{AppJson, BodyTimeout};
pub use query::AppQuery;
