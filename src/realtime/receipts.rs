//! `receipt:read {conversationId, messageId}` and the legacy `message.read {conversationId}`
//! (reads everything; answered with `message.read_ack`).

use socketioxide::adapter::Adapter;

use super::dispatch::{Ctx, Events};
use crate::domain::payloads::{AnyConversationRef, ReadRequest};
use crate::{
    domain::reads::ReadOutcome,
    error::AppResult,
    fanout::{ServerEvent, events::ReadAck},
};

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.on("receipt:read", read);
    events.on("message.read", legacy_read_all);
}

async fn read<A: Adapter>(ctx: Ctx<A>, request: ReadRequest) -> AppResult<ReadOutcome> {
    ctx.state.services.reads.read_up_to(ctx.user(), request.conversation_id, request.message_id).await
}

async fn legacy_read_all<A: Adapter>(ctx: Ctx<A>, request: AnyConversationRef) -> AppResult<ReadOutcome> {
    let outcome = ctx.state.services.reads.read_all(ctx.user(), request.conversation_id).await?;
    ctx.reply(&ServerEvent::ReadAck(ReadAck { conversation_id: outcome.conversation_id, read_at: outcome.read_at }));
    Ok(outcome)
}
