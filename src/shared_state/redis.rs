//! Redis-backed shared state, for several replicas. Every operation is one command or one
//! Lua script, so it is atomic across replicas. Times come from the application's
//! [`Clock`](crate::clock::Clock) (replicas run NTP), which keeps the behaviour testable.
//! The connection is a `ConnectionManager`: it reconnects by itself after Redis restarts.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Script, aio::ConnectionManager};

use super::{Admission, Quota, RateLimits, StateResult, Ticket, TokenRevocations};
use crate::clock::SharedClock;

/// KEYS[1] sorted set of admitted attempts; ARGV now, window, limit, member.
/// Returns -1 when admitted, else the ms until the oldest attempt leaves the window.
const ACQUIRE_WINDOW: &str = r#"
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"#;

/// GCRA. KEYS[1] holds the theoretical arrival time; ARGV now, emission interval, burst.
/// Returns -1 when a token was taken, else the ms until one is free.
const TAKE_TOKEN: &str = r#"
local now, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - burst * interval
if allowed_at > now then return allowed_at - now end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return -1
"#;

#[derive(Clone)]
pub struct RedisState {
    conn: ConnectionManager,
    prefix: Arc<str>,
    clock: SharedClock,
    acquire_window: Arc<Script>,
    take_token: Arc<Script>,
}

impl RedisState {
    pub async fn connect(url: &str, prefix: &str, clock: SharedClock) -> StateResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            conn,
            prefix: prefix.into(),
            clock,
            acquire_window: Arc::new(Script::new(ACQUIRE_WINDOW)),
            take_token: Arc::new(Script::new(TAKE_TOKEN)),
        })
    }

    pub async fn ping(&self) -> StateResult<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn prefix(&self) -> Arc<str> {
        self.prefix.clone()
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }
}

fn denied_after(ms: i64) -> Admission {
    Admission::Denied { retry_after: Duration::from_millis(ms.max(1) as u64) }
}

#[async_trait]
impl TokenRevocations for RedisState {
    async fn revoke(&self, jti: &str, expires_at: DateTime<Utc>) -> StateResult<()> {
        let ttl = expires_at.timestamp_millis() - self.clock.now_ms();
        if ttl > 0 {
            let _: () = self.conn.clone().pset_ex(self.key("revoked", jti), 1u8, ttl as u64).await?;
        }
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> StateResult<bool> {
        Ok(self.conn.clone().exists(self.key("revoked", jti)).await?)
    }
}

#[async_trait]
impl RateLimits for RedisState {
    async fn acquire(&self, key: &str, limit: u32, window: Duration) -> StateResult<Admission> {
        let member = uuid::Uuid::new_v4().to_string();
        let wait: i64 = self
            .acquire_window
            .key(self.key("window", key))
            .arg(self.clock.now_ms())
            .arg(window.as_millis() as i64)
            .arg(limit)
            .arg(&member)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(if wait < 0 { Admission::Admitted(Ticket(member)) } else { denied_after(wait) })
    }

    async fn release(&self, key: &str, ticket: &Ticket) -> StateResult<()> {
        let _: i64 = self.conn.clone().zrem(self.key("window", key), &ticket.0).await?;
        Ok(())
    }

    async fn take(&self, key: &str, quota: Quota) -> StateResult<Admission> {
        let wait: i64 = self
            .take_token
            .key(self.key("bucket", key))
            .arg(self.clock.now_ms())
            .arg(quota.emission_interval_ms())
            .arg(quota.burst.max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(if wait < 0 { Admission::Admitted(Ticket(String::new())) } else { denied_after(wait) })
    }

    /// The value is the end on the application's clock (tests move it); the key's own expiry
    /// only clears it away.
    async fn penalize(&self, key: &str, duration: Duration) -> StateResult<()> {
        let ms = duration.as_millis().max(1) as u64;
        let until = self.clock.now_ms().saturating_add(ms as i64);
        let _: () = self.conn.clone().pset_ex(self.key("penalty", key), until, ms).await?;
        Ok(())
    }

    async fn penalty(&self, keys: &[String]) -> StateResult<Option<Duration>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = keys.iter().map(|key| self.key("penalty", key)).collect();
        let ends: Vec<Option<i64>> = redis::cmd("MGET").arg(&keys).query_async(&mut self.conn.clone()).await?;
        let now = self.clock.now_ms();
        let until = ends.into_iter().flatten().max();
        Ok(until.filter(|until| *until > now).map(|until| Duration::from_millis((until - now) as u64)))
    }
}
