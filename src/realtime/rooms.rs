//! `subscribe` / `unsubscribe`: the conversation room (typing indicators and subscribers'
//! copies of messages). Participants only.

use serde::Serialize;
use serde_json::json;
use socketioxide::adapter::Adapter;
use uuid::Uuid;

use super::dispatch::{Ctx, Events};
use crate::domain::payloads::ConversationRef;
use crate::{
    error::{AppError, AppResult},
    fanout::socketio,
};

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.on("subscribe", |ctx, request| subscribe(ctx, request, true));
    events.on("unsubscribe", |ctx, request| subscribe(ctx, request, false));
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Subscription {
    conversation_id: Uuid,
    subscribed: bool,
}

async fn subscribe<A: Adapter>(ctx: Ctx<A>, request: ConversationRef, subscribed: bool) -> AppResult<Subscription> {
    let conversation = request.conversation_id;
    if subscribed {
        check_subscription_limit(&ctx, conversation)?;
        ctx.state.services.conversations.detail(ctx.user(), conversation).await?;
    }
    socketio::set_socket_subscription(&ctx.socket, conversation, subscribed);
    Ok(Subscription { conversation_id: conversation, subscribed })
}

/// `MAX_SUBSCRIPTIONS_PER_SOCKET`: a socket in that many conversation rooms (however it
/// joined them) may not subscribe to another; re-subscribing to one of them is fine.
fn check_subscription_limit<A: Adapter>(ctx: &Ctx<A>, conversation: Uuid) -> Result<(), AppError> {
    let limit = ctx.state.config.max_subscriptions_per_socket as usize;
    if limit == 0 {
        return Ok(());
    }
    let (subscribed, already) = socketio::subscriptions(&ctx.socket, conversation);
    if subscribed < limit || already {
        return Ok(());
    }
    Err(AppError::Validation {
        message: format!(
            "conversationId: this socket is subscribed to {limit} conversations, the most allowed; unsubscribe from one first"
        ),
        details: Some(json!({ "field": "conversationId", "limit": limit })),
    })
}
