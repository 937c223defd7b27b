//! The missed-message replay on connect, and the `sync` requests.

use std::collections::HashSet;

use serde::Serialize;
use uuid::Uuid;

use super::{MessageService, parse_time};
use crate::{
    domain::{access::membership, views::Message},
    error::AppResult,
    storage::models::HistoryQuery,
};

/// Messages replayed per conversation on connect; beyond that the conversation is listed
/// as truncated and the client pages through REST.
pub const REPLAY_LIMIT: usize = 100;

/// One conversation's missed messages for a (re)connecting socket, oldest first. Once they
/// are emitted, [`MessageService::mark_replayed`] moves the watermark to `delivered_to`.
pub struct ReplayBatch {
    pub conversation_id: Uuid,
    pub messages: Vec<Message>,
    pub delivered_to: i64,
    pub truncated: bool,
}

/// Messages answering a `sync` request.
#[derive(Default, Serialize)]
pub struct Replay {
    pub messages: Vec<Message>,
    pub conversations: usize,
    pub truncated: Vec<Uuid>,
}

impl MessageService {
    /// Everything past `user`'s delivered watermark, at most [`REPLAY_LIMIT`] per
    /// conversation (deleted messages left out). When truncated, the watermark may move to
    /// the end: the client is told to page through REST.
    pub async fn replay(&self, user: Uuid) -> AppResult<Vec<ReplayBatch>> {
        self.flush_delivered_for(user).await;
        let mut batches = Vec::new();
        for pending in self.storage.pending_deliveries(user).await? {
            let floor = pending.last_delivered_seq.max(pending.cleared_seq).max(pending.hidden_seq);
            let query = HistoryQuery::After { seq: floor };
            let mut rows = self.storage.history(pending.conversation_id, floor, query, REPLAY_LIMIT as i64 + 1).await?;
            let truncated = rows.len() > REPLAY_LIMIT;
            rows.truncate(REPLAY_LIMIT);
            let delivered_to = if truncated { pending.last_seq } else { rows.last().map_or(floor, |m| m.seq) };
            rows.retain(|m| m.deleted_at.is_none());
            batches.push(ReplayBatch {
                conversation_id: pending.conversation_id,
                delivered_to,
                messages: self.views_for(user, pending.cleared_seq, &rows).await?,
                truncated,
            });
        }
        Ok(batches)
    }

    /// Called once a [`ReplayBatch`] went out: a socket that drops mid-replay gets the rest
    /// next time.
    pub async fn mark_replayed(&self, user: Uuid, batch: &ReplayBatch) -> AppResult<()> {
        Ok(self.storage.mark_delivered(batch.conversation_id, &[user], batch.delivered_to).await?)
    }

    /// The `sync` request: messages after given points, oldest first, with tombstones.
    pub async fn sync_after(&self, user: Uuid, points: &[(Uuid, i64)]) -> AppResult<Replay> {
        let mut replay = Replay::default();
        let mut seen = HashSet::new();
        for (conversation, after) in points.iter().copied().filter(|(c, _)| seen.insert(*c)) {
            let (_, participant) = membership(self.storage.as_ref(), user, conversation).await?;
            let query = HistoryQuery::After { seq: after.max(0) };
            self.collect(&mut replay, user, conversation, participant.visible_from(), query).await?;
        }
        Ok(replay)
    }

    /// The `sync {since}` request: every conversation active since `since`.
    pub async fn sync_since(&self, user: Uuid, since: &str) -> AppResult<Replay> {
        let time = parse_time("since", since)?;
        let mut replay = Replay::default();
        for archived in [false, true] {
            let active = self.storage.conversations_of(user, archived, None, 1000).await?;
            for summary in active.iter().filter(|s| s.conversation.last_activity_at > time) {
                let query = HistoryQuery::Since { time };
                self.collect(&mut replay, user, summary.conversation.id, summary.cleared_seq, query).await?;
            }
        }
        Ok(replay)
    }

    async fn collect(
        &self,
        replay: &mut Replay,
        user: Uuid,
        conversation: Uuid,
        floor: i64,
        query: HistoryQuery,
    ) -> AppResult<()> {
        let mut rows = self.storage.history(conversation, floor, query, REPLAY_LIMIT as i64 + 1).await?;
        if rows.len() > REPLAY_LIMIT {
            rows.truncate(REPLAY_LIMIT);
            replay.truncated.push(conversation);
        }
        if !rows.is_empty() {
            replay.conversations += 1;
        }
        replay.messages.extend(self.views_for(user, floor, &rows).await?);
        Ok(())
    }
}
