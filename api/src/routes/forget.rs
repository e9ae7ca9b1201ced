//! `POST /v1/users/{user_id}/forget`: an erasure request (docs/privacy.md).

use axum::Json;
use axum::extract::{Path, State};
use domain::ids::UserId;
use infra::services::forget::Forgetting;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, Problem};
use crate::extract::{Admin, Key};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct ForgetBody {
    user_id: String,
    /// Always `true`: the user's personal data cannot be read any more.
    forgotten: bool,
    /// `user:<id>` and `device:<external id>` of every device ever linked
    /// to the user: each one's personal values now read as `"[forgotten]"`
    /// (of a device that has passed to someone else since, those of the
    /// user's time).
    subjects: Vec<String>,
    /// Data keys destroyed by this request (0 when the user was forgotten
    /// already and nothing was written since).
    keys_destroyed: u64,
    /// `subject.forgotten` events recorded by this request.
    events_recorded: usize,
    /// Events of these subjects written before Herald sealed personal
    /// values: the log's table still holds their values in clear (every
    /// read masks them). See docs/privacy.md for what to do about them.
    plaintext_events: u64,
}

impl From<Forgetting> for ForgetBody {
    fn from(f: Forgetting) -> Self {
        Self {
            user_id: f.user_id.as_str().to_owned(),
            forgotten: true,
            subjects: f.subjects,
            keys_destroyed: f.keys_destroyed,
            events_recorded: f.events_recorded,
            plaintext_events: f.plaintext_events,
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(forget_user))
}

/// Forgets a user: destroys the keys their personal data (name, e-mail,
/// properties, status reasons) and that of every device ever linked to them
/// (push tokens, properties) was sealed with, and records
/// `subject.forgotten` in each one's stream. Every read, export, webhook
/// re-send and change queue then shows `"[forgotten]"` in their place; the
/// hash chain still verifies. Repeating it changes nothing. A user the app
/// knows only from a device's link (never created) is forgotten too; a user
/// id that nothing ever named is a 404. Admin only.
#[utoipa::path(post, path = "/v1/users/{user_id}/forget", tag = "users", security(("bearer" = [])),
    params(("user_id" = String, Path, min_length = 1, max_length = 255, description = "1 to 255 bytes of UTF-8 (any characters), percent-encoded")),
    responses(
        (status = 200, body = ForgetBody),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn forget_user(
    State(state): State<AppState>,
    key: Key<Admin>,
    Path(raw): Path<String>,
) -> ApiResult<Json<ForgetBody>> {
    let user_id = UserId::parse(raw)?;
    let done = state
        .services
        .users
        .forget(&key.ctx, key.app_id, user_id)
        .await?;
    Ok(Json(done.into()))
}
