//! Handshake authentication, late `auth`, token swaps, refusals and logout.

use reqwest::Method;
use serde_json::json;

use crate::support::{
    Mode, TestApp,
    socket::{ConnectOptions, SocketClient},
};
use crate::{WAIT, connect, connect_raw, in_all_modes};

in_all_modes!(
    a_token_in_the_auth_payload_authenticates,
    a_token_in_the_query_or_header_authenticates,
    bad_tokens_get_auth_error_and_a_disconnect,
    a_socket_may_authenticate_late_with_the_auth_event,
    events_before_authentication_are_refused,
    a_live_socket_can_swap_in_a_fresh_token_of_the_same_user_only,
    logout_disconnects_that_sessions_sockets_only,
    events_sent_right_after_connecting_are_not_lost,
    token_expiry_is_one_rule_and_an_expired_socket_is_told_to_refresh,
    packets_for_other_namespaces_are_ignored_or_close_as_documented,
);

/// Protocol §18: a packet for a namespace this server does not have (Parley serves only
/// `/chat`) is ignored; a packet for `/chat` on a connection not connected to it (never, or
/// not any more) closes the Engine.IO connection.
async fn packets_for_other_namespaces_are_ignored_or_close_as_documented(app: TestApp) {
    let ann = app.register("Ann").await;
    let mut socket = crate::connect(&app, &ann).await;
    socket.send_raw(r#"42/nowhere,["ping",{"timestamp":1}]"#).await;
    socket.send_raw(r#"42["ping",{"timestamp":2}]"#).await;
    // Behind both (the server reads a connection's packets in order): a connect to a
    // namespace that does not exist is refused, and the connection lives on.
    let refusal = socket.foreign_roundtrip("0/nowhere,", "4/nowhere,").await.unwrap();
    assert!(refusal.contains("Invalid namespace"), "{refusal}");
    let ack = socket.emit_with_ack("ping", json!({"timestamp": 3}), WAIT).await.expect("still connected");
    assert_eq!(ack["ok"], true, "{ack}");
    // `/chat` once left: the connection is closed.
    socket.leave_namespace();
    assert!(socket.transport_open());
    socket.send_raw(r#"42/chat,["ping",{"timestamp":4}]"#).await;
    socket.expect_transport_closed(WAIT).await.unwrap();
}

/// Issue 17, point 2: the same 5 s leeway past `exp` at connect, at `auth` and for every
/// event; past it, an event is refused (`AUTH_FAILED`) and the socket gets, once, `auth:error
/// {code: "TOKEN_EXPIRED"}`, which the documented client answers with a refresh and `auth`.
async fn token_expiry_is_one_rule_and_an_expired_socket_is_told_to_refresh(app: TestApp) {
    use parley::clock::Clock as _;
    let ann = app.register("Ann").await;
    // Signed to expire 3 s ago on the server's clock: within the leeway, so accepted...
    let exp = app.clock.now().timestamp() - 3;
    let token = crate::support::authz::Claims::of(ann.id, exp - 900, exp)
        .sign(crate::support::JWT_SECRET.as_bytes(), jsonwebtoken::Algorithm::HS256);
    let socket = connect_raw(&app, Some(json!({ "token": token }))).await;
    socket.expect_event("auth:success", WAIT).await;
    socket.expect_event("sync:complete", WAIT).await;
    // ...and so are its events, by the same rule (they were refused: two rules, 0 s and 5 s).
    let ack = socket.emit_with_ack("ping", json!({"timestamp": 1}), WAIT).await.expect("ack");
    assert_eq!(ack["ok"], true, "{ack}");
    // Past the leeway: refused, and told to refresh (once).
    app.clock.advance(std::time::Duration::from_secs(2));
    let refused = socket.emit_with_ack("ping", json!({"timestamp": 2}), WAIT).await.expect("ack");
    assert_eq!(refused["error"]["code"], "AUTH_FAILED", "{refused}");
    let told = socket.expect_event("auth:error", WAIT).await;
    assert_eq!(told["code"], "TOKEN_EXPIRED", "{told}");
    let again = socket.emit_with_ack("ping", json!({"timestamp": 3}), WAIT).await.expect("ack");
    assert_eq!(again["error"]["code"], "AUTH_FAILED");
    socket.assert_no_event("auth:error", "TOKEN_EXPIRED is said once per token").await;
    assert!(socket.is_connected(), "the socket stays, waiting for a fresh token");
    // The refresh: a fresh token through `auth`, and events go through again.
    let fresh = app.client().post("/api/auth/login", json!({"email": ann.email, "password": ann.password})).await;
    let fresh = fresh.assert_status(200)["accessToken"].as_str().expect("a token").to_owned();
    let swapped = socket.emit_with_ack("auth", json!({"token": fresh}), WAIT).await.expect("ack");
    assert_eq!(swapped["ok"], true, "{swapped}");
    let ack = socket.emit_with_ack("ping", json!({"timestamp": 4}), WAIT).await.expect("ack");
    assert_eq!(ack["ok"], true, "{ack}");
}

async fn a_token_in_the_auth_payload_authenticates(app: TestApp) {
    let ann = app.register("Ann").await;
    let socket = connect_raw(&app, Some(json!({"token": ann.token}))).await;
    assert_eq!(socket.expect_event("auth:success", WAIT).await, json!({"userId": ann.id}));
    let summary = socket.expect_event("sync:complete", WAIT).await;
    assert_eq!(summary, json!({"messages": 0, "conversations": 0, "truncated": []}));
}

async fn a_token_in_the_query_or_header_authenticates(app: TestApp) {
    let ann = app.register("Ann").await;
    let by_query = ConnectOptions { query: vec![("token".into(), ann.token.clone())], ..Default::default() };
    let socket = SocketClient::connect(&app.base, by_query).await.unwrap();
    assert_eq!(socket.expect_event("auth:success", WAIT).await["userId"], ann.id.to_string());
    let by_header = ConnectOptions {
        headers: vec![("authorization".into(), format!("Bearer {}", ann.token))],
        ..Default::default()
    };
    let socket = SocketClient::connect(&app.base, by_header).await.unwrap();
    assert_eq!(socket.expect_event("auth:success", WAIT).await["userId"], ann.id.to_string());
}

async fn bad_tokens_get_auth_error_and_a_disconnect(app: TestApp) {
    let ann = app.register("Ann").await;
    ann.client.post_empty("/api/auth/logout").await.assert_status(204);
    for (token, code) in [("garbage", "AUTH_FAILED"), (ann.token.as_str(), "AUTH_FAILED")] {
        let socket = connect_raw(&app, Some(json!({"token": token}))).await;
        let error = socket.expect_event("auth:error", WAIT).await;
        assert_eq!(error["code"], code, "{error}");
        assert!(error["error"].is_string());
        socket.expect_disconnect(WAIT).await.expect("the server disconnects");
    }
}

async fn a_socket_may_authenticate_late_with_the_auth_event(app: TestApp) {
    let ann = app.register("Ann").await;
    let socket = connect_raw(&app, None).await;
    let ack = socket.emit_with_ack("auth", json!({"token": ann.token}), WAIT).await.unwrap();
    assert_eq!(ack, json!({"ok": true, "data": {"userId": ann.id}}));
    socket.expect_event("auth:success", WAIT).await;
    socket.expect_event("sync:complete", WAIT).await;
    let ping = socket.emit_with_ack("ping", json!({"timestamp": 7}), WAIT).await.unwrap();
    assert_eq!(ping["ok"], true);
    assert_eq!(socket.expect_event("pong", WAIT).await["timestamp"], 7);
}

async fn events_before_authentication_are_refused(app: TestApp) {
    let socket = connect_raw(&app, None).await;
    let ack = socket.emit_with_ack("subscribe", json!({"conversationId": uuid::Uuid::now_v7()}), WAIT).await.unwrap();
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"]["code"], "AUTH_FAILED");
    let bad = socket.emit_with_ack("auth", json!({"token": "nope"}), WAIT).await.unwrap();
    assert_eq!(bad["error"]["code"], "AUTH_FAILED");
    assert_eq!(socket.expect_event("auth:error", WAIT).await["code"], "AUTH_FAILED");
    socket.expect_disconnect(WAIT).await.expect("a failed late auth disconnects");
}

async fn a_live_socket_can_swap_in_a_fresh_token_of_the_same_user_only(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let socket = connect(&app, &ann).await;
    let refreshed = ann.client.post_empty("/api/auth/refresh").await;
    let fresh = refreshed.body["accessToken"].as_str().unwrap().to_owned();
    let swapped = socket.emit_with_ack("auth", json!({"token": fresh}), WAIT).await.unwrap();
    assert_eq!(swapped["ok"], true, "{swapped}");
    let foreign = socket.emit_with_ack("auth", json!({"token": bob.token}), WAIT).await.unwrap();
    assert_eq!(foreign["error"]["code"], "AUTH_FAILED");
    assert!(socket.is_connected(), "a refused swap keeps the session");
    let ping = socket.emit_with_ack("ping", json!({}), WAIT).await.unwrap();
    assert_eq!(ping["ok"], true);
}

async fn logout_disconnects_that_sessions_sockets_only(app: TestApp) {
    let ann = app.register("Ann").await;
    let phone = connect(&app, &ann).await;
    let phone_again = connect(&app, &ann).await;
    // A second login is another session (another device).
    let laptop_login =
        app.client().post("/api/auth/login", json!({"email": ann.email, "password": ann.password})).await;
    let laptop_token = laptop_login.body["accessToken"].as_str().unwrap().to_owned();
    let laptop = connect_raw(&app, Some(json!({"token": laptop_token}))).await;
    laptop.expect_event("auth:success", WAIT).await;

    ann.client.send(ann.client.request(Method::POST, "/api/auth/logout")).await.assert_status(204);
    for socket in [&phone, &phone_again] {
        assert_eq!(socket.expect_event("auth:error", WAIT).await["code"], "TOKEN_REVOKED");
        socket.expect_disconnect(WAIT).await.expect("signed-out sockets are disconnected");
    }
    let ping = laptop.emit_with_ack("ping", json!({}), WAIT).await.unwrap();
    assert_eq!(ping["ok"], true, "the other session stays");
    let _ = Mode::Embedded;
}

async fn events_sent_right_after_connecting_are_not_lost(app: TestApp) {
    let ann = app.register("Ann").await;
    for _ in 0..10 {
        let socket = connect_raw(&app, Some(json!({"token": ann.token}))).await;
        let ack = socket.emit_with_ack("ping", json!({"timestamp": 1}), WAIT).await.expect("an ack, not a lost event");
        assert_eq!(ack["ok"], true, "{ack}");
    }
}

mod timeouts {
    use std::time::Duration;

    use crate::support::{Mode, TestApp};
    use crate::{WAIT, connect_raw};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_socket_that_never_authenticates_is_dropped_after_the_timeout() {
        let app = TestApp::try_spawn_with(Mode::Embedded, &[("AUTH_TIMEOUT_MS", "300")]).await.unwrap();
        let socket = connect_raw(&app, None).await;
        let error = socket.expect_event("auth:error", Duration::from_secs(3)).await;
        assert_eq!(error["code"], "AUTH_FAILED");
        socket.expect_disconnect(WAIT).await.expect("dropped after the auth timeout");
    }
}
