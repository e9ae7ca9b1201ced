//! A bulk load into a PostgreSQL shadow: rows are written as `COPY` text
//! into a buffer per table, and each commit sends the buffers (`COPY …
//! FROM STDIN`) with the load's progress, in one transaction. A commit is
//! sent while the next streams are read and folded (the server parses and
//! stores rows while Herald folds the next ones); commits go one at a time
//! and in order, and the last one is waited for.

use std::sync::Arc;

use domain::StoredEvent;
use projections::bulk::{Cell, Folding, Rows, StreamFold, Table};
use projections::db::Tx;
use sqlx::PgPool;

use super::bulk::{Mark, StreamWriter};
use crate::runtime::RuntimeError;
use crate::runtime::checkpoints::write as write_checkpoint;

pub(super) struct PgWriter {
    pool: PgPool,
    fold: Arc<dyn StreamFold>,
    folding: Box<dyn Folding>,
    buffers: Vec<Vec<u8>>,
    model: &'static str,
    version: i32,
    /// The commit being sent.
    sending: Option<tokio::task::JoinHandle<Result<(), RuntimeError>>>,
}

impl PgWriter {
    pub fn start(
        pool: PgPool,
        fold: Arc<dyn StreamFold>,
        model: &'static str,
        version: i32,
    ) -> Self {
        Self {
            pool,
            folding: fold.start(),
            buffers: vec![Vec::new(); fold.tables().len()],
            fold,
            model,
            version,
            sending: None,
        }
    }

    /// Waits for the commit being sent; its error is the load's.
    async fn sent(&mut self) -> Result<(), RuntimeError> {
        match self.sending.take() {
            Some(task) => task.await.map_err(|e| {
                crate::store::StoreError::Internal(format!("a bulk commit stopped: {e}"))
            })?,
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl StreamWriter for PgWriter {
    async fn streams(&mut self, streams: Vec<Vec<StoredEvent>>) -> Result<(), RuntimeError> {
        let mut sink = CopyText {
            buffers: &mut self.buffers,
        };
        for events in &streams {
            self.folding.stream(events, &mut sink)?;
        }
        Ok(())
    }

    async fn commit(&mut self, mark: Mark) -> Result<(), RuntimeError> {
        self.sent().await?;
        let buffers = self
            .buffers
            .iter_mut()
            .map(|b| std::mem::replace(b, Vec::with_capacity(b.capacity())))
            .collect();
        let done = matches!(mark, Mark::Done { .. });
        let commit = Commit {
            tables: self.fold.tables(),
            buffers,
            model: self.model,
            version: self.version,
            mark,
        };
        self.sending = Some(tokio::spawn(commit.send(self.pool.clone())));
        if done {
            self.sent().await?;
        }
        Ok(())
    }
}

/// A load given up (an error, a cancelled rebuild) stops its commit in
/// flight: rolled back, or committed already with its mark (a commit is
/// always its rows and its progress together, so the next run resumes
/// right either way).
impl Drop for PgWriter {
    fn drop(&mut self) {
        if let Some(task) = self.sending.take() {
            task.abort();
        }
    }
}

/// Rows folded since the last commit, and how far they go.
struct Commit {
    tables: &'static [Table],
    buffers: Vec<Vec<u8>>,
    model: &'static str,
    version: i32,
    mark: Mark,
}

impl Commit {
    async fn send(self, pool: PgPool) -> Result<(), RuntimeError> {
        let mut tx = projections::db::pg_begin(&pool).await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        for (table, buffer) in self.tables.iter().zip(self.buffers) {
            if buffer.is_empty() {
                continue;
            }
            let mut copy = tx
                .copy_in_raw(&format!(
                    "COPY {} ({}) FROM STDIN",
                    table.name,
                    table.columns.join(", ")
                ))
                .await?;
            copy.send(buffer).await?;
            copy.finish().await?;
        }
        let mut tx = Tx::Pg(tx);
        match &self.mark {
            Mark::Stream { app, stream } => {
                projections::on_tx!(&mut tx, |c| {
                    sqlx::query(
                        "UPDATE rebuild_bulk SET app_id = $1, stream = $2 WHERE model = $3",
                    )
                    .bind(app.0.to_string())
                    .bind(stream)
                    .bind(self.model)
                    .execute(c)
                    .await?;
                });
            }
            Mark::Done { snapshot, at } => {
                projections::on_tx!(&mut tx, |c| {
                    sqlx::query("UPDATE rebuild_bulk SET done = TRUE WHERE model = $1")
                        .bind(self.model)
                        .execute(c)
                        .await?;
                });
                let at = chrono::DateTime::from_timestamp_micros(*at).unwrap_or_default();
                write_checkpoint(&mut tx, self.model, self.version, *snapshot, at).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Rows as `COPY` text: tab between columns, a newline after each row,
/// `\N` for NULL, backslash escapes for the characters the format gives a
/// meaning to.
struct CopyText<'b> {
    buffers: &'b mut [Vec<u8>],
}

impl Rows for CopyText<'_> {
    fn row(&mut self, table: usize, cells: &[Cell<'_>]) {
        let Some(out) = self.buffers.get_mut(table) else {
            return;
        };
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match cell {
                Cell::Null => out.extend_from_slice(b"\\N"),
                Cell::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
                Cell::Bool(b) => out.push(if *b { b't' } else { b'f' }),
                Cell::Uuid(u) => {
                    let mut buffer = uuid::Uuid::encode_buffer();
                    out.extend_from_slice(u.hyphenated().encode_lower(&mut buffer).as_bytes());
                }
                Cell::Text(t) => escape(out, t),
            }
        }
        out.push(b'\n');
    }
}

fn escape(out: &mut Vec<u8>, text: &str) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_the_format_reads_specially() {
        let mut buffers = vec![Vec::new()];
        let mut sink = CopyText {
            buffers: &mut buffers,
        };
        sink.row(
            0,
            &[
                Cell::Int(-7),
                Cell::Null,
                Cell::Bool(true),
                Cell::Text("a\tb\\c\nd\re \\N"),
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&buffers[0]),
            "-7\t\\N\tt\ta\\tb\\\\c\\nd\\re \\\\N\n"
        );
    }
}
