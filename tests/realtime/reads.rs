//! Receipts, unread counts and per-user operations (seed 004 edge cases included).

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Mode, TestApp, http::TestUser, socket::SocketClient};
use crate::{WAIT, connect, direct, group, send};

async fn spawn(mode: Mode) -> Option<TestApp> {
    TestApp::try_spawn_with(mode, &[("RECEIPT_FLUSH_MS", "200"), ("MESSAGE_RATE_PER_MIN", "1000")]).await
}

crate::in_all_modes_spawned_by!(spawn;
    reading_in_a_direct_chat_tells_the_sender_at_once_and_syncs_my_devices,
    the_read_watermark_never_moves_back,
    hidden_reads_are_not_announced_nor_listed,
    large_groups_get_batched_reader_counts,
    legacy_message_read_reads_everything,
    unread_counts_are_pushed_and_stay_exact_under_a_mix_of_operations,
    mark_unread_archive_and_clear_are_per_user_and_synced,
    clearing_for_everyone_is_for_owners_and_admins,
    forwarding_copies_to_up_to_ten_conversations,
    leaving_and_deleting_reach_the_users_other_devices,
    unread_pushes_are_coalesced_per_user_and_exact_for_each_member
);

/// At most one `unread:updated` round per user per 500 ms (issue 20): a change right after a
/// push waits for the window to end, then goes out with the count as it is then. Members of a
/// group whose counts differ each get their own numbers.
async fn unread_pushes_are_coalesced_per_user_and_exact_for_each_member(app: TestApp) {
    let (ann, bob, cid) = (app.register("Ann").await, app.register("Bob").await, app.register("Cid").await);
    let team = group(&ann, &[&bob, &cid]).await;
    let with_bob = direct(&ann, &bob).await;
    let ann_socket = connect(&app, &ann).await;
    send(&ann_socket, with_bob, "d1", "only for bob").await;
    let (bob_socket, cid_socket) = (connect(&app, &bob).await, connect(&app, &cid).await);

    send(&ann_socket, team, "g1", "one").await;
    let first = unread_push(&bob_socket, team).await;
    let pushed_at = std::time::Instant::now();
    assert_eq!(first, json!({"conversationId": team, "unreadCount": 1, "total": 2}));
    let cid_first = unread_push(&cid_socket, team).await;
    assert_eq!(cid_first, json!({"conversationId": team, "unreadCount": 1, "total": 1}));

    send(&ann_socket, team, "g2", "two").await;
    send(&ann_socket, team, "g3", "three").await;
    let mut pushes = Vec::new();
    loop {
        let push = unread_push(&bob_socket, team).await;
        pushes.push((pushed_at.elapsed(), push.clone()));
        if push["unreadCount"] == 3 {
            assert_eq!(push, json!({"conversationId": team, "unreadCount": 3, "total": 4}));
            break;
        }
    }
    let (next_after, _) = pushes[0];
    assert!(next_after >= Duration::from_millis(400), "the next push came {next_after:?} after the first: {pushes:?}");
    assert!(pushes.len() <= 2, "at most one push per half second: {pushes:?}");
    loop {
        let push = unread_push(&cid_socket, team).await;
        if push["unreadCount"] == 3 {
            assert_eq!(push["total"], 3);
            break;
        }
    }
}

/// The next `unread:updated` of `conversation` (those of others are skipped).
async fn unread_push(socket: &SocketClient, conversation: Uuid) -> Value {
    loop {
        let push = socket.expect_event("unread:updated", WAIT).await;
        if push["conversationId"] == conversation.to_string() {
            return push;
        }
    }
}

async fn leaving_and_deleting_reach_the_users_other_devices(app: TestApp) {
    let (owner, member) = (app.register("Owner").await, app.register("Member").await);
    let first = group(&owner, &[&member]).await;
    let second = group(&owner, &[&member]).await;
    let (member_laptop, owner_phone) = (connect(&app, &member).await, connect(&app, &owner).await);
    member.client.delete(&format!("/api/conversations/{first}/leave")).await.assert_status(204);
    let left = member_laptop.expect_event("conversation:updated", WAIT).await;
    assert_eq!((left["conversation"]["id"].clone(), left["removed"].clone()), (json!(first), json!(true)));
    let seen = owner_phone.expect_event("conversation:updated", WAIT).await;
    assert_eq!((seen["conversation"]["participantCount"].clone(), seen.get("removed").cloned()), (json!(1), None));
    owner.client.delete(&format!("/api/conversations/{second}")).await.assert_status(204);
    for socket in [&member_laptop, &owner_phone] {
        let gone = socket.expect_event("conversation:updated", WAIT).await;
        assert_eq!((gone["conversation"]["id"].clone(), gone["removed"].clone()), (json!(second), json!(true)));
    }
}

async fn read(socket: &SocketClient, conversation: Uuid, message: &Value) -> Value {
    socket
        .emit_with_ack(
            "receipt:read",
            json!({"conversationId": conversation, "messageId": message["data"]["messageId"]}),
            WAIT,
        )
        .await
        .unwrap()
}

async fn unread_total(user: &TestUser) -> i64 {
    user.client.get("/api/conversations/unread-count").await.body["total"].as_i64().unwrap()
}

async fn reading_in_a_direct_chat_tells_the_sender_at_once_and_syncs_my_devices(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    let (ann_socket, bob_phone, bob_laptop) =
        (connect(&app, &ann).await, connect(&app, &bob).await, connect(&app, &bob).await);
    let sent = send(&ann_socket, conversation, "r1", "read me").await;
    let pushed = bob_laptop.expect_event("unread:updated", WAIT).await;
    assert_eq!(pushed, json!({"conversationId": conversation, "unreadCount": 1, "total": 1}));
    assert_eq!(unread_total(&bob).await, 1);

    let ack = read(&bob_phone, conversation, &sent).await;
    assert_eq!(
        (ack["ok"].clone(), ack["data"]["unreadCount"].clone(), ack["data"]["seq"].clone()),
        (json!(true), json!(0), json!(1))
    );
    let receipt = ann_socket.expect_event("receipt:updated", WAIT).await;
    assert_eq!(
        (receipt["userId"].clone(), receipt["messageId"].clone()),
        (json!(bob.id), sent["data"]["messageId"].clone())
    );
    assert!(receipt["readAt"].is_string());
    let synced = bob_laptop.expect_event("unread:updated", WAIT).await;
    assert_eq!(synced, json!({"conversationId": conversation, "unreadCount": 0, "total": 0}));
    let receipts =
        ann.client.get(&format!("/api/messages/{}/receipts", sent["data"]["messageId"].as_str().unwrap())).await;
    let body = receipts.assert_status(200);
    assert_eq!((body["totalCount"].clone(), body["readCount"].clone()), (json!(1), json!(1)));
    assert_eq!(body["receipts"][0]["userId"], bob.id.to_string());
    assert!(body["receipts"][0]["readAt"].is_string());
    let stranger = app.register("Eve").await;
    stranger
        .client
        .get(&format!("/api/messages/{}/receipts", sent["data"]["messageId"].as_str().unwrap()))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
    let bad = bob_phone
        .emit_with_ack("receipt:read", json!({"conversationId": conversation, "messageId": Uuid::now_v7()}), WAIT)
        .await
        .unwrap();
    assert_eq!(bad["error"]["code"], "NOT_FOUND");
    let bad = bob_phone.emit_with_ack("receipt:read", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(bad["error"]["code"], "VALIDATION_ERROR");
}

async fn the_read_watermark_never_moves_back(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    let (ann_socket, bob_socket) = (connect(&app, &ann).await, connect(&app, &bob).await);
    let first = send(&ann_socket, conversation, "w1", "one").await;
    let second = send(&ann_socket, conversation, "w2", "two").await;
    assert_eq!(read(&bob_socket, conversation, &second).await["data"]["unreadCount"], 0);
    ann_socket.expect_event("receipt:updated", WAIT).await;
    let back = read(&bob_socket, conversation, &first).await;
    assert_eq!((back["ok"].clone(), back["data"]["unreadCount"].clone()), (json!(true), json!(0)), "{back}");
    // Nothing to announce: a barrier message shows no second receipt came.
    send(&bob_socket, conversation, "b1", "barrier").await;
    ann_socket.expect_event("message:received", WAIT).await;
    assert!(ann_socket.drain().iter().all(|(e, _)| e != "receipt:updated"), "reading an older message moved nothing");
    let status = bob.client.put(&format!("/api/conversations/{conversation}/read-status"), json!({"read": true})).await;
    assert_eq!(status.assert_status(200)["unreadCount"], 0, "mark read with nothing unread is fine");
}

async fn hidden_reads_are_not_announced_nor_listed(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    bob.client.patch("/api/users/me/settings", json!({"readReceiptsEnabled": false})).await.assert_status(200);
    let conversation = direct(&ann, &bob).await;
    let (ann_socket, bob_socket) = (connect(&app, &ann).await, connect(&app, &bob).await);
    let sent = send(&ann_socket, conversation, "h1", "secret read").await;
    assert_eq!(read(&bob_socket, conversation, &sent).await["data"]["unreadCount"], 0, "bob's own count still moves");
    send(&bob_socket, conversation, "b", "barrier").await;
    ann_socket.expect_event("message:received", WAIT).await;
    assert!(ann_socket.drain().iter().all(|(e, _)| e != "receipt:updated"), "a hidden read was announced");
    let receipts =
        ann.client.get(&format!("/api/messages/{}/receipts", sent["data"]["messageId"].as_str().unwrap())).await;
    assert_eq!((receipts.body["readCount"].clone(), receipts.body["totalCount"].clone()), (json!(0), json!(1)));
}

async fn large_groups_get_batched_reader_counts(app: TestApp) {
    let owner = app.register("Owner").await;
    let mut members = Vec::new();
    for i in 0..10 {
        members.push(app.register(&format!("Member {i}")).await);
    }
    let refs: Vec<&TestUser> = members.iter().collect();
    let conversation = group(&owner, &refs).await;
    let owner_socket = connect(&app, &owner).await;
    let sent = send(&owner_socket, conversation, "big", "everyone read this").await;
    for member in &members[..3] {
        let socket = connect(&app, member).await;
        assert_eq!(read(&socket, conversation, &sent).await["ok"], true);
    }
    let mut count = 0;
    while count < 3 {
        let update = owner_socket.expect_event("receipt:count", WAIT).await;
        assert_eq!(update["messageId"], sent["data"]["messageId"]);
        count = update["count"].as_i64().unwrap();
    }
    assert_eq!(count, 3);
    assert!(
        owner_socket.drain().iter().all(|(e, _)| e != "receipt:updated"),
        "large groups get counts, not one event per read"
    );
    let receipts =
        owner.client.get(&format!("/api/messages/{}/receipts", sent["data"]["messageId"].as_str().unwrap())).await;
    assert_eq!((receipts.body["readCount"].clone(), receipts.body["totalCount"].clone()), (json!(3), json!(10)));
    assert!(
        receipts.body["receipts"].as_array().unwrap().iter().all(|r| r["readAt"].is_string()),
        "the batch was written"
    );
}

async fn legacy_message_read_reads_everything(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    let (ann_socket, bob_socket) = (crate::connect_legacy(&app, &ann).await, connect(&app, &bob).await);
    send(&ann_socket, conversation, "l1", "one").await;
    send(&ann_socket, conversation, "l2", "two").await;
    let ack = bob_socket.emit_with_ack("message.read", json!({"conversationId": conversation}), WAIT).await.unwrap();
    assert_eq!(ack["data"]["unreadCount"], 0);
    let read_ack = bob_socket.expect_event("message.read_ack", WAIT).await;
    assert_eq!(read_ack["conversationId"], conversation.to_string());
    let update = ann_socket.expect_event("message.read_update", WAIT).await;
    assert_eq!((update["conversationId"].clone(), update["readBy"].clone()), (json!(conversation), json!(bob.id)));
}

async fn unread_counts_are_pushed_and_stay_exact_under_a_mix_of_operations(app: TestApp) {
    let (me, ann, bob) = (app.register("Me").await, app.register("Ann").await, app.register("Bob").await);
    let with_ann = direct(&me, &ann).await;
    let team = group(&bob, &[&me, &ann]).await;
    let (ann_socket, bob_socket) = (connect(&app, &ann).await, connect(&app, &bob).await);
    let me_socket = connect(&app, &me).await;
    // Concurrent senders in two conversations.
    let (a, b) = tokio::join!(
        async {
            let mut sent = Vec::new();
            for i in 0..6 {
                sent.push(send(&ann_socket, if i % 2 == 0 { with_ann } else { team }, &format!("a{i}"), "x").await);
            }
            sent
        },
        async {
            let mut sent = Vec::new();
            for i in 0..5 {
                sent.push(send(&bob_socket, team, &format!("b{i}"), "y").await);
            }
            sent
        }
    );
    // Read part of the team, delete one unread message, clear nothing yet.
    read(&me_socket, team, &b[1]).await;
    let deleted = a[5]["data"]["messageId"].as_str().unwrap();
    ann.client.delete(&format!("/api/conversations/{team}/messages/{deleted}")).await.assert_status(200);
    me.client
        .put(&format!("/api/conversations/{with_ann}/read-status"), json!({"read": false}))
        .await
        .assert_status(200);

    // The model: with ann 3 messages unread; team = ann's 3 + bob's 5, minus what the read
    // covered, minus the deleted one.
    let history = me.client.get(&format!("/api/conversations/{team}/messages?limit=100")).await;
    let watermark = b[1]["data"]["seq"].as_i64().unwrap();
    let expected_team = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["seq"].as_i64().unwrap() > watermark && m["deletedAt"].is_null() && m["senderId"] != me.id.to_string()
        })
        .count() as i64;
    let counts = me.client.get("/api/conversations/unread-count").await;
    let per = |id: Uuid| {
        counts.body["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["conversationId"] == id.to_string())
            .map_or(0, |c| c["unreadCount"].as_i64().unwrap())
    };
    assert_eq!(per(with_ann), 3);
    assert_eq!(per(team), expected_team);
    assert_eq!(counts.body["total"].as_i64().unwrap(), 3 + expected_team);
    let list = me.client.get("/api/conversations").await;
    for conversation in list.body["conversations"].as_array().unwrap() {
        let id: Uuid = conversation["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(conversation["unreadCount"].as_i64().unwrap(), per(id), "list and unread-count agree");
    }
    // The pushes settle on the same numbers: mark the direct chat read and wait for its push.
    me.client
        .put(&format!("/api/conversations/{with_ann}/read-status"), json!({"read": true}))
        .await
        .assert_status(200);
    loop {
        let push = me_socket.expect_event("unread:updated", WAIT).await;
        if push["conversationId"] == with_ann.to_string() && push["unreadCount"] == 0 {
            assert_eq!(push["total"].as_i64().unwrap(), expected_team);
            break;
        }
    }
}

async fn mark_unread_archive_and_clear_are_per_user_and_synced(app: TestApp) {
    let (me, ann) = (app.register("Me").await, app.register("Ann").await);
    let conversation = direct(&me, &ann).await;
    let (me_phone, me_laptop) = (connect(&app, &me).await, connect(&app, &me).await);
    let marked = me.client.put(&format!("/api/conversations/{conversation}/read-status"), json!({"read": false})).await;
    assert_eq!(marked.assert_status(200)["unreadCount"], 1, "marked unread counts one");
    assert_eq!(me_laptop.expect_event("conversation:updated", WAIT).await["conversation"]["unreadCount"], 1);
    for _ in 0..2 {
        let archived =
            me.client.put(&format!("/api/conversations/{conversation}/archive"), json!({"archived": true})).await;
        assert_eq!(archived.assert_status(200)["isArchived"], true, "archiving twice is fine");
    }
    assert_eq!(me_phone.expect_event("conversation:updated", WAIT).await["conversation"]["unreadCount"], 1);
    assert!(me.client.get("/api/conversations").await.body["conversations"].as_array().unwrap().is_empty());
    assert_eq!(
        me.client.get("/api/conversations?archived=true").await.body["conversations"].as_array().unwrap().len(),
        1
    );
    assert_eq!(ann.client.get("/api/conversations").await.body["conversations"][0]["isArchived"], false, "only mine");
    me.client
        .put(&format!("/api/conversations/{conversation}/archive"), json!({"archived": false}))
        .await
        .assert_status(200);

    me.client.delete(&format!("/api/conversations/{conversation}/messages")).await.assert_status(204);
    ann.client
        .post(
            &format!("/api/conversations/{conversation}/messages"),
            json!({"clientMessageId": "c1", "content": "before clear"}),
        )
        .await
        .assert_status(201);
    me.client.delete(&format!("/api/conversations/{conversation}/messages")).await.assert_status(204);
    assert!(
        me.client.get(&format!("/api/conversations/{conversation}/messages")).await.body["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ann.client.get(&format!("/api/conversations/{conversation}/messages")).await.body["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(unread_total(&me).await, 0, "cleared messages are not unread");
    me.client
        .put(&format!("/api/conversations/{conversation}/archive"), json!({"archived": "yes"}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    me.client
        .put(&format!("/api/conversations/{conversation}/read-status"), json!({}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    app.register("Eve")
        .await
        .client
        .put(&format!("/api/conversations/{conversation}/archive"), json!({"archived": true}))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
}

async fn clearing_for_everyone_is_for_owners_and_admins(app: TestApp) {
    let (owner, member) = (app.register("Owner").await, app.register("Member").await);
    let conversation = group(&owner, &[&member]).await;
    owner
        .client
        .post(
            &format!("/api/conversations/{conversation}/messages"),
            json!({"clientMessageId": "x", "content": "soon gone"}),
        )
        .await
        .assert_status(201);
    member
        .client
        .delete(&format!("/api/conversations/{conversation}/messages?scope=everyone"))
        .await
        .assert_error(403, "FORBIDDEN");
    owner
        .client
        .delete(&format!("/api/conversations/{conversation}/messages?scope=galaxy"))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let member_socket = connect(&app, &member).await;
    owner.client.delete(&format!("/api/conversations/{conversation}/messages?scope=everyone")).await.assert_status(204);
    let update = member_socket.expect_event("conversation:updated", WAIT).await;
    assert!(update["conversation"]["lastMessage"].is_null(), "{update}");
    for user in [&owner, &member] {
        assert!(
            user.client.get(&format!("/api/conversations/{conversation}/messages")).await.body["messages"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    let _ = Duration::ZERO;
}

async fn forwarding_copies_to_up_to_ten_conversations(app: TestApp) {
    let me = app.register("Me").await;
    let source_peer = app.register("Source").await;
    let source = direct(&me, &source_peer).await;
    let mut targets = Vec::new();
    for i in 0..10 {
        let peer = app.register(&format!("Peer {i}")).await;
        targets.push(direct(&me, &peer).await);
    }
    let original = source_peer
        .client
        .post(
            &format!("/api/conversations/{source}/messages"),
            json!({"clientMessageId": "orig", "content": "pass it on"}),
        )
        .await;
    let id = original.body["id"].as_str().unwrap().to_owned();
    let forwarded = me.client.post(&format!("/api/messages/{id}/forward"), json!({"conversationIds": targets})).await;
    let copies = forwarded.assert_status(201)["messages"].as_array().unwrap().clone();
    assert_eq!(copies.len(), 10);
    assert!(copies.iter().all(|c| c["forwardedFrom"] == id.as_str()
        && c["content"] == "pass it on"
        && c["senderId"] == me.id.to_string()));
    let again = me.client.post(&format!("/api/messages/{id}/forward"), json!({"conversationIds": [targets[0]]})).await;
    assert_eq!(again.assert_status(200)["messages"][0]["id"], copies[0]["id"], "a retried forward finds its copy");
    let history = source_peer.client.get(&format!("/api/conversations/{source}/messages")).await;
    assert_eq!(history.body["messages"][0]["forwardedCount"], 10);

    let outsider = app.register("Outsider").await;
    let own = direct(&outsider, &me).await;
    outsider
        .client
        .post(&format!("/api/messages/{id}/forward"), json!({"conversationIds": [own]}))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
    let eleven: Vec<Uuid> = targets.iter().copied().chain([source]).collect();
    me.client
        .post(&format!("/api/messages/{id}/forward"), json!({"conversationIds": eleven}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    me.client
        .post(&format!("/api/messages/{id}/forward"), json!({"conversationIds": []}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let not_mine = direct(&outsider, &source_peer).await;
    me.client
        .post(&format!("/api/messages/{id}/forward"), json!({"conversationIds": [not_mine]}))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
    me.client
        .post(&format!("/api/messages/{}/forward", Uuid::now_v7()), json!({"conversationIds": [source]}))
        .await
        .assert_error(404, "NOT_FOUND");
}
