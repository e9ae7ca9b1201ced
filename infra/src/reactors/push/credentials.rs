//! Push credentials: checked when set, sealed in the vault (never in the
//! log, which records a fingerprint and the details that are not secret),
//! and turned into live providers per app, kept while their fingerprint
//! stays the same (so OAuth and provider tokens are reused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::DomainError;
use domain::ids::AppId;
use domain::platform::SendPlatform;
use projections::db::Db;
use serde_json::{Value, json};

use super::Provider;
use super::apns::{Apns, ApnsCredentials};
use super::config::PushConfig;
use super::fcm::{Fcm, ServiceAccount};
use super::http::{PushHttp, Versions};
use super::log::LogProvider;
use super::webpush::{VapidCredentials, WebPush};
use crate::reactors::webhooks::address::AddressPolicy;
use crate::vault::{Slot, Vault, VaultError};

pub const PURPOSE: &str = "credentials";

pub fn owner(provider: SendPlatform) -> String {
    format!("push:{}", provider.as_str())
}

/// Credentials that passed their checks: what to seal, what may be shown.
pub struct Parsed {
    pub secret: Vec<u8>,
    pub details: Value,
}

/// Checks credentials for `provider` (a key that does not parse or sign is
/// refused here, not at the first send).
pub fn parse(provider: SendPlatform, body: &Value) -> Result<Parsed, DomainError> {
    let invalid = |field: &str, message: String| DomainError::invalid(field, message);
    match provider {
        SendPlatform::Fcm => {
            let account = body.get("service_account").ok_or_else(|| {
                invalid(
                    "service_account",
                    "is required (the key file's JSON)".into(),
                )
            })?;
            let (parsed, _) =
                ServiceAccount::parse(account).map_err(|m| invalid("service_account", m))?;
            Ok(Parsed {
                secret: account.to_string().into_bytes(),
                details: json!({
                    "project_id": parsed.project_id,
                    "client_email": parsed.client_email,
                    "private_key_id": parsed.private_key_id,
                }),
            })
        }
        SendPlatform::Apns => {
            let (creds, _) = ApnsCredentials::parse(body).map_err(|m| invalid("body", m))?;
            Ok(Parsed {
                secret: body.to_string().into_bytes(),
                details: json!({
                    "key_id": creds.key_id,
                    "team_id": creds.team_id,
                    "topic": creds.topic,
                    "environment": creds.environment,
                }),
            })
        }
        SendPlatform::Webpush => {
            let subject = body.get("subject").and_then(Value::as_str).ok_or_else(|| {
                invalid("subject", "is required (mailto: or https: contact)".into())
            })?;
            let creds = match body.get("public_key").and_then(Value::as_str) {
                Some(public_key) => VapidCredentials {
                    subject: subject.to_owned(),
                    public_key: public_key.to_owned(),
                    private_key: body
                        .get("private_key")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    pkcs8: None,
                },
                None => VapidCredentials::generate(subject).map_err(|m| invalid("body", m))?,
            };
            creds.signer().map_err(|m| invalid("body", m))?;
            Ok(Parsed {
                secret: serde_json::to_vec(&creds).unwrap_or_default(),
                details: json!({"subject": creds.subject, "public_key": creds.public_key}),
            })
        }
    }
}

/// The HTTP clients the providers share (connections are reused).
#[derive(Clone)]
pub struct Clients {
    /// The FCM OAuth exchange.
    pub http: reqwest::Client,
    /// FCM sends (HTTP/2 where TLS negotiates it, as Google's servers do).
    pub fcm: PushHttp,
    /// APNs sends: HTTP/2 only, as APNs speaks nothing else (cleartext h2
    /// when its URL is `http://`, a local stand-in).
    pub apns: PushHttp,
    /// Behind the SSRF guard: subscription endpoints come from devices.
    pub webpush: reqwest::Client,
    pub addresses: Arc<AddressPolicy>,
}

impl Clients {
    pub fn new(config: &PushConfig, addresses: Arc<AddressPolicy>) -> Result<Self, String> {
        let base = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(config.timeout)
                .pool_max_idle_per_host(config.concurrency)
        };
        let built =
            |r: reqwest::Result<reqwest::Client>| r.map_err(|e| format!("an HTTP client: {e}"));
        Ok(Self {
            http: built(base().build())?,
            fcm: PushHttp::new(Versions::Negotiated, config.concurrency, config.timeout)?,
            apns: PushHttp::new(Versions::Http2, config.concurrency, config.timeout)?,
            webpush: built(
                base()
                    .no_proxy()
                    .dns_resolver(crate::reactors::webhooks::address::GuardedResolver(
                        addresses.clone(),
                    ))
                    .build(),
            )?,
            addresses,
        })
    }
}

fn build(
    provider: SendPlatform,
    secret: &[u8],
    clients: &Clients,
    config: &PushConfig,
) -> Result<Arc<dyn Provider>, String> {
    let json: Value = serde_json::from_slice(secret).map_err(|e| e.to_string())?;
    Ok(match provider {
        SendPlatform::Fcm => {
            let (account, signer) = ServiceAccount::parse(&json)?;
            Arc::new(Fcm::new(
                account,
                signer,
                &config.fcm_url,
                config.fcm_token_url.as_deref(),
                clients.fcm.clone(),
                clients.http.clone(),
            )?)
        }
        SendPlatform::Apns => {
            let (creds, signer) = ApnsCredentials::parse(&json)?;
            Arc::new(Apns::new(
                creds,
                signer,
                config.apns_url.as_deref(),
                clients.apns.clone(),
            )?)
        }
        SendPlatform::Webpush => {
            let creds: VapidCredentials =
                serde_json::from_value(json).map_err(|e| e.to_string())?;
            let signer = creds.signer()?;
            Arc::new(WebPush::new(
                &creds,
                signer,
                clients.webpush.clone(),
                clients.addresses.clone(),
            ))
        }
    })
}

/// An app's providers, per send platform.
pub struct AppProviders {
    providers: HashMap<&'static str, Result<Arc<dyn Provider>, String>>,
    log: Option<Arc<dyn Provider>>,
}

impl AppProviders {
    /// The provider for a platform, or why there is none.
    pub fn get(&self, platform: SendPlatform) -> Result<Arc<dyn Provider>, String> {
        if let Some(log) = &self.log {
            return Ok(log.clone());
        }
        match self.providers.get(platform.as_str()) {
            Some(Ok(p)) => Ok(p.clone()),
            Some(Err(e)) => Err(format!("{}: {e}", platform.as_str())),
            None => Err(format!("the app has no {} credentials", platform.as_str())),
        }
    }
}

/// A live provider with the fingerprint of the credentials it was built from.
type Built = (String, Arc<dyn Provider>);

/// Live providers by app and platform.
#[derive(Default)]
pub struct ProviderCache {
    entries: Mutex<HashMap<(AppId, &'static str), Built>>,
}

impl ProviderCache {
    /// The app's providers, built from its stored credentials (those
    /// active `at`).
    pub async fn load(
        &self,
        db: &Db,
        vault: &Vault,
        clients: &Clients,
        config: &PushConfig,
        app_id: AppId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<AppProviders, VaultError> {
        let stored = projections::apps::push_credentials(db, app_id).await?;
        if stored.is_empty() && config.log_without_credentials {
            return Ok(AppProviders {
                providers: HashMap::new(),
                log: Some(Arc::new(LogProvider)),
            });
        }
        let mut providers = HashMap::new();
        for record in stored {
            let Some(platform) = SendPlatform::parse(&record.provider) else {
                continue;
            };
            let key = (app_id, platform.as_str());
            let cached = self.entries.lock().ok().and_then(|e| {
                e.get(&key)
                    .filter(|(f, _)| *f == record.fingerprint)
                    .map(|(_, p)| p.clone())
            });
            let built = match cached {
                Some(p) => Ok(p),
                None => {
                    let owner = owner(platform);
                    let slot = Slot {
                        app_id,
                        owner: &owner,
                        purpose: PURPOSE,
                    };
                    let secrets = vault.active(slot, at).await?;
                    match secrets.first() {
                        Some(secret) => build(platform, secret.expose(), clients, config),
                        None => Err("the stored credentials are missing".to_owned()),
                    }
                }
            };
            if let (Ok(p), Ok(mut entries)) = (&built, self.entries.lock()) {
                entries.insert(key, (record.fingerprint.clone(), p.clone()));
            }
            providers.insert(platform.as_str(), built);
        }
        Ok(AppProviders {
            providers,
            log: None,
        })
    }
}
