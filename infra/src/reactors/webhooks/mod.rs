//! Webhook delivery: Standard Webhooks signatures, a leased delivery queue
//! shared by every node, retries on a schedule, endpoints disabled when
//! they are gone, users marked when messages about them fail for good, and
//! an SSRF guard on every address.
//!
//! The queue itself is filled by the `webhooks` projection (one message per
//! event per endpoint, in the checkpoint's transaction); see
//! `projections::webhooks`. Design notes: `docs/webhooks.md`.

pub mod address;
pub mod callbacks;
pub mod jwe;
pub mod policy;
pub mod queue;
pub mod retention;
pub mod send;
pub mod signature;
pub mod worker;

use domain::ids::WebhookId;

/// The vault purpose of an endpoint's signing secrets.
pub const SIGNING: &str = "signing";
/// The vault purpose of an endpoint's receiver credential.
pub const AUTH: &str = "auth";

/// The vault owner of an endpoint's secrets.
pub fn owner(id: WebhookId) -> String {
    format!("webhook:{id}")
}
