//! Planning one group-commit batch: given what the database holds now (read
//! under the write lock), decide for every request whether it is written,
//! refused, or answered from an earlier identical append, and compute the
//! rows (positions, timestamps, hash links) of those written.

use std::collections::{HashMap, HashSet};

use chrono::DateTime;
use domain::RecordedEvent;
use domain::envelope::{CanonicalFields, canonical_bytes, check_canonical};
use domain::ids::AppId;
use uuid::Uuid;

use super::chain::{GENESIS, Hash, link};
use super::rows::EventRow;
use super::{AppendRequest, Appended, StoreError};

/// An event id that is already stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredId {
    pub app_id: Uuid,
    pub stream: String,
    pub stream_version: i64,
    pub position: i64,
    pub recorded_at: i64,
    pub hash: Vec<u8>,
}

/// The database's state as far as a batch needs it.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub head: i64,
    pub last_recorded_at: i64,
    /// Current version of every stream the batch touches (0 = empty).
    pub versions: HashMap<(Uuid, String), i64>,
    /// Hash of the last event of every app the batch touches.
    pub chain_heads: HashMap<Uuid, Hash>,
    /// Which of the batch's event ids are stored already. `None` on the fast
    /// path, which skips that lookup: a request whose expectation fails there
    /// is deferred to the careful path, where a retry is recognised.
    pub existing: Option<HashMap<Uuid, StoredId>>,
}

#[derive(Debug)]
pub(crate) enum Planned {
    Written(Appended),
    /// An identical append was stored before: its original result.
    Replayed(Appended),
    /// Needs the careful path (fast path only).
    Deferred,
    Refused(StoreError),
}

/// Validates what can be checked without the database.
pub(crate) fn validate(request: &AppendRequest) -> Result<(), StoreError> {
    let invalid = |m: String| Err(StoreError::Invalid(m));
    if request.events.is_empty() {
        return invalid("an append needs at least one event".into());
    }
    if request.stream.is_empty() || request.stream.len() > 1024 {
        return invalid("stream names are 1 to 1024 bytes".into());
    }
    // What the log accepts, every backend and read model can store: the edge
    // refuses these first; this keeps any other caller from getting them in.
    let unstorable =
        |field: String, reason: &str| Err(StoreError::Unstorable(format!("{field}: {reason}")));
    if request.stream.contains('\0') {
        return unstorable("stream".into(), domain::storable::NUL_MESSAGE);
    }
    let m = &request.metadata;
    let texts = [
        ("metadata.actor", Some(&m.actor)),
        ("metadata.request_id", m.request_id.as_ref()),
        ("metadata.correlation_id", m.correlation_id.as_ref()),
        ("metadata.trace_id", m.trace_id.as_ref()),
    ];
    for (field, text) in texts {
        if text.is_some_and(|t| t.contains('\0')) {
            return unstorable(field.into(), domain::storable::NUL_MESSAGE);
        }
    }
    let mut ids = HashSet::new();
    for event in &request.events {
        if !ids.insert(event.event_id) {
            return invalid(format!("event id {} appears twice", event.event_id));
        }
        if event.event_type.is_empty() {
            return invalid("event types must not be empty".into());
        }
        if let Some((field, reason)) = domain::storable::find_unstorable(&event.data, "data") {
            return unstorable(field, reason);
        }
        check_canonical(&event.data).map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// What a batch writes: the rows to insert, the same events as readers will
/// see them once committed (for the recent-events cache), and each
/// request's outcome.
pub(crate) struct Plan {
    pub rows: Vec<EventRow>,
    pub events: Vec<RecordedEvent>,
    pub outcomes: Vec<Planned>,
}

/// What a committed batch did.
pub(crate) struct Committed {
    pub outcomes: Vec<Planned>,
    /// The head after the commit.
    pub head: i64,
    /// The events written, in position order.
    pub events: Vec<RecordedEvent>,
}

/// `refused`: requests refused before planning (their new key was taken),
/// by index in `batch`.
pub(crate) fn plan(
    batch: &[&AppendRequest],
    snapshot: &mut Snapshot,
    now_micros: i64,
    mut refused: Vec<Option<StoreError>>,
) -> Plan {
    let recorded_at = now_micros.max(snapshot.last_recorded_at);
    let mut rows = Vec::new();
    let mut events = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut ids_in_batch = HashSet::new();
    refused.resize(batch.len(), None);
    for (request, refused) in batch.iter().zip(refused) {
        if let Some(e) = refused {
            outcomes.push(Planned::Refused(e));
            continue;
        }
        let outcome = plan_one(
            request,
            snapshot,
            recorded_at,
            &mut ids_in_batch,
            (&mut rows, &mut events),
        );
        outcomes.push(outcome);
    }
    if !rows.is_empty() {
        snapshot.last_recorded_at = recorded_at;
    }
    Plan {
        rows,
        events,
        outcomes,
    }
}

fn plan_one(
    request: &AppendRequest,
    snapshot: &mut Snapshot,
    recorded_at: i64,
    ids_in_batch: &mut HashSet<Uuid>,
    (rows, events): (&mut Vec<EventRow>, &mut Vec<RecordedEvent>),
) -> Planned {
    if let Err(e) = validate(request) {
        return Planned::Refused(e);
    }
    let app = request.app_id().0;
    let key = (app, request.stream.clone());
    let current = snapshot.versions.get(&key).copied().unwrap_or(0);

    match &snapshot.existing {
        Some(existing) => {
            let found: Vec<&StoredId> = request
                .events
                .iter()
                .filter_map(|e| existing.get(&e.event_id))
                .collect();
            if !found.is_empty() {
                return replay(request, &found);
            }
        }
        None => {
            if request
                .events
                .iter()
                .any(|e| ids_in_batch.contains(&e.event_id))
            {
                return Planned::Deferred;
            }
        }
    }
    if !request.expected.admits(current) {
        if snapshot.existing.is_none() {
            return Planned::Deferred;
        }
        return Planned::Refused(StoreError::Conflict {
            stream: request.stream.clone(),
            expected: format!("{:?}", request.expected),
            actual: current,
        });
    }

    let metadata = match serde_json::to_value(&request.metadata) {
        Ok(m) => m,
        Err(e) => return Planned::Refused(StoreError::Invalid(e.to_string())),
    };
    let metadata_text = metadata.to_string();
    let at = DateTime::from_timestamp_micros(recorded_at).unwrap_or_default();
    let mut previous = snapshot.chain_heads.get(&app).copied().unwrap_or(GENESIS);
    let first_position = snapshot.head + 1;
    let start = rows.len();
    let mut hashes = Vec::with_capacity(request.events.len());
    for (i, event) in request.events.iter().enumerate() {
        let position = first_position + i as i64;
        let stream_version = current + 1 + i as i64;
        let canonical = canonical_bytes(&CanonicalFields {
            app_id: AppId(app),
            data: &event.data,
            event_id: event.event_id,
            event_type: &event.event_type,
            metadata: &metadata,
            position,
            recorded_at: at,
            schema_version: event.schema_version,
            stream: &request.stream,
            stream_version,
        });
        let canonical = match canonical {
            Ok(c) => c,
            Err(e) => {
                rows.truncate(start);
                events.truncate(start);
                return Planned::Refused(StoreError::Invalid(e.to_string()));
            }
        };
        previous = link(&previous, &canonical);
        hashes.push(hex::encode(previous));
        events.push(RecordedEvent {
            position,
            event_id: event.event_id,
            app_id: AppId(app),
            stream: request.stream.clone(),
            stream_version,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            data: event.data.clone(),
            metadata: metadata.clone(),
            recorded_at: at,
            hash: hashes[i].clone(),
        });
        rows.push(EventRow {
            position,
            event_id: event.event_id,
            app_id: app,
            stream: request.stream.clone(),
            stream_version,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            data: event.data.to_string(),
            metadata: metadata_text.clone(),
            recorded_at,
            hash: previous.to_vec(),
        });
    }
    let count = request.events.len() as i64;
    ids_in_batch.extend(request.events.iter().map(|e| e.event_id));
    snapshot.head += count;
    snapshot.chain_heads.insert(app, previous);
    snapshot.versions.insert(key, current + count);
    Planned::Written(Appended {
        first_position,
        last_position: first_position + count - 1,
        stream_version: current + count,
        recorded_at: at,
        hashes,
    })
}

/// Some of the request's ids are stored: it is a retry if all of them are,
/// in the same stream, in order; otherwise it is refused.
fn replay(request: &AppendRequest, found: &[&StoredId]) -> Planned {
    let app = request.app_id().0;
    let consistent = found.len() == request.events.len()
        && found
            .iter()
            .all(|s| s.app_id == app && s.stream == request.stream)
        && found.windows(2).all(|w| w[1].position == w[0].position + 1);
    match (consistent, found.first(), found.last()) {
        (true, Some(first), Some(last)) => Planned::Replayed(Appended {
            first_position: first.position,
            last_position: last.position,
            stream_version: last.stream_version,
            recorded_at: DateTime::from_timestamp_micros(first.recorded_at).unwrap_or_default(),
            hashes: found.iter().map(|s| hex::encode(&s.hash)).collect(),
        }),
        _ => Planned::Refused(StoreError::DuplicateEventIds),
    }
}
