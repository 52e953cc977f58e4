//! Is a verified access token still good? Its session version (`sv`) must be the account's
//! current one, which a password change or a deletion raises (a deleted account has none).
//! The BFF asks the user service (`GetUser`) and keeps the answer for a short while
//! (`SESSION_CACHE_MS`, 2 s by default), so a token is refused within seconds of the change
//! and the check costs one lookup per user and interval. If the user service cannot be
//! reached, the last answer is used for up to [`STALE_FOR`]; with none, the token's signature
//! and expiry alone decide (availability over a check that cannot be made; logged).

use crate::auth::Caller;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a last known answer stands in while the user service is unreachable.
const STALE_FOR: Duration = Duration::from_secs(300);
/// Most users remembered.
const MAX_ENTRIES: usize = 100_000;

/// user id → (when asked, the current session version, or None: no live account).
type Cache = Arc<Mutex<HashMap<String, (Instant, Option<u64>)>>>;

#[derive(Clone)]
pub struct Sessions {
    fresh_for: Duration,
    cache: Cache,
}

impl Sessions {
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            cache: Arc::default(),
        }
    }

    /// The caller, or `Invalid` when its token's session is over. `get_user` asks the user
    /// service for the account (`GetUser`, with whatever credentials the call needs); it is
    /// called only when the cache has no fresh answer.
    pub async fn check<F, Fut>(&self, caller: Caller, get_user: F) -> Caller
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<tonic::Response<proto::user::UserView>, tonic::Status>>,
    {
        let Caller::User(claims) = &caller else {
            return caller;
        };
        match self.current(&claims.sub, get_user).await {
            Some(Some(sv)) if sv == claims.sv => caller,
            Some(_) => Caller::Invalid,
            None => caller,
        }
    }

    /// Forgets what is known of a user (after a change made through this BFF).
    pub fn forget(&self, user_id: &str) {
        self.lock().remove(user_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<u64>)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Some(current version or None for no account), or None when it cannot be told.
    async fn current<F, Fut>(&self, user_id: &str, get_user: F) -> Option<Option<u64>>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<tonic::Response<proto::user::UserView>, tonic::Status>>,
    {
        let now = Instant::now();
        let known = self.lock().get(user_id).copied();
        if let Some((at, v)) = known {
            if now.duration_since(at) < self.fresh_for {
                return Some(v);
            }
        }
        let asked = get_user(user_id.to_owned()).await;
        let answer = match asked {
            Ok(u) => Some(u.into_inner().session_version),
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => {
                tracing::warn!(status = ?s, "session check: user service unreachable");
                metrics::counter!("session_check_unavailable_total").increment(1);
                return known
                    .filter(|(at, _)| now.duration_since(*at) < STALE_FOR)
                    .map(|(_, v)| v);
            }
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            let fresh_for = self.fresh_for;
            cache.retain(|_, (at, _)| now.duration_since(*at) < fresh_for);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(user_id.to_owned(), (now, answer));
        Some(answer)
    }
}
