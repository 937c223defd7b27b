//! Persistence behind repository traits, one implementation per SQL backend.
//!
//! Both backends share their query code (`sql_store!` in [`sql`]): the SQL is written once in
//! the dialect both PostgreSQL and SQLite understand (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT`), and each backend module supplies only what differs — the pool, its
//! migrations (`migrations/postgres`, `migrations/sqlite`) and a few dialect-specific
//! statements. The same contract test suite (`tests/storage`) runs against both.

mod batch;
pub mod extras;
pub mod keys;
pub mod models;
pub mod push;
pub mod uploads;
#[macro_use]
mod sql;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use models::*;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique constraint refused the write; holds the constraint (or the database's message).
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    /// A foreign key pointed at a row that does not exist (e.g. an unknown user id).
    #[error("unknown reference: {0}")]
    UnknownReference(String),
    #[error(transparent)]
    Database(sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                let what = db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned());
                return Self::Conflict(what);
            }
            if db.is_foreign_key_violation() {
                return Self::UnknownReference(db.message().to_owned());
            }
        }
        Self::Database(err)
    }
}

impl StorageError {
    /// A deadlock or serialization failure: the same transaction may succeed when retried.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("40P01" | "40001"))
            }
            _ => false,
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

#[async_trait]
pub trait UserRepo: Send + Sync {
    async fn create_user(&self, user: &NewUser) -> StorageResult<UserRecord>;
    async fn user_by_id(&self, id: Uuid) -> StorageResult<Option<UserRecord>>;
    async fn user_by_email(&self, email: &str) -> StorageResult<Option<UserRecord>>;
    async fn username_taken(&self, username: &str) -> StorageResult<bool>;
    async fn user_by_username(&self, username: &str) -> StorageResult<Option<UserRecord>>;
    async fn users_by_ids(&self, ids: &[Uuid]) -> StorageResult<Vec<UserRecord>>;
    /// Users whose username or lower-cased display name starts with `prefix` (lower case),
    /// excluding `viewer` and anyone who blocked `viewer`; ordered by username.
    async fn search_users(&self, prefix: &str, viewer: Uuid, limit: i64) -> StorageResult<Vec<UserRecord>>;
    async fn update_profile(&self, id: Uuid, patch: &ProfilePatch, now: DateTime<Utc>) -> StorageResult<UserRecord>;
    async fn update_settings(&self, id: Uuid, patch: &SettingsPatch, now: DateTime<Utc>) -> StorageResult<UserRecord>;
    async fn set_last_seen(&self, id: Uuid, at: DateTime<Utc>) -> StorageResult<()>;
}

#[async_trait]
pub trait SessionRepo: Send + Sync {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StorageResult<()>;
    async fn refresh_token_by_hash(&self, hash: &[u8]) -> StorageResult<Option<RefreshTokenRecord>>;
    /// Marks `old` rotated and stores its successor atomically. Returns `false` (and stores
    /// nothing) when `old` was already rotated or revoked: the caller lost a race or is
    /// replaying a used token.
    async fn rotate_refresh_token(&self, old: Uuid, successor: &NewRefreshToken) -> StorageResult<bool>;
    /// Revokes every live token of a family; returns how many were revoked.
    async fn revoke_refresh_family(&self, family: Uuid, now: DateTime<Utc>) -> StorageResult<u64>;
    async fn purge_expired_refresh_tokens(&self, now: DateTime<Utc>) -> StorageResult<u64>;
}

#[async_trait]
pub trait SocialRepo: Send + Sync {
    /// Idempotent: following twice keeps the first `created_at`.
    async fn follow(&self, follower: Uuid, followee: Uuid, now: DateTime<Utc>) -> StorageResult<()>;
    async fn unfollow(&self, follower: Uuid, followee: Uuid) -> StorageResult<bool>;
    /// Mutual follows, ordered by username.
    async fn friends_of(&self, user: Uuid) -> StorageResult<Vec<UserRecord>>;
    /// Blocks and drops the follows between the two users in both directions, atomically.
    async fn block(&self, blocker: Uuid, blocked: Uuid, now: DateTime<Utc>) -> StorageResult<()>;
    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> StorageResult<bool>;
    /// Users `blocker` has blocked, newest first.
    async fn blocked_by(&self, blocker: Uuid) -> StorageResult<Vec<BlockedUser>>;
    async fn relationship(&self, viewer: Uuid, other: Uuid) -> StorageResult<Relationship>;
    /// The (blocker, blocked) pairs with both ends among `users`.
    async fn blocks_among(&self, users: &[Uuid]) -> StorageResult<Vec<(Uuid, Uuid)>>;
    /// The people whose presence matters to `user`: friends, direct-conversation peers, and
    /// everyone blocked by or blocking `user`.
    async fn contacts(&self, user: Uuid) -> StorageResult<Contacts>;
}

#[derive(Clone, Debug, Default)]
pub struct Contacts {
    pub friends: Vec<Uuid>,
    pub direct_peers: Vec<Uuid>,
    pub blocked_either: Vec<Uuid>,
}

/// What leaving a conversation changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaveOutcome {
    /// The user was a participant and is not any more.
    pub left: bool,
    /// Ownership moved to this user because the last owner left.
    pub new_owner: Option<Uuid>,
    /// Nobody is left: the conversation was soft-deleted.
    pub emptied: bool,
}

#[async_trait]
pub trait ConversationRepo: Send + Sync {
    /// Creates a group owned by `conversation.created_by`, with `members` as members.
    async fn create_group(&self, conversation: &NewConversation, members: &[Uuid])
    -> StorageResult<ConversationRecord>;
    /// The live direct conversation between the creator and `other`, created (creator as
    /// owner) when there is none; `true` when it was created by this call.
    async fn find_or_create_direct(
        &self,
        conversation: &NewConversation,
        other: Uuid,
    ) -> StorageResult<(ConversationRecord, bool)>;
    async fn conversation(&self, id: Uuid) -> StorageResult<Option<ConversationRecord>>;
    async fn participant(&self, conversation: Uuid, user: Uuid) -> StorageResult<Option<ParticipantRecord>>;
    /// Participants with their profiles, longest-standing first.
    async fn members(&self, conversation: Uuid) -> StorageResult<Vec<MemberRecord>>;
    async fn member_ids(&self, conversation: Uuid) -> StorageResult<Vec<Uuid>>;
    /// For a batch of sends: each live conversation among `ids` with its kind and members
    /// (and which members have a push subscription), in one statement.
    async fn send_contexts(&self, ids: &[Uuid]) -> StorageResult<Vec<SendContext>>;
    /// The [`SendVersion`] of each live conversation among `ids`, in one statement.
    async fn send_versions(&self, ids: &[Uuid]) -> StorageResult<Vec<(Uuid, SendVersion)>>;
    /// `user`'s live, visible conversations (archived or not), by last activity, newest
    /// first, strictly after the `(last_activity_at, id)` cursor.
    async fn conversations_of(
        &self,
        user: Uuid,
        archived: bool,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> StorageResult<Vec<ConversationSummaryRecord>>;
    /// One conversation as `user` sees it in a list (whether archived or hidden or not).
    async fn conversation_summary(
        &self,
        user: Uuid,
        conversation: Uuid,
    ) -> StorageResult<Option<ConversationSummaryRecord>>;
    /// Hides the conversation from `user`'s list until a message newer than now arrives.
    async fn hide_conversation(&self, conversation: Uuid, user: Uuid) -> StorageResult<bool>;
    /// Soft-deletes for everyone; `false` when it was already deleted.
    async fn soft_delete_conversation(&self, id: Uuid, now: DateTime<Utc>) -> StorageResult<bool>;
    /// Removes `user`, handing ownership to the longest-standing admin (else member) when
    /// the last owner leaves, and soft-deleting the conversation when nobody is left.
    async fn leave(&self, conversation: Uuid, user: Uuid, now: DateTime<Utc>) -> StorageResult<LeaveOutcome>;
}

#[async_trait]
pub trait MessageRepo: Send + Sync {
    /// Group commit, in one transaction: each message already stored under (sender,
    /// clientMessageId) — or repeated earlier in the batch — answers with the original;
    /// the others take their conversation's next `seq`s in batch order and are stored, and
    /// each conversation is bumped once. One outcome per message, in order.
    async fn send_messages(&self, batch: &[NewMessage]) -> StorageResult<Vec<SendOutcome>>;
    /// [`Self::send_messages`] for one message; `NotFound` when the conversation is gone.
    async fn send_message(&self, message: &NewMessage) -> StorageResult<SendOutcome> {
        match self.send_messages(std::slice::from_ref(message)).await?.pop() {
            Some(SendOutcome::ConversationGone) | None => Err(StorageError::NotFound("conversation")),
            Some(outcome) => Ok(outcome),
        }
    }
    async fn message(&self, id: Uuid) -> StorageResult<Option<MessageRecord>>;
    async fn message_by_client_id(&self, sender: Uuid, client_message_id: &str)
    -> StorageResult<Option<MessageRecord>>;
    /// A page of a conversation's history, never at or below `floor_seq` (cleared for the
    /// reader).
    async fn history(
        &self,
        conversation: Uuid,
        floor_seq: i64,
        query: HistoryQuery,
        limit: i64,
    ) -> StorageResult<Vec<MessageRecord>>;
    /// Replaces the content (or, of an encrypted message, the ciphertext) of a live message;
    /// `None` when missing or deleted.
    async fn edit_message(
        &self,
        id: Uuid,
        content: &str,
        encrypted_content: Option<&str>,
        now: DateTime<Utc>,
    ) -> StorageResult<Option<MessageRecord>>;
    /// Turns a message into a tombstone; `None` when missing or already deleted.
    async fn delete_message(&self, id: Uuid, now: DateTime<Utc>) -> StorageResult<Option<MessageRecord>>;
    /// Conversations with messages past `user`'s delivered watermark (and past what they cleared).
    async fn pending_deliveries(&self, user: Uuid) -> StorageResult<Vec<PendingDelivery>>;
    /// Moves the delivered watermark of `users` in `conversation` forward to `seq` (never back).
    async fn mark_delivered(&self, conversation: Uuid, users: &[Uuid], seq: i64) -> StorageResult<()> {
        let marks: Vec<DeliveredMark> = users.iter().map(|&user| DeliveredMark { conversation, user, seq }).collect();
        self.mark_delivered_many(&marks).await
    }
    /// [`Self::mark_delivered`] for many (conversation, user, seq) marks at once.
    async fn mark_delivered_many(&self, marks: &[DeliveredMark]) -> StorageResult<()>;
    /// Moves each of `users`' delivered watermarks forward past every message created at or
    /// before `cutoff`, in every conversation.
    async fn mark_delivered_before(&self, users: &[Uuid], cutoff: DateTime<Utc>) -> StorageResult<()>;
    /// Moves `user`'s delivered watermarks back to the last message created at or before
    /// `cutoff` wherever they are past it (never below what they joined at): what a dead
    /// connection may have swallowed is replayed.
    async fn unmark_delivered_after(&self, user: Uuid, cutoff: DateTime<Utc>) -> StorageResult<()>;
}

/// Read state, receipts and the per-user conversation operations.
#[async_trait]
pub trait ReadRepo: Send + Sync {
    /// Moves `user`'s read watermark forward to `seq` (never back) and clears "marked
    /// unread"; `true` when anything changed.
    async fn mark_read(&self, conversation: Uuid, user: Uuid, seq: i64, at: DateTime<Utc>) -> StorageResult<bool>;
    async fn mark_unread(&self, conversation: Uuid, user: Uuid) -> StorageResult<()>;
    /// Stores read marks (who read up to where, when), skipping ones already stored.
    async fn insert_read_marks(&self, marks: &[ReadMark]) -> StorageResult<()>;
    /// The exact unread counts of `user`'s live, visible conversations; a conversation left
    /// out has nothing unread (one with a count of 0 may be included).
    async fn unread_counts(&self, user: Uuid) -> StorageResult<Vec<UnreadCount>> {
        Ok(self.unread_counts_of(&[user]).await?.into_iter().map(|(_, count)| count).collect())
    }
    /// [`Self::unread_counts`] of many users in one query: (user, count) pairs.
    async fn unread_counts_of(&self, users: &[Uuid]) -> StorageResult<Vec<(Uuid, UnreadCount)>>;
    /// Participants other than `sender` whose watermark reached `seq` and who share read
    /// receipts, with when they did.
    async fn readers(&self, conversation: Uuid, seq: i64, sender: Uuid) -> StorageResult<Vec<ReceiptRecord>>;
    async fn set_archived(
        &self,
        conversation: Uuid,
        user: Uuid,
        archived_at: Option<DateTime<Utc>>,
    ) -> StorageResult<()>;
    /// Clears history for `user` (or, with `None`, for every participant) up to the last
    /// message: `cleared_seq`, `messages_cleared_at`.
    async fn clear_history(&self, conversation: Uuid, user: Option<Uuid>, at: DateTime<Utc>) -> StorageResult<()>;
    async fn increment_forwarded(&self, message: Uuid, by: i32) -> StorageResult<()>;
}

/// Everything the application needs from a database.
/// Running a group: its fields, its members and roles, invite links, per-user mute.
#[async_trait]
pub trait GroupRepo: Send + Sync {
    /// Applies `patch` to a live conversation; `None` when there is none.
    async fn update_conversation(
        &self,
        id: Uuid,
        patch: &ConversationPatch,
        now: DateTime<Utc>,
    ) -> StorageResult<Option<ConversationRecord>>;
    /// Adds `users` as members, in order, while the group has fewer than `limit`
    /// participants (one transaction). Newcomers see what comes after now: their read,
    /// delivered, cleared and joined marks start at the conversation's `last_seq`.
    async fn add_members(
        &self,
        conversation: Uuid,
        users: &[Uuid],
        limit: usize,
        now: DateTime<Utc>,
    ) -> StorageResult<AddOutcome>;
    /// Sets a participant's role; `false` when they are not one.
    async fn set_role(&self, conversation: Uuid, user: Uuid, role: Role) -> StorageResult<bool>;
    /// `to` becomes the owner and `from` (the owner) an admin, at once; `false` when either
    /// is not a participant.
    async fn transfer_ownership(&self, conversation: Uuid, from: Uuid, to: Uuid) -> StorageResult<bool>;
    /// Mutes the conversation for `user` until `until` (`None`: unmuted).
    async fn set_muted(&self, conversation: Uuid, user: Uuid, until: Option<DateTime<Utc>>) -> StorageResult<bool>;
    async fn create_invite(&self, invite: &NewInvite) -> StorageResult<InviteRecord>;
    async fn invite(&self, code: &str) -> StorageResult<Option<InviteRecord>>;
    /// The conversation's invites that can still be accepted at `now`, oldest first.
    async fn live_invites(&self, conversation: Uuid, now: DateTime<Utc>) -> StorageResult<Vec<InviteRecord>>;
    /// `false` when already revoked (or unknown).
    async fn revoke_invite(&self, code: &str, now: DateTime<Utc>) -> StorageResult<bool>;
    /// Counts one use of a live invite (atomically, so `max_uses` holds under concurrent
    /// accepts); `None` when it is not live.
    async fn use_invite(&self, code: &str, now: DateTime<Utc>) -> StorageResult<Option<InviteRecord>>;
    /// Gives back a use counted by [`Self::use_invite`] that led to nothing.
    async fn unuse_invite(&self, code: &str) -> StorageResult<()>;
}

#[async_trait]
pub trait Storage:
    UserRepo
    + SessionRepo
    + SocialRepo
    + ConversationRepo
    + GroupRepo
    + MessageRepo
    + ReadRepo
    + extras::ExtrasRepo
    + keys::KeyRepo
    + push::PushRepo
    + push::OutboxRepo
    + uploads::UploadRepo
{
    /// `"postgres"` or `"sqlite"`.
    fn backend(&self) -> &'static str;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> StorageResult<()>;
}

/// Opens (and migrates) the database named by `url`: `postgres://…` or `sqlite://…`.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Storage>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else {
        anyhow::bail!("DATABASE_URL must start with postgres:// or sqlite://")
    }
}
