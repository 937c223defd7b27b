//! Conversations and messages over REST: listing with cursors, creation rules, access,
//! deletion, joining and leaving, history and polling, the HTTP send fallback.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::in_both_modes;
use crate::support::{TestApp, http::TestUser};

in_both_modes!(
    a_direct_conversation_is_created_once_per_pair,
    direct_conversations_refuse_blocked_users_and_bad_input,
    groups_need_a_title_and_known_members,
    details_are_for_participants_only,
    lists_page_by_last_activity_with_opaque_cursors,
    only_the_owner_deletes_for_everyone_and_anyone_can_hide_for_themselves,
    joining_and_leaving_groups_hands_ownership_on,
    a_private_group_cannot_be_joined_by_knowing_its_id,
    history_pages_newest_first_and_polls_oldest_first,
    the_http_send_validates_and_deduplicates,
    a_photo_needs_no_caption,
);

fn id_of(body: &Value) -> Uuid {
    body["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no id in {body}"))
}

async fn create_direct(a: &TestUser, b: &TestUser) -> Uuid {
    id_of(
        a.client
            .post("/api/conversations", json!({"type": "direct", "participantIds": [b.id]}))
            .await
            .assert_status(201),
    )
}

async fn create_group(owner: &TestUser, members: &[&TestUser]) -> Uuid {
    create_group_with(owner, members, json!({})).await
}

/// A group with extra creation fields (`visibility`).
async fn create_group_with(owner: &TestUser, members: &[&TestUser], extra: Value) -> Uuid {
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let mut body = json!({"type": "group", "title": "Crew", "participantIds": ids});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let reply = owner.client.post("/api/conversations", body).await;
    id_of(reply.assert_status(201))
}

async fn post_message(user: &TestUser, conversation: Uuid, client_id: &str) -> Value {
    let reply = user
        .client
        .post(
            &format!("/api/conversations/{conversation}/messages"),
            json!({"clientMessageId": client_id, "content": format!("msg {client_id}")}),
        )
        .await;
    reply.assert_status(201).clone()
}

async fn a_direct_conversation_is_created_once_per_pair(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let first = ann.client.post("/api/conversations", json!({"type": "direct", "participantIds": [bob.id]})).await;
    let body = first.assert_status(201);
    assert_eq!(body["type"], "direct");
    assert_eq!(body["participantCount"], 2);
    assert!(body["lastMessage"].is_null());
    assert_eq!((body["unreadCount"].clone(), body["isArchived"].clone()), (json!(0), json!(false)));
    assert_eq!(body["typingUsers"], json!([]));
    assert_eq!(body["participants"].as_array().unwrap().len(), 2);
    let again =
        bob.client.post("/api/conversations", json!({"type": "direct", "participantIds": [ann.id, bob.id]})).await;
    assert_eq!(again.assert_status(200)["id"], body["id"], "the existing one, with 200");
}

async fn direct_conversations_refuse_blocked_users_and_bad_input(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let cat = app.register("Cat").await;
    bob.client.post_empty(&format!("/api/users/{}/block", ann.id)).await.assert_status(204);
    ann.client
        .post("/api/conversations", json!({"type": "direct", "participantIds": [bob.id]}))
        .await
        .assert_error(403, "BLOCKED");
    bob.client
        .post("/api/conversations", json!({"type": "direct", "participantIds": [ann.id]}))
        .await
        .assert_error(403, "BLOCKED");
    for body in [
        json!({"type": "direct", "participantIds": []}),
        json!({"type": "direct", "participantIds": [bob.id, cat.id]}),
        json!({"type": "direct", "participantIds": [ann.id]}),
        json!({"type": "channel", "participantIds": [cat.id]}),
        json!({"type": "direct", "participantIds": ["not-a-uuid"]}),
        json!({"participantIds": [cat.id]}),
    ] {
        ann.client.post("/api/conversations", body.clone()).await.assert_error(400, "VALIDATION_ERROR");
    }
    ann.client
        .post("/api/conversations", json!({"type": "direct", "participantIds": [Uuid::now_v7()]}))
        .await
        .assert_error(404, "NOT_FOUND");
    assert!(
        ann.client.get("/api/conversations").await.body["conversations"].as_array().unwrap().is_empty(),
        "nothing was created"
    );
    // A title with a direct conversation is accepted and ignored (SPEC §4.6: as the seeds'
    // NestJS validation would).
    let titled = ann
        .client
        .post("/api/conversations", json!({"type": "direct", "title": "ours", "participantIds": [cat.id]}))
        .await;
    assert!(titled.assert_status(201)["title"].is_null(), "{}", titled.body);
}

async fn groups_need_a_title_and_known_members(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    ann.client
        .post("/api/conversations", json!({"type": "group", "participantIds": [bob.id]}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    ann.client
        .post("/api/conversations", json!({"type": "group", "title": "  ", "participantIds": [bob.id]}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    ann.client
        .post("/api/conversations", json!({"type": "group", "title": "X", "participantIds": [Uuid::now_v7()]}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let created = ann
        .client
        .post("/api/conversations", json!({"type": "group", "title": " Crew ", "participantIds": [bob.id, bob.id]}))
        .await;
    let body = created.assert_status(201);
    assert_eq!((body["title"].clone(), body["participantCount"].clone()), (json!("Crew"), json!(2)));
    let roles: Vec<(String, String)> = body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["user"]["id"].as_str().unwrap().to_owned(), p["role"].as_str().unwrap().to_owned()))
        .collect();
    assert!(
        roles.contains(&(ann.id.to_string(), "owner".into())) && roles.contains(&(bob.id.to_string(), "member".into()))
    );
}

async fn details_are_for_participants_only(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let eve = app.register("Eve").await;
    let conversation = create_direct(&ann, &bob).await;
    bob.client.get(&format!("/api/conversations/{conversation}")).await.assert_status(200);
    eve.client.get(&format!("/api/conversations/{conversation}")).await.assert_error(403, "NOT_IN_CONVERSATION");
    eve.client
        .get(&format!("/api/conversations/{conversation}/messages"))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
    eve.client
        .post(&format!("/api/conversations/{conversation}/messages"), json!({"clientMessageId": "x", "content": "hi"}))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
    ann.client.get(&format!("/api/conversations/{}", Uuid::now_v7())).await.assert_error(404, "NOT_FOUND");
    ann.client.get("/api/conversations/nope").await.assert_error(400, "VALIDATION_ERROR");
    let detail = bob.client.get(&format!("/api/conversations/{conversation}")).await;
    for participant in detail.body["participants"].as_array().unwrap() {
        assert!(participant["user"].get("email").is_none() || participant["user"]["id"] == bob.id.to_string());
    }
}

async fn lists_page_by_last_activity_with_opaque_cursors(app: TestApp) {
    let me = app.register("Me").await;
    let mut conversations = Vec::new();
    for i in 0..5 {
        let other = app.register(&format!("Peer {i}")).await;
        conversations.push((create_direct(&me, &other).await, other));
    }
    // Activity: conversation 2 gets the newest message, from the peer (unread for me).
    app.clock.advance(std::time::Duration::from_secs(1));
    post_message(&conversations[2].1, conversations[2].0, "late").await;
    let first = me.client.get("/api/conversations?limit=2").await;
    let body = first.assert_status(200);
    let ids: Vec<&str> = body["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids[0], conversations[2].0.to_string());
    assert_eq!(body["conversations"][0]["unreadCount"], 1);
    assert_eq!(body["conversations"][0]["lastMessage"]["content"], "msg late");
    assert_eq!(body["hasMore"], true);
    let mut seen: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let mut cursor = body["nextCursor"].as_str().unwrap().to_owned();
    loop {
        let page = me.client.get(&format!("/api/conversations?limit=2&cursor={cursor}")).await;
        let body = page.assert_status(200);
        seen.extend(body["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match body["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let mut expected: Vec<String> = conversations.iter().map(|(id, _)| id.to_string()).collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "every conversation exactly once across pages");
    for bad in ["garbage!", "eyJ0IjoieCJ9", "e30"] {
        me.client.get(&format!("/api/conversations?cursor={bad}")).await.assert_error(400, "VALIDATION_ERROR");
    }
    for bad in ["0", "101", "x"] {
        me.client.get(&format!("/api/conversations?limit={bad}")).await.assert_error(400, "VALIDATION_ERROR");
    }
}

async fn only_the_owner_deletes_for_everyone_and_anyone_can_hide_for_themselves(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = create_group(&ann, &[&bob]).await;
    bob.client.delete(&format!("/api/conversations/{conversation}")).await.assert_error(403, "FORBIDDEN");
    bob.client.delete(&format!("/api/conversations/{conversation}?scope=me")).await.assert_status(204);
    assert!(
        bob.client.get("/api/conversations").await.body["conversations"].as_array().unwrap().is_empty(),
        "hidden for bob"
    );
    assert_eq!(
        ann.client.get("/api/conversations").await.body["conversations"].as_array().unwrap().len(),
        1,
        "not for ann"
    );
    post_message(&ann, conversation, "wake").await;
    assert_eq!(
        bob.client.get("/api/conversations").await.body["conversations"].as_array().unwrap().len(),
        1,
        "back on a new message"
    );
    ann.client
        .delete(&format!("/api/conversations/{conversation}?scope=galaxy"))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    ann.client.delete(&format!("/api/conversations/{conversation}")).await.assert_status(204);
    bob.client.get(&format!("/api/conversations/{conversation}")).await.assert_error(404, "NOT_FOUND");
    assert!(bob.client.get("/api/conversations").await.body["conversations"].as_array().unwrap().is_empty());
    ann.client
        .post(
            &format!("/api/conversations/{conversation}/messages"),
            json!({"clientMessageId": "late", "content": "x"}),
        )
        .await
        .assert_error(404, "NOT_FOUND");
}

async fn joining_and_leaving_groups_hands_ownership_on(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let cat = app.register("Cat").await;
    let conversation = create_group_with(&ann, &[&bob], json!({"visibility": "public"})).await;
    post_message(&ann, conversation, "before-cat").await;
    let joined = cat.client.post_empty(&format!("/api/conversations/{conversation}/join")).await;
    assert_eq!(joined.assert_status(200)["participantCount"], 3);
    assert_eq!(joined.body["unreadCount"], 0, "history before joining is not unread");
    ann.client.delete(&format!("/api/conversations/{conversation}/leave")).await.assert_status(204);
    let detail = bob.client.get(&format!("/api/conversations/{conversation}")).await;
    let owner: Vec<&Value> =
        detail.body["participants"].as_array().unwrap().iter().filter(|p| p["role"] == "owner").collect();
    assert_eq!(owner.len(), 1);
    assert_eq!(owner[0]["user"]["id"], bob.id.to_string(), "the longest-standing member inherits");
    ann.client.get(&format!("/api/conversations/{conversation}")).await.assert_error(403, "NOT_IN_CONVERSATION");
    ann.client
        .delete(&format!("/api/conversations/{conversation}/leave"))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
    let direct = create_direct(&ann, &bob).await;
    ann.client.post_empty(&format!("/api/conversations/{direct}/join")).await.assert_error(400, "VALIDATION_ERROR");
    ann.client.delete(&format!("/api/conversations/{direct}/leave")).await.assert_error(400, "VALIDATION_ERROR");
}

async fn a_private_group_cannot_be_joined_by_knowing_its_id(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let eve = app.register("Eve").await;
    let conversation = create_group(&ann, &[&bob]).await;
    post_message(&ann, conversation, "secret").await;
    let detail = ann.client.get(&format!("/api/conversations/{conversation}")).await;
    assert_eq!(detail.assert_status(200)["visibility"], "private", "groups are private unless made public");

    eve.client.post_empty(&format!("/api/conversations/{conversation}/join")).await.assert_error(403, "FORBIDDEN");
    eve.client.get(&format!("/api/conversations/{conversation}")).await.assert_error(403, "NOT_IN_CONVERSATION");
    eve.client
        .get(&format!("/api/conversations/{conversation}/messages"))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
    let after = ann.client.get(&format!("/api/conversations/{conversation}")).await;
    assert_eq!(after.assert_status(200)["participantCount"], 2, "the refused join changed nothing");
    bob.client.post_empty(&format!("/api/conversations/{conversation}/join")).await.assert_status(200);

    let direct = create_direct(&ann, &bob).await;
    let shown = ann.client.get(&format!("/api/conversations/{direct}")).await;
    assert!(shown.assert_status(200).get("visibility").is_none(), "direct conversations have no visibility");
    let bad = json!({"type": "direct", "participantIds": [eve.id], "visibility": "public"});
    ann.client.post("/api/conversations", bad).await.assert_error(400, "VALIDATION_ERROR");
    let bad = json!({"type": "group", "title": "x", "participantIds": [], "visibility": "secret"});
    ann.client.post("/api/conversations", bad).await.assert_error(400, "VALIDATION_ERROR");
}

async fn history_pages_newest_first_and_polls_oldest_first(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = create_direct(&ann, &bob).await;
    let mut created = Vec::new();
    for i in 1..=7 {
        created.push(post_message(if i % 2 == 0 { &bob } else { &ann }, conversation, &format!("h{i}")).await);
    }
    let path = format!("/api/conversations/{conversation}/messages");
    let seqs = |body: &Value| {
        body["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect::<Vec<_>>()
    };
    let first = bob.client.get(&format!("{path}?limit=3")).await;
    assert_eq!(seqs(first.assert_status(200)), [7, 6, 5]);
    assert_eq!(first.body["hasMore"], true);
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let second = bob.client.get(&format!("{path}?limit=3&cursor={cursor}")).await;
    assert_eq!(seqs(&second.body), [4, 3, 2]);
    let third = bob.client.get(&format!("{path}?limit=3&cursor={}", second.body["nextCursor"].as_str().unwrap())).await;
    assert_eq!(
        (seqs(&third.body), third.body["hasMore"].clone(), third.body["nextCursor"].clone()),
        (vec![1], json!(false), Value::Null)
    );

    let polled = bob.client.get(&format!("{path}?afterSeq=5")).await;
    assert_eq!(seqs(&polled.body), [6, 7]);
    let since = created[4]["createdAt"].as_str().unwrap();
    let by_time = bob.client.get(&format!("{path}?since={}", since.replace('+', "%2B"))).await;
    assert!(seqs(by_time.assert_status(200)).iter().all(|s| *s >= 5), "{:?}", seqs(&by_time.body));
    for bad in
        ["afterSeq=-1", "afterSeq=x", "since=yesterday", "cursor=%21%21", "afterSeq=1&since=2020-01-01T00:00:00Z"]
    {
        bob.client.get(&format!("{path}?{bad}")).await.assert_error(400, "VALIDATION_ERROR");
    }
    let message = &polled.body["messages"][1];
    for field in [
        "id",
        "conversationId",
        "seq",
        "senderId",
        "sender",
        "content",
        "contentType",
        "media",
        "clientMessageId",
        "createdAt",
        "updatedAt",
        "deletedAt",
    ] {
        assert!(message.get(field).is_some(), "Message lacks {field}: {message}");
    }
}

async fn the_http_send_validates_and_deduplicates(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = create_direct(&ann, &bob).await;
    let path = format!("/api/conversations/{conversation}/messages");
    for body in [
        json!({"content": "no client id"}),
        json!({"clientMessageId": "a"}),
        json!({"clientMessageId": "a", "content": ""}),
        json!({"clientMessageId": "a", "content": "x".repeat(4001)}),
        json!({"clientMessageId": 5, "content": "x"}),
        json!({"clientMessageId": "a", "content": "x", "contentType": "video"}),
        json!([1]),
    ] {
        ann.client.post(&path, body.clone()).await.assert_error(400, "VALIDATION_ERROR");
    }
    let first = post_message(&ann, conversation, "same").await;
    let retry = ann.client.post(&path, json!({"clientMessageId": "same", "content": "other text"})).await;
    assert_eq!(retry.assert_status(200)["id"], first["id"]);
    let media = ann
        .client
        .post(
            &path,
            json!({"clientMessageId": "img", "content": "look", "contentType": "image",
            "media": [{"url": "https://cdn.example.com/p.png", "width": 640, "height": 480, "type": "image"}]}),
        )
        .await;
    assert_eq!(media.assert_status(201)["media"][0]["width"], 640);
    assert_eq!(media.body["seq"], 2);
}

mod edge_cases {
    use serde_json::json;

    use crate::support::{Mode, TestApp};

    /// Seed 004: the last member leaving a group deletes it; clearing an empty conversation
    /// is fine.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_member_leaving_deletes_the_group_and_empty_clears_are_fine() {
        let app = TestApp::spawn(Mode::Embedded).await;
        let ann = app.register("Ann").await;
        let created = ann
            .client
            .post("/api/conversations", json!({"type": "group", "title": "Solo", "participantIds": []}))
            .await;
        let id = created.assert_status(201)["id"].as_str().unwrap().to_owned();
        ann.client.delete(&format!("/api/conversations/{id}/messages")).await.assert_status(204);
        ann.client.delete(&format!("/api/conversations/{id}/leave")).await.assert_status(204);
        ann.client.get(&format!("/api/conversations/{id}")).await.assert_error(404, "NOT_FOUND");
        assert!(ann.client.get("/api/conversations").await.body["conversations"].as_array().unwrap().is_empty());
    }
}

async fn a_photo_needs_no_caption(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let conversation = create_direct(&ann, &bob).await;
    let path = format!("/api/conversations/{conversation}/messages");
    let photo = json!({"clientMessageId": "p-1", "contentType": "image", "media": [{"url": "https://cdn.example/a.png", "type": "image"}]});
    let sent = ann.client.post(&path, photo).await;
    let body = sent.assert_status(201);
    assert_eq!((body["content"].clone(), body["contentType"].clone()), (json!(""), json!("image")));
    assert_eq!(body["media"][0]["url"], "https://cdn.example/a.png");
    // Text still needs its content; media still needs a media type.
    ann.client.post(&path, json!({"clientMessageId": "p-2"})).await.assert_error(400, "VALIDATION_ERROR");
    let text_with_media = json!({"clientMessageId": "p-3", "media": [{"url": "https://cdn.example/a.png"}]});
    ann.client.post(&path, text_with_media).await.assert_error(400, "VALIDATION_ERROR");
}
