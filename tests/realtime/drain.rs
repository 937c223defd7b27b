//! A graceful drain (SIGTERM) cuts Engine.IO connections instead of closing them with a
//! close packet (`1`) or a namespace disconnect (`41`): python-socketio takes either for the
//! server hanging up on purpose and never reconnects, while a cut transport is an error every
//! client reconnects from, as after a stock Node `io.close()` (issue 17, point 1).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

use crate::support::{Mode, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_cuts_engine_io_connections_without_a_close_packet() {
    let app = TestApp::spawn(Mode::Embedded).await;
    let user = app.register("Ann").await;
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", app.base.replacen("http", "ws", 1));
    let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    drained_without_goodbye(app, ws, &user.token).await;
}

/// nginx reuses its keep-alive connections to the upstream: an Engine.IO websocket may come
/// after plain requests on the same connection, and it must be cut all the same (it was
/// closed with a close packet, and python-socketio behind nginx did not reconnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_cuts_an_engine_io_websocket_that_came_after_other_requests_on_its_connection() {
    let app = TestApp::spawn(Mode::Embedded).await;
    let user = app.register("Ann").await;
    let mut tcp = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.expect("connect");
    for _ in 0..2 {
        tcp.write_all(b"GET /health/live HTTP/1.1\r\nHost: parley\r\n\r\n").await.unwrap();
        read_response(&mut tcp).await;
    }
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", app.base.replacen("http", "ws", 1));
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.expect("the upgrade on the same connection");
    drained_without_goodbye(app, ws, &user.token).await;
}

/// Reads one HTTP response (head and `Content-Length` body) off a keep-alive connection.
async fn read_response(tcp: &mut tokio::net::TcpStream) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tcp.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the connection closed: {}", String::from_utf8_lossy(&buffer));
        buffer.extend_from_slice(&chunk[..n]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .expect("a Content-Length");
        if buffer.len() >= end + 4 + length {
            return;
        }
    }
}

/// Connects `/chat` on `ws`, drains the server, and checks the connection ends without an
/// Engine.IO close packet or a namespace disconnect.
async fn drained_without_goodbye<S>(app: TestApp, mut ws: WebSocketStream<S>, token: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let open = ws.next().await.expect("a frame").expect("the open packet");
    assert!(open.to_text().is_ok_and(|t| t.starts_with("0{")), "{open:?}");
    let connect = format!("40/chat,{}", json!({ "token": token }));
    futures_util::SinkExt::send(&mut ws, Message::text(connect)).await.expect("send CONNECT");
    loop {
        let frame = ws.next().await.expect("a frame").expect("a frame");
        if frame.to_text().is_ok_and(|t| t.contains("sync:complete")) {
            break;
        }
    }
    drop(app); // the server's shutdown signal: it drains.
    let mut after = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => after.push(text.to_string()),
            Ok(Some(Ok(Message::Close(close)))) => {
                after.push(format!("close frame {close:?}"));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break,
            Err(_) => panic!("the connection was not cut within 10 s of the drain; got {after:?}"),
        }
    }
    assert!(
        !after.iter().any(|frame| frame == "1" || frame.starts_with("41")),
        "a drain must not say goodbye (clients would not reconnect): {after:?}"
    );
}
