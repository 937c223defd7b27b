//! The query code both SQL backends share, one file per group of repositories. `sql_store!(Store, Db)` implements every
//! repository trait for `Store`, which must provide `reader()` and `writer()` pools of `Db`
//! and a `dialect` module in scope holding the statements that differ between backends.
//!
//! Why a macro rather than generics over `sqlx::Database`: the generic bounds (encode/decode
//! for every column type, executor lifetimes) would have to be repeated on every impl, while
//! the macro gives the same single source of SQL with plain concrete types.

/// Columns of [`UserRecord`](super::models::UserRecord), in a fixed order.
macro_rules! user_columns {
    () => {
        "id, email, username, display_name, avatar_url, password_hash, show_last_seen, \
         presence_sharing, read_receipts_enabled, last_seen_at, created_at, updated_at"
    };
}

/// The same columns qualified with the alias `u`.
macro_rules! user_columns_u {
    () => {
        "u.id, u.email, u.username, u.display_name, u.avatar_url, u.password_hash, \
         u.show_last_seen, u.presence_sharing, u.read_receipts_enabled, u.last_seen_at, \
         u.created_at, u.updated_at"
    };
}

/// Columns of [`ConversationRecord`](super::models::ConversationRecord) qualified with `c`.
macro_rules! conversation_columns_c {
    () => {
        "c.id, c.kind, c.title, c.visibility, c.description, c.avatar_url, c.created_by, c.last_seq, c.last_message_id, \
         c.last_activity_at, c.created_at, c.updated_at, c.deleted_at"
    };
}

/// Columns of [`ParticipantRecord`](super::models::ParticipantRecord).
macro_rules! participant_columns {
    () => {
        "conversation_id, user_id, role, joined_at, last_read_seq, last_read_at, \
         last_delivered_seq, cleared_seq, messages_cleared_at, archived_at, hidden_seq, \
         marked_unread, joined_seq, muted_until"
    };
}

/// `SELECT` of [`MessageRecord`](super::models::MessageRecord): a message (alias `m`) with
/// its sender's public profile and what a preview of the message it answers shows (alias `r`).
macro_rules! select_messages {
    () => {
        concat!("SELECT ", message_columns!(), " FROM messages m ", message_joins!())
    };
}

/// The columns of [`MessageRecord`](super::models::MessageRecord), from `m` (the message),
/// `u` (its sender) and `r` (the message it answers), joined by [`message_joins`].
macro_rules! message_columns {
    () => {
        concat!(
            message_own_columns!(),
            ", r.seq AS reply_seq, r.sender_id AS reply_sender_id, r.content AS reply_content, \
             r.is_encrypted AS reply_is_encrypted, r.deleted_at AS reply_deleted_at"
        )
    };
}

/// The columns of a message and its sender, without the reply preview.
macro_rules! message_own_columns {
    () => {
        "m.id, m.conversation_id, m.seq, m.sender_id, m.client_message_id, m.content, \
         m.content_type, m.media, m.is_encrypted, m.encrypted_content, m.forwarded_from, \
         m.forwarded_count, m.created_at, m.updated_at, m.deleted_at, u.username AS sender_username, \
         u.display_name AS sender_display_name, u.avatar_url AS sender_avatar_url, \
         u.created_at AS sender_created_at, m.reply_to_id, m.mentions, m.reaction_version"
    };
}

/// [`select_messages`] for messages known to answer none (the send path's common case): no
/// join with the message answered, whose columns are NULL. Measured: the join made the send
/// transaction's reads ~30 % slower on PostgreSQL (bench/README.md, the send path).
macro_rules! select_messages_without_replies {
    () => {
        concat!(
            "SELECT ",
            message_own_columns!(),
            ", CAST(NULL AS BIGINT) AS reply_seq, CAST(NULL AS UUID) AS reply_sender_id, \
             CAST(NULL AS TEXT) AS reply_content, CAST(NULL AS BOOLEAN) AS reply_is_encrypted, \
             CAST(NULL AS TIMESTAMPTZ) AS reply_deleted_at FROM messages m JOIN users u ON u.id = m.sender_id"
        )
    };
}

macro_rules! message_joins {
    () => {
        "JOIN users u ON u.id = m.sender_id LEFT JOIN messages r ON r.id = m.reply_to_id"
    };
}

#[macro_use]
mod accounts;
#[macro_use]
mod conversations;
#[macro_use]
mod extras;
#[macro_use]
mod groups;
#[macro_use]
mod keys;
#[macro_use]
mod messages;
#[macro_use]
mod push;
#[macro_use]
mod reads;
#[macro_use]
mod uploads;

macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        use $crate::storage::{
            Contacts, ConversationRepo, GroupRepo, LeaveOutcome, MessageRepo, ReadRepo, SessionRepo, SocialRepo,
            StorageError, StorageResult, UserRepo, models::*,
        };

        /// Appends `(id, id, …)`, the list of an `IN`.
        fn push_id_list(query: &mut sqlx::QueryBuilder<$db>, ids: impl IntoIterator<Item = uuid::Uuid>) {
            query.push("(");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(id);
            }
            query.push(")");
        }

        sql_accounts!($store, $db);
        sql_conversations!($store, $db);
        sql_extras!($store, $db);
        sql_groups!($store, $db);
        sql_keys!($store, $db);
        sql_messages!($store, $db);
        sql_push!($store, $db);
        sql_reads!($store, $db);
        sql_uploads!($store, $db);

        #[async_trait::async_trait]
        impl $crate::storage::Storage for $store {
            fn backend(&self) -> &'static str {
                dialect::NAME
            }

            async fn ping(&self) -> StorageResult<()> {
                sqlx::query::<$db>("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }
        }
    };
}
