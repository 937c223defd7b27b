//! Who may act on a conversation: the live-conversation and membership checks every service
//! starts with. They hold no state, so any service can use them without depending on
//! another service.

use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    storage::{
        Storage,
        models::{ConversationKind, ConversationRecord, MessageRecord, ParticipantRecord},
    },
};

/// The conversation (live) and the caller's participation: 404 unknown or deleted, 403 not
/// a participant.
pub async fn membership(
    storage: &dyn Storage,
    user: Uuid,
    id: Uuid,
) -> AppResult<(ConversationRecord, ParticipantRecord)> {
    let conversation = live_conversation(storage, id).await?;
    let participant = storage.participant(id, user).await?.ok_or(AppError::NotInConversation)?;
    Ok((conversation, participant))
}

/// A message of `conversation` (404 when unknown or from another conversation).
pub async fn message_in(storage: &dyn Storage, conversation: Uuid, message: Uuid) -> AppResult<MessageRecord> {
    storage.message(message).await?.filter(|m| m.conversation_id == conversation).ok_or(AppError::NotFound("message"))
}

/// A conversation that exists and was not deleted (404 otherwise).
pub async fn live_conversation(storage: &dyn Storage, id: Uuid) -> AppResult<ConversationRecord> {
    storage.conversation(id).await?.filter(|c| c.deleted_at.is_none()).ok_or(AppError::NotFound("conversation"))
}

/// In a direct conversation, no block either way between `user` and the other person (what
/// `user` does there would reach them): `BLOCKED` otherwise, as for a message.
pub async fn not_blocked_in(storage: &dyn Storage, conversation: &ConversationRecord, user: Uuid) -> AppResult<()> {
    if conversation.kind != ConversationKind::Direct {
        return Ok(());
    }
    let members = storage.member_ids(conversation.id).await?;
    let blocks = storage.blocks_among(&members).await?;
    match blocks.iter().any(|(blocker, blocked)| *blocker == user || *blocked == user) {
        true => Err(AppError::Blocked("you and this user blocked each other: nothing reaches them")),
        false => Ok(()),
    }
}
