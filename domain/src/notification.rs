//! The notification (campaign) aggregate: a message and its targets, its
//! status, and what its delivery came to.
//!
//! ```text
//! draft ──launch──► queued ──(scheduled_at)──► launched ──► sending ──► sent | error
//!   │                 │                           │            │
//!   └──────── cancel ─┴───────────────────────────┴────────────┴──► canceled
//! draft | sent | error | canceled ──delete──► deleted
//! ```
//!
//! Delivery is recorded batch by batch (`notification.batch_sent`, which
//! names every device and its outcome); the counters are the sum of the
//! batches. A batch already recorded is never recorded again, so a sender
//! retrying after a lost answer cannot count twice.

pub mod message;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use self::message::Message;
use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::DomainEvent;
use crate::ids::ExternalId;

pub fn stream(id: Uuid) -> String {
    format!("notification:{id}")
}

pub const MAX_REASON_CHARS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Queued,
    Launched,
    Sending,
    Sent,
    Error,
    Canceled,
    Deleted,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Draft,
        Status::Queued,
        Status::Launched,
        Status::Sending,
        Status::Sent,
        Status::Error,
        Status::Canceled,
        Status::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Queued => "queued",
            Status::Launched => "launched",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Error => "error",
            Status::Canceled => "canceled",
            Status::Deleted => "deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether delivery is over (or never began and never will).
    pub fn finished(self) -> bool {
        matches!(self, Status::Sent | Status::Error | Status::Canceled)
    }
}

/// Counts per device platform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerPlatform {
    pub android: u64,
    pub ios: u64,
    pub web: u64,
}

impl PerPlatform {
    pub fn add(&mut self, other: &PerPlatform) {
        self.android += other.android;
        self.ios += other.ios;
        self.web += other.web;
    }

    pub fn total(&self) -> u64 {
        self.android + self.ios + self.web
    }
}

/// One device that was not reached, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Miss {
    pub external_id: ExternalId,
    pub reason: String,
}

/// What one batch of the fan-out came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// 1-based, in audience order.
    pub batch: u64,
    pub delivered: Vec<ExternalId>,
    /// The provider refused the message for a reason other than the token.
    #[serde(default)]
    pub failed: Vec<Miss>,
    /// The provider says the token is dead.
    #[serde(default)]
    pub invalid: Vec<Miss>,
    pub sent: PerPlatform,
    /// Failed and invalid, per platform.
    pub failures: PerPlatform,
}

#[derive(Debug, Clone)]
pub enum NotificationCommand {
    Create {
        id: Uuid,
        message: Message,
        launch: bool,
        now: DateTime<Utc>,
    },
    Update {
        message: Message,
    },
    /// By a caller: now, or queued until `scheduled_at` if that is later.
    Launch {
        now: DateTime<Utc>,
    },
    /// By the scheduler, once `scheduled_at` has come: only if still queued.
    LaunchScheduled,
    /// Back to draft (a queued notification).
    Unschedule,
    ResolveAudience {
        total: u64,
        by_platform: PerPlatform,
        batches: u64,
    },
    RecordBatch(BatchOutcome),
    Finish,
    Fail {
        reason: String,
    },
    Cancel,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum NotificationEvent {
    #[serde(rename = "notification.created")]
    Created {
        notification_id: Uuid,
        message: Message,
    },
    #[serde(rename = "notification.updated")]
    Updated {
        notification_id: Uuid,
        message: Message,
    },
    #[serde(rename = "notification.queued")]
    Queued {
        notification_id: Uuid,
        scheduled_at: DateTime<Utc>,
    },
    #[serde(rename = "notification.unscheduled")]
    Unscheduled { notification_id: Uuid },
    #[serde(rename = "notification.launched")]
    Launched { notification_id: Uuid },
    #[serde(rename = "notification.audience_resolved")]
    AudienceResolved {
        notification_id: Uuid,
        total: u64,
        by_platform: PerPlatform,
        batches: u64,
    },
    #[serde(rename = "notification.batch_sent")]
    BatchSent {
        notification_id: Uuid,
        #[serde(flatten)]
        outcome: BatchOutcome,
    },
    #[serde(rename = "notification.sent")]
    Sent {
        notification_id: Uuid,
        sent: PerPlatform,
        failed: PerPlatform,
    },
    #[serde(rename = "notification.errored")]
    Errored {
        notification_id: Uuid,
        reason: String,
        sent: PerPlatform,
        failed: PerPlatform,
    },
    #[serde(rename = "notification.canceled")]
    Canceled { notification_id: Uuid },
    #[serde(rename = "notification.deleted")]
    Deleted { notification_id: Uuid },
}

impl DomainEvent for NotificationEvent {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    pub id: Option<Uuid>,
    pub status: Option<Status>,
    pub message: Option<Message>,
    pub audience: u64,
    pub batches: u64,
    pub recorded: BTreeSet<u64>,
    pub sent: PerPlatform,
    pub failed: PerPlatform,
}

impl Notification {
    fn current(&self) -> Result<(Uuid, Status), DomainError> {
        match (self.id, self.status) {
            (Some(id), Some(status)) if status != Status::Deleted => Ok((id, status)),
            _ => Err(DomainError::NotFound("notification")),
        }
    }

    fn refuse(status: Status, what: &str) -> DomainError {
        DomainError::StateConflict(format!(
            "the notification is {}; it cannot be {what}",
            status.as_str()
        ))
    }

    fn launch(&self, id: Uuid, message: &Message, now: DateTime<Utc>) -> NotificationEvent {
        match message.scheduled_at {
            Some(at) if at > now => NotificationEvent::Queued {
                notification_id: id,
                scheduled_at: at,
            },
            _ => NotificationEvent::Launched {
                notification_id: id,
            },
        }
    }
}

impl Aggregate for Notification {
    type Command = NotificationCommand;
    type Event = NotificationEvent;

    fn decide(&self, command: NotificationCommand) -> Result<Vec<NotificationEvent>, DomainError> {
        use NotificationCommand as C;
        use NotificationEvent as E;
        if let C::Create {
            id,
            message,
            launch,
            now,
        } = command
        {
            if self.id.is_some() {
                return Err(DomainError::StateConflict(
                    "the notification id is taken".into(),
                ));
            }
            message.validate()?;
            let mut events = vec![E::Created {
                notification_id: id,
                message: message.clone(),
            }];
            if launch {
                events.push(self.launch(id, &message, now));
            }
            return Ok(events);
        }
        let (id, status) = self.current()?;
        let message = self
            .message
            .clone()
            .ok_or(DomainError::NotFound("notification"))?;
        Ok(match command {
            C::Create { .. } => vec![],
            C::Update { message: new } => {
                if status != Status::Draft {
                    return Err(Self::refuse(status, "changed (only drafts can)"));
                }
                new.validate()?;
                if new == message {
                    vec![]
                } else {
                    vec![E::Updated {
                        notification_id: id,
                        message: new,
                    }]
                }
            }
            C::Launch { now } => match status {
                Status::Draft => vec![self.launch(id, &message, now)],
                Status::Queued => vec![E::Launched {
                    notification_id: id,
                }],
                Status::Launched | Status::Sending => vec![],
                other => return Err(Self::refuse(other, "launched")),
            },
            C::LaunchScheduled => match status {
                Status::Queued => vec![E::Launched {
                    notification_id: id,
                }],
                _ => vec![],
            },
            C::Unschedule => match status {
                Status::Queued => vec![E::Unscheduled {
                    notification_id: id,
                }],
                Status::Draft => vec![],
                other => return Err(Self::refuse(other, "put back to draft")),
            },
            C::ResolveAudience {
                total,
                by_platform,
                batches,
            } => match status {
                Status::Launched => vec![E::AudienceResolved {
                    notification_id: id,
                    total,
                    by_platform,
                    batches,
                }],
                Status::Sending => vec![],
                other => return Err(Self::refuse(other, "sent")),
            },
            C::RecordBatch(outcome) => {
                if self.recorded.contains(&outcome.batch) {
                    return Ok(vec![]);
                }
                match status {
                    Status::Sending | Status::Canceled => vec![E::BatchSent {
                        notification_id: id,
                        outcome,
                    }],
                    other => return Err(Self::refuse(other, "recorded as sending")),
                }
            }
            C::Finish => match status {
                Status::Sending | Status::Launched => {
                    let attempted = self.sent.total() + self.failed.total();
                    if self.sent.total() > 0 {
                        vec![E::Sent {
                            notification_id: id,
                            sent: self.sent,
                            failed: self.failed,
                        }]
                    } else {
                        let reason = if attempted == 0 {
                            "no device matched the targets".to_owned()
                        } else {
                            "no device could be reached".to_owned()
                        };
                        vec![E::Errored {
                            notification_id: id,
                            reason,
                            sent: self.sent,
                            failed: self.failed,
                        }]
                    }
                }
                _ => vec![],
            },
            C::Fail { reason } => match status {
                Status::Launched | Status::Sending | Status::Queued => {
                    let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
                    vec![E::Errored {
                        notification_id: id,
                        reason,
                        sent: self.sent,
                        failed: self.failed,
                    }]
                }
                _ => vec![],
            },
            C::Cancel => match status {
                Status::Draft | Status::Queued | Status::Launched | Status::Sending => {
                    vec![E::Canceled {
                        notification_id: id,
                    }]
                }
                Status::Canceled => vec![],
                other => return Err(Self::refuse(other, "canceled")),
            },
            C::Delete => match status {
                Status::Draft | Status::Sent | Status::Error | Status::Canceled => {
                    vec![E::Deleted {
                        notification_id: id,
                    }]
                }
                other => return Err(Self::refuse(other, "deleted (cancel it first)")),
            },
        })
    }

    fn evolve(&mut self, event: &NotificationEvent) {
        use NotificationEvent as E;
        match event {
            E::Created {
                notification_id,
                message,
            } => {
                *self = Notification {
                    id: Some(*notification_id),
                    status: Some(Status::Draft),
                    message: Some(message.clone()),
                    ..Default::default()
                };
            }
            E::Updated { message, .. } => self.message = Some(message.clone()),
            E::Queued { .. } => self.status = Some(Status::Queued),
            E::Unscheduled { .. } => self.status = Some(Status::Draft),
            E::Launched { .. } => self.status = Some(Status::Launched),
            E::AudienceResolved { total, batches, .. } => {
                self.status = Some(Status::Sending);
                self.audience = *total;
                self.batches = *batches;
            }
            E::BatchSent { outcome, .. } => {
                self.recorded.insert(outcome.batch);
                self.sent.add(&outcome.sent);
                self.failed.add(&outcome.failures);
            }
            E::Sent { .. } => self.status = Some(Status::Sent),
            E::Errored { .. } => self.status = Some(Status::Error),
            E::Canceled { .. } => self.status = Some(Status::Canceled),
            E::Deleted { .. } => self.status = Some(Status::Deleted),
        }
    }
}

#[cfg(test)]
mod tests;
