//! What clients see: the wire shapes shared by REST responses and socket events.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::time::Timestamp;
use crate::{
    shared_state::PresenceStatus,
    storage::models::{
        ContentType, ConversationKind, ConversationSummaryRecord, MemberRecord, MessageRecord, PresenceSharing, Role,
        UserRecord, Visibility,
    },
};

/// `User` from the SPEC: `email` only when you look at yourself.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub created_at: Timestamp,
}

impl User {
    /// The view `viewer` gets of `record`.
    pub fn seen_by(record: &UserRecord, viewer: Uuid) -> Self {
        Self {
            id: record.id,
            email: (record.id == viewer).then(|| record.email.clone()),
            username: record.username.clone(),
            display_name: record.display_name.clone(),
            avatar_url: record.avatar_url.clone(),
            created_at: record.created_at.into(),
        }
    }

    /// A user looking at themselves.
    pub fn own(record: &UserRecord) -> Self {
        Self::seen_by(record, record.id)
    }
}

/// Privacy settings of the calling user.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSettings {
    pub show_last_seen: bool,
    pub presence_sharing: PresenceSharing,
    pub read_receipts_enabled: bool,
}

impl From<&UserRecord> for UserSettings {
    fn from(r: &UserRecord) -> Self {
        Self {
            show_last_seen: r.show_last_seen,
            presence_sharing: r.presence_sharing,
            read_receipts_enabled: r.read_receipts_enabled,
        }
    }
}

/// `Message` from the SPEC. Deleted messages are tombstones: `content` and `media` null,
/// `deletedAt` set.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub sender: User,
    pub content: Option<String>,
    pub content_type: ContentType,
    #[schema(value_type = Option<Vec<Object>>)]
    pub media: Option<serde_json::Value>,
    /// End-to-end encrypted: `content` is empty and `encryptedContent` holds the ciphertext,
    /// as the sender's client made it.
    pub is_encrypted: bool,
    /// Base64 ciphertext of an encrypted message (absent otherwise; null once deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
    pub client_message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<Uuid>,
    pub forwarded_count: i32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    /// The message this one answers; null when it answers none, or one this reader may not
    /// see (from before they joined, or cleared for them).
    pub reply_to: Option<ReplyPreview>,
    /// The participants its `@username`s named when it was sent.
    pub mentions: Vec<Uuid>,
    /// Each emoji on it, in the order they were first used. Absent from `message:updated`
    /// (reactions change by `reaction:updated`, and stay as they were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reactions: Option<Vec<Reaction>>,
}

/// What a reply shows of the message it answers.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplyPreview {
    pub id: Uuid,
    pub sender_id: Uuid,
    /// At most [`REPLY_PREVIEW_CHARS`] characters; null once it is deleted, or when it is
    /// encrypted (the server cannot read it).
    pub content: Option<String>,
    pub deleted_at: Option<Timestamp>,
    /// Its `seq`, to tell who may see it.
    #[serde(skip)]
    pub seq: i64,
}

pub const REPLY_PREVIEW_CHARS: usize = 200;

/// One emoji on a message: how many reacted with it, the first 10 of them, and whether the
/// reader did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    pub emoji: String,
    pub count: i64,
    pub user_ids: Vec<Uuid>,
    pub me: bool,
}

/// `reaction:updated`, and what a reaction request answers: a message's reactions now, as
/// one reader sees them. `version` grows with every change of the message's reactions: keep
/// the update with the highest one (updates from two replicas may cross).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReactionUpdate {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub reactions: Vec<Reaction>,
    pub version: i64,
}

/// A pinned message, as `GET …/pins` lists it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pin {
    pub message: Message,
    pub pinned_by: Option<Uuid>,
    pub pinned_at: Timestamp,
}

impl Message {
    /// The view of a reader whose history starts after `visible_from` (their joined or
    /// cleared mark): the reply preview goes when its message is not theirs to see.
    pub fn for_reader(mut self, visible_from: i64) -> Self {
        if self.reply_to.as_ref().is_some_and(|reply| reply.seq <= visible_from) {
            self.reply_to = None;
        }
        self
    }
}

impl From<&MessageRecord> for Message {
    fn from(m: &MessageRecord) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            seq: m.seq,
            sender_id: m.sender_id,
            sender: User {
                id: m.sender_id,
                email: None,
                username: m.sender_username.clone(),
                display_name: m.sender_display_name.clone(),
                avatar_url: m.sender_avatar_url.clone(),
                created_at: m.sender_created_at.into(),
            },
            content: m.content.clone(),
            content_type: m.content_type,
            media: m.media.as_ref().map(|j| j.0.clone()),
            is_encrypted: m.is_encrypted,
            encrypted_content: m.encrypted_content.clone(),
            client_message_id: m.client_message_id.clone(),
            forwarded_from: m.forwarded_from,
            forwarded_count: m.forwarded_count,
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
            deleted_at: m.deleted_at.map(Into::into),
            reply_to: reply_preview(m),
            mentions: m.mentions.as_ref().map(|ids| ids.0.clone()).unwrap_or_default(),
            reactions: Some(Vec::new()),
        }
    }
}

fn reply_preview(m: &MessageRecord) -> Option<ReplyPreview> {
    let (id, seq, sender_id) = (m.reply_to_id?, m.reply_seq?, m.reply_sender_id?);
    let readable = m.reply_deleted_at.is_none() && m.reply_is_encrypted != Some(true);
    let content =
        m.reply_content.as_deref().filter(|_| readable).map(|text| text.chars().take(REPLY_PREVIEW_CHARS).collect());
    Some(ReplyPreview { id, sender_id, content, deleted_at: m.reply_deleted_at.map(Into::into), seq })
}

/// The last message of a conversation, as shown in a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePreview {
    pub id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    /// At most [`PREVIEW_CHARS`] characters; null for a deleted message.
    pub content: Option<String>,
    pub content_type: ContentType,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

pub const PREVIEW_CHARS: usize = 120;

/// Someone typing in a conversation.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypingUser {
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
}

impl From<&UserRecord> for TypingUser {
    fn from(r: &UserRecord) -> Self {
        Self { user_id: r.id, username: r.username.clone(), display_name: r.display_name.clone() }
    }
}

/// `Conversation` from the SPEC, as one participant sees it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: ConversationKind,
    pub title: Option<String>,
    /// Groups only: `public` groups can be joined by anyone who knows the id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    pub description: Option<String>,
    pub avatar_url: Option<String>,
    /// The viewer muted it until then (no push; still counted unread).
    pub muted_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub participant_count: i64,
    pub last_message: Option<MessagePreview>,
    pub unread_count: i64,
    /// How many of the unread messages mention the viewer.
    pub mentioned_count: i64,
    pub is_archived: bool,
    pub typing_users: Vec<TypingUser>,
}

impl From<&ConversationSummaryRecord> for Conversation {
    fn from(s: &ConversationSummaryRecord) -> Self {
        let c = &s.conversation;
        // A last message the reader cleared is not theirs to preview.
        let visible = s.lm_seq.is_some_and(|seq| seq > s.cleared_seq);
        let last_message = match (visible, s.lm_id, s.lm_seq, s.lm_sender_id, s.lm_created_at) {
            (true, Some(id), Some(seq), Some(sender_id), Some(created_at)) => Some(MessagePreview {
                id,
                seq,
                sender_id,
                content: s.lm_content.as_deref().map(|t| t.chars().take(PREVIEW_CHARS).collect()),
                content_type: s
                    .lm_content_type
                    .clone()
                    .and_then(|t| ContentType::try_from(t).ok())
                    .unwrap_or(ContentType::Text),
                created_at: created_at.into(),
                deleted_at: s.lm_deleted_at.map(Into::into),
            }),
            _ => None,
        };
        Self {
            id: c.id,
            kind: c.kind,
            title: c.title.clone(),
            visibility: (c.kind == ConversationKind::Group).then_some(c.visibility),
            description: c.description.clone(),
            avatar_url: c.avatar_url.clone(),
            muted_until: s.muted_until.map(Timestamp),
            created_at: c.created_at.into(),
            updated_at: c.updated_at.into(),
            participant_count: s.participant_count,
            last_message,
            unread_count: if s.marked_unread && s.unread_count == 0 { 1 } else { s.unread_count },
            mentioned_count: s.mentioned_count,
            is_archived: s.archived_at.is_some(),
            typing_users: Vec::new(),
        }
    }
}

impl Participant {
    /// `member` as `viewer` sees them.
    pub fn seen_by(member: &MemberRecord, viewer: Uuid) -> Self {
        Self { user: User::seen_by(&member.user, viewer), role: member.role, joined_at: member.joined_at.into() }
    }
}

/// A participant as shown in a conversation's detail: profile and role, nothing private.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub user: User,
    pub role: Role,
    pub joined_at: Timestamp,
}

/// `ConversationDetail`: a conversation with its participants.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub participants: Vec<Participant>,
}

/// `{userId, status, lastActivity, lastSeenAt}`: presence as one viewer may see it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceView {
    pub user_id: Uuid,
    pub status: PresenceStatus,
    pub last_activity: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
}
