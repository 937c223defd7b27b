//! Profiles, search, privacy settings, follows (friends are mutual follows) and blocks.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    Deps,
    input::{AvatarUrl, DisplayName, Username, search_prefix},
    presence::PresenceService,
};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    storage::{
        Storage,
        models::{BlockedUser, ProfilePatch, Relationship, SettingsPatch, UserRecord},
    },
};

/// A profile change as the client sent it; `avatar_url: Some(None)` clears the avatar.
#[derive(Default)]
pub struct ProfileChange {
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<Option<String>>,
}

/// A change of one user's relation to another.
#[derive(Clone, Copy)]
enum Change {
    Follow,
    Unfollow,
    Block,
    Unblock,
}

pub struct UserService {
    storage: Arc<dyn Storage>,
    presence: Arc<PresenceService>,
    clock: SharedClock,
}

pub const SEARCH_LIMIT_MAX: i64 = 50;

impl UserService {
    pub fn new(deps: &Deps, presence: Arc<PresenceService>) -> Self {
        Self { storage: deps.storage.clone(), presence, clock: deps.clock.clone() }
    }

    pub async fn get(&self, id: Uuid) -> AppResult<UserRecord> {
        self.storage.user_by_id(id).await?.ok_or(AppError::NotFound("user"))
    }

    pub async fn by_username(&self, username: &str) -> AppResult<UserRecord> {
        let username = username.trim().to_lowercase();
        self.storage.user_by_username(&username).await?.ok_or(AppError::NotFound("user"))
    }

    pub async fn search(&self, viewer: Uuid, query: &str, limit: Option<i64>) -> AppResult<Vec<UserRecord>> {
        let prefix = search_prefix(query)?;
        let limit = match limit {
            None => 20,
            Some(n) if (1..=SEARCH_LIMIT_MAX).contains(&n) => n,
            Some(_) => return Err(AppError::invalid_field("limit", "must be 1 to 50")),
        };
        Ok(self.storage.search_users(&prefix, viewer, limit).await?)
    }

    pub async fn update_profile(&self, user: Uuid, change: ProfileChange) -> AppResult<UserRecord> {
        let patch = ProfilePatch {
            display_name: change
                .display_name
                .as_deref()
                .map(DisplayName::parse)
                .transpose()?
                .map(DisplayName::into_inner),
            username: change.username.as_deref().map(Username::parse).transpose()?.map(|u| u.as_str().to_owned()),
            avatar_url: match change.avatar_url {
                None => None,
                Some(None) => Some(None),
                Some(Some(url)) => Some(Some(AvatarUrl::parse(&url)?.into_inner())),
            },
        };
        Ok(self.storage.update_profile(user, &patch, self.clock.now()).await?)
    }

    /// Changes privacy settings; whoever can no longer see the user's presence sees them
    /// offline from now on (and whoever newly can, sees their state).
    pub async fn update_settings(&self, user: Uuid, patch: SettingsPatch) -> AppResult<UserRecord> {
        let before = self.presence.audiences(&[user]).await;
        let updated = self.storage.update_settings(user, &patch, self.clock.now()).await?;
        self.presence.apply_audience_change(&[user], before).await;
        Ok(updated)
    }

    /// Follows `target`. Returns the resulting relationship (friends when mutual).
    pub async fn follow(&self, user: Uuid, target: Uuid) -> AppResult<Relationship> {
        let relation = self.relation_to_other(user, target).await?;
        if relation.blocking {
            return Err(AppError::Blocked("you have blocked this user"));
        }
        if relation.blocked_by {
            return Err(AppError::Blocked("this user has blocked you"));
        }
        self.change_relation(user, target, Change::Follow).await?;
        Ok(Relationship { following: true, ..relation })
    }

    pub async fn unfollow(&self, user: Uuid, target: Uuid) -> AppResult<()> {
        self.relation_to_other(user, target).await?;
        self.change_relation(user, target, Change::Unfollow).await
    }

    pub async fn friends(&self, user: Uuid) -> AppResult<Vec<UserRecord>> {
        Ok(self.storage.friends_of(user).await?)
    }

    /// Blocks `target` (the follows between the two are dropped, so they stop being
    /// friends), or unblocks them.
    pub async fn set_blocked(&self, user: Uuid, target: Uuid, blocked: bool) -> AppResult<()> {
        self.relation_to_other(user, target).await?;
        self.change_relation(user, target, if blocked { Change::Block } else { Change::Unblock }).await
    }

    /// Changes how `user` stands towards `target`; whoever lost sight of either one's
    /// presence sees them offline now, whoever gained it sees their state.
    async fn change_relation(&self, user: Uuid, target: Uuid, change: Change) -> AppResult<()> {
        let pair = [user, target];
        let before = self.presence.audiences(&pair).await;
        let now = self.clock.now();
        match change {
            Change::Follow => self.storage.follow(user, target, now).await?,
            Change::Unfollow => drop(self.storage.unfollow(user, target).await?),
            Change::Block => self.storage.block(user, target, now).await?,
            Change::Unblock => drop(self.storage.unblock(user, target).await?),
        }
        self.presence.apply_audience_change(&pair, before).await;
        Ok(())
    }

    pub async fn blocks(&self, user: Uuid) -> AppResult<Vec<BlockedUser>> {
        Ok(self.storage.blocked_by(user).await?)
    }

    /// Checks that `target` exists and is someone else, then reads the relationship.
    async fn relation_to_other(&self, user: Uuid, target: Uuid) -> AppResult<Relationship> {
        if user == target {
            return Err(AppError::validation("you cannot do that to yourself"));
        }
        self.get(target).await?;
        Ok(self.storage.relationship(user, target).await?)
    }
}
