//! New subjects' data keys, stored in the transaction of the append whose
//! values are sealed under them (`AppendRequest::new_key`): a new device or
//! user costs one write transaction, not two, and no key is ever stored
//! without the events that needed it (nor the events without their key).

use std::collections::{HashMap, HashSet};

use sqlx::{PgConnection, Postgres, QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::{AppendRequest, NewSubjectKey, StoreError};

/// Keys per INSERT statement (six parameters each).
const KEYS_PER_INSERT: usize = 500;

/// The batch's new keys, with the index of their request.
fn wanted<'a>(batch: &[&'a AppendRequest]) -> Vec<(usize, Uuid, &'a NewSubjectKey)> {
    batch
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.new_key.as_ref().map(|k| (i, r.app_id().0, k)))
        .collect()
}

/// A refusal for each request whose key generation is taken by another key.
fn refusals(
    count: usize,
    wanted: &[(usize, Uuid, &NewSubjectKey)],
    taken: &HashSet<usize>,
) -> Vec<Option<StoreError>> {
    let mut refused = vec![None; count];
    for (i, _, key) in wanted {
        if taken.contains(i) {
            refused[*i] = Some(StoreError::KeyTaken {
                subject: key.subject.clone(),
                generation: key.generation,
            });
        }
    }
    refused
}

/// Inserts the keys; one that was not inserted is still fine if the stored
/// key is this very one (a batch re-run on the careful path, or repeated on
/// a fresh connection).
macro_rules! store {
    ($db:ty, $conn:expr, $batch:expr) => {{
        let conn = $conn;
        let wanted = wanted($batch);
        let mut taken = HashSet::new();
        for chunk in wanted.chunks(KEYS_PER_INSERT) {
            let mut query: QueryBuilder<$db> = QueryBuilder::new(
                "INSERT INTO subject_keys (app_id, subject, generation, sealed, created_at, forgotten_at) ",
            );
            query.push_values(chunk, |mut row, (_, app, key)| {
                row.push_bind(*app)
                    .push_bind(key.subject.as_str())
                    .push_bind(key.generation)
                    .push_bind(key.sealed.as_slice())
                    .push_bind(key.created_at)
                    .push_bind(None::<i64>);
            });
            query.push(" ON CONFLICT DO NOTHING RETURNING app_id, subject, generation");
            let inserted: HashSet<(Uuid, String, i64)> = query
                .build_query_as::<(Uuid, String, i64)>()
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
            // Two requests of the batch may bring keys for the same subject
            // and generation: only one of them went in, so both are checked.
            let mut seen: HashMap<(Uuid, &str, i64), usize> = HashMap::new();
            for (_, app, key) in chunk {
                *seen.entry((*app, key.subject.as_str(), key.generation)).or_default() += 1;
            }
            for (i, app, key) in chunk {
                let alone = seen[&(*app, key.subject.as_str(), key.generation)] == 1;
                if alone && inserted.contains(&(*app, key.subject.clone(), key.generation)) {
                    continue;
                }
                let stored: Option<Option<Vec<u8>>> = sqlx::query_scalar(
                    "SELECT sealed FROM subject_keys WHERE app_id = $1 AND subject = $2 AND generation = $3",
                )
                .bind(*app)
                .bind(key.subject.as_str())
                .bind(key.generation)
                .fetch_optional(&mut *conn)
                .await?;
                if stored.flatten().as_deref() != Some(key.sealed.as_slice()) {
                    taken.insert(*i);
                }
            }
        }
        Ok(refusals($batch.len(), &wanted, &taken))
    }};
}

pub(crate) async fn store_sqlite(
    conn: &mut SqliteConnection,
    batch: &[&AppendRequest],
) -> Result<Vec<Option<StoreError>>, StoreError> {
    store!(Sqlite, conn, batch)
}

pub(crate) async fn store_postgres(
    conn: &mut PgConnection,
    batch: &[&AppendRequest],
) -> Result<Vec<Option<StoreError>>, StoreError> {
    store!(Postgres, conn, batch)
}
