//! Subjects' data keys: created on a subject's first personal value, sealed
//! with Herald's secret key in `subject_keys`, destroyed when the subject is
//! forgotten. Kept in memory once read; a node drops a subject's keys when
//! it forgets the subject or reads its `subject.forgotten` event, and keys
//! read before such a drop are not remembered after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use domain::ids::AppId;
use projections::db::Db;
use projections::{on_db, on_tx};
use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use uuid::Uuid;

use crate::clock::Clock;
use crate::kept::Kept;
use crate::secrets::random_bytes;
use crate::store::{NewSubjectKey, StoreError};
use crate::vault::{Vault, VaultError};

/// Subjects kept in memory at most (those used least lately go first).
const CACHE_SUBJECTS: usize = 100_000;

/// What this node knows of one subject's keys.
#[derive(Default)]
pub struct SubjectKeys {
    /// Generation -> key; `None`: destroyed.
    keys: HashMap<i64, Option<Arc<LessSafeKey>>>,
    /// Some generation was forgotten (values stored in clear are masked).
    pub forgotten: bool,
}

impl SubjectKeys {
    /// The key of `generation`: `Some(None)` if it was destroyed, `None` if
    /// this node has not seen the generation.
    pub fn key(&self, generation: i64) -> Option<Option<&LessSafeKey>> {
        self.keys.get(&generation).map(|k| k.as_deref())
    }

    /// The newest generation that still has its key.
    fn writable(&self) -> Option<(i64, Arc<LessSafeKey>)> {
        let newest = self.keys.keys().copied().max()?;
        self.keys
            .get(&newest)
            .and_then(Clone::clone)
            .map(|k| (newest, k))
    }

    fn next_generation(&self) -> i64 {
        self.keys.keys().copied().max().unwrap_or(0).max(0) + 1
    }
}

type Subject = (Uuid, String);

/// The key to seal a subject's new values with.
pub struct WritingKey {
    pub generation: i64,
    pub key: Arc<LessSafeKey>,
    /// Set when the key is new: to be stored with the append.
    pub new: Option<NewSubjectKey>,
    /// [`KeyRing::epoch`] before the key was looked up.
    epoch: u64,
}

pub struct KeyRing {
    db: Db,
    vault: Vault,
    clock: Arc<dyn Clock>,
    cache: Mutex<Kept<Subject, Arc<SubjectKeys>>>,
    /// Subjects dropped from `cache` so far: keys read before a drop may
    /// have been destroyed since, and are not remembered after it.
    evictions: AtomicU64,
}

fn aad(app_id: Uuid, subject: &str, generation: i64) -> Vec<u8> {
    format!("subject-key|{app_id}|{subject}|{generation}").into_bytes()
}

fn cipher(bytes: &[u8]) -> Result<LessSafeKey, VaultError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| VaultError::Undecryptable)
}

impl KeyRing {
    pub fn new(db: Db, vault: Vault, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            vault,
            clock,
            cache: Mutex::new(Kept::new(CACHE_SUBJECTS)),
            evictions: AtomicU64::new(0),
        }
    }

    fn cached(&self, key: &Subject) -> Option<Arc<SubjectKeys>> {
        self.cache.lock().ok()?.get(key)
    }

    /// To be read before reading keys that [`KeyRing::remember`] keeps.
    fn epoch(&self) -> u64 {
        self.evictions.load(Ordering::SeqCst)
    }

    /// Keeps `keys`, read after [`KeyRing::epoch`] was `since`, unless a
    /// subject was dropped meanwhile: they may have been read before its
    /// keys were destroyed (a forget), and would bring a destroyed key back;
    /// then the subject is read again when next needed.
    fn remember(&self, key: Subject, keys: Arc<SubjectKeys>, since: u64) {
        if let Ok(mut cache) = self.cache.lock() {
            if self.epoch() == since {
                cache.put(key, keys);
            } else {
                cache.remove(&key);
            }
        }
    }

    /// Drops what this node remembers of a subject.
    pub fn evict(&self, app_id: AppId, subject: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&(app_id.0, subject.to_owned()));
            self.evictions.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The subject's keys, from memory or the database; `refresh` reads the
    /// database even when the subject is remembered.
    pub async fn subject(
        &self,
        app_id: AppId,
        subject: &str,
        refresh: bool,
    ) -> Result<Arc<SubjectKeys>, VaultError> {
        let key = (app_id.0, subject.to_owned());
        if !refresh && let Some(keys) = self.cached(&key) {
            return Ok(keys);
        }
        let since = self.epoch();
        let loaded = Arc::new(self.load(app_id.0, subject).await?);
        self.remember(key, loaded.clone(), since);
        Ok(loaded)
    }

    /// Reads every subject of `wanted` that is not remembered, in one query
    /// per app.
    pub async fn prefetch(&self, wanted: &[(AppId, &str)]) -> Result<(), VaultError> {
        let since = self.epoch();
        let mut missing: HashMap<Uuid, Vec<&str>> = HashMap::new();
        for (app, subject) in wanted {
            if self.cached(&(app.0, (*subject).to_owned())).is_none() {
                let list = missing.entry(app.0).or_default();
                if !list.contains(subject) {
                    list.push(subject);
                }
            }
        }
        for (app, subjects) in missing {
            for chunk in subjects.chunks(500) {
                let mut found: HashMap<String, SubjectKeys> = chunk
                    .iter()
                    .map(|s| ((*s).to_owned(), SubjectKeys::default()))
                    .collect();
                for row in self.rows(app, chunk).await? {
                    if let Some(keys) = found.get_mut(&row.0) {
                        self.add(app, keys, row)?;
                    }
                }
                for (subject, keys) in found {
                    self.remember((app, subject), Arc::new(keys), since);
                }
            }
        }
        Ok(())
    }

    async fn rows(
        &self,
        app: Uuid,
        subjects: &[&str],
    ) -> Result<Vec<(String, i64, Option<Vec<u8>>, Option<i64>)>, VaultError> {
        let list = (0..subjects.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT subject, generation, sealed, forgotten_at FROM subject_keys \
             WHERE app_id = $1 AND subject IN ({list})"
        );
        Ok(on_db!(&self.db, |p| {
            let mut query = sqlx::query_as(&sql).bind(app);
            for s in subjects {
                query = query.bind(*s);
            }
            query.fetch_all(p).await.map_err(StoreError::from)?
        }))
    }

    fn add(
        &self,
        app: Uuid,
        keys: &mut SubjectKeys,
        (subject, generation, sealed, forgotten_at): (String, i64, Option<Vec<u8>>, Option<i64>),
    ) -> Result<(), VaultError> {
        keys.forgotten |= forgotten_at.is_some();
        let key = match sealed {
            Some(sealed) => {
                let bytes = self
                    .vault
                    .open_bytes(&aad(app, &subject, generation), &sealed)?;
                Some(Arc::new(cipher(&bytes)?))
            }
            None => None,
        };
        if generation > 0 {
            keys.keys.insert(generation, key);
        }
        Ok(())
    }

    async fn load(&self, app: Uuid, subject: &str) -> Result<SubjectKeys, VaultError> {
        let mut keys = SubjectKeys::default();
        for row in self.rows(app, &[subject]).await? {
            self.add(app, &mut keys, row)?;
        }
        Ok(keys)
    }

    /// The key new personal values of the subject are sealed with: its
    /// newest live generation, or a new one (after a forget, or the first
    /// time). A new key comes with its row, to be stored by the append that
    /// uses it ([`NewSubjectKey`]); once that append is written,
    /// [`KeyRing::created`] remembers it. Nodes racing to create a
    /// generation agree on the stored one: the loser's append is refused
    /// (`StoreError::KeyTaken`), and it reads the keys again
    /// ([`KeyRing::subject`] with `refresh`) and seals anew.
    ///
    /// `new_stream`: the subject's stream has no events yet, so it most
    /// likely has no key either: its first generation is made without
    /// reading first. `fresh`: a new generation is made even if the newest
    /// one is live (a device passing to another owner; a stale guess of
    /// the next generation is refused like a race, and made again).
    pub async fn writing_key(
        &self,
        app_id: AppId,
        subject: &str,
        new_stream: bool,
        fresh: bool,
    ) -> Result<WritingKey, VaultError> {
        let epoch = self.epoch();
        let key = (app_id.0, subject.to_owned());
        let remembered = self.cached(&key);
        if !fresh && let Some((generation, key)) = remembered.as_ref().and_then(|k| k.writable()) {
            return Ok(WritingKey {
                generation,
                key,
                new: None,
                epoch,
            });
        }
        let current = match remembered {
            None if new_stream => Arc::new(SubjectKeys::default()),
            Some(known) if fresh => known,
            _ => {
                // Read it now (remembered state may be stale), before creating.
                let current = Arc::new(self.load(app_id.0, subject).await?);
                self.remember(key, current.clone(), epoch);
                if !fresh && let Some((generation, key)) = current.writable() {
                    return Ok(WritingKey {
                        generation,
                        key,
                        new: None,
                        epoch,
                    });
                }
                current
            }
        };
        let generation = current.next_generation();
        let bytes = random_bytes::<32>();
        let sealed = self
            .vault
            .seal_bytes(&aad(app_id.0, subject, generation), &bytes);
        Ok(WritingKey {
            generation,
            key: Arc::new(cipher(&bytes)?),
            new: Some(NewSubjectKey {
                subject: subject.to_owned(),
                generation,
                sealed,
                created_at: self.clock.now().timestamp_micros(),
            }),
            epoch,
        })
    }

    /// Remembers a key [`KeyRing::writing_key`] made, now that it is stored.
    pub fn created(&self, app_id: AppId, made: &WritingKey) {
        let Some(new) = &made.new else {
            return;
        };
        let subject = (app_id.0, new.subject.clone());
        let known = self.cached(&subject);
        let mut keys = known.as_ref().map(|k| k.keys.clone()).unwrap_or_default();
        keys.insert(made.generation, Some(made.key.clone()));
        self.remember(
            subject,
            Arc::new(SubjectKeys {
                keys,
                forgotten: known.is_some_and(|k| k.forgotten),
            }),
            made.epoch,
        );
    }

    /// Destroys the subject's live keys (only those of `generations`, when
    /// given) and leaves a tombstone; answers how many keys were destroyed.
    /// What this node remembers of the subject stays until
    /// [`KeyRing::evict`]: meanwhile its writers seal under the destroyed
    /// key they remember rather than make a new generation (see
    /// `services::forget`).
    pub async fn destroy(
        &self,
        app_id: AppId,
        subject: &str,
        generations: Option<&[i64]>,
    ) -> Result<u64, VaultError> {
        let now = self.clock.now().timestamp_micros();
        let chosen: Vec<Option<i64>> = match generations {
            Some(list) => list.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        let mut destroyed = 0;
        let mut tx = self.db.begin().await.map_err(StoreError::from)?;
        on_tx!(&mut tx, |c| {
            for generation in &chosen {
                let sql = if generation.is_some() {
                    "UPDATE subject_keys SET sealed = NULL, forgotten_at = $3 \
                     WHERE app_id = $1 AND subject = $2 AND sealed IS NOT NULL AND generation = $4"
                } else {
                    "UPDATE subject_keys SET sealed = NULL, forgotten_at = $3 \
                     WHERE app_id = $1 AND subject = $2 AND sealed IS NOT NULL"
                };
                let mut query = sqlx::query(sql).bind(app_id.0).bind(subject).bind(now);
                if let Some(generation) = generation {
                    query = query.bind(*generation);
                }
                destroyed += query
                    .execute(&mut *c)
                    .await
                    .map_err(StoreError::from)?
                    .rows_affected();
            }
            sqlx::query(
                "INSERT INTO subject_keys (app_id, subject, generation, sealed, created_at, forgotten_at) \
                 VALUES ($1, $2, 0, NULL, $3, $3) ON CONFLICT DO NOTHING",
            )
            .bind(app_id.0)
            .bind(subject)
            .bind(now)
            .execute(&mut *c)
            .await
            .map_err(StoreError::from)?;
        });
        tx.commit().await.map_err(StoreError::from)?;
        Ok(destroyed)
    }
}
