//! One client: Engine.IO v4 over WebSocket, Socket.IO v5 frames written by hand (cheap
//! enough that the generator is not the bottleneck), namespace `/chat`.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::{connect_async, tungstenite::Message};

use crate::Stats;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Socket {
    ws: Ws,
}

impl Socket {
    /// Connects and authenticates; returns once the server's replay ended (`sync:complete`).
    pub async fn connect(base: &str, token: &str) -> anyhow::Result<Self> {
        let url = format!("{}/socket.io/?EIO=4&transport=websocket", base.replacen("http", "ws", 1));
        let (mut ws, _) = connect_async(url).await.context("websocket connect")?;
        ws.send(Message::text(format!("40/chat,{{\"token\":\"{token}\"}}"))).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let frame = tokio::time::timeout_at(deadline.into(), ws.next()).await.context("handshake timed out")?;
            let Some(frame) = frame else { bail!("closed during the handshake") };
            let Message::Text(text) = frame? else { continue };
            if text.as_str() == "2" {
                ws.send(Message::text("3")).await?;
            } else if text.starts_with("44/chat") || text.contains("auth:error") {
                bail!("refused: {text}");
            } else if text.contains("\"sync:complete\"") {
                return Ok(Self { ws });
            }
        }
    }

    /// Sends at `rate` messages/s into `conversation` until `run_for` after `epoch`, reading
    /// acks and deliveries all along; records what falls after `measure_from`.
    pub async fn run(
        mut self,
        conversation: String,
        rate: f64,
        epoch: Instant,
        measure_from: Duration,
        run_for: Duration,
        stats: Arc<Mutex<Stats>>,
    ) -> anyhow::Result<()> {
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        // Spread the clients' schedules so the total rate is smooth.
        let offset = Duration::from_secs_f64(fastrand_fraction(&conversation) * interval.as_secs_f64());
        let mut next_send = epoch + offset;
        let end = epoch + run_for;
        let drain_until = end + Duration::from_secs(5);
        let mut pending: HashMap<u64, Instant> = HashMap::new();
        let mut ack_id: u64 = 0;
        let (mut local_ack, mut local_delivery) = (crate::histogram(), crate::histogram());
        let (mut sent, mut acked, mut errors, mut delivered) = (0u64, 0u64, 0u64, 0u64);
        loop {
            let now = Instant::now();
            if now >= drain_until || (now >= end && pending.is_empty()) {
                break;
            }
            let wake = if now < end { next_send.min(end) } else { drain_until };
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {
                    if Instant::now() >= end || Instant::now() < next_send { continue; }
                    let sent_at = epoch.elapsed().as_micros();
                    let payload = format!(
                        "42/chat,{ack_id}[\"message:send\",{{\"conversationId\":\"{conversation}\",\"clientMessageId\":\"{}\",\"content\":\"t{sent_at}\"}}]",
                        uuid::Uuid::new_v4()
                    );
                    self.ws.send(Message::text(payload)).await?;
                    if epoch.elapsed() >= measure_from {
                        pending.insert(ack_id, Instant::now());
                        sent += 1;
                    }
                    ack_id += 1;
                    next_send += interval;
                }
                frame = self.ws.next() => {
                    let Some(frame) = frame else { bail!("server closed the socket") };
                    let Message::Text(text) = frame? else { continue };
                    let text = text.as_str();
                    if text == "2" {
                        self.ws.send(Message::text("3")).await?;
                    } else if let Some(rest) = text.strip_prefix("43/chat,") {
                        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                        let started = digits.parse::<u64>().ok().and_then(|id| pending.remove(&id));
                        if let Some(started) = started {
                            if rest[digits.len()..].contains("\"ok\":true") {
                                acked += 1;
                                local_ack.record(started.elapsed().as_micros().max(1) as u64).ok();
                            } else {
                                errors += 1;
                            }
                        }
                    } else if text.starts_with("42/chat,[\"message:received\"") {
                        if let Some(sent_at) = sent_time(text) {
                            if Duration::from_micros(sent_at) >= measure_from {
                                let latency = epoch.elapsed().as_micros() as u64 - sent_at;
                                local_delivery.record(latency.max(1)).ok();
                                delivered += 1;
                            }
                        }
                    }
                }
            }
        }
        let mut stats = stats.lock().await;
        if let Some(h) = stats.ack.as_mut() { h.add(&local_ack).ok(); }
        if let Some(h) = stats.delivery.as_mut() { h.add(&local_delivery).ok(); }
        stats.sent += sent;
        stats.acked += acked;
        stats.errors += errors;
        stats.delivered += delivered;
        let _ = self.ws.close(None).await;
        Ok(())
    }
}

/// The send time the content carries (`"content":"t<µs since epoch>"`).
fn sent_time(frame: &str) -> Option<u64> {
    let start = frame.find("\"content\":\"t")? + "\"content\":\"t".len();
    let digits: String = frame[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A stable fraction in [0, 1) from a string (spreads schedules without a rand dependency).
fn fastrand_fraction(seed: &str) -> f64 {
    let hash = seed.bytes().fold(1469598103934665603u64, |h, b| (h ^ b as u64).wrapping_mul(1099511628211));
    (hash % 10_000) as f64 / 10_000.0
}
