//! A minimal Socket.IO client (protocol v5 over Engine.IO v4, WebSocket transport only).
//!
//! It exists so the integration tests drive the server the way `socket.io-client` does
//! (handshake, namespace connect with auth, events, acks both ways, heartbeats) while keeping
//! precise control over the raw packets: `send_raw` puts any frame, malformed ones included,
//! on the wire. The npm `socket.io-client` itself is used by the e2e suite. Binary packets
//! (`45`/`46` and their attachments) are skipped, not decoded.
//!
//! One background task reads the websocket: it answers Engine.IO pings, routes acks to the
//! waiting `emit_with_ack` calls and queues events, waking waiters through a `Notify`. Writes
//! go through a channel to a writer task. Dropping the client aborts both tasks.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt, stream::SplitStream};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Request};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

type WsReader = SplitStream<WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>>;

/// How long `connect` waits for the server to answer the namespace connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`SocketClient::foreign_roundtrip`] waits for its answer.
const WAIT_FOREIGN: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The namespace to connect to, e.g. "/chat" or "/".
    pub namespace: String,
    /// The `auth` payload of the namespace connect packet.
    pub auth: Option<Value>,
    /// Extra query pairs appended to the handshake URL.
    pub query: Vec<(String, String)>,
    /// Extra HTTP headers of the websocket upgrade request.
    pub headers: Vec<(String, String)>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { namespace: "/chat".into(), auth: None, query: Vec::new(), headers: Vec::new() }
    }
}

/// A received event: its name, first argument and the ack id the server asked for, if any.
struct Event {
    name: String,
    data: Value,
    ack: Option<u64>,
}

#[derive(Default)]
struct State {
    closed: bool,
    /// The server disconnected the namespace (a `41` packet arrived before the close).
    disconnected: bool,
    events: VecDeque<Event>,
    acks: HashMap<u64, oneshot::Sender<Value>>,
    /// The answer to the namespace connect: the sid (40) or the refusal message (44).
    answer: Option<Result<String, String>>,
    /// Socket.IO packets of other namespaces, as they came.
    foreign: Vec<String>,
}

impl State {
    fn close(&mut self) {
        self.closed = true;
        self.acks.clear(); // dropping the senders fails the pending `emit_with_ack` calls
    }
}

/// What the client and its reader task share.
struct Shared {
    /// "" for the root namespace, otherwise "/nsp," as it prefixes every packet.
    prefix: String,
    /// To the writer task, which owns the websocket sink.
    out: mpsc::UnboundedSender<Message>,
    state: Mutex<State>,
    /// Woken (`notify_waiters`) after every change of `state`.
    changed: Notify,
    /// Stops answering PINGs (a connection that died without a word).
    silent: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn send(&self, text: String) {
        // An error means the writer is gone, i.e. the connection is closed: nothing to do.
        let _ = self.out.send(Message::text(text));
    }

    /// Sends `{kind}{/nsp,}{id}{json}`, e.g. `42/chat,7["event",{}]`.
    fn send_packet(&self, kind: &str, id: Option<u64>, json: Value) {
        let id = id.map(|id| id.to_string()).unwrap_or_default();
        self.send(format!("{kind}{}{id}{json}", self.prefix));
    }

    fn mark_closed(&self) {
        self.lock().close();
        self.changed.notify_waiters();
    }
}

/// One connected Socket.IO socket on one namespace.
pub struct SocketClient {
    sid: String,
    shared: Arc<Shared>,
    next_ack: AtomicU64,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl SocketClient {
    /// Connects the websocket and the namespace; Err if the namespace connect is refused (44
    /// packet) or IO fails. socketioxide sends the 40 answer before its (spawned) connect
    /// handler has registered the event handlers: wait for an event the server sends on
    /// connect before emitting, or an early event may find no handler and be dropped.
    pub async fn connect(base_http_url: &str, options: ConnectOptions) -> Result<Self, String> {
        let request = handshake_request(base_http_url, &options)?;
        let url = request.uri().to_string();
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("websocket connect to {url} failed: {e}"))?;
        let (mut sink, stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                let is_close = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || is_close {
                    break;
                }
            }
        });

        let prefix = match options.namespace.as_str() {
            "/" | "" => String::new(),
            nsp => format!("{nsp},"),
        };
        let auth = options.auth.map_or(String::new(), |auth| auth.to_string());
        let connect_packet = format!("40{prefix}{auth}");
        let shared = Arc::new(Shared {
            prefix,
            out,
            state: Mutex::default(),
            changed: Notify::new(),
            silent: std::sync::atomic::AtomicBool::new(false),
        });
        let reader = tokio::spawn(read_loop(stream, shared.clone(), connect_packet));
        let mut client = SocketClient { sid: String::new(), shared, next_ack: AtomicU64::new(0), reader, writer };

        let answer = client.wait_for(CONNECT_TIMEOUT, |state| match &state.answer {
            Some(answer) => Some(answer.clone()),
            None if state.closed => Some(Err("connection closed".into())),
            None => None,
        });
        match answer.await {
            Some(Ok(sid)) => {
                client.sid = sid;
                Ok(client)
            }
            Some(Err(message)) => Err(format!("namespace connect failed: {message}")),
            None => Err(format!("no namespace connect answer in {CONNECT_TIMEOUT:?}")),
        }
    }

    /// The namespace socket id from the 40 answer.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Emit without ack.
    pub async fn emit(&self, event: &str, data: Value) {
        self.shared.send_packet("42", None, json!([event, data]));
    }

    /// Emit with ack; resolves to the first ack argument (Null if none); Err on timeout or
    /// disconnect.
    pub async fn emit_with_ack(&self, event: &str, data: Value, timeout: Duration) -> Result<Value, String> {
        self.emit_text_with_ack(event, &data.to_string(), timeout).await
    }

    /// As [`Self::emit_with_ack`] with the payload as JSON text, which may be what a `Value`
    /// cannot hold (e.g. `"\ud83d"`, half a surrogate pair, as `JSON.stringify` writes it).
    pub async fn emit_text_with_ack(&self, event: &str, payload: &str, timeout: Duration) -> Result<Value, String> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(format!("cannot emit {event:?}: the socket is disconnected"));
            }
            state.acks.insert(id, tx);
        }
        self.shared.send(format!("42{}{id}[{},{payload}]", self.shared.prefix, json!(event)));
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(format!("disconnected before the ack of {event:?}")),
            Err(_) => {
                self.shared.lock().acks.remove(&id);
                Err(format!("no ack for {event:?} (id {id}) within {timeout:?}"))
            }
        }
    }

    /// Answers an event that the server emitted with an ack id (`43/nsp,ID[data]`).
    pub async fn ack(&self, id: u64, data: Value) {
        self.shared.send_packet("43", Some(id), json!([data]));
    }

    /// Sends an already-encoded packet as one text frame, e.g. `42/chat,["x",1]`.
    pub async fn send_raw(&self, text: &str) {
        self.shared.send(text.to_string());
    }

    /// Waits for the next event named `event` and returns its first argument; events of other
    /// names stay queued. Panics after `timeout`, listing what was received instead.
    pub async fn expect_event(&self, event: &str, timeout: Duration) -> Value {
        self.expect_event_with_ack(event, timeout).await.0
    }

    /// Like `expect_event`, also returning the ack id the server asked for (answer with `ack`).
    pub async fn expect_event_with_ack(&self, event: &str, timeout: Duration) -> (Value, Option<u64>) {
        if let Some(found) = self.wait_event(event, timeout).await {
            return found;
        }
        let state = self.shared.lock();
        let got: Vec<_> = state.events.iter().map(|e| (&e.name, &e.data)).collect();
        let (sid, closed) = (&self.sid, state.closed);
        panic!("no {event:?} within {timeout:?} (sid {sid}, closed: {closed}); got: {got:#?}");
    }

    /// Like `expect_event` but returns None on timeout instead of panicking.
    pub async fn next_event(&self, event: &str, timeout: Duration) -> Option<Value> {
        self.wait_event(event, timeout).await.map(|(data, _)| data)
    }

    /// A round trip through this socket's event queue (a `ping` and its ack): the server
    /// sends a socket's events in order and answers an event after what it emitted to that
    /// socket before it, so when this returns, everything this replica sent the socket
    /// before has arrived. The `pong` it causes stays queued.
    pub async fn barrier(&self) {
        self.emit_with_ack("ping", json!({}), Duration::from_secs(10)).await.expect("barrier: the ping's ack");
    }

    /// Proves that no `event` has reached this socket (since the last `drain` or wait for
    /// it): a [`Self::barrier`] first, then a look at what arrived. Nothing is consumed.
    pub async fn assert_no_event(&self, event: &str, why: &str) {
        self.barrier().await;
        let state = self.shared.lock();
        let got: Vec<&Value> = state.events.iter().filter(|e| e.name == event).map(|e| &e.data).collect();
        assert!(got.is_empty(), "{why}: got {event} {got:?}");
    }

    /// All events received so far and not yet consumed, in arrival order, draining them.
    pub fn drain(&self) -> Vec<(String, Value)> {
        let mut state = self.shared.lock();
        state.events.drain(..).map(|e| (e.name, e.data)).collect()
    }

    /// Stops answering the server's PINGs, reading on (a connection that died silently, as
    /// the server sees it: it closes the socket once the ping timeout passes).
    pub fn go_silent(&self) {
        self.shared.silent.store(true, Ordering::Relaxed);
    }

    /// Disconnects (41, then the close) and returns every event that arrived before the
    /// server's close, unconsumed ones included.
    pub async fn disconnect_and_drain(mut self) -> Vec<(String, Value)> {
        if self.is_connected() {
            self.shared.send(format!("41{}", self.shared.prefix));
        }
        let _ = self.shared.out.send(Message::Close(None));
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.writer).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.reader).await;
        self.drain()
    }

    /// Resolves when the server disconnects this socket (41 packet or websocket close).
    pub async fn expect_disconnect(&self, timeout: Duration) -> Result<(), String> {
        self.wait_for(timeout, |state| state.closed.then_some(()))
            .await
            .ok_or_else(|| format!("sid {} still connected after {timeout:?}", self.sid))
    }

    /// Resolves when the server disconnects this socket's namespace with a `41` packet (what
    /// socket.io-client reports as `io server disconnect` and does not reconnect from); an
    /// error when the connection closed without one (a client then reconnects).
    pub async fn expect_server_disconnect(&self, timeout: Duration) -> Result<(), String> {
        self.expect_disconnect(timeout).await?;
        match self.shared.lock().disconnected {
            true => Ok(()),
            false => Err(format!("sid {}: the connection closed without a disconnect packet", self.sid)),
        }
    }

    pub fn is_connected(&self) -> bool {
        !self.shared.lock().closed
    }

    /// Leaves the namespace (a `41` packet) and keeps the Engine.IO connection open.
    pub fn leave_namespace(&self) {
        self.shared.send(format!("41{}", self.shared.prefix));
        self.shared.lock().close();
    }

    /// Connects the namespace again on the same Engine.IO connection (after
    /// [`Self::leave_namespace`]): the sid, or the refusal.
    pub async fn rejoin_namespace(&mut self, auth: Value) -> Result<String, String> {
        {
            let mut state = self.shared.lock();
            (state.answer, state.closed, state.disconnected) = (None, false, false);
        }
        self.shared.send(format!("40{}{auth}", self.shared.prefix));
        let answer = self.wait_for(CONNECT_TIMEOUT, |state| state.answer.clone()).await;
        let answer = answer.unwrap_or_else(|| Err(format!("no namespace connect answer in {CONNECT_TIMEOUT:?}")));
        if let Ok(sid) = &answer {
            self.sid = sid.clone();
        }
        answer
    }

    /// Sends `packet` (a Socket.IO packet for another namespace, e.g. `40/nowhere,`) and
    /// waits for the server's answer to it, a packet starting with `answer`. The server reads
    /// a connection's packets in order, so this is also a barrier behind what was sent before.
    pub async fn foreign_roundtrip(&self, packet: &str, answer: &str) -> Result<String, String> {
        self.shared.send(format!("4{packet}"));
        let found = self.wait_for(WAIT_FOREIGN, |state| {
            let index = state.foreign.iter().position(|p| p.starts_with(answer))?;
            Some(state.foreign.remove(index))
        });
        found.await.ok_or_else(|| format!("no answer starting {answer:?} to {packet:?}"))
    }

    /// Resolves when the server closed the websocket (the Engine.IO connection).
    pub async fn expect_transport_closed(&mut self, timeout: Duration) -> Result<(), String> {
        match tokio::time::timeout(timeout, &mut self.reader).await {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("sid {}: the connection is still open after {timeout:?}", self.sid)),
        }
    }

    /// Whether the websocket (the Engine.IO connection) is still open, whatever the namespace.
    pub fn transport_open(&self) -> bool {
        !self.reader.is_finished()
    }

    /// Closes the websocket without leaving the namespace first (a dropped connection).
    pub async fn close_transport(mut self) {
        let _ = self.shared.out.send(Message::Close(None));
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.writer).await;
        self.shared.mark_closed();
    }

    /// Client-side disconnect (sends 41, closes the websocket).
    pub async fn disconnect(mut self) {
        if self.is_connected() {
            self.shared.send(format!("41{}", self.shared.prefix));
        }
        let _ = self.shared.out.send(Message::Close(None));
        // Let the writer flush both frames; a dead peer must not hang the test.
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.writer).await;
        self.shared.mark_closed();
    }

    async fn wait_event(&self, event: &str, timeout: Duration) -> Option<(Value, Option<u64>)> {
        self.wait_for(timeout, |state| {
            let index = state.events.iter().position(|e| e.name == event)?;
            state.events.remove(index).map(|e| (e.data, e.ack))
        })
        .await
    }

    /// Runs `check` on the state now and after every change until it yields, or `timeout`.
    async fn wait_for<T>(&self, timeout: Duration, mut check: impl FnMut(&mut State) -> Option<T>) -> Option<T> {
        let shared = &self.shared;
        let wait = async {
            loop {
                let mut changed = std::pin::pin!(shared.changed.notified());
                changed.as_mut().enable(); // registered before checking: no lost wake-up
                if let Some(found) = check(&mut shared.lock()) {
                    return found;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
}

impl Drop for SocketClient {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// The upgrade request: `base/socket.io/?EIO=4&transport=websocket&query…` plus headers.
fn handshake_request(base_url: &str, options: &ConnectOptions) -> Result<Request<()>, String> {
    let base = base_url.trim_end_matches('/');
    let base = match base.split_once("://") {
        Some(("http", rest)) => format!("ws://{rest}"),
        Some(("https", rest)) => format!("wss://{rest}"),
        _ => base.to_string(),
    };
    let mut url = format!("{base}/socket.io/?EIO=4&transport=websocket");
    for (key, value) in &options.query {
        url += &format!("&{}={}", encode_component(key), encode_component(value));
    }
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    for (name, value) in &options.headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("{name}: {e}"))?;
        request.headers_mut().append(header, value);
    }
    Ok(request)
}

/// Percent-encodes a query component (all but RFC 3986 unreserved characters).
fn encode_component(text: &str) -> String {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let encode = |b: u8| match unreserved(b) {
        true => char::from(b).to_string(),
        false => format!("%{b:02X}"),
    };
    text.bytes().map(encode).collect()
}

fn skip(why: &str, packet: &str) {
    eprintln!("socket.io test client: skipping {why}: {packet:?}");
}

/// Reads every frame until the websocket closes. Never panics on what the server sends.
async fn read_loop(mut stream: WsReader, shared: Arc<Shared>, connect_packet: String) {
    while let Some(frame) = stream.next().await {
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue, // binary attachments (skipped), websocket ping/pong frames
            Err(e) => {
                eprintln!("socket.io test client: websocket error: {e}");
                break;
            }
        };
        // Engine.IO: one packet per frame, its type digit first.
        match text.as_bytes().first() {
            Some(b'0') => shared.send(connect_packet.clone()), // open: connect the namespace
            Some(b'1') => break,
            Some(b'2') if shared.silent.load(Ordering::Relaxed) => {} // a dead connection answers nothing
            Some(b'2') => shared.send(format!("3{}", &text[1..])),    // ping: pong
            Some(b'3' | b'6') => {}
            Some(b'4') => handle_packet(&shared, &text[1..]),
            _ => skip("unknown Engine.IO packet", &text),
        }
    }
    shared.mark_closed();
}

/// Handles one socket.io packet: type digit, optional "/nsp,", optional ack id, then JSON.
fn handle_packet(shared: &Shared, packet: &str) {
    let mut chars = packet.chars();
    let kind = chars.next().unwrap_or(' ');
    let rest = chars.as_str();
    if matches!(kind, '5' | '6') {
        return skip("binary packet", packet);
    }
    let (prefix, rest) = match (rest.starts_with('/'), rest.find(',')) {
        (true, Some(comma)) => rest.split_at(comma + 1),
        (true, None) => (rest, ""),
        (false, _) => ("", rest),
    };
    if prefix.trim_end_matches(',') != shared.prefix.trim_end_matches(',') {
        shared.lock().foreign.push(packet.to_owned());
        shared.changed.notify_waiters();
        return;
    }
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (id, json) = rest.split_at(digits);
    let id = id.parse::<u64>().ok();
    let data = match json {
        "" => Value::Null,
        json => match serde_json::from_str::<Value>(json) {
            Ok(data) => data,
            Err(_) => return skip("packet with invalid JSON", packet),
        },
    };
    let text = |key| data.get(key).and_then(Value::as_str).map(str::to_string);
    let mut state = shared.lock();
    match (kind, id) {
        ('0', _) if state.answer.is_none() => state.answer = Some(Ok(text("sid").unwrap_or_default())),
        ('4', _) if state.answer.is_none() => state.answer = Some(Err(text("message").unwrap_or(data.to_string()))),
        ('1', _) => {
            state.disconnected = true;
            state.close();
        }
        ('2', ack) => match data.as_array().and_then(|a| a.first()?.as_str().zip(Some(a))) {
            Some((name, args)) => {
                let (name, data) = (name.to_string(), args.get(1).cloned().unwrap_or_default());
                state.events.push_back(Event { name, data, ack });
            }
            None => skip("event without a name", packet),
        },
        ('3', Some(id)) => match state.acks.remove(&id) {
            Some(tx) => drop(tx.send(data.get(0).cloned().unwrap_or_default())),
            None => skip("ack of an unknown id", packet),
        },
        _ => skip("unexpected packet", packet),
    }
    drop(state);
    shared.changed.notify_waiters();
}
