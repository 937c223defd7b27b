//! Conversations: listing with cursors, direct and group creation, detail, deletion,
//! joining and leaving. Every membership change is pushed to the affected users.

use std::{collections::BTreeSet, sync::Arc};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Deps, access, cursor,
    typing::TypingService,
    views::{Conversation, ConversationDetail, Participant, User},
};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    fanout::Fanout,
    storage::{
        Storage,
        models::{AddOutcome, ConversationKind, ConversationRecord, NewConversation, ParticipantRecord, Visibility},
    },
};

pub const PAGE_DEFAULT: i64 = 50;
pub const PAGE_MAX: i64 = 100;
pub const TITLE_MAX_CHARS: usize = 100;
pub const GROUP_MAX_PARTICIPANTS: usize = 1000;

pub struct CreateConversation {
    pub kind: ConversationKind,
    pub title: Option<String>,
    /// Groups only; `private` when not given.
    pub visibility: Option<Visibility>,
    pub participant_ids: Vec<Uuid>,
}

/// A page of conversations.
pub struct ConversationPage {
    pub conversations: Vec<Conversation>,
    pub next_cursor: Option<String>,
}

/// Position in the list: last activity (ms) and id of the last row served.
#[derive(Serialize, Deserialize)]
struct ListPosition {
    t: i64,
    id: Uuid,
}

/// The page size asked for, checked against the SPEC's bounds.
pub fn page_limit(limit: Option<i64>) -> AppResult<i64> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        Some(_) => Err(AppError::invalid_field("limit", "must be 1 to 100")),
    }
}

pub struct ConversationService {
    storage: Arc<dyn Storage>,
    fanout: Fanout,
    typing: Arc<TypingService>,
    clock: SharedClock,
    outbox: super::Outbox,
}

impl ConversationService {
    pub fn new(deps: &Deps, typing: Arc<TypingService>) -> Self {
        Self {
            storage: deps.storage.clone(),
            fanout: deps.fanout.clone(),
            typing,
            clock: deps.clock.clone(),
            outbox: deps.outbox.clone(),
        }
    }

    pub async fn list(
        &self,
        user: Uuid,
        archived: bool,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> AppResult<ConversationPage> {
        let limit = page_limit(limit)?;
        let after = match cursor {
            None => None,
            Some(raw) => {
                let position: ListPosition = cursor::decode(raw)?;
                let at = DateTime::<Utc>::from_timestamp_millis(position.t)
                    .ok_or_else(|| AppError::invalid_field("cursor", "is not a cursor this server issued"))?;
                Some((at, position.id))
            }
        };
        let mut rows = self.storage.conversations_of(user, archived, after, limit + 1).await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = has_more.then(|| {
            let last = &rows[rows.len() - 1].conversation;
            cursor::encode(&ListPosition { t: last.last_activity_at.timestamp_millis(), id: last.id })
        });
        let mut conversations: Vec<Conversation> = rows.iter().map(Conversation::from).collect();
        self.fill_typing(user, &mut conversations).await;
        Ok(ConversationPage { conversations, next_cursor })
    }

    /// Creates a group, or finds-or-creates the direct conversation with one other user.
    /// Returns the conversation and whether it is new.
    pub async fn create(&self, user: Uuid, input: CreateConversation) -> AppResult<(ConversationDetail, bool)> {
        let others: BTreeSet<Uuid> = input.participant_ids.iter().copied().filter(|id| *id != user).collect();
        let new = NewConversation {
            id: Uuid::now_v7(),
            kind: input.kind,
            title: None,
            visibility: Visibility::Private,
            created_by: user,
            created_at: self.clock.now(),
        };
        let (conversation, created) = match input.kind {
            ConversationKind::Direct => {
                let other = self.direct_peer(user, &input, &others).await?;
                self.storage.find_or_create_direct(&new, other).await?
            }
            ConversationKind::Group => {
                let title = parse_title(input.title.as_deref())?;
                if others.len() + 1 > GROUP_MAX_PARTICIPANTS {
                    return Err(AppError::invalid_field("participantIds", "too many participants"));
                }
                let members: Vec<Uuid> = others.into_iter().collect();
                let visibility = input.visibility.unwrap_or_default();
                let group = NewConversation { title: Some(title), visibility, ..new };
                let created = self.storage.create_group(&group, &members).await.map_err(unknown_user)?;
                (created, true)
            }
        };
        let detail = self.detail_of(user, &conversation).await?;
        if created {
            for participant in &detail.participants {
                self.push_update(participant.user.id, conversation.id).await;
            }
        }
        Ok((detail, created))
    }

    /// The one other participant of a direct conversation: exists, not blocked either way.
    async fn direct_peer(&self, user: Uuid, input: &CreateConversation, others: &BTreeSet<Uuid>) -> AppResult<Uuid> {
        // A title is ignored (SPEC §4.6: the seeds' clients send one, as a NestJS DTO with an
        // optional title would accept).
        if input.visibility.is_some() {
            return Err(AppError::invalid_field("visibility", "direct conversations have no visibility"));
        }
        let [other] = others.iter().copied().collect::<Vec<_>>()[..] else {
            return Err(AppError::invalid_field(
                "participantIds",
                "a direct conversation has exactly one other participant",
            ));
        };
        self.storage.user_by_id(other).await?.ok_or(AppError::NotFound("user"))?;
        let relation = self.storage.relationship(user, other).await?;
        if relation.blocking || relation.blocked_by {
            return Err(AppError::Blocked("you cannot start a conversation with this user"));
        }
        Ok(other)
    }

    pub async fn detail(&self, user: Uuid, id: Uuid) -> AppResult<ConversationDetail> {
        let (conversation, _) = self.membership(user, id).await?;
        self.detail_of(user, &conversation).await
    }

    /// `conversation` as `user` sees it, with its participants.
    pub async fn detail_of(&self, user: Uuid, conversation: &ConversationRecord) -> AppResult<ConversationDetail> {
        let summary =
            self.storage.conversation_summary(user, conversation.id).await?.ok_or(AppError::NotInConversation)?;
        let members = self.storage.members(conversation.id).await?;
        let participants = members.iter().map(|m| Participant::seen_by(m, user)).collect();
        let mut conversation = [Conversation::from(&summary)];
        self.fill_typing(user, &mut conversation).await;
        let [conversation] = conversation;
        Ok(ConversationDetail { conversation, participants })
    }

    /// `typingUsers`, as `viewer` may see them.
    async fn fill_typing(&self, viewer: Uuid, conversations: &mut [Conversation]) {
        let ids: Vec<Uuid> = conversations.iter().map(|c| c.id).collect();
        let mut typing = self.typing.typing_users(viewer, &ids).await;
        for conversation in conversations {
            conversation.typing_users = typing.remove(&conversation.id).unwrap_or_default();
        }
    }

    /// Soft-deletes for everyone; owners only.
    pub async fn delete(&self, user: Uuid, id: Uuid) -> AppResult<()> {
        let (_, participant) = self.membership(user, id).await?;
        if participant.role != crate::storage::models::Role::Owner {
            return Err(AppError::Forbidden("only the owner can delete this conversation"));
        }
        let members = self.storage.member_ids(id).await?;
        let mut last_views = Vec::with_capacity(members.len());
        for member in &members {
            last_views.push(self.storage.conversation_summary(*member, id).await?);
        }
        self.storage.soft_delete_conversation(id, self.clock.now()).await?;
        for (member, view) in members.into_iter().zip(last_views) {
            self.fanout.set_subscription(member, id, false).await;
            if let Some(view) = view {
                self.fanout.conversation_removed(member, &Conversation::from(&view)).await;
            }
        }
        Ok(())
    }

    /// "Delete for me": hidden from the caller's list until a new message arrives; their
    /// other devices are told.
    pub async fn hide(&self, user: Uuid, id: Uuid) -> AppResult<()> {
        self.membership(user, id).await?;
        self.storage.hide_conversation(id, user).await?;
        self.push_update(user, id).await;
        Ok(())
    }

    /// Joins a public group. A private group is joined only by being added: knowing its id
    /// is not an invitation (403, and nothing changes). A member "joining" again is a no-op.
    pub async fn join(&self, user: Uuid, id: Uuid) -> AppResult<ConversationDetail> {
        let conversation = self.live(id).await?;
        if conversation.kind != ConversationKind::Group {
            return Err(AppError::validation("only groups can be joined"));
        }
        if self.storage.participant(id, user).await?.is_none() {
            if conversation.visibility != Visibility::Public {
                return Err(AppError::Forbidden("this group is private: ask a member to add you"));
            }
            let outcome = self.admit(id, &[user], user).await?;
            if !outcome.full.is_empty() {
                return Err(AppError::Forbidden("this group is full"));
            }
            // The members who were there also get the new count, as before participant events.
            for member in self.storage.member_ids(id).await?.into_iter().filter(|m| *m != user) {
                self.push_update(member, id).await;
            }
        }
        self.detail_of(user, &conversation).await
    }

    pub async fn leave(&self, user: Uuid, id: Uuid) -> AppResult<()> {
        let (conversation, _) = self.membership(user, id).await?;
        if conversation.kind != ConversationKind::Group {
            return Err(AppError::validation("direct conversations cannot be left; hide them instead"));
        }
        self.remove_participant(id, user, user).await
    }

    /// Adds `users` to group `id` (up to [`GROUP_MAX_PARTICIPANTS`]): their live sockets join
    /// the conversation's room on every replica, each gets `conversation:updated`, and the
    /// members who were there get `participant:added` (`by`: who added them).
    pub async fn admit(&self, id: Uuid, users: &[Uuid], by: Uuid) -> AppResult<AddOutcome> {
        let before = self.storage.member_ids(id).await?;
        let outcome = self.storage.add_members(id, users, GROUP_MAX_PARTICIPANTS, self.clock.now()).await?;
        if outcome.added.is_empty() {
            return Ok(outcome);
        }
        for user in &outcome.added {
            self.fanout.set_subscription(*user, id, true).await;
            self.push_update(*user, id).await;
        }
        let added = self.public_profiles(&outcome.added).await?;
        self.fanout.participants_added(id, &added, by, &before).await;
        let data = serde_json::json!({ "conversationId": id, "userIds": outcome.added, "by": by });
        self.outbox.webhook(self.storage.as_ref(), "conversation.member_added", self.clock.now(), data).await;
        Ok(outcome)
    }

    /// Takes `user` out of group `id` (`by` themselves: they left): their sockets leave the
    /// room on every replica and stop hearing its typing; they get `conversation:updated
    /// {removed: true}`, the members who stay `participant:removed` and their new view.
    pub async fn remove_participant(&self, id: Uuid, user: Uuid, by: Uuid) -> AppResult<()> {
        let last_view = self.storage.conversation_summary(user, id).await?;
        let outcome = self.storage.leave(id, user, self.clock.now()).await?;
        self.fanout.set_subscription(user, id, false).await;
        if !outcome.left {
            return Ok(());
        }
        self.typing.end(user, id).await;
        if let Some(view) = last_view {
            self.fanout.conversation_removed(user, &Conversation::from(&view)).await;
        }
        if outcome.emptied {
            return Ok(());
        }
        let members = self.storage.member_ids(id).await?;
        let reason = if by == user { "left" } else { "removed" };
        self.fanout.participant_removed(id, user, by, reason, &members).await;
        for member in members {
            self.push_update(member, id).await;
        }
        Ok(())
    }

    /// The profiles of `users` as anyone may see them (no email).
    pub async fn public_profiles(&self, users: &[Uuid]) -> AppResult<Vec<User>> {
        let mut records = self.storage.users_by_ids(users).await?;
        records.sort_by_key(|r| users.iter().position(|u| *u == r.id));
        Ok(records.iter().map(|r| User::seen_by(r, Uuid::nil())).collect())
    }

    async fn membership(&self, user: Uuid, id: Uuid) -> AppResult<(ConversationRecord, ParticipantRecord)> {
        access::membership(self.storage.as_ref(), user, id).await
    }

    async fn live(&self, id: Uuid) -> AppResult<ConversationRecord> {
        access::live_conversation(self.storage.as_ref(), id).await
    }

    /// `conversation:updated` with `user`'s own view; a failure to read it is only logged.
    pub async fn push_update(&self, user: Uuid, conversation: Uuid) {
        match self.storage.conversation_summary(user, conversation).await {
            Ok(Some(summary)) => self.fanout.conversation_updated(user, &Conversation::from(&summary)).await,
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, %conversation, "conversation:updated not sent"),
        }
    }
}

pub(crate) fn parse_title(raw: Option<&str>) -> AppResult<String> {
    let title = raw.map(str::trim).unwrap_or_default();
    if title.is_empty() || title.chars().count() > TITLE_MAX_CHARS || title.chars().any(char::is_control) {
        return Err(AppError::invalid_field("title", "groups need a title of 1 to 100 characters"));
    }
    Ok(title.to_owned())
}

fn unknown_user(err: crate::storage::StorageError) -> AppError {
    match err {
        crate::storage::StorageError::UnknownReference(_) => {
            AppError::invalid_field("participantIds", "names a user that does not exist")
        }
        other => other.into(),
    }
}
