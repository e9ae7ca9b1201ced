//! What a payload template's placeholders stand for, for one event.
//!
//! The subject (the user, device or notification the event is about) is
//! taken from the log itself: its stream folded up to and including the
//! event. So a message says what was true when the event happened, however
//! late it is rendered and whatever happened after. Only templated endpoints
//! pay for this read; the default body needs nothing but the event.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use domain::RecordedEvent;
use serde_json::{Value, json};

use crate::db::Tx;
use crate::{ProjectionError, Unseal, on_tx};

/// Placeholder name -> value, for one event.
#[derive(Debug, Default, Clone)]
pub struct Context(BTreeMap<&'static str, Value>);

impl Context {
    pub fn get(&self, name: &str) -> Value {
        self.0.get(name).cloned().unwrap_or(Value::Null)
    }

    fn set(&mut self, name: &'static str, value: Value) {
        self.0.insert(name, value);
    }

    /// Copies `data[key]` (when present) into `name`.
    fn take(&mut self, name: &'static str, data: &Value, key: &str) {
        if let Some(v) = data.get(key) {
            self.set(name, v.clone());
        }
    }
}

/// `device:d1` -> (`device`, `d1`).
pub fn subject(stream: &str) -> (&str, &str) {
    stream.split_once(':').unwrap_or((stream, ""))
}

/// The timestamp every message shows: RFC 3339, microseconds, `Z`.
pub fn timestamp(event: &RecordedEvent) -> String {
    event
        .recorded_at
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The context of `event`, its subject folded from the log.
pub async fn load(
    tx: &mut Tx,
    unseal: &dyn Unseal,
    event: &RecordedEvent,
) -> Result<Context, ProjectionError> {
    let mut ctx = Context::default();
    ctx.set("event.id", json!(event.event_id.to_string()));
    ctx.set("event.type", json!(event.event_type));
    ctx.set("event.timestamp", json!(timestamp(event)));
    ctx.set("event.position", json!(event.position));
    ctx.set("event.stream", json!(event.stream));
    ctx.set("event.data", event.data.clone());
    let (kind, id) = subject(&event.stream);
    let history: Vec<(String, String)> = on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT event_type, data FROM events \
             WHERE app_id = $1 AND stream = $2 AND position <= $3 ORDER BY stream_version",
        )
        .bind(event.app_id.0)
        .bind(&event.stream)
        .bind(event.position)
        .fetch_all(c)
        .await?
    });
    match kind {
        "user" => ctx.set("user.id", json!(id)),
        "device" => ctx.set("device.external_id", json!(id)),
        "notification" => ctx.set("notification.id", json!(id)),
        _ => {}
    }
    for (event_type, data) in history {
        let mut data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        unseal
            .open(event.app_id, &event.stream, &event_type, &mut data)
            .await?;
        fold(&mut ctx, &event_type, &data);
    }
    Ok(ctx)
}

/// Applies one event of the subject's stream to the context.
fn fold(ctx: &mut Context, event_type: &str, data: &Value) {
    match event_type {
        "user.created" | "user.updated" => {
            ctx.take("user.name", data, "name");
            ctx.take("user.email", data, "email");
            ctx.take("user.status", data, "status");
        }
        "user.status_updated" => ctx.take("user.status", data, "to"),
        "device.registered" | "device.updated" => {
            ctx.take("device.platform", data, "device_platform");
            ctx.take("device.send_platform", data, "send_platform");
            if event_type == "device.registered" {
                ctx.take("device.user_id", data, "user_id");
            }
        }
        "device.user_linked" => ctx.take("device.user_id", data, "user_id"),
        "device.user_unlinked" => ctx.set("device.user_id", Value::Null),
        t if t.starts_with("notification.") => {
            ctx.take("notification.title", data, "title");
            ctx.take("notification.status", data, "status");
        }
        _ => {}
    }
    // A device's user is the user its events are about.
    if let Some(user) = ctx.0.get("device.user_id").cloned() {
        ctx.set("user.id", user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_context_follows_its_user_link() {
        let mut ctx = Context::default();
        fold(
            &mut ctx,
            "device.registered",
            &json!({"device_platform": "ios", "send_platform": "apns", "user_id": null}),
        );
        assert_eq!(ctx.get("user.id"), Value::Null);
        fold(&mut ctx, "device.user_linked", &json!({"user_id": "u1"}));
        assert_eq!(
            (ctx.get("user.id"), ctx.get("device.platform")),
            (json!("u1"), json!("ios"))
        );
        fold(&mut ctx, "device.user_unlinked", &json!({"user_id": "u1"}));
        assert_eq!(ctx.get("device.user_id"), Value::Null);
    }

    #[test]
    fn a_user_context_keeps_the_latest_status() {
        let mut ctx = Context::default();
        fold(
            &mut ctx,
            "user.created",
            &json!({"name": "Ada", "email": null, "status": "active"}),
        );
        fold(
            &mut ctx,
            "user.status_updated",
            &json!({"from": "active", "to": "suspended"}),
        );
        fold(&mut ctx, "user.updated", &json!({"email": "a@b.c"}));
        assert_eq!(
            (
                ctx.get("user.name"),
                ctx.get("user.email"),
                ctx.get("user.status")
            ),
            (json!("Ada"), json!("a@b.c"), json!("suspended"))
        );
    }
}
