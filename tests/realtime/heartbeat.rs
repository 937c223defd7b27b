//! The Engine.IO heartbeat as a client sees it, with a short interval
//! (`SOCKET_PING_INTERVAL_MS` 300, `SOCKET_PING_TIMEOUT_MS` 200): the first PING comes one
//! interval after the handshake (engineioxide alone sends it at once; see
//! `src/transport/first_ping.rs`), never ahead of the namespace CONNECT reply; later PINGs come
//! every interval and are not intercepted, so a client that stops answering is closed. Over a
//! websocket and over long-polling. Every wait is bounded; the timing checks are lower bounds
//! (a PING can be late on a busy machine, never early).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::{
    WAIT,
    support::{Mode, TestApp},
};

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(200);
/// Timer granularity: a PING may come this much before its nominal time.
const EARLY: Duration = Duration::from_millis(20);

async fn spawn(mode: Mode) -> Option<TestApp> {
    TestApp::try_spawn_with(mode, &[("SOCKET_PING_INTERVAL_MS", "300"), ("SOCKET_PING_TIMEOUT_MS", "200")]).await
}

crate::in_all_modes_spawned_by!(spawn;
    over_a_websocket_the_first_ping_comes_an_interval_after_the_handshake_and_later_ones_are_the_clients_to_answer,
    over_long_polling_the_first_ping_comes_an_interval_after_the_handshake_and_later_ones_are_the_clients_to_answer,
);

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message, or `None` once the connection is closed (close frame or end).
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a message or the close in time") {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

fn handshake(text: &str) -> Value {
    let open: Value = serde_json::from_str(text.strip_prefix('0').expect("an Engine.IO open packet")).expect("JSON");
    assert_eq!(open["pingInterval"], json!(INTERVAL.as_millis() as u64), "{open}");
    assert_eq!(open["pingTimeout"], json!(TIMEOUT.as_millis() as u64), "{open}");
    open
}

async fn over_a_websocket_the_first_ping_comes_an_interval_after_the_handshake_and_later_ones_are_the_clients_to_answer(
    app: TestApp,
) {
    let user = app.register("Hearty").await;
    let url = app.url("/socket.io/?EIO=4&transport=websocket").replacen("http", "ws", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket");
    handshake(&next_text(&mut ws).await.expect("the handshake"));
    let opened = Instant::now();

    ws.send(Message::text(format!("40/chat,{}", json!({ "token": user.token })))).await.unwrap();
    let connected = next_text(&mut ws).await.expect("the CONNECT reply");
    assert!(connected.starts_with("40/chat,{\"sid\""), "the first packet after the handshake: {connected}");

    // Events of the connect (auth:success, sync:complete, ...) may come before the PING.
    let first_ping = loop {
        let text = next_text(&mut ws).await.expect("the first PING");
        if text == "2" {
            break opened.elapsed();
        }
        assert!(text.starts_with("42/chat,"), "{text}");
    };
    assert!(first_ping >= INTERVAL - EARLY, "first PING {first_ping:?} after the handshake");
    ws.send(Message::text("3")).await.unwrap();
    let answered = Instant::now();

    // The next PING is the client's to answer: left unanswered, the session ends.
    loop {
        let text = next_text(&mut ws).await.expect("the second PING");
        if text == "2" {
            break;
        }
        assert!(text.starts_with("42/chat,"), "{text}");
    }
    let second_ping = answered.elapsed();
    assert!(second_ping >= INTERVAL - EARLY - Duration::from_millis(30), "second PING {second_ping:?} after the pong");
    let unanswered = Instant::now();
    while let Some(text) = next_text(&mut ws).await {
        assert!(text == "1" || text.starts_with("42/chat,"), "after an unanswered PING: {text}");
    }
    assert!(unanswered.elapsed() >= TIMEOUT - EARLY, "closed {:?} after the unanswered PING", unanswered.elapsed());
}

async fn over_long_polling_the_first_ping_comes_an_interval_after_the_handshake_and_later_ones_are_the_clients_to_answer(
    app: TestApp,
) {
    let http = reqwest::Client::new();
    let open = http.get(app.url("/socket.io/?EIO=4&transport=polling")).send().await.unwrap();
    assert_eq!(open.status(), 200);
    let open = handshake(&open.text().await.unwrap());
    let opened = Instant::now();
    let session = app.url(&format!("/socket.io/?EIO=4&transport=polling&sid={}", open["sid"].as_str().unwrap()));
    let poll = || async {
        let reply =
            tokio::time::timeout(WAIT, http.get(&session).send()).await.expect("a poll answer in time").unwrap();
        (reply.status().as_u16(), reply.text().await.unwrap())
    };

    assert_eq!(poll().await, (200, "2".to_owned()), "the first poll");
    let first_ping = opened.elapsed();
    assert!(first_ping >= INTERVAL - EARLY, "first PING {first_ping:?} after the handshake");
    let pong = http.post(&session).body("3").send().await.unwrap();
    assert_eq!((pong.status().as_u16(), pong.text().await.unwrap()), (200, "ok".to_owned()));
    let answered = Instant::now();

    assert_eq!(poll().await, (200, "2".to_owned()), "the second poll");
    assert!(
        answered.elapsed() >= INTERVAL - EARLY - Duration::from_millis(30),
        "second PING {:?} after the pong",
        answered.elapsed()
    );
    // Unanswered: the session is closed (the pending poll gets the close packet, or the
    // next poll finds no session).
    let (status, body) = poll().await;
    assert!(status == 400 || body == "1", "after an unanswered PING: {status} {body}");
}
