//! The outbox sender (SPEC §4.4): one task per replica claims due rows of the outbox (on
//! PostgreSQL with `FOR UPDATE SKIP LOCKED`, so replicas never claim one row twice; a claim
//! is a lease, so rows of a replica that died mid-send are claimed again once it runs out),
//! sends each as a Web Push or a signed webhook with bounded concurrency and a timeout, and
//! deletes it when sent or reschedules it with exponential backoff and jitter, for up to
//! 24 hours. A push service answering 404/410 removes the subscription; another 4xx drops
//! the row (logged and counted). Group pushes to one subscription for one conversation go
//! out at most once per [`COALESCE_WINDOW`], as one push counting the messages.
//!
//! Nothing here is on the send path: a send only writes rows (in its own transaction) and
//! wakes this task, so a slow push service delays pushes, never messages.

mod crypto_thread;
pub mod webhook;
pub mod webpush;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};
use uuid::Uuid;

use crate::{
    clock::SharedClock,
    domain::{Outbox, push::WebhookEnvelope, time::Timestamp, views::Message},
    net_guard::PublicOnlyResolver,
    storage::{
        Storage,
        models::MessageRecord,
        push::{OutboxRow, PushSubscriptionRecord},
    },
};
use webpush::{Vapid, Verdict};

/// At most one group push per subscription and conversation this often.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(10);
/// Rows are retried for this long after they were written, then dropped.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long a claim lasts: a sender that died releases its rows after this.
const LEASE: Duration = Duration::from_secs(60);
/// How often the outbox is looked at when nothing woke the sender (rows of other replicas
/// whose sender died, retries coming due).
const POLL: Duration = Duration::from_secs(1);
/// How long the sender waits before each claim while sends are waiting for the writer.
const YIELD_TO_SENDS: Duration = Duration::from_millis(5);
const MAX_YIELD: Duration = Duration::from_millis(250);
const CLAIM_EVERY: Duration = Duration::from_millis(20);
const FIRST_RETRY: Duration = Duration::from_secs(2);
const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// Characters of text in a push's `preview`.
pub const PREVIEW_CHARS: usize = 120;

/// Where webhooks go.
#[derive(Clone)]
pub struct WebhookTarget {
    pub url: reqwest::Url,
    pub secret: Vec<u8>,
}

/// The sender's settings.
pub struct OutboxSettings {
    pub vapid: Arc<Vapid>,
    pub webhook: Option<WebhookTarget>,
    /// Sends in flight at once (and per push service host, a quarter of it).
    pub concurrency: usize,
    pub timeout: Duration,
    /// Push endpoints must resolve to public addresses (production).
    pub public_only: bool,
}

pub struct OutboxSender {
    storage: Arc<dyn Storage>,
    clock: SharedClock,
    outbox: Outbox,
    settings: OutboxSettings,
    push_client: reqwest::Client,
    webhook_client: reqwest::Client,
    slots: Arc<Semaphore>,
    per_host: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    crypto: crypto_thread::CryptoThread,
    /// Rows finished with (sent, or given up on), deleted in batches by [`Self::run`].
    finished: mpsc::UnboundedSender<i64>,
    finished_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<i64>>>,
}

/// What one claimed batch needs, read once for all of it (two queries, not two per row).
#[derive(Default)]
struct Prefetched {
    subscriptions: HashMap<Uuid, PushSubscriptionRecord>,
    messages: HashMap<Uuid, MessageRecord>,
}

/// The JSON a push carries (encrypted), what a service worker's `push` event reads.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PushPayload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    conversation_id: Uuid,
    message_id: Uuid,
    sender_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<String>,
    count: usize,
}

impl OutboxSender {
    pub fn new(
        storage: Arc<dyn Storage>,
        clock: SharedClock,
        outbox: Outbox,
        settings: OutboxSettings,
    ) -> anyhow::Result<Self> {
        let mut push = reqwest::Client::builder().timeout(settings.timeout).connect_timeout(settings.timeout);
        if settings.public_only {
            push = push.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        let webhook_client = reqwest::Client::builder().timeout(settings.timeout).build()?;
        let (finished, finished_rx) = mpsc::unbounded_channel();
        Ok(Self {
            crypto: crypto_thread::CryptoThread::spawn()?,
            finished,
            finished_rx: std::sync::Mutex::new(Some(finished_rx)),
            storage,
            clock,
            outbox,
            push_client: push.build()?,
            webhook_client,
            slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            per_host: std::sync::Mutex::default(),
            settings,
        })
    }

    /// Sends until `stop` says so. Sends in flight then are dropped with the task: their rows
    /// stay claimed until the lease runs out, and are sent again (at least once).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut in_flight = tokio::task::JoinSet::new();
        if let Some(finished) = crate::sync::lock(&self.finished_rx).take() {
            in_flight.spawn(self.clone().delete_finished(finished));
        }
        let mut last_claim = tokio::time::Instant::now();
        loop {
            while in_flight.try_join_next().is_some() {}
            // Rows come in a few at a time (each send wakes the sender): claiming at most every
            // CLAIM_EVERY gathers them into batches, a few queries per batch instead of per push.
            tokio::time::sleep_until(last_claim + CLAIM_EVERY).await;
            // Messages first: their notifications wait in the outbox meanwhile (for at most
            // MAX_YIELD, so a server that is never idle still sends its pushes).
            let mut yielded = Duration::ZERO;
            while self.outbox.sends_waiting.piling_up() && yielded < MAX_YIELD {
                tokio::time::sleep(YIELD_TO_SENDS).await;
                yielded += YIELD_TO_SENDS;
            }
            let room = self.slots.available_permits();
            last_claim = tokio::time::Instant::now();
            let claimed = if room == 0 { Ok(Vec::new()) } else { self.claim(room).await };
            let idle = match claimed {
                Ok(rows) if !rows.is_empty() => {
                    let prefetched = Arc::new(self.prefetch(&rows).await);
                    for group in together(rows) {
                        let Ok(slot) = self.slots.clone().acquire_owned().await else { return };
                        let (sender, prefetched) = (self.clone(), prefetched.clone());
                        in_flight.spawn(async move {
                            sender.send(group, &prefetched).await;
                            drop(slot);
                        });
                    }
                    false
                }
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!(error = %err, "claiming outbox rows failed");
                    true
                }
            };
            if !idle && self.slots.available_permits() > 0 {
                continue;
            }
            let next_poll = self.clock.now_ms() + POLL.as_millis() as i64;
            tokio::select! {
                _ = self.outbox.signal.woken() => {}
                _ = self.clock.sleep_until(next_poll) => {}
                _ = self.slots.acquire() , if room == 0 => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Deletes finished rows in batches: whatever finished while the last delete ran.
    async fn delete_finished(self: Arc<Self>, mut finished: mpsc::UnboundedReceiver<i64>) {
        let mut ids = Vec::with_capacity(512);
        while finished.recv_many(&mut ids, 512).await > 0 {
            if let Err(err) = self.storage.outbox_done(&ids).await {
                // Their claims run out and they are sent again: at least once.
                tracing::error!(error = %err, rows = ids.len(), "deleting sent outbox rows failed");
            }
            ids.clear();
        }
    }

    /// The subscriptions and messages of a claimed batch (empty on failure: each row then
    /// reads its own).
    async fn prefetch(&self, rows: &[OutboxRow]) -> Prefetched {
        let mut subscriptions: Vec<Uuid> = rows.iter().filter_map(|r| r.subscription_id).collect();
        let mut messages: Vec<Uuid> = rows.iter().filter_map(|r| r.message_id).collect();
        subscriptions.sort_unstable();
        subscriptions.dedup();
        messages.sort_unstable();
        messages.dedup();
        let (subscriptions, messages) =
            tokio::join!(self.storage.subscriptions_by_ids(&subscriptions), self.storage.outbox_messages(&messages));
        Prefetched {
            subscriptions: subscriptions.unwrap_or_default().into_iter().map(|s| (s.id, s)).collect(),
            messages: messages.unwrap_or_default().into_iter().map(|m| (m.id, m)).collect(),
        }
    }

    fn finish(&self, ids: &[i64]) {
        for id in ids {
            let _ = self.finished.send(*id);
        }
    }

    async fn claim(&self, room: usize) -> Result<Vec<OutboxRow>, crate::storage::StorageError> {
        let now = self.clock.now();
        let lease = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        self.storage.claim_outbox(now, lease, room.min(100) as i64).await
    }

    /// Sends claimed rows: one webhook, or one push (several rows when coalesced).
    async fn send(&self, rows: Vec<OutboxRow>, prefetched: &Prefetched) {
        let Some(first) = rows.first().cloned() else { return };
        let kind = if first.kind == "push" { "push" } else { "webhook" };
        let outcome = match kind {
            "push" => self.push(rows.clone(), prefetched).await,
            _ => self.webhook(first.clone(), prefetched).await,
        };
        if let Err(err) = outcome {
            tracing::warn!(error = %err, row = first.id, "an outbox row failed; retrying it");
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            self.retry(&ids, first.attempts, first.created_at, &err.to_string(), kind).await;
        }
    }

    async fn push(&self, mut rows: Vec<OutboxRow>, prefetched: &Prefetched) -> anyhow::Result<()> {
        let row = rows[0].clone();
        let (Some(subscription_id), Some(conversation)) = (row.subscription_id, row.conversation_id) else {
            self.finish(&ids_of(&rows));
            return Ok(());
        };
        if row.coalesced {
            let now = self.clock.now();
            let until = now + chrono::Duration::from_std(COALESCE_WINDOW).unwrap_or_default();
            if let Some(open_until) = self.storage.take_push_window(subscription_id, conversation, now, until).await? {
                // A push for this conversation went out less than a window ago: these wait
                // for the window to close, and go with whatever joins them by then.
                return Ok(self.storage.outbox_retry(&ids_of(&rows), open_until, false, "").await?);
            }
            let lease = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
            rows.extend(self.storage.claim_coalesced(subscription_id, conversation, now, lease).await?);
        }
        let ids = ids_of(&rows);
        let subscription = match prefetched.subscriptions.get(&subscription_id) {
            Some(subscription) => Some(subscription.clone()),
            None => self.storage.subscriptions_by_ids(&[subscription_id]).await?.pop(),
        };
        let Some(subscription) = subscription else {
            // Unsubscribed (or gone) since: nothing to send.
            self.finish(&ids);
            return Ok(());
        };
        let latest = rows.iter().max_by_key(|r| r.id).unwrap_or(&row);
        let Some(payload) = self.push_payload(latest, rows.len(), prefetched).await? else {
            self.finish(&ids);
            return Ok(());
        };
        let verdict = self.post_push(&subscription, &payload).await;
        self.settle("push", &ids, &rows, verdict, Some(&subscription)).await
    }

    async fn push_payload(
        &self,
        row: &OutboxRow,
        count: usize,
        prefetched: &Prefetched,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let (Some(message_id), Some(conversation_id)) = (row.message_id, row.conversation_id) else {
            return Ok(None);
        };
        let Some(message) = self.message(message_id, prefetched).await? else {
            return Ok(None);
        };
        let preview = (row.with_preview && !message.is_encrypted && message.deleted_at.is_none())
            .then(|| message.content.as_deref().unwrap_or_default().chars().take(PREVIEW_CHARS).collect::<String>())
            .filter(|text| !text.trim().is_empty());
        let payload = PushPayload {
            kind: "message",
            conversation_id,
            message_id,
            sender_name: &message.sender_display_name,
            preview,
            count,
        };
        Ok(Some(serde_json::to_vec(&payload)?))
    }

    async fn post_push(&self, subscription: &PushSubscriptionRecord, payload: &[u8]) -> Result<Verdict, String> {
        let endpoint: reqwest::Url = subscription.endpoint.parse().map_err(|e| format!("bad endpoint: {e}"))?;
        let body = self.crypto.encrypt(subscription.clone(), payload.to_vec()).await.map_err(|e| e.to_string())?;
        let authorization =
            self.settings.vapid.authorization(&endpoint, self.clock.now_ms() / 1000).map_err(|e| e.to_string())?;
        let host = endpoint.host_str().unwrap_or_default().to_owned();
        let _per_host = self.host_slot(&host).acquire_owned().await;
        let response = self
            .push_client
            .post(endpoint)
            .header("authorization", authorization)
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("ttl", webpush::PUSH_TTL.as_secs())
            .header("urgency", "high")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("push service unreachable: {e}"))?;
        Ok(webpush::verdict(response.status()))
    }

    fn host_slot(&self, host: &str) -> Arc<Semaphore> {
        let per_host = (self.settings.concurrency / 4).max(1);
        crate::sync::lock(&self.per_host)
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(per_host)))
            .clone()
    }

    async fn webhook(&self, row: OutboxRow, prefetched: &Prefetched) -> anyhow::Result<()> {
        let Some(target) = self.settings.webhook.clone() else {
            // Written while webhooks were configured; they are not any more.
            self.finish(&[row.id]);
            return Ok(());
        };
        let (body, delivery) = match (&row.body, &row.delivery_id) {
            (Some(body), Some(delivery)) => (body.clone(), delivery.clone()),
            _ => {
                let Some((body, delivery)) = self.render_webhook(&row, prefetched).await? else {
                    self.finish(&[row.id]);
                    return Ok(());
                };
                self.storage.set_webhook_body(row.id, &body, &delivery).await?;
                (body, delivery)
            }
        };
        let response = self
            .webhook_client
            .post(target.url.clone())
            .header("content-type", "application/json")
            .header(webhook::EVENT_HEADER, &row.event)
            .header(webhook::DELIVERY_HEADER, &delivery)
            .header(webhook::SIGNATURE_HEADER, webhook::signature(&target.secret, body.as_bytes()))
            .body(body)
            .send()
            .await;
        // A webhook receiver's 404 is just a refusal: there is no subscription to delete.
        let verdict = match response.map(|r| webpush::verdict(r.status())) {
            Ok(Verdict::Gone) => Ok(Verdict::Rejected),
            Ok(verdict) => Ok(verdict),
            Err(err) => Err(format!("webhook receiver unreachable: {err}")),
        };
        self.settle("webhook", &[row.id], std::slice::from_ref(&row), verdict, None).await
    }

    /// The body of a message webhook, fixed at its first attempt: `None` when its message is gone.
    async fn render_webhook(
        &self,
        row: &OutboxRow,
        prefetched: &Prefetched,
    ) -> anyhow::Result<Option<(String, String)>> {
        let Some(message_id) = row.message_id else { return Ok(None) };
        let Some(record) = self.message(message_id, prefetched).await? else { return Ok(None) };
        let message = Message::from(&record);
        let data = match row.user_id {
            Some(user) => json!({ "userId": user, "message": message }),
            None => json!({ "message": message }),
        };
        let delivery = Uuid::now_v7();
        let envelope =
            WebhookEnvelope { event: &row.event, delivery_id: delivery, occurred_at: Timestamp(row.created_at), data };
        Ok(Some((serde_json::to_string(&envelope)?, delivery.to_string())))
    }

    async fn message(&self, id: Uuid, prefetched: &Prefetched) -> anyhow::Result<Option<MessageRecord>> {
        Ok(match prefetched.messages.get(&id) {
            Some(message) => Some(message.clone()),
            None => self.storage.outbox_messages(&[id]).await?.pop(),
        })
    }

    /// Deletes, drops or reschedules `ids` after an answer (`Err`: no answer at all).
    async fn settle(
        &self,
        kind: &'static str,
        ids: &[i64],
        rows: &[OutboxRow],
        verdict: Result<Verdict, String>,
        subscription: Option<&PushSubscriptionRecord>,
    ) -> anyhow::Result<()> {
        let first = rows.iter().min_by_key(|r| r.created_at);
        let (attempts, created) = first.map_or((0, self.clock.now()), |r| (r.attempts, r.created_at));
        match verdict {
            Ok(Verdict::Sent) => {
                count(kind, "sent");
                self.finish(ids);
            }
            Ok(Verdict::Gone) => {
                count(kind, "gone");
                if let Some(subscription) = subscription {
                    tracing::info!(subscription = %subscription.id, "the push service says the subscription is gone; deleting it");
                    self.storage.delete_subscription_by_id(subscription.id).await?;
                }
                self.finish(ids);
            }
            Ok(Verdict::Rejected) => {
                count(kind, "rejected");
                tracing::warn!(kind, rows = ?ids, "the receiver refused a notification for good; dropping it");
                self.finish(ids);
            }
            Ok(Verdict::Retry) => self.retry(ids, attempts, created, "the receiver asked to retry", kind).await,
            Err(error) => self.retry(ids, attempts, created, &error, kind).await,
        }
        Ok(())
    }

    /// Reschedules with exponential backoff and jitter, or drops rows older than a day.
    async fn retry(&self, ids: &[i64], attempts: i32, created: DateTime<Utc>, error: &str, kind: &'static str) {
        let now = self.clock.now();
        let give_up = created + chrono::Duration::from_std(GIVE_UP_AFTER).unwrap_or_default();
        let result = if now >= give_up {
            count(kind, "expired");
            tracing::warn!(kind, rows = ?ids, error, "a notification was retried for a day; dropping it");
            self.finish(ids);
            Ok(())
        } else {
            count(kind, "retry");
            let due = now + chrono::Duration::from_std(backoff(attempts)).unwrap_or_default();
            self.storage.outbox_retry(ids, due.min(give_up), true, error).await
        };
        if let Err(err) = result {
            tracing::error!(error = %err, "updating outbox rows failed; their lease will release them");
        }
    }

    /// Updates the outbox gauges.
    pub async fn observe(&self) {
        match self.storage.outbox_stats(self.clock.now()).await {
            Ok(stats) => {
                metrics::gauge!("parley_outbox_depth").set(stats.depth as f64);
                let age =
                    stats.oldest.map_or(0.0, |at| (self.clock.now() - at).num_milliseconds().max(0) as f64 / 1000.0);
                metrics::gauge!("parley_outbox_oldest_age_seconds").set(age);
            }
            Err(err) => tracing::warn!(error = %err, "reading the outbox depth failed"),
        }
    }
}

fn ids_of(rows: &[OutboxRow]) -> Vec<i64> {
    rows.iter().map(|r| r.id).collect()
}

/// Claimed rows in the groups they are sent in: the coalesced pushes to one subscription
/// for one conversation together, every other row alone.
fn together(rows: Vec<OutboxRow>) -> Vec<Vec<OutboxRow>> {
    let mut groups: Vec<Vec<OutboxRow>> = Vec::new();
    let mut coalesced: HashMap<(Uuid, Uuid), usize> = HashMap::new();
    for row in rows {
        match (row.coalesced, row.subscription_id, row.conversation_id) {
            (true, Some(subscription), Some(conversation)) => match coalesced.get(&(subscription, conversation)) {
                Some(&at) => groups[at].push(row),
                None => {
                    coalesced.insert((subscription, conversation), groups.len());
                    groups.push(vec![row]);
                }
            },
            _ => groups.push(vec![row]),
        }
    }
    groups
}

fn count(kind: &'static str, result: &'static str) {
    match kind {
        "push" => metrics::counter!("parley_push_sent_total", "result" => result).increment(1),
        _ => metrics::counter!("parley_webhook_sent_total", "result" => result).increment(1),
    }
}

/// The wait before attempt `attempts + 1`: 2 s doubling up to an hour, ±50 % jitter.
pub fn backoff(attempts: i32) -> Duration {
    let base = FIRST_RETRY.saturating_mul(1u32 << attempts.clamp(0, 16)).min(LONGEST_RETRY);
    base.mul_f64(rand::rng().random_range(0.5..1.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        for attempt in 0..20 {
            let expected = FIRST_RETRY.saturating_mul(1 << attempt.min(16)).min(LONGEST_RETRY);
            let wait = backoff(attempt);
            assert!(wait >= expected.mul_f64(0.5) && wait <= expected.mul_f64(1.5), "{attempt}: {wait:?}");
        }
    }
}
