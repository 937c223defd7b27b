//! The Socket.IO transport of [`super::Fanout`] (namespace `/chat`): an [`Audience`] becomes
//! rooms, reached on every replica through the adapter, and each event goes out under its
//! name, followed by its legacy twins while `LEGACY_EVENTS` is on. [`Replies`] sends events
//! to the one socket a handler serves, and the room helpers put a socket where the
//! broadcasts will find it.

use std::time::Duration;

use async_trait::async_trait;
use socketioxide::{
    SendError, SocketError, SocketIo, adapter::Adapter, extract::SocketRef, operators::BroadcastOperators,
};
use uuid::Uuid;

use crate::state::ObserverSlot;

use super::{
    Audience, Delivery,
    events::{ServerEvent, Wire},
    legacy,
    rooms::{MODERN_ROOM, conversation_room, is_conversation_room, session_room, socket_room, user_room},
};

pub const CHAT_NAMESPACE: &str = "/chat";

/// How long a reply waits for room in a socket's send buffer, in steps of
/// [`BACKPRESSURE_STEP`], before the socket counts as stuck.
const BACKPRESSURE_STEPS: u32 = 1000;
const BACKPRESSURE_STEP: Duration = Duration::from_millis(5);

/// [`Delivery`] over socketioxide.
pub struct SocketIoDelivery<A: Adapter> {
    io: SocketIo<A>,
    legacy: bool,
    observer: ObserverSlot,
}

impl<A: Adapter> SocketIoDelivery<A> {
    /// `legacy`: send the legacy twins too (`LEGACY_EVENTS`); `observer`: told of every event
    /// sent, once there is one.
    pub fn new(io: SocketIo<A>, legacy: bool, observer: ObserverSlot) -> Self {
        Self { io, legacy, observer }
    }

    /// Emits `event` to `rooms`; when the adapter cannot reach the other replicas (Redis
    /// down), this replica's own sockets still get it.
    async fn emit(&self, rooms: &Rooms, event: &(impl Wire + ?Sized)) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        let name = event.name();
        if let Some(observer) = self.observer.get().filter(|o| o.watches_events()) {
            let payload = serde_json::to_value(event).unwrap_or_default();
            observer.event_sent(&rooms.to, &rooms.except, name, &payload);
        }
        if let Err(err) = rooms.apply(ns.clone()).emit(name, event).await {
            metrics::counter!("parley_broadcast_failures_total").increment(1);
            tracing::warn!(error = %err, event = name, "broadcast to other replicas failed; delivering locally");
            if let Err(err) = rooms.apply(ns.local()).emit(name, event).await {
                tracing::warn!(error = %err, event = name, "local broadcast failed");
            }
        }
    }
}

/// An [`Audience`] as Socket.IO rooms.
struct Rooms {
    to: Vec<String>,
    except: Vec<String>,
}

impl Rooms {
    fn of(audience: &Audience) -> Self {
        let mut to: Vec<String> = audience.users.iter().copied().map(user_room).collect();
        to.extend(audience.subscribers_of.map(conversation_room));
        to.extend(audience.sessions.iter().copied().map(session_room));
        let mut except: Vec<String> = audience.except_users.iter().copied().map(user_room).collect();
        except.extend(audience.except_connection.as_deref().map(socket_room));
        Self { to, except }
    }

    fn apply<A: Adapter>(&self, operators: BroadcastOperators<A>) -> BroadcastOperators<A> {
        operators.to(self.to.clone()).except(self.except.clone())
    }

    /// The same audience, less the sockets that speak only the canonical names.
    fn legacy_speakers(mut self) -> Self {
        self.except.push(MODERN_ROOM.to_owned());
        self
    }
}

#[async_trait]
impl<A: Adapter> Delivery for SocketIoDelivery<A> {
    async fn deliver(&self, audience: &Audience, event: &ServerEvent<'_>) {
        let rooms = Rooms::of(audience);
        self.emit(&rooms, event).await;
        if !self.legacy {
            return;
        }
        let twins = legacy::twins(event);
        if twins.is_empty() {
            return;
        }
        let speakers = rooms.legacy_speakers();
        for twin in twins {
            self.emit(&speakers, &twin).await;
        }
    }

    async fn disconnect(&self, audience: &Audience) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        let rooms = Rooms::of(audience);
        if let Err(err) = rooms.apply(ns.clone()).disconnect().await {
            tracing::warn!(error = %err, "remote disconnect failed; disconnecting locally");
            let _ = rooms.apply(ns.local()).disconnect().await;
        }
    }

    async fn set_subscription(&self, user: Uuid, conversation: Uuid, subscribed: bool) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        let (sockets, room) = (user_room(user), conversation_room(conversation));
        let remote = if subscribed {
            ns.clone().to(sockets.clone()).join(room.clone()).await
        } else {
            ns.clone().to(sockets.clone()).leave(room.clone()).await
        };
        if let Err(err) = remote {
            tracing::warn!(error = ?err, subscribed, "remote room change failed; changing locally");
            let local = ns.local().to(sockets);
            let _ = if subscribed { local.join(room).await } else { local.leave(room).await };
        }
    }
}

/// Events for the one socket a handler serves (its replies: `auth:success`,
/// `message:sent`, `pong`, the replay, …), with their legacy twins like every broadcast.
#[derive(Clone)]
pub struct Replies {
    legacy: bool,
    observer: ObserverSlot,
}

impl Replies {
    pub fn new(legacy: bool, observer: ObserverSlot) -> Self {
        Self { legacy, observer }
    }

    fn observe<A: Adapter>(&self, socket: &SocketRef<A>, event: &ServerEvent<'_>) {
        if let Some(observer) = self.observer.get().filter(|o| o.watches_events()) {
            let payload = serde_json::to_value(event).unwrap_or_default();
            observer.event_sent(&[socket_room(&socket.id.to_string())], &[], event.name(), &payload);
        }
    }

    /// Sends at once; a socket whose buffer is full misses it (it is far behind anyway).
    pub fn send<A: Adapter>(&self, socket: &SocketRef<A>, event: &ServerEvent<'_>) {
        self.observe(socket, event);
        let _ = emit_now(socket, event);
        if self.legacy && speaks_legacy(socket) {
            for twin in legacy::twins(event) {
                let _ = emit_now(socket, &twin);
            }
        }
    }

    /// Sends, waiting for room in the socket's buffer (a replay can outrun it) for at most a
    /// few seconds: `false` when the socket is gone or does not drain.
    pub async fn send_in_order<A: Adapter>(&self, socket: &SocketRef<A>, event: &ServerEvent<'_>) -> bool {
        self.observe(socket, event);
        if !emit_with_backpressure(socket, event).await {
            return false;
        }
        if self.legacy && speaks_legacy(socket) {
            for twin in legacy::twins(event) {
                if !emit_with_backpressure(socket, &twin).await {
                    return false;
                }
            }
        }
        true
    }
}

fn emit_now<A: Adapter>(socket: &SocketRef<A>, event: &(impl Wire + ?Sized)) -> Result<(), SendError> {
    socket.emit(event.name(), event)
}

async fn emit_with_backpressure<A: Adapter>(socket: &SocketRef<A>, event: &(impl Wire + ?Sized)) -> bool {
    for _ in 0..BACKPRESSURE_STEPS {
        match emit_now(socket, event) {
            Err(SendError::Socket(SocketError::InternalChannelFull)) => tokio::time::sleep(BACKPRESSURE_STEP).await,
            Err(err) => {
                tracing::debug!(error = %err, event = event.name(), "emit failed");
                return false;
            }
            Ok(()) => return true,
        }
    }
    tracing::warn!(sid = %socket.id, "socket does not drain; giving up on it");
    false
}

/// Marks a socket that speaks the legacy event names (in its extensions).
#[derive(Clone, Copy, Debug)]
struct LegacyDialect;

/// Legacy twins are opt-in per socket: asked for in the handshake (`auth.legacy: true`,
/// `?legacy=1`), or later by using a legacy event name ([`speak_legacy`]). Every other
/// socket sits in [`MODERN_ROOM`], which the twins skip.
pub fn choose_dialect<A: Adapter>(socket: &SocketRef<A>, legacy: bool) {
    if legacy {
        socket.extensions.insert(LegacyDialect);
    } else {
        socket.join(MODERN_ROOM);
    }
}

/// The socket used a legacy event name: it gets the twins from now on.
pub fn speak_legacy<A: Adapter>(socket: &SocketRef<A>) {
    if !speaks_legacy(socket) {
        socket.extensions.insert(LegacyDialect);
        socket.leave(MODERN_ROOM);
    }
}

fn speaks_legacy<A: Adapter>(socket: &SocketRef<A>) -> bool {
    socket.extensions.get::<LegacyDialect>().is_some()
}

/// An authenticated socket enters its user's and its session's rooms, and its own.
pub fn enter_rooms<A: Adapter>(socket: &SocketRef<A>, user: Uuid, session: Uuid) {
    socket.join(user_room(user));
    socket.join(session_room(session));
}

/// A socket's own room, which lets a broadcast skip it from any replica.
pub fn enter_own_room<A: Adapter>(socket: &SocketRef<A>) {
    socket.join(socket_room(&socket.id.to_string()));
}

/// A token swap moved the socket to another login session.
pub fn change_session<A: Adapter>(socket: &SocketRef<A>, from: Uuid, to: Uuid) {
    socket.leave(session_room(from));
    socket.join(session_room(to));
}

/// `subscribe` / `unsubscribe` of one socket.
pub fn set_socket_subscription<A: Adapter>(socket: &SocketRef<A>, conversation: Uuid, subscribed: bool) {
    if subscribed {
        socket.join(conversation_room(conversation));
    } else {
        socket.leave(conversation_room(conversation));
    }
}

/// How many conversations `socket` is subscribed to, and whether `conversation` is one.
pub fn subscriptions<A: Adapter>(socket: &SocketRef<A>, conversation: Uuid) -> (usize, bool) {
    let rooms = socket.rooms();
    let room = conversation_room(conversation);
    let count = rooms.iter().filter(|r| is_conversation_room(r)).count();
    (count, rooms.iter().any(|r| *r == room))
}
