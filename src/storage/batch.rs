//! The backend-neutral part of a group commit: which messages of a batch are retries of
//! stored ones or of an earlier entry in the same batch, which are new, and how the new ones
//! share out `seq` per conversation.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::models::{MessageRecord, NewMessage, SendOutcome};

/// Tries of one batch before its error is returned: a later try sees what a concurrent
/// writer committed, or gets past a deadlock.
pub(crate) const SEND_ATTEMPTS: usize = 3;

pub(crate) struct BatchPlan {
    /// Per batch entry: known once the entry is a stored duplicate or has been created.
    outcomes: Vec<Option<SendOutcome>>,
    /// Entries to insert: the first of each new (sender, clientMessageId) key.
    pub fresh: Vec<usize>,
    /// Later entries with the key of an earlier fresh entry: (entry, that earlier entry).
    repeats: Vec<(usize, usize)>,
}

/// The new messages of one conversation, in batch order.
pub(crate) struct ConversationGroup {
    pub conversation: Uuid,
    pub members: Vec<usize>,
    /// The last of them, which becomes the conversation's last message.
    pub last_id: Uuid,
    pub at: DateTime<Utc>,
}

/// Sorts out a batch given the stored messages that match any of its keys.
pub(crate) fn plan_batch(batch: &[NewMessage], stored: &[MessageRecord]) -> BatchPlan {
    let stored: HashMap<(Uuid, &str), &MessageRecord> =
        stored.iter().map(|m| ((m.sender_id, m.client_message_id.as_str()), m)).collect();
    let mut first_of: HashMap<(Uuid, &str), usize> = HashMap::new();
    let mut plan = BatchPlan { outcomes: vec![None; batch.len()], fresh: Vec::new(), repeats: Vec::new() };
    for (i, message) in batch.iter().enumerate() {
        let key = (message.sender_id, message.client_message_id.as_str());
        if let Some(original) = stored.get(&key) {
            plan.outcomes[i] = Some(SendOutcome::Duplicate((*original).clone()));
        } else if let Some(first) = first_of.get(&key) {
            plan.repeats.push((i, *first));
        } else {
            first_of.insert(key, i);
            plan.fresh.push(i);
        }
    }
    plan
}

impl BatchPlan {
    /// The fresh entries grouped by conversation, groups in conversation id order (the
    /// order their rows are locked in, so concurrent batches do not deadlock).
    pub fn by_conversation(&self, batch: &[NewMessage]) -> Vec<ConversationGroup> {
        let mut groups: HashMap<Uuid, ConversationGroup> = HashMap::new();
        for &i in &self.fresh {
            let message = &batch[i];
            let group = groups.entry(message.conversation_id).or_insert_with(|| ConversationGroup {
                conversation: message.conversation_id,
                members: Vec::new(),
                last_id: message.id,
                at: message.created_at,
            });
            group.members.push(i);
            group.last_id = message.id;
            group.at = group.at.max(message.created_at);
        }
        let mut groups: Vec<ConversationGroup> = groups.into_values().collect();
        groups.sort_by_key(|g| g.conversation);
        groups
    }

    /// Records the messages the batch's insert stored, as its entries' outcomes.
    pub fn created(&mut self, batch: &[NewMessage], records: Vec<MessageRecord>) {
        let mut records: HashMap<Uuid, MessageRecord> = records.into_iter().map(|m| (m.id, m)).collect();
        for (i, message) in batch.iter().enumerate() {
            if let Some(record) = records.remove(&message.id) {
                self.outcomes[i] = Some(SendOutcome::Created(record));
            }
        }
    }

    /// Every entry's outcome: repeats answer with what their first entry became, and fresh
    /// entries that were not created belong to a conversation that is gone.
    pub fn finish(mut self, batch: &[NewMessage]) -> Vec<SendOutcome> {
        debug_assert_eq!(batch.len(), self.outcomes.len());
        for (i, first) in std::mem::take(&mut self.repeats) {
            self.outcomes[i] = match &self.outcomes[first] {
                Some(SendOutcome::Created(record)) => Some(SendOutcome::Duplicate(record.clone())),
                other => other.clone(),
            };
        }
        self.outcomes.into_iter().map(|o| o.unwrap_or(SendOutcome::ConversationGone)).collect()
    }
}
