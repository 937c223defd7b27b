//! `presence:heartbeat {status}`: every 15 s from clients; `away` only counts when every
//! device of the user says so.

use serde_json::{Value, json};
use socketioxide::adapter::Adapter;

use super::{Ctx, Events};
use crate::{error::AppError, shared_state::PresenceStatus};

pub fn register<A: Adapter>(events: &mut Events<A>) {
    events.on("presence:heartbeat", heartbeat);
}

async fn heartbeat<A: Adapter>(ctx: Ctx<A>, payload: Value) -> Result<Value, AppError> {
    let status = match payload.get("status") {
        None | Some(Value::Null) => PresenceStatus::Online,
        Some(Value::String(s)) if s == "online" => PresenceStatus::Online,
        Some(Value::String(s)) if s == "away" => PresenceStatus::Away,
        Some(_) => return Err(AppError::invalid_field("status", "must be `online` or `away`")),
    };
    ctx.state.presence.touch(ctx.user(), &ctx.socket.id.to_string(), status).await;
    Ok(json!({ "status": status }))
}
