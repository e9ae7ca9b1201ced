//! Why a command was refused. Infrastructure failures are not domain errors;
//! they live in `infra`.

use serde::Serialize;

/// One invalid input, named by its path in the request (`properties.age`,
/// `conditions[1].operator`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The input is malformed (400).
    #[error("invalid input: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// The thing the command is about does not exist (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The command is well-formed but the current state does not allow it (409).
    #[error("{0}")]
    StateConflict(String),
    /// The caller may not do this to this thing (403).
    #[error("{0}")]
    Forbidden(String),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}
