//! The checks of a batch of sends: may each sender post into their conversation, and who
//! are its members (and which of them have a push subscription)?
//!
//! The message writer asks these for every batch, and a 999-member group is 999 rows to
//! read each time. So each replica's writer keeps what it read, and for a batch asks the
//! database only for the version numbers of its conversations (one short statement):
//! `members_version`, which triggers bump with every change of a conversation's members,
//! and `send_context_generation`, bumped with every change to blocks or to who has a push
//! subscription. A cached context is used only while both numbers are the ones it was read
//! under; the numbers are read before the context, so a context is never older than its
//! numbers. This holds across replicas: the numbers live in the database.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    storage::{
        Storage, StorageError,
        models::{ConversationKind, NewMessage, SendVersion},
    },
};

/// Conversations whose contexts a writer keeps; past it, the least recently used half goes.
const CACHED_CONVERSATIONS: usize = 4096;

/// A conversation as a send into it is checked.
#[derive(Debug)]
pub struct SendTarget {
    pub kind: ConversationKind,
    pub members: Vec<Uuid>,
    /// Members with a push subscription: the only ones a push could be for.
    pub subscribed: Vec<Uuid>,
    /// A direct conversation between two users one of whom blocks the other.
    blocked: bool,
}

/// A send that may go ahead, with its conversation as checked.
pub type Checked = Arc<SendTarget>;

struct Cached {
    version: SendVersion,
    target: Checked,
    /// The batch that last used it.
    used: u64,
}

/// One writer's checks, with its cache of conversations.
#[derive(Default)]
pub struct SendChecks {
    cache: HashMap<Uuid, Cached>,
    batches: u64,
}

impl SendChecks {
    /// Per send: its conversation when the sender may post there, or the refusal (unknown or
    /// deleted conversation, not a member, a block between the two of a direct chat).
    pub async fn check(
        &mut self,
        storage: &dyn Storage,
        messages: &[NewMessage],
    ) -> Result<Vec<AppResult<Checked>>, StorageError> {
        self.batches += 1;
        let mut ids: Vec<Uuid> = messages.iter().map(|m| m.conversation_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let versions: HashMap<Uuid, SendVersion> = storage.send_versions(&ids).await?.into_iter().collect();
        let stale: Vec<(Uuid, SendVersion)> = versions
            .iter()
            .filter(|(id, version)| self.cache.get(id).is_none_or(|cached| cached.version != **version))
            .map(|(id, version)| (*id, *version))
            .collect();
        metrics::counter!("parley_send_context_cache_total", "result" => "hit")
            .increment((versions.len() - stale.len()) as u64);
        metrics::counter!("parley_send_context_cache_total", "result" => "miss").increment(stale.len() as u64);
        if !stale.is_empty() {
            self.refresh(storage, &stale).await?;
        }
        let batch = self.batches;
        Ok(messages
            .iter()
            .map(|message| {
                let current = versions.get(&message.conversation_id);
                let cached = self.cache.get_mut(&message.conversation_id).filter(|c| Some(&c.version) == current);
                let target = cached.map(|cached| {
                    cached.used = batch;
                    &cached.target
                });
                check_sender(target, message)
            })
            .collect())
    }

    /// Reads the contexts of `stale` conversations (after their versions were read) and
    /// keeps them under those versions.
    async fn refresh(&mut self, storage: &dyn Storage, stale: &[(Uuid, SendVersion)]) -> Result<(), StorageError> {
        let ids: Vec<Uuid> = stale.iter().map(|(id, _)| *id).collect();
        let contexts = storage.send_contexts(&ids).await?;
        let mut direct_members: Vec<Uuid> = contexts
            .iter()
            .filter(|c| c.kind == ConversationKind::Direct)
            .flat_map(|c| c.members.iter().copied())
            .collect();
        direct_members.sort_unstable();
        direct_members.dedup();
        let blocks: HashSet<(Uuid, Uuid)> = storage.blocks_among(&direct_members).await?.into_iter().collect();
        let versions: HashMap<Uuid, SendVersion> = stale.iter().copied().collect();
        for context in contexts {
            let Some(version) = versions.get(&context.id) else { continue };
            let blocked = context.kind == ConversationKind::Direct
                && context.members.iter().any(|a| context.members.iter().any(|b| blocks.contains(&(*a, *b))));
            let target =
                SendTarget { kind: context.kind, members: context.members, subscribed: context.subscribed, blocked };
            let cached = Cached { version: *version, target: Arc::new(target), used: self.batches };
            self.cache.insert(context.id, cached);
        }
        self.evict();
        Ok(())
    }

    /// Keeps the cache within [`CACHED_CONVERSATIONS`], dropping the least recently used half.
    fn evict(&mut self) {
        if self.cache.len() <= CACHED_CONVERSATIONS {
            return;
        }
        let mut uses: Vec<u64> = self.cache.values().map(|c| c.used).collect();
        let keep = CACHED_CONVERSATIONS / 2;
        let (_, cutoff, _) = uses.select_nth_unstable_by(keep, |a, b| b.cmp(a));
        let cutoff = *cutoff;
        let current = self.batches;
        self.cache.retain(|_, cached| cached.used > cutoff || cached.used == current);
    }
}

fn check_sender(target: Option<&Checked>, message: &NewMessage) -> AppResult<Checked> {
    let target = target.ok_or(AppError::NotFound("conversation"))?;
    if !target.members.contains(&message.sender_id) {
        return Err(AppError::NotInConversation);
    }
    if target.blocked {
        return Err(AppError::Blocked("messages between you and this user are blocked"));
    }
    Ok(target.clone())
}
