//! `presence:heartbeat {status}`: every 15 s from clients; `away` only counts when every
//! device of the user says so.

use serde::Serialize;
use socketioxide::adapter::Adapter;

use super::dispatch::{Ctx, Events};
use crate::domain::payloads::Heartbeat;
use crate::{error::AppResult, shared_state::PresenceStatus};

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.on("presence:heartbeat", heartbeat);
}

#[derive(Serialize)]
struct HeartbeatAck {
    status: PresenceStatus,
}

async fn heartbeat<A: Adapter>(ctx: Ctx<A>, beat: Heartbeat) -> AppResult<HeartbeatAck> {
    ctx.state.services.presence.touch(ctx.user(), &ctx.connection(), beat.status).await;
    Ok(HeartbeatAck { status: beat.status })
}
