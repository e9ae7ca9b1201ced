//! Extractors: JSON bodies and query strings whose rejections are problems,
//! and the caller's identity and request context.

mod auth;
mod context;
mod json;
mod query;

pub use auth::{Admin, Audit, Key, Read, Root, Write};
pub use context::request_context;
pub use json::{AppJson, BodyTimeout};
pub use query::AppQuery;
