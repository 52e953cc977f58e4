//! Throttling of the account mutations, in the BFF (which knows the client's address):
//!
//! - `login`: every attempt counts against three buckets, the pair (email, client), the email
//!   alone (looser) and the client alone (failures only: a success is refunded). Past a bucket's
//!   free attempts each further attempt is allowed only after a backoff that doubles (base ..
//!   max); a success clears the pair's and the email's counts and makes the pair *known*, and a
//!   known pair is not held back by the email-wide bucket, so an attacker hammering someone's
//!   email from elsewhere cannot lock its owner out. Counts decay (one per `decay` interval).
//! - `register` and `refreshToken`: a plain rate per client (governor's keyed token bucket).
//!
//! Every attempt is counted before the password is checked, so aliases of one request and
//! concurrent requests are counted alike. Refusals are `THROTTLED` with a retry-after hint.
//! State is per BFF instance and bounded (oldest entries go first).

use crate::error::BffError;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys kept per map before idle ones are dropped.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, clap::Args)]
pub struct ThrottleArgs {
    /// Log-in attempts for one (email, client) pair before backoff starts.
    #[arg(long, env = "LOGIN_FREE_ATTEMPTS_PER_PAIR", default_value_t = 5)]
    pub login_free_per_pair: u32,
    /// Log-in attempts for one email (from anywhere) before backoff starts.
    #[arg(long, env = "LOGIN_FREE_ATTEMPTS_PER_EMAIL", default_value_t = 20)]
    pub login_free_per_email: u32,
    /// Failed log-ins from one client (any email) before backoff starts.
    #[arg(long, env = "LOGIN_FREE_FAILURES_PER_CLIENT", default_value_t = 50)]
    pub login_free_per_client: u32,
    /// The first backoff, in milliseconds; it doubles with every further attempt.
    #[arg(long, env = "LOGIN_BACKOFF_BASE_MS", default_value_t = 1000)]
    pub login_backoff_base_ms: u64,
    /// The longest backoff, in seconds.
    #[arg(long, env = "LOGIN_BACKOFF_MAX_SECS", default_value_t = 300)]
    pub login_backoff_max_secs: u64,
    /// One counted attempt is forgotten per this many seconds.
    #[arg(long, env = "LOGIN_DECAY_SECS", default_value_t = 60)]
    pub login_decay_secs: u64,
    /// Registrations per client and minute.
    #[arg(long, env = "REGISTER_PER_CLIENT_PER_MINUTE", default_value_t = 30)]
    pub register_per_minute: u32,
    /// Token refreshes per client and minute.
    #[arg(long, env = "REFRESH_PER_CLIENT_PER_MINUTE", default_value_t = 120)]
    pub refresh_per_minute: u32,
}

impl Default for ThrottleArgs {
    fn default() -> Self {
        Self {
            login_free_per_pair: 5,
            login_free_per_email: 20,
            login_free_per_client: 50,
            login_backoff_base_ms: 1000,
            login_backoff_max_secs: 300,
            login_decay_secs: 60,
            register_per_minute: 30,
            refresh_per_minute: 120,
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    count: u32,
    /// When `count` was last brought up to date (decay is applied from here).
    at: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Default)]
struct State {
    buckets: HashMap<String, Bucket>,
    /// (email, client) pairs that logged in, until when they are trusted.
    known: HashMap<String, Instant>,
}

pub struct Throttle {
    args: ThrottleArgs,
    state: Mutex<State>,
    register: DefaultKeyedRateLimiter<String>,
    refresh: DefaultKeyedRateLimiter<String>,
}

/// An admitted log-in attempt: tell it how it went.
#[must_use]
pub struct LoginAttempt<'a> {
    throttle: &'a Throttle,
    pair: String,
    email: String,
    client: String,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

fn throttled(wait: Duration) -> BffError {
    BffError::Throttled(format!(
        "too many attempts; retry in {} s",
        wait.as_secs().max(1)
    ))
}

impl Throttle {
    pub fn new(args: ThrottleArgs) -> Self {
        Self {
            register: RateLimiter::keyed(per_minute(args.register_per_minute)),
            refresh: RateLimiter::keyed(per_minute(args.refresh_per_minute)),
            args,
            state: Mutex::new(State::default()),
        }
    }

    fn backoff(&self, over: u32) -> Duration {
        let base = Duration::from_millis(self.args.login_backoff_base_ms);
        let max = Duration::from_secs(self.args.login_backoff_max_secs);
        base.saturating_mul(1u32 << over.min(20)).min(max)
    }

    /// Brings a bucket's count up to date with its decay.
    fn decayed(&self, b: &mut Bucket, now: Instant) {
        let decay = Duration::from_secs(self.args.login_decay_secs.max(1));
        let steps = (now.saturating_duration_since(b.at).as_secs() / decay.as_secs()) as u32;
        if steps > 0 {
            b.count = b.count.saturating_sub(steps);
            b.at = now;
        }
    }

    /// Admits a log-in attempt for `email` from `client`, or refuses it with `THROTTLED`.
    pub fn login(&self, email: &str, client: &str) -> Result<LoginAttempt<'_>, BffError> {
        let email = email.trim().to_lowercase();
        // Only a bounded prefix of what the client sent becomes a key.
        let email: String = email.chars().take(320).collect();
        let pair = format!("p|{email}|{client}");
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let known = st.known.get(&pair).is_some_and(|t| *t > now);
        let mut keys = vec![
            (pair.clone(), self.args.login_free_per_pair),
            (format!("c|{client}"), self.args.login_free_per_client),
        ];
        if !known {
            keys.push((format!("e|{email}"), self.args.login_free_per_email));
        }
        // First pass: is any bucket holding this attempt back?
        for (key, _) in &keys {
            if let Some(until) = st.buckets.get(key).and_then(|b| b.blocked_until) {
                if until > now {
                    metrics::counter!("login_throttled_total").increment(1);
                    return Err(throttled(until - now));
                }
            }
        }
        // Admitted: count it everywhere; past the free attempts, the next one waits.
        for (key, free) in keys {
            let b = st.buckets.entry(key).or_insert(Bucket {
                count: 0,
                at: now,
                blocked_until: None,
            });
            self.decayed(b, now);
            b.count = b.count.saturating_add(1);
            b.blocked_until = (b.count > free).then(|| now + self.backoff(b.count - free - 1));
        }
        if st.buckets.len() > MAX_KEYS {
            let cutoff = Duration::from_secs(self.args.login_backoff_max_secs);
            st.buckets
                .retain(|_, b| b.blocked_until.is_some_and(|u| u > now) || now - b.at < cutoff);
            if st.buckets.len() > MAX_KEYS {
                st.buckets.clear();
            }
        }
        Ok(LoginAttempt {
            throttle: self,
            pair,
            email: format!("e|{email}"),
            client: format!("c|{client}"),
        })
    }

    /// A registration from `client`, or `THROTTLED`.
    pub fn register(&self, client: &str) -> Result<(), BffError> {
        Self::rate(&self.register, client)
    }

    /// A token refresh from `client`, or `THROTTLED`.
    pub fn refresh(&self, client: &str) -> Result<(), BffError> {
        Self::rate(&self.refresh, client)
    }

    fn rate(limiter: &DefaultKeyedRateLimiter<String>, client: &str) -> Result<(), BffError> {
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        limiter.check_key(&client.to_owned()).map_err(|not_until| {
            metrics::counter!("account_throttled_total").increment(1);
            throttled(not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            )))
        })
    }
}

impl LoginAttempt<'_> {
    /// The password was right: the pair and the email start afresh, the client gets its
    /// attempt back, and the pair is known from now on.
    pub fn succeeded(self) {
        let mut st = self
            .throttle
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        st.buckets.remove(&self.pair);
        st.buckets.remove(&self.email);
        if let Some(b) = st.buckets.get_mut(&self.client) {
            b.count = b.count.saturating_sub(1);
            if b.count <= self.throttle.args.login_free_per_client {
                b.blocked_until = None;
            }
        }
        if st.known.len() > MAX_KEYS {
            let now = Instant::now();
            st.known.retain(|_, t| *t > now);
            if st.known.len() > MAX_KEYS {
                st.known.clear();
            }
        }
        st.known.insert(
            self.pair,
            Instant::now() + Duration::from_secs(30 * 24 * 3600),
        );
    }

    /// Wrong credentials: the attempt stays counted.
    pub fn failed(self) {}

    /// The attempt could not be decided (a backend failed): it does not count.
    pub fn refund(self) {
        let mut st = self
            .throttle
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for key in [&self.pair, &self.email, &self.client] {
            if let Some(b) = st.buckets.get_mut(key) {
                b.count = b.count.saturating_sub(1);
            }
        }
    }
}

/// Settles a log-in attempt by the user service's answer.
pub fn settle<T>(attempt: Option<LoginAttempt<'_>>, result: &Result<T, tonic::Status>) {
    let Some(a) = attempt else { return };
    match result {
        Ok(_) => a.succeeded(),
        Err(s) if s.code() == tonic::Code::Unauthenticated => a.failed(),
        Err(_) => a.refund(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleArgs {
            login_free_per_pair: 3,
            login_free_per_email: 6,
            login_free_per_client: 10,
            login_backoff_base_ms: 60_000,
            ..ThrottleArgs::default()
        })
    }

    fn code(r: Result<LoginAttempt<'_>, BffError>) -> &'static str {
        match r {
            Ok(a) => {
                a.failed();
                "OK"
            }
            Err(e) => e.code(),
        }
    }

    #[test]
    fn guesses_past_the_free_ones_are_throttled_and_a_success_resets() {
        let t = throttle();
        let codes: Vec<_> = (0..6)
            .map(|_| code(t.login("Ann@x.io", "1.2.3.4")))
            .collect();
        assert_eq!(codes, ["OK", "OK", "OK", "OK", "THROTTLED", "THROTTLED"]);
        // Another client is not held back by this pair.
        let a = t.login("ann@x.io", "5.6.7.8").unwrap();
        a.succeeded();
        // Nor by the email-wide bucket, once it is a known pair.
        for _ in 0..10 {
            let _ = t.login("ann@x.io", &format!("9.9.9.{}", rand_octet()));
        }
        assert_eq!(code(t.login("ann@x.io", "5.6.7.8")), "OK");
    }

    fn rand_octet() -> u8 {
        (uuid::Uuid::new_v4().as_u128() % 250) as u8
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let t = Throttle::new(ThrottleArgs {
            login_backoff_base_ms: 1000,
            login_backoff_max_secs: 5,
            ..ThrottleArgs::default()
        });
        assert_eq!(t.backoff(0), Duration::from_secs(1));
        assert_eq!(t.backoff(2), Duration::from_secs(4));
        assert_eq!(t.backoff(3), Duration::from_secs(5));
        assert_eq!(t.backoff(99), Duration::from_secs(5));
    }

    #[test]
    fn registrations_are_rated_per_client() {
        let t = Throttle::new(ThrottleArgs {
            register_per_minute: 2,
            ..ThrottleArgs::default()
        });
        assert!(t.register("a").is_ok());
        assert!(t.register("a").is_ok());
        assert_eq!(t.register("a").map_err(|e| e.code()), Err("THROTTLED"));
        assert!(t.register("b").is_ok());
    }
}
