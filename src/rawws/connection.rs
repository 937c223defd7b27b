//! One raw WebSocket connection, start to end: authentication (the upgrade always
//! completes; a bad token gets the seed's `unauthorized` error and a close 1008), the
//! greeting (`connection.success`, `status.bulk`), the missed-message replay, then one loop
//! that reads the client's envelopes in order, writes what the hub queued for it, and keeps
//! the heartbeat (a ping frame every interval; no pong in time closes it).

use std::{collections::HashSet, net::IpAddr, sync::Arc, time::Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use super::{
    RawGateway,
    envelope::{self, Frame},
    hub::{Conn, Outbound},
};
use crate::{
    domain::{
        delivery::{CLEAN_CLOSE_MARGIN, SILENT_LOSS_MARGIN},
        json_text,
        payloads::{AnyConversationRef, BlockRequest, FromPayload, PingRequest, SendRequest, TypingRequest},
        time::Timestamp,
    },
    error::{AppError, AppResult},
    fanout::{
        ServerEvent,
        events::{BlockChanged, MessageEvent, MessageSent, Pong, PresenceBulk, ReadAck},
    },
    shared_state::PresenceStatus,
    state::AppState,
    transport::limits::{ConnectionSlot, EventBudget, Verdict},
};

/// Close codes (RFC 6455).
const POLICY: u16 = 1008;
const TOO_BIG: u16 = 1009;
const AWAY: u16 = 1001;

/// Why the loop ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closed, or the connection broke.
    Client,
    /// We closed it (shutdown, a flood, an overflow): the client heard why.
    Server,
    /// Its session was signed out: offline at once, no grace.
    SignedOut,
    /// No pong in time.
    Silent,
}

struct Live {
    user: Uuid,
    ip: Option<IpAddr>,
    /// Its replay went out: this replica vouches for what it sends it (delivered watermarks).
    vouched: bool,
    expires_at: i64,
    id: String,
    budget: EventBudget,
    typed_in: HashSet<Uuid>,
    last_pong: Instant,
}

/// Serves one upgraded connection from `ip`; `slot` is its place in the per-address count.
pub async fn serve(
    mut socket: WebSocket,
    gateway: Arc<RawGateway>,
    token: Option<String>,
    (ip, slot): (Option<IpAddr>, Option<Arc<ConnectionSlot>>),
) {
    let state = gateway.state.clone();
    let claims = match token {
        Some(token) => state.services.auth.authenticate(&token).await,
        None => Err(AppError::AuthFailed("Authentication required")),
    };
    let claims = match claims {
        Ok(claims) => claims,
        Err(err) => {
            let _ = socket.send(text(envelope::error("unauthorized", &err.to_string()))).await;
            close(&mut socket, POLICY, "unauthorized").await;
            return;
        }
    };
    // A user or an address cooling down after a flood (on either gateway) is turned away.
    if let Err(refusal) = state.services.floods.check(Some(claims.sub), ip).await {
        let _ = socket.send(text(envelope::refusal(&refusal))).await;
        close(&mut socket, POLICY, "cooling down after a flood").await;
        return;
    }
    let id = format!("raw-{}", Uuid::new_v4().simple());
    let (conn, rx, kill) = Conn::new(id.clone(), claims.sub, claims.sid);
    let mut live = Live {
        user: claims.sub,
        ip,
        vouched: false,
        expires_at: claims.exp,
        id,
        budget: EventBudget::default(),
        typed_in: HashSet::new(),
        last_pong: Instant::now(),
    };
    gateway.hub.register(conn);
    state.services.presence.touch(live.user, &live.id, PresenceStatus::Online).await;
    let ending = match greet(&mut socket, &state, &live).await {
        Some(replayed) => {
            // Vouched for once its replay is done, as a socket (see `realtime::connect`).
            live.vouched = replayed;
            if replayed {
                state.platform.local.added(live.user);
            }
            run(&mut socket, &gateway, &mut live, rx, kill).await
        }
        None => Ending::Client,
    };
    end(&gateway, &live, ending).await;
    drop(slot);
}

/// `connection.success`, `status.bulk`, then the replay: `None` when the client is gone,
/// else whether all of the replay went out.
async fn greet(socket: &mut WebSocket, state: &AppState, live: &Live) -> Option<bool> {
    let hello = envelope::connection_success(live.user, Timestamp(state.clock.now()));
    socket.send(text(hello)).await.ok()?;
    let contacts = state.services.presence.visible_contacts(live.user).await.unwrap_or_default();
    if !send_event(socket, &ServerEvent::PresenceBulk(PresenceBulk { users: &contacts })).await {
        return None;
    }
    let messages = &state.services.messages;
    let batches = match messages.replay(live.user).await {
        Ok(batches) => batches,
        Err(err) => {
            tracing::error!(error = %err, "raw replay failed");
            return Some(false);
        }
    };
    for batch in &batches {
        for message in &batch.messages {
            if !send_event(socket, &ServerEvent::MessageReceived(MessageEvent { message })).await {
                return None;
            }
        }
        if let Err(err) = messages.mark_replayed(live.user, batch).await {
            tracing::warn!(error = %err, "watermark not advanced after a raw replay");
        }
    }
    Some(true)
}

async fn run(
    socket: &mut WebSocket,
    gateway: &RawGateway,
    live: &mut Live,
    mut queued: mpsc::Receiver<Outbound>,
    kill: Arc<Notify>,
) -> Ending {
    let mut heartbeat = tokio::time::interval(gateway.ping_interval);
    heartbeat.tick().await;
    loop {
        // Biased: what the hub queued goes out before the next client frame is read, so a
        // reply (a pong) never overtakes an event queued before its request arrived.
        tokio::select! {
            biased;
            _ = kill.notified() => {
                let _ = socket.send(text(envelope::error("send_buffer_full", "too far behind; reconnect"))).await;
                close(socket, POLICY, "send buffer full").await;
                return Ending::Server;
            },
            out = queued.recv() => match out {
                Some(Outbound::Frames(frames)) => {
                    for frame in frames.iter() {
                        if socket.send(text(frame.clone())).await.is_err() {
                            return Ending::Client;
                        }
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    close(socket, code, reason).await;
                    return if code == POLICY { Ending::SignedOut } else { Ending::Server };
                }
                None => return Ending::Server,
            },
            _ = heartbeat.tick() => {
                if live.last_pong.elapsed() > gateway.pong_timeout {
                    tracing::debug!(id = %live.id, "raw connection missed its pong; closing it");
                    close(socket, AWAY, "no pong").await;
                    return Ending::Silent;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return Ending::Client;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(body))) => {
                    if !handle(socket, gateway, live, body.as_str()).await {
                        return Ending::Server;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let refusal = envelope::error("invalid_message", "frames are JSON text: {type, payload}");
                    if socket.send(text(refusal)).await.is_err() {
                        return Ending::Client;
                    }
                }
                Some(Ok(Message::Pong(_))) => live.last_pong = Instant::now(),
                Some(Ok(Message::Ping(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Ending::Client,
                Some(Err(err)) => return refuse_broken(socket, err).await,
            },
        }
    }
}

/// A read error: a frame over the size limit gets the error envelope and a close 1009;
/// anything else is a broken connection.
async fn refuse_broken(socket: &mut WebSocket, err: axum::Error) -> Ending {
    let message = err.to_string();
    if message.contains("too long") || message.contains("too big") || message.contains("Space limit") {
        let _ = socket.send(text(envelope::error("message_too_large", "frames are limited in size"))).await;
        close(socket, TOO_BIG, "message too large").await;
        return Ending::Server;
    }
    tracing::debug!(error = %message, "raw connection broke");
    Ending::Client
}

/// One envelope from the client; `false` when the connection must close.
async fn handle(socket: &mut WebSocket, gateway: &RawGateway, live: &mut Live, body: &str) -> bool {
    match live.budget.take(gateway.rate) {
        Verdict::Run => {}
        Verdict::Dropped => return true,
        Verdict::Refused(retry_after) => {
            metrics::counter!("parley_rate_limited_total", "scope" => "raw_ws_event_rate").increment(1);
            return reply(socket, vec![envelope::refusal(&AppError::RateLimited { retry_after })]).await;
        }
        Verdict::Flood => {
            metrics::counter!("parley_rate_limited_total", "scope" => "raw_ws_flood").increment(1);
            let state = &gateway.state;
            state.services.floods.penalize(Some(live.user), live.ip).await;
            let retry_after = state.config.flood_cooldown.max(std::time::Duration::from_secs(1));
            let _ = reply(socket, vec![envelope::refusal(&AppError::RateLimited { retry_after })]).await;
            close(socket, POLICY, "flood").await;
            return false;
        }
    }
    let Ok(envelope) = serde_json::from_str::<Value>(body) else {
        // JSON, but with half an emoji in a string: refused naming the field, as by `/chat`.
        if let Some(path) = json_text::lone_surrogate(body) {
            let field = path.strip_prefix(&[json_text::Step::Key("payload".into())][..]).unwrap_or(&path);
            return reply(socket, vec![envelope::refusal(&json_text::lone_surrogate_error(field))]).await;
        }
        return reply(socket, vec![envelope::error("invalid_message", "not JSON: send {type, payload}")]).await;
    };
    let Some(kind) = envelope.get("type").and_then(Value::as_str) else {
        return reply(socket, vec![envelope::error("invalid_message", "an envelope needs a string `type`")]).await;
    };
    let payload = envelope.get("payload").cloned().unwrap_or(Value::Null);
    if crate::domain::tokens::is_expired(live.expires_at, gateway.state.clock.now().timestamp()) {
        let _ =
            reply(socket, vec![envelope::error("unauthorized", "access token expired; reconnect with a fresh one")])
                .await;
        close(socket, POLICY, "token expired").await;
        return false;
    }
    let frames = match dispatch(&gateway.state, live, kind, &payload).await {
        Ok(frames) => frames,
        Err(err) => vec![envelope::refusal(&err)],
    };
    reply(socket, frames).await
}

/// What an envelope asks for, and the frames that answer it.
async fn dispatch(state: &AppState, live: &mut Live, kind: &str, payload: &Value) -> AppResult<Vec<Frame>> {
    let services = &state.services;
    match kind {
        "message.send" | "message:send" => Ok(send(state, live, SendRequest::from_payload(payload)?).await),
        "message.read" => {
            let request = AnyConversationRef::from_payload(payload)?;
            let outcome = services.reads.read_all(live.user, request.conversation_id).await?;
            let ack = ReadAck { conversation_id: outcome.conversation_id, read_at: outcome.read_at };
            Ok(envelope::render(&ServerEvent::ReadAck(ack)))
        }
        "typing.start" | "typing_start" => typing(state, live, TypingRequest::from_payload(payload)?, Some(true)).await,
        "typing.stop" | "typing_stop" => typing(state, live, TypingRequest::from_payload(payload)?, Some(false)).await,
        "message.typing" => typing(state, live, TypingRequest::from_payload(payload)?, None).await,
        "ping" => {
            let request = PingRequest::from_payload(payload)?;
            services.presence.touch(live.user, &live.id, PresenceStatus::Online).await;
            let pong = Pong { timestamp: request.timestamp, server_time: state.clock.now_ms() };
            Ok(envelope::render(&ServerEvent::Pong(pong)))
        }
        "block.add" | "block.remove" => {
            let blocking = kind == "block.add";
            let request = BlockRequest::from_payload(payload)?;
            let target = services.users.by_username(&request.username).await?;
            services.users.set_blocked(live.user, target.id, blocking).await?;
            let changed =
                BlockChanged { user_id: target.id, username: target.username, at: Timestamp(state.clock.now()) };
            let event = if blocking { ServerEvent::BlockAdded(changed) } else { ServerEvent::BlockRemoved(changed) };
            Ok(envelope::render(&event))
        }
        other => {
            Err(AppError::validation(format!("unknown message type `{}`", other.chars().take(64).collect::<String>())))
        }
    }
}

/// `message.send`: `message.sent` once stored, or `message.error` and the seed's `error`.
async fn send(state: &AppState, live: &Live, request: SendRequest) -> Vec<Frame> {
    let result = match request.message {
        Ok(message) => state.services.messages.send(live.user, message, Some(&live.id)).await,
        Err(refusal) => Err(refusal),
    };
    match result {
        Ok(sent) => envelope::render(&ServerEvent::MessageSent(MessageSent::of(&sent.message))),
        Err(err) => {
            let refusal = crate::fanout::events::MessageError {
                client_message_id: request.client_message_id,
                error: err.to_string(),
                code: envelope::seed_code(&err),
            };
            let mut frames = envelope::render(&ServerEvent::MessageError(refusal));
            frames.push(envelope::refusal(&err));
            frames
        }
    }
}

async fn typing(
    state: &AppState,
    live: &mut Live,
    request: TypingRequest,
    typing: Option<bool>,
) -> AppResult<Vec<Frame>> {
    let typing =
        typing.or(request.is_typing).ok_or_else(|| AppError::invalid_field("is_typing", "must be true or false"))?;
    state.services.typing.set(live.user, request.conversation_id, typing).await?;
    if typing {
        live.typed_in.insert(request.conversation_id);
    } else {
        live.typed_in.remove(&request.conversation_id);
    }
    Ok(Vec::new())
}

/// The connection is gone: out of the hub, its typing ended, presence and delivered
/// watermarks settled as for a socket.
async fn end(gateway: &RawGateway, live: &Live, ending: Ending) {
    let state = &gateway.state;
    gateway.hub.unregister(live.user, &live.id);
    // At once: messages emitted from now on must not count as delivered to it.
    if live.vouched {
        state.platform.local.removed(live.user);
    }
    for conversation in &live.typed_in {
        state.services.typing.end(live.user, *conversation).await;
    }
    // Before the presence, as for a socket (see `realtime::connect`).
    let messages = &state.services.messages;
    match (live.vouched, ending == Ending::Silent) {
        (false, _) => {}
        (true, false) => messages.settle_delivery(&[live.user], CLEAN_CLOSE_MARGIN).await,
        (true, true) => {
            // What was marked delivered as it was emitted may have died with the connection.
            messages.unsettle_delivery(live.user, SILENT_LOSS_MARGIN).await;
            messages.settle_delivery(&[live.user], SILENT_LOSS_MARGIN).await;
        }
    }
    state.services.presence.socket_gone(live.user, &live.id, ending == Ending::SignedOut).await;
}

async fn reply(socket: &mut WebSocket, frames: Vec<Frame>) -> bool {
    for frame in frames {
        if socket.send(text(frame)).await.is_err() {
            return false;
        }
    }
    true
}

async fn send_event(socket: &mut WebSocket, event: &ServerEvent<'_>) -> bool {
    reply(socket, envelope::render(event)).await
}

fn text(frame: Frame) -> Message {
    Message::Text(Utf8Bytes::from(frame))
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))).await;
}
