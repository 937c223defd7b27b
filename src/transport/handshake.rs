//! Socket.IO requests reach the socketioxide layer with their URI and headers copied out of
//! hyper's read buffer, the handshake with the connection's place in its address's count, and
//! websocket upgrades marked for the drain.

use axum::{
    body::Bytes,
    extract::{ConnectInfo, OriginalUri},
    http::{HeaderMap, HeaderValue, Request, Uri, header},
};

use super::{Peer, engine_switch::EngineSwitch, limits::EngineSlot};

/// Where Engine.IO requests go (socketioxide's default path).
pub const ENGINE_PATH: &str = "/socket.io";

/// hyper parses the request line and the headers of a request as slices of its connection
/// read buffer (8 KiB or more), and engineioxide keeps the handshake request's parts for the
/// socket's lifetime: left alone, every socket pins that whole buffer. This copies the URI
/// and the header values of Socket.IO requests into one buffer of their own size. A handshake
/// (a request without `sid`) also gets the connection's [`EngineSlot`].
pub fn detach_handshake<B>(req: Request<B>) -> Request<B> {
    if !req.uri().path().starts_with(ENGINE_PATH) {
        return req;
    }
    let (mut parts, body) = req.into_parts();
    let opens = !parts.uri.query().unwrap_or_default().split('&').any(|pair| pair.starts_with("sid="));
    if opens {
        parts.extensions.insert(EngineSlot::default());
    }
    // An Engine.IO websocket, on a connection that may have carried other requests first
    // (a proxy's keep-alive connection): a drain cuts it (see [`EngineSwitch`]).
    let upgrade =
        parts.headers.get(header::UPGRADE).is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if upgrade && let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<Peer>>() {
        peer.engine.iter().for_each(EngineSwitch::arm);
    }
    let uri = parts.uri.to_string();
    let size = uri.len() + parts.headers.values().map(|v| v.len()).sum::<usize>();
    let mut buf = Vec::with_capacity(size);
    buf.extend_from_slice(uri.as_bytes());
    for value in parts.headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    let buf = Bytes::from(buf);
    if let Ok(copy) = Uri::from_maybe_shared(buf.slice(..uri.len())) {
        // The router's copy (`OriginalUri`) shares the same bytes.
        if let Some(OriginalUri(original)) = parts.extensions.get_mut::<OriginalUri>() {
            if *original == copy {
                *original = copy.clone();
            } else if let Ok(own) = original.to_string().parse() {
                *original = own;
            }
        }
        parts.uri = copy;
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    let mut at = uri.len();
    for (name, value) in &parts.headers {
        let end = at + value.len();
        let copy = match HeaderValue::from_maybe_shared(buf.slice(at..end)) {
            Ok(mut copy) => {
                copy.set_sensitive(value.is_sensitive());
                copy
            }
            Err(_) => value.clone(),
        };
        headers.append(name.clone(), copy);
        at = end;
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}
