//! Every event the server sends, as a typed value: one struct per payload, one
//! [`ServerEvent`] variant per event name. Services and gateways build these; each transport
//! renders them its own way (Socket.IO: the name and the payload as JSON, see
//! [`super::socketio`]). Legacy twins are derived from these in [`super::legacy`].

use serde::{Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    domain::{
        time::Timestamp,
        views::{Conversation, Message, PresenceView, ReactionUpdate, TypingUser, User},
    },
    storage::models::Role,
};

/// A payload with its event name: what a transport puts on the wire.
pub trait Wire: Serialize + Sync {
    fn name(&self) -> &'static str;
}

/// Declares the [`ServerEvent`] enum: each variant with its payload type and event name.
macro_rules! server_events {
    ($($variant:ident($payload:ty) = $name:literal,)*) => {
        /// A server → client event (docs/websocket-protocol.md lists each one).
        #[derive(Clone, Debug)]
        pub enum ServerEvent<'a> {
            $($variant($payload),)*
        }

        impl Wire for ServerEvent<'_> {
            fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)*
                }
            }
        }

        impl Serialize for ServerEvent<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Self::$variant(payload) => payload.serialize(serializer),)*
                }
            }
        }
    };
}

server_events! {
    AuthSuccess(AuthSuccess) = "auth:success",
    AuthError(AuthError) = "auth:error",
    PresenceBulk(PresenceBulk<'a>) = "presence:bulk",
    SyncComplete(SyncComplete) = "sync:complete",
    MessageReceived(MessageEvent<'a>) = "message:received",
    MessageSent(MessageSent<'a>) = "message:sent",
    MessageError(MessageError) = "message:error",
    MessageUpdated(MessageEvent<'a>) = "message:updated",
    MessageDeleted(MessageDeleted) = "message:deleted",
    ConversationUpdated(ConversationEvent<'a>) = "conversation:updated",
    PresenceUpdate(&'a PresenceView) = "presence:update",
    TypingStarted(TypingEvent<'a>) = "typing:started",
    TypingStopped(TypingEvent<'a>) = "typing:stopped",
    ReceiptUpdated(ReceiptUpdated) = "receipt:updated",
    ReceiptCount(ReceiptCount) = "receipt:count",
    UnreadUpdated(UnreadUpdated) = "unread:updated",
    Pong(Pong) = "pong",
    BlockAdded(BlockChanged) = "block.added",
    BlockRemoved(BlockChanged) = "block.removed",
    ReadAck(ReadAck) = "message.read_ack",
    ParticipantAdded(ParticipantAdded<'a>) = "participant:added",
    ParticipantRemoved(ParticipantRemoved) = "participant:removed",
    ParticipantUpdated(ParticipantUpdated) = "participant:updated",
    KeysChanged(KeysChanged) = "keys:changed",
    ReactionUpdated(&'a ReactionUpdate) = "reaction:updated",
    MessagePinned(MessagePinned) = "message:pinned",
    MessageUnpinned(MessageUnpinned) = "message:unpinned",
}

/// `auth:success {userId}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSuccess {
    pub user_id: Uuid,
}

/// `auth:error {error, code}`: the socket is about to be disconnected.
#[derive(Clone, Debug, Serialize)]
pub struct AuthError {
    pub error: String,
    pub code: &'static str,
}

/// `presence:bulk {users}`: every contact whose presence the new socket's user may see.
#[derive(Clone, Debug, Serialize)]
pub struct PresenceBulk<'a> {
    pub users: &'a [PresenceView],
}

/// `sync:complete`: the missed-message replay is over.
#[derive(Clone, Debug, Serialize)]
pub struct SyncComplete {
    pub messages: usize,
    pub conversations: usize,
    pub truncated: Vec<Uuid>,
    /// `INTERNAL` when the replay could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

/// `{message}`: `message:received`, `message:updated`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct MessageEvent<'a> {
    pub message: &'a Message,
}

/// `message:sent`: the sender's confirmation, only after the message is stored.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSent<'a> {
    pub client_message_id: &'a str,
    pub message_id: Uuid,
    pub seq: i64,
    pub status: &'static str,
    pub timestamp: String,
    /// Not in the payload: the legacy twin carries the whole message.
    #[serde(skip)]
    pub message: &'a Message,
}

impl<'a> MessageSent<'a> {
    pub fn of(message: &'a Message) -> Self {
        Self {
            client_message_id: &message.client_message_id,
            message_id: message.id,
            seq: message.seq,
            status: "delivered",
            timestamp: message.created_at.to_wire(),
            message,
        }
    }
}

/// `message:error {clientMessageId, error, code}`: a send was refused.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageError {
    pub client_message_id: Option<String>,
    pub error: String,
    pub code: &'static str,
}

/// `message:deleted {conversationId, messageId}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeleted {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
}

/// `conversation:updated {conversation, removed?}`, with the recipient's own view.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ConversationEvent<'a> {
    pub conversation: &'a Conversation,
    /// The conversation left the recipient's list (they left, or it was deleted).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// `typing:started` / `typing:stopped {conversationId, userId, username, displayName}`.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingEvent<'a> {
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub username: &'a str,
    pub display_name: &'a str,
}

impl<'a> TypingEvent<'a> {
    pub fn of(conversation_id: Uuid, typist: &'a TypingUser) -> Self {
        Self {
            conversation_id,
            user_id: typist.user_id,
            username: &typist.username,
            display_name: &typist.display_name,
        }
    }
}

/// `receipt:updated {conversationId, messageId, userId, readAt}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptUpdated {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub user_id: Uuid,
    pub read_at: Timestamp,
}

/// `receipt:count {conversationId, messageId, count}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptCount {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub count: usize,
}

/// `unread:updated {conversationId, unreadCount, total}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadUpdated {
    pub conversation_id: Uuid,
    pub unread_count: i64,
    pub total: i64,
}

/// `pong {timestamp, serverTime}`: the client's timestamp back, and the server's clock (ms).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pong {
    pub timestamp: Value,
    pub server_time: i64,
}

/// `block.added` / `block.removed {userId, username, at}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockChanged {
    pub user_id: Uuid,
    pub username: String,
    pub at: Timestamp,
}

/// `message.read_ack {conversationId, readAt}`: the legacy read-all was recorded.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadAck {
    pub conversation_id: Uuid,
    pub read_at: Timestamp,
}

/// `participant:added {conversationId, users, by}`: to the members who were there.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantAdded<'a> {
    pub conversation_id: Uuid,
    pub users: &'a [User],
    pub by: Uuid,
}

/// `participant:removed {conversationId, userId, by, reason}`: to the members who stay.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantRemoved {
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub by: Uuid,
    /// `removed` (by an owner or admin) or `left`.
    pub reason: &'static str,
}

/// `participant:updated {conversationId, userId, role, by}`: a role changed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantUpdated {
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub by: Uuid,
}

/// `keys:changed {userId}`: the user's public keys changed (a new device, a rotation or a
/// deletion); fetch them again before encrypting to them.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysChanged {
    pub user_id: Uuid,
}

/// `message:pinned {conversationId, messageId, pinnedBy, pinnedAt}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePinned {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub pinned_by: Option<Uuid>,
    pub pinned_at: Timestamp,
}

/// `message:unpinned {conversationId, messageId, unpinnedBy}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageUnpinned {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub unpinned_by: Uuid,
}
