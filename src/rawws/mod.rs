//! The raw WebSocket gateway, `GET /chat/ws`: seed 002's protocol for the Go backend's web
//! and mobile clients (JSON envelopes `{type, payload}` over a plain WebSocket; SPEC §4.6).
//! It is the second realtime gateway beside Socket.IO's `/chat`, over the same domain
//! services: sends, reads, typing, presence, blocks, dedup, rate limits and the replay are
//! theirs, and what reaches its clients comes through [`crate::fanout`] like everything else
//! ([`delivery::RawDelivery`] is its [`crate::fanout::Delivery`]).
//!
//! * [`connection`]: one connection from the upgrade to the end;
//! * [`envelope`]: seed 002's frames for every server event, and its error envelope;
//! * [`hub`]: this replica's connections, by user;
//! * [`delivery`]: the fan-out to them, here and (through Redis) on the other replicas.
//!
//! It imports neither `http` nor `realtime`.

pub mod connection;
pub mod delivery;
pub mod envelope;
pub mod hub;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{State, WebSocketUpgrade},
    http::request::Parts,
    response::Response,
    routing::get,
};

use crate::{
    state::AppState,
    transport::{
        self,
        limits::{ConnectionCounts, EventRate},
    },
};
pub use hub::RawHub;

/// Where seed 002's clients connect.
pub const PATH: &str = "/chat/ws";

/// What every raw connection shares.
pub struct RawGateway {
    pub state: AppState,
    pub hub: Arc<RawHub>,
    /// Raw connections per client address on this replica (`MAX_CONNECTIONS_PER_IP`).
    connections: Arc<ConnectionCounts>,
    rate: EventRate,
    ping_interval: Duration,
    pong_timeout: Duration,
}

impl RawGateway {
    pub fn new(state: AppState, hub: Arc<RawHub>) -> Self {
        let config = state.config.clone();
        Self {
            connections: ConnectionCounts::new(config.max_connections_per_ip),
            rate: EventRate::new(config.socket_events_per_sec, config.socket_events_burst),
            ping_interval: config.raw_ws_ping_interval,
            pong_timeout: config.raw_ws_pong_timeout,
            state,
            hub,
        }
    }
}

/// The route, for the composition root to merge.
pub fn router(gateway: Arc<RawGateway>) -> Router {
    Router::new().route(PATH, get(upgrade)).with_state(gateway)
}

/// The upgrade always completes (a seed client reads the `unauthorized` error from the
/// socket); the token comes from `Authorization: Bearer` or `?token=`.
async fn upgrade(State(gateway): State<Arc<RawGateway>>, parts: Parts, ws: WebSocketUpgrade) -> Response {
    let token = transport::bearer_token(&parts.headers).or_else(|| transport::query_token(&parts)).map(str::to_owned);
    let ip = transport::client_ip(&parts, gateway.state.config.trust_proxy);
    let slot = match gateway.connections.acquire(ip) {
        Ok(slot) => slot,
        Err(refusal) => {
            metrics::counter!("parley_rate_limited_total", "scope" => "connections_per_ip").increment(1);
            tracing::info!(?ip, limit = refusal.limit, "raw connection refused: too many from this address");
            return ws.on_upgrade(move |mut socket| async move {
                let refusal = envelope::error("rate_limit_exceeded", "too many connections from this address");
                let _ = socket.send(axum::extract::ws::Message::Text(refusal.into())).await;
            });
        }
    };
    let max = gateway.state.config.socket_max_payload;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| connection::serve(socket, gateway, token, (ip, slot)))
}
