//! The payloads of realtime client events (Socket.IO events and raw WebSocket envelopes
//! alike), parsed into types that cannot hold an invalid value. Each gateway parses a
//! payload into its handler's input type before the handler runs; a payload that does not
//! parse is refused naming the field (`details.field`), and the handler never sees it.
//! Older clients' spellings (`conversation_id`, `tempId`, `isTyping`) are accepted here, so
//! handlers know one shape.

use serde_json::Value;
use uuid::Uuid;

use crate::{
    domain::{
        message_input::{OutgoingMessage, parse_uuid},
        reactions::Emoji,
    },
    error::{AppError, AppResult},
    shared_state::PresenceStatus,
};

/// A client event's payload (any JSON; `null` when the client sent none) as `Self`.
pub trait FromPayload: Sized {
    fn from_payload(payload: &Value) -> AppResult<Self>;
}

/// Conversations one `sync {conversations}` request may name.
pub const SYNC_MAX_CONVERSATIONS: usize = 100;

fn field<'a>(payload: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|name| payload.get(*name))
}

/// `{conversationId}`.
pub struct ConversationRef {
    pub conversation_id: Uuid,
}

impl FromPayload for ConversationRef {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        Ok(Self { conversation_id: parse_uuid("conversationId", payload.get("conversationId"))? })
    }
}

/// `reaction:add` / `reaction:remove {conversationId, messageId, emoji}`.
pub struct ReactionRequest {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub emoji: Emoji,
}

impl FromPayload for ReactionRequest {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        if !payload.is_object() {
            return Err(AppError::validation("the payload must be an object"));
        }
        let emoji = match payload.get("emoji") {
            Some(Value::String(emoji)) => Emoji::parse(emoji)?,
            _ => return Err(AppError::invalid_field("emoji", "is required: one emoji")),
        };
        Ok(Self {
            conversation_id: parse_uuid("conversationId", payload.get("conversationId"))?,
            message_id: parse_uuid("messageId", payload.get("messageId"))?,
            emoji,
        })
    }
}

/// `{conversationId}`, or the older clients' `{conversation_id}`.
pub struct AnyConversationRef {
    pub conversation_id: Uuid,
}

impl FromPayload for AnyConversationRef {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        let raw = field(payload, &["conversationId", "conversation_id"]);
        Ok(Self { conversation_id: parse_uuid("conversationId", raw)? })
    }
}

/// `message:send`: the message, or why it is refused, with the client's id for it either
/// way (a refusal names it in `message:error`).
pub struct SendRequest {
    pub client_message_id: Option<String>,
    pub message: AppResult<OutgoingMessage>,
}

impl FromPayload for SendRequest {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        let client_message_id =
            field(payload, &["clientMessageId", "tempId"]).and_then(Value::as_str).map(str::to_owned);
        Ok(Self { client_message_id, message: OutgoingMessage::from_payload(payload) })
    }
}

/// `sync {conversations: [{conversationId, afterSeq}]}` or `sync {since}`.
pub enum SyncRequest {
    After(Vec<(Uuid, i64)>),
    Since(String),
}

impl FromPayload for SyncRequest {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        if let Some(since) = payload.get("since") {
            let since = since.as_str().ok_or_else(|| AppError::invalid_field("since", "must be an RFC 3339 time"))?;
            return Ok(Self::Since(since.to_owned()));
        }
        let list = payload.get("conversations").and_then(Value::as_array).ok_or_else(|| {
            AppError::validation("sync needs {conversations: [{conversationId, afterSeq}]} or {since}")
        })?;
        if list.len() > SYNC_MAX_CONVERSATIONS {
            return Err(AppError::invalid_field("conversations", "at most 100 per request"));
        }
        let points = list
            .iter()
            .map(|entry| {
                let conversation = parse_uuid("conversationId", entry.get("conversationId"))?;
                let after = match entry.get("afterSeq") {
                    None | Some(Value::Null) => 0,
                    Some(value) => value
                        .as_i64()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| AppError::invalid_field("afterSeq", "must be a non-negative integer"))?,
                };
                Ok((conversation, after))
            })
            .collect::<AppResult<_>>()?;
        Ok(Self::After(points))
    }
}

/// `receipt:read {conversationId, messageId}`.
pub struct ReadRequest {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
}

impl FromPayload for ReadRequest {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        Ok(Self {
            conversation_id: parse_uuid("conversationId", payload.get("conversationId"))?,
            message_id: parse_uuid("messageId", payload.get("messageId"))?,
        })
    }
}

/// A typing event: the conversation, and `is_typing` when the payload says (the legacy
/// `message.typing` must; the other names say it themselves).
pub struct TypingRequest {
    pub conversation_id: Uuid,
    pub is_typing: Option<bool>,
}

impl FromPayload for TypingRequest {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        let conversation_id = parse_uuid("conversationId", field(payload, &["conversationId", "conversation_id"]))?;
        let is_typing = field(payload, &["is_typing", "isTyping"]).and_then(Value::as_bool);
        Ok(Self { conversation_id, is_typing })
    }
}

/// `presence:heartbeat {status?}`: `online` (the default) or `away`.
pub struct Heartbeat {
    pub status: PresenceStatus,
}

impl FromPayload for Heartbeat {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        let status = match payload.get("status") {
            None | Some(Value::Null) => PresenceStatus::Online,
            Some(Value::String(s)) if s == "online" => PresenceStatus::Online,
            Some(Value::String(s)) if s == "away" => PresenceStatus::Away,
            Some(_) => return Err(AppError::invalid_field("status", "must be `online` or `away`")),
        };
        Ok(Self { status })
    }
}

/// `ping {timestamp?}`: whatever the client put in `timestamp` comes back.
pub struct PingRequest {
    pub timestamp: Value,
}

impl FromPayload for PingRequest {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        Ok(Self { timestamp: payload.get("timestamp").cloned().unwrap_or(Value::Null) })
    }
}

/// `block.add` / `block.remove {username}`.
pub struct BlockRequest {
    pub username: String,
}

impl FromPayload for BlockRequest {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        let username = payload
            .get("username")
            .and_then(Value::as_str)
            .ok_or_else(|| AppError::invalid_field("username", "is required"))?;
        Ok(Self { username: username.to_owned() })
    }
}

/// `auth {token}`.
pub struct AuthRequest {
    pub token: String,
}

impl FromPayload for AuthRequest {
    fn from_payload(payload: &Value) -> AppResult<Self> {
        let token = payload
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or(AppError::AuthFailed("`auth` needs {token}"))?;
        Ok(Self { token: token.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(err: AppError) -> Value {
        err.body().details.map(|d| d["field"].clone()).unwrap_or_default()
    }

    #[test]
    fn a_bad_payload_is_refused_naming_the_field() {
        let id = Uuid::now_v7().to_string();
        assert_eq!(field_of(ConversationRef::from_payload(&json!(null)).err().unwrap()), "conversationId");
        assert_eq!(field_of(ReadRequest::from_payload(&json!({"conversationId": id})).err().unwrap()), "messageId");
        let sync = json!({"conversations": [{"conversationId": id, "afterSeq": -1}]});
        assert_eq!(field_of(SyncRequest::from_payload(&sync).err().unwrap()), "afterSeq");
        assert_eq!(field_of(Heartbeat::from_payload(&json!({"status": "busy"})).err().unwrap()), "status");
        assert_eq!(field_of(BlockRequest::from_payload(&json!({})).err().unwrap()), "username");
    }

    #[test]
    fn older_spellings_are_accepted() {
        let id = Uuid::now_v7();
        let typing = TypingRequest::from_payload(&json!({"conversation_id": id, "isTyping": true})).unwrap();
        assert_eq!((typing.conversation_id, typing.is_typing), (id, Some(true)));
        let read = AnyConversationRef::from_payload(&json!({"conversation_id": id})).unwrap();
        assert_eq!(read.conversation_id, id);
        let send = SendRequest::from_payload(&json!({"tempId": "t-1"})).unwrap();
        assert_eq!(send.client_message_id.as_deref(), Some("t-1"));
        assert!(send.message.is_err(), "no conversation, no content");
    }
}
