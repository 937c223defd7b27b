//! Replies, mentions, reactions and pins on sockets (SPEC §4.2), in every mode.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::{WAIT, connect, group, in_all_modes, send};

in_all_modes!(
    twenty_sockets_reacting_at_once_count_exactly_on_any_replica,
    each_reader_hears_a_reaction_with_their_own_me,
    a_reply_preview_reaches_only_those_who_may_see_the_original,
    mentions_arrive_with_the_message,
    pins_are_announced_to_participants,
);

async fn twenty_sockets_reacting_at_once_count_exactly_on_any_replica(app: TestApp) {
    let owner = app.register("Owner").await;
    let mut users = Vec::new();
    for i in 0..20 {
        users.push(app.register(&format!("Reactor{i}")).await);
    }
    let conversation = group(&owner, &users.iter().collect::<Vec<_>>()).await;
    let owner_socket = connect(&app, &owner).await;
    let ack = send(&owner_socket, conversation, "target", "react!").await;
    let message = ack["data"]["message"]["id"].clone();
    let mut sockets = Vec::new();
    for user in &users {
        sockets.push(connect(&app, user).await); // alternating replicas in replicated mode
    }
    let payload = json!({"conversationId": conversation, "messageId": message, "emoji": "🎉"});
    let acks = join_all(sockets.iter().map(|s| s.emit_with_ack("reaction:add", payload.clone(), WAIT))).await;
    let mut versions: Vec<i64> =
        acks.iter().map(|a| a.as_ref().unwrap()["data"]["version"].as_i64().unwrap()).collect();
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<_>>(), "each reaction counted once");
    // Every participant ends with the newest update: 20, whatever order the updates came in.
    for socket in sockets.iter().chain([&owner_socket]) {
        let mut newest = json!(null);
        while newest["version"] != 20 {
            let update = socket.expect_event("reaction:updated", WAIT).await;
            if update["version"].as_i64() > newest["version"].as_i64() {
                newest = update;
            }
        }
        assert_eq!(newest["reactions"][0]["count"], 20, "{newest}");
    }
    let page = owner.client.get(&format!("/api/conversations/{conversation}/messages")).await;
    assert_eq!(page.body["messages"][0]["reactions"][0]["count"], 20);
}

async fn each_reader_hears_a_reaction_with_their_own_me(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    let (ann_socket, bob_socket) = (connect(&app, &ann).await, connect(&app, &bob).await);
    let ann_phone = connect(&app, &ann).await;
    let message = send(&ann_socket, conversation, "m", "hello").await["data"]["message"]["id"].clone();
    let _ = bob_socket.expect_event("message:received", WAIT).await;
    let payload = json!({"conversationId": conversation, "messageId": message, "emoji": "👍"});
    let ack = ann_socket.emit_with_ack("reaction:add", payload.clone(), WAIT).await.unwrap();
    assert_eq!(ack["data"]["reactions"], json!([{"emoji": "👍", "count": 1, "userIds": [ann.id], "me": true}]));
    assert_eq!(ann_phone.expect_event("reaction:updated", WAIT).await["reactions"][0]["me"], true, "her other device");
    let for_bob = bob_socket.expect_event("reaction:updated", WAIT).await;
    assert_eq!((for_bob["messageId"].clone(), for_bob["reactions"][0]["me"].clone()), (message.clone(), json!(false)));
    // Nothing changes, nothing is said.
    let again = ann_socket.emit_with_ack("reaction:add", payload, WAIT).await.unwrap();
    assert_eq!(again["data"]["version"], 1);
    bob_socket.assert_no_event("reaction:updated", "a reaction that changed nothing").await;
    // Bad input: an error ack, nothing else.
    let bad = json!({"conversationId": conversation, "messageId": message, "emoji": "a"});
    let refused = bob_socket.emit_with_ack("reaction:add", bad, WAIT).await.unwrap();
    assert_eq!(
        (refused["error"]["code"].clone(), refused["error"]["details"]["field"].clone()),
        (json!("VALIDATION_ERROR"), json!("emoji"))
    );
}

async fn a_reply_preview_reaches_only_those_who_may_see_the_original(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let conversation = group(&ann, &[&bob]).await;
    let bob_socket = connect(&app, &bob).await;
    let original = send(&bob_socket, conversation, "q", "a question").await["data"]["message"]["id"].clone();
    let added =
        ann.client.post(&format!("/api/conversations/{conversation}/participants"), json!({"userIds": [cat.id]})).await;
    added.assert_status(200);
    let (ann_socket, cat_socket) = (connect(&app, &ann).await, connect(&app, &cat).await);
    let payload =
        json!({"conversationId": conversation, "clientMessageId": "r", "content": "the answer", "replyToId": original});
    let ack = ann_socket.emit_with_ack("message:send", payload, WAIT).await.unwrap();
    assert_eq!(ack["data"]["message"]["replyTo"]["content"], "a question");
    let to_bob = bob_socket.expect_event("message:received", WAIT).await;
    assert_eq!(to_bob["message"]["replyTo"]["id"], original);
    let to_cat = cat_socket.expect_event("message:received", WAIT).await;
    assert_eq!(to_cat["message"]["content"], "the answer");
    assert!(to_cat["message"]["replyTo"].is_null(), "from before Cat joined: {to_cat}");
    cat_socket.assert_no_event("message:received", "the reply reached Cat once").await;
}

async fn mentions_arrive_with_the_message(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    let name = bob.client.get("/api/users/me").await.body["username"].as_str().unwrap().to_owned();
    let (ann_socket, bob_socket) = (connect(&app, &ann).await, connect(&app, &bob).await);
    let ack = send(&ann_socket, conversation, "m", &format!("hey @{name}!")).await;
    assert_eq!(ack["data"]["message"]["mentions"], json!([bob.id]));
    let received: Value = bob_socket.expect_event("message:received", WAIT).await;
    assert_eq!(received["message"]["mentions"], json!([bob.id]));
}

async fn pins_are_announced_to_participants(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    let (ann_socket, bob_socket) = (connect(&app, &ann).await, connect(&app, &bob).await);
    let message = send(&ann_socket, conversation, "m", "pin me").await["data"]["message"]["id"].clone();
    let path = format!("/api/conversations/{conversation}/pins/{}", message.as_str().unwrap());
    ann.client.put(&path, json!({})).await.assert_status(200);
    let pinned = bob_socket.expect_event("message:pinned", WAIT).await;
    assert_eq!((pinned["messageId"].clone(), pinned["pinnedBy"].clone()), (message.clone(), json!(ann.id)));
    ann.client.delete(&path).await.assert_status(204);
    let unpinned = bob_socket.expect_event("message:unpinned", WAIT).await;
    assert_eq!((unpinned["messageId"].clone(), unpinned["unpinnedBy"].clone()), (message, json!(ann.id)));
}
