//! `/chat/ws`, seed 002's raw WebSocket protocol: the greeting, a bad token, sends with
//! `tempId` (dedup), reads, typing, presence and blocks, a raw client and a Socket.IO client
//! in one conversation (in `replicated::…` on different replicas), bad input that harms
//! nobody else, the heartbeat, and a flood.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::support::{
    Mode, TestApp,
    raw::{POLICY, RawClient},
};
use crate::{WAIT, direct, in_all_modes};

in_all_modes!(
    a_bad_or_missing_token_gets_the_seeds_error_and_a_close,
    a_raw_client_and_a_socketio_client_talk_in_one_conversation,
    bad_input_gets_the_error_envelope_and_harms_nobody,
    a_flood_is_refused_then_closed,
);

async fn a_bad_or_missing_token_gets_the_seeds_error_and_a_close(app: TestApp) {
    for token in [None, Some("garbage")] {
        let mut client = RawClient::connect(&app.base, token).await;
        let error = client.expect("error").await;
        assert_eq!(error["error"]["code"], "unauthorized", "{error}");
        assert!(error["error"]["message"].is_string());
        assert_eq!(client.expect_close().await, Some(POLICY));
    }
    let user = app.register("Ann").await;
    let mut by_header = RawClient::connect_with_header(&app.base, &user.token).await;
    let hello = by_header.expect("connection.success").await;
    assert_eq!(hello["userId"], json!(user.id));
    assert!(hello["connectedAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{hello}");
    assert!(by_header.expect("status.bulk").await["users"].is_array());
}

async fn a_raw_client_and_a_socketio_client_talk_in_one_conversation(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    crate::presence::befriend(&ann, &bob).await;
    let (here, there) = crate::replicas(&app);
    let bob_socket = crate::connect_at(&there, &bob.token).await;
    bob_socket.emit_with_ack("subscribe", json!({"conversationId": conversation}), WAIT).await.unwrap();
    let mut ann_raw = RawClient::connect_as(&here, &ann.token).await;
    // Presence: bob hears ann come online.
    let online = bob_socket.expect_event("presence:update", WAIT).await;
    assert_eq!((online["userId"].clone(), online["status"].clone()), (json!(ann.id), json!("online")));

    // Raw → Socket.IO, with the seed's fields.
    let send = json!({"conversationId": conversation, "type": "text", "content": "Hello there!", "tempId": "temp-123"});
    ann_raw.send("message.send", send.clone()).await;
    let sent = ann_raw.expect("message.sent").await;
    assert_eq!(sent["tempId"], "temp-123");
    let message = &sent["message"];
    assert_eq!((message["type"].clone(), message["isRead"].clone()), (json!("text"), json!(false)));
    assert_eq!((message["content"].clone(), message["senderId"].clone()), (json!("Hello there!"), json!(ann.id)));
    let received = bob_socket.expect_event("message:received", WAIT).await;
    assert_eq!(received["message"]["id"], message["id"]);
    // A retried tempId is the original, stored once, and reaches nobody again.
    ann_raw.send("message.send", send).await;
    assert_eq!(ann_raw.expect("message.sent").await["message"]["id"], message["id"]);
    bob_socket.assert_no_event("message:received", "a retried tempId was delivered again").await;
    let history = bob.client.get(&format!("/api/conversations/{conversation}/messages")).await;
    assert_eq!(history.body["messages"].as_array().map(Vec::len), Some(1));

    // Socket.IO → raw: message.new with the sender's profile (avatar).
    let ack = crate::send(&bob_socket, conversation, "b-1", "hi ann").await;
    assert_eq!(ack["ok"], true, "{ack}");
    let new = ann_raw.expect("message.new").await;
    assert_eq!(new["message"]["content"], "hi ann");
    assert_eq!(new["message"]["sender"]["username"], json!(bob.username));
    assert!(new["message"]["sender"].get("avatar").is_some(), "{new}");

    // Typing both ways: the raw client never subscribed, and hears it anyway.
    ann_raw.send("typing.start", json!({"conversationId": conversation})).await;
    assert_eq!(bob_socket.expect_event("typing:started", WAIT).await["userId"], json!(ann.id));
    bob_socket.emit_with_ack("typing:start", json!({"conversationId": conversation}), WAIT).await.unwrap();
    let typing = ann_raw.expect("typing.start").await;
    assert_eq!((typing["conversationId"].clone(), typing["userId"].clone()), (json!(conversation), json!(bob.id)));
    assert_eq!(ann_raw.expect("user_typing").await["is_typing"], true, "seed 000's twin too");

    // A read: the reader's ack, the sender's update.
    ann_raw.send("message.read", json!({"conversationId": conversation})).await;
    let ack = ann_raw.expect("message.read_ack").await;
    assert_eq!(ack["conversationId"], json!(conversation));
    assert!(ack["readAt"].is_string());
    assert_eq!(bob_socket.expect_event("receipt:updated", WAIT).await["userId"], json!(ann.id));
    // And back: bob reads, ann hears message.read_update.
    bob.client
        .put(&format!("/api/conversations/{conversation}/read-status"), json!({"read": true}))
        .await
        .assert_status(200);
    assert_eq!(ann_raw.expect("message.read_update").await["readBy"], json!(bob.id));

    // Ping, and a block by username.
    ann_raw.send("ping", json!({"timestamp": 1_704_067_200})).await;
    assert_eq!(ann_raw.expect("pong").await["timestamp"], 1_704_067_200);
    ann_raw.send("block.add", json!({"username": bob.username})).await;
    let blocked = ann_raw.expect("block.added").await;
    assert_eq!(blocked["username"], json!(bob.username));
    assert!(blocked["blockedAt"].is_string());
    ann_raw.send("block.remove", json!({"username": bob.username})).await;
    assert!(ann_raw.expect("block.removed").await["unblockedAt"].is_string());
    // A send the seed refuses: message.error with the tempId, then the seed's error.
    ann_raw.send("message.send", json!({"conversationId": Uuid::now_v7(), "content": "x", "tempId": "t-9"})).await;
    let refused = ann_raw.expect("message.error").await;
    assert_eq!((refused["tempId"].clone(), refused["code"].clone()), (json!("t-9"), json!("conversation_not_found")));
    assert_eq!(ann_raw.expect("error").await["error"]["code"], "conversation_not_found");
}

async fn bad_input_gets_the_error_envelope_and_harms_nobody(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let mut bystander = RawClient::connect_as(&app.base, &bob.token).await;
    let mut prober = RawClient::connect_as(&app.base, &ann.token).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (garbage, code) in [
        ("not json".to_owned(), "invalid_message"),
        ("{\"payload\": {}}".to_owned(), "invalid_message"),
        (deep, "invalid_message"),
        (json!({"type": "does.not.exist", "payload": {}}).to_string(), "validation_error"),
        (json!({"type": "message.send", "payload": "text"}).to_string(), "validation_error"),
        (json!({"type": "typing.start", "payload": {"conversationId": "x"}}).to_string(), "validation_error"),
        (json!({"type": "block.add", "payload": {"username": "nobody-here"}}).to_string(), "not_found"),
    ] {
        prober.send_text(garbage.clone()).await;
        let error = prober.expect("error").await;
        assert_eq!(error["error"]["code"], code, "{:.60} → {error}", garbage);
    }
    // Half an emoji in a string: refused naming the field, as on /chat and REST.
    let conversation = direct(&ann, &bob).await;
    let half = format!(
        r#"{{"type":"message.send","payload":{{"conversationId":"{conversation}","content":"hi \ud83d","tempId":"h"}}}}"#
    );
    prober.send_text(half).await;
    let error = prober.expect("error").await;
    assert_eq!(error["error"]["code"], "validation_error", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().starts_with("content: "), "{error}");
    prober.send_message(Message::binary(vec![0u8, 159, 146, 150])).await;
    assert_eq!(prober.expect("error").await["error"]["code"], "invalid_message");
    prober.barrier().await;
    // A frame over the size limit closes that one connection.
    prober.send_message(Message::text("x".repeat(10 * 1024 * 1024))).await;
    let code = prober.expect_close().await;
    assert!(matches!(code, Some(1009) | None), "closed with {code:?}");
    // The other user is unaffected.
    bystander.barrier().await;
    let direct = direct(&bob, &ann).await;
    bystander.send("message.send", json!({"conversationId": direct, "content": "still fine", "tempId": "b-1"})).await;
    assert_eq!(bystander.expect("message.sent").await["message"]["content"], "still fine");
}

async fn a_flood_is_refused_then_closed(app: TestApp) {
    let ann = app.register("Ann").await;
    let mut flooder = RawClient::connect_as(&app.base, &ann.token).await;
    let mut calm = RawClient::connect_as(&app.base, &ann.token).await;
    for i in 0..2_000 {
        let ping = json!({"type": "ping", "payload": {"timestamp": i}}).to_string();
        flooder.send_message(Message::text(ping)).await;
    }
    let refused = flooder.expect("error").await;
    assert_eq!(refused["error"]["code"], "rate_limit_exceeded", "{refused}");
    // The close frame is read, though the client was still sending (no reset).
    assert_eq!(flooder.expect_close().await, Some(POLICY));
    // The same user's other connection lives on.
    calm.barrier().await;
    // Connecting again is refused while the user and the address cool down, on any replica;
    // the address covers another user too (every test client comes from 127.0.0.1).
    let bob = app.register("Bob").await;
    let elsewhere = app.replicas().last().copied().expect("a replica");
    for token in [&ann.token, &bob.token] {
        let mut again = RawClient::connect(&elsewhere.base, Some(token)).await;
        let refused = again.expect("error").await;
        assert_eq!(refused["error"]["code"], "rate_limit_exceeded", "{refused}");
        assert_eq!(again.expect_close().await, Some(POLICY));
    }
    app.clock.advance(std::time::Duration::from_secs(60));
    RawClient::connect_as(&elsewhere.base, &ann.token).await.barrier().await;
}

/// The heartbeat (seed 002 §1.3) with short timings: a client that answers ping frames
/// stays; one that goes silent is closed once the pong timeout passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_answering_pings_is_closed() {
    let vars = [("RAW_WS_PING_INTERVAL_MS", "100"), ("RAW_WS_PONG_TIMEOUT_MS", "400")];
    let app = TestApp::try_spawn_with(Mode::Embedded, &vars).await.unwrap();
    let ann = app.register("Ann").await;
    let (mut answering, mut silent) =
        (RawClient::connect_as(&app.base, &ann.token).await, RawClient::connect_as(&app.base, &ann.token).await);
    // At the same time: the silent one reads nothing (so answers no ping) for well past the
    // timeout, while the answering one reads all along (tungstenite answers pings as it reads).
    let silent_one = async {
        // Closed (with 1001, which the client may not get to read: its late pongs can meet
        // the closed socket first); were it still open, this would fail after 5 s.
        let code = silent.go_silent_for(Duration::from_millis(1200)).await;
        assert!(matches!(code, Some(1001) | None), "closed with {code:?}");
    };
    let answering_one = async {
        for _ in 0..8 {
            answering.barrier().await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        answering.barrier().await;
    };
    tokio::join!(silent_one, answering_one);
}
