//! What people do with messages beyond sending them (SPEC §4.2): reactions, pins, the unread
//! mention count and full-text search. Replies and mentions themselves are columns of the
//! message (see [`NewMessage`](super::models::NewMessage)).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StorageResult, models::MessageRecord};

/// Users listed per emoji in a reaction summary (the count covers everyone).
pub const REACTORS_LISTED: i64 = 10;

/// One emoji on one message, as `viewer` sees it: how many reacted with it, the first
/// [`REACTORS_LISTED`] of them (earliest first), and whether `viewer` is among all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionSummary {
    pub message_id: Uuid,
    pub emoji: String,
    pub count: i64,
    pub user_ids: Vec<Uuid>,
    pub me: bool,
}

/// A reaction to add or remove.
#[derive(Clone, Debug)]
pub struct ReactionChange {
    pub message_id: Uuid,
    pub user_id: Uuid,
    pub emoji: String,
    pub add: bool,
    pub at: DateTime<Utc>,
}

/// What a reaction change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReactionOutcome {
    /// Applied, or it was already so (`changed: false`). `version` counts the message's
    /// reaction changes; the reactions are every emoji's count and users (`me` of the reactor).
    Done { changed: bool, version: i64, reactions: Vec<ReactionSummary> },
    /// The message already has the most distinct emoji allowed, and this is a new one.
    TooManyEmoji,
    /// No live message with that id.
    MessageGone,
}

/// A pinned message.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PinRecord {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub pinned_by: Option<Uuid>,
    pub pinned_at: DateTime<Utc>,
}

/// What pinning did.
#[derive(Clone, Debug)]
pub enum PinOutcome {
    Pinned(PinRecord),
    /// It was pinned before: the pin as it stands.
    AlreadyPinned(PinRecord),
    /// The conversation has the most pins allowed.
    Full,
}

/// A full-text search in some conversations, newest first.
#[derive(Clone, Debug)]
pub struct SearchQuery {
    /// The conversations to search, each above its floor (the caller's: see
    /// [`ExtrasRepo::search_scope`]).
    pub scopes: Vec<SearchScope>,
    /// Every term must start a word of the message (lower case, word characters only).
    pub terms: Vec<String>,
    /// Only messages after this one in the order of the results (the cursor).
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// A conversation a user may search, and the `seq` at or below which its messages are not
/// theirs to see (before they joined, cleared, or where they hid it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchScope {
    pub conversation_id: Uuid,
    pub floor: i64,
}

#[async_trait]
pub trait ExtrasRepo: Send + Sync {
    /// Adds or removes one reaction of a live message, at most `max_emoji` distinct emoji per
    /// message (checked under the message's row lock, so concurrent reactors cannot
    /// overshoot), and reads the message's reactions back in the same transaction.
    async fn react(&self, change: &ReactionChange, max_emoji: usize) -> StorageResult<ReactionOutcome>;
    /// The reactions of `messages` as `viewer` sees them, per message in order of each
    /// emoji's first reaction.
    async fn reactions(&self, messages: &[Uuid], viewer: Uuid) -> StorageResult<Vec<ReactionSummary>>;
    /// Every (user, emoji) reaction of a message.
    async fn reactors(&self, message: Uuid) -> StorageResult<Vec<(Uuid, String)>>;
    /// Pins a message, at most `max` pins per conversation (under the conversation's lock).
    async fn pin(
        &self,
        conversation: Uuid,
        message: Uuid,
        by: Uuid,
        at: DateTime<Utc>,
        max: usize,
    ) -> StorageResult<PinOutcome>;
    /// `false` when it was not pinned.
    async fn unpin(&self, conversation: Uuid, message: Uuid) -> StorageResult<bool>;
    /// The conversation's pins above `floor_seq` (what the reader may see), newest pin first,
    /// with their messages.
    async fn pins(&self, conversation: Uuid, floor_seq: i64) -> StorageResult<Vec<(PinRecord, MessageRecord)>>;
    /// The participants of `conversation` who may not see its message `seq` (from before they
    /// joined, or cleared for them).
    async fn participants_not_seeing(&self, conversation: Uuid, seq: i64) -> StorageResult<Vec<Uuid>>;
    /// The participants of `conversation` with one of `usernames`, as (id, username).
    async fn members_named(&self, conversation: Uuid, usernames: &[String]) -> StorageResult<Vec<(Uuid, String)>>;
    /// `user`'s live conversations, with what they may see of each.
    async fn search_scope(&self, user: Uuid) -> StorageResult<Vec<SearchScope>>;
    /// Live messages of `query.scopes` above each scope's floor matching every term, newest
    /// first (PostgreSQL: by id, a UUIDv7; SQLite: in the order they were stored),
    /// at most `query.limit`.
    async fn search_messages(&self, query: &SearchQuery) -> StorageResult<Vec<MessageRecord>>;
}
