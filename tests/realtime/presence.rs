//! Presence: who hears about whom, multi-device aggregation, the offline grace, privacy,
//! `presence:bulk`, REST views, and the sweep after a replica dies.

use std::time::Duration;

use parley::shared_state::{LiveState, PresenceStatus};
use serde_json::json;
use uuid::Uuid;

use crate::support::{Mode, TestApp, http::TestUser};
use crate::{WAIT, connect, direct};

/// Grace of 1 s (on the app clock, which the tests move).
async fn spawn(mode: Mode) -> Option<TestApp> {
    TestApp::try_spawn_with(mode, &[("PRESENCE_GRACE_SECS", "1")]).await
}

const GRACE: Duration = Duration::from_secs(1);

/// Waits until the shared presence registry shows `done` for `user` (the server processed a
/// connect or disconnect), failing after [`WAIT`].
pub async fn registry_shows(app: &TestApp, user: Uuid, done: impl Fn(&LiveState) -> bool) {
    let presence = &app.state.platform.shared.presence;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let states = presence.states(&[user]).await.expect("presence state");
        if done(&states[0]) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the registry never showed it for {user}: {:?}", states[0]);
        tokio::task::yield_now().await;
    }
}

/// Waits until the server has taken `user`'s last device away, then moves the app clock
/// past the grace period.
pub async fn gone_past_grace(app: &TestApp, user: Uuid, grace: Duration) {
    registry_shows(app, user, |live| live.status == PresenceStatus::Offline).await;
    app.clock.advance(grace + Duration::from_millis(1));
}

pub async fn befriend(a: &TestUser, b: &TestUser) {
    a.client.post_empty(&format!("/api/users/{}/follow", b.id)).await.assert_status(200);
    b.client.post_empty(&format!("/api/users/{}/follow", a.id)).await.assert_status(200);
}

crate::in_all_modes_spawned_by!(spawn;
    a_friend_hears_a_connect_and_a_stranger_does_not,
    devices_aggregate_and_offline_waits_for_the_last_one_and_the_grace,
    away_needs_every_device_away,
    presence_sharing_and_blocks_hold_on_events_bulk_and_rest,
    hiding_last_seen_hides_it_everywhere,
    legacy_presence_events_and_route,
    a_dead_replicas_users_are_swept_offline,
    losing_sight_of_someone_shows_them_offline
);

mod grace {
    use std::time::Duration;

    use crate::support::{Mode, TestApp};
    use crate::{WAIT, connect};

    /// The sweep too waits for the grace period: a user whose only device just left stays
    /// online (to REST as to events) until it passed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sweep_waits_for_the_grace_period() {
        let app = TestApp::try_spawn_with(Mode::Embedded, &[("PRESENCE_GRACE_SECS", "30")]).await.unwrap();
        let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
        super::befriend(&ann, &bob).await;
        let bob_socket = connect(&app, &bob).await;
        connect(&app, &ann).await.disconnect().await;
        assert_eq!(bob_socket.expect_event("presence:update", WAIT).await["status"], "online");
        super::registry_shows(&app, ann.id, |live| live.status == super::PresenceStatus::Offline).await;
        assert_eq!(
            bob.client.get(&format!("/api/users/{}/presence", ann.id)).await.body["status"],
            "online",
            "within the grace"
        );
        // A sweep at this moment of the app clock, then a barrier: the sweep waits.
        app.state.services.presence.sweep().await;
        bob_socket.assert_no_event("presence:update", "the sweep did not wait for the grace period").await;
        super::gone_past_grace(&app, ann.id, Duration::from_secs(30)).await;
        assert_eq!(bob_socket.expect_event("presence:update", Duration::from_secs(10)).await["status"], "offline");
    }
}

async fn a_friend_hears_a_connect_and_a_stranger_does_not(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    befriend(&ann, &bob).await;
    let (bob_socket, cat_socket) = (connect(&app, &bob).await, connect(&app, &cat).await);
    let ann_socket = crate::connect_raw(&app, Some(json!({"token": ann.token}))).await;
    let update = bob_socket.expect_event("presence:update", Duration::from_secs(1)).await;
    assert_eq!(update["userId"], ann.id.to_string());
    assert_eq!(update["status"], "online");
    assert!(update["lastActivity"].is_string());
    ann_socket.expect_event("sync:complete", WAIT).await;
    // One broadcast reached bob; cat was never in it. Ann's own sockets never hear her.
    let _ = cat_socket.emit_with_ack("ping", json!({}), WAIT).await;
    assert!(cat_socket.drain().iter().all(|(e, _)| e != "presence:update"), "a stranger heard it");
    assert!(ann_socket.drain().iter().all(|(e, _)| e != "presence:update"), "ann heard herself");
}

async fn devices_aggregate_and_offline_waits_for_the_last_one_and_the_grace(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    befriend(&ann, &bob).await;
    let bob_socket = connect(&app, &bob).await;
    let (phone, laptop) = (connect(&app, &ann).await, connect(&app, &ann).await);
    assert_eq!(bob_socket.expect_event("presence:update", WAIT).await["status"], "online");
    // The laptop leaves at a moment of its own, so the registry shows when it has left.
    app.clock.advance(Duration::from_millis(10));
    let left_at = parley::clock::Clock::now_ms(&app.clock);
    laptop.disconnect().await;
    registry_shows(&app, ann.id, |live| live.last_activity_ms == Some(left_at)).await;
    // Past the laptop's grace on the app clock, a settle and a sweep on every replica decide
    // nothing: the phone is still there.
    app.clock.advance(GRACE * 2);
    for replica in app.replicas() {
        replica.state.services.presence.settle(ann.id).await;
        replica.state.services.presence.sweep().await;
    }
    let rest = bob.client.get(&format!("/api/users/{}/presence", ann.id)).await;
    assert_eq!(rest.assert_status(200)["status"], "online", "one device is still there");
    bob_socket.assert_no_event("presence:update", "one device is still there").await;
    phone.disconnect().await;
    gone_past_grace(&app, ann.id, GRACE).await;
    let offline = bob_socket.expect_event("presence:update", WAIT).await;
    assert_eq!(offline["status"], "offline");
    assert!(offline["lastSeenAt"].is_string(), "{offline}");
    let rest = bob.client.get(&format!("/api/users/{}/presence", ann.id)).await;
    assert_eq!(rest.assert_status(200)["status"], "offline");
    assert_eq!(rest.body["lastSeenAt"], offline["lastSeenAt"]);
}

async fn away_needs_every_device_away(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    befriend(&ann, &bob).await;
    let bob_socket = connect(&app, &bob).await;
    let (phone, laptop) = (connect(&app, &ann).await, connect(&app, &ann).await);
    bob_socket.expect_event("presence:update", WAIT).await;
    let ack = phone.emit_with_ack("presence:heartbeat", json!({"status": "away"}), WAIT).await.unwrap();
    assert_eq!(ack["ok"], true);
    assert_eq!(bob.client.get(&format!("/api/users/{}/presence", ann.id)).await.body["status"], "online");
    laptop.emit_with_ack("presence:heartbeat", json!({"status": "away"}), WAIT).await.unwrap();
    assert_eq!(bob_socket.expect_event("presence:update", WAIT).await["status"], "away");
    phone.emit_with_ack("presence:heartbeat", json!({"status": "online"}), WAIT).await.unwrap();
    assert_eq!(bob_socket.expect_event("presence:update", WAIT).await["status"], "online");
    let bad = phone.emit_with_ack("presence:heartbeat", json!({"status": "asleep"}), WAIT).await.unwrap();
    assert_eq!(bad["error"]["code"], "VALIDATION_ERROR");
}

async fn presence_sharing_and_blocks_hold_on_events_bulk_and_rest(app: TestApp) {
    let (ann, friend, peer, blocked) = (
        app.register("Ann").await,
        app.register("Friend").await,
        app.register("Peer").await,
        app.register("Blocked").await,
    );
    befriend(&ann, &friend).await;
    befriend(&ann, &blocked).await;
    direct(&ann, &peer).await;
    ann.client.post_empty(&format!("/api/users/{}/block", blocked.id)).await.assert_status(204);
    ann.client.patch("/api/users/me/settings", json!({"presenceSharing": "friends"})).await.assert_status(200);
    let (friend_socket, peer_socket, blocked_socket) =
        (connect(&app, &friend).await, connect(&app, &peer).await, connect(&app, &blocked).await);
    let _ann_socket = connect(&app, &ann).await;
    assert_eq!(friend_socket.expect_event("presence:update", WAIT).await["userId"], ann.id.to_string());
    for socket in [&peer_socket, &blocked_socket] {
        let _ = socket.emit_with_ack("ping", json!({}), WAIT).await;
        assert!(socket.drain().iter().all(|(e, _)| e != "presence:update"), "privacy leaked");
    }
    peer.client.get(&format!("/api/users/{}/presence", ann.id)).await.assert_error(403, "FORBIDDEN");
    let masked = blocked.client.get(&format!("/api/users/{}/presence", ann.id)).await;
    assert_eq!(masked.assert_status(200)["status"], "offline", "blocked users see offline");
    let bulk = peer.client.get(&format!("/api/presence?userIds={},{}", ann.id, friend.id)).await;
    assert_eq!(bulk.assert_status(200)["presences"][0]["status"], "offline");
    assert_eq!(bulk.body["presences"][1]["status"], "online");

    // presence:bulk on connect: the friend sees ann, the peer does not.
    let friend_again = crate::connect_raw(&app, Some(json!({"token": friend.token}))).await;
    let seen = friend_again.expect_event("presence:bulk", WAIT).await;
    assert!(
        seen["users"].as_array().unwrap().iter().any(|u| u["userId"] == ann.id.to_string() && u["status"] == "online"),
        "{seen}"
    );
    let peer_again = crate::connect_raw(&app, Some(json!({"token": peer.token}))).await;
    let seen = peer_again.expect_event("presence:bulk", WAIT).await;
    assert!(seen["users"].as_array().unwrap().iter().all(|u| u["userId"] != ann.id.to_string()), "{seen}");

    ann.client.patch("/api/users/me/settings", json!({"presenceSharing": "nobody"})).await.assert_status(200);
    let hidden = friend.client.get(&format!("/api/users/{}/presence", ann.id)).await;
    assert_eq!(hidden.assert_status(200)["status"], "offline", "nobody means always offline");
    for bad in ["", "x", &vec![uuid::Uuid::now_v7().to_string(); 201].join(",")] {
        friend.client.get(&format!("/api/presence?userIds={bad}")).await.assert_error(400, "VALIDATION_ERROR");
    }
}

async fn hiding_last_seen_hides_it_everywhere(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    befriend(&ann, &bob).await;
    ann.client.patch("/api/v1/users/me/settings", json!({"show_last_seen": false})).await.assert_status(200);
    let bob_socket = connect(&app, &bob).await;
    connect(&app, &ann).await.disconnect().await;
    bob_socket.expect_event("presence:update", WAIT).await;
    gone_past_grace(&app, ann.id, GRACE).await;
    let offline = bob_socket.expect_event("presence:update", WAIT).await;
    assert_eq!(offline["status"], "offline");
    assert!(offline["lastSeenAt"].is_null() && offline["lastActivity"].is_null(), "{offline}");
    let rest = bob.client.get(&format!("/api/users/{}/presence", ann.id)).await;
    assert!(rest.body["lastSeenAt"].is_null() && rest.body["lastActivity"].is_null(), "{}", rest.body);
    let own = ann.client.get(&format!("/api/users/{}/presence", ann.id)).await;
    assert!(own.body["lastSeenAt"].is_string(), "you see your own");
}

async fn legacy_presence_events_and_route(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    befriend(&ann, &bob).await;
    let bob_socket = crate::connect_legacy(&app, &bob).await;
    let ann_socket = connect(&app, &ann).await;
    let status = bob_socket.expect_event("user_status", WAIT).await;
    assert_eq!((status["user_id"].clone(), status["status"].clone()), (json!(ann.id), json!("online")));
    let online = bob_socket.expect_event("user.online", WAIT).await;
    assert_eq!((online["userId"].clone(), online["isOnline"].clone()), (json!(ann.id), json!(true)));
    let legacy = bob.client.get(&format!("/api/v1/presence/users?user_ids={}", ann.id)).await;
    let row = &legacy.assert_status(200)["data"][0];
    assert_eq!(legacy.body["success"], true);
    assert_eq!(
        (row["user_id"].clone(), row["status"].clone(), row["is_online"].clone()),
        (json!(ann.id), json!("online"), json!(true))
    );
    assert!(row.get("last_seen").is_some() && row.get("last_active_at").is_some());
    ann_socket.disconnect().await;
    gone_past_grace(&app, ann.id, GRACE).await;
    let offline = bob_socket.expect_event("user.offline", WAIT).await;
    assert_eq!(offline["isOnline"], false);
    assert!(offline["lastSeen"].is_string());
}

async fn a_dead_replicas_users_are_swept_offline(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    befriend(&ann, &bob).await;
    let bob_socket = connect(&app, &bob).await;
    // A socket of ann's on a replica that then died: registered, never renewed, never removed.
    app.state
        .platform
        .shared
        .presence
        .touch(ann.id, "socket-on-a-dead-replica", parley::shared_state::PresenceStatus::Online)
        .await
        .unwrap();
    app.state.services.presence.settle(ann.id).await;
    assert_eq!(bob_socket.expect_event("presence:update", WAIT).await["status"], "online");
    app.clock.advance(parley::shared_state::CONNECTION_TTL + Duration::from_secs(1));
    let offline = bob_socket.expect_event("presence:update", Duration::from_secs(10)).await;
    assert_eq!(offline["status"], "offline", "the sweep noticed");
}

async fn losing_sight_of_someone_shows_them_offline(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    befriend(&ann, &bob).await;
    befriend(&ann, &cat).await;
    let (bob_socket, cat_socket) = (connect(&app, &bob).await, connect(&app, &cat).await);
    let _ann_socket = connect(&app, &ann).await;
    for socket in [&bob_socket, &cat_socket] {
        assert_eq!(socket.expect_event("presence:update", WAIT).await["status"], "online");
    }
    ann.client.post_empty(&format!("/api/users/{}/block", bob.id)).await.assert_status(204);
    let hidden = bob_socket.expect_event("presence:update", WAIT).await;
    assert_eq!(
        (hidden["userId"].clone(), hidden["status"].clone()),
        (json!(ann.id), json!("offline")),
        "a block hides at once"
    );
    ann.client.patch("/api/users/me/settings", json!({"presenceSharing": "nobody"})).await.assert_status(200);
    assert_eq!(cat_socket.expect_event("presence:update", WAIT).await["status"], "offline");
    ann.client.patch("/api/users/me/settings", json!({"presenceSharing": "everyone"})).await.assert_status(200);
    assert_eq!(cat_socket.expect_event("presence:update", WAIT).await["status"], "online", "and shows again");
}
