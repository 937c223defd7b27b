//! What sits under both the REST API and the socket gateway: the listener and its accept
//! loop (backlog, `TCP_NODELAY`, the first-PING wrapper, the lingering close), the client's address and bearer
//! token as a request carries them, the copy-out of Socket.IO handshake requests, and the
//! Redis driver of the Socket.IO adapter. Neither `http` nor `realtime` imports the other;
//! both import this.

pub mod engine_switch;
pub mod first_ping;
pub mod handshake;
pub mod limits;
pub mod linger;
pub mod redis_driver;

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, connect_info::Connected},
    http::{HeaderMap, header, request::Parts},
    serve::{IncomingStream, ListenerExt, TapIo},
};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use first_ping::{FirstPingIo, FirstPingListener};
use linger::LingeringTcp;

/// Connections the kernel completes and queues before the server accepts them (capped by
/// `net.core.somaxconn`). tokio's default of 1,024 overflows in a reconnect storm, and a
/// dropped handshake costs the client a one-second SYN retry.
const LISTEN_BACKLOG: u32 = 8192;

/// Binds `addr` (port 0 picks a free port) with [`LISTEN_BACKLOG`].
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The listener of [`accepting`].
pub type Accepting = TapIo<FirstPingListener, fn(&mut FirstPingIo<LingeringTcp>)>;

/// The listener `axum::serve` gets: Engine.IO connections answer the first PING themselves
/// ([`first_ping`]) and are cut when `sever` is cancelled (a drain), every connection
/// lingers when the server drops it while the client still sends ([`linger`]), and every connection
/// sends small frames (acks, events) at once instead of waiting on the peer's delayed ACK.
pub fn accepting(listener: TcpListener, sever: CancellationToken) -> Accepting {
    FirstPingListener { listener, sever }.tap_io(set_nodelay)
}

fn set_nodelay(io: &mut FirstPingIo<LingeringTcp>) {
    if let Err(err) = io.get_mut().get_mut().set_nodelay(true) {
        tracing::debug!(error = %err, "TCP_NODELAY not set");
    }
}

/// What the server knows of a request's connection (its `ConnectInfo`): the peer address,
/// and the switch that marks the connection as Engine.IO for the drain
/// ([`engine_switch::EngineSwitch`]).
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub engine: Option<engine_switch::EngineSwitch>,
}

impl Connected<IncomingStream<'_, Accepting>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Accepting>) -> Self {
        Self { addr: *stream.remote_addr(), engine: stream.io().engine_switch() }
    }
}

/// The token of an `Authorization: Bearer …` header, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// The `token` query parameter of a request (a handshake), if any.
pub fn query_token(parts: &Parts) -> Option<&str> {
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| pair.strip_prefix("token=")).filter(|t| !t.is_empty())
}

/// The address a request (or a Socket.IO handshake) comes from: the peer, or behind a
/// trusted proxy the last `X-Forwarded-For` hop (the one our own proxy appended; earlier
/// hops are client-controlled). REST rate limits and the socket gateway's per-address
/// connection limit both count by it.
pub fn client_ip(parts: &Parts, trust_proxy: bool) -> Option<IpAddr> {
    let forwarded = || {
        let header = parts.headers.get("x-forwarded-for")?.to_str().ok()?;
        header.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
    };
    trust_proxy.then(forwarded).flatten().or_else(|| parts.extensions.get::<ConnectInfo<Peer>>().map(|c| c.0.addr.ip()))
}

/// A disconnect reason as Socket.IO names it (what the UI shows).
pub fn disconnect_reason(reason: &socketioxide::socket::DisconnectReason) -> &'static str {
    use socketioxide::socket::DisconnectReason::*;
    match reason {
        TransportClose => "transport close",
        TransportError => "transport error",
        HeartbeatTimeout => "ping timeout",
        ClientNSDisconnect => "client namespace disconnect",
        ServerNSDisconnect => "server namespace disconnect",
        ClosingServer => "server shutting down",
        MultipleHttpPollingError | PacketParsingError => "parse error",
    }
}
