//! A receiver calling back: `POST /v1/callbacks/{token}` with a status
//! sets the status of the user the message was about, as a command of its
//! own actor (`callback:<endpoint id>`, caused by the message's event).
//!
//! A token is good once, within the TTL after its message was last sent.
//! Using it is three steps, so that no failure loses a use or allows two:
//! the token is claimed for the status asked (`claim`), the command runs,
//! the token is spent (`spend`). A refused command releases the token
//! unchanged; a database failure in between leaves it claimed for that
//! status, and the receiver's retry with the same status finishes the use
//! once the first is surely over ([`USE_LEASE`]; setting a status twice
//! changes nothing the second time). Two uses at once: one wins, the other
//! is refused.

use std::sync::Arc;
use std::time::Duration;

use domain::DomainError;
use domain::ids::{AppId, UserId};
use domain::user::UserStatus;
use projections::db::Db;
use projections::webhooks::callbacks::{self, Callback};

use super::RequestContext;
use super::users::Users;
use crate::clock::Clock;
use crate::reactors::webhooks::callbacks::well_formed;
use crate::runtime::commands::CommandError;
use crate::secrets::sha256_hex;

/// What a use did.
#[derive(Debug)]
pub struct CalledBack {
    pub user_id: String,
    pub status: UserStatus,
}

/// Why a callback URL cannot be used (any other failure is the command's).
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// No such token (never issued, or withdrawn when its user was
    /// forgotten): 404.
    #[error("no such callback URL")]
    Unknown,
    /// Issued, but used, expired, or its endpoint deleted: 410.
    #[error("{0}")]
    Gone(&'static str),
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl From<sqlx::Error> for CallbackError {
    fn from(e: sqlx::Error) -> Self {
        Self::Command(e.into())
    }
}

/// How long a use under way holds its token: past this, a use that began
/// and was never recorded (its node died) may be finished by a retry with
/// the same status. Well beyond what the command and its read-your-writes
/// wait can take.
const USE_LEASE: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Callbacks {
    db: Db,
    users: Users,
    clock: Arc<dyn Clock>,
    ttl: Duration,
}

impl Callbacks {
    pub fn new(db: Db, users: Users, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            db,
            users,
            clock,
            ttl,
        }
    }

    /// Uses the callback URL whose token is `token` to set its user's
    /// status (`reason` recorded with it).
    pub async fn call(
        &self,
        ctx: &RequestContext,
        token: &str,
        status: UserStatus,
        reason: Option<String>,
    ) -> Result<CalledBack, CallbackError> {
        if !well_formed(token) {
            return Err(CallbackError::Unknown);
        }
        let hash = sha256_hex(token.as_bytes());
        let found = callbacks::find(&self.db, &hash)
            .await?
            .ok_or(CallbackError::Unknown)?;
        self.usable(&found, status)?;
        let now = self.clock.now();
        let stale = now - chrono::Duration::from_std(USE_LEASE).unwrap_or_default();
        if !callbacks::claim(&self.db, &hash, status.as_str(), now, stale).await? {
            return Err(CallbackError::Gone("this callback URL has been used"));
        }
        let user_id = UserId::parse(found.user_id.clone()).map_err(CommandError::from)?;
        let mut caller = ctx.clone();
        caller.actor = format!("callback:{}", found.endpoint_id);
        caller.causation_id = Some(found.message_id);
        let set = self
            .users
            .set_status(&caller, AppId(found.app_id), user_id, status, reason)
            .await;
        match set {
            Ok(_) => {}
            Err(e @ (CommandError::Domain(_) | CommandError::Conflict)) => {
                callbacks::release(&self.db, &hash).await?;
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = callbacks::spend(&self.db, &hash, self.clock.now()).await {
            // The status is set; a retry with the same status finishes this.
            tracing::warn!(error = %e, "a callback's use was recorded but the token not spent");
        }
        Ok(CalledBack {
            user_id: found.user_id,
            status,
        })
    }

    /// Whether `found` may be used now to set `status`.
    fn usable(&self, found: &Callback, status: UserStatus) -> Result<(), CallbackError> {
        if found.applied_at.is_some() {
            return Err(CallbackError::Gone("this callback URL has been used"));
        }
        if let Some(asked) = &found.used_status {
            // A use that began and was interrupted may finish, no other.
            return if asked == status.as_str() {
                Ok(())
            } else {
                Err(CallbackError::Gone("this callback URL has been used"))
            };
        }
        let Some(last_sent) = found.last_sent else {
            return Err(CallbackError::Gone(
                "the webhook endpoint that sent this callback URL was deleted",
            ));
        };
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        if last_sent
            .checked_add_signed(ttl)
            .is_some_and(|end| self.clock.now() > end)
        {
            return Err(CallbackError::Gone("this callback URL has expired"));
        }
        Ok(())
    }
}

impl From<DomainError> for CallbackError {
    fn from(e: DomainError) -> Self {
        Self::Command(e.into())
    }
}
