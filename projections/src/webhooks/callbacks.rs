//! Callback URLs: an endpoint whose template or URL holds
//! `{{callback.url}}` gives each message about a user a URL of its own on
//! Herald, which the receiver may call once (`POST` with `{"status": …}`,
//! no API key) to set that user's status.
//!
//! The token in the URL is issued when the message is queued, in the
//! transaction that queues it, and only its SHA-256 is kept here: the token
//! itself is in the message alone. A token is good for one use, within a
//! time after its message was last sent (`webhook_messages.updated_at`,
//! moved by every claim, re-send and recovery); the service that uses it
//! is `infra::services::callbacks`. Forgetting the user deletes their
//! tokens, and the messages are rendered again without them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Db, Tx, insert_chunks, values_list};
use crate::time::from_micros;
use crate::{ProjectionError, on_db, on_tx};

/// Makes new callback URLs: a fresh random token under Herald's public URL.
pub trait IssueCallback: Send + Sync {
    fn issue(&self) -> Issued;
}

/// A new callback URL, and the SHA-256 (lower-case hex) of its token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub url: String,
    pub token_sha256: String,
}

/// A token to record beside the message that carries it.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub token_sha256: String,
    pub app_id: Uuid,
    pub endpoint_id: Uuid,
    pub message_id: Uuid,
    pub user_id: String,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

pub async fn insert(tx: &mut Tx, callbacks: &[NewCallback]) -> Result<(), ProjectionError> {
    const COLUMNS: usize = 6;
    let backend = tx.backend();
    for chunk in insert_chunks(backend, callbacks, COLUMNS) {
        let sql = format!(
            "INSERT INTO webhook_callbacks (token_sha256, app_id, endpoint_id, message_id, user_id, \
             created_at) VALUES {} ON CONFLICT (token_sha256) DO NOTHING",
            values_list(backend, chunk.len(), COLUMNS, "")
        );
        on_tx!(tx, |c| {
            let mut query = sqlx::query(sql.as_str());
            for cb in chunk {
                query = query
                    .bind(cb.token_sha256.as_str())
                    .bind(cb.app_id)
                    .bind(cb.endpoint_id)
                    .bind(cb.message_id)
                    .bind(cb.user_id.as_str())
                    .bind(cb.created_at);
            }
            query.execute(c).await?;
        });
    }
    Ok(())
}

/// A forgotten user's tokens are gone: their URLs answer 404 from then on.
pub async fn forget_user(tx: &mut Tx, app_id: Uuid, user_id: &str) -> Result<(), ProjectionError> {
    on_tx!(tx, |c| {
        sqlx::query("DELETE FROM webhook_callbacks WHERE app_id = $1 AND user_id = $2")
            .bind(app_id)
            .bind(user_id)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// A token as the callback route sees it.
#[derive(Debug, Clone)]
pub struct Callback {
    pub app_id: Uuid,
    pub endpoint_id: Uuid,
    pub message_id: Uuid,
    pub user_id: String,
    /// When its message was last sent (or queued, if never yet); `None`
    /// once the message or its endpoint is gone.
    pub last_sent: Option<DateTime<Utc>>,
    /// Set when a use began; `used_status` is the status it asked for.
    pub used_at: Option<DateTime<Utc>>,
    pub used_status: Option<String>,
    /// Set when that use's command was recorded.
    pub applied_at: Option<DateTime<Utc>>,
}

type Row = (
    Uuid,
    Uuid,
    Uuid,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// The token whose SHA-256 is `token_sha256`, with when its message was
/// last sent.
pub async fn find(db: &Db, token_sha256: &str) -> Result<Option<Callback>, sqlx::Error> {
    let row: Option<Row> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT c.app_id, c.endpoint_id, c.message_id, c.user_id, \
               CASE WHEN e.webhook_id IS NULL THEN NULL ELSE m.updated_at END, \
               c.used_at, c.used_status, c.applied_at \
             FROM webhook_callbacks c \
             LEFT JOIN webhook_messages m ON m.endpoint_id = c.endpoint_id AND m.message_id = c.message_id \
             LEFT JOIN webhook_endpoints e ON e.webhook_id = c.endpoint_id \
             WHERE c.token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(pool)
        .await
    })?;
    Ok(row.map(
        |(app_id, endpoint_id, message_id, user_id, sent, used, used_status, applied)| Callback {
            app_id,
            endpoint_id,
            message_id,
            user_id,
            last_sent: sent.map(from_micros),
            used_at: used.map(from_micros),
            used_status,
            applied_at: applied.map(from_micros),
        },
    ))
}

/// Takes the token for a use that sets `status`: true if it was unused,
/// or if a use asking for the same status began before `stale` and was
/// never recorded (the database or the node failed half-way; that use may
/// finish now). A use still under way holds it.
pub async fn claim(
    db: &Db,
    token_sha256: &str,
    status: &str,
    now: DateTime<Utc>,
    stale: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let done = on_tx!(&mut tx, |c| {
        sqlx::query(
            "UPDATE webhook_callbacks SET used_at = $2, used_status = $3 \
             WHERE token_sha256 = $1 AND applied_at IS NULL \
               AND (used_at IS NULL OR (used_status = $3 AND used_at < $4))",
        )
        .bind(token_sha256)
        .bind(now.timestamp_micros())
        .bind(status)
        .bind(stale.timestamp_micros())
        .execute(c)
        .await?
        .rows_affected()
    });
    tx.commit().await?;
    Ok(done == 1)
}

/// The use was refused (nothing changed): the token is unused again.
pub async fn release(db: &Db, token_sha256: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query(
            "UPDATE webhook_callbacks SET used_at = NULL, used_status = NULL \
             WHERE token_sha256 = $1 AND applied_at IS NULL",
        )
        .bind(token_sha256)
        .execute(c)
        .await?;
    });
    tx.commit().await
}

/// The use's command is recorded: the token is spent for good.
pub async fn spend(db: &Db, token_sha256: &str, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query("UPDATE webhook_callbacks SET applied_at = $2 WHERE token_sha256 = $1")
            .bind(token_sha256)
            .bind(now.timestamp_micros())
            .execute(c)
            .await?;
    });
    tx.commit().await
}
