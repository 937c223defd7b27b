//! Running a group (SPEC §4.1): its title, description, avatar and visibility, adding and
//! removing members, roles and the ownership hand-over, invite links, and per-user mute.
//! Membership itself changes through [`ConversationService::admit`] and
//! [`ConversationService::remove_participant`], which keep the rooms and the events right.
//!
//! Who may do what: owners and admins edit the group, add members and manage invites;
//! owners remove anyone, admins only members; only the owner changes roles; every
//! participant mutes for themselves.

use std::{sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use uuid::Uuid;

use super::{
    Deps, access,
    conversations::ConversationService,
    input::AvatarUrl,
    quota,
    time::Timestamp,
    views::{Conversation, ConversationDetail, Participant, User},
};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    fanout::Fanout,
    shared_state::{Quota, SharedState},
    storage::{
        Storage,
        models::{
            ConversationKind, ConversationPatch, ConversationRecord, InviteRecord, NewInvite, ParticipantRecord, Role,
            Visibility,
        },
    },
};

/// Users one `POST …/participants` may add.
pub const ADD_MAX: usize = 100;
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
/// The longest an invite link may live, and how long it lives when not told.
pub const INVITE_MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
pub const INVITE_DEFAULT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
pub const INVITE_MAX_USES: i64 = 100_000;
/// Invite acceptances per user and minute (guessing codes is pointless at 128 bits; this
/// keeps one account from joining groups in bulk).
pub const INVITE_ACCEPTS_PER_MIN: u32 = 10;

/// Why a user was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    AlreadyMember,
    Blocked,
    NotFound,
    Full,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub user_id: Uuid,
    pub reason: SkipReason,
}

/// `POST …/participants`: who was added, and who was not and why.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddResult {
    pub added: Vec<User>,
    pub skipped: Vec<Skipped>,
}

/// An invite link as its group's owners and admins see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    pub code: String,
    pub conversation_id: Uuid,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub max_uses: Option<i32>,
    pub uses: i32,
}

impl From<&InviteRecord> for Invite {
    fn from(r: &InviteRecord) -> Self {
        Self {
            code: r.code.clone(),
            conversation_id: r.conversation_id,
            created_at: r.created_at.into(),
            expires_at: r.expires_at.map(Into::into),
            max_uses: r.max_uses,
            uses: r.uses,
        }
    }
}

/// A group change as the client sent it; `Some(None)` clears a field.
#[derive(Default)]
pub struct GroupChange {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub visibility: Option<Visibility>,
}

/// Who may do something to a group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Moderator,
    Owner,
}

pub struct GroupService {
    storage: Arc<dyn Storage>,
    shared: SharedState,
    fanout: Fanout,
    clock: SharedClock,
    conversations: Arc<ConversationService>,
}

impl GroupService {
    pub fn new(deps: &Deps, conversations: Arc<ConversationService>) -> Self {
        Self {
            storage: deps.storage.clone(),
            shared: deps.shared.clone(),
            fanout: deps.fanout.clone(),
            clock: deps.clock.clone(),
            conversations,
        }
    }

    /// `PATCH /api/conversations/:id` (owners, admins): every participant gets
    /// `conversation:updated`.
    pub async fn update(&self, user: Uuid, id: Uuid, change: GroupChange) -> AppResult<ConversationDetail> {
        let patch = parse_change(change)?;
        let (conversation, _) = self.group(user, id, Needs::Moderator).await?;
        if patch.is_empty() {
            return self.conversations.detail_of(user, &conversation).await;
        }
        let updated = self
            .storage
            .update_conversation(id, &patch, self.clock.now())
            .await?
            .ok_or(AppError::NotFound("conversation"))?;
        for member in self.storage.member_ids(id).await? {
            self.conversations.push_update(member, id).await;
        }
        self.conversations.detail_of(user, &updated).await
    }

    /// `POST /api/conversations/:id/participants` (owners, admins).
    pub async fn add(&self, user: Uuid, id: Uuid, user_ids: &[Uuid]) -> AppResult<AddResult> {
        if user_ids.is_empty() || user_ids.len() > ADD_MAX {
            return Err(AppError::invalid_field("userIds", "must name 1 to 100 users"));
        }
        self.group(user, id, Needs::Moderator).await?;
        let mut wanted: Vec<Uuid> = Vec::with_capacity(user_ids.len());
        for candidate in user_ids {
            if !wanted.contains(candidate) {
                wanted.push(*candidate);
            }
        }
        let known = self.storage.users_by_ids(&wanted).await?;
        let blocked = self.storage.contacts(user).await?.blocked_either;
        let mut skipped = Vec::new();
        let mut eligible = Vec::new();
        for candidate in wanted {
            let reason = if !known.iter().any(|u| u.id == candidate) {
                Some(SkipReason::NotFound)
            } else if blocked.contains(&candidate) {
                Some(SkipReason::Blocked)
            } else {
                None
            };
            match reason {
                Some(reason) => skipped.push(Skipped { user_id: candidate, reason }),
                None => eligible.push(candidate),
            }
        }
        let outcome = self.conversations.admit(id, &eligible, user).await?;
        let reasons = [(SkipReason::AlreadyMember, &outcome.already_members), (SkipReason::Full, &outcome.full)];
        for (reason, users) in reasons {
            skipped.extend(users.iter().map(|user_id| Skipped { user_id: *user_id, reason }));
        }
        let added = self.conversations.public_profiles(&outcome.added).await?;
        Ok(AddResult { added, skipped })
    }

    /// `DELETE /api/conversations/:id/participants/:userId`: owners remove anyone, admins
    /// members only; removing yourself is leaving.
    pub async fn remove(&self, user: Uuid, id: Uuid, target: Uuid) -> AppResult<()> {
        let (_, caller) = self.group(user, id, Needs::Moderator).await?;
        if target == user {
            return self.conversations.remove_participant(id, user, user).await;
        }
        let subject = self.participant(id, target).await?;
        let allowed = match caller.role {
            Role::Owner => true,
            Role::Admin => subject.role == Role::Member,
            Role::Member => false,
        };
        if !allowed {
            return Err(AppError::Forbidden("admins can remove members only"));
        }
        self.conversations.remove_participant(id, target, user).await
    }

    /// `PATCH /api/conversations/:id/participants/:userId {role}` (the owner): `owner` hands
    /// ownership over, and the old owner becomes an admin.
    pub async fn set_role(&self, user: Uuid, id: Uuid, target: Uuid, role: Role) -> AppResult<Participant> {
        self.group(user, id, Needs::Owner).await?;
        if target == user {
            return Err(AppError::invalid_field("userId", "you are the owner: make someone else owner to hand over"));
        }
        let subject = self.participant(id, target).await?;
        let changed = if role == Role::Owner {
            if !self.storage.transfer_ownership(id, user, target).await? {
                return Err(AppError::NotFound("participant"));
            }
            vec![(target, Role::Owner), (user, Role::Admin)]
        } else if subject.role != role {
            self.storage.set_role(id, target, role).await?;
            vec![(target, role)]
        } else {
            Vec::new()
        };
        let members = self.storage.members(id).await?;
        let ids: Vec<Uuid> = members.iter().map(|m| m.user.id).collect();
        for (changed_user, new_role) in changed {
            self.fanout.participant_updated(id, changed_user, new_role, user, &ids).await;
        }
        let member = members.iter().find(|m| m.user.id == target);
        member.map(|m| Participant::seen_by(m, user)).ok_or(AppError::NotFound("participant"))
    }

    /// `PUT /api/conversations/:id/mute {until}`: for the caller only; `None` (or a time
    /// already past) unmutes. Their devices get `conversation:updated`.
    pub async fn mute(&self, user: Uuid, id: Uuid, until: Option<DateTime<Utc>>) -> AppResult<Conversation> {
        access::membership(self.storage.as_ref(), user, id).await?;
        let until = until.filter(|at| *at > self.clock.now());
        self.storage.set_muted(id, user, until).await?;
        let summary = self.storage.conversation_summary(user, id).await?.ok_or(AppError::NotInConversation)?;
        let view = Conversation::from(&summary);
        self.fanout.conversation_updated(user, &view).await;
        Ok(view)
    }

    /// `POST /api/conversations/:id/invites` (owners, admins).
    pub async fn create_invite(
        &self,
        user: Uuid,
        id: Uuid,
        expires_in_secs: Option<i64>,
        max_uses: Option<i64>,
    ) -> AppResult<Invite> {
        let lifetime = match expires_in_secs {
            None => INVITE_DEFAULT_LIFETIME,
            Some(secs) if (1..=INVITE_MAX_LIFETIME.as_secs() as i64).contains(&secs) => {
                Duration::from_secs(secs as u64)
            }
            Some(_) => return Err(AppError::invalid_field("expiresInSecs", "must be 1 to 2592000 (30 days)")),
        };
        let max_uses = match max_uses {
            None => None,
            Some(n) if (1..=INVITE_MAX_USES).contains(&n) => Some(n as i32),
            Some(_) => return Err(AppError::invalid_field("maxUses", "must be 1 to 100000")),
        };
        self.group(user, id, Needs::Moderator).await?;
        let now = self.clock.now();
        let invite = NewInvite {
            code: new_invite_code(),
            conversation_id: id,
            created_by: user,
            created_at: now,
            expires_at: Some(now + chrono::Duration::from_std(lifetime).unwrap_or_default()),
            max_uses,
        };
        Ok(Invite::from(&self.storage.create_invite(&invite).await?))
    }

    /// `GET /api/conversations/:id/invites` (owners, admins): the links that still work.
    pub async fn invites(&self, user: Uuid, id: Uuid) -> AppResult<Vec<Invite>> {
        self.group(user, id, Needs::Moderator).await?;
        let live = self.storage.live_invites(id, self.clock.now()).await?;
        Ok(live.iter().map(Invite::from).collect())
    }

    /// `DELETE /api/invites/:code` (owners and admins of its group). Revoking twice is fine.
    pub async fn revoke_invite(&self, user: Uuid, code: &str) -> AppResult<()> {
        let invite = self.storage.invite(code).await?.ok_or(AppError::NotFound("invite"))?;
        self.group(user, invite.conversation_id, Needs::Moderator).await?;
        self.storage.revoke_invite(code, self.clock.now()).await?;
        Ok(())
    }

    /// `POST /api/invites/:code/accept`: joins the group (a member accepting again changes
    /// nothing and uses nothing up). 410 `INVITE_INVALID` once expired, used up or revoked;
    /// 403 `BLOCKED` between the accepter and the invite's creator.
    pub async fn accept_invite(&self, user: Uuid, code: &str) -> AppResult<ConversationDetail> {
        self.admit_acceptance(user).await?;
        let invite = self.storage.invite(code).await?.ok_or(AppError::NotFound("invite"))?;
        let conversation = access::live_conversation(self.storage.as_ref(), invite.conversation_id).await?;
        if self.storage.participant(conversation.id, user).await?.is_some() {
            return self.conversations.detail_of(user, &conversation).await;
        }
        // Nobody joins through the link of someone they blocked, or who blocked them.
        if let Some(inviter) = invite.created_by {
            let relation = self.storage.relationship(user, inviter).await?;
            if relation.blocking || relation.blocked_by {
                return Err(AppError::Blocked("you cannot join through this user's invite"));
            }
        }
        let Some(used) = self.storage.use_invite(code, self.clock.now()).await? else {
            return Err(AppError::InviteInvalid);
        };
        let outcome = match self.conversations.admit(conversation.id, &[user], user).await {
            Ok(outcome) => outcome,
            Err(err) => {
                self.storage.unuse_invite(&used.code).await?;
                return Err(err);
            }
        };
        if !outcome.full.is_empty() {
            self.storage.unuse_invite(&used.code).await?;
            return Err(AppError::Forbidden("this group is full"));
        }
        self.conversations.detail_of(user, &conversation).await
    }

    /// [`INVITE_ACCEPTS_PER_MIN`], shared by every replica; an unreachable Redis admits.
    async fn admit_acceptance(&self, user: Uuid) -> AppResult<()> {
        let quota = Quota::per_minute(INVITE_ACCEPTS_PER_MIN);
        quota::take(&self.shared, &format!("invite-accepts:{user}"), quota, "invite_accepts").await
    }

    /// A live group the caller takes part in with (at least) the role `needs` asks for.
    async fn group(&self, user: Uuid, id: Uuid, needs: Needs) -> AppResult<(ConversationRecord, ParticipantRecord)> {
        let (conversation, participant) = access::membership(self.storage.as_ref(), user, id).await?;
        if conversation.kind != ConversationKind::Group {
            return Err(AppError::validation("only groups have members to manage"));
        }
        let allowed = match needs {
            Needs::Moderator => participant.role.moderates(),
            Needs::Owner => participant.role == Role::Owner,
        };
        if !allowed {
            let why =
                if needs == Needs::Owner { "only the owner can do this" } else { "only owners and admins can do this" };
            return Err(AppError::Forbidden(why));
        }
        Ok((conversation, participant))
    }

    async fn participant(&self, id: Uuid, user: Uuid) -> AppResult<ParticipantRecord> {
        self.storage.participant(id, user).await?.ok_or(AppError::NotFound("participant"))
    }
}

/// 128 random bits, base64url (22 characters).
fn new_invite_code() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_change(change: GroupChange) -> AppResult<ConversationPatch> {
    let title = change.title.as_deref().map(|t| super::conversations::parse_title(Some(t))).transpose()?;
    let description = match change.description {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => {
            let text = text.trim();
            if text.chars().count() > DESCRIPTION_MAX_CHARS || text.contains('\0') {
                return Err(AppError::invalid_field("description", "must be at most 1000 characters"));
            }
            Some((!text.is_empty()).then(|| text.to_owned()))
        }
    };
    let avatar_url = match change.avatar_url {
        None => None,
        Some(None) => Some(None),
        Some(Some(url)) => Some(Some(AvatarUrl::parse(&url)?.into_inner())),
    };
    Ok(ConversationPatch { title, description, avatar_url, visibility: change.visibility })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_codes_carry_128_random_bits() {
        let (a, b) = (new_invite_code(), new_invite_code());
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 16);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{a}");
    }

    #[test]
    fn a_change_is_checked_field_by_field() {
        let change = |c: GroupChange| parse_change(c).map_err(|e| e.body().details.unwrap()["field"].clone());
        assert_eq!(change(GroupChange { title: Some(" ".into()), ..Default::default() }).unwrap_err(), "title");
        let long = GroupChange { description: Some(Some("x".repeat(1001))), ..Default::default() };
        assert_eq!(change(long).unwrap_err(), "description");
        let bad_url = GroupChange { avatar_url: Some(Some("ftp://x".into())), ..Default::default() };
        assert_eq!(change(bad_url).unwrap_err(), "avatarUrl");
        let cleared = parse_change(GroupChange { description: Some(Some("  ".into())), ..Default::default() }).unwrap();
        assert_eq!(cleared.description, Some(None), "a blank description clears it");
        assert!(parse_change(GroupChange::default()).unwrap().is_empty());
    }
}
