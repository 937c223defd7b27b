//! `unread:updated` pushes. Whatever changes a user's unread counts (a message for them, a
//! read on another device, mark unread, a clear, a deleted message) marks that user and
//! conversation dirty; a background task recomputes dirty users' counts from the database
//! (exact by construction, never a drifting counter) and pushes one event per dirty
//! conversation. Coalescing bounds the work: a user is recomputed at most once per
//! [`UNREAD_COALESCE`], however many messages arrived, and only while they have a connected
//! device. The first change after a quiet spell goes out on the next tick; changes within the
//! window after a push wait for its end and go out together, with the count as it is then.
//! Users whose event is the same (a group's idle members usually share their counts) get it
//! in one broadcast, serialised once.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::Deps;
use crate::{
    fanout::Fanout,
    shared_state::SharedState,
    storage::{Storage, models::UnreadCount},
};

/// How often dirty users are looked at.
pub const UNREAD_TICK: Duration = Duration::from_millis(100);
/// A user gets at most one round of `unread:updated` per this much time.
pub const UNREAD_COALESCE: Duration = Duration::from_millis(500);

pub struct UnreadNotifier {
    storage: Arc<dyn Storage>,
    shared: SharedState,
    fanout: Fanout,
    dirty: Mutex<Dirty>,
}

#[derive(Default)]
struct Dirty {
    /// Per user, the conversations whose count may have changed.
    pending: HashMap<Uuid, HashSet<Uuid>>,
    /// When users were last recomputed, for those within [`UNREAD_COALESCE`] of it.
    pushed: HashMap<Uuid, Instant>,
}

impl Dirty {
    /// Takes the users due now (not recomputed within the window), and stamps them.
    fn take_due(&mut self, now: Instant) -> HashMap<Uuid, HashSet<Uuid>> {
        self.pushed.retain(|_, at| now.duration_since(*at) < UNREAD_COALESCE);
        let pushed = &self.pushed;
        let waiting: HashMap<Uuid, HashSet<Uuid>> =
            self.pending.extract_if(|user, _| pushed.contains_key(user)).collect();
        let due = std::mem::replace(&mut self.pending, waiting);
        self.pushed.extend(due.keys().map(|user| (*user, now)));
        if self.pushed.capacity() > 4 * self.pushed.len().max(64) {
            self.pushed.shrink_to_fit();
        }
        due
    }
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
            dirty.pending.entry(*user).or_default().insert(conversation);
        }
    }

    /// Recomputes and pushes what is marked dirty for the users that are due.
    pub async fn flush(&self) {
        let dirty = crate::sync::lock(&self.dirty).take_due(Instant::now());
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
        // (conversation, unread, total) → the users it is true of.
        let mut events: HashMap<(Uuid, i64, i64), Vec<Uuid>> = HashMap::new();
        for user in online {
            let Some(conversations) = dirty.get(&user) else { continue };
            let counts = by_user.remove(&user).unwrap_or_default();
            let total: i64 = counts.iter().map(|c| c.unread).sum();
            for conversation in conversations {
                let unread = counts.iter().find(|c| c.conversation_id == *conversation).map_or(0, |c| c.unread);
                events.entry((*conversation, unread, total)).or_default().push(user);
            }
        }
        for ((conversation, unread, total), users) in events {
            self.fanout.unread_updated(&users, conversation, unread, total).await;
        }
    }
}
