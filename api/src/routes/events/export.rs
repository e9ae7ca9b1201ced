//! `GET /v1/events/export`: the app's log as NDJSON, one full envelope per
//! line, streamed page by page. An export from the app's first event can be
//! checked offline with `docs/verify_export.py`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use domain::ids::AppId;
use infra::privacy::Personal;
use infra::store::{EventFilter, EventStore, StoreError};
use tokio::sync::watch;

use super::{EventBody, EventsQuery, TypeParam};
use crate::error::ApiResult;
use crate::extract::{AppQuery, Audit, Key};
use crate::state::AppState;

const PAGE: usize = 2000;

struct Export {
    /// As stored: the export verifies against its hashes.
    store: Arc<dyn EventStore>,
    personal: Arc<Personal>,
    app_id: AppId,
    filter: EventFilter,
    stopping: watch::Receiver<bool>,
    done: bool,
}

impl Export {
    /// The next page as NDJSON; `None` at the end.
    async fn next(&mut self) -> Option<Result<Bytes, StoreError>> {
        if self.done || *self.stopping.borrow() {
            return None;
        }
        let page = match self
            .store
            .read_filtered(self.app_id, &self.filter, PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                // The client sees a truncated body rather than a clean end.
                self.done = true;
                return Some(Err(e));
            }
        };
        let last = page.last()?.position;
        self.done = page.len() < PAGE;
        self.filter.after = last;
        let opened = match self.personal.opened_bodies(&page).await {
            Ok(opened) => opened,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let mut out = Vec::with_capacity(page.len() * 512);
        for (event, opened) in page.into_iter().zip(opened) {
            if serde_json::to_writer(&mut out, &EventBody::exported(event, opened)).is_ok() {
                out.push(b'\n');
            }
        }
        Some(Ok(Bytes::from(out)))
    }
}

/// The app's events as NDJSON (`application/x-ndjson`), oldest first. Takes
/// the same filters as `GET /v1/events`; `since` / `until` bound the
/// recorded time.
#[utoipa::path(get, path = "/v1/events/export", tag = "events", security(("bearer" = [])),
    params(EventsQuery, TypeParam),
    responses(
        (status = 200, description = "one event envelope per line", content_type = "application/x-ndjson"),
    ))]
pub(super) async fn export_events(
    State(state): State<AppState>,
    key: Key<Audit>,
    uri: Uri,
    AppQuery(query): AppQuery<EventsQuery>,
) -> ApiResult<Response> {
    let export = Export {
        store: state.services.log.stored().clone(),
        personal: state.services.log.personal().clone(),
        app_id: key.app_id,
        filter: query.filter(uri.query())?,
        stopping: state.stopping.clone(),
        done: false,
    };
    let body = futures::stream::unfold(export, |mut export| async move {
        let chunk = export.next().await?;
        Some((chunk, export))
    });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}
