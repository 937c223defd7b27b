//! A graceful drain (SIGTERM) cuts Engine.IO connections instead of closing them with a
//! close packet (`1`) or a namespace disconnect (`41`): python-socketio takes either for the
//! server hanging up on purpose and never reconnects, while a cut transport is an error every
//! client reconnects from, as after a stock Node `io.close()` (issue 17, point 1).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Mode, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_cuts_engine_io_connections_without_a_close_packet() {
    let app = TestApp::spawn(Mode::Embedded).await;
    let user = app.register("Ann").await;
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", app.base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let open = ws.next().await.expect("a frame").expect("the open packet");
    assert!(open.to_text().is_ok_and(|t| t.starts_with("0{")), "{open:?}");
    let connect = format!("40/chat,{}", json!({ "token": user.token }));
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
