//! `receipt:read {conversationId, messageId}` and the legacy `message.read {conversationId}`
//! (reads everything; answered with `message.read_ack`).

use serde_json::{Value, json};
use socketioxide::adapter::Adapter;

use super::{Ctx, Events};
use crate::{domain::message_input::parse_uuid, error::AppError, fanout::events};

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.on("receipt:read", read);
    events.on("message.read", legacy_read_all);
}

async fn read<A: Adapter>(ctx: Ctx<A>, payload: Value) -> Result<Value, AppError> {
    let conversation = parse_uuid("conversationId", payload.get("conversationId"))?;
    let message = parse_uuid("messageId", payload.get("messageId"))?;
    let outcome = ctx.state.reads.read_up_to(ctx.user(), conversation, message).await?;
    Ok(json!(outcome))
}

async fn legacy_read_all<A: Adapter>(ctx: Ctx<A>, payload: Value) -> Result<Value, AppError> {
    let field = payload.get("conversationId").or_else(|| payload.get("conversation_id"));
    let conversation = parse_uuid("conversationId", field)?;
    let outcome = ctx.state.reads.read_all(ctx.user(), conversation).await?;
    let _ =
        ctx.socket.emit(events::LEGACY_READ_ACK, &json!({ "conversationId": conversation, "readAt": outcome.read_at }));
    Ok(json!(outcome))
}
