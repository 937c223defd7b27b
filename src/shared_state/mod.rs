//! State that every replica must see the same way: revoked access tokens, rate-limit
//! buckets, presence and typing (counters join here as they land). Each kind is one
//! trait with an in-process implementation (embedded mode, one replica) and a Redis one
//! (`REDIS_URL` set). The suite in `tests/shared_state` runs against both.

pub mod memory;
pub mod presence;
pub mod receipts;
pub mod redis;
pub mod typing;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::SharedClock;
pub use presence::{CONNECTION_RENEW, CONNECTION_TTL, LiveState, Presence, PresenceStatus};
use presence::{MemoryPresence, RedisPresence};
use receipts::{MemoryReadBatches, RedisReadBatches};
pub use receipts::{PendingRead, ReadBatches};
pub use typing::Typing;
use typing::{MemoryTyping, RedisTyping};

pub type StateResult<T> = Result<T, StateError>;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
}

/// Access tokens (by `jti`) that were revoked before they expired.
#[async_trait]
pub trait TokenRevocations: Send + Sync {
    /// Remembers `jti` as revoked until `expires_at`, after which the token is dead anyway.
    async fn revoke(&self, jti: &str, expires_at: DateTime<Utc>) -> StateResult<()>;
    async fn is_revoked(&self, jti: &str) -> StateResult<bool>;
}

/// The outcome of asking a limiter for room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Admitted; the ticket can hand the slot back (see [`RateLimits::release`]).
    Admitted(Ticket),
    Denied {
        retry_after: Duration,
    },
}

impl Admission {
    pub fn is_admitted(&self) -> bool {
        matches!(self, Self::Admitted(_))
    }
}

/// Identifies one admitted attempt in a sliding window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket(pub String);

/// A token bucket: `burst` tokens, refilled evenly at `burst` per `period`.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    pub burst: u32,
    pub period: Duration,
}

impl Quota {
    pub fn per_minute(n: u32) -> Self {
        Self { burst: n.max(1), period: Duration::from_secs(60) }
    }

    /// Time between two refills, in ms (at least 1).
    fn emission_interval_ms(&self) -> i64 {
        (self.period.as_millis() as i64 / i64::from(self.burst.max(1))).max(1)
    }
}

#[async_trait]
pub trait RateLimits: Send + Sync {
    /// Sliding-window log: admits when fewer than `limit` attempts were admitted under `key`
    /// during the last `window`, and records this one. Atomic, so a burst of parallel
    /// attempts cannot overshoot the limit.
    async fn acquire(&self, key: &str, limit: u32, window: Duration) -> StateResult<Admission>;
    /// Forgets one admitted attempt (it turned out not to count, e.g. a successful login).
    async fn release(&self, key: &str, ticket: &Ticket) -> StateResult<()>;
    /// Token bucket (GCRA): takes one token or says how long until one is free.
    async fn take(&self, key: &str, quota: Quota) -> StateResult<Admission>;
    /// Puts `key` under a penalty for `duration` from now (replacing an earlier one).
    async fn penalize(&self, key: &str, duration: Duration) -> StateResult<()>;
    /// The longest penalty still running among `keys`, as the time it has left.
    async fn penalty(&self, keys: &[String]) -> StateResult<Option<Duration>>;
}

/// The shared-state handles the application runs with.
#[derive(Clone)]
pub struct SharedState {
    pub revocations: Arc<dyn TokenRevocations>,
    pub rate_limits: Arc<dyn RateLimits>,
    pub presence: Arc<dyn Presence>,
    pub typing: Arc<dyn Typing>,
    pub reads: Arc<dyn ReadBatches>,
    redis: Option<redis::RedisState>,
}

impl SharedState {
    pub fn in_process(clock: SharedClock) -> Self {
        let state = Arc::new(memory::MemoryState::new(clock.clone()));
        Self {
            revocations: state.clone(),
            rate_limits: state,
            presence: Arc::new(MemoryPresence::new(clock.clone())),
            typing: Arc::new(MemoryTyping::new(clock)),
            reads: Arc::new(MemoryReadBatches::default()),
            redis: None,
        }
    }

    /// Connects to Redis; every key starts with `prefix`.
    pub async fn redis(url: &str, prefix: &str, clock: SharedClock) -> StateResult<Self> {
        let state = redis::RedisState::connect(url, prefix, clock.clone()).await?;
        let shared = Arc::new(state.clone());
        let (conn, prefix) = (state.connection(), state.prefix());
        Ok(Self {
            revocations: shared.clone(),
            rate_limits: shared,
            presence: Arc::new(RedisPresence::new(conn.clone(), prefix.clone(), clock.clone())),
            typing: Arc::new(RedisTyping::new(conn.clone(), prefix.clone(), clock)),
            reads: Arc::new(RedisReadBatches::new(conn, prefix)),
            redis: Some(state),
        })
    }

    /// `"disabled"` in embedded mode, else whether Redis answers a PING.
    pub async fn health(&self) -> &'static str {
        match &self.redis {
            None => "disabled",
            Some(redis) if redis.ping().await.is_ok() => "ok",
            Some(_) => "error",
        }
    }
}
