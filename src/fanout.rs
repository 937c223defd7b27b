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

use crate::{
    domain::{
        views::PresenceView,
        views::{Conversation, Message, TypingUser},
    },
    shared_state::PresenceStatus,
};

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
    pub const PRESENCE_UPDATE: &str = "presence:update";
    pub const PRESENCE_BULK: &str = "presence:bulk";
    pub const TYPING_STARTED: &str = "typing:started";
    pub const TYPING_STOPPED: &str = "typing:stopped";
    pub const LEGACY_USER_STATUS: &str = "user_status";
    pub const LEGACY_USER_ONLINE: &str = "user.online";
    pub const LEGACY_USER_OFFLINE: &str = "user.offline";
    pub const LEGACY_USER_TYPING: &str = "user_typing";
    pub const LEGACY_MESSAGE_TYPING: &str = "message.typing";
    pub const RECEIPT_UPDATED: &str = "receipt:updated";
    pub const RECEIPT_COUNT: &str = "receipt:count";
    pub const UNREAD_UPDATED: &str = "unread:updated";
    pub const LEGACY_READ_ACK: &str = "message.read_ack";
    pub const LEGACY_READ_UPDATE: &str = "message.read_update";
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
    pub except: Vec<String>,
}

impl Audience {
    pub fn rooms(rooms: Vec<String>) -> Self {
        Self { rooms, except: Vec::new() }
    }

    pub fn except_socket(mut self, sid: Option<&str>) -> Self {
        self.except.extend(sid.map(socket_room));
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

    /// `conversation:updated {conversation, removed: true}` to every socket of `user`: the
    /// conversation left their list (they left it, or it was deleted for everyone).
    pub async fn conversation_removed(&self, user: Uuid, conversation: &Conversation) {
        let audience = Audience::rooms(vec![user_room(user)]);
        let payload = json!({ "conversation": conversation, "removed": true });
        self.broadcaster.emit(audience, events::CONVERSATION_UPDATED, &payload).await;
    }

    /// `presence:update` (and the legacy `user_status`, `user.online` / `user.offline`) to
    /// every socket of the `audience`.
    pub async fn presence_changed(&self, view: &PresenceView, audience: &[Uuid]) {
        if audience.is_empty() {
            return;
        }
        let rooms = Audience::rooms(user_rooms(audience));
        self.broadcaster.emit(rooms.clone(), events::PRESENCE_UPDATE, &json!(view)).await;
        if !self.legacy {
            return;
        }
        let last_seen = view.last_seen_at.map(|t| t.to_wire());
        let mut status = json!({ "user_id": view.user_id, "status": view.status.as_str() });
        match view.status {
            PresenceStatus::Offline => status["last_seen"] = json!(last_seen),
            _ => status["timestamp"] = json!(view.last_activity.map(|t| t.to_wire())),
        }
        self.broadcaster.emit(rooms.clone(), events::LEGACY_USER_STATUS, &status).await;
        let online = view.status != PresenceStatus::Offline;
        let event = if online { events::LEGACY_USER_ONLINE } else { events::LEGACY_USER_OFFLINE };
        let legacy = json!({ "userId": view.user_id, "isOnline": online, "lastSeen": last_seen });
        self.broadcaster.emit(rooms, event, &legacy).await;
    }

    /// `typing:started` / `typing:stopped` (and the legacy `user_typing`, `message.typing`)
    /// to the conversation's subscribers, except the typist's sockets and `except_users`.
    pub async fn typing(&self, conversation: Uuid, typist: &TypingUser, started: bool, except_users: &[Uuid]) {
        let mut except = vec![user_room(typist.user_id)];
        except.extend(except_users.iter().copied().map(user_room));
        let audience = Audience { rooms: vec![conversation_room(conversation)], except };
        let payload = json!({ "conversationId": conversation, "userId": typist.user_id,
            "username": typist.username, "displayName": typist.display_name });
        let event = if started { events::TYPING_STARTED } else { events::TYPING_STOPPED };
        self.broadcaster.emit(audience.clone(), event, &payload).await;
        if self.legacy {
            let legacy = json!({ "conversation_id": conversation, "user_id": typist.user_id,
                "username": typist.username, "display_name": typist.display_name, "is_typing": started });
            self.broadcaster.emit(audience.clone(), events::LEGACY_USER_TYPING, &legacy).await;
            self.broadcaster.emit(audience, events::LEGACY_MESSAGE_TYPING, &legacy).await;
        }
    }

    /// `receipt:updated` (and legacy `message.read_update`) to `others`' sockets.
    pub async fn receipt_updated(
        &self,
        conversation: Uuid,
        message: Uuid,
        reader: Uuid,
        at: crate::domain::time::Timestamp,
        others: &[Uuid],
    ) {
        let audience = Audience::rooms(user_rooms(others));
        let payload = json!({ "conversationId": conversation, "messageId": message, "userId": reader, "readAt": at });
        self.broadcaster.emit(audience.clone(), events::RECEIPT_UPDATED, &payload).await;
        if self.legacy {
            let legacy = json!({ "conversationId": conversation, "readBy": reader, "readAt": at });
            self.broadcaster.emit(audience, events::LEGACY_READ_UPDATE, &legacy).await;
        }
    }

    /// `receipt:count` to every participant: how many have read `message` by now.
    pub async fn receipt_count(&self, conversation: Uuid, message: Uuid, count: usize, participants: &[Uuid]) {
        let payload = json!({ "conversationId": conversation, "messageId": message, "count": count });
        self.broadcaster.emit(Audience::rooms(user_rooms(participants)), events::RECEIPT_COUNT, &payload).await;
    }

    /// `unread:updated` to every socket of `user`.
    pub async fn unread_updated(&self, user: Uuid, conversation: Uuid, unread: i64, total: i64) {
        let payload = json!({ "conversationId": conversation, "unreadCount": unread, "total": total });
        self.broadcaster.emit(Audience::rooms(vec![user_room(user)]), events::UNREAD_UPDATED, &payload).await;
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
