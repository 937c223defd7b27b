//! The event table and the dispatcher every `/chat` socket shares. A handler is a typed
//! function `async fn(Ctx, Input) -> AppResult<Output>`: the dispatcher checks the socket's
//! rate budget and session, parses the payload into `Input` ([`FromPayload`]), queues the
//! call behind the socket's earlier events, and renders the result as the ack. No handler
//! touches raw JSON or builds an ack.

use std::{collections::HashMap, convert::Infallible, future::Future, pin::Pin, sync::Arc, time::Duration};

use serde::Serialize;
use serde_json::Value;
use socketioxide::{
    adapter::Adapter,
    extract::{AckSender, SocketRef, TryData},
    handler::FromMessageParts,
    socket::Socket,
};
use tracing::Instrument;
use uuid::Uuid;

use super::{
    ack::{self, render},
    queue::EventQueue,
    session::{Refusal, Session, current_session},
};
use crate::domain::{json_text, messages::SendOrder, payloads::FromPayload};
use crate::{
    error::{AppError, AppResult},
    fanout::{ServerEvent, events::AuthError, socketio::Replies},
    state::AppState,
    transport::limits,
};

type Reply = Pin<Box<dyn Future<Output = AppResult<Value>> + Send>>;
type Handler<A> = Arc<dyn Fn(Ctx<A>, &Value) -> Reply + Send + Sync>;
/// The handler of `auth`, which runs before there is a session and answers its own ack.
pub type AuthHandler<A> = fn(Link<A>, Option<Value>, AckSender<A>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// The `/chat` event handlers of every socket, registered once (see [`Gateway`]).
pub struct Events<A: Adapter> {
    handlers: HashMap<&'static str, Entry<A>>,
    auth: AuthHandler<A>,
}

struct Entry<A: Adapter> {
    handler: Handler<A>,
    /// Runs pipelined (see [`EventQueue::pipeline`]): the handler gets a [`SendOrder`].
    pipelined: bool,
}

impl<A: Adapter> Events<A> {
    /// A table with only the `auth` event.
    pub fn new(auth: AuthHandler<A>) -> Self {
        Self { handlers: HashMap::new(), auth }
    }

    /// Registers `event` for authenticated sockets. The payload is parsed into `I` first (a
    /// payload that does not parse is refused, and `handler` is not called); the handler's
    /// result is the ack.
    pub fn on<I, O, F, Fut>(&mut self, event: &'static str, handler: F)
    where
        I: FromPayload,
        O: Serialize,
        F: Fn(Ctx<A>, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AppResult<O>> + Send + 'static,
    {
        self.register(event, handler, false);
    }

    /// [`Self::on`] for an event whose handler lets the socket go on before it is done: it
    /// tells `ctx.order` when it may (see [`SendOrder`]).
    pub fn pipelined<I, O, F, Fut>(&mut self, event: &'static str, handler: F)
    where
        I: FromPayload,
        O: Serialize,
        F: Fn(Ctx<A>, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AppResult<O>> + Send + 'static,
    {
        self.register(event, handler, true);
    }

    fn register<I, O, F, Fut>(&mut self, event: &'static str, handler: F, pipelined: bool)
    where
        I: FromPayload,
        O: Serialize,
        F: Fn(Ctx<A>, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AppResult<O>> + Send + 'static,
    {
        let erased = move |ctx: Ctx<A>, payload: &Value| -> Reply {
            match I::from_payload(payload) {
                Ok(input) => {
                    let reply = handler(ctx, input);
                    Box::pin(async move { render(reply.await?) })
                }
                Err(refusal) => Box::pin(std::future::ready(Err(refusal))),
            }
        };
        self.handlers.insert(event, Entry { handler: Arc::new(erased), pipelined });
    }
}

/// What every socket of `/chat` shares: the application and the event table. A socket's only
/// handler is a dispatcher holding this (and its queue), so a socket costs a few words here
/// instead of a handler (and a copy of the state) per event name.
pub struct Gateway<A: Adapter> {
    pub state: AppState,
    pub replies: Replies,
    events: Events<A>,
    /// `/chat` connections per client address on this replica (`MAX_CONNECTIONS_PER_IP`).
    pub connections: Arc<limits::ConnectionCounts>,
    /// `SOCKET_EVENTS_PER_SEC` / `SOCKET_EVENTS_BURST`.
    rate: limits::EventRate,
}

impl<A: Adapter> Gateway<A> {
    pub fn new(state: AppState, events: Events<A>) -> Self {
        let config = &state.config;
        let connections = limits::ConnectionCounts::new(config.max_connections_per_ip);
        let rate = limits::EventRate::new(config.socket_events_per_sec, config.socket_events_burst);
        let replies = Replies::new(config.legacy_events, state.platform.observer.clone());
        Self { state, replies, events, connections, rate }
    }

    /// One client event: over the socket's rate refused (a flood disconnects), else `auth`, a
    /// registered event (queued), or an unknown one (refused).
    pub fn dispatch(
        &self,
        socket: SocketRef<A>,
        event: String,
        Payload(payload): Payload,
        ack: AckSender<A>,
        queue: &EventQueue,
    ) {
        let Some(ack) = self.within_budget(&socket, ack, queue) else { return };
        let payload = match payload {
            Ok(payload) => payload,
            // A bad `auth` payload is `AUTH_FAILED`, whatever is wrong with it (protocol §5).
            Err(_) if event == "auth" => None,
            Err(refusal) => {
                let _ = ack.send(&ack::error(&refusal));
                return;
            }
        };
        if let Some(observer) = self.state.platform.observer.get().filter(|o| o.watches_events()) {
            observer.event_received(&socket.id.to_string(), &event, payload.as_ref());
        }
        if crate::fanout::legacy::is_legacy_client_event(&event) {
            crate::fanout::socketio::speak_legacy(&socket);
        }
        if event == "auth" {
            // Queued behind the socket's earlier events, like every event.
            if !queue.push((self.events.auth)(self.link(socket), payload, ack)) {
                tracing::debug!("auth event dropped: the socket's queue is full");
            }
            return;
        }
        let Some((&event, entry)) = self.events.handlers.get_key_value(event.as_str()) else {
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
        let span = tracing::info_span!("socket_event", event, sid = %socket.id);
        if !entry.pipelined {
            queue.push(self.run(entry.handler.clone(), socket, payload, ack, SendOrder::default()).instrument(span));
            return;
        }
        let (order, released, mut in_flight) = queue.pipeline();
        let run = self.run(entry.handler.clone(), socket, payload, ack, order).instrument(span);
        queue.push(async move {
            in_flight.start();
            tokio::spawn(async move {
                run.await;
                in_flight.finish().await;
            });
            // Err: the handler ended before its message was queued (refused early).
            let _ = released.await;
        });
    }

    /// The socket's event budget: the ack back when the event may run; `None` when it was
    /// refused (and answered), or the socket floods and is disconnected.
    fn within_budget(&self, socket: &SocketRef<A>, ack: AckSender<A>, queue: &EventQueue) -> Option<AckSender<A>> {
        let refusal = match queue.take_budget(self.rate) {
            limits::Verdict::Run => return Some(ack),
            limits::Verdict::Dropped => return None,
            limits::Verdict::Refused(retry_after) => {
                metrics::counter!("parley_rate_limited_total", "scope" => "socket_event_rate").increment(1);
                AppError::RateLimited { retry_after }
            }
            limits::Verdict::Flood => {
                metrics::counter!("parley_rate_limited_total", "scope" => "socket_flood").increment(1);
                tracing::warn!(sid = %socket.id, "socket floods events; disconnecting it");
                let cooldown = self.state.config.flood_cooldown.max(Duration::from_secs(1));
                let _ = ack.send(&ack::error(&AppError::RateLimited { retry_after: cooldown }));
                tokio::spawn(disconnect_flooder(socket.clone(), self.state.clone()));
                return None;
            }
        };
        let _ = ack.send(&ack::error(&refusal));
        None
    }

    /// One queued event: the session check, the handler, the ack.
    fn run(
        &self,
        handler: Handler<A>,
        socket: SocketRef<A>,
        payload: Option<Value>,
        ack: AckSender<A>,
        order: SendOrder,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (state, replies) = (self.state.clone(), self.replies.clone());
        async move {
            let result = match current_session(&socket, &state) {
                Ok(session) => {
                    let ctx = Ctx { socket, state, session, replies, order };
                    handler(ctx, &payload.unwrap_or(Value::Null)).await
                }
                Err(refusal) => {
                    if let Refusal::Expired(session) = &refusal {
                        announce_expiry(&socket, &replies, session);
                    }
                    Err(refusal.into())
                }
            };
            if let Err(err) = &result {
                tracing::debug!(code = err.code(), "event refused");
            }
            let _ = ack.send(&ack::envelope(result));
        }
    }
}

/// A client event's payload as the dispatcher takes it: what `TryData<Value>` gives (nothing
/// when there is none or it is not JSON: each event's parser then says what it expected),
/// except that text with half a surrogate pair is refused naming the field
/// ([`json_text::lone_surrogate`]), as REST and the raw gateway refuse it.
pub struct Payload(pub Result<Option<Value>, AppError>);

impl<A: Adapter> FromMessageParts<A> for Payload {
    type Error = Infallible;

    fn from_message_parts(
        socket: &Arc<Socket<A>>,
        data: &mut socketioxide::handler::Value,
        ack: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let Ok(TryData(parsed)) = TryData::<Value>::from_message_parts(socket, data, ack);
        let refusal = || {
            // The packet is `["event", payload]`: the way into the payload starts at index 1.
            let path = json_text::lone_surrogate(data.as_str()?)?;
            Some(json_text::lone_surrogate_error(path.get(1..).unwrap_or_default()))
        };
        Ok(Self(match parsed {
            Ok(payload) => Ok(Some(payload)),
            Err(_) => refusal().map_or(Ok(None), Err),
        }))
    }
}

/// The end of a flooding socket: its user and address start their cool-down (checked when
/// they connect again, on any replica), then the namespace `disconnect` packet goes out.
/// socketioxide refuses the packet while the socket's outgoing queue is full (a flooder
/// that does not read its acks): it is tried again until it fits or the socket is gone.
async fn disconnect_flooder<A: Adapter>(socket: SocketRef<A>, state: AppState) {
    let user = socket.extensions.get::<Session>().map(|session| session.user_id);
    let ip = crate::transport::client_ip(socket.req_parts(), state.config.trust_proxy);
    state.services.floods.penalize(user, ip).await;
    let mut wait = Duration::from_millis(10);
    while socket.connected() {
        match socket.clone().disconnect() {
            Err(socketioxide::SocketError::InternalChannelFull) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            _ => return,
        }
    }
}

/// The expiry of the token that `auth:error TOKEN_EXPIRED` was sent for.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ExpiryAnnounced(i64);

/// Tells the socket once per token that it expired: `auth:error {code: "TOKEN_EXPIRED"}`,
/// the event the documented client code answers with a refresh and `auth` (each refused
/// event's ack also says `AUTH_FAILED`).
fn announce_expiry<A: Adapter>(socket: &SocketRef<A>, replies: &Replies, session: &Session) {
    if socket.extensions.get::<ExpiryAnnounced>() == Some(ExpiryAnnounced(session.expires_at)) {
        return;
    }
    socket.extensions.insert(ExpiryAnnounced(session.expires_at));
    let error = "access token expired; refresh it and send `auth` with the new one".to_owned();
    replies.send(socket, &ServerEvent::AuthError(AuthError { error, code: "TOKEN_EXPIRED" }));
}

impl<A: Adapter> Gateway<A> {
    /// What code outside the dispatcher needs to serve `socket`.
    pub fn link(&self, socket: SocketRef<A>) -> Link<A> {
        Link { socket, state: self.state.clone(), replies: self.replies.clone() }
    }
}

/// A socket with the application and its replies: what serves a socket before it has a
/// session (connecting, `auth`).
pub struct Link<A: Adapter> {
    pub socket: SocketRef<A>,
    pub state: AppState,
    pub replies: Replies,
}

/// What a handler gets: the socket, the application, and the authenticated session.
pub struct Ctx<A: Adapter> {
    pub socket: SocketRef<A>,
    pub state: AppState,
    pub session: Session,
    replies: Replies,
    /// Where a pipelined event's handler says the socket may go on (a no-op for the others).
    pub order: SendOrder,
}

impl<A: Adapter> Ctx<A> {
    pub fn user(&self) -> Uuid {
        self.session.user_id
    }

    /// This socket's id, as broadcasts know it (to skip it).
    pub fn connection(&self) -> String {
        self.socket.id.to_string()
    }

    /// Sends `event` to this socket only.
    pub fn reply(&self, event: &ServerEvent<'_>) {
        self.replies.send(&self.socket, event);
    }
}
