//! The event names and payloads of the older clients (seeds 000 and 002), sent alongside the
//! canonical events while `LEGACY_EVENTS` is on. Each twin is derived here, and only here,
//! from the canonical [`ServerEvent`]: nothing else builds a legacy payload.

use serde::Serialize;
use uuid::Uuid;

use super::events::{MessageEvent, MessageSent, ReceiptUpdated, ServerEvent, TypingEvent, Wire};
use crate::{
    domain::{
        time::Timestamp,
        views::{Message, PresenceView},
    },
    shared_state::PresenceStatus,
};

/// Client events under the older clients' names that have canonical twins: a socket that
/// uses one speaks the legacy dialect (see [`super::socketio::speak_legacy`]).
pub const LEGACY_CLIENT_EVENTS: [&str; 7] =
    ["message.send", "message.read", "message.typing", "typing.start", "typing.stop", "typing_start", "typing_stop"];

pub fn is_legacy_client_event(event: &str) -> bool {
    LEGACY_CLIENT_EVENTS.contains(&event)
}

/// A legacy twin of a canonical event.
#[derive(Clone, Debug)]
pub enum LegacyEvent<'a> {
    /// `message.new`: the `message:received` payload.
    MessageNew(MessageEvent<'a>),
    MessageSent(LegacyMessageSent<'a>),
    UserStatus(UserStatus),
    UserOnline(UserOnline),
    UserOffline(UserOnline),
    UserTyping(LegacyTyping<'a>),
    MessageTyping(LegacyTyping<'a>),
    ReadUpdate(ReadUpdate),
}

impl Wire for LegacyEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::MessageNew(_) => "message.new",
            Self::MessageSent(_) => "message.sent",
            Self::UserStatus(_) => "user_status",
            Self::UserOnline(_) => "user.online",
            Self::UserOffline(_) => "user.offline",
            Self::UserTyping(_) => "user_typing",
            Self::MessageTyping(_) => "message.typing",
            Self::ReadUpdate(_) => "message.read_update",
        }
    }
}

impl Serialize for LegacyEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::MessageNew(payload) => payload.serialize(serializer),
            Self::MessageSent(payload) => payload.serialize(serializer),
            Self::UserStatus(payload) => payload.serialize(serializer),
            Self::UserOnline(payload) | Self::UserOffline(payload) => payload.serialize(serializer),
            Self::UserTyping(payload) | Self::MessageTyping(payload) => payload.serialize(serializer),
            Self::ReadUpdate(payload) => payload.serialize(serializer),
        }
    }
}

/// The twins of `event`, in the order they go out after it (none for most events).
pub fn twins<'a>(event: &ServerEvent<'a>) -> Vec<LegacyEvent<'a>> {
    match event {
        ServerEvent::MessageReceived(received) => vec![LegacyEvent::MessageNew(*received)],
        ServerEvent::MessageSent(sent) => vec![LegacyEvent::MessageSent(LegacyMessageSent::from(sent))],
        ServerEvent::PresenceUpdate(view) => {
            let online = UserOnline::from(*view);
            let status = LegacyEvent::UserStatus(UserStatus::from(*view));
            if online.is_online {
                vec![status, LegacyEvent::UserOnline(online)]
            } else {
                vec![status, LegacyEvent::UserOffline(online)]
            }
        }
        ServerEvent::TypingStarted(typing) => typing_twins(typing, true),
        ServerEvent::TypingStopped(typing) => typing_twins(typing, false),
        ServerEvent::ReceiptUpdated(receipt) => vec![LegacyEvent::ReadUpdate(ReadUpdate::from(receipt))],
        _ => Vec::new(),
    }
}

fn typing_twins<'a>(typing: &TypingEvent<'a>, started: bool) -> Vec<LegacyEvent<'a>> {
    let legacy = LegacyTyping::of(typing, started);
    vec![LegacyEvent::UserTyping(legacy.clone()), LegacyEvent::MessageTyping(legacy)]
}

/// `message.sent {tempId, message}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyMessageSent<'a> {
    pub temp_id: &'a str,
    pub message: &'a Message,
}

impl<'a> From<&MessageSent<'a>> for LegacyMessageSent<'a> {
    fn from(sent: &MessageSent<'a>) -> Self {
        Self { temp_id: &sent.message.client_message_id, message: sent.message }
    }
}

/// `user_status {user_id, status, last_seen}` (offline) or `{user_id, status, timestamp}`.
#[derive(Clone, Debug, Serialize)]
pub struct UserStatus {
    pub user_id: Uuid,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Option<String>>,
}

impl From<&PresenceView> for UserStatus {
    fn from(view: &PresenceView) -> Self {
        let offline = view.status == PresenceStatus::Offline;
        Self {
            user_id: view.user_id,
            status: view.status.as_str(),
            last_seen: offline.then(|| view.last_seen_at.map(|t| t.to_wire())),
            timestamp: (!offline).then(|| view.last_activity.map(|t| t.to_wire())),
        }
    }
}

/// `user.online` / `user.offline {userId, isOnline, lastSeen}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOnline {
    pub user_id: Uuid,
    pub is_online: bool,
    pub last_seen: Option<String>,
}

impl From<&PresenceView> for UserOnline {
    fn from(view: &PresenceView) -> Self {
        Self {
            user_id: view.user_id,
            is_online: view.status != PresenceStatus::Offline,
            last_seen: view.last_seen_at.map(|t| t.to_wire()),
        }
    }
}

/// `user_typing` / `message.typing {conversation_id, user_id, username, display_name, is_typing}`.
#[derive(Clone, Debug, Serialize)]
pub struct LegacyTyping<'a> {
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub username: &'a str,
    pub display_name: &'a str,
    pub is_typing: bool,
}

impl<'a> LegacyTyping<'a> {
    fn of(typing: &TypingEvent<'a>, started: bool) -> Self {
        Self {
            conversation_id: typing.conversation_id,
            user_id: typing.user_id,
            username: typing.username,
            display_name: typing.display_name,
            is_typing: started,
        }
    }
}

/// `message.read_update {conversationId, readBy, readAt}`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadUpdate {
    pub conversation_id: Uuid,
    pub read_by: Uuid,
    pub read_at: Timestamp,
}

impl From<&ReceiptUpdated> for ReadUpdate {
    fn from(receipt: &ReceiptUpdated) -> Self {
        Self { conversation_id: receipt.conversation_id, read_by: receipt.user_id, read_at: receipt.read_at }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn view(status: PresenceStatus) -> PresenceView {
        let at = Timestamp(chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap());
        PresenceView { user_id: Uuid::nil(), status, last_activity: Some(at), last_seen_at: None }
    }

    #[test]
    fn presence_twins_say_online_or_offline_in_the_old_shapes() {
        let rendered = |view: &PresenceView| -> Vec<(&'static str, serde_json::Value)> {
            twins(&ServerEvent::PresenceUpdate(view))
                .iter()
                .map(|t| (t.name(), serde_json::to_value(t).unwrap()))
                .collect()
        };
        let online = rendered(&view(PresenceStatus::Online));
        let status = json!({"user_id": Uuid::nil(), "status": "online", "timestamp": "2023-11-14T22:13:20.000Z"});
        assert_eq!(online[0], ("user_status", status));
        assert_eq!(online[1], ("user.online", json!({"userId": Uuid::nil(), "isOnline": true, "lastSeen": null})));
        let offline = rendered(&view(PresenceStatus::Offline));
        assert_eq!(
            offline[0],
            ("user_status", json!({"user_id": Uuid::nil(), "status": "offline", "last_seen": null}))
        );
        assert_eq!(offline[1].0, "user.offline");
    }
}
