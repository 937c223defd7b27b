//! Pinned messages (SPEC §4.2, seed 004): owners and admins pin in groups, either person in a
//! direct conversation; at most [`MAX_PINS`] per conversation; `message:pinned` /
//! `message:unpinned` to every participant.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    Deps,
    access::{membership, message_in, not_blocked_in},
    reactions::reader_views,
    time::Timestamp,
    views::Pin,
};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    fanout::Fanout,
    storage::{
        Storage,
        extras::PinOutcome,
        models::{ConversationKind, ConversationRecord, ParticipantRecord},
    },
};

/// Pins one conversation may have.
pub const MAX_PINS: usize = 50;

pub struct PinService {
    storage: Arc<dyn Storage>,
    fanout: Fanout,
    clock: SharedClock,
}

impl PinService {
    pub fn new(deps: &Deps) -> Self {
        Self { storage: deps.storage.clone(), fanout: deps.fanout.clone(), clock: deps.clock.clone() }
    }

    /// Pins a live message the caller can see; pinning it again changes nothing.
    pub async fn pin(&self, user: Uuid, conversation: Uuid, message: Uuid) -> AppResult<Pin> {
        let (record, participant) = membership(self.storage.as_ref(), user, conversation).await?;
        not_blocked_in(self.storage.as_ref(), &record, user).await?;
        may_pin(&record, &participant)?;
        let target = message_in(self.storage.as_ref(), conversation, message).await?;
        if target.seq <= participant.visible_from() || target.deleted_at.is_some() {
            return Err(AppError::NotFound("message"));
        }
        let (pin, created) = match self.storage.pin(conversation, message, user, self.clock.now(), MAX_PINS).await? {
            PinOutcome::Pinned(pin) => (pin, true),
            PinOutcome::AlreadyPinned(pin) => (pin, false),
            PinOutcome::Full => {
                return Err(AppError::invalid_field("messageId", "a conversation has at most 50 pinned messages"));
            }
        };
        let pinned_at = Timestamp(pin.pinned_at);
        if created {
            let participants = self.storage.member_ids(conversation).await?;
            self.fanout.message_pinned(conversation, message, pin.pinned_by, pinned_at, &participants).await;
        }
        let floor = participant.visible_from();
        let views = reader_views(self.storage.as_ref(), user, std::slice::from_ref(&target), |_| floor).await?;
        let message = views.into_iter().next().expect("one view of one message");
        Ok(Pin { message, pinned_by: pin.pinned_by, pinned_at })
    }

    /// Unpins; `NOT_FOUND` when it was not pinned.
    pub async fn unpin(&self, user: Uuid, conversation: Uuid, message: Uuid) -> AppResult<()> {
        let (record, participant) = membership(self.storage.as_ref(), user, conversation).await?;
        not_blocked_in(self.storage.as_ref(), &record, user).await?;
        may_pin(&record, &participant)?;
        if !self.storage.unpin(conversation, message).await? {
            return Err(AppError::NotFound("pin"));
        }
        let participants = self.storage.member_ids(conversation).await?;
        self.fanout.message_unpinned(conversation, message, user, &participants).await;
        Ok(())
    }

    /// The pins the caller may see, newest pin first.
    pub async fn list(&self, user: Uuid, conversation: Uuid) -> AppResult<Vec<Pin>> {
        let (_, participant) = membership(self.storage.as_ref(), user, conversation).await?;
        let floor = participant.visible_from();
        let pins = self.storage.pins(conversation, floor).await?;
        let records: Vec<_> = pins.iter().map(|(_, message)| message.clone()).collect();
        let messages = reader_views(self.storage.as_ref(), user, &records, |_| floor).await?;
        Ok(pins
            .into_iter()
            .zip(messages)
            .map(|((pin, _), message)| Pin { message, pinned_by: pin.pinned_by, pinned_at: Timestamp(pin.pinned_at) })
            .collect())
    }
}

/// Owners and admins pin in a group; either person in a direct conversation.
fn may_pin(conversation: &ConversationRecord, participant: &ParticipantRecord) -> AppResult<()> {
    match conversation.kind {
        ConversationKind::Group if !participant.role.moderates() => {
            Err(AppError::Forbidden("only owners and admins pin messages in a group"))
        }
        _ => Ok(()),
    }
}
