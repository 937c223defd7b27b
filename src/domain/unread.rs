//! `unread:updated` pushes. Whatever changes a user's unread counts (a message for them, a
//! read on another device, mark unread, a clear, a deleted message) marks that user and
//! conversation dirty; a background task recomputes dirty users' counts from the database
//! (exact by construction, never a drifting counter) and pushes one event per dirty
//! conversation. Coalescing bounds the work: a user is recomputed at most once per tick,
//! however many messages arrived, and only while they have a connected device.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use uuid::Uuid;

use super::Deps;
use crate::{
    fanout::Fanout,
    shared_state::SharedState,
    storage::{Storage, models::UnreadCount},
};

/// How often dirty users are recomputed.
pub const UNREAD_TICK: Duration = Duration::from_millis(100);

pub struct UnreadNotifier {
    storage: Arc<dyn Storage>,
    shared: SharedState,
    fanout: Fanout,
    dirty: Mutex<HashMap<Uuid, HashSet<Uuid>>>,
}

impl UnreadNotifier {
    pub fn new(deps: &Deps) -> Self {
        Self {
            storage: deps.storage.clone(),
            shared: deps.shared.clone(),
            fanout: deps.fanout.clone(),
            dirty: Mutex::default(),
        }
    }

    /// `conversation`'s unread count may have changed for each of `users`.
    pub fn changed(&self, users: &[Uuid], conversation: Uuid) {
        let mut dirty = crate::sync::lock(&self.dirty);
        for user in users {
            dirty.entry(*user).or_default().insert(conversation);
        }
    }

    /// Recomputes and pushes everything marked dirty so far.
    pub async fn flush(&self) {
        let dirty = std::mem::take(&mut *crate::sync::lock(&self.dirty));
        if dirty.is_empty() {
            return;
        }
        let users: Vec<Uuid> = dirty.keys().copied().collect();
        let online = self.shared.presence.online(&users).await.unwrap_or(users);
        if online.is_empty() {
            return;
        }
        let counts = match self.storage.unread_counts_of(&online).await {
            Ok(counts) => counts,
            Err(err) => {
                tracing::warn!(error = %err, users = online.len(), "unread counts not pushed");
                return;
            }
        };
        let mut by_user: HashMap<Uuid, Vec<UnreadCount>> = HashMap::new();
        for (user, count) in counts {
            by_user.entry(user).or_default().push(count);
        }
        for user in online {
            let Some(conversations) = dirty.get(&user) else { continue };
            let counts = by_user.remove(&user).unwrap_or_default();
            let total: i64 = counts.iter().map(|c| c.unread).sum();
            for conversation in conversations {
                let unread = counts.iter().find(|c| c.conversation_id == *conversation).map_or(0, |c| c.unread);
                self.fanout.unread_updated(user, *conversation, unread, total).await;
            }
        }
    }
}
