//! Small events from the older clients (seed 002): `ping` → `pong`, and blocking by
//! username with `block.add` / `block.remove` → `block.added` / `block.removed`.

use serde_json::{Value, json};
use socketioxide::adapter::Adapter;

use super::{Ctx, Events};
use crate::{error::AppError, fanout::events};

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.on("ping", ping);
    events.on("block.add", |ctx, payload| block(ctx, payload, true));
    events.on("block.remove", |ctx, payload| block(ctx, payload, false));
}

async fn ping<A: Adapter>(ctx: Ctx<A>, payload: Value) -> Result<Value, AppError> {
    let pong = json!({ "timestamp": payload.get("timestamp").cloned().unwrap_or(Value::Null),
        "serverTime": ctx.state.clock.now_ms() });
    let _ = ctx.socket.emit(events::PONG, &pong);
    Ok(pong)
}

async fn block<A: Adapter>(ctx: Ctx<A>, payload: Value, blocking: bool) -> Result<Value, AppError> {
    let username = payload
        .get("username")
        .and_then(Value::as_str)
        .ok_or_else(|| AppError::invalid_field("username", "is required"))?;
    let target = ctx.state.users.by_username(username).await?;
    if blocking {
        ctx.state.users.block(ctx.user(), target.id).await?;
    } else {
        ctx.state.users.unblock(ctx.user(), target.id).await?;
    }
    let event = if blocking { events::LEGACY_BLOCK_ADDED } else { events::LEGACY_BLOCK_REMOVED };
    let at = crate::domain::time::Timestamp(ctx.state.clock.now());
    let body = json!({ "userId": target.id, "username": target.username, "at": at });
    let _ = ctx.socket.emit(event, &body);
    Ok(body)
}
