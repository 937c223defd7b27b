//! The Socket.IO gateway: namespace `/chat` on the same server as the REST API. Handlers
//! are thin: they parse a payload, call one domain service and answer with the ack
//! envelope. Broadcasts go through [`crate::fanout`].

mod ack;
mod connect;
mod extras;
mod messages;
mod presence;
mod receipts;
pub mod redis_driver;
mod rooms;
mod typing;

use std::{future::Future, pin::Pin, time::Duration};

use async_trait::async_trait;
use socketioxide::handler::ConnectHandler;
use tokio::sync::{mpsc, oneshot};
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

/// Packets the server may have waiting for one socket.
pub const SOCKET_BUFFER: usize = 1024;
/// The largest packet a client may send (polling body or websocket message).
pub const SOCKET_MAX_PAYLOAD: usize = 256 * 1024;

/// Events a socket may have waiting; beyond this its events are refused with `RATE_LIMITED`.
pub const EVENT_QUEUE: usize = 256;

/// Registers the `/chat` namespace. Call once, after the state is built.
///
/// socketioxide runs the connect handler in a task of its own after sending the namespace
/// `connect` packet, and every event handler as a task of its own. A client may emit the
/// moment it sees `connect`, and a chat must keep a socket's messages in order. So a connect
/// middleware (which runs before the packet goes out) registers the event handlers and
/// creates the socket's [`EventQueue`], held until the connect handler releases it; the
/// handshake authentication is its first job, and events run one at a time, in arrival
/// order, after it.
pub fn register<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, state: AppState) -> A::InitRes {
    let prepare_state = state.clone();
    let prepare = move |socket: SocketRef<A>, TryData(auth): TryData<Value>| {
        connect::prepare(&socket, &prepare_state, auth.unwrap_or(Value::Null));
        std::future::ready(Ok::<(), std::convert::Infallible>(()))
    };
    let connected = move |socket: SocketRef<A>| {
        connect::connected(&socket, &state);
        std::future::ready(())
    };
    io.ns(CHAT_NAMESPACE, connected.with(prepare))
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One socket's events, run in arrival order by a task of its own, which starts when the
/// returned sender fires (or is dropped). The task ends when the socket is gone (its
/// handlers, which hold the queue, are dropped).
#[derive(Clone)]
pub struct EventQueue(mpsc::Sender<Job>);

impl EventQueue {
    pub fn paused() -> (Self, oneshot::Sender<()>) {
        let (sender, mut jobs) = mpsc::channel::<Job>(EVENT_QUEUE);
        let (start, started) = oneshot::channel();
        tokio::spawn(async move {
            let _ = started.await;
            while let Some(job) = jobs.recv().await {
                job.await;
            }
        });
        (Self(sender), start)
    }

    /// Queues `job`; `false` when the socket already has [`EVENT_QUEUE`] events waiting.
    /// Only the socket's own packet loop pushes, so a free slot seen here stays free.
    pub fn push(&self, job: impl Future<Output = ()> + Send + 'static) -> bool {
        self.0.capacity() > 0 && self.0.try_send(Box::pin(job)).is_ok()
    }

    fn is_full(&self) -> bool {
        self.0.capacity() == 0
    }
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
pub fn on<A, F, Fut>(socket: &SocketRef<A>, event: &'static str, state: &AppState, queue: &EventQueue, handler: F)
where
    A: Adapter,
    F: Fn(Ctx<A>, Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, AppError>> + Send + 'static,
{
    let (state, queue) = (state.clone(), queue.clone());
    socket.on(event, move |socket: SocketRef<A>, TryData(payload): TryData<Value>, ack: AckSender<A>| {
        if queue.is_full() {
            metrics::counter!("parley_rate_limited_total", "scope" => "socket_events").increment(1);
            let _ = ack.send(&ack::error(&AppError::RateLimited { retry_after: Duration::from_secs(1) }));
            return std::future::ready(());
        }
        let (state, handler) = (state.clone(), handler.clone());
        let span = tracing::info_span!("socket_event", event, sid = %socket.id);
        queue.push(
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
            .instrument(span),
        );
        std::future::ready(())
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
    /// When the adapter cannot reach the other replicas (Redis down), this replica's own
    /// sockets still get the event.
    async fn emit(&self, audience: Audience, event: &str, payload: &Value) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        let (rooms, except) = (audience.rooms, audience.except);
        let result = ns.clone().to(rooms.clone()).except(except.clone()).emit(event, payload).await;
        if let Err(err) = result {
            metrics::counter!("parley_broadcast_failures_total").increment(1);
            tracing::warn!(error = %err, event, "broadcast to other replicas failed; delivering locally");
            if let Err(err) = ns.local().to(rooms).except(except).emit(event, payload).await {
                tracing::warn!(error = %err, event, "local broadcast failed");
            }
        }
    }

    async fn disconnect(&self, rooms: Vec<String>) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        if let Err(err) = ns.clone().to(rooms.clone()).disconnect().await {
            tracing::warn!(error = %err, "remote disconnect failed; disconnecting locally");
            let _ = ns.local().to(rooms).disconnect().await;
        }
    }

    async fn join(&self, sockets_in: String, room: String) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        if let Err(err) = ns.clone().to(sockets_in.clone()).join(room.clone()).await {
            tracing::warn!(error = ?err, "remote join failed; joining locally");
            let _ = ns.local().to(sockets_in).join(room).await;
        }
    }

    async fn leave(&self, sockets_in: String, room: String) {
        let Some(ns) = self.io.of(CHAT_NAMESPACE) else { return };
        if let Err(err) = ns.clone().to(sockets_in.clone()).leave(room.clone()).await {
            tracing::warn!(error = ?err, "remote leave failed; leaving locally");
            let _ = ns.local().to(sockets_in).leave(room).await;
        }
    }
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

/// Renews this replica's sockets in the shared presence registry, so other replicas keep
/// seeing them (see [`crate::shared_state::Presence`]).
pub async fn renew_connections(realtime: &dyn RealtimeHandle, state: &AppState) {
    let live = realtime.local_sockets();
    if let Err(err) = state.shared.presence.renew(&live).await {
        tracing::warn!(error = %err, sockets = live.len(), "renewing connections failed");
    }
}
