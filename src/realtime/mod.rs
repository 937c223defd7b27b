//! The Socket.IO gateway: namespace `/chat` on the same server as the REST API.
//!
//! * [`dispatch`]: the event table and the dispatcher (rate budget, session check, payload
//!   parsing into the handler's input type, the ack);
//! * [`queue`]: each socket's events, in order, one at a time;
//! * [`connect`]: the handshake and late `auth`, token swaps, the replay, disconnects;
//! * one file per event group (`messages`, `rooms`, `receipts`, `typing`, `presence`,
//!   `extras`), each a `register` and typed handlers that call one domain service;
//! * [`payloads`]: the client events' payloads as types; [`ack`]: the ack envelope;
//!   [`limits`]: connections per address and each socket's event budget.
//!
//! Handlers are thin: they call one domain service, and what goes back to the socket (the
//! ack aside) goes through [`crate::fanout`], as every broadcast does.

mod ack;
mod connect;
mod dispatch;
mod extras;

mod messages;

mod presence;
mod queue;
mod receipts;
mod rooms;
mod session;
mod typing;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use socketioxide::{SocketIo, adapter::Adapter, extract::SocketRef, handler::ConnectHandler};
use socketioxide_core::adapter::DefinedAdapter;
use uuid::Uuid;

use dispatch::{Events, Gateway};
pub use session::Session;

use crate::{fanout::socketio::CHAT_NAMESPACE, state::AppState};

/// Packets the server may have waiting for one socket.
pub const SOCKET_BUFFER: usize = 1024;
/// Bytes tungstenite reads from a websocket at a time (and keeps allocated per socket);
/// engineioxide's default is 4 KiB. Chat packets are far smaller; a larger message takes
/// more reads.
pub const SOCKET_READ_BUFFER: usize = 1024;

/// Registers the `/chat` namespace. Call once, after the state is built.
///
/// socketioxide runs the connect handler in a task of its own after sending the namespace
/// `connect` packet, and every event handler as a task of its own. A client may emit the
/// moment it sees `connect`, and a chat must keep a socket's messages in order. So a connect
/// middleware (which runs before the packet goes out) gives the socket its one event handler
/// (a dispatcher over the [`Gateway`]'s table, shared by every socket) and its
/// [`queue::EventQueue`], held until the connect handler releases it; the handshake
/// authentication is its first job, and events run one at a time, in arrival order, after it.
pub fn register<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, state: AppState) -> A::InitRes {
    let gateway = Arc::new(Gateway::new(state, events()));
    let prepare_gateway = gateway.clone();
    let prepare = move |socket: SocketRef<A>,
                        socketioxide::extract::TryData(auth): socketioxide::extract::TryData<Value>| {
        connect::prepare(socket, prepare_gateway.clone(), auth.unwrap_or(Value::Null))
    };
    let connected = move |socket: SocketRef<A>, io: SocketIo<A>| {
        connect::connected(&socket, io, &gateway);
        std::future::ready(())
    };
    io.ns(CHAT_NAMESPACE, connected.with(prepare))
}

/// Every `/chat` event and its handler.
fn events<A: Adapter>() -> Events<A> {
    let mut events = Events::new(connect::auth_event);
    messages::register(&mut events);
    rooms::register(&mut events);
    presence::register(&mut events);
    receipts::register(&mut events);
    typing::register(&mut events);
    extras::register(&mut events);
    events
}

/// What the application needs of the Socket.IO server whatever its adapter.
#[async_trait]
pub trait RealtimeHandle: Send + Sync {
    /// Disconnects every socket (shutdown: clients reconnect elsewhere).
    async fn close(&self);
    /// This replica's authenticated sockets, as (user, socket id).
    fn local_sockets(&self) -> Vec<(Uuid, String)>;
}

#[async_trait]
impl<A: Adapter> RealtimeHandle for SocketIo<A> {
    async fn close(&self) {
        SocketIo::close(self).await;
    }

    fn local_sockets(&self) -> Vec<(Uuid, String)> {
        let Some(ns) = self.of(CHAT_NAMESPACE) else { return Vec::new() };
        ns.sockets()
            .into_iter()
            .filter_map(|s| s.extensions.get::<Session>().map(|session| (session.user_id, s.id.to_string())))
            .collect()
    }
}
