//! The first Engine.IO PING comes `pingInterval` after the handshake.
//!
//! The protocol (and the reference server) sends the first PING one `pingInterval` after the
//! handshake; engineioxide 0.17 sends it at once (its heartbeat starts with an interval whose
//! first tick is immediate), so a client sees `0{…}` then `2` before anything else. Clients
//! of the official test suite read "the next message after the handshake" and get that PING.
//!
//! Nothing in engineioxide's API reaches its heartbeat, so Parley answers that first PING
//! itself, right away, before the client sees it: the heartbeat goes on as if the client had
//! answered, and the client's first PING comes one `pingInterval` later, as specified. Every
//! later PING reaches the client, and a client that does not answer is closed as before.
//!
//! * Long-polling: [`with_polling_first_ping`] wraps the Engine.IO service. When it opens a
//!   session, the layer pulls that PING with a GET of its own and answers it with a POST `3`
//!   before the handshake goes back to the client (the client cannot poll before it has the
//!   sid, so it never races those requests).
//! * WebSocket: [`FirstPingListener`] wraps each accepted connection in a [`FirstPingIo`].
//!   Only a connection whose first request is a `GET /socket.io/…` is watched; on any other
//!   (REST, the probes, `/metrics`) the wrapper sees that request line and is a plain pass
//!   through from then on, with no parser in the path. A watched connection looks for a
//!   `101 Switching Protocols` whose first frame is an Engine.IO handshake (`0{…}`). The next frame that is a PING (`2`) is not written; instead a masked PONG frame
//!   (`3`) is handed to the server's reader at the next boundary between the client's frames.
//!   A ping later than [`FIRST_PING_WINDOW`] after the handshake is left alone (engineioxide
//!   then delays it itself), as is anything the wrapper does not recognise. After that first
//!   PING (or on any other connection once its response head is seen not to be a 101) the
//!   wrapper only passes bytes through. (A keep-alive connection whose first request was
//!   not Engine.IO, such as nginx reusing an upstream connection for a later upgrade, is
//!   not watched: that client gets engineioxide's immediate PING, which it answers; only
//!   the timing differs from the protocol.)
//!
//! # What would let this module go
//! engineioxide starting its heartbeat one `pingInterval` after the handshake, as the
//! protocol and the reference server do (its interval's first tick is immediate since
//! Totodore/socketioxide#437), or an option to delay the first tick. With either, delete
//! this module, the `with_polling_first_ping` layer in `app.rs` and `conformance.rs`, and
//! let `transport::accepting` wrap the plain `TcpListener`; the tests in
//! `tests/realtime/heartbeat.rs` and `e2e/conformance.test.mjs` stay and must still pass.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{Method, StatusCode},
    middleware::Next,
    response::Response,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::ServiceExt;

use super::{engine_switch::EngineSwitch, linger::LingeringTcp};

/// How a `101 Switching Protocols` response head starts.
const SWITCHING: &[u8] = b"HTTP/1.1 101 ";
/// A PING frame from the server: FIN + text, unmasked, one byte `2`.
const PING_FRAME: [u8; 3] = [0x81, 0x01, b'2'];
/// A PONG frame as a client sends it: FIN + text, masked with the key 0, one byte `3`.
const PONG_FRAME: [u8; 7] = [0x81, 0x81, 0, 0, 0, 0, b'3'];
/// A PING later than this after the handshake is engineioxide's own timing: it is passed on.
pub const FIRST_PING_WINDOW: Duration = Duration::from_millis(100);
/// How long the layer waits for the first PING of a new long-polling session.
const POLL_WAIT: Duration = Duration::from_secs(1);
/// The largest Engine.IO handshake body the layer reads back.
const HANDSHAKE_LIMIT: usize = 4096;

/// A TCP listener whose connections are [`FirstPingIo`]s. Cancelling `sever` cuts every
/// Engine.IO connection at once (see [`FirstPingIo`]).
pub struct FirstPingListener {
    pub listener: TcpListener,
    pub sever: CancellationToken,
}

impl axum::serve::Listener for FirstPingListener {
    type Io = FirstPingIo<LingeringTcp>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        (FirstPingIo::new(LingeringTcp::new(tcp)).severed_by(self.sever.clone()), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// How an Engine.IO request starts: only connections whose first request does are watched.
const ENGINE_REQUEST: &[u8] = b"GET /socket.io/";

/// Where a connection stands, as far as the first PING goes.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// Nothing read yet, or `seen` bytes of the first request, all matching
    /// [`ENGINE_REQUEST`] so far.
    FirstRequest { seen: usize },
    /// HTTP: each response head is checked for a `101`. `head_end`: the last read ended
    /// with the end of a request head (a client that sent frames ahead of the 101 is left
    /// alone: the wrapper could not tell where they start).
    Http { head_end: bool },
    /// A 101 is going out: `matched` bytes of the `\r\n\r\n` that ends it were seen.
    UpgradeHead { matched: usize },
    /// The 101 is out; the server's first frame is next.
    Handshake,
    /// The first frame was an Engine.IO handshake at `since`: waiting for the first PING.
    Ping { since: Instant, window: Duration },
    /// The first PING was answered (or never will be): bytes pass through.
    Off,
}

/// A connection that answers engineioxide's first PING itself (see the module docs).
#[derive(Debug)]
pub struct FirstPingIo<T> {
    inner: T,
    watch: Watch,
    /// The server's frames, from the 101 on, while [`Watch::Ping`] looks for the PING.
    outbound: Frames,
    /// The client's frames, from the 101 on, until the PONG is handed over.
    inbound: Option<Frames>,
    /// Bytes of [`PONG_FRAME`] handed to the reader so far, once the PING was taken.
    pong: Option<usize>,
    /// The reader waiting on the client, woken when a PONG is due.
    reader: Option<Waker>,
    /// Cancelled when the server drains: an Engine.IO connection then fails its reads and
    /// writes, so the server drops it without a close packet (see [`Sever`]).
    sever: Option<Sever>,
}

/// A graceful drain cuts Engine.IO connections instead of closing them with Engine.IO's
/// close packet: clients take a close packet for the server hanging up on purpose and
/// python-socketio then never reconnects, while a cut transport is an error every client
/// reconnects from (to another replica), as after a stock Node `io.close()`.
#[derive(Debug)]
struct Sever {
    token: CancellationToken,
    /// Allocated once the connection turns out to be Engine.IO (other connections drain
    /// the ordinary HTTP way).
    waiting: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Set by the HTTP layer when a later request of the connection upgrades to an Engine.IO
    /// websocket (see [`EngineSwitch`]).
    armed: EngineSwitch,
}

impl Sever {
    /// Whether the connection is cut (once it is Engine.IO); registers `cx` to hear of it.
    fn cut(&mut self, cx: &mut Context<'_>) -> bool {
        if self.waiting.is_none() && self.armed.is_armed() {
            self.watch();
        }
        match &mut self.waiting {
            Some(waiting) => waiting.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }

    fn watch(&mut self) {
        if self.waiting.is_none() {
            self.waiting = Some(Box::pin(self.token.clone().cancelled_owned()));
        }
    }
}

fn severed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the server is draining")
}

impl<T> FirstPingIo<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            watch: Watch::FirstRequest { seen: 0 },
            outbound: Frames::default(),
            inbound: None,
            pong: None,
            reader: None,
            sever: None,
        }
    }

    /// Engine.IO connections are cut when `token` is cancelled.
    pub fn severed_by(mut self, token: CancellationToken) -> Self {
        self.sever = Some(Sever { token, waiting: None, armed: EngineSwitch::default() });
        self
    }

    /// The switch that marks this connection as Engine.IO (see [`EngineSwitch`]).
    pub fn engine_switch(&self) -> Option<EngineSwitch> {
        self.sever.as_ref().map(|sever| sever.armed.clone())
    }

    fn is_cut(&mut self, cx: &mut Context<'_>) -> bool {
        self.sever.as_mut().is_some_and(|sever| sever.cut(cx))
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// How many of `buf`'s bytes to write, or `None` to take them as written without writing
    /// (the first PING).
    fn before_write(&mut self, buf: &[u8]) -> Option<usize> {
        match self.watch {
            Watch::Off | Watch::FirstRequest { .. } => Some(buf.len()),
            Watch::Http { head_end } => {
                // Keep-alive connections (nginx's, say) may upgrade after other requests.
                if head_end && buf.starts_with(SWITCHING) {
                    self.watch = Watch::UpgradeHead { matched: 0 };
                    self.inbound = Some(Frames::default());
                    return Some(scan_head_end(buf, 0).unwrap_or(buf.len()));
                }
                Some(buf.len())
            }
            // At most up to the end of the head, so the frames start a write of their own.
            Watch::UpgradeHead { matched } => Some(scan_head_end(buf, matched).unwrap_or(buf.len())),
            Watch::Handshake => {
                let Some((header, payload)) = self.outbound.whole_frame(buf) else {
                    self.stop();
                    return Some(buf.len());
                };
                let body = &buf[header..(header + payload).min(buf.len())];
                if buf[0] == 0x81 && body.starts_with(b"0{") {
                    let interval = ping_interval(body).unwrap_or(FIRST_PING_WINDOW * 2);
                    self.watch = Watch::Ping { since: Instant::now(), window: FIRST_PING_WINDOW.min(interval / 2) };
                } else {
                    // An upgrade from long-polling (`3probe`), or not Engine.IO v4.
                    self.stop();
                }
                Some(buf.len().min(header + payload))
            }
            Watch::Ping { since, window } => {
                if since.elapsed() > window {
                    self.stop();
                    return Some(buf.len());
                }
                if !self.outbound.at_boundary() {
                    return Some(self.outbound.rest_of_frame(buf.len()));
                }
                if buf.starts_with(&PING_FRAME) {
                    self.watch = Watch::Off;
                    self.pong = Some(0);
                    if let Some(reader) = self.reader.take() {
                        reader.wake();
                    }
                    return None;
                }
                match self.outbound.whole_frame(buf) {
                    // Another frame first: it goes alone, so the next one starts a write.
                    Some((header, payload)) if !(buf[0] == 0x81 && payload == 1 && buf.len() <= header) => {
                        Some(buf.len().min(header + payload))
                    }
                    _ => {
                        // A frame cut short could be the PING: it is left alone, and so is
                        // everything after it.
                        self.stop();
                        Some(buf.len())
                    }
                }
            }
        }
    }

    /// Notes that `written` bytes went out.
    fn after_write(&mut self, written: &[u8]) {
        match self.watch {
            Watch::UpgradeHead { matched } => match scan_head_end(written, matched) {
                Ok(end) if end == written.len() => self.watch = Watch::Handshake,
                Ok(_) => self.stop(),
                Err(matched) => self.watch = Watch::UpgradeHead { matched },
            },
            Watch::Handshake | Watch::Ping { .. } => self.outbound.advance(written),
            Watch::Http { .. } | Watch::Off | Watch::FirstRequest { .. } => {}
        }
    }

    /// Leaves the connection alone from now on.
    fn stop(&mut self) {
        self.watch = Watch::Off;
        if self.pong.is_none() {
            self.inbound = None;
        }
    }

    /// Whether a write starting with `first` can go out as is (vectored): nothing to watch,
    /// or plain HTTP that is not a 101.
    fn passes_through(&self, first: &[u8]) -> bool {
        match self.watch {
            Watch::Off | Watch::FirstRequest { .. } => true,
            Watch::Http { head_end } => !(head_end && first.starts_with(SWITCHING)),
            _ => false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstPingIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.is_cut(cx) {
            return Poll::Ready(Err(severed()));
        }
        if let (Some(sent), Some(frames)) = (this.pong, &this.inbound)
            && (sent > 0 || frames.at_boundary())
            && buf.remaining() > 0
        {
            let n = (PONG_FRAME.len() - sent).min(buf.remaining());
            buf.put_slice(&PONG_FRAME[sent..sent + n]);
            if sent + n == PONG_FRAME.len() {
                this.pong = None;
                this.inbound = None;
            } else {
                this.pong = Some(sent + n);
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Pending => {
                if this.inbound.is_some() {
                    this.reader = Some(cx.waker().clone());
                }
            }
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if let Some(frames) = &mut this.inbound {
                    frames.advance(read);
                } else if !read.is_empty() {
                    match &mut this.watch {
                        Watch::FirstRequest { seen } => {
                            this.watch = first_request(*seen, read);
                            if matches!(this.watch, Watch::Http { .. })
                                && let Some(sever) = &mut this.sever
                            {
                                sever.watch();
                                // Registers this reader to hear of a drain.
                                if sever.cut(cx) {
                                    return Poll::Ready(Err(severed()));
                                }
                            }
                        }
                        Watch::Http { head_end } => *head_end = read.ends_with(b"\r\n\r\n"),
                        _ => {}
                    }
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstPingIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.is_cut(cx) {
            return Poll::Ready(Err(severed()));
        }
        let Some(limit) = this.before_write(buf) else {
            return Poll::Ready(Ok(PING_FRAME.len()));
        };
        let polled = Pin::new(&mut this.inner).poll_write(cx, &buf[..limit]);
        if let Poll::Ready(Ok(n)) = polled {
            this.after_write(&buf[..n]);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(severed()));
        }
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
        if self.passes_through(first) {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What `read`, the next bytes of the connection's first request after `seen` of them, says
/// about it: still possibly Engine.IO, Engine.IO (watched from now on), or not (left alone).
fn first_request(seen: usize, read: &[u8]) -> Watch {
    let expected = &ENGINE_REQUEST[seen..];
    let n = expected.len().min(read.len());
    if read[..n] != expected[..n] {
        Watch::Off
    } else if seen + n < ENGINE_REQUEST.len() {
        Watch::FirstRequest { seen: seen + n }
    } else {
        Watch::Http { head_end: read.ends_with(b"\r\n\r\n") }
    }
}

/// A position in a stream of websocket frames.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; 14],
    /// Bytes of the current frame's header seen so far.
    have: usize,
    /// Bytes of the current frame's payload still to come.
    payload_left: u64,
}

impl Frames {
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload_left == 0
    }

    /// Moves past `bytes`.
    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if let Some((header, payload)) = frame_lengths(&self.header[..self.have])
                && self.have == header
            {
                self.have = 0;
                self.payload_left = payload;
            }
        }
    }

    /// At a boundary: the header length and payload length of the frame `buf` starts with,
    /// if its header is all there.
    fn whole_frame(&self, buf: &[u8]) -> Option<(usize, usize)> {
        if !self.at_boundary() {
            return None;
        }
        let (header, payload) = frame_lengths(buf)?;
        (buf.len() >= header).then_some((header, usize::try_from(payload).ok()?))
    }

    /// Inside a frame: how many of `len` bytes still belong to it.
    fn rest_of_frame(&self, len: usize) -> usize {
        if self.have > 0 {
            // In the middle of a header: finish it byte by byte.
            return 1.min(len);
        }
        usize::try_from(self.payload_left).map_or(len, |left| left.min(len))
    }
}

/// The header length and payload length of a frame starting with `header`, once enough of it
/// is known (RFC 6455 §5.2).
fn frame_lengths(header: &[u8]) -> Option<(usize, u64)> {
    let (&b1, rest) = header.get(1).zip(header.get(2..))?;
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    let (extended, payload) = match b1 & 0x7f {
        126 => (2, u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?))),
        127 => (8, u64::from_be_bytes(rest.get(..8)?.try_into().ok()?)),
        n => (0, u64::from(n)),
    };
    Some((2 + extended + mask, payload))
}

/// Looks for the `\r\n\r\n` that ends a head, `matched` bytes of it seen before `buf`:
/// `Ok` with where it ends in `buf`, or `Err` with how much of it the end of `buf` matches.
fn scan_head_end(buf: &[u8], mut matched: usize) -> Result<usize, usize> {
    const END: &[u8] = b"\r\n\r\n";
    for (i, &byte) in buf.iter().enumerate() {
        matched = if byte == END[matched] {
            matched + 1
        } else if byte == END[0] {
            1
        } else {
            0
        };
        if matched == END.len() {
            return Ok(i + 1);
        }
    }
    Err(matched)
}

/// `pingInterval` from an Engine.IO handshake (`0{"sid":…,"pingInterval":25000,…}`).
fn ping_interval(handshake: &[u8]) -> Option<Duration> {
    let json = std::str::from_utf8(handshake.get(1..)?).ok()?;
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(Duration::from_millis(value.get("pingInterval")?.as_u64()?))
}

/// `engine` (a router with the Socket.IO layer) with a middleware that answers the first
/// PING of each new long-polling session before its handshake goes back (see the module docs).
pub fn with_polling_first_ping(engine: Router) -> Router {
    let inner = engine.clone();
    engine.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let handshake = polling_handshake(&request).map(|path| (inner.clone(), path));
        async move {
            match handshake {
                Some((engine, path)) => answer_polling_first_ping(engine, &path, request, next).await,
                None => next.run(request).await,
            }
        }
    }))
}

async fn answer_polling_first_ping(engine: Router, path: &str, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, HANDSHAKE_LIMIT).await else {
        return Response::from_parts(parts, Body::empty());
    };
    if let Some(sid) = handshake_sid(&bytes) {
        answer_first_ping(engine, path, &sid).await;
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The Engine.IO path of a long-polling handshake (`GET …?EIO=4&transport=polling`, no sid).
fn polling_handshake(request: &Request) -> Option<String> {
    let uri = request.uri();
    if request.method() != Method::GET || !uri.path().starts_with(super::handshake::ENGINE_PATH) {
        return None;
    }
    let query = uri.query()?;
    let mut polling = false;
    let mut v4 = false;
    for pair in query.split('&') {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("sid", _) => return None,
            ("transport", "polling") => polling = true,
            ("EIO", "4") => v4 = true,
            _ => {}
        }
    }
    (polling && v4).then(|| uri.path().to_owned())
}

/// The sid of a handshake body `0{"sid":…}`, if it can go in a query string as is.
fn handshake_sid(body: &[u8]) -> Option<String> {
    let open: serde_json::Value = serde_json::from_slice(body.strip_prefix(b"0")?).ok()?;
    let sid = open.get("sid")?.as_str()?;
    sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_').then(|| sid.to_owned())
}

/// Polls the new session once; if that yields exactly its first PING, answers it.
async fn answer_first_ping(engine: Router, path: &str, sid: &str) {
    let uri = format!("{path}?EIO=4&transport=polling&sid={sid}");
    let poll = Request::get(&uri).body(Body::empty()).expect("a valid request");
    let payload = match tokio::time::timeout(POLL_WAIT, engine.clone().oneshot(poll)).await {
        Ok(Ok(response)) if response.status() == StatusCode::OK => {
            axum::body::to_bytes(response.into_body(), HANDSHAKE_LIMIT).await.unwrap_or_default()
        }
        _ => return,
    };
    if payload.as_ref() != b"2" {
        tracing::warn!(%sid, payload = ?payload, "a new long-polling session's first poll was not a PING");
        return;
    }
    let pong = Request::post(&uri).body(Body::from("3")).expect("a valid request");
    if let Ok(response) = engine.oneshot(pong).await
        && response.status() != StatusCode::OK
    {
        tracing::debug!(%sid, status = %response.status(), "answering the first PING failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_follow_rfc_6455() {
        assert_eq!(frame_lengths(&[0x81]), None);
        assert_eq!(frame_lengths(&[0x81, 0x01]), Some((2, 1)));
        assert_eq!(frame_lengths(&[0x81, 0x81]), Some((6, 1)));
        assert_eq!(frame_lengths(&[0x82, 126, 0x01]), None);
        assert_eq!(frame_lengths(&[0x82, 126, 0x01, 0x00]), Some((4, 256)));
        assert_eq!(frame_lengths(&[0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0]), Some((14, 65536)));
    }

    #[test]
    fn frames_advance_across_splits() {
        let mut frames = Frames::default();
        // masked "40" (6-byte header, 2 bytes), then a 300-byte binary frame
        let mut stream = vec![0x81, 0x82, 1, 2, 3, 4, b'4' ^ 1, b'0' ^ 2];
        stream.extend([0x82, 0x80 | 126, 0x01, 0x2c, 0, 0, 0, 0]);
        stream.extend([7u8; 300]);
        for chunk in stream.chunks(5) {
            frames.advance(chunk);
        }
        assert!(frames.at_boundary());
        frames.advance(&stream[..3]);
        assert!(!frames.at_boundary());
    }

    #[test]
    fn head_end_is_found_across_writes() {
        assert_eq!(scan_head_end(b"HTTP/1.1 101 OK\r\nA: b\r\n\r\n", 0), Ok(25));
        assert_eq!(scan_head_end(b"\r\n", 2), Ok(2));
        assert_eq!(scan_head_end(b"HTTP/1.1 101 OK\r\n", 0), Err(2));
        assert_eq!(scan_head_end(b"\r\r\n\r\n", 0), Ok(5));
    }

    const REQUEST: &[u8] = b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
    const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";

    fn text_frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x81, payload.len() as u8];
        frame.extend_from_slice(payload);
        frame
    }

    /// The server's end of a connection, and the client's.
    fn connection() -> (FirstPingIo<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(4096);
        (FirstPingIo::new(server), client)
    }

    async fn read_some(io: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0; 1024];
        let n = io.read(&mut buf).await.unwrap();
        buf.truncate(n);
        buf
    }

    #[tokio::test]
    async fn the_first_ping_is_answered_at_the_next_client_frame_boundary_and_later_ones_pass() {
        use tokio::io::AsyncWriteExt;
        let (mut server, mut client) = connection();
        client.write_all(REQUEST).await.unwrap();
        assert_eq!(read_some(&mut server).await, REQUEST);
        server.write_all(SWITCHING).await.unwrap();
        let open = text_frame(br#"0{"sid":"abc","upgrades":[],"pingInterval":300,"pingTimeout":200}"#);
        server.write_all(&open).await.unwrap();
        // The client is halfway through a masked `40` frame when the PING goes out.
        let connect = [0x81, 0x82, 1, 2, 3, 4, b'4' ^ 1, b'0' ^ 2];
        client.write_all(&connect[..4]).await.unwrap();
        assert_eq!(read_some(&mut server).await, connect[..4]);
        server.write_all(&PING_FRAME).await.unwrap();
        server.flush().await.unwrap();
        // The rest of the client's frame first, then the PONG.
        client.write_all(&connect[4..]).await.unwrap();
        assert_eq!(read_some(&mut server).await, connect[4..]);
        assert_eq!(read_some(&mut server).await, PONG_FRAME);
        // The next PING is the client's.
        server.write_all(&PING_FRAME).await.unwrap();
        let mut expected = SWITCHING.to_vec();
        expected.extend_from_slice(&open);
        expected.extend_from_slice(&PING_FRAME);
        let mut seen = Vec::new();
        while seen.len() < expected.len() {
            seen.extend(read_some(&mut client).await);
        }
        assert_eq!(seen, expected);
        client.write_all(&connect).await.unwrap();
        assert_eq!(read_some(&mut server).await, connect);
    }

    #[tokio::test]
    async fn other_connections_pass_through_untouched() {
        use tokio::io::AsyncWriteExt;
        // A plain response whose body looks like frames; an upgrade from long-polling
        // (its first frame is `3probe`, not a handshake).
        for (response, frames) in [
            (&b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"[..], PING_FRAME.to_vec()),
            (SWITCHING, [text_frame(b"3probe"), PING_FRAME.to_vec()].concat()),
        ] {
            let (mut server, mut client) = connection();
            client.write_all(REQUEST).await.unwrap();
            read_some(&mut server).await;
            server.write_all(response).await.unwrap();
            server.write_all(&frames).await.unwrap();
            let expected = [response, &frames[..]].concat();
            let mut seen = Vec::new();
            while seen.len() < expected.len() {
                seen.extend(read_some(&mut client).await);
            }
            assert_eq!(seen, expected);
        }
    }

    #[test]
    fn only_engine_io_first_requests_are_watched() {
        assert_eq!(ENGINE_REQUEST, format!("GET {}/", super::super::handshake::ENGINE_PATH).as_bytes());
        assert!(matches!(first_request(0, REQUEST), Watch::Http { head_end: true }));
        assert!(matches!(first_request(0, b"GET /socket"), Watch::FirstRequest { seen: 11 }));
        assert!(matches!(first_request(11, b".io/?EIO=4"), Watch::Http { head_end: false }));
        assert!(matches!(first_request(0, b"GET /api/conversations HTTP/1.1\r\n\r\n"), Watch::Off));
        assert!(matches!(first_request(0, b"POST /socket.io/?EIO=4"), Watch::Off));
        assert!(matches!(first_request(4, b"/health"), Watch::Off));
    }

    #[tokio::test]
    async fn a_connection_whose_first_request_is_not_engine_io_is_never_touched() {
        use tokio::io::AsyncWriteExt;
        // REST first, then (keep-alive) an upgrade whose first frame is a handshake and then
        // a PING: the PING reaches the client, because the connection is not watched.
        let (mut server, mut client) = connection();
        let rest = b"GET /api/users/me HTTP/1.1\r\n\r\n";
        client.write_all(rest).await.unwrap();
        assert_eq!(read_some(&mut server).await, rest);
        assert!(matches!(server.watch, Watch::Off));
        client.write_all(REQUEST).await.unwrap();
        read_some(&mut server).await;
        let open = text_frame(br#"0{"sid":"abc","upgrades":[],"pingInterval":300,"pingTimeout":200}"#);
        let expected = [SWITCHING, &open[..], &PING_FRAME[..]].concat();
        server.write_all(&expected).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < expected.len() {
            seen.extend(read_some(&mut client).await);
        }
        assert_eq!(seen, expected);
    }

    #[test]
    fn polling_handshakes_are_recognised() {
        let handshake = |uri: &str| polling_handshake(&Request::get(uri).body(Body::empty()).unwrap());
        assert_eq!(handshake("/socket.io/?EIO=4&transport=polling").as_deref(), Some("/socket.io/"));
        assert_eq!(handshake("/socket.io/?EIO=4&transport=polling&t=abc").as_deref(), Some("/socket.io/"));
        assert_eq!(handshake("/socket.io/?EIO=4&transport=polling&sid=x"), None);
        assert_eq!(handshake("/socket.io/?EIO=3&transport=polling"), None);
        assert_eq!(handshake("/socket.io/?EIO=4&transport=websocket"), None);
        assert_eq!(handshake("/api/x?EIO=4&transport=polling"), None);
        assert_eq!(handshake_sid(br#"0{"sid":"aB-_9","pingInterval":300}"#).as_deref(), Some("aB-_9"));
        assert_eq!(handshake_sid(br#"0{"sid":"a&b"}"#), None);
        assert_eq!(ping_interval(br#"0{"sid":"x","pingInterval":300}"#), Some(Duration::from_millis(300)));
    }
}
