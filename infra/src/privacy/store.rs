//! The log as every reader but the auditor's hash check sees it: personal
//! values sealed on the way in and opened on the way out.

use std::sync::Arc;

use async_trait::async_trait;
use domain::RecordedEvent;
use domain::ids::AppId;
use tokio::sync::watch;

use super::Personal;
use crate::store::{AppendRequest, Appended, EventFilter, EventStore, StoreError};

/// Appends sealed anew after a refused key, at most.
const KEY_ATTEMPTS: usize = 4;

pub struct SealedStore {
    inner: Arc<dyn EventStore>,
    personal: Arc<Personal>,
}

impl SealedStore {
    pub fn new(inner: Arc<dyn EventStore>, personal: Arc<Personal>) -> Self {
        Self { inner, personal }
    }

    /// The log as stored (sealed values and all): what the hash chain covers.
    pub fn stored(&self) -> &Arc<dyn EventStore> {
        &self.inner
    }

    async fn opened(
        &self,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.personal.open_all(&mut events).await?;
        Ok(events)
    }
}

#[async_trait]
impl EventStore for SealedStore {
    /// Seals, then appends. An append that brings its subject's new key
    /// and finds the generation taken (another writer made the subject's
    /// first key at the same moment) reads the stored keys and is sealed
    /// again under the stored one.
    async fn append(&self, mut request: AppendRequest) -> Result<Appended, StoreError> {
        for _ in 0..KEY_ATTEMPTS {
            let Some(sealed) = self.personal.seal(&mut request).await? else {
                return self.inner.append(request).await;
            };
            let app_id = request.app_id();
            match self.inner.append(request).await {
                Ok(appended) => {
                    self.personal.keys().created(app_id, &sealed.made);
                    return Ok(appended);
                }
                Err(StoreError::KeyTaken { .. }) => {
                    self.personal
                        .keys()
                        .subject(app_id, &sealed.subject, true)
                        .await?;
                    request = sealed.unsealed;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "other writers kept creating this subject's data key; try again".into(),
        ))
    }

    async fn read_stream(
        &self,
        app_id: AppId,
        stream: &str,
        from_version: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let page = self
            .inner
            .read_stream(app_id, stream, from_version, limit)
            .await?;
        self.opened(page).await
    }

    async fn load_stream(
        &self,
        app_id: AppId,
        stream: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.load_stream(app_id, stream).await?;
        self.opened(events).await
    }

    async fn read_all(&self, after: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let page = self.inner.read_all(after, limit).await?;
        self.opened(page).await
    }

    async fn read_recent(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Arc<RecordedEvent>>, StoreError> {
        let mut page = self.inner.read_recent(after, limit).await?;
        let refs: Vec<&RecordedEvent> = page.iter().map(Arc::as_ref).collect();
        self.personal.prepare(&refs).await?;
        for event in page.iter_mut().filter(|e| Personal::holds_sealed(e)) {
            let mut opened = RecordedEvent::clone(event);
            self.personal.open_event(&mut opened).await?;
            *event = Arc::new(opened);
        }
        Ok(page)
    }

    async fn read_app(
        &self,
        app_id: AppId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let page = self.inner.read_app(app_id, after, limit).await?;
        self.opened(page).await
    }

    async fn read_filtered(
        &self,
        app_id: AppId,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let page = self.inner.read_filtered(app_id, filter, limit).await?;
        self.opened(page).await
    }

    async fn open(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        self.personal.open_all(events).await
    }

    /// As stored: sealed values stay sealed (see `open_stored`).
    fn scan(&self, range: crate::store::scan::Range) -> crate::store::scan::Scan {
        self.inner.scan(range)
    }

    async fn head(&self) -> Result<i64, StoreError> {
        self.inner.head().await
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.subscribe()
    }
}
