//! One client: Engine.IO v4 over WebSocket, Socket.IO v5 frames written by hand (cheap
//! enough that the generator is not the bottleneck), namespace `/chat`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpStream, sync::watch};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config,
    tungstenite::{Message, Utf8Bytes, protocol::WebSocketConfig},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a handshake may take before it counts as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Small buffers: the frames are tiny and the storm and idle runs hold up to ~15k sockets.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

pub struct Socket {
    ws: Ws,
}

/// Where the time of one handshake went, both measured from the start of the TCP connect.
#[derive(Clone, Copy, Debug)]
pub struct Handshake {
    /// Until the Socket.IO CONNECT ack of `/chat` (`40/chat,{"sid":…}`).
    pub connected: Duration,
    /// Until `sync:complete`: authenticated, presence sent, replay done.
    pub ready: Duration,
}

impl Socket {
    /// Connects with `auth.token` and returns once the server's replay ended (`sync:complete`).
    pub async fn connect(base: &str, token: &str) -> anyhow::Result<(Self, Handshake)> {
        let started = Instant::now();
        let url = format!("{}/socket.io/?EIO=4&transport=websocket", base.replacen("http", "ws", 1));
        // Nagle off: the frames are small and latency is what is measured.
        let (ws, _) = connect_async_with_config(url, Some(ws_config()), true).await.context("websocket connect")?;
        let mut socket = Self { ws };
        socket.send(format!("40/chat,{{\"token\":\"{token}\"}}")).await?;
        let deadline = started + HANDSHAKE_TIMEOUT;
        let mut connected = None;
        loop {
            let frame = tokio::time::timeout_at(deadline.into(), socket.recv()).await.context("handshake timed out")?;
            let Some(text) = frame? else { bail!("closed during the handshake") };
            if socket.answer_ping(&text).await? {
                continue;
            }
            if text.starts_with("40/chat,") {
                connected = Some(started.elapsed());
            } else if text.starts_with("44/chat") || text.contains("\"auth:error\"") {
                bail!("refused: {text}");
            } else if text.starts_with("42/chat,[\"sync:complete\"") {
                let ready = started.elapsed();
                return Ok((socket, Handshake { connected: connected.unwrap_or(ready), ready }));
            }
        }
    }

    /// The next text frame, or `None` once the server closed the socket. Cancel-safe, so it
    /// can sit in a `select!`.
    pub async fn recv(&mut self) -> anyhow::Result<Option<Utf8Bytes>> {
        while let Some(frame) = self.ws.next().await {
            if let Message::Text(text) = frame? {
                return Ok(Some(text));
            }
        }
        Ok(None)
    }

    /// Answers an Engine.IO ping (`2`) with a pong; false if `frame` was something else.
    /// Every reader must call it: a socket that misses one pong is dropped after `pingTimeout`.
    pub async fn answer_ping(&mut self, frame: &str) -> anyhow::Result<bool> {
        if frame != "2" {
            return Ok(false);
        }
        self.send("3".to_owned()).await?;
        Ok(true)
    }

    pub async fn send(&mut self, frame: String) -> anyhow::Result<()> {
        self.ws.send(Message::text(frame)).await.context("websocket send")
    }

    /// Keeps the socket open, answering pings and ignoring everything else, until `stop`
    /// turns true; then closes it. Fails if the server closes it first.
    pub async fn hold(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                () = stopped(&mut stop) => break,
                frame = self.recv() => {
                    let Some(text) = frame? else { bail!("the server closed the socket") };
                    self.answer_ping(&text).await?;
                }
            }
        }
        self.close().await;
        Ok(())
    }

    /// Sends a WebSocket close frame; errors are irrelevant at that point.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Resolves once `stop` turns true (or its sender is gone). A function of its own so that
/// the `!Send` borrow `wait_for` returns ends before any other await.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// An ack of ours (`43/chat,<id>[{"ok":…}]`): its id and whether it reports success.
pub fn parse_ack(frame: &str) -> Option<(u64, bool)> {
    let rest = frame.strip_prefix("43/chat,")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = rest[..digits].parse().ok()?;
    Some((id, rest[digits..].contains("\"ok\":true")))
}

/// The number right after `marker` in `frame` (e.g. the send time in `"content":"t<µs>"`).
pub fn number_after(frame: &str, marker: &str) -> Option<u64> {
    let start = frame.find(marker)? + marker.len();
    let digits = frame[start..].bytes().take_while(u8::is_ascii_digit).count();
    frame[start..start + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_gives_its_id_and_outcome() {
        assert_eq!(parse_ack(r#"43/chat,17[{"ok":true,"data":{}}]"#), Some((17, true)));
        assert_eq!(parse_ack(r#"43/chat,3[{"ok":false,"error":{"code":"RATE_LIMITED"}}]"#), Some((3, false)));
        assert_eq!(parse_ack(r#"42/chat,["message:received",{}]"#), None);
    }

    #[test]
    fn the_number_after_a_marker_is_read_up_to_the_first_non_digit() {
        let frame = r#"42/chat,["message:received",{"message":{"content":"t12345","seq":9}}]"#;
        assert_eq!(number_after(frame, "\"content\":\"t"), Some(12345));
        assert_eq!(number_after(frame, "\"content\":\"f"), None);
    }
}
