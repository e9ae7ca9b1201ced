//! `GET /v1/events/live`: a Server-Sent Events tail of the app's log. Each
//! event's SSE `id` is its position, so a reconnecting client resumes with
//! `Last-Event-ID`; the same filters as `GET /v1/events` apply.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use domain::RecordedEvent;
use domain::ids::AppId;
use futures::Stream;
use infra::store::{EventFilter, EventStore};
use tokio::sync::watch;

use super::{EventBody, EventsQuery, TypeParam};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppQuery, Audit, Key};
use crate::state::AppState;

const PAGE: usize = 200;
/// Pause before reading again after the database failed.
const RETRY: Duration = Duration::from_secs(1);

struct Tail {
    store: Arc<dyn EventStore>,
    app_id: AppId,
    filter: EventFilter,
    buffer: VecDeque<RecordedEvent>,
    wake: watch::Receiver<i64>,
    stopping: watch::Receiver<bool>,
}

impl Tail {
    /// The next event, waiting for one; `None` when the server stops.
    async fn next(&mut self) -> Option<RecordedEvent> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(event);
            }
            if *self.stopping.borrow() {
                return None;
            }
            // Everything at or below `seen` was committed before the read
            // below starts (positions commit in order), so an empty page
            // lets the filter skip past it.
            let seen = *self.wake.borrow_and_update();
            match self
                .store
                .read_filtered(self.app_id, &self.filter, PAGE)
                .await
            {
                Ok(page) if !page.is_empty() => {
                    self.filter.after = page.last().map_or(self.filter.after, |e| e.position);
                    self.buffer.extend(page);
                }
                Ok(_) => {
                    self.filter.after = self.filter.after.max(seen);
                    tokio::select! {
                        changed = self.wake.changed() => changed.ok()?,
                        _ = self.stopping.wait_for(|s| *s) => return None,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live tail: reading the log failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = self.stopping.wait_for(|s| *s) => return None,
                    }
                }
            }
        }
    }
}

/// A live tail of the app's log (Server-Sent Events). Resumes after the
/// position in `Last-Event-ID`, else after `after`.
#[utoipa::path(get, path = "/v1/events/live", tag = "events", security(("bearer" = [])),
    params(EventsQuery, TypeParam,
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "resume after this position")),
    responses(
        (status = 200, description = "`text/event-stream`; each event's `id` is its position, `event` its type, `data` the envelope", content_type = "text/event-stream"),
    ))]
pub(super) async fn live_events(
    State(state): State<AppState>,
    key: Key<Audit>,
    uri: Uri,
    headers: HeaderMap,
    AppQuery(query): AppQuery<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let mut filter = query.filter(uri.query())?;
    if let Some(raw) = headers.get("last-event-id") {
        filter.after = raw
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|p| *p >= 0)
            .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be a log position"))?;
    }
    let tail = Tail {
        store: state.services.log.store().clone(),
        app_id: key.app_id,
        filter,
        buffer: VecDeque::new(),
        wake: state.services.log.store().subscribe(),
        stopping: state.stopping.clone(),
    };
    let events = futures::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        let sse = Event::default()
            .id(event.position.to_string())
            .event(event.event_type.clone())
            .json_data(EventBody::from(event))
            .unwrap_or_else(|_| Event::default().comment("unencodable event"));
        Some((Ok(sse), tail))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
