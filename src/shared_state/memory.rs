//! In-process shared state for embedded mode (one replica). Entries expire lazily and are
//! swept now and then, so memory stays bounded by what is live.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Admission, Quota, RateLimits, StateResult, Ticket, TokenRevocations};
use crate::{clock::SharedClock, sync::lock};

/// Sweep expired entries after this many writes.
const SWEEP_EVERY: u64 = 1024;

pub struct MemoryState {
    clock: SharedClock,
    revoked: Mutex<HashMap<String, i64>>,
    windows: Mutex<HashMap<String, Window>>,
    buckets: Mutex<HashMap<String, i64>>,
    /// Penalties: key → until (ms).
    penalties: Mutex<HashMap<String, i64>>,
    writes: AtomicU64,
    next_ticket: AtomicU64,
}

/// Admitted attempts of one key, oldest first: (time ms, ticket, window ms).
#[derive(Default)]
struct Window {
    attempts: VecDeque<(i64, u64)>,
    window_ms: i64,
}

impl Window {
    fn prune(&mut self, now: i64) {
        while self.attempts.front().is_some_and(|(at, _)| *at <= now - self.window_ms) {
            self.attempts.pop_front();
        }
    }
}

impl MemoryState {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            revoked: Mutex::default(),
            windows: Mutex::default(),
            buckets: Mutex::default(),
            penalties: Mutex::default(),
            writes: AtomicU64::new(0),
            next_ticket: AtomicU64::new(1),
        }
    }

    fn after_write(&self, now: i64) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        lock(&self.revoked).retain(|_, until| *until > now);
        lock(&self.windows).retain(|_, w| {
            w.prune(now);
            !w.attempts.is_empty()
        });
        lock(&self.buckets).retain(|_, tat| *tat > now);
        lock(&self.penalties).retain(|_, until| *until > now);
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl TokenRevocations for MemoryState {
    async fn revoke(&self, jti: &str, expires_at: DateTime<Utc>) -> StateResult<()> {
        let now = self.clock.now_ms();
        if expires_at.timestamp_millis() > now {
            lock(&self.revoked).insert(jti.to_owned(), expires_at.timestamp_millis());
        }
        self.after_write(now);
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> StateResult<bool> {
        let now = self.clock.now_ms();
        Ok(lock(&self.revoked).get(jti).is_some_and(|until| *until > now))
    }
}

#[async_trait]
impl RateLimits for MemoryState {
    async fn acquire(&self, key: &str, limit: u32, window: Duration) -> StateResult<Admission> {
        let now = self.clock.now_ms();
        let admission = {
            let mut windows = lock(&self.windows);
            let entry = windows.entry(key.to_owned()).or_default();
            entry.window_ms = millis(window);
            entry.prune(now);
            if entry.attempts.len() < limit as usize {
                let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
                entry.attempts.push_back((now, ticket));
                Admission::Admitted(Ticket(ticket.to_string()))
            } else {
                let oldest = entry.attempts.front().map_or(now, |(at, _)| *at);
                let wait = (oldest + entry.window_ms - now).max(1);
                Admission::Denied { retry_after: Duration::from_millis(wait as u64) }
            }
        };
        self.after_write(now);
        Ok(admission)
    }

    async fn release(&self, key: &str, ticket: &Ticket) -> StateResult<()> {
        if let Some(window) = lock(&self.windows).get_mut(key) {
            window.attempts.retain(|(_, t)| t.to_string() != ticket.0);
        }
        Ok(())
    }

    async fn take(&self, key: &str, quota: Quota) -> StateResult<Admission> {
        let now = self.clock.now_ms();
        let interval = quota.emission_interval_ms();
        let burst = i64::from(quota.burst.max(1));
        let admission = {
            let mut buckets = lock(&self.buckets);
            let tat = buckets.get(key).copied().unwrap_or(now).max(now);
            let new_tat = tat + interval;
            let allowed_at = new_tat - burst * interval;
            if allowed_at > now {
                Admission::Denied { retry_after: Duration::from_millis((allowed_at - now) as u64) }
            } else {
                buckets.insert(key.to_owned(), new_tat);
                Admission::Admitted(Ticket(String::new()))
            }
        };
        self.after_write(now);
        Ok(admission)
    }

    async fn penalize(&self, key: &str, duration: Duration) -> StateResult<()> {
        let now = self.clock.now_ms();
        lock(&self.penalties).insert(key.to_owned(), now.saturating_add(millis(duration)));
        self.after_write(now);
        Ok(())
    }

    async fn penalty(&self, keys: &[String]) -> StateResult<Option<Duration>> {
        let now = self.clock.now_ms();
        let penalties = lock(&self.penalties);
        let until = keys.iter().filter_map(|key| penalties.get(key)).max().copied();
        Ok(until.filter(|until| *until > now).map(|until| Duration::from_millis((until - now) as u64)))
    }
}
