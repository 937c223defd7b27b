//! Connecting: the token (handshake `auth.token`, `?token=`, or `Authorization: Bearer`),
//! the late `auth` event within 10 s, token swaps on a live socket, the missed-message
//! replay, and disconnects.

use std::sync::Arc;

use serde_json::{Value, json};
use socketioxide::{
    SendError, SocketError,
    adapter::Adapter,
    extract::{AckSender, Event, SocketRef, TryData},
    socket::DisconnectReason,
};
use uuid::Uuid;

use super::{
    EventQueue, Gateway, ack,
    limits::{ConnectionSlot, TooManyConnections},
    typing,
};
use crate::{
    app::AppState,
    domain::delivery::{CLEAN_CLOSE_MARGIN, SILENT_LOSS_MARGIN},
    domain::{tokens::AccessClaims, views::Message},
    error::AppError,
    fanout::{events, session_room, socket_room, user_room},
    shared_state::PresenceStatus,
};

/// The authenticated identity of a socket, kept in its extensions.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub expires_at: i64,
}

impl From<&AccessClaims> for Session {
    fn from(claims: &AccessClaims) -> Self {
        Self { user_id: claims.sub, session_id: claims.sid, expires_at: claims.exp }
    }
}

/// Before the `connect` packet (a middleware, see [`super::register`]): the place in the
/// client address's connection count (none left: the namespace connect is refused), the
/// socket's room, its event dispatcher, its queue, and the handshake authentication as the
/// queue's first job.
pub fn prepare<A: Adapter>(
    socket: &SocketRef<A>,
    gateway: &Arc<Gateway<A>>,
    auth: Value,
) -> Result<(), TooManyConnections> {
    let ip = crate::http::extract::client_ip(socket.req_parts(), gateway.state.config.trust_proxy);
    match gateway.connections.acquire(ip) {
        // Given back on disconnect, or with the socket if it never connects.
        Ok(Some(slot)) => {
            socket.extensions.insert(slot);
        }
        Ok(None) => {}
        Err(refusal) => {
            metrics::counter!("parley_rate_limited_total", "scope" => "connections_per_ip").increment(1);
            tracing::info!(?ip, limit = refusal.limit, "connection refused: too many from this address");
            return Err(refusal);
        }
    }
    socket.join(socket_room(&socket.id.to_string()));
    let queue = EventQueue::default();
    // Taken back by `connected`, which starts it.
    socket.extensions.insert(queue.clone());
    socket.on_fallback({
        let (gateway, queue) = (gateway.clone(), queue.clone());
        move |socket: SocketRef<A>, Event(event): Event, TryData(payload): TryData<Value>, ack: AckSender<A>| {
            gateway.dispatch(socket, event, payload.ok(), ack, &queue);
            std::future::ready(())
        }
    });
    socket.on_disconnect({
        let gateway = gateway.clone();
        move |socket: SocketRef<A>, reason: DisconnectReason| {
            // At once, before anything is awaited: the address may connect again.
            socket.extensions.remove::<Arc<ConnectionSlot>>();
            let state = gateway.state.clone();
            async move { on_disconnect(socket, state, reason).await }
        }
    });
    if let Some(token) = handshake_token(socket, &auth) {
        let (socket, state) = (socket.clone(), gateway.state.clone());
        queue.push(async move {
            if let Err(err) = authenticate(&socket, &state, &token).await {
                refuse(&socket, &err);
            }
        });
    }
    Ok(())
}

/// After the `connect` packet: start the queue; without a token, start the clock for `auth`.
pub fn connected<A: Adapter>(socket: &SocketRef<A>, state: &AppState) {
    if let Some(queue) = socket.extensions.remove::<EventQueue>() {
        queue.start();
    }
    let (socket, timeout) = (socket.clone(), state.config.auth_timeout);
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if socket.connected() && socket.extensions.get::<Session>().is_none() {
            refuse(&socket, &AppError::AuthFailed("no token in time after connecting"));
        }
    });
}

/// The `auth` event, queued behind the socket's earlier events.
pub fn auth_event<A: Adapter>(
    socket: SocketRef<A>,
    state: &AppState,
    payload: Option<Value>,
    ack: AckSender<A>,
    queue: &EventQueue,
) {
    let state = state.clone();
    let queued = queue.push(async move {
        let result = on_auth(&socket, &state, payload.unwrap_or(Value::Null)).await;
        let _ = ack.send(&ack::envelope(&result));
        if let Err(err) = &result {
            if socket.extensions.get::<Session>().is_none() {
                refuse(&socket, err);
            }
        }
    });
    if !queued {
        tracing::debug!("auth event dropped: the socket's queue is full");
    }
}

/// The first token found: handshake auth payload, query string, then Authorization header.
fn handshake_token<A: Adapter>(socket: &SocketRef<A>, auth: &Value) -> Option<String> {
    if let Some(token) = auth.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        return Some(token.to_owned());
    }
    let parts = socket.req_parts();
    let from_query = parts
        .uri
        .query()
        .and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("token=")).filter(|t| !t.is_empty()));
    if let Some(token) = from_query {
        return Some(token.to_owned());
    }
    crate::http::extract::bearer_token(&parts.headers).map(str::to_owned)
}

/// `auth {token}`: authenticates a waiting socket, or swaps in a refreshed token for the
/// same user on a live one.
async fn on_auth<A: Adapter>(socket: &SocketRef<A>, state: &AppState, payload: Value) -> Result<Value, AppError> {
    let token = payload
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(AppError::AuthFailed("`auth` needs {token}"))?;
    match socket.extensions.get::<Session>() {
        None => authenticate(socket, state, token).await,
        Some(current) => {
            let claims = state.auth.authenticate(token).await?;
            if claims.sub != current.user_id {
                return Err(AppError::AuthFailed("this token belongs to another user"));
            }
            let session = Session::from(&claims);
            if session.session_id != current.session_id {
                socket.leave(session_room(current.session_id));
                socket.join(session_room(session.session_id));
            }
            socket.extensions.insert(session);
            Ok(json!({ "userId": claims.sub }))
        }
    }
}

/// Verifies `token`, binds the socket to its user and session, says `auth:success`, then
/// replays what the user missed.
async fn authenticate<A: Adapter>(socket: &SocketRef<A>, state: &AppState, token: &str) -> Result<Value, AppError> {
    let claims = state.auth.authenticate(token).await?;
    let session = Session::from(&claims);
    socket.extensions.insert(session.clone());
    socket.join(user_room(session.user_id));
    socket.join(session_room(session.session_id));
    metrics::gauge!("parley_sockets_connected").increment(1.0);
    state.local.added(session.user_id);
    state.presence.touch(session.user_id, &socket.id.to_string(), PresenceStatus::Online).await;
    let _ = socket.emit(events::AUTH_SUCCESS, &json!({ "userId": session.user_id }));
    match state.presence.visible_contacts(session.user_id).await {
        Ok(users) => {
            let _ = socket.emit(events::PRESENCE_BULK, &json!({ "users": users }));
        }
        Err(err) => tracing::warn!(error = %err, "presence:bulk not sent"),
    }
    replay(socket, state, session.user_id).await;
    Ok(json!({ "userId": session.user_id }))
}

/// Missed messages as `message:received`, oldest first, then `sync:complete`.
async fn replay<A: Adapter>(socket: &SocketRef<A>, state: &AppState, user: Uuid) {
    let batches = match state.messages.replay(user).await {
        Ok(batches) => batches,
        Err(err) => {
            tracing::error!(error = %err, "replay failed");
            let _ = socket.emit(
                events::SYNC_COMPLETE,
                &json!({ "messages": 0, "conversations": 0, "truncated": [], "error": "INTERNAL" }),
            );
            return;
        }
    };
    let (mut messages, mut truncated) = (0, Vec::new());
    for batch in &batches {
        for message in &batch.messages {
            if !emit_received(socket, state, message).await {
                return;
            }
        }
        messages += batch.messages.len();
        if batch.truncated {
            truncated.push(batch.conversation_id);
        }
        if let Err(err) = state.messages.mark_replayed(user, batch).await {
            tracing::warn!(error = %err, "watermark not advanced after replay");
        }
    }
    let summary = json!({ "messages": messages, "conversations": batches.len(), "truncated": truncated });
    let _ = socket.emit(events::SYNC_COMPLETE, &summary);
}

/// `false` when the socket is gone or stuck: the replay stops there.
async fn emit_received<A: Adapter>(socket: &SocketRef<A>, state: &AppState, message: &Message) -> bool {
    let payload = json!({ "message": message });
    let mut sent = emit_with_backpressure(socket, events::MESSAGE_RECEIVED, &payload).await;
    if sent && state.fanout.legacy_events() {
        sent = emit_with_backpressure(socket, events::LEGACY_MESSAGE_NEW, &payload).await;
    }
    sent
}

/// A replay can outrun the socket's send buffer; wait for room instead of dropping
/// messages (for at most a few seconds: a socket that does not drain is a dead socket).
async fn emit_with_backpressure<A: Adapter>(socket: &SocketRef<A>, event: &str, payload: &Value) -> bool {
    for _ in 0..1000 {
        match socket.emit(event, payload) {
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(err) => {
                tracing::debug!(error = %err, event, "replay emit failed");
                return false;
            }
            Ok(()) => return true,
        }
    }
    tracing::warn!(sid = %socket.id, "socket does not drain; replay abandoned");
    false
}

/// `auth:error` then disconnect. Every authentication failure is `AUTH_FAILED` here (the
/// SPEC's connect contract); `TOKEN_REVOKED` is for sockets signed out while connected.
fn refuse<A: Adapter>(socket: &SocketRef<A>, err: &AppError) {
    let _ = socket.emit(events::AUTH_ERROR, &json!({ "error": err.to_string(), "code": "AUTH_FAILED" }));
    let _ = socket.clone().disconnect();
}

/// The socket's session, refused when missing or past the access token's expiry (the client
/// sends `auth` with a refreshed token to continue).
pub fn current_session<A: Adapter>(socket: &SocketRef<A>, state: &AppState) -> Result<Session, AppError> {
    let session =
        socket.extensions.get::<Session>().ok_or(AppError::AuthFailed("authenticate first: send `auth {token}`"))?;
    if session.expires_at <= state.clock.now().timestamp() {
        return Err(AppError::AuthFailed("access token expired; send `auth` with a fresh token"));
    }
    Ok(session)
}

async fn on_disconnect<A: Adapter>(socket: SocketRef<A>, state: AppState, reason: DisconnectReason) {
    let Some(session) = socket.extensions.get::<Session>() else { return };
    tracing::debug!(sid = %socket.id, user = %session.user_id, ?reason, "socket disconnected");
    metrics::gauge!("parley_sockets_connected").decrement(1.0);
    for conversation in typing::typed_in(&socket) {
        state.typing.end(session.user_id, conversation).await;
    }
    let signed_out = matches!(reason, DisconnectReason::ServerNSDisconnect);
    state.presence.socket_gone(session.user_id, &socket.id.to_string(), signed_out).await;
    state.local.removed(session.user_id);
    // What this socket was sent before it went: everything, for a clean close (less what may
    // have been in flight); for a silent death, only what is older than it could have been dead.
    let margin = match reason {
        DisconnectReason::ClientNSDisconnect
        | DisconnectReason::TransportClose
        | DisconnectReason::ServerNSDisconnect
        | DisconnectReason::ClosingServer => CLEAN_CLOSE_MARGIN,
        _ => SILENT_LOSS_MARGIN,
    };
    state.messages.settle_delivery(&[session.user_id], margin).await;
}
