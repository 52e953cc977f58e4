//! Crypto-shredding: the one component that seals and opens the personal fields of events
//! (see `event_schemas::personal` for which fields and the sealed form) with a key per person
//! kept in `person_keys`, in the event store's database.
//!
//! - A key document is `{_id: <person id>, key: <32 random bytes>, created_at}`; it is made the
//!   first time an event about the person is sealed.
//! - Deleting the account replaces it, in the same transaction as `UserDeleted`, by a
//!   tombstone `{_id, erased_at}` with no key material ([`Keyring::forget`]); from then on
//!   every sealed field about the person opens as `null` and no new key is made for them.
//! - Readers (the command services loading aggregates, the projectors, rebuilds, the CLI)
//!   open through [`Keyring::open`], which caches lookups for [`CACHE_TTL`]: a key destroyed
//!   elsewhere stops being used within that time.

use crate::mongo::SideWrite;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use event_schemas::personal::{self, ERASED, SEALED_ALG};
use event_schemas::EventEnvelope;
use mongodb::bson::{self, doc, Document};
use mongodb::{Collection, Database};
use rand::TryRngCore;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The collection of person keys, in the event store's database.
pub const KEYS_COLLECTION: &str = "person_keys";
/// How long a looked-up key (or its absence) is trusted before it is looked up again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Most keys one process caches; past it the cache is emptied and refilled on demand.
const CACHE_MAX: usize = 100_000;

/// Why a field could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    /// The key store cannot be reached; retrying later may succeed.
    #[error("person keys unavailable: {0}")]
    Unavailable(String),
    /// A sealed field or key document is malformed or does not authenticate.
    #[error("sealed field does not open: {0}")]
    Corrupt(String),
}

impl From<mongodb::error::Error> for PiiError {
    fn from(e: mongodb::error::Error) -> Self {
        PiiError::Unavailable(e.to_string())
    }
}

type Key = Arc<[u8; 32]>;

#[derive(Clone)]
enum KeyState {
    Live(Key),
    /// Destroyed (a tombstone) or never made: nothing sealed for this person opens.
    Erased,
}

/// Which sealed fields [`Keyring::open_with`] opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    /// Open every field whose key is alive; erased ones become `null`.
    All,
    /// Leave fields with a live key sealed; only erased ones become `null` (exports).
    ErasedOnly,
}

/// Seals and opens personal fields. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Keyring {
    keys: Collection<Document>,
    cache: Arc<Mutex<HashMap<String, (Instant, KeyState)>>>,
    ttl: Duration,
}

fn aad(subject: &str, field: &str) -> Vec<u8> {
    format!("pii/v1\0{subject}\0{field}").into_bytes()
}

fn random<const N: usize>() -> Result<[u8; N], PiiError> {
    let mut out = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut out)
        .map_err(|e| PiiError::Unavailable(format!("no randomness: {e}")))?;
    Ok(out)
}

/// Seals one value with a key.
fn seal_value(
    key: &[u8; 32],
    subject: &str,
    field: &str,
    value: &Value,
) -> Result<Value, PiiError> {
    let cipher =
        Aes256Gcm::new_from_slice(key).map_err(|e| PiiError::Corrupt(format!("key: {e}")))?;
    let nonce: [u8; 12] = random()?;
    let plain = serde_json::to_vec(value).map_err(|e| PiiError::Corrupt(e.to_string()))?;
    let aad = aad(subject, field);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| PiiError::Corrupt("encryption failed".into()))?;
    Ok(json!({
        "sealed": SEALED_ALG,
        "subject": subject,
        "nonce": B64.encode(nonce),
        "ciphertext": B64.encode(ciphertext),
    }))
}

/// Opens one sealed value with its key.
fn open_value(key: &[u8; 32], field: &str, sealed: &Value) -> Result<Value, PiiError> {
    let part = |k: &str| {
        sealed
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| PiiError::Corrupt(format!("{field}: no {k}")))
    };
    let subject = part("subject")?;
    let nonce = B64
        .decode(part("nonce")?)
        .map_err(|_| PiiError::Corrupt(format!("{field}: nonce")))?;
    let ciphertext = B64
        .decode(part("ciphertext")?)
        .map_err(|_| PiiError::Corrupt(format!("{field}: ciphertext")))?;
    if nonce.len() != 12 {
        return Err(PiiError::Corrupt(format!("{field}: nonce length")));
    }
    let cipher =
        Aes256Gcm::new_from_slice(key).map_err(|e| PiiError::Corrupt(format!("key: {e}")))?;
    let aad = aad(subject, field);
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| PiiError::Corrupt(format!("{field} does not authenticate")))?;
    serde_json::from_slice(&plain).map_err(|e| PiiError::Corrupt(format!("{field}: {e}")))
}

impl Keyring {
    /// The keyring of the store in `db`.
    pub fn new(db: &Database) -> Self {
        Self::with_ttl(db, CACHE_TTL)
    }

    /// With another cache lifetime (`Duration::ZERO` looks every key up every time).
    pub fn with_ttl(db: &Database, ttl: Duration) -> Self {
        Self {
            keys: db.collection(KEYS_COLLECTION),
            cache: Arc::new(Mutex::new(HashMap::new())),
            ttl,
        }
    }

    fn cached(&self, subject: &str) -> Option<KeyState> {
        let cache = self.cache.lock().ok()?;
        let (at, state) = cache.get(subject)?;
        (at.elapsed() < self.ttl).then(|| state.clone())
    }

    fn remember(&self, subject: &str, state: KeyState) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(subject.to_owned(), (Instant::now(), state));
        }
    }

    /// Drops a subject from this process's cache (after [`Keyring::forget`] committed).
    pub fn forgotten(&self, subject: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(subject.to_owned(), (Instant::now(), KeyState::Erased));
        }
    }

    /// The stored state of a subject's key: `None` when no document exists.
    async fn fetch(&self, subject: &str) -> Result<Option<KeyState>, PiiError> {
        let Some(d) = self.keys.find_one(doc! { "_id": subject }).await? else {
            return Ok(None);
        };
        match d.get_binary_generic("key") {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| PiiError::Corrupt(format!("key of {subject} is not 32 bytes")))?;
                Ok(Some(KeyState::Live(Arc::new(key))))
            }
            // A tombstone: the key was destroyed.
            Err(_) => Ok(Some(KeyState::Erased)),
        }
    }

    async fn key(&self, subject: &str) -> Result<KeyState, PiiError> {
        if let Some(s) = self.cached(subject) {
            return Ok(s);
        }
        let state = self.fetch(subject).await?.unwrap_or(KeyState::Erased);
        self.remember(subject, state.clone());
        Ok(state)
    }

    /// The key to seal with: the subject's live key, a new one when they have none yet, or
    /// `None` when theirs was destroyed (their fields are then written erased).
    async fn sealing_key(&self, subject: &str) -> Result<Option<Key>, PiiError> {
        if let Some(KeyState::Live(k)) = self.cached(subject) {
            return Ok(Some(k));
        }
        for _ in 0..2 {
            match self.fetch(subject).await? {
                Some(KeyState::Live(k)) => {
                    self.remember(subject, KeyState::Live(k.clone()));
                    return Ok(Some(k));
                }
                Some(KeyState::Erased) => return Ok(None),
                None => {}
            }
            let key: [u8; 32] = random()?;
            let fresh = doc! {
                "_id": subject,
                "key": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: key.to_vec() },
                "created_at": bson::DateTime::now(),
            };
            match self.keys.insert_one(fresh).await {
                Ok(_) => {
                    let key = Arc::new(key);
                    self.remember(subject, KeyState::Live(key.clone()));
                    return Ok(Some(key));
                }
                // Another writer made one first: read theirs.
                Err(e)
                    if crate::mongo::error_code(&e) == Some(crate::mongo::codes::DUPLICATE_KEY) => {
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(PiiError::Unavailable(format!(
            "the key of {subject} could not be read or made"
        )))
    }

    /// Seals the personal fields of an envelope (in place) with its subject's key.
    pub async fn seal(&self, env: &mut EventEnvelope) -> Result<(), PiiError> {
        let Some(p) = personal::personal_fields(&env.stream_type, &env.event_type) else {
            return Ok(());
        };
        let Some(subject) = personal::subject_of(env, p) else {
            return Ok(());
        };
        let present = p.fields.iter().any(|f| {
            env.data
                .get(*f)
                .is_some_and(|v| !v.is_null() && !personal::is_sealed(v))
        });
        if !present {
            return Ok(());
        }
        let key = self.sealing_key(&subject).await?;
        let Some(obj) = env.data.as_object_mut() else {
            return Ok(());
        };
        for field in p.fields {
            let Some(value) = obj.get_mut(*field) else {
                continue;
            };
            if value.is_null() || personal::is_sealed(value) {
                continue;
            }
            *value = match &key {
                Some(k) => seal_value(k, &subject, field, value)?,
                None => ERASED,
            };
        }
        Ok(())
    }

    /// Opens every sealed field of an envelope (in place): plaintext with a live key, `null`
    /// (erased) without one. Plaintext fields (written before sealing) stay as they are.
    pub async fn open(&self, env: &mut EventEnvelope) -> Result<(), PiiError> {
        self.open_with(env, Reveal::All).await
    }

    /// [`Keyring::open`] with a choice of what to reveal.
    pub async fn open_with(&self, env: &mut EventEnvelope, reveal: Reveal) -> Result<(), PiiError> {
        let Some(obj) = env.data.as_object_mut() else {
            return Ok(());
        };
        for (field, value) in obj.iter_mut() {
            if !personal::is_sealed(value) {
                continue;
            }
            let subject = value
                .get("subject")
                .and_then(Value::as_str)
                .ok_or_else(|| PiiError::Corrupt(format!("{field}: no subject")))?
                .to_owned();
            match self.key(&subject).await? {
                KeyState::Live(k) => {
                    if reveal == Reveal::All {
                        *value = open_value(&k, field, value)?;
                    }
                }
                KeyState::Erased => *value = ERASED,
            }
        }
        Ok(())
    }

    /// The write that destroys a person's key, for the transaction of their deletion: the
    /// key document becomes a tombstone, so no new key is ever made for them.
    pub fn forget(subject: &str) -> SideWrite {
        SideWrite::Replace {
            collection: KEYS_COLLECTION,
            id: subject.to_owned(),
            doc: doc! { "_id": subject, "erased_at": bson::DateTime::now() },
        }
    }
}

/// Does this envelope hold a sealed field? (Most do not: no key lookup for them.)
pub fn has_sealed(env: &EventEnvelope) -> bool {
    env.data
        .as_object()
        .is_some_and(|o| o.values().any(personal::is_sealed))
}

impl Keyring {
    /// Connects to the store at `uri` for its keys alone (projectors, the CLI).
    pub async fn connect(uri: &str, db_name: &str) -> Result<Self, PiiError> {
        let mut options = mongodb::options::ClientOptions::parse(uri).await?;
        options.app_name = Some("commerce-keys".into());
        options.server_selection_timeout = Some(Duration::from_secs(5));
        options.connect_timeout = Some(Duration::from_secs(5));
        let client = mongodb::Client::with_options(options)?;
        Ok(Self::new(&client.database(db_name)))
    }
}

/// The key store a process opens sealed fields with, connected on first use.
struct Installed {
    uri: String,
    db: String,
    ring: tokio::sync::OnceCell<Keyring>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Names the store whose keys [`open_installed`] uses in this process (the first call wins).
pub fn install(uri: &str, db_name: &str) {
    let _ = INSTALLED.set(Installed {
        uri: uri.to_owned(),
        db: db_name.to_owned(),
        ring: tokio::sync::OnceCell::new(),
    });
}

/// The installed keyring, connected.
pub async fn installed() -> Result<&'static Keyring, PiiError> {
    let i = INSTALLED
        .get()
        .ok_or_else(|| PiiError::Unavailable("no key store configured".into()))?;
    i.ring
        .get_or_try_init(|| Keyring::connect(&i.uri, &i.db))
        .await
}

/// Opens the sealed fields of an envelope (see [`Keyring::open_with`]) with the installed
/// key store; an envelope without sealed fields is left alone without a lookup.
pub async fn open_installed(env: &mut EventEnvelope, reveal: Reveal) -> Result<(), PiiError> {
    if !has_sealed(env) {
        return Ok(());
    }
    installed().await?.open_with(env, reveal).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only() {
        let key = [7u8; 32];
        let v = json!("ann@example.com");
        let sealed = seal_value(&key, "u1", "email", &v).unwrap();
        assert!(personal::is_sealed(&sealed));
        assert!(!sealed.to_string().contains("ann@"));
        assert_eq!(open_value(&key, "email", &sealed).unwrap(), v);
        assert!(open_value(&[8u8; 32], "email", &sealed).is_err());
        // Moved to another field: the associated data no longer matches.
        assert!(open_value(&key, "name", &sealed).is_err());
        // A fresh nonce every time.
        assert_ne!(seal_value(&key, "u1", "email", &v).unwrap(), sealed);
    }
}
