//! What the admin UI is shown of a socket: the npm package's serialized socket (id,
//! client id, transport, namespace, data, handshake, rooms), with nothing secret in it.
//!
//! * `data` is the socket's user id (once authenticated), never its token;
//! * the handshake's headers and query lose what carries credentials (`Authorization`,
//!   `Cookie`, the `token` of the query);
//! * a socket's own room (`socket:{sid}`) is shown under the socket's id, which is how
//!   Socket.IO names it and how the UI tells a private room;
//! * event arguments keep their shape and ids (id-named fields whose value looks like an
//!   id), and lose every other string (message contents, tokens).

use std::{collections::BTreeSet, sync::Arc};

use serde_json::{Map, Value, json};
use socketioxide::{adapter::Adapter, extract::SocketRef};

use crate::{fanout::rooms::own_room_socket, realtime::Session, transport};

/// Header names never shown.
const SECRET_HEADERS: [&str; 4] = ["authorization", "cookie", "proxy-authorization", "x-api-key"];
/// Query keys never shown.
const SECRET_QUERY: [&str; 3] = ["token", "access_token", "accessToken"];
/// What a redacted string becomes.
pub const REDACTED: &str = "[redacted]";

/// One socket as the admin UI is shown it, and what later changes are told as updates.
#[derive(Clone, Debug, PartialEq)]
pub struct SocketView {
    pub id: String,
    pub nsp: &'static str,
    pub transport: &'static str,
    pub data: Value,
    pub rooms: BTreeSet<String>,
    /// The rest of the serialized socket (client id, handshake), fixed when first seen.
    pub fixed: Arc<Map<String, Value>>,
}

impl SocketView {
    /// `issued_ms`: when this replica first saw the socket.
    pub fn of<A: Adapter>(socket: &SocketRef<A>, nsp: &'static str, issued_ms: i64, trust_proxy: bool) -> Self {
        let id = socket.id.to_string();
        let parts = socket.req_parts();
        let headers: Map<String, Value> = parts
            .headers
            .iter()
            .filter(|(name, _)| !SECRET_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), Value::from(value.to_str().ok()?))))
            .collect();
        let query: Map<String, Value> = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .filter(|(key, _)| !SECRET_QUERY.contains(&key.as_ref()))
            .map(|(key, value)| (key.into_owned(), Value::from(value.into_owned())))
            .collect();
        let url = match query.is_empty() {
            true => parts.uri.path().to_owned(),
            false => {
                let pairs = query.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()));
                let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
                format!("{}?{query}", parts.uri.path())
            }
        };
        let address = transport::client_ip(parts, trust_proxy).map(|ip| ip.to_string()).unwrap_or_default();
        let time = chrono::DateTime::from_timestamp_millis(issued_ms).unwrap_or_default();
        let handshake = json!({
            "address": address,
            "headers": headers,
            "query": query,
            "issued": issued_ms,
            "secure": parts.uri.scheme_str() == Some("https"),
            "time": time.format("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)").to_string(),
            "url": url,
            "xdomain": parts.headers.contains_key("origin"),
        });
        let mut fixed = Map::new();
        // The npm package shows the first 12 characters of the Engine.IO id; each Parley
        // socket has its own Engine.IO connection, so its own id stands for it.
        fixed.insert("clientId".into(), Value::from(id.chars().take(12).collect::<String>()));
        fixed.insert("handshake".into(), handshake);
        let fixed = Arc::new(fixed);
        Self { id, nsp, transport: transport_name(socket), data: data_of(socket), rooms: rooms_of(socket), fixed }
    }

    /// What the statistics need of a socket (production mode: no socket lists).
    pub fn light<A: Adapter>(socket: &SocketRef<A>, nsp: &'static str) -> Self {
        let fixed = Arc::default();
        let (data, rooms) = (Value::Null, BTreeSet::new());
        Self { id: socket.id.to_string(), nsp, transport: transport_name(socket), data, rooms, fixed }
    }

    /// The npm package's serialized socket.
    pub fn serialized(&self) -> Value {
        let mut object = (*self.fixed).clone();
        object.insert("id".into(), Value::from(self.id.clone()));
        object.insert("nsp".into(), Value::from(self.nsp));
        object.insert("transport".into(), Value::from(self.transport));
        object.insert("data".into(), self.data.clone());
        object.insert("rooms".into(), Value::from(self.rooms.iter().cloned().collect::<Vec<_>>()));
        Value::Object(object)
    }
}

pub fn transport_name<A: Adapter>(socket: &SocketRef<A>) -> &'static str {
    match socket.transport_type() {
        socketioxide::TransportType::Polling => "polling",
        socketioxide::TransportType::Websocket => "websocket",
    }
}

/// The socket's user, once it authenticated; nothing else.
pub fn data_of<A: Adapter>(socket: &SocketRef<A>) -> Value {
    match socket.extensions.get::<Session>() {
        Some(session) => json!({ "userId": session.user_id }),
        None => json!({}),
    }
}

/// The socket's rooms as the UI names them: its own room under its id.
pub fn rooms_of<A: Adapter>(socket: &SocketRef<A>) -> BTreeSet<String> {
    socket.rooms().iter().map(|room| own_room_socket(room).unwrap_or(room).to_owned()).collect()
}

/// Event arguments for the admin UI: the same shape, ids, numbers and booleans kept, every
/// other string redacted (message contents, tokens, passwords).
pub fn redacted(value: &Value) -> Value {
    redact(value, None)
}

fn redact(value: &Value, key: Option<&str>) -> Value {
    match value {
        Value::String(text) if key.is_some_and(is_id_key) && looks_like_id(text) => Value::String(text.clone()),
        Value::String(_) => Value::String(REDACTED.into()),
        Value::Array(items) => Value::Array(items.iter().map(|item| redact(item, key)).collect()),
        Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), redact(v, Some(k)))).collect()),
        other => other.clone(),
    }
}

/// `id`, `…Id` and `…Ids`: identifiers, which the UI may show.
fn is_id_key(key: &str) -> bool {
    key == "id" || key.ends_with("Id") || key.ends_with("Ids")
}

/// What an identifier looks like (a UUID, a socket id): a client cannot smuggle text that
/// has spaces or punctuation through an id-named field.
fn looks_like_id(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_ids_and_shape_and_drops_every_other_string() {
        let event = json!([
            "message:send",
            {"conversationId": "c1", "clientMessageId": "m1", "content": "secret words", "mentions": ["u2"],
             "userIds": ["u3"], "token": "eyJ...", "nested": {"id": "x", "text": "more"}, "seq": 4, "silent": false,
             "tempId": "not an id, a sentence", "user_id": "u4"}
        ]);
        let shown = redacted(&event);
        assert_eq!(
            shown,
            json!([
                REDACTED,
                {"conversationId": "c1", "clientMessageId": "m1", "content": REDACTED, "mentions": [REDACTED],
                 "userIds": ["u3"], "token": REDACTED, "nested": {"id": "x", "text": REDACTED}, "seq": 4, "silent": false,
                 "tempId": REDACTED, "user_id": REDACTED}
            ])
        );
        assert!(!shown.to_string().contains("secret") && !shown.to_string().contains("eyJ"));
    }
}
