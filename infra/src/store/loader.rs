//! Whole-stream reads in groups: the commands that load a stream at the
//! same moment share one query (as the appender groups their appends).
//! Under 64 concurrent writers that is one round trip, and one statement
//! for the database to plan and run, for dozens of loads instead of one
//! each. A load that finds nobody else waiting runs at once, alone.
//!
//! A load still sees every append acknowledged before it was asked for:
//! its group's query starts after that.

use std::collections::HashMap;
use std::sync::Arc;

use domain::RecordedEvent;
use domain::ids::AppId;
use projections::db::Db;
use sqlx::QueryBuilder;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{StoreError, rows};

/// Streams read by one query at most.
const GROUP: usize = 64;

/// Group queries running at once; loads asked meanwhile wait for a turn
/// and form the next groups.
const RUNNING: usize = 4;

type Reply = oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>;

struct Load {
    app_id: AppId,
    stream: String,
    reply: Reply,
}

pub(crate) struct Loader {
    loads: mpsc::UnboundedSender<Load>,
}

impl Loader {
    /// Starts the task that groups the loads; it ends with the loader.
    pub fn start(db: Db) -> (Self, JoinHandle<()>) {
        let (loads, queue) = mpsc::unbounded_channel();
        (Self { loads }, tokio::spawn(group(db, queue)))
    }

    /// Every event of one stream, in order.
    pub async fn load(
        &self,
        app_id: AppId,
        stream: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let load = Load {
            app_id,
            stream: stream.to_owned(),
            reply,
        };
        let gone = || StoreError::Unavailable("the store is shutting down".into());
        self.loads.send(load).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn group(db: Db, mut queue: mpsc::UnboundedReceiver<Load>) {
    let running = Arc::new(Semaphore::new(RUNNING));
    while let Some(first) = queue.recv().await {
        let Ok(turn) = running.clone().acquire_owned().await else {
            return;
        };
        let mut loads = vec![first];
        while loads.len() < GROUP {
            match queue.try_recv() {
                Ok(load) => loads.push(load),
                Err(_) => break,
            }
        }
        let db = db.clone();
        tokio::spawn(async move {
            answer(&db, loads).await;
            drop(turn);
        });
    }
}

/// Reads the streams of `loads` in one query and answers each.
async fn answer(db: &Db, loads: Vec<Load>) {
    let mut waiting: HashMap<(Uuid, String), Vec<Reply>> = HashMap::new();
    for load in loads {
        waiting
            .entry((load.app_id.0, load.stream))
            .or_default()
            .push(load.reply);
    }
    let wanted: Vec<(Uuid, &str)> = waiting.keys().map(|(a, s)| (*a, s.as_str())).collect();
    let mut read = read(db, &wanted).await;
    for (key, mut replies) in waiting {
        let events = match &mut read {
            Ok(found) => Ok(found.remove(&key).unwrap_or_default()),
            Err(e) => Err(e.clone()),
        };
        // A stream asked for more than once: a copy for each but the last.
        let last = replies.pop();
        for reply in replies {
            let _ = reply.send(events.clone());
        }
        if let Some(reply) = last {
            let _ = reply.send(events);
        }
    }
}

type Streams = HashMap<(Uuid, String), Vec<RecordedEvent>>;

async fn read(db: &Db, wanted: &[(Uuid, &str)]) -> Result<Streams, StoreError> {
    let events: Vec<RecordedEvent> = match db {
        Db::Sqlite(s) => {
            // Each term is one range of the (app_id, stream, stream_version) index.
            let mut query = QueryBuilder::new(rows::select_events!());
            query.push("WHERE ");
            for (i, (app, stream)) in wanted.iter().enumerate() {
                if i > 0 {
                    query.push(" OR ");
                }
                query.push("(app_id = ");
                query.push_bind(*app);
                query.push(" AND stream = ");
                query.push_bind(*stream);
                query.push(")");
            }
            let found = query.build().fetch_all(&s.reader).await?;
            found.iter().map(rows::decode).collect::<Result<_, _>>()?
        }
        Db::Postgres(p) => {
            let (apps, streams): (Vec<Uuid>, Vec<&str>) = wanted.iter().copied().unzip();
            let found = sqlx::query(concat!(
                rows::select_events!(),
                "WHERE (app_id, stream) IN (SELECT * FROM UNNEST($1::uuid[], $2::text[]))"
            ))
            .bind(&apps)
            .bind(&streams)
            .fetch_all(&p.pool)
            .await?;
            found.iter().map(rows::decode).collect::<Result<_, _>>()?
        }
    };
    let mut streams = Streams::new();
    for event in events {
        streams
            .entry((event.app_id.0, event.stream.clone()))
            .or_default()
            .push(event);
    }
    for events in streams.values_mut() {
        events.sort_unstable_by_key(|e| e.stream_version);
    }
    Ok(streams)
}
