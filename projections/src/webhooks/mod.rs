//! Webhooks as a projection: endpoints as last seen, and the delivery queue.
//!
//! Every integration event (device, user, notification) becomes one message
//! per enabled endpoint that wants its type, in the transaction that moves
//! the checkpoint: no event is skipped or queued twice, whatever crashes.
//! Endpoint events are applied in log order with the others, so an endpoint
//! receives exactly the events after its creation. The delivery reactor
//! (`infra::reactors::webhooks`) takes it from there; because these tables hold
//! delivery state, the model is not rebuildable (rebuilding would send every
//! message again).

pub mod callbacks;
pub mod context;
pub mod endpoints;
mod forget;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use self::callbacks::{IssueCallback, NewCallback};
use async_trait::async_trait;
use domain::RecordedEvent;
use domain::change_queue::{EventTypes, is_integration};
use domain::event::DomainEvent;
use domain::personal;
use domain::webhook::WebhookEvent;
use domain::webhook::settings::{EndpointUrl, Settings};
use domain::webhook::template::{CALLBACK_URL, Template};
use serde_json::json;
use uuid::Uuid;

use crate::db::{Tx, insert_chunks, values_list};
use crate::{Projection, ProjectionError, Unseal, on_tx};

pub const NAME: &str = "webhooks";
/// The actor of commands the webhook reactor issues.
pub const ACTOR: &str = "system:webhooks";

pub struct WebhooksProjection {
    unseal: Arc<dyn Unseal>,
    callbacks: Option<Arc<dyn IssueCallback>>,
}

impl WebhooksProjection {
    /// `unseal` opens the sealed values of the events a template's context
    /// is folded from; `callbacks` issues `{{callback.url}}`s (`None`: this
    /// node has no public URL, and the placeholder renders as `null`).
    pub fn new(unseal: Arc<dyn Unseal>, callbacks: Option<Arc<dyn IssueCallback>>) -> Self {
        Self { unseal, callbacks }
    }

    /// A callback URL for `target`'s message about `event`, if its
    /// template or URL asks for one and the event is about a user.
    fn callback_for(
        &self,
        target: &Target,
        event: &RecordedEvent,
        context: Option<&context::Context>,
        issued: &mut Vec<NewCallback>,
    ) -> Option<String> {
        if !target.uses_callback {
            return None;
        }
        let user = context?.get("user.id");
        let user = user.as_str()?;
        let Some(issuer) = &self.callbacks else {
            tracing::warn!(
                endpoint = %target.id,
                "{{{{callback.url}}}} renders as null: this node has no public URL (HERALD_PUBLIC_URL)"
            );
            return None;
        };
        let new = issuer.issue();
        issued.push(NewCallback {
            token_sha256: new.token_sha256,
            app_id: event.app_id.0,
            endpoint_id: target.id,
            message_id: event.event_id,
            user_id: user.to_owned(),
            created_at: event.recorded_at.timestamp_micros(),
        });
        Some(new.url)
    }
}

/// An endpoint as the fan-out needs it.
#[derive(Debug, Clone)]
struct Target {
    id: Uuid,
    enabled: bool,
    types: EventTypes,
    template: Option<Template>,
    /// The URL, when it holds placeholders (each message renders its own).
    url: Option<EndpointUrl>,
    /// GET, HEAD and DELETE send no body.
    has_body: bool,
    /// The template or the URL holds `{{callback.url}}`.
    uses_callback: bool,
}

impl Target {
    /// Whether a message needs the subject's context folded.
    fn needs_context(&self) -> bool {
        (self.has_body && self.template.is_some()) || self.url.is_some()
    }
}

/// One message ready to insert.
#[derive(Debug)]
pub struct NewMessage {
    pub endpoint_id: Uuid,
    pub message_id: Uuid,
    pub app_id: Uuid,
    pub seq: i64,
    pub event_type: String,
    pub user_id: Option<String>,
    pub from_webhooks: bool,
    pub body: String,
    /// The message's own URL, when the endpoint's holds placeholders.
    pub url: Option<String>,
    /// Microseconds since the epoch.
    pub created_at: i64,
}

impl crate::ReactorFeed for WebhooksProjection {}

#[async_trait]
impl Projection for WebhooksProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "webhook_endpoints",
            "webhook_messages",
            "webhook_attempts",
            "webhook_endpoint_state",
        ]
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type.starts_with("webhook.") || is_integration(event_type)
    }

    async fn apply(&self, tx: &mut Tx, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        let mut targets: HashMap<Uuid, Vec<Target>> = HashMap::new();
        let mut messages: Vec<NewMessage> = Vec::new();
        let mut issued: Vec<NewCallback> = Vec::new();
        for event in events {
            let app = event.app_id.0;
            let app_targets = match targets.entry(app) {
                Entry::Occupied(loaded) => loaded.into_mut(),
                Entry::Vacant(slot) => slot.insert(load_targets(tx, app).await?),
            };
            if event.event_type.starts_with("webhook.") {
                let decoded =
                    WebhookEvent::decode(&event.event_type, event.schema_version, &event.data)
                        .map_err(|e| ProjectionError::event(event, e))?;
                endpoints::apply(tx, event, &decoded).await?;
                apply_to_targets(app_targets, &decoded);
                continue;
            }
            if event.event_type == personal::FORGOTTEN {
                insert_messages(tx, &messages).await?;
                messages.clear();
                callbacks::insert(tx, &issued).await?;
                issued.clear();
                self.forget(tx, event, app_targets).await?;
            }
            let wanted: Vec<&Target> = app_targets
                .iter()
                .filter(|t| t.enabled && t.types.admits(&event.event_type))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let context = if wanted.iter().any(|t| t.needs_context()) {
                Some(context::load(tx, self.unseal.as_ref(), event).await?)
            } else {
                None
            };
            for target in wanted {
                let callback = self.callback_for(target, event, context.as_ref(), &mut issued);
                let (body, url) = render(target, event, context.as_ref(), callback.as_deref());
                messages.push(message_for(target.id, event, body, url));
            }
        }
        insert_messages(tx, &messages).await?;
        callbacks::insert(tx, &issued).await
    }
}

/// The body `target` gets for `event` (empty for a method without one),
/// and its own URL if the endpoint's has placeholders; `callback` is the
/// message's callback URL, if it has one.
fn render(
    target: &Target,
    event: &RecordedEvent,
    context: Option<&context::Context>,
    callback: Option<&str>,
) -> (String, Option<String>) {
    let webhook_id = target.id.to_string();
    let lookup = |name: &str| {
        if name == "webhook.id" {
            json!(webhook_id)
        } else if name == CALLBACK_URL {
            callback.map_or(serde_json::Value::Null, |url| json!(url))
        } else {
            context.map_or(serde_json::Value::Null, |ctx| ctx.get(name))
        }
    };
    let body = match (&target.template, context) {
        _ if !target.has_body => String::new(),
        (Some(template), Some(_)) => template.render(&lookup).to_string(),
        _ => default_body(event).to_string(),
    };
    (body, target.url.as_ref().map(|u| u.render(&lookup)))
}

/// `{"type", "timestamp", "data"}`: the Standard Webhooks payload shape.
pub fn default_body(event: &RecordedEvent) -> serde_json::Value {
    json!({
        "type": event.event_type,
        "timestamp": context::timestamp(event),
        "data": event.data,
    })
}

fn message_for(
    endpoint_id: Uuid,
    event: &RecordedEvent,
    body: String,
    url: Option<String>,
) -> NewMessage {
    let (kind, id) = context::subject(&event.stream);
    let from_webhooks = event
        .metadata
        .get("actor")
        .and_then(|a| a.as_str())
        .is_some_and(|a| a == ACTOR);
    NewMessage {
        endpoint_id,
        message_id: event.event_id,
        app_id: event.app_id.0,
        seq: event.position,
        event_type: event.event_type.clone(),
        user_id: (kind == "user").then(|| id.to_owned()),
        from_webhooks,
        body,
        url,
        created_at: event.recorded_at.timestamp_micros(),
    }
}

fn target_of(id: Uuid, settings: &Settings, enabled: bool) -> Target {
    Target {
        id,
        enabled,
        types: settings.event_types.clone(),
        template: settings.payload_template.clone(),
        url: settings
            .url
            .has_placeholders()
            .then(|| settings.url.clone()),
        has_body: settings.method.has_body(),
        uses_callback: settings.callback_field().is_some(),
    }
}

fn apply_to_targets(targets: &mut Vec<Target>, event: &WebhookEvent) {
    match event {
        WebhookEvent::Created {
            webhook_id,
            settings,
            ..
        } => {
            targets.retain(|t| t.id != webhook_id.0);
            targets.push(target_of(webhook_id.0, settings, true));
        }
        WebhookEvent::Updated {
            webhook_id,
            settings,
            ..
        } => {
            for t in targets.iter_mut().filter(|t| t.id == webhook_id.0) {
                *t = target_of(t.id, settings, t.enabled);
            }
        }
        WebhookEvent::Disabled { webhook_id, .. } | WebhookEvent::Enabled { webhook_id } => {
            let enabled = matches!(event, WebhookEvent::Enabled { .. });
            for t in targets.iter_mut().filter(|t| t.id == webhook_id.0) {
                t.enabled = enabled;
            }
        }
        WebhookEvent::Deleted { webhook_id } => targets.retain(|t| t.id != webhook_id.0),
        WebhookEvent::SecretRotated { .. } => {}
    }
}

async fn load_targets(tx: &mut Tx, app: Uuid) -> Result<Vec<Target>, ProjectionError> {
    let rows: Vec<(Uuid, String, bool)> = on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT webhook_id, settings, enabled FROM webhook_endpoints WHERE app_id = $1",
        )
        .bind(app)
        .fetch_all(c)
        .await?
    });
    rows.into_iter()
        .map(|(id, settings, enabled)| {
            let settings: Settings =
                serde_json::from_str(&settings).map_err(|e| ProjectionError::Event {
                    position: 0,
                    reason: format!("stored settings of webhook {id} are unreadable: {e}"),
                })?;
            Ok(target_of(id, &settings, enabled))
        })
        .collect()
}

/// Inserts messages (due at once), in statements small enough for
/// PostgreSQL. A message already queued is left as it is.
pub async fn insert_messages(tx: &mut Tx, messages: &[NewMessage]) -> Result<(), ProjectionError> {
    const COLUMNS: usize = 11;
    let backend = tx.backend();
    for chunk in insert_chunks(backend, messages, COLUMNS) {
        let sql = format!(
            "INSERT INTO webhook_messages (endpoint_id, message_id, app_id, seq, event_type, user_id, \
             from_webhooks, body, url, created_at, updated_at, status, attempts, next_attempt_at) VALUES {} \
             ON CONFLICT (endpoint_id, message_id) DO NOTHING",
            values_list(backend, chunk.len(), COLUMNS, ", 'pending', 0, 0")
        );
        on_tx!(tx, |c| {
            let mut query = sqlx::query(sql.as_str());
            for m in chunk {
                query = query
                    .bind(m.endpoint_id)
                    .bind(m.message_id)
                    .bind(m.app_id)
                    .bind(m.seq)
                    .bind(m.event_type.as_str())
                    .bind(m.user_id.as_deref())
                    .bind(m.from_webhooks)
                    .bind(m.body.as_str())
                    .bind(m.url.as_deref())
                    .bind(m.created_at)
                    .bind(m.created_at);
            }
            query.execute(c).await?;
        });
    }
    Ok(())
}
