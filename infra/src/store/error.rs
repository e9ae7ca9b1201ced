use thiserror::Error;

/// Why the store did not do what was asked. `Conflict` and `Invalid` are the
/// caller's to handle; `Unavailable` means "try again later".
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("stream {stream} is at version {actual}, not the expected {expected}")]
    Conflict {
        stream: String,
        expected: String,
        actual: i64,
    },
    #[error("some of the event ids are stored already, as other events")]
    DuplicateEventIds,
    /// The append carried a new data key for a subject that already has a
    /// different key of that generation (another writer created it first):
    /// nothing was written; seal again under the stored key.
    #[error("the subject {subject} already has a data key of generation {generation}")]
    KeyTaken { subject: String, generation: i64 },
    #[error("invalid append: {0}")]
    Invalid(String),
    /// The append holds a value some backend cannot store (NUL in a string,
    /// a fraction): refused on every backend alike.
    #[error("the log cannot store {0}")]
    Unstorable(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the database failed: {0}")]
    Internal(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Internal(e.to_string())
        }
    }
}

/// Whether a database error means "unavailable, try again": the connection
/// (refused, reset, garbled), the pool (exhausted, closed), or the server's
/// state (SQLite: BUSY / LOCKED / IOERR / CANTOPEN, primary codes 5, 6, 10,
/// 14; PostgreSQL: class 08 connection, 57P shutdown, 53 resources).
pub fn is_transient(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::Io(_)
        | E::Tls(_)
        | E::Protocol(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed => true,
        E::Database(db) => {
            let code = db.code().unwrap_or_default();
            matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5 | 6 | 10 | 14))
                || code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
        }
        _ => false,
    }
}
