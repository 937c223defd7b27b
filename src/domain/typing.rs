//! Typing indicators: a start lasts 5 s unless renewed, repeats within 1 s are not
//! rebroadcast, sending a message or leaving ends it. Shared state keeps the timers, so
//! they hold across replicas; [`TypingService::sweep`] announces the stops that came due.

use std::{collections::HashMap, sync::Arc, time::Duration};

use uuid::Uuid;

use super::{Deps, access::membership, views::TypingUser};
use crate::{
    error::{AppError, AppResult},
    fanout::Fanout,
    shared_state::SharedState,
    storage::Storage,
};

/// A start not renewed within this ends by itself.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(5);
/// Starts closer together than this are not rebroadcast.
pub const TYPING_REBROADCAST: Duration = Duration::from_secs(1);

pub struct TypingService {
    storage: Arc<dyn Storage>,
    shared: SharedState,
    fanout: Fanout,
}

impl TypingService {
    pub fn new(deps: &Deps) -> Self {
        Self { storage: deps.storage.clone(), shared: deps.shared.clone(), fanout: deps.fanout.clone() }
    }

    /// `typing:start` / `typing:stop` from a participant (socket or REST).
    pub async fn set(&self, user: Uuid, conversation: Uuid, typing: bool) -> AppResult<()> {
        membership(self.storage.as_ref(), user, conversation).await?;
        let changed = if typing {
            self.shared.typing.start(conversation, user, TYPING_TIMEOUT, TYPING_REBROADCAST).await
        } else {
            self.shared.typing.stop(conversation, user).await
        }
        .map_err(|e| AppError::Internal(e.into()))?;
        if changed {
            self.announce(conversation, user, typing).await;
        }
        Ok(())
    }

    /// Ends `user`'s typing without checks (a message was sent, a socket left).
    pub async fn end(&self, user: Uuid, conversation: Uuid) {
        match self.shared.typing.stop(conversation, user).await {
            Ok(true) => self.announce(conversation, user, false).await,
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "typing state not cleared"),
        }
    }

    /// Announces the stops that came due (on this replica or a dead one).
    pub async fn sweep(&self) {
        match self.shared.typing.expire().await {
            Ok(expired) => {
                for (conversation, user) in expired {
                    self.announce(conversation, user, false).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "typing sweep skipped"),
        }
        if let Ok(count) = self.shared.typing.count().await {
            metrics::gauge!("parley_typing_entries").set(count as f64);
        }
    }

    async fn announce(&self, conversation: Uuid, user: Uuid, started: bool) {
        let typist = match self.storage.user_by_id(user).await {
            Ok(Some(record)) => TypingUser::from(&record),
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, "typing not announced");
                return;
            }
        };
        // Neither side of a block sees the other type.
        let blocked = self.storage.contacts(user).await.map(|c| c.blocked_either).unwrap_or_default();
        self.fanout.typing(conversation, &typist, started, &blocked).await;
    }

    /// Who types in each conversation, as `viewer` may see: not themselves, nobody who
    /// blocked them or whom they blocked.
    pub async fn typing_users(&self, viewer: Uuid, conversations: &[Uuid]) -> HashMap<Uuid, Vec<TypingUser>> {
        let Ok(lists) = self.shared.typing.typing_in(conversations).await else { return HashMap::new() };
        let mut ids: Vec<Uuid> = lists.iter().flatten().copied().filter(|u| *u != viewer).collect();
        if ids.is_empty() {
            return HashMap::new();
        }
        ids.sort();
        ids.dedup();
        let blocked = self.storage.contacts(viewer).await.map(|c| c.blocked_either).unwrap_or_default();
        let users = self.storage.users_by_ids(&ids).await.unwrap_or_default();
        conversations
            .iter()
            .zip(lists)
            .map(|(conversation, typists)| {
                let visible = typists
                    .iter()
                    .filter(|u| **u != viewer && !blocked.contains(u))
                    .filter_map(|u| users.iter().find(|r| r.id == *u).map(TypingUser::from))
                    .collect();
                (*conversation, visible)
            })
            .collect()
    }
}
