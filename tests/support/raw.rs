//! A raw WebSocket client speaking seed 002's envelopes `{type, payload}` to `/chat/ws`,
//! the way the seed's `new WebSocket(...)` clients do.

use std::{collections::VecDeque, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(5);

pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Envelopes read but not asked for yet, in arrival order.
    pending: VecDeque<Value>,
    /// How the server closed the connection, once it did.
    pub closed: Option<Option<u16>>,
}

/// `ws://…/chat/ws` of the server at `base` (`http://…`).
fn url(base: &str) -> String {
    format!("{}/chat/ws", base.replacen("http", "ws", 1))
}

impl RawClient {
    /// Connects with `?token=` (seed 002 §13), or with no token at all.
    pub async fn connect(base: &str, token: Option<&str>) -> Self {
        let url = match token {
            Some(token) => format!("{}?token={token}", url(base)),
            None => url(base),
        };
        Self::open(url.into_client_request().expect("request")).await
    }

    /// Connects with `Authorization: Bearer` (seed 002 §1.2).
    pub async fn connect_with_header(base: &str, token: &str) -> Self {
        let mut request = url(base).into_client_request().expect("request");
        request.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        Self::open(request).await
    }

    async fn open(request: tokio_tungstenite::tungstenite::handshake::client::Request) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("the upgrade completes");
        Self { ws, pending: VecDeque::new(), closed: None }
    }

    /// Connected and greeted: `connection.success`, then `status.bulk`.
    pub async fn connect_as(base: &str, token: &str) -> Self {
        let mut client = Self::connect(base, Some(token)).await;
        client.expect("connection.success").await;
        client.expect("status.bulk").await;
        client
    }

    pub async fn send(&mut self, kind: &str, payload: Value) {
        self.send_text(json!({ "type": kind, "payload": payload }).to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_message(&mut self, message: Message) {
        let _ = self.ws.send(message).await;
    }

    /// Reads one frame into `pending`; `false` once the connection is closed.
    async fn read_one(&mut self, timeout: Duration) -> bool {
        if self.closed.is_some() {
            return false;
        }
        match tokio::time::timeout(timeout, self.ws.next()).await {
            Err(_) => true,
            Ok(Some(Ok(Message::Text(text)))) => {
                self.pending.push_back(serde_json::from_str(text.as_str()).expect("frames are JSON"));
                true
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                self.closed = Some(frame.map(|f| u16::from(f.code)));
                false
            }
            Ok(Some(Ok(_))) => true,
            Ok(Some(Err(_))) | Ok(None) => {
                self.closed = Some(None);
                false
            }
        }
    }

    /// The next envelope of `kind` (its payload; the whole envelope for `error`), leaving the
    /// others queued. Panics after 5 s, listing what came instead.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(index) = self.pending.iter().position(|e| e["type"] == kind) {
                let envelope = self.pending.remove(index).unwrap();
                return if kind == "error" { envelope } else { envelope["payload"].clone() };
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "no {kind} within {WAIT:?}; got {:?} (closed: {:?})", self.pending, self.closed);
            if !self.read_one(left).await && !self.pending.iter().any(|e| e["type"] == kind) {
                panic!("closed ({:?}) before {kind}; got {:?}", self.closed, self.pending);
            }
        }
    }

    /// A `ping` with a timestamp of its own and its `pong`: everything the server queued for
    /// this connection before it read the ping has arrived.
    pub async fn barrier(&mut self) {
        let mark = Uuid::new_v4().to_string();
        self.send("ping", json!({ "timestamp": mark })).await;
        loop {
            let pong = self.expect("pong").await;
            if pong["timestamp"] == json!(mark) {
                return;
            }
        }
    }

    /// After a barrier: no envelope of `kind` arrived.
    pub async fn assert_none(&mut self, kind: &str, why: &str) {
        self.barrier().await;
        let got: Vec<&Value> = self.pending.iter().filter(|e| e["type"] == kind).collect();
        assert!(got.is_empty(), "{why}: {got:?}");
    }

    /// Waits for the server's close; its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "still open after {WAIT:?}; got {:?}", self.pending);
            self.read_one(left).await;
        }
        self.closed.flatten()
    }

    /// Reads nothing for `quiet`, so answers no ping frame (a client that vanished): the
    /// time passing is what is tested. Then the code the server closed with.
    pub async fn go_silent_for(&mut self, quiet: Duration) -> Option<u16> {
        tokio::time::sleep(quiet).await;
        self.expect_close().await
    }
}

pub const POLICY: u16 = 1008;
