//! Abuse limits: connections per client address, the per-socket event rate and the flood
//! disconnect, subscriptions per socket, and the packet size limit. Each is refused at its
//! boundary and not before, and only the offending socket (or address) notices.
//!
//! `TRUST_PROXY` is on so each test user connects from an address of its own
//! (`X-Forwarded-For`); every socket here goes to the first replica (`app.base`), since
//! connections are counted per replica.

use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    Mode, TestApp,
    http::TestUser,
    socket::{ConnectOptions, SocketClient},
};
use crate::{WAIT, direct, group};

const PER_IP: usize = 2;
const BURST: usize = 6;
/// 10 × the burst: the flood budget.
const FLOOD: usize = 10 * BURST;
const SUBSCRIPTIONS: usize = 2;
const MAX_PAYLOAD: usize = 8192;

async fn spawn(mode: Mode) -> Option<TestApp> {
    TestApp::try_spawn_with(
        mode,
        &[
            ("TRUST_PROXY", "true"),
            ("MAX_CONNECTIONS_PER_IP", "2"),
            // One token a second: the few milliseconds a test takes refill nothing.
            ("SOCKET_EVENTS_PER_SEC", "1"),
            ("SOCKET_EVENTS_BURST", "6"),
            ("MAX_SUBSCRIPTIONS_PER_SOCKET", "2"),
            ("SOCKET_MAX_PAYLOAD_BYTES", "8192"),
        ],
    )
    .await
}

crate::in_all_modes_spawned_by!(spawn;
    connections_per_address_stop_at_the_limit_and_other_addresses_are_unaffected,
    a_closed_connection_gives_its_place_back,
    a_namespace_left_on_an_open_connection_keeps_its_place,
    events_over_the_rate_are_refused_with_retry_after_and_not_run,
    a_flooding_socket_is_disconnected_and_no_other,
    a_flooder_cools_down_before_it_may_connect_again,
    subscriptions_per_socket_stop_at_the_limit,
    packets_over_the_configured_size_close_only_their_connection,
);

fn options(user: &TestUser, ip: &str) -> ConnectOptions {
    ConnectOptions {
        auth: Some(json!({ "token": user.token })),
        headers: vec![("x-forwarded-for".into(), format!("10.9.9.9, {ip}"))],
        ..Default::default()
    }
}

/// `user`'s socket from client address `ip` (the proxy's hop), authenticated and replayed.
async fn connect_from(base: &str, user: &TestUser, ip: &str) -> SocketClient {
    let socket = SocketClient::connect(base, options(user, ip)).await.expect("connect /chat");
    socket.expect_event("auth:success", WAIT).await;
    socket.expect_event("sync:complete", WAIT).await;
    socket
}

async fn ping(socket: &SocketClient, timestamp: usize) -> Value {
    socket.emit_with_ack("ping", json!({ "timestamp": timestamp }), WAIT).await.expect("an ack")
}

async fn connections_per_address_stop_at_the_limit_and_other_addresses_are_unaffected(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let bob_socket = connect_from(&app.base, &bob, "198.51.100.2").await;
    let mut ann_sockets = Vec::new();
    for _ in 0..PER_IP {
        ann_sockets.push(connect_from(&app.base, &ann, "203.0.113.1").await);
    }
    let refused = SocketClient::connect(&app.base, options(&ann, "203.0.113.1")).await.err().expect("one too many");
    assert!(refused.contains("RATE_LIMITED"), "{refused}");
    // Another user of the same address is refused too: the address is what is counted.
    let cat = app.register("Cat").await;
    assert!(SocketClient::connect(&app.base, options(&cat, "203.0.113.1")).await.is_err());

    // Nobody else noticed: the connected sockets work, other addresses still connect.
    for socket in ann_sockets.iter().chain([&bob_socket]) {
        assert_eq!(ping(socket, 1).await["ok"], true);
    }
    let cat_socket = connect_from(&app.base, &cat, "198.51.100.3").await;
    assert_eq!(ping(&cat_socket, 1).await["ok"], true);
    // Counted per replica: the other one has its own places.
    if let Some(other) = &app.other {
        connect_from(&other.base, &ann, "203.0.113.1").await;
    }
}

async fn a_closed_connection_gives_its_place_back(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    let bob_socket = connect_from(&app.base, &bob, "198.51.100.2").await;
    let ack = bob_socket.emit_with_ack("subscribe", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ack["ok"], true, "{ack}");
    let typist = connect_from(&app.base, &ann, "203.0.113.1").await;
    let _other = connect_from(&app.base, &ann, "203.0.113.1").await;
    assert!(SocketClient::connect(&app.base, options(&ann, "203.0.113.1")).await.is_err(), "the address is full");

    // The server gives the place back before it ends the socket's typing, so Bob hearing the
    // typist stop means the place is free again.
    let ack = typist.emit_with_ack("typing:start", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ack["ok"], true, "{ack}");
    bob_socket.expect_event("typing:started", WAIT).await;
    typist.close_transport().await;
    bob_socket.expect_event("typing:stopped", WAIT).await;
    let again = connect_from(&app.base, &ann, "203.0.113.1").await;
    assert_eq!(ping(&again, 1).await["ok"], true);
    assert!(SocketClient::connect(&app.base, options(&ann, "203.0.113.1")).await.is_err(), "full again");

    // A clean disconnect (`41`, then the close, as socket.io-client sends them): the place
    // goes with the Engine.IO connection, just after the namespace. Each try is a connect.
    again.disconnect().await;
    let mut tries = 0;
    let _back = loop {
        match SocketClient::connect(&app.base, options(&ann, "203.0.113.1")).await {
            Ok(socket) => break socket,
            Err(refused) if tries < 500 => {
                assert!(refused.contains("RATE_LIMITED"), "{refused}");
                tries += 1;
            }
            Err(refused) => panic!("the place never came back: {refused}"),
        }
    };
}

/// A namespace disconnect leaves the Engine.IO connection open (as long as the client answers
/// pings): the connection keeps its place in the address's count until it closes, and a
/// `/chat` connect on it again takes that place back.
async fn a_namespace_left_on_an_open_connection_keeps_its_place(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    let bob_socket = connect_from(&app.base, &bob, "198.51.100.2").await;
    assert_eq!(subscribe(&bob_socket, conversation).await["ok"], true);
    let mut first = connect_from(&app.base, &ann, "203.0.113.1").await;
    let _second = connect_from(&app.base, &ann, "203.0.113.1").await;

    first.leave_namespace();
    // Behind the `41`: the answer to a connect to a namespace that does not exist.
    first.foreign_roundtrip("0/nowhere,", "4/nowhere,").await.unwrap();
    assert!(first.transport_open());
    let refused = SocketClient::connect(&app.base, options(&ann, "203.0.113.1")).await.err().expect("still full");
    assert!(refused.contains("RATE_LIMITED"), "{refused}");

    first.rejoin_namespace(json!({ "token": ann.token })).await.expect("rejoins in the place it kept");
    first.expect_event("auth:success", WAIT).await;
    first.expect_event("sync:complete", WAIT).await;
    assert!(SocketClient::connect(&app.base, options(&ann, "203.0.113.1")).await.is_err(), "one place, not two");

    // The connection closes: its place is free (given back before the typing ends).
    let ack = first.emit_with_ack("typing:start", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ack["ok"], true, "{ack}");
    bob_socket.expect_event("typing:started", WAIT).await;
    first.close_transport().await;
    bob_socket.expect_event("typing:stopped", WAIT).await;
    connect_from(&app.base, &ann, "203.0.113.1").await;
}

async fn events_over_the_rate_are_refused_with_retry_after_and_not_run(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let ann_socket = connect_from(&app.base, &ann, "203.0.113.1").await;
    let ann_phone = connect_from(&app.base, &ann, "203.0.113.1").await;
    let bob_socket = connect_from(&app.base, &bob, "198.51.100.2").await;
    // The burst and one more, sent together (one websocket: they arrive in this order).
    let acks = join_all((0..=BURST).map(|i| ping(&ann_socket, i))).await;
    for ack in &acks[..BURST] {
        assert_eq!(ack["ok"], true, "within the burst: {ack}");
    }
    let refused = &acks[BURST];
    assert_eq!(refused["error"]["code"], "RATE_LIMITED", "{refused}");
    let retry = refused["error"]["retryAfterMs"].as_u64().expect("retryAfterMs");
    assert!((1..=1000).contains(&retry), "one token a second: {retry}");
    // The refused ping never ran: five pongs came before the acks, none for it.
    let pongs: Vec<Value> = ann_socket
        .drain()
        .into_iter()
        .filter(|(e, _)| e == "pong")
        .map(|(_, data)| data["timestamp"].clone())
        .collect();
    assert_eq!(pongs, (0..BURST).map(|i| json!(i)).collect::<Vec<_>>());
    assert!(ann_socket.is_connected(), "refused, not disconnected");

    // Each socket has its own budget: the same user's other socket and another user are untouched.
    for socket in [&ann_phone, &bob_socket] {
        let acks = join_all((0..BURST).map(|i| ping(socket, i))).await;
        assert!(acks.iter().all(|ack| ack["ok"] == true), "{acks:?}");
    }
}

async fn a_flooding_socket_is_disconnected_and_no_other(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let flooder = connect_from(&app.base, &ann, "203.0.113.1").await;
    let ann_phone = connect_from(&app.base, &ann, "203.0.113.1").await;
    let bob_socket = connect_from(&app.base, &bob, "198.51.100.2").await;
    // Up to the flood budget: refused, still connected (the last ack proves the server took
    // every event before it without disconnecting).
    for i in 0..FLOOD - 1 {
        flooder.emit("ping", json!({ "timestamp": i })).await;
    }
    let last = ping(&flooder, FLOOD).await;
    assert_eq!(last["error"]["code"], "RATE_LIMITED", "{last}");
    assert!(flooder.is_connected());
    // Far beyond it: disconnected with a disconnect packet it reads (not a dropped
    // connection, which a client reconnects from), though more events are on their way.
    for i in 0..10 * FLOOD {
        flooder.emit("ping", json!({ "timestamp": i })).await;
    }
    flooder.expect_server_disconnect(WAIT).await.expect("the flooder is told it is disconnected");

    for socket in [&ann_phone, &bob_socket] {
        assert_eq!(ping(socket, 1).await["ok"], true);
        assert!(socket.is_connected());
    }
}

/// After a flood the user and the address are refused new connections for
/// `FLOOD_COOLDOWN_SECS`, on every replica; other users and addresses are not.
async fn a_flooder_cools_down_before_it_may_connect_again(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let flooder = connect_from(&app.base, &ann, "203.0.113.1").await;
    for i in 0..10 * FLOOD {
        flooder.emit("ping", json!({ "timestamp": i })).await;
    }
    flooder.expect_server_disconnect(WAIT).await.expect("the flooder is disconnected");

    let elsewhere = app.replicas().last().copied().expect("a replica");
    let refusal = |who: &TestUser, ip: &str| {
        let options = options(who, ip);
        async move { SocketClient::connect(&elsewhere.base, options).await.err().expect("refused while cooling down") }
    };
    // The same address as another user, the same user from another address: both refused.
    let by_address = refusal(&bob, "203.0.113.1").await;
    assert!(by_address.contains("RATE_LIMITED"), "{by_address}");
    assert!(by_address.contains("60 s"), "says how long: {by_address}");
    let by_user = refusal(&ann, "198.51.100.7").await;
    assert!(by_user.contains("RATE_LIMITED"), "{by_user}");
    // A token given late, in `auth`, is refused the same way.
    let late = SocketClient::connect(
        &elsewhere.base,
        ConnectOptions { headers: vec![("x-forwarded-for".into(), "198.51.100.8".into())], ..Default::default() },
    )
    .await
    .expect("connects without a token");
    let ack = late.emit_with_ack("auth", json!({ "token": ann.token }), WAIT).await.expect("an ack");
    assert_eq!(ack["error"]["code"], "RATE_LIMITED", "{ack}");
    let said = late.expect_event("auth:error", WAIT).await;
    assert_eq!(said["code"], "RATE_LIMITED", "{said}");
    late.expect_server_disconnect(WAIT).await.expect("then disconnected");
    // Someone else from elsewhere is not.
    connect_from(&elsewhere.base, &cat, "198.51.100.9").await;

    // Over: the user, from the address, connects (the flooder's own Engine.IO connection,
    // still open, keeps its place in the address's count: one of the two).
    app.clock.advance(std::time::Duration::from_secs(60));
    connect_from(&elsewhere.base, &ann, "203.0.113.1").await;
}

async fn subscribe(socket: &SocketClient, conversation: Uuid) -> Value {
    socket.emit_with_ack("subscribe", json!({ "conversationId": conversation }), WAIT).await.expect("an ack")
}

async fn subscriptions_per_socket_stop_at_the_limit(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let conversations = [direct(&ann, &bob).await, direct(&ann, &cat).await, group(&ann, &[&bob, &cat]).await];
    let ann_socket = connect_from(&app.base, &ann, "203.0.113.1").await;
    let bob_socket = connect_from(&app.base, &bob, "198.51.100.2").await;
    // Six events from Ann's socket: within the burst.
    for &conversation in &conversations[..SUBSCRIPTIONS] {
        assert_eq!(subscribe(&ann_socket, conversation).await["ok"], true);
    }
    assert_eq!(subscribe(&ann_socket, conversations[0]).await["ok"], true, "subscribing again is not one more");
    let refused = subscribe(&ann_socket, conversations[2]).await;
    assert_eq!(refused["error"]["code"], "VALIDATION_ERROR", "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("unsubscribe"), "{refused}");
    // Bob's socket has its own count.
    assert_eq!(subscribe(&bob_socket, conversations[0]).await["ok"], true);
    assert_eq!(subscribe(&bob_socket, conversations[2]).await["ok"], true);

    let ack =
        ann_socket.emit_with_ack("unsubscribe", json!({ "conversationId": conversations[0] }), WAIT).await.unwrap();
    assert_eq!(ack["ok"], true);
    let freed = subscribe(&ann_socket, conversations[2]).await;
    assert_eq!(freed["ok"], true, "a place was freed: {freed}");
}

async fn packets_over_the_configured_size_close_only_their_connection(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let ann_socket = connect_from(&app.base, &ann, "203.0.113.1").await;
    let bob_socket = connect_from(&app.base, &bob, "198.51.100.2").await;
    let packet = |size: usize| {
        let frame = |pad: &str| format!("42/chat,[\"ping\",{{\"timestamp\":1,\"pad\":\"{pad}\"}}]");
        frame(&"x".repeat(size - frame("").len()))
    };
    // The whole websocket message (Engine.IO type digit included) at the limit: accepted.
    ann_socket.send_raw(&packet(MAX_PAYLOAD)).await;
    assert_eq!(ann_socket.expect_event("pong", WAIT).await["timestamp"], 1, "at the limit: accepted");
    ann_socket.send_raw(&packet(MAX_PAYLOAD + 1)).await;
    ann_socket.expect_disconnect(WAIT).await.expect("one byte over: the connection is closed");
    assert_eq!(ping(&bob_socket, 1).await["ok"], true, "the bystander kept its connection");
}

mod peer_address {
    use super::*;

    /// Without `TRUST_PROXY` the peer address is counted and `X-Forwarded-For` is ignored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_trusted_proxy_the_peer_address_is_counted() {
        let app = TestApp::try_spawn_with(Mode::Embedded, &[("MAX_CONNECTIONS_PER_IP", "1")]).await.unwrap();
        let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
        let ann_socket = connect_from(&app.base, &ann, "203.0.113.1").await;
        let refused =
            SocketClient::connect(&app.base, options(&bob, "198.51.100.2")).await.err().expect("the same peer");
        assert!(refused.contains("RATE_LIMITED"), "{refused}");
        assert_eq!(ping(&ann_socket, 1).await["ok"], true);
    }

    /// 0 turns the limits off.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zero_turns_the_connection_and_event_limits_off() {
        let vars = [("MAX_CONNECTIONS_PER_IP", "0"), ("SOCKET_EVENTS_PER_SEC", "0"), ("SOCKET_EVENTS_BURST", "1")];
        let app = TestApp::try_spawn_with(Mode::Embedded, &vars).await.unwrap();
        let ann = app.register("Ann").await;
        let mut sockets = Vec::new();
        for _ in 0..3 {
            sockets.push(connect_from(&app.base, &ann, "203.0.113.1").await);
        }
        let acks = join_all((0..20).map(|i| ping(&sockets[0], i))).await;
        assert!(acks.iter().all(|ack| ack["ok"] == true), "{acks:?}");
    }
}
