//! Typing: who hears it, the server's auto-stop, the 1 s rebroadcast guard, what ends it,
//! every alias, HTTP typing and `typingUsers`.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::in_all_modes;
use crate::support::{TestApp, http::TestUser, socket::SocketClient};
use crate::{WAIT, connect, group, send};

in_all_modes!(
    subscribers_hear_typing_with_names_and_the_typist_does_not,
    typing_stops_by_itself_five_seconds_after_the_last_start,
    a_storm_of_starts_is_rebroadcast_at_most_once_a_second,
    sending_a_message_or_leaving_ends_typing,
    users_who_blocked_the_typist_do_not_hear_it,
    legacy_aliases_and_http_typing_work,
);

async fn subscribed(app: &TestApp, user: &TestUser, conversation: Uuid) -> SocketClient {
    let socket = connect(app, user).await;
    let ack = socket.emit_with_ack("subscribe", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ack["ok"], true, "{ack}");
    socket
}

async fn start(socket: &SocketClient, conversation: Uuid) -> Value {
    socket.emit_with_ack("typing:start", json!({"conversationId": conversation}), WAIT).await.unwrap()
}

async fn subscribers_hear_typing_with_names_and_the_typist_does_not(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    let (ann_socket, bob_socket) =
        (subscribed(&app, &ann, conversation).await, subscribed(&app, &bob, conversation).await);
    assert_eq!(start(&ann_socket, conversation).await["ok"], true);
    let started = bob_socket.expect_event("typing:started", WAIT).await;
    assert_eq!(
        started,
        json!({"conversationId": conversation, "userId": ann.id, "username": ann.username, "displayName": "Ann"})
    );
    let detail = bob.client.get(&format!("/api/conversations/{conversation}")).await;
    assert_eq!(detail.body["typingUsers"], json!([{"userId": ann.id, "username": ann.username, "displayName": "Ann"}]));
    let ack = ann_socket.emit_with_ack("typing:stop", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ack["ok"], true);
    assert_eq!(bob_socket.expect_event("typing:stopped", WAIT).await["userId"], ann.id.to_string());
    assert!(ann_socket.drain().iter().all(|(e, _)| !e.starts_with("typing:")), "the typist heard itself");
    let stranger = connect(&app, &app.register("Eve").await).await;
    assert_eq!(start(&stranger, conversation).await["error"]["code"], "NOT_IN_CONVERSATION");
    assert_eq!(start(&stranger, Uuid::now_v7()).await["error"]["code"], "NOT_FOUND");
    let bad = stranger.emit_with_ack("typing:start", json!({"conversationId": "x"}), WAIT).await.unwrap();
    assert_eq!(bad["error"]["code"], "VALIDATION_ERROR");
}

async fn typing_stops_by_itself_five_seconds_after_the_last_start(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    let (ann_socket, bob_socket) =
        (subscribed(&app, &ann, conversation).await, subscribed(&app, &bob, conversation).await);
    start(&ann_socket, conversation).await;
    bob_socket.expect_event("typing:started", WAIT).await;
    app.clock.advance(Duration::from_secs(4));
    start(&ann_socket, conversation).await;
    app.clock.advance(Duration::from_secs(2));
    // A sweep on every replica at this moment of the app clock ends nothing: ann is still
    // typing (the shared state says so), and no stop reached bob.
    for replica in app.replicas() {
        replica.state.services.typing.sweep().await;
    }
    let detail = bob.client.get(&format!("/api/conversations/{conversation}")).await;
    assert_eq!(detail.body["typingUsers"][0]["userId"], json!(ann.id), "the second start reset the timer");
    bob_socket.assert_no_event("typing:stopped", "the second start reset the timer").await;
    app.clock.advance(Duration::from_secs(3));
    let stopped = bob_socket.expect_event("typing:stopped", WAIT).await;
    assert_eq!(stopped["userId"], ann.id.to_string());
    let list = bob.client.get(&format!("/api/conversations/{conversation}")).await;
    assert_eq!(list.body["typingUsers"], json!([]));
}

async fn a_storm_of_starts_is_rebroadcast_at_most_once_a_second(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    let (ann_socket, bob_socket) =
        (subscribed(&app, &ann, conversation).await, subscribed(&app, &bob, conversation).await);
    for _ in 0..50 {
        ann_socket.emit("typing:start", json!({"conversationId": conversation})).await;
    }
    start(&ann_socket, conversation).await; // acked after the 50 (one queue per socket)
    let _ = bob_socket.emit_with_ack("ping", json!({}), WAIT).await;
    bob_socket.expect_event("typing:started", WAIT).await;
    let extra = bob_socket.drain().into_iter().filter(|(e, _)| e == "typing:started").count();
    assert_eq!(extra, 0, "51 starts within a second, one broadcast");
    app.clock.advance(Duration::from_secs(1));
    start(&ann_socket, conversation).await;
    bob_socket.expect_event("typing:started", WAIT).await;
}

async fn sending_a_message_or_leaving_ends_typing(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    let (ann_socket, bob_socket) =
        (subscribed(&app, &ann, conversation).await, subscribed(&app, &bob, conversation).await);
    start(&ann_socket, conversation).await;
    bob_socket.expect_event("typing:started", WAIT).await;
    send(&ann_socket, conversation, "m1", "done typing").await;
    bob_socket.expect_event("typing:stopped", WAIT).await;
    app.clock.advance(Duration::from_secs(1));
    start(&ann_socket, conversation).await;
    bob_socket.expect_event("typing:started", WAIT).await;
    ann_socket.disconnect().await;
    assert_eq!(bob_socket.expect_event("typing:stopped", WAIT).await["userId"], ann.id.to_string());
}

async fn users_who_blocked_the_typist_do_not_hear_it(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let conversation = group(&ann, &[&bob, &cat]).await;
    cat.client.post_empty(&format!("/api/users/{}/block", ann.id)).await.assert_status(204);
    let ann_socket = subscribed(&app, &ann, conversation).await;
    let (bob_socket, cat_socket) =
        (subscribed(&app, &bob, conversation).await, subscribed(&app, &cat, conversation).await);
    start(&ann_socket, conversation).await;
    bob_socket.expect_event("typing:started", WAIT).await;
    let _ = cat_socket.emit_with_ack("ping", json!({}), WAIT).await;
    assert!(cat_socket.drain().iter().all(|(e, _)| e != "typing:started"), "a blocker heard the typist");
    let typing = cat.client.get(&format!("/api/conversations/{conversation}")).await;
    assert_eq!(typing.body["typingUsers"], json!([]), "nor sees them in typingUsers");
    // The other way round: someone the typist blocked does not see them type either.
    ann.client.post_empty(&format!("/api/users/{}/block", bob.id)).await.assert_status(204);
    app.clock.advance(Duration::from_secs(1));
    start(&ann_socket, conversation).await;
    let _ = bob_socket.emit_with_ack("ping", json!({}), WAIT).await;
    assert!(bob_socket.drain().iter().all(|(e, _)| e != "typing:started"), "a blocked user saw the blocker type");
}

async fn legacy_aliases_and_http_typing_work(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    let ann_socket = subscribed(&app, &ann, conversation).await;
    let bob_socket = crate::connect_legacy(&app, &bob).await;
    bob_socket.emit_with_ack("subscribe", json!({"conversationId": conversation}), WAIT).await.unwrap();
    for (start_event, stop_event) in [("typing_start", "typing_stop"), ("typing.start", "typing.stop")] {
        ann_socket.emit_with_ack(start_event, json!({"conversationId": conversation}), WAIT).await.unwrap();
        bob_socket.expect_event("typing:started", WAIT).await;
        let legacy = bob_socket.expect_event("user_typing", WAIT).await;
        assert_eq!(
            legacy,
            json!({"conversation_id": conversation, "user_id": ann.id, "username": ann.username, "display_name": "Ann", "is_typing": true})
        );
        assert_eq!(bob_socket.expect_event("message.typing", WAIT).await["is_typing"], true);
        ann_socket.emit_with_ack(stop_event, json!({"conversationId": conversation}), WAIT).await.unwrap();
        bob_socket.expect_event("typing:stopped", WAIT).await;
        assert_eq!(bob_socket.expect_event("user_typing", WAIT).await["is_typing"], false);
        assert_eq!(bob_socket.expect_event("message.typing", WAIT).await["is_typing"], false);
    }
    ann_socket
        .emit_with_ack("message.typing", json!({"conversation_id": conversation, "is_typing": true}), WAIT)
        .await
        .unwrap();
    bob_socket.expect_event("typing:started", WAIT).await;
    let bad = ann_socket.emit_with_ack("message.typing", json!({"conversation_id": conversation}), WAIT).await.unwrap();
    assert_eq!(bad["error"]["code"], "VALIDATION_ERROR");
    let path = format!("/api/conversations/{conversation}/typing");
    ann.client.post(&path, json!({"is_typing": false})).await.assert_status(204);
    bob_socket.expect_event("typing:stopped", WAIT).await;
    ann.client.post(&path, json!({"isTyping": true})).await.assert_status(204);
    bob_socket.expect_event("typing:started", WAIT).await;
    ann.client.post(&path, json!({"isTyping": "yes"})).await.assert_error(400, "VALIDATION_ERROR");
    app.register("Eve")
        .await
        .client
        .post(&path, json!({"isTyping": true}))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
}
