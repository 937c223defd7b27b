//! Read marks of large groups, waiting to be written and counted in batches: every replica
//! queues into the same place and each flush takes what it finds, so each mark is written
//! and counted once, whichever replica took it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StateResult;
use crate::storage::models::ReadMark;

/// A read mark plus what the flush needs to announce the new count.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingRead {
    pub mark: ReadMark,
    pub message_id: Uuid,
    pub sender_id: Uuid,
}

#[async_trait]
pub trait ReadBatches: Send + Sync {
    async fn push(&self, read: &PendingRead) -> StateResult<()>;
    /// Takes up to `max` queued reads (oldest first); each is handed out once.
    async fn take(&self, max: usize) -> StateResult<Vec<PendingRead>>;
}

#[derive(Default)]
pub struct MemoryReadBatches(Mutex<Vec<PendingRead>>);

#[async_trait]
impl ReadBatches for MemoryReadBatches {
    async fn push(&self, read: &PendingRead) -> StateResult<()> {
        crate::sync::lock(&self.0).push(read.clone());
        Ok(())
    }

    async fn take(&self, max: usize) -> StateResult<Vec<PendingRead>> {
        let mut queue = crate::sync::lock(&self.0);
        let n = max.min(queue.len());
        Ok(queue.drain(..n).collect())
    }
}

/// A Redis list of JSON entries; `LPOP key count` hands each entry to one caller.
pub struct RedisReadBatches {
    conn: ConnectionManager,
    key: String,
}

impl RedisReadBatches {
    pub fn new(conn: ConnectionManager, prefix: Arc<str>) -> Self {
        Self { conn, key: format!("{prefix}reads:pending") }
    }
}

#[async_trait]
impl ReadBatches for RedisReadBatches {
    async fn push(&self, read: &PendingRead) -> StateResult<()> {
        let entry = serde_json::to_string(read).unwrap_or_default();
        let _: i64 = redis::cmd("RPUSH").arg(&self.key).arg(entry).query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn take(&self, max: usize) -> StateResult<Vec<PendingRead>> {
        let entries: Option<Vec<String>> =
            redis::cmd("LPOP").arg(&self.key).arg(max.max(1)).query_async(&mut self.conn.clone()).await?;
        Ok(entries.unwrap_or_default().iter().filter_map(|e| serde_json::from_str(e).ok()).collect())
    }
}
