//! The `/chat` Socket.IO gateway end to end: the real server on an ephemeral port, a
//! protocol-v5 WebSocket client, in embedded and production mode.

#[path = "../support/mod.rs"]
mod support;

mod authz;
mod connecting;
mod drain;
mod encryption;
mod extras;
mod groups;
mod heartbeat;
mod limits;
pub mod presence;
mod push;
mod raw_ws;
mod reads;
mod redis_restart;
mod replay;
mod sending;
mod typing;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    TestApp,
    http::TestUser,
    socket::{ConnectOptions, SocketClient},
};
use uuid::Uuid;

/// How long any expected event may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// A socket authenticated as `user`, past `auth:success` and the replay's `sync:complete`.
pub async fn connect(app: &TestApp, user: &TestUser) -> SocketClient {
    let socket = connect_raw(app, Some(json!({ "token": user.token }))).await;
    socket.expect_event("auth:success", WAIT).await;
    socket.expect_event("sync:complete", WAIT).await;
    socket
}

/// Like [`connect`], asking for the legacy twins in the handshake (`auth.legacy: true`).
pub async fn connect_legacy(app: &TestApp, user: &TestUser) -> SocketClient {
    let socket = connect_raw(app, Some(json!({ "token": user.token, "legacy": true }))).await;
    socket.expect_event("auth:success", WAIT).await;
    socket.expect_event("sync:complete", WAIT).await;
    socket
}

/// A socket authenticated with `token` on the server at `base`, past the replay.
pub async fn connect_at(base: &str, token: &str) -> SocketClient {
    let options = ConnectOptions { auth: Some(json!({ "token": token })), ..Default::default() };
    let socket = SocketClient::connect(base, options).await.expect("connect /chat");
    socket.expect_event("auth:success", WAIT).await;
    socket.expect_event("sync:complete", WAIT).await;
    socket
}

/// The replica REST calls go to, and the other one (the same server when there is one).
pub fn replicas(app: &TestApp) -> (String, String) {
    let other = app.other.as_ref().map_or_else(|| app.base.clone(), |other| other.base.clone());
    (app.base.clone(), other)
}

pub async fn connect_raw(app: &TestApp, auth: Option<Value>) -> SocketClient {
    SocketClient::connect(&app.socket_base(), ConnectOptions { auth, ..Default::default() })
        .await
        .expect("connect /chat")
}

pub async fn direct(a: &TestUser, b: &TestUser) -> Uuid {
    let reply = a.client.post("/api/conversations", json!({"type": "direct", "participantIds": [b.id]})).await;
    reply.body["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("{:?}", reply.body))
}

pub async fn group(owner: &TestUser, members: &[&TestUser]) -> Uuid {
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let reply =
        owner.client.post("/api/conversations", json!({"type": "group", "title": "Team", "participantIds": ids})).await;
    reply.body["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("{:?}", reply.body))
}

pub fn send_payload(conversation: Uuid, client_id: &str, content: &str) -> Value {
    json!({ "conversationId": conversation, "clientMessageId": client_id, "content": content })
}

/// `message:send` with an ack; returns the ack.
pub async fn send(socket: &SocketClient, conversation: Uuid, client_id: &str, content: &str) -> Value {
    socket.emit_with_ack("message:send", send_payload(conversation, client_id, content), WAIT).await.expect("ack")
}
