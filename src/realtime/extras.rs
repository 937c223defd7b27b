//! Small events from the older clients (seed 002): `ping` → `pong`, and blocking by
//! username with `block.add` / `block.remove` → `block.added` / `block.removed`.

use socketioxide::adapter::Adapter;

use super::dispatch::{Ctx, Events};
use crate::domain::payloads::{BlockRequest, PingRequest};
use crate::{
    domain::time::Timestamp,
    error::AppResult,
    fanout::{
        ServerEvent,
        events::{BlockChanged, Pong},
    },
};

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.on("ping", ping);
    events.on("block.add", |ctx, request| block(ctx, request, true));
    events.on("block.remove", |ctx, request| block(ctx, request, false));
}

async fn ping<A: Adapter>(ctx: Ctx<A>, request: PingRequest) -> AppResult<Pong> {
    let pong = Pong { timestamp: request.timestamp, server_time: ctx.state.clock.now_ms() };
    ctx.reply(&ServerEvent::Pong(pong.clone()));
    Ok(pong)
}

async fn block<A: Adapter>(ctx: Ctx<A>, request: BlockRequest, blocking: bool) -> AppResult<BlockChanged> {
    let users = &ctx.state.services.users;
    let target = users.by_username(&request.username).await?;
    users.set_blocked(ctx.user(), target.id, blocking).await?;
    let changed = BlockChanged { user_id: target.id, username: target.username, at: Timestamp(ctx.state.clock.now()) };
    let event =
        if blocking { ServerEvent::BlockAdded(changed.clone()) } else { ServerEvent::BlockRemoved(changed.clone()) };
    ctx.reply(&event);
    Ok(changed)
}
