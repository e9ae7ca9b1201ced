//! Webhooks as configuration: the endpoints an app should have, applied
//! all at once (`POST /v1/webhooks/apply`, `herald webhooks apply --file`).
//!
//! Every entry is checked first (each entry's fields, the address guard,
//! duplicates, the ids it names); one wrong entry refuses the whole file and
//! nothing changes. Then the endpoints are created, updated and deleted to
//! match, one command each: a second apply of the same file finds nothing to
//! do. An entry stands for an existing endpoint by its `id`, else by its URL
//! (an entry whose URL several endpoints share must name its `id`); an
//! endpoint no entry stands for is deleted.
//!
//! Each endpoint is its own stream, so a failure of the database half-way
//! leaves the endpoints before it applied: applying the file again finishes
//! the job.

use domain::DomainError;
use domain::FieldError;
use domain::ids::{AppId, WebhookId};
use domain::user::Change;
use domain::webhook::SettingsPatch;
use domain::webhook::settings::{AuthInfo, Settings};
use projections::webhooks::endpoints::EndpointRecord;
use serde::Serialize;

use super::{Credential, Webhooks};
use crate::runtime::commands::CommandError;
use crate::services::RequestContext;

/// One endpoint the app should have.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The endpoint this entry stands for, if it names one.
    pub id: Option<WebhookId>,
    pub settings: Settings,
    pub credential: Option<Credential>,
    /// `None` leaves an existing endpoint's state as it is (new ones are
    /// enabled).
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

/// One step of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub action: Action,
    /// `None` for an endpoint still to create (its id once applied).
    pub id: Option<WebhookId>,
    pub url: String,
    /// For an update: the fields that change.
    pub changes: Vec<String>,
    /// For a created endpoint: its signing secret (shown here only, as in
    /// the answer to `POST /v1/webhooks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The entry of the file (`None` for a deletion).
    #[serde(skip)]
    entry: Option<usize>,
}

/// What applying would do, and whether it was done.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub applied: bool,
    pub steps: Vec<Step>,
}

impl Webhooks {
    /// Checks `desired` whole and plans it against the app's endpoints;
    /// unless `dry_run`, applies the plan.
    pub async fn apply(
        &self,
        ctx: &RequestContext,
        app_id: AppId,
        desired: Vec<Desired>,
        dry_run: bool,
    ) -> Result<Plan, CommandError> {
        let current = self.all(app_id).await?;
        let mut steps = self.plan(&current, &desired).await?;
        if dry_run {
            return Ok(Plan {
                applied: false,
                steps,
            });
        }
        for step in &mut steps {
            let entry = step.entry.map(|i| desired[i].clone());
            match (step.action, entry) {
                (Action::Create, Some(d)) => {
                    let created = self.create(ctx, app_id, d.settings, d.credential).await?;
                    let id = created.id;
                    if d.enabled == Some(false) {
                        self.set_enabled(ctx, app_id, id, false).await?;
                    }
                    step.id = Some(id);
                    step.secret = Some(created.secret.expose().clone());
                }
                (Action::Update, Some(d)) => {
                    let Some(id) = step.id else { continue };
                    let record = self.record(app_id, id).await?;
                    if step.changes.iter().any(|c| c != "enabled") {
                        let credential = match d.credential {
                            Some(c) => Change::Set(c),
                            None if record.auth.is_some() => Change::Clear,
                            None => Change::Keep,
                        };
                        self.update(ctx, app_id, id, replacing(d.settings), credential)
                            .await?;
                    }
                    if let Some(enabled) = d.enabled.filter(|e| *e != record.enabled) {
                        self.set_enabled(ctx, app_id, id, enabled).await?;
                    }
                }
                (Action::Delete, _) => {
                    if let Some(id) = step.id {
                        self.delete(ctx, app_id, id).await?;
                    }
                }
                _ => {}
            }
        }
        Ok(Plan {
            applied: true,
            steps,
        })
    }

    /// Every endpoint of the app.
    async fn all(&self, app_id: AppId) -> Result<Vec<EndpointRecord>, CommandError> {
        let mut all: Vec<EndpointRecord> = Vec::new();
        loop {
            let after = all.last().map(|e| e.webhook_id.0);
            let page = self.list(app_id, after, 500).await?;
            let done = page.len() < 500;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    async fn plan(
        &self,
        current: &[EndpointRecord],
        desired: &[Desired],
    ) -> Result<Vec<Step>, CommandError> {
        let mut errors = Vec::new();
        let field = |i: usize, name: &str| format!("webhooks[{i}].{name}");
        // Which endpoint each entry stands for: named ids first, then URLs.
        let mut matched: Vec<Option<usize>> = vec![None; desired.len()];
        let mut taken = vec![false; current.len()];
        for (i, d) in desired.iter().enumerate() {
            let Some(id) = d.id else { continue };
            match current.iter().position(|e| e.webhook_id == id) {
                None => errors.push(FieldError::new(
                    field(i, "id"),
                    "no webhook of the app has this id",
                )),
                Some(at) if taken[at] => errors.push(FieldError::new(
                    field(i, "id"),
                    "another entry names this webhook too",
                )),
                Some(at) => {
                    taken[at] = true;
                    matched[i] = Some(at);
                }
            }
        }
        for (i, d) in desired.iter().enumerate() {
            if d.id.is_some() {
                continue;
            }
            let url = d.settings.url.as_str();
            if desired[..i]
                .iter()
                .any(|o| o.id.is_none() && o.settings.url.as_str() == url)
            {
                errors.push(FieldError::new(
                    field(i, "url"),
                    "another entry has this URL; give the entries the `id` of the webhooks they stand for",
                ));
                continue;
            }
            let same: Vec<usize> = (0..current.len())
                .filter(|at| !taken[*at] && current[*at].settings.url.as_str() == url)
                .collect();
            match same.as_slice() {
                [] => {}
                [at] => {
                    taken[*at] = true;
                    matched[i] = Some(*at);
                }
                _ => errors.push(FieldError::new(
                    field(i, "url"),
                    "several webhooks have this URL; give this entry the `id` of the one it stands for",
                )),
            }
        }
        for (i, d) in desired.iter().enumerate() {
            if let Err(DomainError::Invalid(e)) = d.settings.check() {
                errors.extend(
                    e.into_iter()
                        .map(|e| FieldError::new(field(i, &e.field), e.message)),
                );
            }
            if let Err(CommandError::Domain(DomainError::Invalid(e))) =
                self.check_callbacks(d.settings.callback_field())
            {
                errors.extend(
                    e.into_iter()
                        .map(|e| FieldError::new(field(i, &e.field), e.message)),
                );
            }
            if let Err(m) = self.addresses.check_url(d.settings.url.as_str()).await {
                errors.push(FieldError::new(field(i, "url"), m));
            }
        }
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors).into());
        }
        let mut steps = Vec::new();
        for (i, d) in desired.iter().enumerate() {
            let url = d.settings.url.as_str().to_owned();
            let Some(at) = matched[i] else {
                steps.push(Step {
                    action: Action::Create,
                    id: None,
                    url,
                    changes: vec![],
                    secret: None,
                    entry: Some(i),
                });
                continue;
            };
            let record = &current[at];
            let mut changes: Vec<String> = record
                .settings
                .differences(&d.settings)
                .into_iter()
                .map(str::to_owned)
                .collect();
            let wanted_auth: Option<AuthInfo> = match &d.credential {
                Some(c) => Some(self.auth_info(c)?.0),
                None => None,
            };
            if wanted_auth != record.auth {
                changes.push("auth".into());
            }
            if d.enabled.is_some_and(|e| e != record.enabled) {
                changes.push("enabled".into());
            }
            steps.push(Step {
                action: if changes.is_empty() {
                    Action::Unchanged
                } else {
                    Action::Update
                },
                id: Some(record.webhook_id),
                url,
                changes,
                secret: None,
                entry: Some(i),
            });
        }
        for (at, record) in current.iter().enumerate() {
            if !taken[at] {
                steps.push(Step {
                    action: Action::Delete,
                    id: Some(record.webhook_id),
                    url: record.settings.url.as_str().to_owned(),
                    changes: vec![],
                    secret: None,
                    entry: None,
                });
            }
        }
        Ok(steps)
    }
}

/// A patch that makes an endpoint's settings exactly `s`.
fn replacing(s: Settings) -> SettingsPatch {
    fn set_or_clear<T>(v: Option<T>) -> Change<T> {
        v.map_or(Change::Clear, Change::Set)
    }
    SettingsPatch {
        url: Some(s.url),
        description: set_or_clear(s.description),
        event_types: Some(s.event_types),
        method: Some(s.method),
        headers: Some(s.headers),
        payload_template: set_or_clear(s.payload_template),
        rate_limit_per_second: set_or_clear(s.rate_limit_per_second),
        ordered: Some(s.ordered),
        set_user_status_on_failure: Some(s.set_user_status_on_failure),
        encryption_public_key: set_or_clear(s.encryption_public_key),
        auth: Change::Keep,
    }
}
