//! `message:send` (and the legacy `message.send`) and `sync`.

use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use uuid::Uuid;

use super::{Ctx, Events};
use crate::{
    domain::{
        message_input::{OutgoingMessage, parse_uuid},
        messages::Replay,
    },
    error::AppError,
    fanout::{MessageSent, events},
};

/// Conversations one `sync {conversations}` request may name.
const SYNC_MAX_CONVERSATIONS: usize = 100;

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.on("message:send", send);
    events.on("message.send", send);
    events.on("sync", sync);
}

/// Stores the message, then `message:sent` to this socket (after commit) — or
/// `message:error` — and the ack carries the same.
async fn send<A: Adapter>(ctx: Ctx<A>, payload: Value) -> Result<Value, AppError> {
    let client_message_id =
        payload.get("clientMessageId").or_else(|| payload.get("tempId")).and_then(Value::as_str).map(str::to_owned);
    let sid = ctx.socket.id.to_string();
    let result = match OutgoingMessage::from_payload(&payload) {
        Ok(message) => ctx.state.messages.send(ctx.user(), message, Some(&sid)).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(sent) => {
            let confirmation = MessageSent::of(&sent.message);
            let _ = ctx.socket.emit(events::MESSAGE_SENT, &confirmation);
            if ctx.state.fanout.legacy_events() {
                let legacy = json!({ "tempId": sent.message.client_message_id, "message": sent.message });
                let _ = ctx.socket.emit(events::LEGACY_MESSAGE_SENT, &legacy);
            }
            Ok(json!({ "messageId": confirmation.message_id, "seq": confirmation.seq,
                "clientMessageId": confirmation.client_message_id, "status": confirmation.status,
                "timestamp": confirmation.timestamp, "duplicate": !sent.created, "message": sent.message }))
        }
        Err(err) => {
            let refusal = json!({ "clientMessageId": client_message_id, "error": err.to_string(), "code": err.code() });
            let _ = ctx.socket.emit(events::MESSAGE_ERROR, &refusal);
            Err(err)
        }
    }
}

/// `sync {conversations: [{conversationId, afterSeq}]}` or `sync {since}`: missed messages
/// through the ack, oldest first per conversation.
async fn sync<A: Adapter>(ctx: Ctx<A>, payload: Value) -> Result<Value, AppError> {
    let replay = if let Some(since) = payload.get("since") {
        let since = since.as_str().ok_or_else(|| AppError::invalid_field("since", "must be an RFC 3339 time"))?;
        ctx.state.messages.sync_since(ctx.user(), since).await?
    } else {
        let points = sync_points(&payload)?;
        ctx.state.messages.sync_after(ctx.user(), &points).await?
    };
    Ok(replay_body(&replay))
}

fn sync_points(payload: &Value) -> Result<Vec<(Uuid, i64)>, AppError> {
    let list = payload
        .get("conversations")
        .and_then(Value::as_array)
        .ok_or_else(|| AppError::validation("sync needs {conversations: [{conversationId, afterSeq}]} or {since}"))?;
    if list.len() > SYNC_MAX_CONVERSATIONS {
        return Err(AppError::invalid_field("conversations", "at most 100 per request"));
    }
    list.iter()
        .map(|entry| {
            let conversation = parse_uuid("conversationId", entry.get("conversationId"))?;
            let after = match entry.get("afterSeq") {
                None | Some(Value::Null) => 0,
                Some(value) => value
                    .as_i64()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| AppError::invalid_field("afterSeq", "must be a non-negative integer"))?,
            };
            Ok((conversation, after))
        })
        .collect()
}

fn replay_body(replay: &Replay) -> Value {
    json!({ "messages": replay.messages, "conversations": replay.conversations, "truncated": replay.truncated })
}
