//! `POST /v1/webhooks/apply`: the app's endpoints as one declaration, checked
//! whole and then created, changed and deleted to match (see
//! `infra::services::webhooks::apply`). `herald webhooks apply --file` is
//! its command line.

use axum::Json;
use axum::extract::State;
use domain::FieldError;
use domain::ids::WebhookId;
use infra::services::webhooks::{Action, Desired, Plan};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::body::CreateWebhook;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, AppJson, Key};
use crate::state::AppState;

/// At most this many endpoints in one declaration.
pub const MAX_ENTRIES: usize = 500;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyWebhooks {
    /// Every endpoint the app should have: the fields of `POST
    /// /v1/webhooks`, plus optional `id` (the existing endpoint this entry
    /// stands for; else the one with the same `url`) and `enabled`
    /// (absent: left as it is). Endpoints no entry stands for are deleted.
    #[schema(value_type = Vec<Object>, max_items = 500)]
    webhooks: Vec<Value>,
    /// Only plan: check and answer what would change, change nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize, ToSchema)]
pub struct StepBody {
    /// `create`, `update`, `delete` or `unchanged`.
    action: String,
    /// The endpoint (for a creation: once created; absent in a dry run).
    id: Option<Uuid>,
    url: String,
    /// For an update: the fields that change.
    changes: Vec<String>,
    /// For an endpoint created now: its signing secret, shown only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PlanBody {
    /// False for a dry run.
    applied: bool,
    steps: Vec<StepBody>,
}

impl From<Plan> for PlanBody {
    fn from(plan: Plan) -> Self {
        Self {
            applied: plan.applied,
            steps: plan
                .steps
                .into_iter()
                .map(|s| StepBody {
                    action: match s.action {
                        Action::Create => "create",
                        Action::Update => "update",
                        Action::Delete => "delete",
                        Action::Unchanged => "unchanged",
                    }
                    .into(),
                    id: s.id.map(|i| i.0),
                    url: s.url,
                    changes: s.changes,
                    secret: s.secret,
                })
                .collect(),
        }
    }
}

/// One entry of the declaration, or its field errors (named
/// `webhooks[i].field`).
fn entry(i: usize, raw: Value, errors: &mut Vec<FieldError>) -> Option<Desired> {
    let at = |field: &str| format!("webhooks[{i}].{field}");
    let Value::Object(mut fields) = raw else {
        errors.push(FieldError::new(
            format!("webhooks[{i}]"),
            "must be an object",
        ));
        return None;
    };
    let id = match fields.remove("id") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Uuid::parse_str(&s).ok().map(|u| Some(WebhookId(u))),
        Some(_) => None,
    };
    if id.is_none() {
        errors.push(FieldError::new(at("id"), "must be a webhook id (a UUID)"));
    }
    let enabled = match fields.remove("enabled") {
        None | Some(Value::Null) => Some(None),
        Some(Value::Bool(b)) => Some(Some(b)),
        Some(_) => None,
    };
    if enabled.is_none() {
        errors.push(FieldError::new(at("enabled"), "must be true or false"));
    }
    let parsed = match serde_json::from_value::<CreateWebhook>(Value::Object(fields)) {
        Err(e) => {
            errors.push(FieldError::new(format!("webhooks[{i}]"), e.to_string()));
            None
        }
        Ok(body) => match body.parse() {
            Ok(parsed) => match parsed.0.check() {
                Ok(()) => Some(parsed),
                Err(domain::DomainError::Invalid(found)) => {
                    errors.extend(
                        found
                            .into_iter()
                            .map(|e| FieldError::new(at(&e.field), e.message)),
                    );
                    None
                }
                Err(other) => {
                    errors.push(FieldError::new(format!("webhooks[{i}]"), other.to_string()));
                    None
                }
            },
            Err(ApiError::Validation(found)) => {
                errors.extend(
                    found
                        .into_iter()
                        .map(|e| FieldError::new(at(&e.field), e.message)),
                );
                None
            }
            Err(_) => {
                errors.push(FieldError::new(
                    format!("webhooks[{i}]"),
                    "is not a valid endpoint",
                ));
                None
            }
        },
    };
    let ((settings, credential), id, enabled) = (parsed?, id?, enabled?);
    Some(Desired {
        id,
        settings,
        credential,
        enabled,
    })
}

/// Makes the app's endpoints match a declaration.
///
/// Every entry is checked first, and one wrong entry changes nothing (400 naming each field as
/// `webhooks[i].field`). Applying the same declaration again changes
/// nothing. `dry_run` answers the plan only.
#[utoipa::path(post, path = "/v1/webhooks/apply", tag = "webhooks", security(("bearer" = [])),
    request_body = ApplyWebhooks,
    responses((status = 200, body = PlanBody)))]
pub(super) async fn apply_webhooks(
    State(state): State<AppState>,
    key: Key<Admin>,
    AppJson(body): AppJson<ApplyWebhooks>,
) -> ApiResult<Json<PlanBody>> {
    if body.webhooks.len() > MAX_ENTRIES {
        return Err(ApiError::invalid(
            "webhooks",
            format!("at most {MAX_ENTRIES} endpoints"),
        ));
    }
    let mut errors = Vec::new();
    let desired: Vec<Desired> = body
        .webhooks
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| entry(i, raw, &mut errors))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let plan = state
        .services
        .webhooks
        .apply(&key.ctx, key.app_id, desired, body.dry_run)
        .await?;
    Ok(Json(plan.into()))
}
