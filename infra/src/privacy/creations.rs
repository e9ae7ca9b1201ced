//! New subjects' keys, written in groups: under load many devices register
//! at once, and one transaction for all their keys costs what one costs.

use projections::db::Db;
use projections::on_tx;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::store::StoreError;

/// Keys written per transaction, at most.
const GROUP: usize = 256;

pub struct Creation {
    pub app_id: Uuid,
    pub subject: String,
    pub generation: i64,
    pub sealed: Vec<u8>,
    pub created_at: i64,
    /// Whether this key was stored (false: another writer's was first).
    pub reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// Starts the writer; it ends when every sender is dropped.
pub fn spawn(db: Db) -> mpsc::UnboundedSender<Creation> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Creation>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut group = vec![first];
            while group.len() < GROUP
                && let Ok(next) = rx.try_recv()
            {
                group.push(next);
            }
            match write(&db, &group).await {
                Ok(stored) => {
                    for (creation, stored) in group.into_iter().zip(stored) {
                        let _ = creation.reply.send(Ok(stored));
                    }
                }
                Err(e) => {
                    for creation in group {
                        let _ = creation.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    });
    tx
}

/// One transaction. Not synced on its own: the append sealed under each key
/// commits fully synced after it, in the same write-ahead log, which makes
/// this commit durable too; a key lost in a crash sealed nothing that was
/// committed.
async fn write(db: &Db, group: &[Creation]) -> Result<Vec<bool>, StoreError> {
    let mut tx = db.begin_relaxed().await?;
    let mut stored = Vec::with_capacity(group.len());
    for c in group {
        on_tx!(&mut tx, |conn| {
            let done = sqlx::query(
                "INSERT INTO subject_keys (app_id, subject, generation, sealed, created_at, forgotten_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT DO NOTHING",
            )
            .bind(c.app_id)
            .bind(c.subject.as_str())
            .bind(c.generation)
            .bind(c.sealed.as_slice())
            .bind(c.created_at)
            .execute(&mut *conn)
            .await?;
            stored.push(done.rows_affected() == 1);
        });
    }
    tx.commit().await?;
    Ok(stored)
}
