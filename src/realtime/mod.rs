//! The Socket.IO gateway: namespace `/chat` on the same server as the REST API. Handlers
//! are thin: they parse a payload, call one domain service and answer with the ack
//! envelope. Broadcasts go through [`crate::fanout`].

mod ack;
mod connect;
mod extras;
mod messages;
mod rooms;

use std::{future::Future, time::Duration};

use async_trait::async_trait;
use tracing::Instrument;
use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, SocketRef, TryData},
};
use socketioxide_core::adapter::DefinedAdapter;
use uuid::Uuid;

use crate::{
    app::AppState,
    error::AppError,
    fanout::{Audience, Broadcaster, CHAT_NAMESPACE},
};

pub use connect::Session;

/// Registers the `/chat` namespace. Call once, after the state is built.
pub fn register<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, state: AppState) -> A::InitRes {
    io.ns(CHAT_NAMESPACE, move |socket: SocketRef<A>, TryData(auth): TryData<Value>| {
        let state = state.clone();
        async move { connect::on_connect(socket, state, auth.unwrap_or(Value::Null)).await }
    })
}

/// What a handler gets: the socket, the application, and the authenticated session.
pub struct Ctx<A: Adapter> {
    pub socket: SocketRef<A>,
    pub state: AppState,
    pub session: Session,
}

impl<A: Adapter> Ctx<A> {
    pub fn user(&self) -> Uuid {
        self.session.user_id
    }
}

/// Registers `event` for an authenticated socket: the payload (any JSON, `null` when absent)
/// goes to `handler`, whose result is the ack. Unauthenticated or expired sessions get an
/// `AUTH_FAILED` ack and the handler is not called.
pub fn on<A, F, Fut>(socket: &SocketRef<A>, event: &'static str, state: &AppState, handler: F)
where
    A: Adapter,
    F: Fn(Ctx<A>, Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, AppError>> + Send + 'static,
{
    let state = state.clone();
    socket.on(event, move |socket: SocketRef<A>, TryData(payload): TryData<Value>, ack: AckSender<A>| {
        let (state, handler) = (state.clone(), handler.clone());
        let span = tracing::info_span!("socket_event", event, sid = %socket.id);
        async move {
            let result = match connect::current_session(&socket, &state) {
                Ok(session) => handler(Ctx { socket, state, session }, payload.unwrap_or(Value::Null)).await,
                Err(err) => Err(err),
            };
            if let Err(err) = &result {
                tracing::debug!(code = err.code(), "event refused");
            }
            let _ = ack.send(&ack::envelope(&result));
        }
        .instrument(span)
    });
}

/// [`Broadcaster`] over socketioxide: rooms and the adapter reach sockets on every replica.
pub struct SocketIoBroadcaster<A: Adapter> {
    io: SocketIo<A>,
}

impl<A: Adapter> SocketIoBroadcaster<A> {
    pub fn new(io: SocketIo<A>) -> Self {
        Self { io }
    }
}

#[async_trait]
impl<A: Adapter> Broadcaster for SocketIoBroadcaster<A> {
    async fn emit(&self, audience: Audience, event: &str, payload: &Value) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        let mut operators = ns.to(audience.rooms);
        if let Some(except) = audience.except {
            operators = operators.except(except);
        }
        if let Err(err) = operators.emit(event, payload).await {
            tracing::warn!(error = %err, event, "broadcast failed");
        }
    }

    async fn disconnect(&self, rooms: Vec<String>) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        if let Err(err) = ns.to(rooms).disconnect().await {
            tracing::warn!(error = %err, "remote disconnect failed");
        }
    }

    async fn join(&self, sockets_in: String, room: String) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        if let Err(err) = ns.to(sockets_in).join(room).await {
            tracing::warn!(error = ?err, "remote join failed");
        }
    }

    async fn leave(&self, sockets_in: String, room: String) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        if let Err(err) = ns.to(sockets_in).leave(room).await {
            tracing::warn!(error = ?err, "remote leave failed");
        }
    }
}

/// Renews this replica's sockets in the shared connection registry, so other replicas keep
/// seeing them online (see [`crate::shared_state::Connections`]).
pub async fn renew_connections<A: Adapter>(io: &SocketIo<A>, state: &AppState) {
    let Some(ns) = io.of(CHAT_NAMESPACE) else { return };
    let live: Vec<(Uuid, String)> = ns
        .sockets()
        .into_iter()
        .filter_map(|s| s.extensions.get::<Session>().map(|session| (session.user_id, s.id.to_string())))
        .collect();
    if let Err(err) = state.shared.connections.renew(&live).await {
        tracing::warn!(error = %err, sockets = live.len(), "renewing connections failed");
    }
}

pub const LATE_AUTH_TIMEOUT: Duration = Duration::from_secs(10);
