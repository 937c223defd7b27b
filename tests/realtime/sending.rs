//! `message:send`: acks, `message:sent`, `message:received` exactly once, dedup across
//! transports, validation, permissions, rate limits, ordering, legacy names.

use serde_json::json;

use crate::support::{
    Mode, TestApp,
    socket::{ConnectOptions, SocketClient},
};
use crate::{WAIT, connect, direct, group, in_all_modes, send, send_payload};

in_all_modes!(
    a_message_reaches_every_other_socket_once_and_the_sender_gets_message_sent,
    a_retry_returns_the_original_on_any_transport_and_broadcasts_nothing,
    bad_payloads_get_validation_errors_and_the_socket_lives_on,
    validation_acks_name_the_field_in_details,
    strangers_unknown_conversations_and_blocked_peers_are_refused,
    rest_sends_reach_sockets_like_socket_sends,
    edits_and_deletes_reach_participants,
    a_burst_from_one_socket_keeps_its_order,
    legacy_message_send_uses_temp_id_and_legacy_events,
    legacy_twins_go_only_to_sockets_that_speak_them,
    subscribing_needs_participation,
);

async fn a_message_reaches_every_other_socket_once_and_the_sender_gets_message_sent(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = direct(&ann, &bob).await;
    let (ann_phone, ann_laptop) = (connect(&app, &ann).await, connect(&app, &ann).await);
    let bob_socket = connect(&app, &bob).await;

    let ack = send(&ann_phone, conversation, "c-1", "hello bob").await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["data"]["seq"], 1);
    let sent = ann_phone.expect_event("message:sent", WAIT).await;
    assert_eq!(sent["clientMessageId"], "c-1");
    assert_eq!(sent["messageId"], ack["data"]["messageId"]);
    assert_eq!((sent["seq"].clone(), sent["status"].clone()), (json!(1), json!("delivered")));

    for socket in [&bob_socket, &ann_laptop] {
        let received = socket.expect_event("message:received", WAIT).await;
        let message = &received["message"];
        assert_eq!(message["id"], ack["data"]["messageId"]);
        assert_eq!(message["content"], "hello bob");
        assert_eq!(message["sender"]["id"], ann.id.to_string());
        assert!(message["sender"].get("email").is_none(), "no email in broadcasts");
    }
    // A reply acts as a barrier: by the time it arrives, any stray copy would have too.
    send(&bob_socket, conversation, "b-1", "hi ann").await;
    ann_phone.expect_event("message:received", WAIT).await;
    let ann_saw: Vec<_> = ann_phone.drain().into_iter().filter(|(e, _)| e == "message:received").collect();
    assert!(ann_saw.is_empty(), "the sender's socket got its own message back: {ann_saw:?}");
    bob_socket.expect_event("message:sent", WAIT).await;
    assert!(bob_socket.drain().iter().all(|(e, _)| e != "message:received"), "bob got a duplicate");
}

async fn a_retry_returns_the_original_on_any_transport_and_broadcasts_nothing(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = direct(&ann, &bob).await;
    let (first, second) = (connect(&app, &ann).await, connect(&app, &ann).await);
    let bob_socket = connect(&app, &bob).await;
    let original = send(&first, conversation, "once", "only once").await;
    bob_socket.expect_event("message:received", WAIT).await;
    second.expect_event("message:received", WAIT).await;

    let again = send(&first, conversation, "once", "only once").await;
    let elsewhere = send(&second, conversation, "once", "only once").await;
    let over_rest = ann
        .client
        .post(
            &format!("/api/conversations/{conversation}/messages"),
            json!({"clientMessageId": "once", "content": "only once"}),
        )
        .await;
    for retry in [&again["data"], &elsewhere["data"]] {
        assert_eq!(retry["messageId"], original["data"]["messageId"]);
        assert_eq!((retry["seq"].clone(), retry["duplicate"].clone()), (json!(1), json!(true)));
    }
    assert_eq!(
        over_rest.assert_status(200)["id"],
        original["data"]["messageId"],
        "REST retries answer 200 with the original"
    );

    send(&first, conversation, "next", "barrier").await;
    let bob_events: Vec<_> = {
        bob_socket.expect_event("message:received", WAIT).await;
        bob_socket.drain()
    };
    assert!(bob_events.iter().all(|(e, _)| e != "message:received"), "retries were broadcast: {bob_events:?}");
    let history = bob.client.get(&format!("/api/conversations/{conversation}/messages")).await;
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 2);
}

async fn bad_payloads_get_validation_errors_and_the_socket_lives_on(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = direct(&ann, &bob).await;
    let socket = connect(&app, &ann).await;
    let long = "x".repeat(4001);
    for payload in [
        json!(null),
        json!("text"),
        json!([1, 2]),
        json!({"conversationId": conversation, "clientMessageId": "v"}),
        json!({"conversationId": conversation, "clientMessageId": "v", "content": ""}),
        json!({"conversationId": conversation, "clientMessageId": "v", "content": long}),
        json!({"conversationId": conversation, "content": "no id"}),
        json!({"conversationId": "not-a-uuid", "clientMessageId": "v", "content": "x"}),
        json!({"conversationId": conversation, "clientMessageId": "v", "content": "x", "contentType": "gif"}),
        json!({"conversationId": conversation, "clientMessageId": "v", "content": "x", "contentType": "image", "media": "nope"}),
    ] {
        let ack = socket.emit_with_ack("message:send", payload.clone(), WAIT).await.unwrap();
        assert_eq!(ack["error"]["code"], "VALIDATION_ERROR", "{payload} → {ack}");
        let error = socket.expect_event("message:error", WAIT).await;
        assert_eq!(error["code"], "VALIDATION_ERROR");
    }
    // Half an emoji (`"😀".slice(0, 1)`, which `JSON.stringify` writes as `"\ud83d"`) is
    // refused naming the field, as REST refuses it (tests/api/edges.rs).
    let half = format!(r#"{{"conversationId":"{conversation}","clientMessageId":"half","content":"hi \ud83d"}}"#);
    let ack = socket.emit_text_with_ack("message:send", &half, WAIT).await.unwrap();
    assert_eq!(ack["error"]["code"], "VALIDATION_ERROR", "{ack}");
    assert_eq!(ack["error"]["details"]["field"], "content", "{ack}");
    assert!(ack["error"]["message"].as_str().unwrap().contains("surrogate"), "{ack}");
    let fine = send(&socket, conversation, "ok", "still here").await;
    assert_eq!(fine["ok"], true);
    assert_eq!(fine["data"]["message"]["seq"], 1, "the refused one stored nothing: {fine}");
}

async fn validation_acks_name_the_field_in_details(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = direct(&ann, &bob).await;
    let socket = connect(&app, &ann).await;
    let cases = [
        ("message:send", json!({"conversationId": conversation, "clientMessageId": "v", "content": ""}), "content"),
        ("message:send", json!({"conversationId": "nope", "clientMessageId": "v", "content": "x"}), "conversationId"),
        ("message:send", json!({"conversationId": conversation, "content": "x"}), "clientMessageId"),
        ("receipt:read", json!({"conversationId": conversation}), "messageId"),
        ("subscribe", json!({"conversationId": 7}), "conversationId"),
        ("typing:start", json!({}), "conversationId"),
        ("message.typing", json!({"conversationId": conversation, "is_typing": "yes"}), "is_typing"),
        ("presence:heartbeat", json!({"status": "busy"}), "status"),
        ("sync", json!({"conversations": [{"conversationId": conversation, "afterSeq": -1}]}), "afterSeq"),
        ("block.add", json!({}), "username"),
    ];
    for (event, payload, field) in cases {
        let ack = socket.emit_with_ack(event, payload.clone(), WAIT).await.unwrap();
        assert_eq!(ack["ok"], false, "{event} {payload} → {ack}");
        assert_eq!(ack["error"]["code"], "VALIDATION_ERROR", "{event} {payload} → {ack}");
        assert_eq!(ack["error"]["details"]["field"], field, "{event} {payload} → {ack}");
        assert!(ack["error"]["message"].as_str().is_some_and(|m| m.contains(field)), "{ack}");
    }
    let fine = send(&socket, conversation, "ok", "still here").await;
    assert_eq!(fine["ok"], true);
}

async fn strangers_unknown_conversations_and_blocked_peers_are_refused(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let eve = app.register("Eve").await;
    let conversation = direct(&ann, &bob).await;
    let eve_socket = connect(&app, &eve).await;
    let ack = send(&eve_socket, conversation, "e", "let me in").await;
    assert_eq!(ack["error"]["code"], "NOT_IN_CONVERSATION");
    let error = eve_socket.expect_event("message:error", WAIT).await;
    assert_eq!((error["code"].clone(), error["clientMessageId"].clone()), (json!("NOT_IN_CONVERSATION"), json!("e")));
    let ack = send(&eve_socket, uuid::Uuid::now_v7(), "e2", "where").await;
    assert_eq!(ack["error"]["code"], "NOT_FOUND");

    bob.client.post_empty(&format!("/api/users/{}/block", ann.id)).await.assert_status(204);
    let ann_socket = connect(&app, &ann).await;
    let ack = send(&ann_socket, conversation, "blocked", "hello?").await;
    assert_eq!(ack["error"]["code"], "BLOCKED");
    let bob_socket = connect(&app, &bob).await;
    assert_eq!(
        send(&bob_socket, conversation, "b", "no").await["error"]["code"],
        "BLOCKED",
        "the blocker cannot write either"
    );
}

async fn rest_sends_reach_sockets_like_socket_sends(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = direct(&ann, &bob).await;
    let (ann_socket, bob_socket) = (connect(&app, &ann).await, connect(&app, &bob).await);
    let reply = ann
        .client
        .post(
            &format!("/api/conversations/{conversation}/messages"),
            json!({"clientMessageId": "r-1", "content": "over http"}),
        )
        .await;
    let body = reply.assert_status(201);
    assert_eq!(body["seq"], 1);
    for socket in [&ann_socket, &bob_socket] {
        let received = socket.expect_event("message:received", WAIT).await;
        assert_eq!(received["message"]["id"], body["id"], "every socket, the sender's too, hears a REST send");
    }
}

async fn edits_and_deletes_reach_participants(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = direct(&ann, &bob).await;
    let bob_socket = connect(&app, &bob).await;
    let sent = ann
        .client
        .post(
            &format!("/api/conversations/{conversation}/messages"),
            json!({"clientMessageId": "e-1", "content": "typo"}),
        )
        .await;
    let id = sent.body["id"].as_str().unwrap().to_owned();
    bob_socket.expect_event("message:received", WAIT).await;
    let path = format!("/api/conversations/{conversation}/messages/{id}");
    ann.client.patch(&path, json!({"content": "fixed"})).await.assert_status(200);
    assert_eq!(bob_socket.expect_event("message:updated", WAIT).await["message"]["content"], "fixed");
    bob.client.patch(&path, json!({"content": "not mine"})).await.assert_error(403, "FORBIDDEN");
    bob.client.delete(&path).await.assert_error(403, "FORBIDDEN");
    let tombstone = ann.client.delete(&path).await;
    assert!(tombstone.assert_status(200)["content"].is_null());
    assert!(tombstone.body["deletedAt"].is_string());
    assert_eq!(
        bob_socket.expect_event("message:deleted", WAIT).await,
        json!({"conversationId": conversation, "messageId": id})
    );
}

async fn a_burst_from_one_socket_keeps_its_order(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = direct(&ann, &bob).await;
    let (socket, bob_socket) = (connect(&app, &ann).await, connect(&app, &bob).await);
    // 25: within the per-user limit of 30 a minute.
    for i in 0..25 {
        socket.emit("message:send", send_payload(conversation, &format!("burst-{i}"), &format!("{i}"))).await;
    }
    // Sends overlap (a socket's next send is queued while the previous one commits), yet
    // seq, `message:sent` and the peer's `message:received` all keep the order of sending.
    let mut seqs = Vec::new();
    for _ in 0..25 {
        let sent = socket.expect_event("message:sent", WAIT).await;
        let i: i64 = sent["clientMessageId"].as_str().unwrap().trim_start_matches("burst-").parse().unwrap();
        seqs.push((i, sent["seq"].as_i64().unwrap()));
    }
    assert_eq!(seqs, (0..25).map(|i| (i, i + 1)).collect::<Vec<_>>(), "seq follows the order of sending");
    let mut received = Vec::new();
    for _ in 0..25 {
        received.push(bob_socket.expect_event("message:received", WAIT).await["message"]["content"].clone());
    }
    assert_eq!(received, (0..25).map(|i| json!(format!("{i}"))).collect::<Vec<_>>(), "broadcasts keep the order");
}

/// PostgreSQL modes only: the test holds a conversation's row lock from its own connection.
mod on_postgres {
    use crate::support::{Mode, TestApp};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn production() {
        if let Some(app) = TestApp::try_spawn(Mode::Production).await {
            super::a_send_waiting_for_its_commit_does_not_hold_up_the_socket(app).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicated() {
        if let Some(app) = TestApp::try_spawn(Mode::Replicated).await {
            super::a_send_waiting_for_its_commit_does_not_hold_up_the_socket(app).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refusal_in_turn() {
        if let Some(app) = TestApp::try_spawn(Mode::Production).await {
            super::a_refused_send_is_answered_after_the_send_before_it(app).await
        }
    }
}

/// Holds `conversation`'s row lock from a connection of the test's own: a send into it
/// waits in its commit until the returned transaction ends.
async fn lock_conversation(app: &TestApp, conversation: uuid::Uuid) -> sqlx::PgConnection {
    use sqlx::Connection;

    let url = app.state.config.database_url.expose().clone();
    let mut locker = sqlx::PgConnection::connect(&url).await.expect("connect to PostgreSQL");
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("SELECT id FROM conversations WHERE id = $1 FOR UPDATE")
        .bind(conversation)
        .fetch_one(&mut locker)
        .await
        .unwrap();
    locker
}

/// A send refused before it reaches the writer (here, empty content) is still answered in
/// its turn: not before the send ahead of it on the same socket, which waits for its commit.
async fn a_refused_send_is_answered_after_the_send_before_it(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    let socket = connect(&app, &ann).await;
    let mut locker = lock_conversation(&app, conversation).await;

    socket.emit("message:send", send_payload(conversation, "ahead", "waits for the lock")).await;
    let refused = socket.emit_with_ack("message:send", send_payload(conversation, "empty", ""), WAIT);
    tokio::pin!(refused);
    // The first poll writes the send; it cannot be answered yet.
    assert!(tokio::time::timeout(std::time::Duration::ZERO, &mut refused).await.is_err());
    // The ping comes after it on the socket: once its pong is here, an ack sent before the
    // pong would be here too (one connection, in order).
    socket.emit_with_ack("ping", json!({"timestamp": 1}), WAIT).await.expect("the socket goes on");
    let early = tokio::time::timeout(std::time::Duration::ZERO, &mut refused).await;
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    assert!(early.is_err(), "the refusal overtook the send ahead of it: {early:?}");
    let refusal = refused.await.expect("answered once the send ahead is stored");
    assert_eq!((refusal["ok"].clone(), refusal["error"]["code"].clone()), (json!(false), json!("VALIDATION_ERROR")));
    let sent = socket.expect_event("message:sent", WAIT).await;
    assert_eq!(sent["clientMessageId"], "ahead");
}

/// `message:send` holds its socket's queue only until the message has its place in the
/// writer's queue (issue 20): while its commit waits (here, for a row lock the test holds),
/// the socket's next event is answered; the send is acked once the lock is gone.
async fn a_send_waiting_for_its_commit_does_not_hold_up_the_socket(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    let socket = connect(&app, &ann).await;
    let mut locker = lock_conversation(&app, conversation).await;

    socket.emit("message:send", send_payload(conversation, "held", "waits for the lock")).await;
    let pong = socket.emit_with_ack("ping", json!({"timestamp": 7}), WAIT).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE conversation_id = $1")
        .bind(conversation)
        .fetch_one(&mut locker)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    let pong = pong.expect("the ping is answered while the send waits for its commit");
    assert_eq!(pong["data"]["timestamp"], 7, "{pong}");
    assert_eq!(stored, 0, "the send was still waiting for the lock when the ping was answered");
    let sent = socket.expect_event("message:sent", WAIT).await;
    let ack = json!({"ok": true, "data": {"seq": sent["seq"].clone()}});
    assert_eq!((ack["ok"].clone(), ack["data"]["seq"].clone()), (json!(true), json!(1)), "{ack}");
}

async fn legacy_message_send_uses_temp_id_and_legacy_events(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = direct(&ann, &bob).await;
    // Ann's socket speaks the old names by using one; bob's asked for them when connecting.
    let (ann_socket, bob_socket) = (connect(&app, &ann).await, crate::connect_legacy(&app, &bob).await);
    ann_socket
        .emit(
            "message.send",
            json!({"conversationId": conversation, "type": "text", "content": "old client", "tempId": "temp-1"}),
        )
        .await;
    let legacy_sent = ann_socket.expect_event("message.sent", WAIT).await;
    assert_eq!(legacy_sent["tempId"], "temp-1");
    assert_eq!(legacy_sent["message"]["content"], "old client");
    assert_eq!(ann_socket.expect_event("message:sent", WAIT).await["clientMessageId"], "temp-1");
    assert_eq!(bob_socket.expect_event("message.new", WAIT).await["message"]["content"], "old client");
    assert_eq!(bob_socket.expect_event("message:received", WAIT).await["message"]["content"], "old client");
}

async fn legacy_twins_go_only_to_sockets_that_speak_them(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    let modern = connect(&app, &bob).await;
    let by_query = {
        let query = vec![("legacy".to_owned(), "1".to_owned())];
        let options = ConnectOptions { auth: Some(json!({"token": bob.token})), query, ..Default::default() };
        let socket = SocketClient::connect(&app.socket_base(), options).await.expect("connect");
        socket.expect_event("sync:complete", WAIT).await;
        socket
    };
    // A socket that used a legacy name speaks the dialect from then on.
    let converted = connect(&app, &bob).await;
    let read = converted.emit_with_ack("message.read", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(read["ok"], true, "{read}");
    let ann_socket = connect(&app, &ann).await;
    send(&ann_socket, conversation, "a-1", "for everyone").await;
    for socket in [&by_query, &converted] {
        assert_eq!(socket.expect_event("message.new", WAIT).await["message"]["content"], "for everyone");
    }
    modern.expect_event("message:received", WAIT).await;
    modern.assert_no_event("message.new", "a socket that never spoke the old names got a twin").await;
    ann_socket.assert_no_event("message.sent", "a modern sender got the legacy twin of its confirmation").await;
}

async fn subscribing_needs_participation(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let eve = app.register("Eve").await;
    let conversation = group(&ann, &[&bob]).await;
    let eve_socket = connect(&app, &eve).await;
    let refused = eve_socket.emit_with_ack("subscribe", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(refused["error"]["code"], "NOT_IN_CONVERSATION");
    let bad = eve_socket.emit_with_ack("subscribe", json!({"conversationId": 5}), WAIT).await.unwrap();
    assert_eq!(bad["error"]["code"], "VALIDATION_ERROR");
    let bob_socket = connect(&app, &bob).await;
    let ok = bob_socket.emit_with_ack("subscribe", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ok["ok"], true);
    let ok = bob_socket.emit_with_ack("unsubscribe", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ok["ok"], true);
    let _ = Mode::Embedded;
}

mod robustness {
    use serde_json::json;

    use crate::support::{Mode, TestApp};
    use crate::{WAIT, connect, direct, send};

    /// Each event, fed payloads of the wrong shape, answers `VALIDATION_ERROR` in its ack.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_event_refuses_bad_payloads_with_validation_error() {
        let app = TestApp::spawn(Mode::Embedded).await;
        let ann = app.register("Ann").await;
        let socket = connect(&app, &ann).await;
        let cases = [
            ("subscribe", json!({})),
            ("subscribe", json!({"conversationId": 12})),
            ("unsubscribe", json!({"conversationId": "nope"})),
            ("unsubscribe", json!(null)),
            ("sync", json!([])),
            ("sync", json!({"conversations": [{"conversationId": "x", "afterSeq": 1}]})),
            ("sync", json!({"conversations": [{"conversationId": uuid::Uuid::now_v7(), "afterSeq": -4}]})),
            ("message:send", json!(7)),
            ("message.send", json!({"tempId": 5})),
            ("block.add", json!({})),
            ("block.remove", json!({"username": 3})),
            ("no:such:event", json!({})),
        ];
        for (event, payload) in cases {
            let ack = socket.emit_with_ack(event, payload.clone(), WAIT).await.unwrap();
            assert_eq!(ack["ok"], false, "{event} {payload}");
            assert_eq!(ack["error"]["code"], "VALIDATION_ERROR", "{event} {payload}: {ack}");
        }
        let unknown_user = socket.emit_with_ack("block.add", json!({"username": "nobody_here"}), WAIT).await.unwrap();
        assert_eq!(unknown_user["error"]["code"], "NOT_FOUND");
        assert!(socket.is_connected());
    }

    /// A broken packet or an oversize one costs its sender the connection; nobody else notices.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_and_oversize_packets_only_hurt_their_own_socket() {
        let app = TestApp::spawn(Mode::Embedded).await;
        let ann = app.register("Ann").await;
        let bob = app.register("Bob").await;
        let conversation = direct(&ann, &bob).await;
        let bob_socket = connect(&app, &bob).await;
        for raw in ["42/chat,[1,2", "42/chat,{}", "4x", "7", "42/chat,[\"message:send\",{\"conversationId\":"] {
            let attacker = connect(&app, &ann).await;
            attacker.send_raw(raw).await;
            let _ = attacker.expect_disconnect(WAIT).await;
        }
        let attacker = connect(&app, &ann).await;
        let huge = "x".repeat(400 * 1024);
        attacker.send_raw(&format!("42/chat,[\"message:send\",{{\"content\":\"{huge}\"}}]")).await;
        attacker.expect_disconnect(WAIT).await.expect("an oversize packet closes its connection");

        let ann_socket = connect(&app, &ann).await;
        assert_eq!(send(&ann_socket, conversation, "after", "still working").await["ok"], true);
        let received = bob_socket.expect_event("message:received", WAIT).await;
        assert_eq!(received["message"]["content"], "still working", "the bystander kept its connection");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn legacy_events_stop_when_legacy_events_is_off() {
        let app = TestApp::try_spawn_with(Mode::Embedded, &[("LEGACY_EVENTS", "false")]).await.unwrap();
        let ann = app.register("Ann").await;
        let bob = app.register("Bob").await;
        let conversation = direct(&ann, &bob).await;
        let (ann_socket, bob_socket) = (connect(&app, &ann).await, connect(&app, &bob).await);
        ann_socket.emit("message.send", json!({"conversationId": conversation, "content": "hi", "tempId": "t"})).await;
        ann_socket.expect_event("message:sent", WAIT).await;
        bob_socket.expect_event("message:received", WAIT).await;
        assert!(ann_socket.drain().iter().all(|(e, _)| e != "message.sent"), "legacy message.sent emitted");
        assert!(bob_socket.drain().iter().all(|(e, _)| e != "message.new"), "legacy message.new emitted");
    }
}

mod across_replicas {
    use serde_json::json;

    use crate::support::{Mode, TestApp};
    use crate::{connect, group, send};

    /// The dedup key lives in the shared database: a retry through another replica (socket or
    /// REST) finds the original.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_through_another_replica_returns_the_original() {
        let Some(first) = TestApp::try_spawn(Mode::Production).await else { return };
        let second = first.replica().await;
        let ann = first.register("Ann").await;
        let bob = first.register("Bob").await;
        let conversation = group(&ann, &[&bob]).await;
        let original = send(&connect(&first, &ann).await, conversation, "k-1", "hello").await;
        let retried = send(&connect(&second, &ann).await, conversation, "k-1", "hello").await;
        assert_eq!(retried["data"]["messageId"], original["data"]["messageId"]);
        assert_eq!((retried["data"]["seq"].clone(), retried["data"]["duplicate"].clone()), (json!(1), json!(true)));
        let via_rest = second
            .client()
            .with_token(&ann.token)
            .post(
                &format!("/api/conversations/{conversation}/messages"),
                json!({"clientMessageId": "k-1", "content": "hello"}),
            )
            .await;
        assert_eq!(via_rest.assert_status(200)["id"], original["data"]["messageId"]);
    }
}
