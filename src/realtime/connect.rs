//! Connecting: the token (handshake `auth.token`, `?token=`, or `Authorization: Bearer`),
//! the late `auth` event within 10 s, token swaps on a live socket, the missed-message
//! replay, and disconnects.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Event, SocketRef},
    socket::DisconnectReason,
};
use uuid::Uuid;

use super::{
    ack::{self, render},
    dispatch::{Gateway, Link, Payload},
    queue::EventQueue,
    session::Session,
    typing,
};
use crate::domain::payloads::{AuthRequest, FromPayload};
use crate::{
    domain::delivery::{CLEAN_CLOSE_MARGIN, SILENT_LOSS_MARGIN},
    error::{AppError, AppResult},
    fanout::{
        ServerEvent,
        events::{AuthError, AuthSuccess, MessageEvent, PresenceBulk, SyncComplete},
        socketio::{self, Replies},
    },
    shared_state::PresenceStatus,
    state::AppState,
    transport,
    transport::limits::{ConnectionSlot, EngineSlot, TooManyConnections},
};

/// Why a namespace connect is refused: the `connect_error` packet's `message` (socketioxide
/// sends only `{message}`, so the code leads the text).
#[derive(Debug)]
pub enum ConnectRefusal {
    TooMany(TooManyConnections),
    /// The user (of the handshake token) or the address flooded: this long is left.
    CoolingDown(Duration),
}

impl fmt::Display for ConnectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany(refusal) => refusal.fmt(f),
            Self::CoolingDown(left) => write!(
                f,
                "RATE_LIMITED: this user or address flooded the server; connect again in {} s",
                left.as_secs_f64().ceil()
            ),
        }
    }
}

/// Before the `connect` packet (a middleware, see [`super::register`]): the flood cool-down
/// of the address and the handshake token's user (running: the namespace connect is
/// refused), the place in the client address's connection count (none left: refused), the
/// socket's room, its event dispatcher, its queue, and the handshake authentication as the
/// queue's first job.
pub async fn prepare<A: Adapter>(
    socket: SocketRef<A>,
    gateway: Arc<Gateway<A>>,
    auth: Value,
) -> Result<(), ConnectRefusal> {
    let socket = &socket;
    let services = &gateway.state.services;
    let ip = transport::client_ip(socket.req_parts(), gateway.state.config.trust_proxy);
    let token = handshake_token(socket, &auth);
    let user = token.as_deref().and_then(|token| services.auth.token_user(token));
    if let Err(AppError::RateLimited { retry_after }) = services.floods.check(user, ip).await {
        tracing::info!(?ip, ?user, "connection refused: cooling down after a flood");
        return Err(ConnectRefusal::CoolingDown(retry_after));
    }
    // The place the Engine.IO connection kept from an earlier `/chat` socket, or a new one.
    let engine = socket.req_parts().extensions.get::<EngineSlot>();
    match engine.and_then(EngineSlot::take).map_or_else(|| gateway.connections.acquire(ip), |slot| Ok(Some(slot))) {
        // Given back on disconnect, or with the socket if it never connects.
        Ok(Some(slot)) => {
            socket.extensions.insert(slot);
        }
        Ok(None) => {}
        Err(refusal) => {
            metrics::counter!("parley_rate_limited_total", "scope" => "connections_per_ip").increment(1);
            tracing::info!(?ip, limit = refusal.limit, "connection refused: too many from this address");
            return Err(ConnectRefusal::TooMany(refusal));
        }
    }
    socketio::enter_own_room(socket);
    if gateway.state.config.legacy_events {
        // Without legacy twins there is nothing to choose (and no room to hold).
        socketio::choose_dialect(socket, wants_legacy(socket, &auth));
    }
    let queue = EventQueue::default();
    // Taken back by `connected`, which starts it.
    socket.extensions.insert(Prepared { queue: queue.clone(), token_given: token.is_some() });
    socket.on_fallback({
        let (gateway, queue) = (gateway.clone(), queue.clone());
        move |socket: SocketRef<A>, Event(event): Event, payload: Payload, ack: AckSender<A>| {
            gateway.dispatch(socket, event, payload, ack, &queue);
            std::future::ready(())
        }
    });
    socket.on_disconnect({
        let gateway = gateway.clone();
        move |socket: SocketRef<A>, reason: DisconnectReason| {
            // At once, before anything is awaited: the address may connect again. Unless
            // only the namespace closed: the Engine.IO connection keeps the place.
            let slot = socket.extensions.remove::<Arc<ConnectionSlot>>();
            let engine_stays =
                matches!(reason, DisconnectReason::ClientNSDisconnect | DisconnectReason::ServerNSDisconnect);
            if let (Some(slot), Some(engine), true) =
                (slot, socket.req_parts().extensions.get::<EngineSlot>(), engine_stays)
            {
                engine.keep(slot);
            }
            // At once too: messages emitted from now on must not count as delivered to it.
            let vouched = socket.extensions.remove::<Vouched>().is_some();
            if let (true, Some(session)) = (vouched, socket.extensions.get::<Session>()) {
                gateway.state.platform.local.removed(session.user_id);
            }
            if let Some(observer) = gateway.state.platform.observer.get() {
                observer.disconnected(&socket.id.to_string(), transport::disconnect_reason(&reason));
            }
            let state = gateway.state.clone();
            async move { on_disconnect(socket, state, reason, vouched).await }
        }
    });
    if let Some(token) = token {
        let (socket, state, replies) = (socket.clone(), gateway.state.clone(), gateway.replies.clone());
        queue.push(async move {
            if let Err(err) = authenticate(&socket, &state, &replies, &token).await {
                refuse(&socket, &replies, &err);
            }
        });
    }
    Ok(())
}

/// What `prepare` leaves for `connected`: the socket's queue, and whether the handshake
/// brought a token (its authentication is the queue's first job).
#[derive(Clone)]
struct Prepared {
    queue: EventQueue,
    token_given: bool,
}

/// After the `connect` packet: start the queue; without a token, start the clock for `auth`
/// (a handshake token is the queue's first job: accepted, or the socket is refused).
/// The clock holds the socket's id, not the socket: a socket that goes meanwhile is freed
/// (with its Engine.IO connection and the place it holds, [`EngineSlot`]) at once.
pub fn connected<A: Adapter>(socket: &SocketRef<A>, io: SocketIo<A>, gateway: &Gateway<A>) {
    if let Some(observer) = gateway.state.platform.observer.get() {
        observer.connected();
    }
    let token_given = socket.extensions.remove::<Prepared>().is_some_and(|prepared| {
        prepared.queue.start();
        prepared.token_given
    });
    if token_given {
        return;
    }
    let (sid, timeout, replies) = (socket.id, gateway.state.config.auth_timeout, gateway.replies.clone());
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let Some(socket) = io.of(socketio::CHAT_NAMESPACE).and_then(|chat| chat.get_socket(sid)) else { return };
        if socket.connected() && socket.extensions.get::<Session>().is_none() {
            refuse(&socket, &replies, &AppError::AuthFailed("no token in time after connecting"));
        }
    });
}

/// The `auth` event (see [`super::dispatch::AuthHandler`]): its ack, and a socket that is still not
/// authenticated after it is refused.
pub fn auth_event<A: Adapter>(
    link: Link<A>,
    payload: Option<Value>,
    ack: AckSender<A>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let Link { socket, state, replies } = link;
        let result = match AuthRequest::from_payload(&payload.unwrap_or(Value::Null)) {
            Ok(request) => on_auth(&socket, &state, &replies, request).await,
            Err(refusal) => Err(refusal),
        };
        let refused = result.as_ref().err().map(|err| (err.code(), err.to_string()));
        let _ = ack.send(&ack::envelope(result.and_then(render)));
        if let Some((code, message)) = refused
            && socket.extensions.get::<Session>().is_none()
        {
            send_refusal(&socket, &replies, code, message);
        }
    })
}

/// Legacy twins asked for in the handshake: `auth.legacy: true` or `?legacy=1`.
fn wants_legacy<A: Adapter>(socket: &SocketRef<A>, auth: &Value) -> bool {
    if auth.get("legacy").and_then(Value::as_bool) == Some(true) {
        return true;
    }
    let query = socket.req_parts().uri.query().unwrap_or_default();
    query.split('&').any(|pair| pair == "legacy=1" || pair == "legacy=true")
}

/// The first token found: handshake auth payload, query string, then Authorization header.
fn handshake_token<A: Adapter>(socket: &SocketRef<A>, auth: &Value) -> Option<String> {
    if let Some(token) = auth.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        return Some(token.to_owned());
    }
    let parts = socket.req_parts();
    transport::query_token(parts).or_else(|| transport::bearer_token(&parts.headers)).map(str::to_owned)
}

/// `auth {token}`: authenticates a waiting socket, or swaps in a refreshed token for the
/// same user on a live one.
async fn on_auth<A: Adapter>(
    socket: &SocketRef<A>,
    state: &AppState,
    replies: &Replies,
    request: AuthRequest,
) -> AppResult<AuthSuccess> {
    let Some(current) = socket.extensions.get::<Session>() else {
        // A user cooling down after a flood is refused here too (the handshake had no token).
        if let Some(user) = state.services.auth.token_user(&request.token) {
            state.services.floods.check(Some(user), None).await?;
        }
        return authenticate(socket, state, replies, &request.token).await;
    };
    let claims = state.services.auth.authenticate(&request.token).await?;
    if claims.sub != current.user_id {
        return Err(AppError::AuthFailed("this token belongs to another user"));
    }
    let session = Session::from(&claims);
    if session.session_id != current.session_id {
        socketio::change_session(socket, current.session_id, session.session_id);
    }
    socket.extensions.insert(session);
    Ok(AuthSuccess { user_id: claims.sub })
}

/// Verifies `token`, binds the socket to its user and session, says `auth:success`, then
/// replays what the user missed.
async fn authenticate<A: Adapter>(
    socket: &SocketRef<A>,
    state: &AppState,
    replies: &Replies,
    token: &str,
) -> AppResult<AuthSuccess> {
    let claims = state.services.auth.authenticate(token).await?;
    let session = Session::from(&claims);
    socket.extensions.insert(session.clone());
    socketio::enter_rooms(socket, session.user_id, session.session_id);
    metrics::gauge!("parley_sockets_connected").increment(1.0);
    let services = &state.services;
    services.presence.touch(session.user_id, &socket.id.to_string(), PresenceStatus::Online).await;
    replies.send(socket, &ServerEvent::AuthSuccess(AuthSuccess { user_id: session.user_id }));
    match services.presence.visible_contacts(session.user_id).await {
        Ok(users) => replies.send(socket, &ServerEvent::PresenceBulk(PresenceBulk { users: &users })),
        Err(err) => tracing::warn!(error = %err, "presence:bulk not sent"),
    }
    replay(socket, state, replies, session.user_id).await;
    Ok(AuthSuccess { user_id: session.user_id })
}

/// Marks a socket whose replay is done: from now on this replica vouches for what it emits
/// to it (its user's delivered watermark moves with the messages sent here, and with its
/// clean end). Not before: a message emitted while the replay was read would have moved the
/// watermark past everything the replay had yet to send.
#[derive(Clone, Copy)]
struct Vouched;

fn vouch_for<A: Adapter>(socket: &SocketRef<A>, state: &AppState, user: Uuid) {
    state.platform.local.added(user);
    socket.extensions.insert(Vouched);
    // Gone meanwhile: its disconnect handler ran before the mark, so it is taken back here
    // (whichever of the two removes the mark gives the count back, once).
    if !socket.connected() && socket.extensions.remove::<Vouched>().is_some() {
        state.platform.local.removed(user);
    }
}

/// Missed messages as `message:received`, oldest first, then (the socket vouched for, see
/// [`Vouched`]) `sync:complete`.
async fn replay<A: Adapter>(socket: &SocketRef<A>, state: &AppState, replies: &Replies, user: Uuid) {
    let messages = &state.services.messages;
    let batches = match messages.replay(user).await {
        Ok(batches) => batches,
        Err(err) => {
            tracing::error!(error = %err, "replay failed");
            let failed = SyncComplete { messages: 0, conversations: 0, truncated: Vec::new(), error: Some("INTERNAL") };
            replies.send(socket, &ServerEvent::SyncComplete(failed));
            return;
        }
    };
    let (mut count, mut truncated) = (0, Vec::new());
    for batch in &batches {
        for message in &batch.messages {
            if !replies.send_in_order(socket, &ServerEvent::MessageReceived(MessageEvent { message })).await {
                return;
            }
        }
        count += batch.messages.len();
        if batch.truncated {
            truncated.push(batch.conversation_id);
        }
        if let Err(err) = messages.mark_replayed(user, batch).await {
            tracing::warn!(error = %err, "watermark not advanced after replay");
        }
    }
    // Vouched for before `sync:complete`: a client that sends (or is sent) something once it
    // heard it must find this socket counted.
    vouch_for(socket, state, user);
    let summary = SyncComplete { messages: count, conversations: batches.len(), truncated, error: None };
    replies.send(socket, &ServerEvent::SyncComplete(summary));
}

/// `auth:error` then disconnect. Every authentication failure is `AUTH_FAILED` here (the
/// SPEC's connect contract); `TOKEN_REVOKED` is for sockets signed out while connected.
fn refuse<A: Adapter>(socket: &SocketRef<A>, replies: &Replies, err: &AppError) {
    send_refusal(socket, replies, "AUTH_FAILED", err.to_string());
}

/// `code`: `AUTH_FAILED`, or `RATE_LIMITED` for a user cooling down after a flood.
fn send_refusal<A: Adapter>(socket: &SocketRef<A>, replies: &Replies, code: &'static str, message: String) {
    let code = if code == "RATE_LIMITED" { code } else { "AUTH_FAILED" };
    replies.send(socket, &ServerEvent::AuthError(AuthError { error: message, code }));
    let _ = socket.clone().disconnect();
}

async fn on_disconnect<A: Adapter>(socket: SocketRef<A>, state: AppState, reason: DisconnectReason, vouched: bool) {
    let Some(session) = socket.extensions.get::<Session>() else { return };
    tracing::debug!(sid = %socket.id, user = %session.user_id, ?reason, "socket disconnected");
    metrics::gauge!("parley_sockets_connected").decrement(1.0);
    let services = &state.services;
    for conversation in typing::typed_in(&socket) {
        services.typing.end(session.user_id, conversation).await;
    }
    // What this socket was sent before it went: everything, for a clean close (less what may
    // have been in flight); for a silent death, only what is older than it could have been
    // dead, and what was marked delivered as it was emitted since then is taken back. A
    // socket this replica did not vouch for (its replay never finished) settles nothing.
    // Before the presence: whoever hears the user go offline can count on it.
    let clean = matches!(
        reason,
        DisconnectReason::ClientNSDisconnect
            | DisconnectReason::TransportClose
            | DisconnectReason::ServerNSDisconnect
            | DisconnectReason::ClosingServer
    );
    match (vouched, clean) {
        (false, _) => {}
        (true, true) => services.messages.settle_delivery(&[session.user_id], CLEAN_CLOSE_MARGIN).await,
        (true, false) => {
            services.messages.unsettle_delivery(session.user_id, SILENT_LOSS_MARGIN).await;
            services.messages.settle_delivery(&[session.user_id], SILENT_LOSS_MARGIN).await;
        }
    }
    let signed_out = matches!(reason, DisconnectReason::ServerNSDisconnect);
    services.presence.socket_gone(session.user_id, &socket.id.to_string(), signed_out).await;
}
