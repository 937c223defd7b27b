//! The raw gateway's [`Delivery`]: typed events rendered as seed 002 frames, written to this
//! replica's raw connections and, in production, published to the other replicas.
//!
//! The cross-replica path is a Redis pub/sub channel of its own (`{prefix}raw-ws`), not the
//! Socket.IO adapter: the adapter only knows Socket.IO sockets and rooms. Each event is
//! rendered once, by the replica where it happens, and published as frames plus concrete
//! targets (a conversation's subscribers become its participants here, since raw clients
//! never subscribe); every other replica writes the frames to its own matching connections.
//! Like the adapter, it carries what happens while both ends are up: a raw client that
//! misses a message because a replica or Redis was down gets it in the replay on reconnect.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    envelope::{self, Frame},
    hub::{RawHub, Targets},
};
use crate::{
    fanout::{Audience, Delivery, ServerEvent},
    storage::Storage,
};

/// How long the subscriber waits before reconnecting to Redis.
const RECONNECT_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// What goes between replicas.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum BusMessage {
    Deliver { origin: Uuid, targets: Targets, frames: Vec<Frame> },
    CloseSessions { origin: Uuid, sessions: Vec<Uuid> },
}

/// Messages waiting to be published; beyond this (Redis slow or down) they are dropped, as
/// a failed broadcast is: nothing waits on Redis to deliver here.
const PUBLISH_QUEUE: usize = 4096;

/// The Redis side: the queue of the task that publishes, in order, and this replica's id.
struct Bus {
    queue: tokio::sync::mpsc::Sender<String>,
    instance: Uuid,
}

pub struct RawDelivery {
    hub: Arc<RawHub>,
    storage: Arc<dyn Storage>,
    bus: Option<Bus>,
}

impl RawDelivery {
    /// In-process only (embedded mode).
    pub fn local(hub: Arc<RawHub>, storage: Arc<dyn Storage>) -> Self {
        Self { hub, storage, bus: None }
    }

    /// Across replicas through Redis at `url`: publishes on `{prefix}raw-ws` and spawns the
    /// subscriber that writes what other replicas publish to this replica's connections.
    pub async fn redis(
        hub: Arc<RawHub>,
        storage: Arc<dyn Storage>,
        url: &str,
        prefix: &str,
        instance: Uuid,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(std::time::Duration::from_millis(500));
        let publisher = redis::aio::ConnectionManager::new_with_config(client.clone(), config).await?;
        let channel = format!("{prefix}raw-ws");
        let (queue, pending) = tokio::sync::mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(publish_all(publisher, channel.clone(), pending));
        tokio::spawn(subscribe(client, channel, hub.clone(), instance));
        Ok(Self { hub, storage, bus: Some(Bus { queue, instance }) })
    }

    /// The audience as concrete users: a conversation's subscribers are its participants.
    async fn targets(&self, audience: &Audience) -> Targets {
        let mut users = audience.users.clone();
        if let (Some(conversation), true) = (audience.subscribers_of, audience.users.is_empty()) {
            match self.storage.member_ids(conversation).await {
                Ok(members) => users = members,
                Err(err) => tracing::warn!(error = %err, %conversation, "raw delivery: members not read"),
            }
        }
        Targets {
            users,
            sessions: audience.sessions.clone(),
            except_users: audience.except_users.clone(),
            except_connection: audience.except_connection.clone(),
        }
    }

    fn publish(&self, message: &BusMessage) {
        let Some(bus) = &self.bus else { return };
        let Ok(body) = serde_json::to_string(message) else { return };
        if bus.queue.try_send(body).is_err() {
            metrics::counter!("parley_broadcast_failures_total").increment(1);
            tracing::warn!("raw delivery to other replicas dropped (Redis too slow or down); delivered locally");
        }
    }

    fn instance(&self) -> Uuid {
        self.bus.as_ref().map_or(Uuid::nil(), |bus| bus.instance)
    }
}

#[async_trait]
impl Delivery for RawDelivery {
    async fn deliver(&self, audience: &Audience, event: &ServerEvent<'_>) {
        if self.bus.is_none() && self.hub.is_empty() {
            return;
        }
        let frames = envelope::render(event);
        if frames.is_empty() {
            return;
        }
        let targets = self.targets(audience).await;
        let frames = Arc::new(frames);
        self.hub.deliver(&targets, &frames);
        let message = BusMessage::Deliver { origin: self.instance(), targets, frames: frames.to_vec() };
        self.publish(&message);
    }

    async fn disconnect(&self, audience: &Audience) {
        self.hub.close_sessions(&audience.sessions, 1008, "signed out");
        self.publish(&BusMessage::CloseSessions { origin: self.instance(), sessions: audience.sessions.clone() });
    }

    /// Raw clients never subscribe: they hear every conversation they take part in.
    async fn set_subscription(&self, _user: Uuid, _conversation: Uuid, _subscribed: bool) {}
}

/// Publishes what this replica queued, in order; a failure is logged and the next message
/// is tried (the manager reconnects by itself).
async fn publish_all(
    mut connection: redis::aio::ConnectionManager,
    channel: String,
    mut pending: tokio::sync::mpsc::Receiver<String>,
) {
    while let Some(body) = pending.recv().await {
        let published: redis::RedisResult<i64> =
            redis::cmd("PUBLISH").arg(&channel).arg(body).query_async(&mut connection).await;
        if let Err(err) = published {
            metrics::counter!("parley_broadcast_failures_total").increment(1);
            tracing::warn!(error = %err, "raw delivery to other replicas failed; delivered locally");
        }
    }
}

/// Writes what other replicas publish to this replica's connections; reconnects after a
/// Redis restart.
async fn subscribe(client: redis::Client, channel: String, hub: Arc<RawHub>, instance: Uuid) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(body) = message.get_payload::<String>() else { continue };
                        apply(&hub, instance, &body);
                    }
                    tracing::warn!("raw delivery: the Redis subscription ended; resubscribing");
                }
                Err(err) => tracing::warn!(error = %err, "raw delivery: subscribing failed"),
            },
            Err(err) => tracing::debug!(error = %err, "raw delivery: Redis unreachable"),
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

fn apply(hub: &RawHub, instance: Uuid, body: &str) {
    match serde_json::from_str::<BusMessage>(body) {
        Ok(BusMessage::Deliver { origin, targets, frames }) if origin != instance => {
            if !hub.is_empty() {
                hub.deliver(&targets, &Arc::new(frames));
            }
        }
        Ok(BusMessage::CloseSessions { origin, sessions }) if origin != instance => {
            hub.close_sessions(&sessions, 1008, "signed out");
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "raw delivery: a message from another replica was not understood"),
    }
}
