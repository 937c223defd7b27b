//! `message:send` (and the legacy `message.send`), `sync`, and `reaction:add` /
//! `reaction:remove`.

use serde::Serialize;
use socketioxide::adapter::Adapter;
use uuid::Uuid;

use super::dispatch::{Ctx, Events};
use crate::domain::payloads::{ReactionRequest, SendRequest, SyncRequest};
use crate::{
    domain::{
        messages::Replay,
        views::{Message, ReactionUpdate},
    },
    error::AppResult,
    fanout::{
        ServerEvent,
        events::{MessageError, MessageSent},
    },
};

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.pipelined("message:send", send);
    events.pipelined("message.send", send);
    events.on("sync", sync);
    events.on("reaction:add", |ctx, request| react(ctx, request, true));
    events.on("reaction:remove", |ctx, request| react(ctx, request, false));
}

/// Adds or removes a reaction; the ack is the message's reactions now (as `reaction:updated`).
async fn react<A: Adapter>(ctx: Ctx<A>, request: ReactionRequest, add: bool) -> AppResult<ReactionUpdate> {
    let reactions = &ctx.state.services.reactions;
    reactions.react(ctx.user(), request.conversation_id, request.message_id, &request.emoji, add).await
}

/// The ack of a send: `message:sent`'s fields, whether a retry found the original, and the
/// stored message.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendAck {
    message_id: Uuid,
    seq: i64,
    client_message_id: String,
    status: &'static str,
    timestamp: String,
    duplicate: bool,
    message: Message,
}

/// Stores the message, then `message:sent` to this socket (after commit) — or
/// `message:error` — and the ack carries the same. Pipelined: the socket's next event starts
/// once the message has its place in the writer's queue.
async fn send<A: Adapter>(mut ctx: Ctx<A>, request: SendRequest) -> AppResult<SendAck> {
    let mut order = std::mem::take(&mut ctx.order);
    let result = match request.message {
        Ok(message) => {
            let messages = &ctx.state.services.messages;
            messages.send_ordered(ctx.user(), message, Some(&ctx.connection()), order).await
        }
        Err(refusal) => {
            order.settle().await;
            Err(refusal)
        }
    };
    match result {
        Ok(sent) => {
            let confirmation = MessageSent::of(&sent.message);
            ctx.reply(&ServerEvent::MessageSent(confirmation.clone()));
            Ok(SendAck {
                message_id: confirmation.message_id,
                seq: confirmation.seq,
                client_message_id: confirmation.client_message_id.to_owned(),
                status: confirmation.status,
                timestamp: confirmation.timestamp,
                duplicate: !sent.created,
                message: sent.message,
            })
        }
        Err(err) => {
            let refusal =
                MessageError { client_message_id: request.client_message_id, error: err.to_string(), code: err.code() };
            ctx.reply(&ServerEvent::MessageError(refusal));
            Err(err)
        }
    }
}

/// `sync {conversations: [{conversationId, afterSeq}]}` or `sync {since}`: missed messages
/// through the ack, oldest first per conversation.
async fn sync<A: Adapter>(ctx: Ctx<A>, request: SyncRequest) -> AppResult<Replay> {
    let messages = &ctx.state.services.messages;
    match request {
        SyncRequest::Since(since) => messages.sync_since(ctx.user(), &since).await,
        SyncRequest::After(points) => messages.sync_after(ctx.user(), &points).await,
    }
}
