//! The authorization matrix of the `/chat` events (issue 8): every client event of
//! docs/websocket-protocol.md §7 (registered in src/realtime/*.rs) × the roles {anonymous,
//! expired token, revoked token, non-participant, blocked user, participant, admin, owner},
//! asserting the exact ack `code`; the connect-time refusals; and that nothing leaks: no
//! other user's email in any event, presence hidden as the privacy settings say, cleared
//! messages and hidden conversations gone from history, list, sync and replay.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    Mode, TestApp,
    authz::{
        AUTH_FAILED, BLOCKED, Expect, Fixture, INVALID, NA, NOT_IN, ROLES, Role, WAIT, create_direct, create_group,
        mint_token, second_session, send,
    },
    http::TestUser,
    socket::{ConnectOptions, SocketClient},
};

async fn spawn(mode: Mode) -> Option<TestApp> {
    TestApp::try_spawn_with(mode, &[("MESSAGE_RATE_PER_MIN", "100000"), ("PRESENCE_GRACE_SECS", "0")]).await
}

/// Embedded always; production (PostgreSQL + Redis) when reachable.
macro_rules! in_embedded_and_production {
    ($($name:ident),* $(,)?) => {
        mod embedded { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::spawn(crate::support::Mode::Embedded).await.expect("embedded app")).await }
        )* }
        mod production { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(app) = super::spawn(crate::support::Mode::Production).await { super::$name(app).await } }
        )* }
    };
}

in_embedded_and_production!(
    every_event_by_every_role,
    bad_tokens_are_refused_at_connect_and_by_auth,
    presence_stays_hidden_as_the_settings_say,
    cleared_messages_and_hidden_conversations_stay_gone,
    a_conversation_hidden_while_offline_is_not_replayed,
    typing_stays_hidden_across_a_block,
);

const fn ok() -> Expect {
    Expect::Ok(0)
}

/// Expectations for the signed-in roles; anonymous and expired sockets are refused with
/// `AUTH_FAILED`; a revoked session's sockets are disconnected at logout (see
/// `bad_tokens_are_refused_at_connect_and_by_auth`), so they send nothing: n/a.
fn signed_in(np: Expect, blocked: Expect, participant: Expect, admin: Expect, owner: Expect) -> [Expect; 8] {
    [AUTH_FAILED, AUTH_FAILED, NA, np, blocked, participant, admin, owner]
}

fn participants_only() -> [Expect; 8] {
    signed_in(NOT_IN, ok(), ok(), ok(), ok())
}

fn anyone() -> [Expect; 8] {
    signed_in(ok(), ok(), ok(), ok(), ok())
}

fn table() -> Vec<(&'static str, [Expect; 8])> {
    vec![
        ("message:send", signed_in(NOT_IN, BLOCKED, ok(), ok(), ok())),
        ("message.send", signed_in(NOT_IN, BLOCKED, ok(), ok(), ok())),
        ("sync {conversations}", participants_only()),
        ("sync {since}", anyone()),
        ("subscribe", participants_only()),
        ("unsubscribe", anyone()),
        ("typing:start", participants_only()),
        ("typing:stop", participants_only()),
        ("typing.start", participants_only()),
        ("typing.stop", participants_only()),
        ("typing_start", participants_only()),
        ("typing_stop", participants_only()),
        ("message.typing", participants_only()),
        ("presence:heartbeat", anyone()),
        ("receipt:read", participants_only()),
        ("message.read", participants_only()),
        ("ping", anyone()),
        ("reaction:add", signed_in(NOT_IN, BLOCKED, ok(), ok(), ok())),
        ("reaction:remove", signed_in(NOT_IN, BLOCKED, ok(), ok(), ok())),
        // An unknown event is refused before the session is looked at.
        ("no-such-event", [INVALID, INVALID, NA, INVALID, INVALID, INVALID, INVALID, INVALID]),
        // The owner is the target: blocking yourself is a validation error.
        ("block.add (the owner)", signed_in(ok(), ok(), ok(), ok(), INVALID)),
        ("block.remove (the owner)", signed_in(ok(), ok(), ok(), ok(), INVALID)),
    ]
}

/// The event name and payload of a row, as `role` sends it.
fn event(fx: &Fixture, row: &str, role: Role) -> (String, Value) {
    let conversation = fx.conversation(role);
    let message = fx.message(role);
    let client_id = Uuid::new_v4().to_string();
    let by_id = json!({ "conversationId": conversation });
    let (name, payload) = match row {
        "message:send" => {
            ("message:send", json!({"conversationId": conversation, "content": "hi", "clientMessageId": client_id}))
        }
        "message.send" => {
            ("message.send", json!({"conversation_id": conversation, "content": "hi", "tempId": client_id}))
        }
        "sync {conversations}" => ("sync", json!({"conversations": [{"conversationId": conversation, "afterSeq": 0}]})),
        "sync {since}" => ("sync", json!({"since": "2000-01-01T00:00:00.000Z"})),
        "message.typing" => ("message.typing", json!({"conversation_id": conversation, "is_typing": true})),
        "presence:heartbeat" => ("presence:heartbeat", json!({"status": "away"})),
        "receipt:read" => ("receipt:read", json!({"conversationId": conversation, "messageId": message})),
        "ping" => ("ping", json!({"timestamp": 1})),
        "reaction:add" | "reaction:remove" => {
            (row, json!({"conversationId": conversation, "messageId": message, "emoji": "👍"}))
        }
        "no-such-event" => ("no-such-event", json!({})),
        "block.add (the owner)" => ("block.add", json!({"username": fx.owner.username})),
        "block.remove (the owner)" => ("block.remove", json!({"username": fx.owner.username})),
        other => (other, by_id),
    };
    (name.to_owned(), payload)
}

/// `None` when the ack is what `expect` says, else why not.
fn check(ack: &Result<Value, String>, expect: Expect) -> Option<String> {
    let ack = match ack {
        Ok(ack) => ack,
        Err(err) => return Some(format!("no ack: {err}")),
    };
    match expect {
        Expect::Na => None,
        Expect::Ok(_) if ack["ok"] == true => None,
        Expect::Err(_, code)
            if ack["ok"] == false && ack["error"]["code"] == code && ack["error"]["message"].is_string() =>
        {
            None
        }
        Expect::Ok(_) => Some(format!("expected ok, got {ack}")),
        Expect::Err(_, code) => Some(format!("expected {code}, got {ack}")),
    }
}

/// A socket past `auth:success` and the replay's `sync:complete`.
async fn connect_as(app: &TestApp, token: &str) -> SocketClient {
    let socket = connect_raw(app, Some(json!({ "token": token }))).await;
    socket.expect_event("auth:success", WAIT).await;
    socket.expect_event("sync:complete", WAIT).await;
    socket
}

async fn connect_raw(app: &TestApp, auth: Option<Value>) -> SocketClient {
    SocketClient::connect(&app.socket_base(), ConnectOptions { auth, ..Default::default() })
        .await
        .expect("connect /chat")
}

async fn every_event_by_every_role(app: TestApp) {
    let fx = Fixture::build(&app).await;
    // The expired role: a live socket whose token (valid at connect) has expired since.
    let short = mint_token(fx.member.id, 60);
    let expired = connect_as(&app, &short).await;
    app.clock.advance(Duration::from_secs(120));
    let mut sockets: Vec<(Role, SocketClient)> = Vec::new();
    for role in [Role::NonParticipant, Role::Blocked, Role::Participant, Role::Admin, Role::Owner] {
        let user = fx.user(role).expect("a user");
        sockets.push((role, connect_as(&app, &user.token).await));
    }
    let (mut failures, mut assertions, mut not_applicable) = (Vec::new(), 0, 0);
    for (row, expectations) in table() {
        for (role, expect) in ROLES.iter().zip(expectations) {
            if expect == NA {
                not_applicable += 1;
                continue;
            }
            let (name, payload) = event(&fx, row, *role);
            let ack = match role {
                Role::Anonymous => {
                    // A socket of its own per row: well within the 10 s it has to authenticate.
                    let socket = connect_raw(&app, None).await;
                    let ack = socket.emit_with_ack(&name, payload, WAIT).await;
                    socket.disconnect().await;
                    ack
                }
                Role::Expired => expired.emit_with_ack(&name, payload, WAIT).await,
                Role::Revoked => unreachable!("n/a"),
                role => {
                    let socket = &sockets.iter().find(|(r, _)| r == role).expect("socket").1;
                    socket.emit_with_ack(&name, payload, WAIT).await
                }
            };
            assertions += 1;
            if let Some(why) = check(&ack, expect) {
                failures.push(format!("{row} ({name}) as {role:?}: {why}"));
            }
            if let Ok(ack) = &ack
                && let Some(leak) = fx.foreign_email(fx.user(*role).map(|u| u.id), ack)
            {
                failures.push(format!("{row} as {role:?}, ack: {leak}"));
            }
        }
    }
    // A refused message:send of an expired socket runs no handler: no message:error.
    expired.assert_no_event("message:error", "an expired socket's send ran").await;
    assert!(expired.is_connected(), "an expired socket stays connected (docs §3.6)");
    // Nothing any socket received shows another user's email: each socket's own events are
    // all in once its barrier returns.
    for (_, socket) in &sockets {
        socket.barrier().await;
    }
    for (role, socket) in &sockets {
        let viewer = fx.user(*role).map(|u| u.id);
        for (name, data) in socket.drain() {
            if let Some(leak) = fx.foreign_email(viewer, &data) {
                failures.push(format!("event {name} to {role:?}: {leak}"));
            }
        }
    }
    eprintln!(
        "socket authorization matrix: {} events, {assertions} role assertions, {not_applicable} n/a",
        table().len()
    );
    assert!(failures.is_empty(), "{} of {assertions} rows failed:\n{}", failures.len(), failures.join("\n"));
}

/// The `auth:error` a socket got, and that it was then disconnected.
async fn refused_with(socket: &SocketClient) -> Value {
    let error = socket.expect_event("auth:error", WAIT).await;
    socket.expect_disconnect(WAIT).await.expect("disconnected after auth:error");
    error
}

async fn bad_tokens_are_refused_at_connect_and_by_auth(app: TestApp) {
    let fx = Fixture::build(&app).await;
    let mut failures = Vec::new();
    let mut expect_code = |what: &str, got: &Value, code: &str| {
        if got["code"] != code {
            failures.push(format!("{what}: expected {code}, got {got}"));
        }
    };

    // Handshake (SPEC §3 Connecting: missing/invalid/expired/revoked → auth:error AUTH_FAILED).
    for (what, token) in [
        ("handshake, expired token", fx.expired_token.clone()),
        ("handshake, revoked token", fx.revoked_token.clone()),
        ("handshake, garbage token", "garbage".to_owned()),
    ] {
        let socket = connect_raw(&app, Some(json!({ "token": token }))).await;
        let error = refused_with(&socket).await;
        expect_code(what, &error, "AUTH_FAILED");
    }

    // Late `auth` on a token-less socket (docs §7.1).
    for (what, token, ack_code, error_code) in [
        ("late auth, expired token", fx.expired_token.clone(), "AUTH_FAILED", "AUTH_FAILED"),
        ("late auth, missing token", String::new(), "AUTH_FAILED", "AUTH_FAILED"),
        // SPEC §3 Connecting: a revoked token → `auth:error {code: "AUTH_FAILED"}` (the server
        // agrees; docs §7.1's table says `auth:error {code: "TOKEN_REVOKED"}` here). The ack
        // says TOKEN_REVOKED (docs §5, §7.1).
        ("late auth, revoked token", fx.revoked_token.clone(), "TOKEN_REVOKED", "AUTH_FAILED"),
    ] {
        let socket = connect_raw(&app, None).await;
        let ack = socket.emit_with_ack("auth", json!({ "token": token }), WAIT).await.unwrap_or_default();
        expect_code(&format!("{what} (ack)"), &ack["error"], ack_code);
        let error = refused_with(&socket).await;
        expect_code(&format!("{what} (auth:error)"), &error, error_code);
    }

    // Token swap on a live socket: refusals only in the ack, the session is kept (docs §3.5).
    let live = connect_as(&app, &fx.member.token).await;
    for (what, token, code) in [
        ("swap to an expired token", fx.expired_token.clone(), "AUTH_FAILED"),
        ("swap to a revoked token", fx.revoked_token.clone(), "TOKEN_REVOKED"),
        ("swap to another user's token", fx.owner.token.clone(), "AUTH_FAILED"),
    ] {
        let ack = live.emit_with_ack("auth", json!({ "token": token }), WAIT).await.unwrap_or_default();
        expect_code(&format!("{what} (ack)"), &ack["error"], code);
    }
    let still = live.emit_with_ack("subscribe", json!({"conversationId": fx.group}), WAIT).await.unwrap_or_default();
    assert_eq!(still["ok"], true, "the live socket kept its session: {still}");
    // The subscribe's ack came after the swaps' answers: an auth:error would be here now.
    live.assert_no_event("auth:error", "a failed swap sent auth:error").await;

    // A revoked session: its live sockets get auth:error TOKEN_REVOKED and are disconnected;
    // the user's other sessions are untouched.
    let token = second_session(&app, &fx.member).await;
    let doomed = connect_as(&app, &token).await;
    app.client().with_token(&token).post_empty("/api/auth/logout").await.assert_status(204);
    let error = refused_with(&doomed).await;
    expect_code("logout of a live socket's session", &error, "TOKEN_REVOKED");
    let other = live.emit_with_ack("ping", json!({}), WAIT).await.unwrap_or_default();
    assert_eq!(other["ok"], true, "another session's socket is untouched: {other}");

    assert!(failures.is_empty(), "{} refusals wrong:\n{}", failures.len(), failures.join("\n"));
}

async fn set_settings(user: &TestUser, settings: Value) {
    user.client.patch("/api/users/me/settings", settings).await.assert_status(200);
}

async fn befriend(a: &TestUser, b: &TestUser) {
    a.client.post_empty(&format!("/api/users/{}/follow", b.id)).await.assert_status(200);
    b.client.post_empty(&format!("/api/users/{}/follow", a.id)).await.assert_status(200);
}

/// `looks offline` of docs §12.4.
fn looks_offline(view: &Value) -> bool {
    view["status"] == "offline" && view["lastActivity"].is_null() && view["lastSeenAt"].is_null()
}

async fn presence_stays_hidden_as_the_settings_say(app: TestApp) {
    let viewer = app.register("Viewer").await;
    let open = app.register("Open").await; // everyone (control)
    let nobody = app.register("Nobody").await;
    let friends_only = app.register("Friendsonly").await;
    let no_last_seen = app.register("Nolastseen").await;
    let blocker = app.register("Blocker").await;
    let friend = app.register("Friend").await;
    for other in [&open, &nobody, &friends_only, &no_last_seen, &blocker] {
        create_direct(&viewer, other).await; // every one of them is the viewer's direct peer
    }
    befriend(&friend, &friends_only).await;
    befriend(&friend, &nobody).await;
    set_settings(&nobody, json!({"presenceSharing": "nobody"})).await;
    set_settings(&friends_only, json!({"presenceSharing": "friends"})).await;
    set_settings(&no_last_seen, json!({"showLastSeen": false})).await;
    blocker.client.post_empty(&format!("/api/users/{}/block", viewer.id)).await.assert_status(204);

    let watching = connect_as(&app, &viewer.token).await;
    let friend_watching = connect_as(&app, &friend.token).await;
    let mut online = Vec::new();
    for user in [&open, &nobody, &friends_only, &blocker] {
        online.push(connect_as(&app, &user.token).await);
    }
    // Seen, then gone: its last seen is stored.
    let once = connect_as(&app, &no_last_seen.token).await;
    once.disconnect().await;

    let mut failures = Vec::new();
    // presence:update: the open user (control) is announced; the others never to the viewer.
    let mut announced = Vec::new();
    while let Some(update) = watching.next_event("presence:update", Duration::from_millis(1500)).await {
        announced.push(update);
    }
    if !announced.iter().any(|u| u["userId"] == open.id.to_string() && u["status"] == "online") {
        failures.push(format!("control: the open user's online was not announced: {announced:?}"));
    }
    for hidden in [&nobody, &friends_only, &blocker] {
        for update in announced.iter().filter(|u| u["userId"] == hidden.id.to_string()) {
            if update["status"] != "offline" {
                failures.push(format!("presence:update of {} reached the viewer: {update}", hidden.email));
            }
        }
    }
    for update in announced.iter().filter(|u| u["userId"] == no_last_seen.id.to_string()) {
        if !update["lastSeenAt"].is_null() {
            failures.push(format!("presence:update shows a hidden lastSeenAt: {update}"));
        }
    }
    // The friend sees the friends-only user, not the nobody user.
    let mut to_friend = Vec::new();
    while let Some(update) = friend_watching.next_event("presence:update", Duration::from_millis(300)).await {
        to_friend.push(update);
    }
    if !to_friend.iter().any(|u| u["userId"] == friends_only.id.to_string() && u["status"] == "online") {
        failures.push(format!("control: the friends-only user's online did not reach their friend: {to_friend:?}"));
    }
    if to_friend.iter().any(|u| u["userId"] == nobody.id.to_string() && u["status"] != "offline") {
        failures.push(format!("the nobody user's presence reached a friend: {to_friend:?}"));
    }

    // presence:bulk of a new socket lists only who may be seen.
    let again = connect_raw(&app, Some(json!({"token": viewer.token}))).await;
    again.expect_event("auth:success", WAIT).await;
    let bulk = again.expect_event("presence:bulk", WAIT).await;
    let listed: Vec<String> = bulk["users"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|u| u["userId"].as_str().unwrap_or_default().to_owned())
        .collect();
    if !listed.contains(&open.id.to_string()) {
        failures.push(format!("control: presence:bulk lacks the open user: {bulk}"));
    }
    for hidden in [&nobody, &friends_only, &blocker] {
        if listed.contains(&hidden.id.to_string()) {
            failures.push(format!("presence:bulk lists {}: {bulk}", hidden.email));
        }
    }
    for user in bulk["users"].as_array().cloned().unwrap_or_default() {
        if user["userId"] == no_last_seen.id.to_string()
            && !(user["lastSeenAt"].is_null() && user["lastActivity"].is_null())
        {
            failures.push(format!("presence:bulk shows a hidden last seen: {user}"));
        }
    }

    // REST: single, bulk and legacy.
    let single = |user: &TestUser| format!("/api/users/{}/presence", user.id);
    let v = &viewer.client;
    let control = v.get(&single(&open)).await;
    if control.body["status"] != "online" {
        failures.push(format!("control: the open user looks {}", control.body));
    }
    for (what, user) in [("nobody", &nobody), ("blocker", &blocker)] {
        let reply = v.get(&single(user)).await;
        if reply.status != 200 || !looks_offline(&reply.body) {
            failures.push(format!("GET presence of the {what} user: {} {}", reply.status, reply.body));
        }
    }
    let friends_reply = v.get(&single(&friends_only)).await;
    if friends_reply.status != 403 || friends_reply.code() != "FORBIDDEN" {
        failures.push(format!(
            "GET presence of the friends-only user by a non-friend: {} {}",
            friends_reply.status, friends_reply.body
        ));
    }
    let by_friend = friend.client.get(&single(&friends_only)).await;
    if by_friend.body["status"] != "online" {
        failures.push(format!("control: a friend sees the friends-only user as {}", by_friend.body));
    }
    let by_friend = friend.client.get(&single(&nobody)).await;
    if !looks_offline(&by_friend.body) {
        failures.push(format!("a friend sees the nobody user as {}", by_friend.body));
    }
    let hidden_seen = v.get(&single(&no_last_seen)).await;
    if hidden_seen.body["status"] != "offline"
        || !hidden_seen.body["lastSeenAt"].is_null()
        || !hidden_seen.body["lastActivity"].is_null()
    {
        failures.push(format!("GET presence of the no-last-seen user: {}", hidden_seen.body));
    }
    let own = no_last_seen.client.get(&single(&no_last_seen)).await;
    if own.body["lastSeenAt"].is_null() {
        failures.push(format!("control: a user reads their own lastSeenAt: {}", own.body));
    }
    let ids = [&nobody, &friends_only, &blocker, &no_last_seen].map(|u| u.id.to_string()).join(",");
    let bulk = v.get(&format!("/api/presence?userIds={ids}")).await;
    for view in bulk.body["presences"].as_array().cloned().unwrap_or_default() {
        if !looks_offline(&view) {
            failures.push(format!("GET /api/presence shows {view}"));
        }
    }
    let legacy = v.get(&format!("/api/v1/presence/users?user_ids={ids}")).await;
    for view in legacy.body["data"].as_array().cloned().unwrap_or_default() {
        if view["is_online"] != false
            || view["status"] != "offline"
            || !view["last_seen"].is_null()
            || !view["last_active_at"].is_null()
        {
            failures.push(format!("legacy presence shows {view}"));
        }
    }
    drop(online);
    assert!(failures.is_empty(), "{} presence leaks:\n{}", failures.len(), failures.join("\n"));
}

async fn cleared_messages_and_hidden_conversations_stay_gone(app: TestApp) {
    let me = app.register("Clearer").await;
    let peer = app.register("Peer").await;
    let group = create_group(&app, &peer, &[&me]).await;
    let direct = create_direct(&peer, &me).await;
    let mut failures = Vec::new();

    // While I am offline: two messages in the group, one in the direct conversation.
    let cleared = [send(&peer, group, "cleared one").await, send(&peer, group, "cleared two").await];
    let hidden_message = send(&peer, direct, "in a hidden conversation").await;
    me.client.delete(&format!("/api/conversations/{group}/messages")).await.assert_status(204);
    me.client.delete(&format!("/api/conversations/{direct}?scope=me")).await.assert_status(204);

    let gone = |what: &str, body: &Value, failures: &mut Vec<String>| {
        let text = body.to_string();
        for id in cleared.iter().chain([&hidden_message]) {
            if text.contains(&id.to_string()) {
                failures.push(format!("{what} brings back {id}: {body}"));
            }
        }
    };
    let cleared_gone = |what: &str, body: &Value, failures: &mut Vec<String>| {
        let text = body.to_string();
        for id in &cleared {
            if text.contains(&id.to_string()) || text.contains("cleared one") || text.contains("cleared two") {
                failures.push(format!("{what} brings back a cleared message: {body}"));
            }
        }
    };

    // REST: history (paged and polling), the list, unread counts.
    for query in ["", "?afterSeq=0", "?since=2000-01-01T00:00:00.000Z"] {
        let reply = me.client.get(&format!("/api/conversations/{group}/messages{query}")).await;
        cleared_gone(&format!("GET history{query}"), &reply.body, &mut failures);
    }
    let list = me.client.get("/api/conversations").await;
    gone("GET /api/conversations", &list.body, &mut failures);
    if list.body.to_string().contains(&direct.to_string()) {
        failures.push(format!("GET /api/conversations lists the hidden conversation: {}", list.body));
    }
    let archived = me.client.get("/api/conversations?archived=true").await;
    if archived.body.to_string().contains(&direct.to_string()) {
        failures.push(format!("?archived=true lists the hidden conversation: {}", archived.body));
    }
    let unread = me.client.get("/api/conversations/unread-count").await;
    if unread.body["total"] != 0 {
        failures.push(format!("cleared and hidden messages count as unread: {}", unread.body));
    }
    // The peer's history is untouched (clear for me only).
    let theirs = peer.client.get(&format!("/api/conversations/{group}/messages")).await;
    assert_eq!(theirs.body["messages"].as_array().map(Vec::len), Some(2), "{}", theirs.body);

    // Sockets: the replay on connect, sync by points and by time.
    let socket = connect_raw(&app, Some(json!({"token": me.token}))).await;
    socket.expect_event("auth:success", WAIT).await;
    socket.expect_event("sync:complete", WAIT).await;
    for (name, data) in socket.drain() {
        if name == "message:received" || name == "message.new" {
            // (The hidden conversation's message: see a_conversation_hidden_while_offline_is_not_replayed.)
            cleared_gone(&format!("replay ({name})"), &data, &mut failures);
        }
    }
    let by_points = socket
        .emit_with_ack("sync", json!({"conversations": [{"conversationId": group, "afterSeq": 0}]}), WAIT)
        .await
        .expect("sync ack");
    cleared_gone("sync {conversations}", &by_points, &mut failures);
    let by_time =
        socket.emit_with_ack("sync", json!({"since": "2000-01-01T00:00:00.000Z"}), WAIT).await.expect("sync ack");
    gone("sync {since}", &by_time, &mut failures);

    // A new message: the group shows it (and only it); the hidden conversation comes back
    // with the new message.
    let fresh = send(&peer, group, "after the clear").await;
    let history = me.client.get(&format!("/api/conversations/{group}/messages")).await;
    let ids: Vec<&str> = history.body["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    if ids != [fresh.to_string().as_str()] {
        failures.push(format!("history after a new message: {}", history.body));
    }
    send(&peer, direct, "hello again").await;
    let list = me.client.get("/api/conversations").await;
    if !list.body.to_string().contains(&direct.to_string()) {
        failures.push(format!("control: a new message brings the hidden conversation back: {}", list.body));
    }
    assert!(failures.is_empty(), "{} leaks:\n{}", failures.len(), failures.join("\n"));
}

/// A conversation hidden ("delete for me") while the user had no socket does not come back
/// through the replay on connect, as it does not through the list, unread counts or
/// `sync {since}` (docs §7.4). The issue asks for it; SPEC says only "hides a conversation for
/// me until a new message arrives" (and that a message created while offline is replayed).
async fn a_conversation_hidden_while_offline_is_not_replayed(app: TestApp) {
    let me = app.register("Hider").await;
    let peer = app.register("Peer").await;
    let direct = create_direct(&peer, &me).await;
    let missed = send(&peer, direct, "sent before the hide").await;
    me.client.delete(&format!("/api/conversations/{direct}?scope=me")).await.assert_status(204);
    let socket = connect_raw(&app, Some(json!({"token": me.token}))).await;
    socket.expect_event("auth:success", WAIT).await;
    let summary = socket.expect_event("sync:complete", WAIT).await;
    let replayed: Vec<(String, Value)> = socket
        .drain()
        .into_iter()
        .filter(|(name, data)| {
            (name == "message:received" || name == "message.new") && data.to_string().contains(&missed.to_string())
        })
        .collect();
    assert!(
        replayed.is_empty(),
        "the hidden conversation came back through the replay: {replayed:?} (sync:complete {summary})"
    );
}

/// SPEC: a blocked user never sees the blocker's typing (docs §13.4: neither side of a
/// block sees the other type), in events and in `typingUsers`, groups included.
async fn typing_stays_hidden_across_a_block(app: TestApp) {
    let blocker = app.register("Blocker").await;
    let blocked = app.register("Blocked").await;
    let witness = app.register("Witness").await;
    let group = create_group(&app, &blocker, &[&blocked, &witness]).await;
    blocker.client.post_empty(&format!("/api/users/{}/block", blocked.id)).await.assert_status(204);
    let mut sockets = Vec::new();
    for user in [&blocker, &blocked, &witness] {
        let socket = connect_as(&app, &user.token).await;
        let ack = socket.emit_with_ack("subscribe", json!({"conversationId": group}), WAIT).await.expect("ack");
        assert_eq!(ack["ok"], true, "{ack}");
        sockets.push(socket);
    }
    let [to_blocker, to_blocked, to_witness] = [&sockets[0], &sockets[1], &sockets[2]];
    let mut failures = Vec::new();
    for (typist, socket, other, other_socket) in
        [(&blocker, to_blocker, &blocked, to_blocked), (&blocked, to_blocked, &blocker, to_blocker)]
    {
        let ack = socket.emit_with_ack("typing:start", json!({"conversationId": group}), WAIT).await.expect("ack");
        assert_eq!(ack["ok"], true, "{ack}");
        let seen = to_witness.expect_event("typing:started", WAIT).await; // control
        assert_eq!(seen["userId"], typist.id.to_string());
        if let Some(event) = other_socket.next_event("typing:started", Duration::from_millis(300)).await {
            failures.push(format!("{} saw {} type: {event}", other.username, typist.username));
        }
        let detail = other.client.get(&format!("/api/conversations/{group}")).await;
        if detail.body["typingUsers"].to_string().contains(&typist.id.to_string()) {
            failures.push(format!(
                "typingUsers shows {} to {}: {}",
                typist.username, other.username, detail.body["typingUsers"]
            ));
        }
        let list = other.client.get("/api/conversations").await;
        if list.body.to_string().contains(&format!("\"userId\":\"{}\"", typist.id)) {
            failures.push(format!("the list's typingUsers shows {} to {}", typist.username, other.username));
        }
        let witness_view = witness.client.get(&format!("/api/conversations/{group}")).await;
        assert!(
            witness_view.body["typingUsers"].to_string().contains(&typist.id.to_string()),
            "control: {}",
            witness_view.body
        );
        socket.emit_with_ack("typing:stop", json!({"conversationId": group}), WAIT).await.expect("ack");
        to_witness.expect_event("typing:stopped", WAIT).await;
        if let Some(event) = other_socket.next_event("typing:stopped", Duration::from_millis(200)).await {
            failures.push(format!("{} saw {} stop typing: {event}", other.username, typist.username));
        }
    }
    assert!(failures.is_empty(), "{} typing leaks:\n{}", failures.len(), failures.join("\n"));
}
