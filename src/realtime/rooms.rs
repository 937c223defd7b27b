//! `subscribe` / `unsubscribe`: the conversation room (typing indicators and subscribers'
//! copies of messages). Participants only.

use serde_json::{Value, json};
use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::{Ctx, EventQueue, on};
use crate::{app::AppState, domain::message_input::parse_uuid, error::AppError, fanout::conversation_room};

pub fn register<A: Adapter>(socket: &SocketRef<A>, state: &AppState, queue: &EventQueue) {
    on(socket, "subscribe", state, queue, subscribe);
    on(socket, "unsubscribe", state, queue, unsubscribe);
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
