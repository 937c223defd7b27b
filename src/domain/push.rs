//! Web Push subscriptions (SPEC §4.4): what a browser's `pushManager.subscribe()` gave, kept
//! per user. The endpoint is checked against server-side request forgery: in production it
//! must be `https` to a public address (checked again when a push is sent, after DNS).

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Deps, public_key::decode_base64, time::Timestamp};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    net_guard::{EndpointPolicy, check_endpoint},
    storage::{
        Storage,
        push::{NewWebhook, PushSubscriptionRecord},
    },
};

/// Subscriptions one user may hold (one per browser profile or device).
pub const MAX_SUBSCRIPTIONS: usize = 20;
const ENDPOINT_MAX_BYTES: usize = 2048;
const USER_AGENT_MAX_CHARS: usize = 255;

/// Wakes this replica's outbox sender when a send wrote outbox rows, so a push goes out at
/// once rather than at the next poll. Cheap to clone.
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

/// The outbox as services see it: whether webhooks are configured, the sender to wake, and
/// the sends waiting for the group-commit writer (the sender gives way to them).
#[derive(Clone, Default)]
pub struct Outbox {
    pub signal: OutboxSignal,
    pub webhooks: bool,
    pub sends_waiting: SendsWaiting,
}

/// Sends queued for (or being stored by) the group-commit writer. While they pile up (the
/// writer is behind), the outbox sender holds back: on SQLite both need the one writer
/// connection, on any backend they share the CPU, and a message matters more than its
/// notification (which waits in the outbox).
#[derive(Clone, Default)]
pub struct SendsWaiting(Arc<std::sync::atomic::AtomicUsize>);

impl SendsWaiting {
    pub fn add(&self, n: usize) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn remove(&self, n: usize) {
        self.0.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// More sends are waiting than a busy but healthy writer holds (a few commits' worth).
    pub fn piling_up(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) > Self::BACKLOG
    }

    const BACKLOG: usize = 64;
}

impl Outbox {
    /// Queues a webhook that no message transaction wrote (`conversation.member_added`).
    pub async fn webhook(&self, storage: &dyn Storage, event: &str, at: DateTime<Utc>, data: serde_json::Value) {
        if !self.webhooks {
            return;
        }
        let delivery = Uuid::now_v7();
        let envelope = WebhookEnvelope { event, delivery_id: delivery, occurred_at: Timestamp(at), data };
        let body = match serde_json::to_string(&envelope) {
            Ok(body) => body,
            Err(err) => return tracing::error!(error = %err, event, "a webhook could not be serialized"),
        };
        let webhook = NewWebhook { event: event.to_owned(), body, delivery_id: delivery.to_string(), at };
        match storage.enqueue_webhook(&webhook).await {
            Ok(()) => self.signal.wake(),
            Err(err) => tracing::error!(error = %err, event, "a webhook could not be queued"),
        }
    }
}

/// The body of every webhook: `{event, deliveryId, occurredAt, data}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEnvelope<'a> {
    pub event: &'a str,
    pub delivery_id: Uuid,
    pub occurred_at: Timestamp,
    pub data: serde_json::Value,
}

/// A subscription as its owner sees it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: Uuid,
    pub endpoint: String,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
}

impl From<&PushSubscriptionRecord> for Subscription {
    fn from(s: &PushSubscriptionRecord) -> Self {
        Self {
            id: s.id,
            endpoint: s.endpoint.clone(),
            user_agent: s.user_agent.clone(),
            created_at: s.created_at.into(),
        }
    }
}

/// A subscription as a client sends it, validated.
pub struct NewSubscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub user_agent: Option<String>,
}

impl NewSubscription {
    pub fn parse(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        user_agent: Option<&str>,
        policy: EndpointPolicy,
    ) -> AppResult<Self> {
        if endpoint.len() > ENDPOINT_MAX_BYTES {
            return Err(AppError::invalid_field("endpoint", "must be at most 2048 bytes"));
        }
        check_endpoint(endpoint, policy).map_err(|why| AppError::invalid_field("endpoint", why))?;
        let key = decode_base64(p256dh)
            .filter(|bytes| bytes.len() == 65 && p256::PublicKey::from_sec1_bytes(bytes).is_ok())
            .ok_or_else(|| AppError::invalid_field("keys.p256dh", "must be a P-256 point (65 bytes, base64url)"))?;
        let secret = decode_base64(auth)
            .filter(|bytes| bytes.len() == 16)
            .ok_or_else(|| AppError::invalid_field("keys.auth", "must be 16 bytes, base64url"))?;
        let user_agent =
            user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(USER_AGENT_MAX_CHARS).collect());
        Ok(Self {
            endpoint: endpoint.to_owned(),
            p256dh: URL_SAFE_NO_PAD.encode(key),
            auth: URL_SAFE_NO_PAD.encode(secret),
            user_agent,
        })
    }
}

pub struct PushService {
    storage: Arc<dyn Storage>,
    clock: SharedClock,
    vapid_public_key: String,
}

impl PushService {
    pub fn new(deps: &Deps, vapid_public_key: String) -> Self {
        Self { storage: deps.storage.clone(), clock: deps.clock.clone(), vapid_public_key }
    }

    /// The VAPID public key (base64url, 65 bytes): the `applicationServerKey` to subscribe with.
    pub fn vapid_public_key(&self) -> &str {
        &self.vapid_public_key
    }

    /// Stores (or refreshes) `user`'s subscription; `true` when it is new.
    pub async fn subscribe(&self, user: Uuid, new: NewSubscription) -> AppResult<(Subscription, bool)> {
        let existing = self.storage.subscriptions_of(user).await?;
        if existing.len() >= MAX_SUBSCRIPTIONS && !existing.iter().any(|s| s.endpoint == new.endpoint) {
            return Err(AppError::invalid_field("endpoint", "at most 20 subscriptions: unsubscribe one first"));
        }
        let now = self.clock.now();
        let record = PushSubscriptionRecord {
            id: Uuid::now_v7(),
            user_id: user,
            endpoint: new.endpoint,
            p256dh: new.p256dh,
            auth: new.auth,
            user_agent: new.user_agent,
            created_at: now,
            updated_at: now,
        };
        let (stored, created) = self.storage.upsert_subscription(&record).await?;
        Ok((Subscription::from(&stored), created))
    }

    pub async fn unsubscribe(&self, user: Uuid, endpoint: &str) -> AppResult<()> {
        if !self.storage.delete_subscription(user, endpoint).await? {
            return Err(AppError::NotFound("subscription"));
        }
        Ok(())
    }

    pub async fn subscriptions(&self, user: Uuid) -> AppResult<Vec<Subscription>> {
        Ok(self.storage.subscriptions_of(user).await?.iter().map(Subscription::from).collect())
    }
}
