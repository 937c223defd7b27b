//! Running a group, live (SPEC §4.1): sockets already connected follow membership changes
//! at once, on whichever replica they are (in `replicated::…` the REST calls go to one
//! replica and the sockets that must follow sit on the other); participant events reach
//! the members and nobody else.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::in_all_modes;
use crate::support::{TestApp, socket::SocketClient};
use crate::{WAIT, group, send};

in_all_modes!(
    an_added_users_live_sockets_join_at_once_on_any_replica,
    a_removed_users_live_sockets_leave_at_once_on_every_replica,
    role_changes_and_leaving_are_announced_to_members_only,
);

async fn subscribe(socket: &SocketClient, conversation: Uuid) {
    let ack = socket.emit_with_ack("subscribe", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ack["ok"], true, "{ack}");
}

async fn start_typing(socket: &SocketClient, conversation: Uuid) {
    let ack = socket.emit_with_ack("typing:start", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ack["ok"], true, "{ack}");
}

async fn an_added_users_live_sockets_join_at_once_on_any_replica(app: TestApp) {
    let (ann, bob, cat, eve) =
        (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await, app.register("Eve").await);
    let conversation = group(&ann, &[&bob]).await;
    let (here, there) = crate::replicas(&app);
    let (bob_socket, eve_socket) =
        (crate::connect_at(&here, &bob.token).await, crate::connect_at(&here, &eve.token).await);
    let cat_socket = crate::connect_at(&there, &cat.token).await;
    subscribe(&bob_socket, conversation).await;

    let added =
        ann.client.post(&format!("/api/conversations/{conversation}/participants"), json!({"userIds": [cat.id]})).await;
    added.assert_status(200);
    let update = cat_socket.expect_event("conversation:updated", WAIT).await;
    assert_eq!(update["conversation"]["id"], json!(conversation));
    assert!(update.get("removed").is_none(), "{update}");
    let announced = bob_socket.expect_event("participant:added", WAIT).await;
    assert_eq!((announced["conversationId"].clone(), announced["by"].clone()), (json!(conversation), json!(ann.id)));
    assert_eq!(announced["users"][0]["id"], json!(cat.id));
    assert!(announced["users"][0].get("email").is_none());

    // The next message and typing reach cat's socket, which never subscribed: it is in the room.
    send(&bob_socket, conversation, "b-1", "welcome cat").await;
    assert_eq!(cat_socket.expect_event("message:received", WAIT).await["message"]["content"], "welcome cat");
    start_typing(&bob_socket, conversation).await;
    assert_eq!(cat_socket.expect_event("typing:started", WAIT).await["userId"], json!(bob.id));
    // Nothing of it reached the outsider (the member on the same server already has it all).
    eve_socket.assert_no_event("participant:added", "an outsider heard of the new member").await;
    eve_socket.assert_no_event("message:received", "an outsider got the message").await;
}

async fn a_removed_users_live_sockets_leave_at_once_on_every_replica(app: TestApp) {
    let (ann, bob, cat, dan) =
        (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await, app.register("Dan").await);
    let conversation = group(&ann, &[&bob, &cat, &dan]).await;
    let (here, there) = crate::replicas(&app);
    let bob_socket = crate::connect_at(&here, &bob.token).await;
    // Cat and dan side by side on the other server, both subscribed: dan is the control.
    let (cat_socket, dan_socket) =
        (crate::connect_at(&there, &cat.token).await, crate::connect_at(&there, &dan.token).await);
    for socket in [&bob_socket, &cat_socket, &dan_socket] {
        subscribe(socket, conversation).await;
    }

    let path = format!("/api/conversations/{conversation}/participants/{}", cat.id);
    ann.client.delete(&path).await.assert_status(204);
    let removed = cat_socket.expect_event("conversation:updated", WAIT).await;
    assert_eq!((removed["conversation"]["id"].clone(), removed["removed"].clone()), (json!(conversation), json!(true)));
    for socket in [&bob_socket, &dan_socket] {
        let announced = socket.expect_event("participant:removed", WAIT).await;
        let expected = json!({"conversationId": conversation, "userId": cat.id, "by": ann.id, "reason": "removed"});
        assert_eq!(announced, expected);
    }

    // Typing and messages still reach dan; cat, on the same server, gets neither.
    start_typing(&bob_socket, conversation).await;
    assert_eq!(dan_socket.expect_event("typing:started", WAIT).await["userId"], json!(bob.id));
    cat_socket.assert_no_event("typing:started", "a removed member still hears typing").await;
    send(&bob_socket, conversation, "b-1", "cat is gone").await;
    dan_socket.expect_event("message:received", WAIT).await;
    cat_socket.assert_no_event("message:received", "a removed member still gets messages").await;
    let refused = cat_socket.emit_with_ack("subscribe", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(refused["error"]["code"], "NOT_IN_CONVERSATION", "{refused}");
    let refused = crate::send(&cat_socket, conversation, "c-1", "let me back").await;
    assert_eq!(refused["error"]["code"], "NOT_IN_CONVERSATION", "{refused}");
}

async fn role_changes_and_leaving_are_announced_to_members_only(app: TestApp) {
    let (ann, bob, cat, eve) =
        (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await, app.register("Eve").await);
    let conversation = group(&ann, &[&bob, &cat]).await;
    let (here, there) = crate::replicas(&app);
    let (bob_socket, cat_socket) =
        (crate::connect_at(&there, &bob.token).await, crate::connect_at(&there, &cat.token).await);
    let eve_socket = crate::connect_at(&there, &eve.token).await;

    let path = format!("/api/conversations/{conversation}/participants/{}", bob.id);
    ann.client.patch(&path, json!({"role": "owner"})).await.assert_status(200);
    let mut seen: Vec<Value> = Vec::new();
    for _ in 0..2 {
        seen.push(cat_socket.expect_event("participant:updated", WAIT).await);
    }
    let expected = [
        json!({"conversationId": conversation, "userId": bob.id, "role": "owner", "by": ann.id}),
        json!({"conversationId": conversation, "userId": ann.id, "role": "admin", "by": ann.id}),
    ];
    assert_eq!(seen, expected, "the hand-over, in two updates");
    assert_eq!(bob_socket.expect_event("participant:updated", WAIT).await["role"], "owner");

    // An edit reaches every member with their own view; a mute only the muter's devices.
    ann.client
        .patch(&format!("/api/conversations/{conversation}"), json!({"title": "Renamed"}))
        .await
        .assert_status(200);
    assert_eq!(cat_socket.expect_event("conversation:updated", WAIT).await["conversation"]["title"], "Renamed");
    assert_eq!(bob_socket.expect_event("conversation:updated", WAIT).await["conversation"]["title"], "Renamed");
    let mute = json!({"until": "2999-01-01T00:00:00Z"});
    cat.client.put(&format!("/api/conversations/{conversation}/mute"), mute).await.assert_status(200);
    let muted = cat_socket.expect_event("conversation:updated", WAIT).await;
    assert_eq!(muted["conversation"]["mutedUntil"], "2999-01-01T00:00:00.000Z");
    bob_socket.assert_no_event("conversation:updated", "a mute is the muter's own").await;

    let leave = crate::connect_at(&here, &ann.token).await;
    ann.client.delete(&format!("/api/conversations/{conversation}/leave")).await.assert_status(204);
    let left = cat_socket.expect_event("participant:removed", WAIT).await;
    assert_eq!(left, json!({"conversationId": conversation, "userId": ann.id, "by": ann.id, "reason": "left"}));
    let gone = leave.expect_event("conversation:updated", WAIT).await;
    assert_eq!(gone["removed"], true);
    for event in ["participant:updated", "participant:removed"] {
        eve_socket.assert_no_event(event, "an outsider heard of it").await;
    }
}
