//! Connecting: the token (handshake `auth.token`, `?token=`, or `Authorization: Bearer`),
//! the late `auth` event within 10 s, token swaps on a live socket, the missed-message
//! replay, and disconnects.

use serde_json::{Value, json};
use socketioxide::{adapter::Adapter, extract::SocketRef, socket::DisconnectReason};
use uuid::Uuid;

use super::{LATE_AUTH_TIMEOUT, ack, extras, messages, rooms};
use crate::{
    app::AppState,
    domain::{tokens::AccessClaims, views::Message},
    error::AppError,
    fanout::{events, session_room, socket_room, user_room},
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

pub async fn on_connect<A: Adapter>(socket: SocketRef<A>, state: AppState, auth: Value) {
    socket.join(socket_room(&socket.id.to_string()));
    register_handlers(&socket, &state);
    socket.on_disconnect({
        let state = state.clone();
        move |socket: SocketRef<A>, reason: DisconnectReason| {
            let state = state.clone();
            async move { on_disconnect(socket, state, reason).await }
        }
    });
    match handshake_token(&socket, &auth) {
        Some(token) => {
            if let Err(err) = authenticate(&socket, &state, &token).await {
                refuse(&socket, &err);
            }
        }
        None => {
            let socket = socket.clone();
            tokio::spawn(async move {
                tokio::time::sleep(LATE_AUTH_TIMEOUT).await;
                if socket.connected() && socket.extensions.get::<Session>().is_none() {
                    refuse(&socket, &AppError::AuthFailed("no token within 10 s of connecting"));
                }
            });
        }
    }
}

fn register_handlers<A: Adapter>(socket: &SocketRef<A>, state: &AppState) {
    socket.on("auth", {
        let state = state.clone();
        move |socket: SocketRef<A>, socketioxide::extract::TryData(payload): socketioxide::extract::TryData<Value>, ack: socketioxide::extract::AckSender<A>| {
            let state = state.clone();
            async move {
                let result = on_auth(&socket, &state, payload.unwrap_or(Value::Null)).await;
                if let Err(err) = &result {
                    if socket.extensions.get::<Session>().is_none() {
                        let _ = ack.send(&ack::error(err));
                        refuse(&socket, err);
                        return;
                    }
                }
                let _ = ack.send(&ack::envelope(&result));
            }
        }
    });
    messages::register(socket, state);
    rooms::register(socket, state);
    extras::register(socket, state);
}

/// The first token found: handshake auth payload, query string, then Authorization header.
fn handshake_token<A: Adapter>(socket: &SocketRef<A>, auth: &Value) -> Option<String> {
    if let Some(token) = auth.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        return Some(token.to_owned());
    }
    let parts = socket.req_parts();
    let from_query = parts.uri.query().and_then(|query| {
        query.split('&').find_map(|pair| pair.strip_prefix("token=")).filter(|t| !t.is_empty())
    });
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
    let sid = socket.id.to_string();
    if let Err(err) = state.shared.connections.connected(session.user_id, &sid).await {
        tracing::warn!(error = %err, "connection not registered");
    }
    metrics::gauge!("parley_sockets_connected").increment(1.0);
    let _ = socket.emit(events::AUTH_SUCCESS, &json!({ "userId": session.user_id }));
    replay(socket, state, session.user_id).await;
    Ok(json!({ "userId": session.user_id }))
}

/// Missed messages as `message:received`, oldest first, then `sync:complete`.
async fn replay<A: Adapter>(socket: &SocketRef<A>, state: &AppState, user: Uuid) {
    let replay = match state.messages.replay(user).await {
        Ok(replay) => replay,
        Err(err) => {
            tracing::error!(error = %err, "replay failed");
            let _ = socket.emit(events::SYNC_COMPLETE, &json!({ "messages": 0, "conversations": 0, "truncated": [], "error": "INTERNAL" }));
            return;
        }
    };
    for message in &replay.messages {
        emit_received(socket, state, message);
    }
    let summary = json!({
        "messages": replay.messages.len(),
        "conversations": replay.conversations,
        "truncated": replay.truncated,
    });
    let _ = socket.emit(events::SYNC_COMPLETE, &summary);
}

pub fn emit_received<A: Adapter>(socket: &SocketRef<A>, state: &AppState, message: &Message) {
    let payload = json!({ "message": message });
    let _ = socket.emit(events::MESSAGE_RECEIVED, &payload);
    if state.fanout.legacy_events() {
        let _ = socket.emit(events::LEGACY_MESSAGE_NEW, &payload);
    }
}

/// `auth:error` then disconnect.
fn refuse<A: Adapter>(socket: &SocketRef<A>, err: &AppError) {
    let code = match err {
        AppError::TokenRevoked => "TOKEN_REVOKED",
        _ => "AUTH_FAILED",
    };
    let _ = socket.emit(events::AUTH_ERROR, &json!({ "error": err.to_string(), "code": code }));
    let _ = socket.clone().disconnect();
}

/// The socket's session, refused when missing or past the access token's expiry (the client
/// sends `auth` with a refreshed token to continue).
pub fn current_session<A: Adapter>(socket: &SocketRef<A>, state: &AppState) -> Result<Session, AppError> {
    let session = socket.extensions.get::<Session>().ok_or(AppError::AuthFailed("authenticate first: send `auth {token}`"))?;
    if session.expires_at <= state.clock.now().timestamp() {
        return Err(AppError::AuthFailed("access token expired; send `auth` with a fresh token"));
    }
    Ok(session)
}

async fn on_disconnect<A: Adapter>(socket: SocketRef<A>, state: AppState, reason: DisconnectReason) {
    let Some(session) = socket.extensions.get::<Session>() else { return };
    tracing::debug!(sid = %socket.id, user = %session.user_id, ?reason, "socket disconnected");
    metrics::gauge!("parley_sockets_connected").decrement(1.0);
    if let Err(err) = state.shared.connections.disconnected(session.user_id, &socket.id.to_string()).await {
        tracing::warn!(error = %err, "connection not unregistered");
    }
}
