//! `parley conformance`: the Socket.IO server stack of Parley (axum + socketioxide behind the
//! same panic edge, the same listen backlog, `TCP_NODELAY` and first-PING handling, CORS for
//! any origin as the suite's reference server) with the namespaces,
//! handlers and timings that the official protocol test suite
//! (<https://github.com/socketio/socket.io-protocol>, `test-suite/test-suite.js`) expects.
//! No database, no Redis, no chat state: only the protocol.
//!
//! On both `/` and `/custom`:
//! * on connect, the server emits `auth` with the handshake auth object (`{}` when none),
//!   [`AUTH_PAUSE`] after the CONNECT reply;
//! * `message` is echoed as `message-back` with the same arguments, binary attachments included;
//! * `message-with-ack` is acknowledged with its arguments;
//! * `ask` (ours, never sent by the official suite, so it adds no packet there): the server emits
//!   `question` with the same arguments and an ack id, then emits `answer` with whatever the
//!   client acknowledged (or `answer` with `{"error": ...}` if it did not within [`ACK_TIMEOUT`]).
//!
//! Engine.IO: ping every [`PING_INTERVAL`], timeout [`PING_TIMEOUT`], [`MAX_PAYLOAD`] bytes
//! (polling payloads and websocket messages alike); sockets that join no namespace within
//! [`CONNECT_TIMEOUT`] are closed. `e2e/conformance.test.mjs` is our own test of all this.

use std::{fmt, future::Future, time::Duration};

use anyhow::Context;
use axum::{Router, routing::get};
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{MapAccess, SeqAccess, Visitor},
    ser::{SerializeMap, SerializeSeq, SerializeTuple},
};
use socketioxide::{
    SocketIo,
    extract::{AckSender, Data, SocketRef},
};
use tower_http::cors::CorsLayer;

use crate::config::{Config, ProcessEnv, VarSource};

/// Engine.IO ping interval the official suite expects.
pub const PING_INTERVAL: Duration = Duration::from_millis(300);
/// Engine.IO ping timeout the official suite expects.
pub const PING_TIMEOUT: Duration = Duration::from_millis(200);
/// Time a client has to join a namespace after the Engine.IO handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Largest polling payload / websocket message, announced as `maxPayload` in the handshake.
pub const MAX_PAYLOAD: usize = 1_000_000;
/// How long after the namespace CONNECT reply the `auth` event goes out. The reference server
/// writes it on the transport's next drain, after the reply has left; sent back to back, the
/// two may reach a Node.js client in one read, and the suite's `waitFor` (ws 8 emits every
/// message of a read at once) sees only the first.
pub const AUTH_PAUSE: Duration = Duration::from_millis(5);
/// How long the `ask` handler waits for the client's ack.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(1000);

/// Serves the conformance stack on `PARLEY_ADDR` (default 127.0.0.1:3000) until `shutdown`.
pub async fn run(shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let config = Config::load(&ConformanceEnv)?;
    crate::telemetry::init_logging(config.log_format);
    // Any origin, as the suite's reference server (`cors: { origin: "*" }`): its browser
    // runner fetches from the page's origin.
    let router = crate::http::catch_panics(router().layer(CorsLayer::permissive()));
    let listener = crate::transport::listen(config.addr).with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "conformance server listening");
    axum::serve(
        crate::transport::accepting(listener, tokio_util::sync::CancellationToken::new()),
        router.into_make_service_with_connect_info::<crate::transport::Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving HTTP")
}

/// The Socket.IO layer with the suite's timings and handlers, plus `GET /health/ready` (200)
/// so scripts can wait for the server without opening an Engine.IO session.
pub fn router() -> Router {
    let (layer, io) = SocketIo::builder()
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .ack_timeout(ACK_TIMEOUT)
        .max_buffer_size(crate::realtime::SOCKET_BUFFER)
        .max_payload(MAX_PAYLOAD as u64)
        .ws_max_message_size(MAX_PAYLOAD)
        .build_layer();
    io.ns("/", on_connect);
    io.ns("/custom", on_connect);
    let engine = Router::new().route("/health/ready", get(|| async { "ok" })).layer(layer);
    crate::transport::first_ping::with_polling_first_ping(engine)
}

async fn on_connect(socket: SocketRef, Data(auth): Data<Arg>) {
    socket.on("message", async |socket: SocketRef, Data(args): Data<Args>| {
        socket.emit("message-back", &args).ok();
    });
    socket.on("message-with-ack", async |Data(args): Data<Args>, ack: AckSender| {
        ack.send(&args).ok();
    });
    socket.on("ask", async |socket: SocketRef, Data(args): Data<Args>| {
        let answer = match socket.emit_with_ack::<_, Args>("question", &args) {
            Ok(stream) => stream.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match answer {
            Ok(args) => socket.emit("answer", &args).ok(),
            Err(error) => socket.emit("answer", &serde_json::json!({ "error": error })).ok(),
        };
    });
    // The CONNECT reply is out (or on its way); `auth` follows in a write of its own.
    tokio::time::sleep(AUTH_PAUSE).await;
    socket.emit("auth", &auth).ok();
}

/// Process environment, with a throwaway JWT secret: this mode signs nothing, and must not
/// create the data dir or its secret file just to read `PARLEY_ADDR`, `CORS_ORIGINS`, `LOG_FORMAT`.
struct ConformanceEnv;

impl VarSource for ConformanceEnv {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "JWT_SECRET" => Some("conformance-mode-signs-nothing-with-this-secret".into()),
            _ => ProcessEnv.var(name),
        }
    }
}

/// All the arguments of an event or ack, any number of them. Serialized as a tuple, which
/// socketioxide expands into separate Socket.IO arguments (a `Vec` would be one array argument).
#[derive(Debug, Clone, PartialEq)]
pub struct Args(pub Vec<Arg>);

/// One JSON value that may hold binary attachments anywhere inside it (`serde_json::Value`
/// would turn them into arrays of numbers, losing the attachment on the way back).
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Binary(Vec<u8>),
    Array(Vec<Arg>),
    Object(Vec<(String, Arg)>),
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for arg in &self.0 {
            tuple.serialize_element(arg)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element()? {
                    args.push(arg);
                }
                Ok(Args(args))
            }
        }
        // A tuple, so socketioxide hands over every argument rather than the first one only.
        deserializer.deserialize_tuple(usize::MAX, ArgsVisitor)
    }
}

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Arg::Null => serializer.serialize_unit(),
            Arg::Bool(b) => serializer.serialize_bool(*b),
            Arg::Number(n) => n.serialize(serializer),
            Arg::String(s) => serializer.serialize_str(s),
            // socketioxide's parser turns bytes into a placeholder plus an attachment.
            Arg::Binary(bytes) => serializer.serialize_bytes(bytes),
            Arg::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Arg::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ArgVisitor)
    }
}

struct ArgVisitor;

impl<'de> Visitor<'de> for ArgVisitor {
    type Value = Arg;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value or a binary attachment")
    }
    fn visit_unit<E>(self) -> Result<Arg, E> {
        Ok(Arg::Null)
    }
    fn visit_none<E>(self) -> Result<Arg, E> {
        Ok(Arg::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Arg, E> {
        Ok(Arg::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Arg, E> {
        Ok(Arg::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Arg, E> {
        Ok(Arg::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Arg, E> {
        serde_json::Number::from_f64(v).map(Arg::Number).ok_or_else(|| E::custom("not a JSON number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Arg, E> {
        Ok(Arg::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Arg, E> {
        Ok(Arg::String(v))
    }
    // socketioxide's parser presents a `{"_placeholder":true,"num":n}` as its attachment's bytes.
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Arg, E> {
        Ok(Arg::Binary(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Arg, E> {
        Ok(Arg::Binary(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Arg, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Arg::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Arg, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Arg::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip_through_plain_json() {
        let json = r#"[1,"2",{"3":[true,null,-4.5]}]"#;
        let args: Args = serde_json::from_str(json).unwrap();
        assert_eq!(args.0.len(), 3);
        assert_eq!(serde_json::to_string(&args).unwrap(), json);
    }

    #[test]
    fn object_keys_keep_their_order() {
        let json = r#"{"b":1,"a":2}"#;
        let arg: Arg = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&arg).unwrap(), json);
    }
}
