//! Reaching people who are offline (SPEC §4.4): Web Push subscriptions and the outbox of
//! pushes and webhooks. Outbox rows for a message are written by the send transaction
//! itself (see [`Notify`]); a sender task per replica claims due rows, sends them and
//! deletes or reschedules them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use super::models::Notify;
use super::{StorageResult, models::MessageRecord};

/// A browser's push subscription (the `PushSubscription` of the Push API).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PushSubscriptionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub endpoint: String,
    /// base64url of the browser's P-256 public key (65 bytes, uncompressed).
    pub p256dh: String,
    /// base64url of the 16-byte authentication secret.
    pub auth: String,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A row of the outbox, as a sender claims it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    /// `push` or `webhook`.
    pub kind: String,
    /// `message` for pushes; the webhook's event name.
    pub event: String,
    pub subscription_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub with_preview: bool,
    pub coalesced: bool,
    pub body: Option<String>,
    pub delivery_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub attempts: i32,
}

/// A webhook to enqueue on its own (not part of a message's transaction).
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub event: String,
    pub body: String,
    pub delivery_id: String,
    pub at: DateTime<Utc>,
}

/// The outbox at a glance, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Rows waiting (claimed or not).
    pub depth: i64,
    /// Of which pushes.
    pub pushes: i64,
    /// Pushes due at the time asked about (not held back for a coalescing window or a retry).
    pub pushes_due: i64,
    /// Rows of either kind due then.
    pub due: i64,
    pub oldest: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait PushRepo: Send + Sync {
    /// Stores a subscription, or takes over the one with the same endpoint (a browser that
    /// signed in as someone else); `true` when it was new.
    async fn upsert_subscription(
        &self,
        subscription: &PushSubscriptionRecord,
    ) -> StorageResult<(PushSubscriptionRecord, bool)>;
    /// `user`'s subscriptions, oldest first.
    async fn subscriptions_of(&self, user: Uuid) -> StorageResult<Vec<PushSubscriptionRecord>>;
    async fn subscriptions_by_ids(&self, ids: &[Uuid]) -> StorageResult<Vec<PushSubscriptionRecord>>;
    /// Deletes `user`'s subscription to `endpoint`; `false` when there is none.
    async fn delete_subscription(&self, user: Uuid, endpoint: &str) -> StorageResult<bool>;
    /// Deletes a subscription the push service said is gone (and its pending pushes).
    async fn delete_subscription_by_id(&self, id: Uuid) -> StorageResult<()>;
}

#[async_trait]
pub trait OutboxRepo: Send + Sync {
    /// Claims up to `limit` due rows (not claimed by a live sender) until `lease_until`,
    /// oldest due first; on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so concurrent senders
    /// on several replicas never claim one row twice.
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StorageResult<Vec<OutboxRow>>;
    /// Claims the other unclaimed coalesced pushes to `subscription` for `conversation`,
    /// due or not: they go out together with the one being sent.
    async fn claim_coalesced(
        &self,
        subscription: Uuid,
        conversation: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StorageResult<Vec<OutboxRow>>;
    /// Opens the coalescing window of (`subscription`, `conversation`) until `until`,
    /// unless it is open at `now`: `None` when this caller opened it, else when it closes.
    async fn take_push_window(
        &self,
        subscription: Uuid,
        conversation: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StorageResult<Option<DateTime<Utc>>>;
    /// Sent (or given up): the rows are deleted.
    async fn outbox_done(&self, ids: &[i64]) -> StorageResult<()>;
    /// Not sent: the rows are released and due again at `due_at`; `failed` counts an attempt.
    async fn outbox_retry(&self, ids: &[i64], due_at: DateTime<Utc>, failed: bool, error: &str) -> StorageResult<()>;
    /// Fixes a webhook's body and delivery id before its first attempt.
    async fn set_webhook_body(&self, id: i64, body: &str, delivery_id: &str) -> StorageResult<()>;
    async fn enqueue_webhook(&self, webhook: &NewWebhook) -> StorageResult<()>;
    async fn outbox_stats(&self, now: DateTime<Utc>) -> StorageResult<OutboxStats>;
    /// The messages named by outbox rows (tombstones included), with their senders.
    async fn outbox_messages(&self, ids: &[Uuid]) -> StorageResult<Vec<MessageRecord>>;
}
