//! Schema-only types: how the OpenAPI document describes values the handlers
//! take as plain strings or JSON and check themselves with the domain's
//! rules. Nothing is ever built from these; each mirrors a rule of `domain`
//! (named in its doc) so that clients and fuzzers can know it.
#![allow(dead_code)]

mod values;

use utoipa::{PartialSchema, ToSchema};

use utoipa::openapi::schema::Components;

pub use self::values::{
    device_platform_input, nullable_condition, nullable_property_patch, nullable_webhook_headers,
    properties, property_patch, send_platform_input, webhook_headers,
};

/// Adds the components that no body refers to, so utoipa does not collect
/// them: the JSON Schema ones, and those only parameters use.
pub fn register(components: &mut Components) {
    values::register(components);
    components.schemas.insert(
        NotificationOrder::name().into_owned(),
        NotificationOrder::schema(),
    );
}

/// A client-chosen id (`external_id`, `user_id`): 1 to 255 **bytes** of
/// UTF-8, any characters, kept exactly as sent (`maxLength` counts
/// characters, so a non-ASCII id reaches the byte limit sooner).
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 255)]
pub struct ClientId(String);

/// A push provider (`domain::platform::SendPlatform`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SendPlatform {
    Fcm,
    Apns,
    Webpush,
}

/// A device's platform (`domain::platform::DevicePlatform`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum DevicePlatform {
    Android,
    Ios,
    Web,
}

/// An API key's role (`domain::role::Role`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Write,
    Read,
    Audit,
    /// Alone on its key: evaluate flags, register the caller's own device.
    Client,
}

/// A user's status (`domain::user::UserStatus`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Pending,
    Suspended,
    WebhookError,
}

/// A notification's status (`domain::notification::Status`; `deleted` is
/// shown only in the answer to `PUT …/status` with `deleted`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum NotificationStatus {
    Draft,
    Queued,
    Launched,
    Sending,
    Sent,
    Error,
    Canceled,
    Deleted,
}

/// A status to move a notification to by hand: `launched`, `canceled`,
/// `draft` (a queued one back to draft) or `deleted`; the others are
/// reached by sending and answer 409.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum NotificationTarget {
    Draft,
    Queued,
    Launched,
    Sending,
    Sent,
    Error,
    Canceled,
    Deleted,
}

/// How a notification list is ordered: 1 to 4 distinct fields of
/// `created_at`, `updated_at`, `scheduled_at` (scheduled ones by time, then
/// the rest) and `status`, comma-separated, each optionally prefixed with
/// `-` for descending, e.g. `status,-created_at`. Ties go by id.
#[derive(ToSchema)]
#[schema(
    pattern = "^-?(created_at|updated_at|scheduled_at|status)(,-?(created_at|updated_at|scheduled_at|status)){0,3}$",
    example = "status,-created_at"
)]
pub struct NotificationOrder(String);

/// A notification's priority with the providers.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Priority {
    High,
    Normal,
}

/// What became of a notification on one device.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    Delivered,
    Failed,
    InvalidToken,
}

/// The HTTP method webhook messages are sent with.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Post,
    Put,
    Patch,
    Get,
    Head,
    Delete,
}

/// A delivery attempt's outcome.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AttemptStatus {
    Succeeded,
    Failed,
}

/// How Herald authenticates to a webhook receiver.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AuthKind {
    Bearer,
    Basic,
    Header,
}

/// What a change is about.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SubjectKind {
    Device,
    User,
    Notification,
    FeatureFlag,
}

/// A change queue's name: 1-64 characters of a-z, 0-9, `_` and `-`.
#[derive(ToSchema)]
#[schema(pattern = "^[a-z0-9_-]{1,64}$")]
pub struct QueueName(String);
