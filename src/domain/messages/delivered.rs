//! Delivered watermarks: what each user's devices have been sent, so a reconnect replays
//! only the gap. A replica moves them only for what it can vouch for itself (see
//! [`crate::domain::delivery`]).

use std::{collections::HashMap, time::Duration};

use uuid::Uuid;

use super::MessageService;
use crate::{
    storage::models::{DeliveredMark, MessageRecord},
    sync::lock,
};

/// How often gathered delivered watermarks are written.
pub const DELIVERED_FLUSH: Duration = Duration::from_millis(250);

impl MessageService {
    /// For users with sockets here: whatever was created more than `margin` ago reached them.
    /// A draining replica settles nothing: it cut its sockets, whatever was on its way.
    pub async fn settle_delivery(&self, users: &[Uuid], margin: std::time::Duration) {
        if self.local.is_draining() {
            return;
        }
        let cutoff = self.clock.now() - chrono::Duration::from_std(margin).unwrap_or_default();
        if let Err(err) = self.storage.mark_delivered_before(users, cutoff).await {
            tracing::warn!(error = %err, "delivered watermarks not settled");
        }
    }

    /// A socket died silently: what was emitted to it in the last `margin` may never have
    /// arrived, though its user's watermark moved past it as it was emitted. The user's
    /// gathered marks are dropped and the watermarks go back to what is older than `margin`,
    /// so the reconnect replays that stretch (clients de-duplicate by id). Not while draining
    /// (the drain dropped the gathered marks, and cut no socket with unwritten messages).
    pub async fn unsettle_delivery(&self, user: Uuid, margin: std::time::Duration) {
        if self.local.is_draining() {
            return;
        }
        let cutoff = self.clock.now() - chrono::Duration::from_std(margin).unwrap_or_default();
        let _writing = self.delivered_writes.lock().await;
        lock(&self.delivered).remove(&user);
        if let Err(err) = self.storage.unmark_delivered_after(user, cutoff).await {
            tracing::warn!(error = %err, "delivered watermarks not moved back after a silent loss");
        }
    }

    /// Participants with a socket on this replica got the message just now: their delivered
    /// watermark moves past it (gathered here, written by [`Self::flush_delivered`] every
    /// [`DELIVERED_FLUSH`] and before the user's next replay), so a later reconnect does not
    /// replay it. Everyone else's moves when their own replica vouches for it
    /// ([`Self::settle_delivery`]); until then a reconnect replays it (clients de-duplicate by
    /// id), and nothing is lost if that replica dies.
    pub(super) fn record_delivery(&self, message: &MessageRecord, participants: &[Uuid]) {
        let here = self.local.connected(participants);
        if here.is_empty() {
            return;
        }
        let mut pending = lock(&self.delivered);
        for user in here {
            let seq = pending.entry(user).or_default().entry(message.conversation_id).or_default();
            *seq = (*seq).max(message.seq);
        }
    }

    /// Writes the delivered watermarks gathered since the last flush, in one statement.
    pub async fn flush_delivered(&self) {
        let _writing = self.delivered_writes.lock().await;
        let pending = std::mem::take(&mut *lock(&self.delivered));
        let marks: Vec<DeliveredMark> = pending.into_iter().flat_map(|(user, seqs)| marks_of(user, seqs)).collect();
        self.write_delivered(&marks).await;
    }

    /// Writes `user`'s gathered watermarks now, before their replay is computed. It waits
    /// for a periodic flush that is writing: that flush may have taken the user's marks
    /// already, and a replay read before its write lands would send them again.
    pub(super) async fn flush_delivered_for(&self, user: Uuid) {
        let _writing = self.delivered_writes.lock().await;
        let Some(seqs) = lock(&self.delivered).remove(&user) else { return };
        self.write_delivered(&marks_of(user, seqs).collect::<Vec<_>>()).await;
    }

    async fn write_delivered(&self, marks: &[DeliveredMark]) {
        if marks.is_empty() {
            return;
        }
        if let Err(err) = self.storage.mark_delivered_many(marks).await {
            tracing::warn!(error = %err, "delivered watermarks not advanced; messages may be replayed");
        }
    }
}

/// `user`'s gathered watermarks (conversation → seq) as marks to write.
fn marks_of(user: Uuid, seqs: HashMap<Uuid, i64>) -> impl Iterator<Item = DeliveredMark> {
    seqs.into_iter().map(move |(conversation, seq)| DeliveredMark { conversation, user, seq })
}
