//! Typing events and every alias older clients send: `typing:start` / `typing:stop`,
//! `typing.start` / `typing.stop`, `typing_start` / `typing_stop`, and
//! `message.typing {conversation_id | conversationId, is_typing}`.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use serde::Serialize;
use socketioxide::{adapter::Adapter, extract::SocketRef};
use uuid::Uuid;

use super::dispatch::{Ctx, Events};
use crate::domain::payloads::TypingRequest;
use crate::error::{AppError, AppResult};

/// Conversations this socket started typing in, so a disconnect can end them.
#[derive(Clone, Default)]
struct TypedIn(Arc<Mutex<HashSet<Uuid>>>);

pub fn register<A: Adapter>(events: &mut Events<A>) {
    for event in ["typing:start", "typing.start", "typing_start"] {
        events.on(event, |ctx, request| set(ctx, request, Some(true)));
    }
    for event in ["typing:stop", "typing.stop", "typing_stop"] {
        events.on(event, |ctx, request| set(ctx, request, Some(false)));
    }
    events.on("message.typing", |ctx, request| set(ctx, request, None));
}

/// The conversations `socket` typed in (and forgets them).
pub fn typed_in<A: Adapter>(socket: &SocketRef<A>) -> Vec<Uuid> {
    socket.extensions.get::<TypedIn>().map(|t| crate::sync::lock(&t.0).drain().collect()).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypingAck {
    conversation_id: Uuid,
    typing: bool,
}

/// `typing`: `Some` from the event name, `None` from the payload's `is_typing`.
async fn set<A: Adapter>(ctx: Ctx<A>, request: TypingRequest, typing: Option<bool>) -> AppResult<TypingAck> {
    let conversation = request.conversation_id;
    let typing =
        typing.or(request.is_typing).ok_or_else(|| AppError::invalid_field("is_typing", "must be true or false"))?;
    ctx.state.services.typing.set(ctx.user(), conversation, typing).await?;
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
    Ok(TypingAck { conversation_id: conversation, typing })
}
