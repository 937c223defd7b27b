//! Read receipts and read state: the read watermark (forward only), receipts to the other
//! participants (at once in direct chats and small groups; counted and flushed in batches
//! in groups of [`LARGE_GROUP`] or more), unread counts, mark read / unread, archive and
//! clear history — each synced to the user's other devices.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{
    Deps,
    access::{membership, message_in},
    input::Scope,
    time::Timestamp,
    unread::UnreadNotifier,
    views::{Conversation, User},
};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    fanout::Fanout,
    shared_state::{PendingRead, SharedState},
    storage::{
        Storage,
        models::{MessageRecord, ReadMark, UnreadCount},
    },
};

/// Groups this large get `receipt:count` batches instead of a `receipt:updated` per read.
pub const LARGE_GROUP: usize = 10;
/// Reads taken per flush round.
const FLUSH_BATCH: usize = 5000;

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub user_id: Uuid,
    pub user: User,
    pub read_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receipts {
    pub receipts: Vec<Receipt>,
    /// Participants other than the sender.
    pub total_count: usize,
    pub read_count: usize,
}

/// What a read did: the watermark's `seq`, when, and the conversation's unread count now.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadOutcome {
    pub conversation_id: Uuid,
    pub seq: i64,
    pub read_at: Timestamp,
    pub unread_count: i64,
}

pub struct ReadService {
    storage: Arc<dyn Storage>,
    shared: SharedState,
    fanout: Fanout,
    unread: Arc<UnreadNotifier>,
    clock: SharedClock,
}

impl ReadService {
    pub fn new(deps: &Deps, unread: Arc<UnreadNotifier>) -> Self {
        Self {
            storage: deps.storage.clone(),
            shared: deps.shared.clone(),
            fanout: deps.fanout.clone(),
            unread,
            clock: deps.clock.clone(),
        }
    }

    /// Reads `message` and everything before it.
    pub async fn read_up_to(&self, user: Uuid, conversation: Uuid, message: Uuid) -> AppResult<ReadOutcome> {
        membership(self.storage.as_ref(), user, conversation).await?;
        let message = self.message_in(conversation, message).await?;
        self.read(user, &message).await
    }

    /// Reads everything in the conversation (legacy `message.read`, `read-status {read: true}`).
    pub async fn read_all(&self, user: Uuid, conversation: Uuid) -> AppResult<ReadOutcome> {
        let (record, _) = membership(self.storage.as_ref(), user, conversation).await?;
        match record.last_message_id {
            Some(last) => {
                let message = self.message_in(conversation, last).await?;
                self.read(user, &message).await
            }
            None => {
                self.storage.mark_read(conversation, user, 0, self.clock.now()).await?;
                self.unread.changed(&[user], conversation);
                Ok(ReadOutcome {
                    conversation_id: conversation,
                    seq: 0,
                    read_at: Timestamp(self.clock.now()),
                    unread_count: 0,
                })
            }
        }
    }

    async fn read(&self, user: Uuid, message: &MessageRecord) -> AppResult<ReadOutcome> {
        let now = self.clock.now();
        let conversation = message.conversation_id;
        if self.storage.mark_read(conversation, user, message.seq, now).await? {
            self.announce_read(user, message, now).await?;
            self.unread.changed(&[user], conversation);
        }
        let unread_count = self.unread_in(user, conversation).await?;
        Ok(ReadOutcome { conversation_id: conversation, seq: message.seq, read_at: Timestamp(now), unread_count })
    }

    /// Tells the others: a `receipt:updated` now, or (large groups) a queued mark counted at
    /// the next flush. Users who hide their reads are recorded but not announced.
    async fn announce_read(&self, user: Uuid, message: &MessageRecord, at: DateTime<Utc>) -> AppResult<()> {
        let mark = ReadMark { conversation_id: message.conversation_id, user_id: user, seq: message.seq, read_at: at };
        let shares = self.storage.user_by_id(user).await?.is_some_and(|u| u.read_receipts_enabled);
        let participants = self.storage.member_ids(message.conversation_id).await?;
        if shares && participants.len() >= LARGE_GROUP {
            let pending = PendingRead { mark, message_id: message.id, sender_id: message.sender_id };
            if self.shared.reads.push(&pending).await.is_ok() {
                return Ok(());
            }
            tracing::warn!("read batch queue unavailable; writing the read mark at once");
            self.storage.insert_read_marks(&[pending.mark]).await?;
            return Ok(());
        }
        self.storage.insert_read_marks(&[mark]).await?;
        if shares {
            let others: Vec<Uuid> = participants.into_iter().filter(|p| *p != user).collect();
            self.fanout.receipt_updated(message.conversation_id, message.id, user, Timestamp(at), &others).await;
        }
        Ok(())
    }

    /// Writes queued large-group read marks in bulk and announces each message's new
    /// reader count once.
    pub async fn flush(&self) {
        loop {
            let batch = match self.shared.reads.take(FLUSH_BATCH).await {
                Ok(batch) if !batch.is_empty() => batch,
                Ok(_) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "read batches not flushed");
                    return;
                }
            };
            let marks: Vec<ReadMark> = batch.iter().map(|p| p.mark.clone()).collect();
            if let Err(err) = self.storage.insert_read_marks(&marks).await {
                tracing::error!(error = %err, lost = marks.len(), "read marks not written");
            }
            let mut latest: HashMap<Uuid, &PendingRead> = HashMap::new();
            for read in &batch {
                latest.insert(read.message_id, read);
            }
            for read in latest.values() {
                self.announce_count(read).await;
            }
            metrics::counter!("parley_read_marks_flushed_total").increment(batch.len() as u64);
            if batch.len() < FLUSH_BATCH {
                return;
            }
        }
    }

    async fn announce_count(&self, read: &PendingRead) {
        let conversation = read.mark.conversation_id;
        let readers = self.storage.readers(conversation, read.mark.seq, read.sender_id).await;
        let participants = self.storage.member_ids(conversation).await;
        match (readers, participants) {
            (Ok(readers), Ok(participants)) => {
                self.fanout.receipt_count(conversation, read.message_id, readers.len(), &participants).await;
            }
            (Err(err), _) | (_, Err(err)) => tracing::warn!(error = %err, "receipt:count not sent"),
        }
    }

    /// `GET /api/messages/:id/receipts`: a message from before the caller joined is not
    /// theirs to see (404). Readers and the total count only those who were there when it
    /// was sent.
    pub async fn receipts(&self, user: Uuid, message: Uuid) -> AppResult<Receipts> {
        let record = self.storage.message(message).await?.ok_or(AppError::NotFound("message"))?;
        let (_, participant) = membership(self.storage.as_ref(), user, record.conversation_id).await?;
        if record.seq <= participant.joined_seq {
            return Err(AppError::NotFound("message"));
        }
        let readers = self.storage.readers(record.conversation_id, record.seq, record.sender_id).await?;
        let members = self.storage.members(record.conversation_id).await?;
        let total_count = members.iter().filter(|m| m.user.id != record.sender_id && m.joined_seq < record.seq).count();
        let receipts: Vec<Receipt> = readers
            .iter()
            .map(|r| Receipt {
                user_id: r.user.id,
                user: User::seen_by(&r.user, user),
                read_at: r.read_at.map(Timestamp),
            })
            .collect();
        Ok(Receipts { read_count: receipts.len(), receipts, total_count })
    }

    /// `{total, conversations}` with only the conversations that have something unread.
    pub async fn unread(&self, user: Uuid) -> AppResult<(i64, Vec<UnreadCount>)> {
        let counts = self.storage.unread_counts(user).await?;
        let total = counts.iter().map(|c| c.unread).sum();
        Ok((total, counts.into_iter().filter(|c| c.unread > 0).collect()))
    }

    async fn unread_in(&self, user: Uuid, conversation: Uuid) -> AppResult<i64> {
        let counts = self.storage.unread_counts(user).await?;
        Ok(counts.iter().find(|c| c.conversation_id == conversation).map_or(0, |c| c.unread))
    }

    /// `PUT …/read-status {read, messageId?}`.
    pub async fn set_read_status(
        &self,
        user: Uuid,
        conversation: Uuid,
        read: bool,
        message: Option<Uuid>,
    ) -> AppResult<ReadOutcome> {
        let outcome = match (read, message) {
            (true, Some(message)) => self.read_up_to(user, conversation, message).await?,
            (true, None) => self.read_all(user, conversation).await?,
            (false, _) => {
                let (record, participant) = membership(self.storage.as_ref(), user, conversation).await?;
                self.storage.mark_unread(conversation, user).await?;
                self.unread.changed(&[user], conversation);
                ReadOutcome {
                    conversation_id: conversation,
                    seq: participant.last_read_seq.min(record.last_seq),
                    read_at: Timestamp(self.clock.now()),
                    unread_count: self.unread_in(user, conversation).await?,
                }
            }
        };
        self.sync_devices(user, conversation).await;
        Ok(outcome)
    }

    /// Archive or unarchive for the caller only.
    pub async fn archive(&self, user: Uuid, conversation: Uuid, archived: bool) -> AppResult<Conversation> {
        membership(self.storage.as_ref(), user, conversation).await?;
        self.storage.set_archived(conversation, user, archived.then(|| self.clock.now())).await?;
        self.sync_devices(user, conversation).await.ok_or(AppError::NotInConversation)
    }

    /// Clears history for the caller, or with `everyone` (owners and admins) for all.
    pub async fn clear(&self, user: Uuid, conversation: Uuid, scope: Scope) -> AppResult<()> {
        let everyone = scope == Scope::Everyone;
        let (_, participant) = membership(self.storage.as_ref(), user, conversation).await?;
        if everyone && !participant.role.moderates() {
            return Err(AppError::Forbidden("only owners and admins can clear a conversation for everyone"));
        }
        let now = self.clock.now();
        let affected = if everyone {
            self.storage.clear_history(conversation, None, now).await?;
            self.storage.member_ids(conversation).await?
        } else {
            self.storage.clear_history(conversation, Some(user), now).await?;
            vec![user]
        };
        self.unread.changed(&affected, conversation);
        for member in affected {
            self.sync_devices(member, conversation).await;
        }
        Ok(())
    }

    /// `conversation:updated` with `user`'s view to every device of theirs.
    async fn sync_devices(&self, user: Uuid, conversation: Uuid) -> Option<Conversation> {
        match self.storage.conversation_summary(user, conversation).await {
            Ok(Some(summary)) => {
                let view = Conversation::from(&summary);
                self.fanout.conversation_updated(user, &view).await;
                Some(view)
            }
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, "conversation:updated not sent");
                None
            }
        }
    }

    async fn message_in(&self, conversation: Uuid, message: Uuid) -> AppResult<MessageRecord> {
        message_in(self.storage.as_ref(), conversation, message).await
    }
}
