//! The one place that emits Socket.IO events. Domain services call [`Fanout`]; it knows the
//! room names and event names and builds every payload once. It knows no handler, and it
//! reaches sockets on every replica through the adapter behind [`Broadcaster`].
//!
//! Rooms: `user:{id}` (every socket of a user), `conversation:{id}` (subscribers),
//! `session:{id}` (sockets of one login session), `socket:{sid}` (one socket; lets a
//! broadcast skip the socket that caused it, from anywhere).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::views::{Conversation, Message};

pub const CHAT_NAMESPACE: &str = "/chat";

pub fn user_room(user: Uuid) -> String {
    format!("user:{user}")
}

pub fn conversation_room(conversation: Uuid) -> String {
    format!("conversation:{conversation}")
}

pub fn session_room(session: Uuid) -> String {
    format!("session:{session}")
}

pub fn socket_room(sid: &str) -> String {
    format!("socket:{sid}")
}

/// Server → client event names.
pub mod events {
    pub const AUTH_SUCCESS: &str = "auth:success";
    pub const AUTH_ERROR: &str = "auth:error";
    pub const MESSAGE_SENT: &str = "message:sent";
    pub const MESSAGE_RECEIVED: &str = "message:received";
    pub const MESSAGE_ERROR: &str = "message:error";
    pub const MESSAGE_UPDATED: &str = "message:updated";
    pub const MESSAGE_DELETED: &str = "message:deleted";
    pub const CONVERSATION_UPDATED: &str = "conversation:updated";
    pub const SYNC_COMPLETE: &str = "sync:complete";
    pub const PONG: &str = "pong";
    /// Legacy names (seeds 000 and 002), sent alongside while `LEGACY_EVENTS` is on.
    pub const LEGACY_MESSAGE_NEW: &str = "message.new";
    pub const LEGACY_MESSAGE_SENT: &str = "message.sent";
    pub const LEGACY_BLOCK_ADDED: &str = "block.added";
    pub const LEGACY_BLOCK_REMOVED: &str = "block.removed";
}

/// Who receives a broadcast: every socket in any of `rooms`, once, minus those in `except`.
#[derive(Clone, Debug, Default)]
pub struct Audience {
    pub rooms: Vec<String>,
    pub except: Option<String>,
}

impl Audience {
    pub fn rooms(rooms: Vec<String>) -> Self {
        Self { rooms, except: None }
    }

    pub fn except_socket(mut self, sid: Option<&str>) -> Self {
        self.except = sid.map(socket_room);
        self
    }
}

/// The transport under [`Fanout`]: the Socket.IO server with its adapter.
#[async_trait]
pub trait Broadcaster: Send + Sync {
    async fn emit(&self, audience: Audience, event: &str, payload: &Value);
    /// Disconnects every socket in `rooms`.
    async fn disconnect(&self, rooms: Vec<String>);
    /// Makes every socket in `sockets_in` join (or leave) `room`.
    async fn join(&self, sockets_in: String, room: String);
    async fn leave(&self, sockets_in: String, room: String);
}

/// `message:sent`: the sender's confirmation, only after the message is stored. The socket
/// handler emits it straight to the sending socket (no broadcast round trip).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSent {
    pub client_message_id: String,
    pub message_id: Uuid,
    pub seq: i64,
    pub status: &'static str,
    pub timestamp: String,
}

impl MessageSent {
    pub fn of(message: &Message) -> Self {
        Self {
            client_message_id: message.client_message_id.clone(),
            message_id: message.id,
            seq: message.seq,
            status: "delivered",
            timestamp: message.created_at.to_wire(),
        }
    }
}

/// Typed events over a [`Broadcaster`].
#[derive(Clone)]
pub struct Fanout {
    broadcaster: Arc<dyn Broadcaster>,
    legacy: bool,
}


fn user_rooms(users: &[Uuid]) -> Vec<String> {
    users.iter().copied().map(user_room).collect()
}

impl Fanout {
    pub fn new(broadcaster: Arc<dyn Broadcaster>, legacy: bool) -> Self {
        Self { broadcaster, legacy }
    }

    pub fn legacy_events(&self) -> bool {
        self.legacy
    }

    /// `message:received` (and legacy `message.new`) to every socket of every participant
    /// and every subscriber, once each, except the socket that sent it.
    pub async fn message_created(&self, message: &Message, participants: &[Uuid], origin: Option<&str>) {
        let mut rooms = user_rooms(participants);
        rooms.push(conversation_room(message.conversation_id));
        let audience = Audience::rooms(rooms).except_socket(origin);
        let payload = json!({ "message": message });
        self.broadcaster.emit(audience.clone(), events::MESSAGE_RECEIVED, &payload).await;
        if self.legacy {
            self.broadcaster.emit(audience, events::LEGACY_MESSAGE_NEW, &payload).await;
        }
    }

    pub async fn message_updated(&self, message: &Message, participants: &[Uuid]) {
        let audience = Audience::rooms(user_rooms(participants));
        self.broadcaster.emit(audience, events::MESSAGE_UPDATED, &json!({ "message": message })).await;
    }

    pub async fn message_deleted(&self, conversation: Uuid, message: Uuid, participants: &[Uuid]) {
        let audience = Audience::rooms(user_rooms(participants));
        let payload = json!({ "conversationId": conversation, "messageId": message });
        self.broadcaster.emit(audience, events::MESSAGE_DELETED, &payload).await;
    }

    /// `conversation:updated` to every socket of `user`, with `user`'s own view.
    pub async fn conversation_updated(&self, user: Uuid, conversation: &Conversation) {
        let audience = Audience::rooms(vec![user_room(user)]);
        let payload = json!({ "conversation": conversation });
        self.broadcaster.emit(audience, events::CONVERSATION_UPDATED, &payload).await;
    }

    /// Tells the sockets of a signed-out session why they go, then disconnects them.
    pub async fn session_revoked(&self, session: Uuid) {
        let room = session_room(session);
        let payload = json!({ "error": "the session was signed out", "code": "TOKEN_REVOKED" });
        self.broadcaster.emit(Audience::rooms(vec![room.clone()]), events::AUTH_ERROR, &payload).await;
        self.broadcaster.disconnect(vec![room]).await;
    }

    /// Subscribes every socket of `user` to the conversation room (or unsubscribes).
    pub async fn set_subscription(&self, user: Uuid, conversation: Uuid, subscribed: bool) {
        let (sockets, room) = (user_room(user), conversation_room(conversation));
        if subscribed {
            self.broadcaster.join(sockets, room).await;
        } else {
            self.broadcaster.leave(sockets, room).await;
        }
    }
}
