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
    let room = conversation_room(conversation);
    check_subscription_limit(&ctx, &room)?;
    ctx.state.conversations.detail(ctx.user(), conversation).await?;
    ctx.socket.join(room);
    Ok(json!({ "conversationId": conversation, "subscribed": true }))
}

/// `MAX_SUBSCRIPTIONS_PER_SOCKET`: a socket in that many conversation rooms (however it
/// joined them) may not subscribe to another; re-subscribing to one of them is fine.
fn check_subscription_limit<A: Adapter>(ctx: &Ctx<A>, room: &str) -> Result<(), AppError> {
    let limit = ctx.state.config.max_subscriptions_per_socket as usize;
    if limit == 0 {
        return Ok(());
    }
    let rooms = ctx.socket.rooms();
    // The prefix of `conversation_room`.
    let subscribed = rooms.iter().filter(|r| r.starts_with("conversation:")).count();
    if subscribed < limit || rooms.iter().any(|r| r == room) {
        return Ok(());
    }
    Err(AppError::Validation {
        message: format!(
            "conversationId: this socket is subscribed to {limit} conversations, the most allowed; unsubscribe from one first"
        ),
        details: Some(json!({ "field": "conversationId", "limit": limit })),
    })
}

async fn unsubscribe<A: Adapter>(ctx: Ctx<A>, payload: Value) -> Result<Value, AppError> {
    let conversation = parse_uuid("conversationId", payload.get("conversationId"))?;
    ctx.socket.leave(conversation_room(conversation));
    Ok(json!({ "conversationId": conversation, "subscribed": false }))
}
