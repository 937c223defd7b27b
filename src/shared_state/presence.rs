//! Who is connected, with which status, across replicas. Each socket is an entry that its
//! replica renews every [`CONNECTION_RENEW`]; an entry not renewed for [`CONNECTION_TTL`]
//! (its replica died) stops counting, and the presence sweep announces the user offline.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use redis::{AsyncCommands, Script, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StateResult;
use crate::{clock::SharedClock, sync::lock};

pub const CONNECTION_TTL: Duration = Duration::from_secs(30);
pub const CONNECTION_RENEW: Duration = Duration::from_secs(10);

/// A user's presence as others see it: the best status of their live devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Offline,
    Away,
    Online,
}

impl PresenceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Away => "away",
            Self::Online => "online",
        }
    }

    fn parse(raw: &str) -> Self {
        match raw {
            "online" => Self::Online,
            "away" => Self::Away,
            _ => Self::Offline,
        }
    }
}

/// The aggregate of a user's live sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveState {
    pub status: PresenceStatus,
    /// Last connect, heartbeat or disconnect of any device, in ms.
    pub last_activity_ms: Option<i64>,
    /// What others were last told.
    pub announced: PresenceStatus,
}

impl LiveState {
    /// What others see: a user whose last device just left stays as announced until the
    /// offline announcement (after the grace period).
    pub fn visible_status(&self) -> PresenceStatus {
        match self.status {
            PresenceStatus::Offline => self.announced,
            live => live,
        }
    }
}

#[async_trait]
pub trait Presence: Send + Sync {
    /// A socket of `user` is live with `status` (connect or heartbeat): renews it and
    /// records the activity.
    async fn touch(&self, user: Uuid, socket: &str, status: PresenceStatus) -> StateResult<()>;
    async fn remove(&self, user: Uuid, socket: &str) -> StateResult<()>;
    /// Keeps this replica's sockets alive without touching status or activity.
    async fn renew(&self, sockets: &[(Uuid, String)]) -> StateResult<()>;
    async fn states(&self, users: &[Uuid]) -> StateResult<Vec<LiveState>>;
    /// Records `status` as last announced for `user`; returns the one announced before.
    async fn announce(&self, user: Uuid, status: PresenceStatus) -> StateResult<PresenceStatus>;
    /// Users last announced online or away (the presence sweep checks they still are).
    async fn announced_present(&self) -> StateResult<Vec<Uuid>>;

    /// The subset of `users` with at least one live socket.
    async fn online(&self, users: &[Uuid]) -> StateResult<Vec<Uuid>> {
        let states = self.states(users).await?;
        Ok(users.iter().zip(states).filter(|(_, s)| s.status != PresenceStatus::Offline).map(|(u, _)| *u).collect())
    }
}

fn ttl_ms() -> i64 {
    CONNECTION_TTL.as_millis() as i64
}

// ---------------------------------------------------------------- in-process

#[derive(Default)]
struct UserEntry {
    /// socket → (expiry ms, status)
    sockets: HashMap<String, (i64, PresenceStatus)>,
    last_activity_ms: Option<i64>,
}

pub struct MemoryPresence {
    clock: SharedClock,
    users: Mutex<HashMap<Uuid, UserEntry>>,
    announced: Mutex<HashMap<Uuid, PresenceStatus>>,
}

impl MemoryPresence {
    pub fn new(clock: SharedClock) -> Self {
        Self { clock, users: Mutex::default(), announced: Mutex::default() }
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn touch(&self, user: Uuid, socket: &str, status: PresenceStatus) -> StateResult<()> {
        let now = self.clock.now_ms();
        let mut users = lock(&self.users);
        let entry = users.entry(user).or_default();
        entry.sockets.insert(socket.to_owned(), (now + ttl_ms(), status));
        entry.last_activity_ms = Some(now);
        Ok(())
    }

    async fn remove(&self, user: Uuid, socket: &str) -> StateResult<()> {
        let now = self.clock.now_ms();
        let mut users = lock(&self.users);
        if let Some(entry) = users.get_mut(&user) {
            entry.sockets.remove(socket);
            entry.last_activity_ms = Some(now);
        }
        Ok(())
    }

    async fn renew(&self, sockets: &[(Uuid, String)]) -> StateResult<()> {
        let until = self.clock.now_ms() + ttl_ms();
        let mut users = lock(&self.users);
        for (user, socket) in sockets {
            if let Some((expiry, _)) = users.get_mut(user).and_then(|e| e.sockets.get_mut(socket)) {
                *expiry = until;
            }
        }
        Ok(())
    }

    async fn states(&self, users: &[Uuid]) -> StateResult<Vec<LiveState>> {
        let now = self.clock.now_ms();
        let mut entries = lock(&self.users);
        let announced = lock(&self.announced);
        Ok(users
            .iter()
            .map(|user| {
                let announced = announced.get(user).copied().unwrap_or(PresenceStatus::Offline);
                match entries.get_mut(user) {
                    None => LiveState { status: PresenceStatus::Offline, last_activity_ms: None, announced },
                    Some(entry) => {
                        entry.sockets.retain(|_, (expiry, _)| *expiry > now);
                        let status = entry.sockets.values().map(|(_, s)| *s).max().unwrap_or(PresenceStatus::Offline);
                        LiveState { status, last_activity_ms: entry.last_activity_ms, announced }
                    }
                }
            })
            .collect())
    }

    async fn announce(&self, user: Uuid, status: PresenceStatus) -> StateResult<PresenceStatus> {
        let mut announced = lock(&self.announced);
        let before = match status {
            PresenceStatus::Offline => announced.remove(&user),
            other => announced.insert(user, other),
        };
        Ok(before.unwrap_or(PresenceStatus::Offline))
    }

    async fn announced_present(&self) -> StateResult<Vec<Uuid>> {
        let announced: Vec<Uuid> = lock(&self.announced).keys().copied().collect();
        // Users with no device left and announced offline need no entry: keeps memory bounded.
        lock(&self.users).retain(|user, entry| !entry.sockets.is_empty() || announced.contains(user));
        Ok(announced)
    }
}

// ---------------------------------------------------------------- Redis

/// Per user: `conn:{user}` sorted set socket → expiry, `connstatus:{user}` hash socket →
/// status, `activity:{user}` last activity; `announced` hash user → status.
const TOUCH: &str = r#"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[1], 'PX', 604800000)
return 1
"#;

/// KEYS: triples (conn, connstatus, activity) per user, then the announced hash; ARGV[1]
/// now, then the user ids. Returns per user [status, activity or -1, announced], dropping
/// expired sockets on the way.
const STATES: &str = r#"
local now = tonumber(ARGV[1])
local announced = KEYS[#KEYS]
local out = {}
for i = 1, #KEYS - 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local live = redis.call('ZRANGE', KEYS[i], 0, -1)
  local status = 'offline'
  for _, socket in ipairs(live) do
    local s = redis.call('HGET', KEYS[i + 1], socket)
    if s == 'online' then status = 'online' break end
    status = 'away'
  end
  table.insert(out, status)
  table.insert(out, tonumber(redis.call('GET', KEYS[i + 2]) or '-1'))
  table.insert(out, redis.call('HGET', announced, ARGV[(i - 1) / 3 + 2]) or 'offline')
end
return out
"#;

const ANNOUNCE: &str = r#"
local before = redis.call('HGET', KEYS[1], ARGV[1]) or 'offline'
if ARGV[2] == 'offline' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return before
"#;

#[derive(Clone)]
pub struct RedisPresence {
    conn: ConnectionManager,
    prefix: Arc<str>,
    clock: SharedClock,
    touch: Arc<Script>,
    states: Arc<Script>,
    announce: Arc<Script>,
}

impl RedisPresence {
    pub fn new(conn: ConnectionManager, prefix: Arc<str>, clock: SharedClock) -> Self {
        Self {
            conn,
            prefix,
            clock,
            touch: Arc::new(Script::new(TOUCH)),
            states: Arc::new(Script::new(STATES)),
            announce: Arc::new(Script::new(ANNOUNCE)),
        }
    }

    fn key(&self, kind: &str, user: Uuid) -> String {
        format!("{}{kind}:{user}", self.prefix)
    }

    fn announced_key(&self) -> String {
        format!("{}announced", self.prefix)
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn touch(&self, user: Uuid, socket: &str, status: PresenceStatus) -> StateResult<()> {
        let now = self.clock.now_ms();
        let _: i64 = self
            .touch
            .key(self.key("conn", user))
            .key(self.key("connstatus", user))
            .key(self.key("activity", user))
            .arg(now)
            .arg(now + ttl_ms())
            .arg(ttl_ms())
            .arg(socket)
            .arg(status.as_str())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn remove(&self, user: Uuid, socket: &str) -> StateResult<()> {
        let mut pipe = redis::pipe();
        pipe.zrem(self.key("conn", user), socket).ignore();
        pipe.hdel(self.key("connstatus", user), socket).ignore();
        pipe.cmd("SET").arg(self.key("activity", user)).arg(self.clock.now_ms()).arg("PX").arg(604_800_000).ignore();
        let _: () = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn renew(&self, sockets: &[(Uuid, String)]) -> StateResult<()> {
        if sockets.is_empty() {
            return Ok(());
        }
        let until = self.clock.now_ms() + ttl_ms();
        let mut pipe = redis::pipe();
        for (user, socket) in sockets {
            let key = self.key("conn", *user);
            pipe.cmd("ZADD").arg(&key).arg("XX").arg(until).arg(socket).ignore();
            pipe.pexpire(&key, ttl_ms()).ignore();
            pipe.pexpire(self.key("connstatus", *user), ttl_ms()).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn states(&self, users: &[Uuid]) -> StateResult<Vec<LiveState>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.states.prepare_invoke();
        for user in users {
            invocation.key(self.key("conn", *user)).key(self.key("connstatus", *user)).key(self.key("activity", *user));
        }
        invocation.key(self.announced_key()).arg(self.clock.now_ms());
        for user in users {
            invocation.arg(user.to_string());
        }
        let flat: Vec<redis::Value> = invocation.invoke_async(&mut self.conn.clone()).await?;
        let status_of = |value: Option<&redis::Value>| match value {
            Some(redis::Value::BulkString(bytes)) => PresenceStatus::parse(&String::from_utf8_lossy(bytes)),
            Some(redis::Value::SimpleString(s)) => PresenceStatus::parse(s),
            _ => PresenceStatus::Offline,
        };
        Ok(flat
            .chunks(3)
            .map(|triple| {
                let activity = match triple.get(1) {
                    Some(redis::Value::Int(n)) if *n >= 0 => Some(*n),
                    _ => None,
                };
                LiveState {
                    status: status_of(triple.first()),
                    last_activity_ms: activity,
                    announced: status_of(triple.get(2)),
                }
            })
            .collect())
    }

    async fn announce(&self, user: Uuid, status: PresenceStatus) -> StateResult<PresenceStatus> {
        let before: String = self
            .announce
            .key(self.announced_key())
            .arg(user.to_string())
            .arg(status.as_str())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(PresenceStatus::parse(&before))
    }

    async fn announced_present(&self) -> StateResult<Vec<Uuid>> {
        let users: Vec<String> = self.conn.clone().hkeys(self.announced_key()).await?;
        Ok(users.iter().filter_map(|u| u.parse().ok()).collect())
    }
}
