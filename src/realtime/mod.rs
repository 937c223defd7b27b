//! The Socket.IO gateway: namespace `/chat` on the same server as the REST API. Handlers
//! are thin: they parse a payload, call one domain service and answer with the ack
//! envelope. Broadcasts go through [`crate::fanout`].

mod ack;
mod connect;
mod extras;
pub mod first_ping;
mod limits;
mod messages;
mod presence;
mod receipts;
pub mod redis_driver;
mod rooms;
mod typing;

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    body::Bytes,
    extract::OriginalUri,
    http::{HeaderMap, HeaderValue, Request, Uri},
};
use serde_json::Value;
use socketioxide::handler::ConnectHandler;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, SocketRef},
};
use socketioxide_core::adapter::DefinedAdapter;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    app::AppState,
    error::AppError,
    fanout::{Audience, Broadcaster, CHAT_NAMESPACE},
};

pub use connect::Session;

/// Where Engine.IO requests go (socketioxide's default path).
pub const ENGINE_PATH: &str = "/socket.io";

/// Packets the server may have waiting for one socket.
pub const SOCKET_BUFFER: usize = 1024;
/// Bytes tungstenite reads from a websocket at a time (and keeps allocated per socket);
/// engineioxide's default is 4 KiB. Chat packets are far smaller; a larger message takes
/// more reads.
pub const SOCKET_READ_BUFFER: usize = 1024;

/// Events a socket may have waiting; beyond this its events are refused with `RATE_LIMITED`.
pub const EVENT_QUEUE: usize = 256;

/// Registers the `/chat` namespace. Call once, after the state is built.
///
/// socketioxide runs the connect handler in a task of its own after sending the namespace
/// `connect` packet, and every event handler as a task of its own. A client may emit the
/// moment it sees `connect`, and a chat must keep a socket's messages in order. So a connect
/// middleware (which runs before the packet goes out) gives the socket its one event handler
/// (a dispatcher over the [`Gateway`]'s table, shared by every socket) and its
/// [`EventQueue`], held until the connect handler releases it; the handshake authentication
/// is its first job, and events run one at a time, in arrival order, after it.
pub fn register<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, state: AppState) -> A::InitRes {
    let gateway = Arc::new(Gateway::new(state));
    let prepare_gateway = gateway.clone();
    let prepare = move |socket: SocketRef<A>,
                        socketioxide::extract::TryData(auth): socketioxide::extract::TryData<Value>| {
        std::future::ready(connect::prepare(&socket, &prepare_gateway, auth.unwrap_or(Value::Null)))
    };
    let connected = move |socket: SocketRef<A>| {
        connect::connected(&socket, &gateway.state);
        std::future::ready(())
    };
    io.ns(CHAT_NAMESPACE, connected.with(prepare))
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One socket's events, run in arrival order, one at a time, once [`Self::start`] was called.
/// An idle socket holds no task: one is spawned when a job arrives and ends when the queue
/// is empty again.
#[derive(Clone, Default)]
pub struct EventQueue(Arc<Mutex<QueueState>>);

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    started: bool,
    /// A task is draining `jobs`.
    running: bool,
    /// The socket's event rate limit (see [`limits::EventBudget`]).
    budget: limits::EventBudget,
}

impl EventQueue {
    /// Lets the queued jobs run (the namespace `connect` packet is out).
    pub fn start(&self) {
        let mut queue = crate::sync::lock(&self.0);
        queue.started = true;
        self.run_if_idle(&mut queue);
    }

    /// Queues `job`; `false` when the socket already has [`EVENT_QUEUE`] events waiting.
    pub fn push(&self, job: impl Future<Output = ()> + Send + 'static) -> bool {
        let mut queue = crate::sync::lock(&self.0);
        if queue.jobs.len() >= EVENT_QUEUE {
            return false;
        }
        queue.jobs.push_back(Box::pin(job));
        self.run_if_idle(&mut queue);
        true
    }

    fn take_budget(&self, rate: limits::EventRate) -> limits::Verdict {
        crate::sync::lock(&self.0).budget.take(rate)
    }

    fn is_full(&self) -> bool {
        crate::sync::lock(&self.0).jobs.len() >= EVENT_QUEUE
    }

    fn run_if_idle(&self, queue: &mut QueueState) {
        if !queue.started || queue.running || queue.jobs.is_empty() {
            return;
        }
        // No runtime: it is shutting down, and the jobs go with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            queue.running = true;
            runtime.spawn(self.clone().drain());
        }
    }

    async fn drain(self) {
        /// Ends the run however the task ends (a panicking job included): a job queued
        /// meanwhile gets a new task.
        struct Running(EventQueue);
        impl Drop for Running {
            fn drop(&mut self) {
                let mut queue = crate::sync::lock(&(self.0).0);
                queue.running = false;
                self.0.run_if_idle(&mut queue);
            }
        }
        let _running = Running(self.clone());
        loop {
            let job = {
                let mut queue = crate::sync::lock(&self.0);
                match queue.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        if queue.jobs.capacity() > 8 {
                            queue.jobs.shrink_to_fit();
                        }
                        return;
                    }
                }
            };
            job.await;
        }
    }
}

type Reply = Pin<Box<dyn Future<Output = Result<Value, AppError>> + Send>>;
type Handler<A> = Arc<dyn Fn(Ctx<A>, Value) -> Reply + Send + Sync>;

/// The `/chat` event handlers of every socket, registered once (see [`Gateway`]).
pub struct Events<A: Adapter> {
    handlers: HashMap<&'static str, Handler<A>>,
}

impl<A: Adapter> Events<A> {
    /// Registers `event` for authenticated sockets: the payload (any JSON, `null` when
    /// absent) goes to `handler`, whose result is the ack. Unauthenticated or expired
    /// sessions get an `AUTH_FAILED` ack and the handler is not called.
    pub fn on<F, Fut>(&mut self, event: &'static str, handler: F)
    where
        F: Fn(Ctx<A>, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, AppError>> + Send + 'static,
    {
        self.handlers.insert(event, Arc::new(move |ctx, payload| Box::pin(handler(ctx, payload))));
    }
}

/// What every socket of `/chat` shares: the application and the event table. A socket's only
/// handler is a dispatcher holding this (and its queue), so a socket costs a few words here
/// instead of a handler (and a copy of the state) per event name.
pub struct Gateway<A: Adapter> {
    pub state: AppState,
    events: Events<A>,
    /// `/chat` connections per client address on this replica (`MAX_CONNECTIONS_PER_IP`).
    connections: Arc<limits::ConnectionCounts>,
    /// `SOCKET_EVENTS_PER_SEC` / `SOCKET_EVENTS_BURST`.
    rate: limits::EventRate,
}

impl<A: Adapter> Gateway<A> {
    fn new(state: AppState) -> Self {
        let mut events = Events { handlers: HashMap::new() };
        messages::register(&mut events);
        rooms::register(&mut events);
        presence::register(&mut events);
        receipts::register(&mut events);
        typing::register(&mut events);
        extras::register(&mut events);
        let config = &state.config;
        let connections = limits::ConnectionCounts::new(config.max_connections_per_ip);
        let rate = limits::EventRate::new(config.socket_events_per_sec, config.socket_events_burst);
        Self { state, events, connections, rate }
    }

    /// One client event: over the socket's rate refused (a flood disconnects), else `auth`, a
    /// registered event (queued), or an unknown one (refused).
    fn dispatch(
        &self,
        socket: SocketRef<A>,
        event: String,
        payload: Option<Value>,
        ack: AckSender<A>,
        queue: &EventQueue,
    ) {
        match queue.take_budget(self.rate) {
            limits::Verdict::Run => {}
            limits::Verdict::Refused(retry_after) => {
                metrics::counter!("parley_rate_limited_total", "scope" => "socket_event_rate").increment(1);
                let _ = ack.send(&ack::error(&AppError::RateLimited { retry_after }));
                return;
            }
            limits::Verdict::Flood => {
                metrics::counter!("parley_rate_limited_total", "scope" => "socket_flood").increment(1);
                tracing::warn!(sid = %socket.id, "socket floods events; disconnecting it");
                let _ = ack.send(&ack::error(&AppError::RateLimited { retry_after: Duration::from_secs(1) }));
                let _ = socket.disconnect();
                return;
            }
            limits::Verdict::Dropped => return,
        }
        if event == "auth" {
            return connect::auth_event(socket, &self.state, payload, ack, queue);
        }
        let Some((&event, handler)) = self.events.handlers.get_key_value(event.as_str()) else {
            let refusal =
                AppError::validation(format!("unknown event `{}`", event.chars().take(64).collect::<String>()));
            let _ = ack.send(&ack::error(&refusal));
            return;
        };
        if queue.is_full() {
            metrics::counter!("parley_rate_limited_total", "scope" => "socket_events").increment(1);
            let _ = ack.send(&ack::error(&AppError::RateLimited { retry_after: Duration::from_secs(1) }));
            return;
        }
        let (state, handler) = (self.state.clone(), handler.clone());
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

/// hyper parses the request line and the headers of a request as slices of its connection
/// read buffer (8 KiB or more), and engineioxide keeps the handshake request's parts for the
/// socket's lifetime: left alone, every socket pins that whole buffer. This copies the URI
/// and the header values of Socket.IO requests into one buffer of their own size.
pub fn detach_handshake<B>(req: Request<B>) -> Request<B> {
    if !req.uri().path().starts_with(ENGINE_PATH) {
        return req;
    }
    let (mut parts, body) = req.into_parts();
    let uri = parts.uri.to_string();
    let size = uri.len() + parts.headers.values().map(|v| v.len()).sum::<usize>();
    let mut buf = Vec::with_capacity(size);
    buf.extend_from_slice(uri.as_bytes());
    for value in parts.headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    let buf = Bytes::from(buf);
    if let Ok(copy) = Uri::from_maybe_shared(buf.slice(..uri.len())) {
        // The router's copy (`OriginalUri`) shares the same bytes.
        if let Some(OriginalUri(original)) = parts.extensions.get_mut::<OriginalUri>() {
            if *original == copy {
                *original = copy.clone();
            } else if let Ok(own) = original.to_string().parse() {
                *original = own;
            }
        }
        parts.uri = copy;
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    let mut at = uri.len();
    for (name, value) in &parts.headers {
        let end = at + value.len();
        let copy = match HeaderValue::from_maybe_shared(buf.slice(at..end)) {
            Ok(mut copy) => {
                copy.set_sensitive(value.is_sensitive());
                copy
            }
            Err(_) => value.clone(),
        };
        headers.append(name.clone(), copy);
        at = end;
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
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
