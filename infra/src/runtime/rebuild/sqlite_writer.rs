//! A bulk load into a SQLite shadow: the streams are folded on a thread of
//! their own, holding a rusqlite connection to the shadow file, and each
//! row is bound straight into a prepared `INSERT` (no copy, no hand-off
//! per row). The shadow runs with `synchronous = OFF`: a crash of the
//! machine may lose its last commits, never tear one (WAL), and the load
//! resumes from the last progress committed with its rows.

use std::path::PathBuf;
use std::sync::Arc;

use domain::StoredEvent;
use projections::bulk::{Cell, Rows, StreamFold};
use rusqlite::{CachedStatement, Connection};
use tokio::sync::{mpsc, oneshot};

use super::bulk::{Mark, StreamWriter, insert_sql};
use crate::runtime::RuntimeError;
use crate::store::StoreError;

enum Message {
    Streams(Vec<Vec<StoredEvent>>),
    Commit(Mark, oneshot::Sender<Result<(), String>>),
}

pub(super) struct SqliteWriter {
    messages: mpsc::Sender<Message>,
}

impl SqliteWriter {
    pub fn start(
        path: PathBuf,
        fold: Arc<dyn StreamFold>,
        model: &'static str,
        version: i32,
    ) -> Self {
        let (messages, inbox) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || run(&path, fold.as_ref(), model, version, inbox));
        Self { messages }
    }

    fn gone() -> RuntimeError {
        StoreError::Internal("the shadow's writer stopped".into()).into()
    }
}

#[async_trait::async_trait]
impl StreamWriter for SqliteWriter {
    async fn streams(&mut self, streams: Vec<Vec<StoredEvent>>) -> Result<(), RuntimeError> {
        self.messages
            .send(Message::Streams(streams))
            .await
            .map_err(|_| Self::gone())
    }

    async fn commit(&mut self, mark: Mark) -> Result<(), RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.messages
            .send(Message::Commit(mark, reply))
            .await
            .map_err(|_| Self::gone())?;
        answer
            .await
            .map_err(|_| Self::gone())?
            .map_err(|e| StoreError::Internal(format!("writing the shadow: {e}")).into())
    }
}

fn run(
    path: &PathBuf,
    fold: &dyn StreamFold,
    model: &'static str,
    version: i32,
    mut inbox: mpsc::Receiver<Message>,
) {
    let opened = Connection::open(path).and_then(|conn| {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(
            "PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY; \
             BEGIN IMMEDIATE",
        )?;
        Ok(conn)
    });
    let conn = match opened {
        Ok(conn) => conn,
        Err(e) => return refuse_all(&mut inbox, &e.to_string()),
    };
    let prepared: Result<Vec<CachedStatement<'_>>, _> = fold
        .tables()
        .iter()
        .map(|t| conn.prepare_cached(&insert_sql(t, "?")))
        .collect();
    let mut statements = match prepared {
        Ok(s) => s,
        Err(e) => return refuse_all(&mut inbox, &e.to_string()),
    };
    let mut folding = fold.start();
    let mut failure: Option<String> = None;
    while let Some(message) = inbox.blocking_recv() {
        match message {
            Message::Streams(streams) => {
                for events in &streams {
                    if failure.is_some() {
                        break;
                    }
                    let mut sink = Sink {
                        statements: &mut statements,
                        error: None,
                    };
                    let folded = folding.stream(events, &mut sink);
                    failure = folded.err().map(|e| e.to_string()).or(sink.error);
                }
            }
            Message::Commit(mark, reply) => {
                let done = match &failure {
                    Some(e) => Err(e.clone()),
                    None => commit(&conn, &mark, model, version).map_err(|e| e.to_string()),
                };
                let _ = reply.send(done);
            }
        }
    }
    drop(statements);
    // Whatever was not committed is not wanted.
    let _ = conn.execute_batch("ROLLBACK");
}

fn refuse_all(inbox: &mut mpsc::Receiver<Message>, error: &str) {
    while let Some(message) = inbox.blocking_recv() {
        if let Message::Commit(_, reply) = message {
            let _ = reply.send(Err(error.to_owned()));
        }
    }
}

fn commit(conn: &Connection, mark: &Mark, model: &str, version: i32) -> rusqlite::Result<()> {
    match mark {
        Mark::Stream { app, stream } => {
            conn.execute(
                "UPDATE rebuild_bulk SET app_id = ?1, stream = ?2 WHERE model = ?3",
                rusqlite::params![app.0.to_string(), stream, model],
            )?;
        }
        Mark::Done { snapshot, at } => {
            conn.execute(
                "UPDATE rebuild_bulk SET done = TRUE WHERE model = ?1",
                rusqlite::params![model],
            )?;
            conn.execute(
                "INSERT INTO projection_checkpoints (name, version, position, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
                 position = excluded.position, updated_at = excluded.updated_at",
                rusqlite::params![model, version, snapshot, at],
            )?;
        }
    }
    conn.execute_batch("COMMIT; BEGIN IMMEDIATE")
}

/// Binds each row into its table's prepared `INSERT` and runs it; the
/// first failure is kept (and the rest skipped).
struct Sink<'s, 'c> {
    statements: &'s mut [CachedStatement<'c>],
    error: Option<String>,
}

impl Rows for Sink<'_, '_> {
    fn row(&mut self, table: usize, cells: &[Cell<'_>]) {
        if self.error.is_some() {
            return;
        }
        let Some(statement) = self.statements.get_mut(table) else {
            self.error = Some(format!("no table {table}"));
            return;
        };
        let mut bound = Ok(());
        for (i, cell) in cells.iter().enumerate() {
            let at = i + 1;
            bound = match cell {
                Cell::Null => statement.raw_bind_parameter(at, rusqlite::types::Null),
                Cell::Int(v) => statement.raw_bind_parameter(at, v),
                Cell::Bool(b) => statement.raw_bind_parameter(at, i64::from(*b)),
                Cell::Text(t) => statement.raw_bind_parameter(at, t),
                Cell::Uuid(u) => statement.raw_bind_parameter(at, &u.as_bytes()[..]),
            };
            if bound.is_err() {
                break;
            }
        }
        if let Err(e) = bound.and_then(|()| statement.raw_execute().map(|_| ())) {
            self.error = Some(e.to_string());
        }
    }
}
