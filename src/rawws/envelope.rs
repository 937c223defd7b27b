//! Seed 002's wire format: every frame is a JSON envelope `{type, payload}`, or `{type:
//! "error", error: {code, message}}` with the seed's lowercase codes. [`render`] turns each
//! typed server event into the frames a raw client gets: seed 002's names and fields
//! (`message.new`, `isRead`, `avatar`, …), plus seed 000's `user_status`, `user_typing` and
//! `message.typing`, which the same clients read. Events the seeds have no name for go out
//! with dot-style names of Parley's own (`message.updated`, `conversation.updated`, …).

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    domain::{
        time::Timestamp,
        views::{Message, PresenceView},
    },
    error::AppError,
    fanout::{
        ServerEvent,
        events::TypingEvent,
        legacy::{LegacyTyping, UserOnline, UserStatus},
    },
    shared_state::PresenceStatus,
};

/// One frame, serialized.
pub type Frame = String;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    payload: T,
}

fn frame(kind: &str, payload: impl Serialize) -> Frame {
    serde_json::to_string(&Envelope { kind, payload }).unwrap_or_default()
}

/// `{type: "error", error: {code, message}}`.
pub fn error(code: &str, message: &str) -> Frame {
    json!({ "type": "error", "error": { "code": code, "message": message } }).to_string()
}

/// The seed's code for a refusal.
pub fn seed_code(err: &AppError) -> &'static str {
    match err {
        AppError::Validation { .. } => "validation_error",
        AppError::Blocked(_) => "blocked",
        AppError::NotFound("conversation") => "conversation_not_found",
        AppError::NotFound(_) => "not_found",
        AppError::NotInConversation => "not_participant",
        AppError::Forbidden(_) => "forbidden",
        AppError::RateLimited { .. } => "rate_limit_exceeded",
        AppError::AuthFailed(_) | AppError::TokenRevoked | AppError::InvalidCredentials => "unauthorized",
        AppError::PayloadTooLarge(_) => "message_too_large",
        _ => "internal_error",
    }
}

/// The error envelope of a refusal.
pub fn refusal(err: &AppError) -> Frame {
    error(seed_code(err), &err.to_string())
}

/// A message as seed 002 shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedMessage<'a> {
    id: Uuid,
    conversation_id: Uuid,
    seq: i64,
    sender_id: Uuid,
    sender: SeedSender<'a>,
    #[serde(rename = "type")]
    kind: crate::storage::models::ContentType,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<&'a Value>,
    is_encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    encrypted_content: Option<&'a str>,
    is_read: bool,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<Timestamp>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SeedSender<'a> {
    id: Uuid,
    username: &'a str,
    display_name: &'a str,
    avatar: Option<&'a str>,
}

impl<'a> From<&'a Message> for SeedMessage<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            seq: m.seq,
            sender_id: m.sender_id,
            sender: SeedSender {
                id: m.sender.id,
                username: &m.sender.username,
                display_name: &m.sender.display_name,
                avatar: m.sender.avatar_url.as_deref(),
            },
            kind: m.content_type,
            content: m.content.as_deref(),
            media: m.media.as_ref(),
            is_encrypted: m.is_encrypted,
            encrypted_content: m.encrypted_content.as_deref(),
            is_read: false,
            created_at: m.created_at,
            deleted_at: m.deleted_at,
        }
    }
}

/// A contact's status in `status.bulk`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BulkStatus {
    user_id: Uuid,
    is_online: bool,
    status: PresenceStatus,
    last_seen: Option<String>,
}

impl From<&PresenceView> for BulkStatus {
    fn from(view: &PresenceView) -> Self {
        Self {
            user_id: view.user_id,
            is_online: view.status != PresenceStatus::Offline,
            status: view.status,
            last_seen: view.last_seen_at.map(|t| t.to_wire()),
        }
    }
}

/// `typing.start` / `typing.stop {conversationId, userId, username, displayName}`, then
/// seed 000's `user_typing` and `message.typing`.
fn typing(kind: &str, event: &TypingEvent<'_>, started: bool) -> Vec<Frame> {
    let legacy = json!(LegacyTyping {
        conversation_id: event.conversation_id,
        user_id: event.user_id,
        username: event.username,
        display_name: event.display_name,
        is_typing: started,
    });
    vec![frame(kind, event), frame("user_typing", &legacy), frame("message.typing", &legacy)]
}

/// The frames a raw client gets for `event` (none for events it has no use for).
pub fn render(event: &ServerEvent<'_>) -> Vec<Frame> {
    match event {
        ServerEvent::AuthSuccess(_) | ServerEvent::SyncComplete(_) => Vec::new(),
        ServerEvent::AuthError(e) => vec![error("unauthorized", &e.error)],
        ServerEvent::PresenceBulk(bulk) => {
            let users: Vec<BulkStatus> = bulk.users.iter().map(BulkStatus::from).collect();
            vec![frame("status.bulk", json!({ "users": users }))]
        }
        ServerEvent::MessageReceived(e) => {
            vec![frame("message.new", json!({ "message": SeedMessage::from(e.message) }))]
        }
        ServerEvent::MessageSent(sent) => {
            let payload = json!({ "tempId": sent.client_message_id, "message": SeedMessage::from(sent.message) });
            vec![frame("message.sent", payload)]
        }
        ServerEvent::MessageError(e) => {
            let payload = json!({ "tempId": e.client_message_id, "code": e.code, "message": e.error });
            vec![frame("message.error", payload)]
        }
        ServerEvent::MessageUpdated(e) => {
            vec![frame("message.updated", json!({ "message": SeedMessage::from(e.message) }))]
        }
        ServerEvent::MessageDeleted(e) => vec![frame("message.deleted", e)],
        ServerEvent::ConversationUpdated(e) => vec![frame("conversation.updated", e)],
        ServerEvent::PresenceUpdate(view) => {
            let online = UserOnline::from(*view);
            let kind = if online.is_online { "user.online" } else { "user.offline" };
            vec![frame(kind, &online), frame("user_status", UserStatus::from(*view))]
        }
        ServerEvent::TypingStarted(e) => typing("typing.start", e, true),
        ServerEvent::TypingStopped(e) => typing("typing.stop", e, false),
        ServerEvent::ReceiptUpdated(r) => {
            vec![frame(
                "message.read_update",
                json!({ "conversationId": r.conversation_id, "readBy": r.user_id, "readAt": r.read_at }),
            )]
        }
        ServerEvent::ReceiptCount(e) => vec![frame("receipt.count", e)],
        ServerEvent::UnreadUpdated(e) => vec![frame("unread.updated", e)],
        ServerEvent::Pong(p) => vec![frame("pong", p)],
        ServerEvent::BlockAdded(b) => {
            vec![frame("block.added", json!({ "userId": b.user_id, "username": b.username, "blockedAt": b.at }))]
        }
        ServerEvent::BlockRemoved(b) => {
            vec![frame("block.removed", json!({ "userId": b.user_id, "username": b.username, "unblockedAt": b.at }))]
        }
        ServerEvent::ReadAck(a) => vec![frame("message.read_ack", a)],
        ServerEvent::ParticipantAdded(e) => vec![frame("participant.added", e)],
        ServerEvent::ParticipantRemoved(e) => vec![frame("participant.removed", e)],
        ServerEvent::ParticipantUpdated(e) => vec![frame("participant.updated", e)],
        ServerEvent::KeysChanged(e) => vec![frame("keys.changed", e)],
        ServerEvent::ReactionUpdated(e) => vec![frame("reaction.updated", e)],
        ServerEvent::MessagePinned(e) => vec![frame("message.pinned", e)],
        ServerEvent::MessageUnpinned(e) => vec![frame("message.unpinned", e)],
    }
}

/// `connection.success {userId, connectedAt}`.
pub fn connection_success(user: Uuid, at: Timestamp) -> Frame {
    frame("connection.success", json!({ "userId": user, "connectedAt": at }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::events::BlockChanged;

    #[test]
    fn frames_are_seed_envelopes() {
        let at = Timestamp(chrono::DateTime::from_timestamp_millis(1_704_067_200_000).unwrap());
        let ok = connection_success(Uuid::nil(), at);
        let parsed: Value = serde_json::from_str(&ok).unwrap();
        assert_eq!(
            parsed,
            json!({"type": "connection.success", "payload": {"userId": Uuid::nil(), "connectedAt": "2024-01-01T00:00:00.000Z"}})
        );
        let err: Value = serde_json::from_str(&error("unauthorized", "Authentication required")).unwrap();
        assert_eq!(
            err,
            json!({"type": "error", "error": {"code": "unauthorized", "message": "Authentication required"}})
        );
        let blocked = BlockChanged { user_id: Uuid::nil(), username: "spammer123".into(), at };
        let frames = render(&ServerEvent::BlockAdded(blocked));
        let parsed: Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(
            parsed["payload"],
            json!({"userId": Uuid::nil(), "username": "spammer123", "blockedAt": "2024-01-01T00:00:00.000Z"})
        );
        assert_eq!(seed_code(&AppError::NotFound("conversation")), "conversation_not_found");
        assert_eq!(
            seed_code(&AppError::RateLimited { retry_after: std::time::Duration::from_secs(1) }),
            "rate_limit_exceeded"
        );
    }
}
