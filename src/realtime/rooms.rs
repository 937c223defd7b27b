//! `subscribe` / `unsubscribe`: the conversation room (typing indicators and subscribers'
//! copies of messages). Participants only.

use serde_json::{Value, json};
use socketioxide::adapter::Adapter;

use super::{Ctx, Events};
use crate::{domain::message_input::parse_uuid, error::AppError, fanout::conversation_room};

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.on("subscribe", subscribe);
    events.on("unsubscribe", unsubscribe);
}

async fn subscribe<A: Adapter>(ctx: Ctx<A>, payload: Value) -> Result<Value, AppError> {
    let conversation = parse_uuid("conversationId", payload.get("conversationId"))?;
    ctx.state.conversations.detail(ctx.user(), conversation).await?;
    ctx.socket.join(conversation_room(conversation));
    Ok(json!({ "conversationId": conversation, "subscribed": true }))
}

async fn unsubscribe<A: Adapter>(ctx: Ctx<A>, payload: Value) -> Result<Value, AppError> {
    let conversation = parse_uuid("conversationId", payload.get("conversationId"))?;
    ctx.socket.leave(conversation_room(conversation));
    Ok(json!({ "conversationId": conversation, "subscribed": false }))
}
