//! Who is typing where. An entry lives until its deadline (5 s after the last start, so
//! each start resets the timer, on whichever replica it lands); every replica sweeps
//! expired entries and whoever removes one announces the stop, exactly once. Redis keys
//! also carry a 10 s expiry, so nothing outlives that even if every replica dies.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use redis::{AsyncCommands, Script, aio::ConnectionManager};
use uuid::Uuid;

use super::StateResult;
use crate::{clock::SharedClock, sync::lock};

/// The hard bound on any typing state, in Redis as in memory.
pub const TYPING_MAX_AGE: Duration = Duration::from_secs(10);

#[async_trait]
pub trait Typing: Send + Sync {
    /// `user` types in `conversation` until now + `ttl`. `true` when this start is to be
    /// broadcast: the first, or at least `min_interval` after the last broadcast one.
    async fn start(&self, conversation: Uuid, user: Uuid, ttl: Duration, min_interval: Duration) -> StateResult<bool>;
    /// `true` when `user` was typing (a stop is due).
    async fn stop(&self, conversation: Uuid, user: Uuid) -> StateResult<bool>;
    /// Removes the typists whose deadline passed; each is returned to exactly one caller.
    async fn expire(&self) -> StateResult<Vec<(Uuid, Uuid)>>;
    /// The typists of each conversation.
    async fn typing_in(&self, conversations: &[Uuid]) -> StateResult<Vec<Vec<Uuid>>>;
    /// How many typists are held right now.
    async fn count(&self) -> StateResult<usize>;
}

// ---------------------------------------------------------------- in-process

struct Entry {
    deadline: i64,
    last_broadcast: i64,
}

pub struct MemoryTyping {
    clock: SharedClock,
    entries: Mutex<HashMap<(Uuid, Uuid), Entry>>,
}

impl MemoryTyping {
    pub fn new(clock: SharedClock) -> Self {
        Self { clock, entries: Mutex::default() }
    }
}

#[async_trait]
impl Typing for MemoryTyping {
    async fn start(&self, conversation: Uuid, user: Uuid, ttl: Duration, min_interval: Duration) -> StateResult<bool> {
        let now = self.clock.now_ms();
        let deadline = now + ttl.min(TYPING_MAX_AGE).as_millis() as i64;
        let mut entries = lock(&self.entries);
        let entry = entries.entry((conversation, user)).or_insert(Entry { deadline, last_broadcast: i64::MIN / 2 });
        entry.deadline = deadline;
        let broadcast = now - entry.last_broadcast >= min_interval.as_millis() as i64;
        if broadcast {
            entry.last_broadcast = now;
        }
        Ok(broadcast)
    }

    async fn stop(&self, conversation: Uuid, user: Uuid) -> StateResult<bool> {
        Ok(lock(&self.entries).remove(&(conversation, user)).is_some())
    }

    async fn expire(&self) -> StateResult<Vec<(Uuid, Uuid)>> {
        let now = self.clock.now_ms();
        let mut expired = Vec::new();
        lock(&self.entries).retain(|key, entry| {
            let live = entry.deadline > now;
            if !live {
                expired.push(*key);
            }
            live
        });
        Ok(expired)
    }

    async fn typing_in(&self, conversations: &[Uuid]) -> StateResult<Vec<Vec<Uuid>>> {
        let now = self.clock.now_ms();
        let entries = lock(&self.entries);
        Ok(conversations
            .iter()
            .map(|c| {
                entries.iter().filter(|((conv, _), e)| conv == c && e.deadline > now).map(|((_, u), _)| *u).collect()
            })
            .collect())
    }

    async fn count(&self) -> StateResult<usize> {
        Ok(lock(&self.entries).len())
    }
}

// ---------------------------------------------------------------- Redis

/// Per conversation `typing:{conv}` sorted set user → deadline and `typinglast:{conv}` hash
/// user → last broadcast; `typing:active` sorted set conversation → earliest deadline.
const START: &str = r#"
local now, deadline, ttl, min_interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], deadline, ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[3], 'LT', deadline, ARGV[6])
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[5]) or '-1')
if last < 0 or now - last >= min_interval then
  redis.call('HSET', KEYS[2], ARGV[5], now)
  redis.call('PEXPIRE', KEYS[2], ttl)
  return 1
end
return 0
"#;

const STOP: &str = r#"
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('ZREM', KEYS[3], ARGV[2]) end
return removed
"#;

/// KEYS[1] the active set; ARGV now, key prefix. Returns a flat list conv, user, conv, user…
/// (It derives the per-conversation keys itself: fine on one Redis, not on Redis Cluster.)
const EXPIRE: &str = r#"
local now = tonumber(ARGV[1])
local out = {}
for _, conv in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local typists = ARGV[2] .. 'typing:' .. conv
  local last = ARGV[2] .. 'typinglast:' .. conv
  for _, user in ipairs(redis.call('ZRANGEBYSCORE', typists, '-inf', now)) do
    redis.call('ZREM', typists, user)
    redis.call('HDEL', last, user)
    table.insert(out, conv)
    table.insert(out, user)
  end
  local next = redis.call('ZRANGE', typists, 0, 0, 'WITHSCORES')
  if #next == 0 then redis.call('ZREM', KEYS[1], conv) else redis.call('ZADD', KEYS[1], next[2], conv) end
end
return out
"#;

#[derive(Clone)]
pub struct RedisTyping {
    conn: ConnectionManager,
    prefix: Arc<str>,
    clock: SharedClock,
    start: Arc<Script>,
    stop: Arc<Script>,
    expire: Arc<Script>,
}

impl RedisTyping {
    pub fn new(conn: ConnectionManager, prefix: Arc<str>, clock: SharedClock) -> Self {
        Self {
            conn,
            prefix,
            clock,
            start: Arc::new(Script::new(START)),
            stop: Arc::new(Script::new(STOP)),
            expire: Arc::new(Script::new(EXPIRE)),
        }
    }

    fn typists(&self, conversation: Uuid) -> String {
        format!("{}typing:{conversation}", self.prefix)
    }

    fn last(&self, conversation: Uuid) -> String {
        format!("{}typinglast:{conversation}", self.prefix)
    }

    fn active(&self) -> String {
        format!("{}typing:active", self.prefix)
    }
}

#[async_trait]
impl Typing for RedisTyping {
    async fn start(&self, conversation: Uuid, user: Uuid, ttl: Duration, min_interval: Duration) -> StateResult<bool> {
        let now = self.clock.now_ms();
        let deadline = now + ttl.min(TYPING_MAX_AGE).as_millis() as i64;
        let broadcast: i64 = self
            .start
            .key(self.typists(conversation))
            .key(self.last(conversation))
            .key(self.active())
            .arg(now)
            .arg(deadline)
            .arg(TYPING_MAX_AGE.as_millis() as i64)
            .arg(min_interval.as_millis() as i64)
            .arg(user.to_string())
            .arg(conversation.to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(broadcast == 1)
    }

    async fn stop(&self, conversation: Uuid, user: Uuid) -> StateResult<bool> {
        let removed: i64 = self
            .stop
            .key(self.typists(conversation))
            .key(self.last(conversation))
            .key(self.active())
            .arg(user.to_string())
            .arg(conversation.to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(removed == 1)
    }

    async fn expire(&self) -> StateResult<Vec<(Uuid, Uuid)>> {
        let flat: Vec<String> = self
            .expire
            .key(self.active())
            .arg(self.clock.now_ms())
            .arg(&*self.prefix)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(flat.chunks(2).filter_map(|p| Some((p.first()?.parse().ok()?, p.get(1)?.parse().ok()?))).collect())
    }

    async fn typing_in(&self, conversations: &[Uuid]) -> StateResult<Vec<Vec<Uuid>>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now_ms();
        let mut pipe = redis::pipe();
        for conversation in conversations {
            pipe.zrangebyscore(self.typists(*conversation), now + 1, "+inf");
        }
        let lists: Vec<Vec<String>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(lists.into_iter().map(|users| users.iter().filter_map(|u| u.parse().ok()).collect()).collect())
    }

    async fn count(&self) -> StateResult<usize> {
        let active: Vec<String> = self.conn.clone().zrange(self.active(), 0, -1).await?;
        if active.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for conversation in &active {
            pipe.zcard(format!("{}typing:{conversation}", self.prefix));
        }
        let counts: Vec<usize> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(counts.into_iter().sum())
    }
}
