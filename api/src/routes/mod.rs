//! Every route, each module owning its own. Routes are registered through
//! `OpenApiRouter`, so each one is in the OpenAPI document by construction.

mod admin;
mod api_keys;
mod apps;
mod audit;
mod callbacks;
pub use callbacks::PATH as CALLBACKS_PATH;
mod change_queues;
mod devices;
mod docs;
mod events;
mod flags;
mod forget;
pub use events::EventBody;
mod health;
mod history;
mod metrics;
mod nodes;
mod notifications;
pub mod openapi;
mod push_credentials;
mod schema;
mod usage;
mod users;
mod webhooks;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use self::openapi::BearerAuth;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Event-sourced devices, users, push campaigns and integrations."),
    modifiers(&BearerAuth),
    tags(
        (name = "apps", description = "Tenants (root token)"),
        (name = "api-keys", description = "An app's API keys"),
        (name = "devices", description = "Devices and their push tokens"),
        (name = "users", description = "Users and their devices"),
        (name = "events", description = "The log, for auditors"),
        (name = "change-queues", description = "Drain-on-fetch feeds of integration events"),
        (name = "webhooks", description = "Signed webhook endpoints and their deliveries"),
        (name = "notifications", description = "Push campaigns: target, launch, schedule, count"),
        (name = "feature-flags", description = "Feature flags and their evaluation for a device"),
        (name = "push", description = "Push provider credentials and usage"),
        (name = "operations", description = "Health and documentation"),
    )
)]
struct ApiDoc;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(apps::router())
        .merge(api_keys::router())
        .merge(devices::router())
        .merge(users::router())
        .merge(forget::router())
        .merge(history::router())
        .merge(flags::router())
        .merge(events::router())
        .merge(audit::router())
        .merge(admin::router())
        .merge(change_queues::router())
        .merge(webhooks::router())
        .merge(callbacks::router())
        .merge(notifications::router())
        .merge(push_credentials::router())
        .merge(usage::router())
        .merge(metrics::router())
        .merge(nodes::router())
        .merge(openapi::router())
        .merge(docs::router())
}
