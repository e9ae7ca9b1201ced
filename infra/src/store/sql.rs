//! The event store over either database: reads are plain SQL shared by both
//! backends; appends go through the group-commit appender with the
//! backend's batch writer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::RecordedEvent;
use domain::ids::AppId;
use projections::db::Db;
use projections::on_db;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::appender::{Appender, BatchWriter, advance};
use super::loader::Loader;
use super::postgres::{PgWriter, listen, names};
use super::recent::Recent;
use super::sqlite::SqliteWriter;
use super::{AppendRequest, Appended, EventFilter, EventStore, StoreError, filter, rows};
use crate::clock::Clock;
use crate::metrics::AppendMetrics;

/// How often the head is re-read, to notice other processes' appends where
/// no notification arrives (SQLite, or a lost PostgreSQL listener).
const HEAD_POLL: Duration = Duration::from_millis(500);

pub struct SqlEventStore {
    db: Db,
    appender: Appender,
    loader: Loader,
    recent: Arc<Recent>,
    head: watch::Sender<i64>,
    tasks: Vec<JoinHandle<()>>,
    metrics: Arc<AppendMetrics>,
}

impl Drop for SqlEventStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl SqlEventStore {
    /// Opens the store on a migrated database and starts its background
    /// tasks; events are stamped by the system clock.
    pub async fn open(db: Db) -> Result<Self, StoreError> {
        Self::open_with_clock(db, crate::clock::system()).await
    }

    /// Opens the store with the clock that stamps `recorded_at` (Herald's
    /// configured clock, so that a test's manual clock is the log's time).
    pub async fn open_with_clock(db: Db, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let head = watch::Sender::new(read_head(&db).await?);
        let mut tasks = Vec::new();
        let writer: Arc<dyn BatchWriter> = match &db {
            Db::Sqlite(s) => Arc::new(SqliteWriter {
                pool: s.writer.clone(),
                write_lock: s.write_lock.clone(),
                clock: clock.clone(),
            }),
            Db::Postgres(p) => {
                let (lock_key, channel) = names(&p.schema);
                tasks.push(tokio::spawn(listen(
                    p.pool.clone(),
                    channel.clone(),
                    head.clone(),
                )));
                Arc::new(PgWriter::new(
                    p.pool.clone(),
                    lock_key,
                    channel,
                    clock.clone(),
                ))
            }
        };
        tasks.push(tokio::spawn(poll_head(db.clone(), head.clone())));
        let recent = Arc::new(Recent::default());
        let metrics = Arc::new(AppendMetrics::default());
        let appender = Appender::spawn(writer, head.clone(), recent.clone(), metrics.clone());
        let (loader, grouping) = Loader::start(db.clone());
        tasks.push(grouping);
        Ok(Self {
            db,
            appender,
            loader,
            recent,
            head,
            tasks,
            metrics,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// What the appender has done so far (for `/metrics`).
    pub fn metrics(&self) -> &Arc<AppendMetrics> {
        &self.metrics
    }
}

async fn read_head(db: &Db) -> Result<i64, StoreError> {
    let head: Option<i64> = on_db!(db, |pool| {
        sqlx::query_scalar("SELECT MAX(position) FROM events")
            .fetch_one(pool)
            .await?
    });
    Ok(head.unwrap_or(0))
}

async fn poll_head(db: Db, head: watch::Sender<i64>) {
    loop {
        tokio::time::sleep(HEAD_POLL).await;
        if let Ok(position) = read_head(&db).await {
            advance(&head, position);
        }
    }
}

#[async_trait]
impl EventStore for SqlEventStore {
    #[tracing::instrument(skip_all, fields(stream = %request.stream, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        self.appender.append(request).await
    }

    /// In a group with the loads asked for at the same moment (`loader`).
    async fn load_stream(
        &self,
        app_id: AppId,
        stream: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.loader.load(app_id, stream).await
    }

    async fn read_stream(
        &self,
        app_id: AppId,
        stream: &str,
        from_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_db!(&self.db, |pool| {
            let rows = sqlx::query(concat!(
                rows::select_events!(),
                "WHERE app_id = $1 AND stream = $2 AND stream_version >= $3 \
                 ORDER BY stream_version LIMIT $4"
            ))
            .bind(app_id.0)
            .bind(stream)
            .bind(from_version)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(rows::decode).collect()
        })
    }

    async fn read_all(&self, after: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_db!(&self.db, |pool| {
            let rows = sqlx::query(rows::READ_AFTER)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(rows::decode).collect()
        })
    }

    async fn read_recent(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
        if let Some(cached) = self.recent.after(after, limit) {
            return Ok(cached);
        }
        // Up to the cached run only: the rest comes from memory next time.
        let limit = match self.recent.first() {
            Some(first) if first > after + 1 => limit.min((first - after - 1) as usize),
            _ => limit,
        };
        Ok(self
            .read_all(after, limit)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect())
    }

    async fn read_app(
        &self,
        app_id: AppId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let filter = EventFilter {
            after,
            ..EventFilter::default()
        };
        filter::read(&self.db, app_id, &filter, limit).await
    }

    async fn read_filtered(
        &self,
        app_id: AppId,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        filter::read(&self.db, app_id, filter, limit).await
    }

    fn scan(&self, range: super::scan::Range) -> super::scan::Scan {
        super::scan::scan(&self.db, range)
    }

    async fn head(&self) -> Result<i64, StoreError> {
        let head = read_head(&self.db).await?;
        advance(&self.head, head);
        Ok(head)
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }
}
