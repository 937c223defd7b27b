//! Rows as the storage layer reads and writes them. Domain code turns these into wire types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who may see a user's presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceSharing {
    Everyone,
    Friends,
    Nobody,
}

impl PresenceSharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Friends => "friends",
            Self::Nobody => "nobody",
        }
    }
}

impl TryFrom<String> for PresenceSharing {
    type Error = UnknownVariant;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "everyone" => Ok(Self::Everyone),
            "friends" => Ok(Self::Friends),
            "nobody" => Ok(Self::Nobody),
            _ => Err(UnknownVariant(value)),
        }
    }
}

/// A text column held a value the code does not know (a newer schema, or manual edits).
#[derive(Debug, thiserror::Error)]
#[error("unknown enum value `{0}` in the database")]
pub struct UnknownVariant(pub String);

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub password_hash: String,
    pub show_last_seen: bool,
    #[sqlx(try_from = "String")]
    pub presence_sharing: PresenceSharing,
    pub read_receipts_enabled: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// Profile fields to change; `None` leaves a field as it is. `avatar_url: Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<Option<String>>,
}

#[derive(Clone, Debug, Default)]
pub struct SettingsPatch {
    pub show_last_seen: Option<bool>,
    pub presence_sharing: Option<PresenceSharing>,
    pub read_receipts_enabled: Option<bool>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefreshTokenRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// How two users stand towards each other, seen from `viewer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relationship {
    pub following: bool,
    pub followed_by: bool,
    pub blocking: bool,
    pub blocked_by: bool,
}

impl Relationship {
    pub fn is_friend(&self) -> bool {
        self.following && self.followed_by
    }
}

#[derive(Clone, Debug)]
pub struct BlockedUser {
    pub user: UserRecord,
    pub blocked_at: DateTime<Utc>,
}

/// Generates `as_str`, `TryFrom<String>` for a text-backed enum column.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownVariant;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                match value.as_str() {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(UnknownVariant(value)),
                }
            }
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationKind {
    Direct,
    Group,
}
text_enum!(ConversationKind { Direct => "direct", Group => "group" });

/// Who may join a group without being added: anyone who knows its id (`public`), or
/// nobody (`private`, the default). Direct conversations are always `private`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Private,
    Public,
}
text_enum!(Visibility { Private => "private", Public => "public" });

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}
text_enum!(Role { Owner => "owner", Admin => "admin", Member => "member" });

impl Role {
    /// Owners and admins moderate: delete others' messages, clear for everyone.
    pub fn moderates(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    Text,
    Image,
    Video,
    File,
}
text_enum!(ContentType { Text => "text", Image => "image", Video => "video", File => "file" });

/// The key agreement or signature scheme of a public key in the key directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    X25519,
    P256,
    Ed25519,
}
text_enum!(KeyAlgorithm { X25519 => "x25519", P256 => "p256", Ed25519 => "ed25519" });

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConversationRecord {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: ConversationKind,
    pub title: Option<String>,
    #[sqlx(try_from = "String")]
    pub visibility: Visibility,
    pub description: Option<String>,
    pub avatar_url: Option<String>,
    pub created_by: Option<Uuid>,
    pub last_seq: i64,
    pub last_message_id: Option<Uuid>,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct NewConversation {
    pub id: Uuid,
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub visibility: Visibility,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

/// Fields of a group to change; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversationPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub visibility: Option<Visibility>,
}

impl ConversationPatch {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What adding users to a group did, each user in one list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddOutcome {
    pub added: Vec<Uuid>,
    pub already_members: Vec<Uuid>,
    /// Not added: the group reached its size limit.
    pub full: Vec<Uuid>,
}

/// An invite link of a group.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InviteRecord {
    pub code: String,
    pub conversation_id: Uuid,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl InviteRecord {
    /// Whether it can still be accepted at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none()
            && self.expires_at.is_none_or(|at| at > now)
            && self.max_uses.is_none_or(|max| self.uses < max)
    }
}

#[derive(Clone, Debug)]
pub struct NewInvite {
    pub code: String,
    pub conversation_id: Uuid,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i32>,
}

/// One member's state in a conversation.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ParticipantRecord {
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    pub last_read_seq: i64,
    pub last_read_at: Option<DateTime<Utc>>,
    pub last_delivered_seq: i64,
    pub cleared_seq: i64,
    pub messages_cleared_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
    pub hidden_seq: Option<i64>,
    pub marked_unread: bool,
    /// The conversation's `last_seq` when they joined: they see what came after.
    pub joined_seq: i64,
    pub muted_until: Option<DateTime<Utc>>,
}

impl ParticipantRecord {
    /// Messages at or below this `seq` are not theirs to see: from before they joined, or
    /// cleared for them.
    pub fn visible_from(&self) -> i64 {
        self.joined_seq.max(self.cleared_seq)
    }
}

/// A participant with the public profile fields of the user.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MemberRecord {
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    pub joined_seq: i64,
    #[sqlx(flatten)]
    pub user: UserRecord,
}

/// A conversation as one participant sees it in a list.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConversationSummaryRecord {
    #[sqlx(flatten)]
    pub conversation: ConversationRecord,
    pub archived_at: Option<DateTime<Utc>>,
    pub cleared_seq: i64,
    pub marked_unread: bool,
    pub muted_until: Option<DateTime<Utc>>,
    pub participant_count: i64,
    pub unread_count: i64,
    /// Unread messages that mention the user.
    pub mentioned_count: i64,
    pub lm_id: Option<Uuid>,
    pub lm_seq: Option<i64>,
    pub lm_sender_id: Option<Uuid>,
    pub lm_content: Option<String>,
    pub lm_content_type: Option<String>,
    pub lm_created_at: Option<DateTime<Utc>>,
    pub lm_deleted_at: Option<DateTime<Utc>>,
}

/// A message with the public profile of its sender.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRecord {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub client_message_id: String,
    pub content: Option<String>,
    #[sqlx(try_from = "String")]
    pub content_type: ContentType,
    pub media: Option<sqlx::types::Json<serde_json::Value>>,
    pub is_encrypted: bool,
    /// The ciphertext of an end-to-end encrypted message, as the client sent it.
    pub encrypted_content: Option<String>,
    pub forwarded_from: Option<Uuid>,
    pub forwarded_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub sender_username: String,
    pub sender_display_name: String,
    pub sender_avatar_url: Option<String>,
    pub sender_created_at: DateTime<Utc>,
    /// The message this one answers, and what a preview of it shows (see `views::ReplyPreview`).
    pub reply_to_id: Option<Uuid>,
    pub reply_seq: Option<i64>,
    pub reply_sender_id: Option<Uuid>,
    pub reply_content: Option<String>,
    pub reply_is_encrypted: Option<bool>,
    pub reply_deleted_at: Option<DateTime<Utc>>,
    /// The participants its `@username`s named when it was sent.
    pub mentions: Option<sqlx::types::Json<Vec<Uuid>>>,
    /// How many reaction changes it had: 0 means no reactions (nothing to look up).
    pub reaction_version: i64,
}

#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub sender_id: Uuid,
    pub client_message_id: String,
    pub content: String,
    pub content_type: ContentType,
    pub media: Option<serde_json::Value>,
    /// An end-to-end encrypted message's ciphertext (its `content` is then empty).
    pub encrypted_content: Option<String>,
    pub forwarded_from: Option<Uuid>,
    /// The message it answers (checked to be of the same conversation before it is written).
    pub reply_to_id: Option<Uuid>,
    /// The participants its `@username`s name (resolved before it is written).
    pub mentions: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Who to notify when it is stored (the send transaction writes the outbox rows).
    pub notify: Option<Notify>,
}

impl NewMessage {
    /// The uploads its `media` names (`{uploadId}` items, filled in and checked before it is
    /// written): the send transaction records the references.
    pub fn upload_ids(&self) -> Vec<Uuid> {
        media_upload_ids(self.media.as_ref())
    }
}

/// The `uploadId`s of a `media` array.
pub fn media_upload_ids(media: Option<&serde_json::Value>) -> Vec<Uuid> {
    let Some(items) = media.and_then(|m| m.as_array()) else { return Vec::new() };
    items.iter().filter_map(|item| item.get("uploadId")?.as_str()?.parse().ok()).fold(Vec::new(), |mut ids, id| {
        if !ids.contains(&id) {
            ids.push(id);
        }
        ids
    })
}

/// Who to notify about one message, worked out before its transaction: the transaction
/// writes the outbox rows, so a stored message has its notifications on record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// Recipients with no connected socket on any replica when the message was sent.
    pub offline: Vec<Uuid>,
    /// Recipients mentioned by the message: notified even when they muted the conversation.
    pub mentioned: Vec<Uuid>,
    /// A group message: pushes to one subscription are coalesced per conversation.
    pub coalesce: bool,
    /// Webhooks are configured: `message.created` and `message.offline` rows too.
    pub webhooks: bool,
}

/// What a send did: stored a new message, or found the one stored earlier under the same
/// (sender, clientMessageId).
#[derive(Clone, Debug)]
pub enum SendOutcome {
    Created(MessageRecord),
    Duplicate(MessageRecord),
    /// The conversation does not exist or was deleted: nothing was stored.
    ConversationGone,
}

/// Which slice of a conversation's history to read.
#[derive(Clone, Copy, Debug)]
pub enum HistoryQuery {
    /// Newest first, strictly before `seq` (or from the newest).
    Before { seq: Option<i64> },
    /// Oldest first, strictly after `seq`.
    After { seq: i64 },
    /// Oldest first, created strictly after `time`.
    Since { time: DateTime<Utc> },
}

/// Unread messages of one conversation for one user: messages from others after the read
/// watermark, not deleted, not cleared; at least 1 when the user marked it unread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreadCount {
    pub conversation_id: Uuid,
    pub unread: i64,
}

/// Someone who read a message, and when.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ReceiptRecord {
    #[sqlx(flatten)]
    pub user: UserRecord,
    pub read_at: Option<DateTime<Utc>>,
}

/// A row of `read_receipts`: when a reader's watermark reached `seq`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadMark {
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub seq: i64,
    pub read_at: DateTime<Utc>,
}

/// A user's delivered watermark in a conversation, to be moved forward to `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveredMark {
    pub conversation: Uuid,
    pub user: Uuid,
    pub seq: i64,
}

/// What a send into a conversation is checked against: its kind and current members, and
/// which of those have a push subscription (the ones a push could be for).
#[derive(Clone, Debug)]
pub struct SendContext {
    pub id: Uuid,
    pub kind: ConversationKind,
    pub members: Vec<Uuid>,
    pub subscribed: Vec<Uuid>,
}

/// The versions of what a [`SendContext`] was read from: the conversation's
/// `members_version` and the database's `send_context_generation` (blocks and push
/// subscriptions). A context read after these numbers were is current while they stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendVersion {
    pub members: i64,
    pub generation: i64,
}

/// A conversation in which a user has messages not yet delivered to any of their devices.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PendingDelivery {
    pub conversation_id: Uuid,
    pub last_seq: i64,
    pub last_delivered_seq: i64,
    pub cleared_seq: i64,
    /// Where the user hid the conversation (0 if never): what came before stays dismissed.
    pub hidden_seq: i64,
}
