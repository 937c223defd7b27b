//! Typing events and every alias older clients send: `typing:start` / `typing:stop`,
//! `typing.start` / `typing.stop`, `typing_start` / `typing_stop`, and
//! `message.typing {conversation_id | conversationId, is_typing}`.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};
use socketioxide::{adapter::Adapter, extract::SocketRef};
use uuid::Uuid;

use super::{Ctx, Events};
use crate::{domain::message_input::parse_uuid, error::AppError};

/// Conversations this socket started typing in, so a disconnect can end them.
#[derive(Clone, Default)]
struct TypedIn(Arc<Mutex<HashSet<Uuid>>>);

pub fn register<A: Adapter>(events: &mut Events<A>) {
    for event in ["typing:start", "typing.start", "typing_start"] {
        events.on(event, |ctx, payload| set(ctx, payload, Some(true)));
    }
    for event in ["typing:stop", "typing.stop", "typing_stop"] {
        events.on(event, |ctx, payload| set(ctx, payload, Some(false)));
    }
    events.on("message.typing", |ctx, payload| set(ctx, payload, None));
}

/// The conversations `socket` typed in (and forgets them).
pub fn typed_in<A: Adapter>(socket: &SocketRef<A>) -> Vec<Uuid> {
    socket.extensions.get::<TypedIn>().map(|t| crate::sync::lock(&t.0).drain().collect()).unwrap_or_default()
}

/// `typing`: `Some` from the event name, `None` from the payload's `is_typing`.
async fn set<A: Adapter>(ctx: Ctx<A>, payload: Value, typing: Option<bool>) -> Result<Value, AppError> {
    let conversation_field = payload.get("conversationId").or_else(|| payload.get("conversation_id"));
    let conversation = parse_uuid("conversationId", conversation_field)?;
    let typing = match typing {
        Some(typing) => typing,
        None => payload
            .get("is_typing")
            .or_else(|| payload.get("isTyping"))
            .and_then(Value::as_bool)
            .ok_or_else(|| AppError::invalid_field("is_typing", "must be true or false"))?,
    };
    ctx.state.typing.set(ctx.user(), conversation, typing).await?;
    // Created on the first start: most sockets never type.
    let typed = match ctx.socket.extensions.get::<TypedIn>() {
        Some(typed) => Some(typed),
        None if typing => {
            let typed = TypedIn::default();
            ctx.socket.extensions.insert(typed.clone());
            Some(typed)
        }
        None => None,
    };
    if let Some(typed) = typed {
        let mut typed = crate::sync::lock(&typed.0);
        if typing {
            typed.insert(conversation);
        } else {
            typed.remove(&conversation);
        }
    }
    Ok(json!({ "conversationId": conversation, "typing": typing }))
}
