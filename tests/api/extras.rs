//! Replies, mentions, reactions, pins and search over REST (SPEC §4.2).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::in_both_modes;
use crate::support::{TestApp, http::TestUser};

in_both_modes!(
    a_reply_shows_a_preview_its_reader_may_see,
    mentions_name_participants_and_count_among_the_unread,
    reactions_take_one_emoji_and_count_per_message,
    pins_are_for_owners_and_admins_and_stop_at_fifty,
    search_finds_word_prefixes_highlights_them_and_pages,
);

fn id_of(body: &Value) -> Uuid {
    body["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no id in {body}"))
}

async fn group(owner: &TestUser, members: &[&TestUser]) -> Uuid {
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let body = json!({"type": "group", "title": "Crew", "participantIds": ids});
    id_of(owner.client.post("/api/conversations", body).await.assert_status(201))
}

async fn post(user: &TestUser, conversation: Uuid, body: Value) -> Value {
    let path = format!("/api/conversations/{conversation}/messages");
    let mut body = body;
    body["clientMessageId"] = json!(Uuid::new_v4().to_string());
    user.client.post(&path, body).await.assert_status(201).clone()
}

async fn say(user: &TestUser, conversation: Uuid, content: &str) -> Value {
    post(user, conversation, json!({"content": content})).await
}

async fn history(user: &TestUser, conversation: Uuid) -> Vec<Value> {
    let reply = user.client.get(&format!("/api/conversations/{conversation}/messages")).await;
    reply.assert_status(200)["messages"].as_array().unwrap().clone()
}

async fn a_reply_shows_a_preview_its_reader_may_see(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let conversation = group(&ann, &[&bob]).await;
    let original = say(&bob, conversation, &"a long question ".repeat(20)).await;
    let reply = post(&ann, conversation, json!({"content": "an answer", "replyToId": original["id"]})).await;
    let preview = &reply["replyTo"];
    assert_eq!((preview["id"].clone(), preview["senderId"].clone()), (original["id"].clone(), json!(bob.id)));
    assert_eq!(preview["content"].as_str().unwrap().chars().count(), 200, "a preview of 200 characters");
    assert!(preview["deletedAt"].is_null());
    assert_eq!(history(&bob, conversation).await[0]["replyTo"]["id"], original["id"]);
    // Plain messages answer nothing; a reply must answer a message of the same conversation.
    assert!(original["replyTo"].is_null());
    let elsewhere = group(&ann, &[&cat]).await;
    let path = format!("/api/conversations/{elsewhere}/messages");
    let refused =
        ann.client.post(&path, json!({"clientMessageId": "x", "content": "?", "replyToId": original["id"]})).await;
    refused.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(refused.body["error"]["details"]["field"], "replyToId");
    let unknown = json!({"clientMessageId": "y", "content": "?", "replyToId": Uuid::new_v4()});
    ann.client.post(&path, unknown).await.assert_error(400, "VALIDATION_ERROR");
    // A newcomer does not see a preview of what came before they joined.
    let added =
        ann.client.post(&format!("/api/conversations/{conversation}/participants"), json!({"userIds": [cat.id]})).await;
    added.assert_status(200);
    assert!(history(&cat, conversation).await.is_empty(), "the reply came before Cat joined");
    let again = post(&bob, conversation, json!({"content": "and again", "replyToId": original["id"]})).await;
    assert_eq!(again["replyTo"]["id"], original["id"], "Bob sees it");
    let seen_by_cat = history(&cat, conversation).await;
    assert_eq!(seen_by_cat.len(), 1);
    assert!(seen_by_cat[0]["replyTo"].is_null(), "Cat may not see the original: {}", seen_by_cat[0]);
    // The original deleted: a tombstone preview.
    let deleted = bob
        .client
        .delete(&format!("/api/conversations/{conversation}/messages/{}", original["id"].as_str().unwrap()))
        .await;
    deleted.assert_status(200);
    let tombstone = &history(&ann, conversation).await[0]["replyTo"];
    assert!(tombstone["content"].is_null() && tombstone["deletedAt"].is_string(), "{tombstone}");
}

async fn conversation_of(user: &TestUser, id: Uuid) -> Value {
    let list = user.client.get("/api/conversations").await.assert_status(200).clone();
    list["conversations"].as_array().unwrap().iter().find(|c| c["id"] == json!(id)).cloned().expect("listed")
}

async fn mentions_name_participants_and_count_among_the_unread(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let stranger = app.register("Dan").await;
    let conversation = group(&ann, &[&bob, &cat]).await;
    let (bob_name, cat_name, dan_name) = (username(&bob).await, username(&cat).await, username(&stranger).await);
    let sent =
        say(&ann, conversation, &format!("@{bob_name} and @{cat_name}, not @{dan_name}; mail {bob_name}@example.com"))
            .await;
    assert_eq!(sent["mentions"], json!([bob.id, cat.id]), "participants only, in order");
    say(&ann, conversation, "no one here").await;
    say(&ann, conversation, &format!("again @{bob_name}")).await;
    let for_bob = conversation_of(&bob, conversation).await;
    assert_eq!((for_bob["unreadCount"].clone(), for_bob["mentionedCount"].clone()), (json!(3), json!(2)));
    assert_eq!(conversation_of(&cat, conversation).await["mentionedCount"], 1);
    assert_eq!(conversation_of(&ann, conversation).await["mentionedCount"], 0, "her own messages");
    // Reading clears them.
    let last = history(&bob, conversation).await[0]["id"].clone();
    let read = bob
        .client
        .put(&format!("/api/conversations/{conversation}/read-status"), json!({"read": true, "messageId": last}))
        .await;
    read.assert_status(200);
    assert_eq!(conversation_of(&bob, conversation).await["mentionedCount"], 0);
}

async fn username(user: &TestUser) -> String {
    user.client.get("/api/users/me").await.assert_status(200)["username"].as_str().unwrap().to_owned()
}

fn reactions_path(conversation: Uuid, message: &Value, emoji: &str) -> String {
    let encoded: String = emoji.bytes().map(|b| format!("%{b:02X}")).collect();
    format!("/api/conversations/{conversation}/messages/{}/reactions/{encoded}", message["id"].as_str().unwrap())
}

async fn reactions_take_one_emoji_and_count_per_message(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let conversation = group(&ann, &[&bob, &cat]).await;
    let message = say(&ann, conversation, "react to me").await;
    for user in [&bob, &cat] {
        user.client.put(&reactions_path(conversation, &message, "👍"), json!({})).await.assert_status(200);
    }
    app.clock.advance(std::time::Duration::from_millis(5)); // ❤ comes after 👍
    let seen = bob.client.put(&reactions_path(conversation, &message, "❤"), json!({})).await.assert_status(200).clone();
    assert_eq!(seen["version"], 3);
    assert_eq!(
        seen["reactions"],
        json!([
            {"emoji": "👍", "count": 2, "userIds": [bob.id, cat.id], "me": true},
            {"emoji": "❤️", "count": 1, "userIds": [bob.id], "me": true},
        ]),
        "❤ is stored fully qualified"
    );
    // History shows them as each reader sees them.
    let reactions = history(&cat, conversation).await[0]["reactions"].clone();
    assert_eq!((reactions[0]["me"].clone(), reactions[1]["me"].clone()), (json!(true), json!(false)));
    assert_eq!(history(&ann, conversation).await[0]["reactions"][0]["me"], false);
    // Again: nothing changes; removing: one less.
    let again =
        cat.client.put(&reactions_path(conversation, &message, "👍"), json!({})).await.assert_status(200).clone();
    assert_eq!(again["version"], 3);
    let removed = cat.client.delete(&reactions_path(conversation, &message, "👍")).await.assert_status(200).clone();
    assert_eq!((removed["version"].clone(), removed["reactions"][0]["count"].clone()), (json!(4), json!(1)));
    // Not an emoji, two of them, text: refused, changing nothing.
    for bad in ["a", "👍👍", "ok", "👨‍👩‍👧‍👦"] {
        let refused = bob.client.put(&reactions_path(conversation, &message, bad), json!({})).await;
        refused.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(refused.body["error"]["details"]["field"], "emoji", "{bad}");
    }
    assert_eq!(history(&ann, conversation).await[0]["reactions"].as_array().unwrap().len(), 2);
    // Twenty different emoji at most.
    let other = say(&ann, conversation, "many").await;
    let emoji: Vec<&str> = vec![
        "😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘", "🥰", "😗", "😙", "🥲",
        "😚", "🙂",
    ];
    for e in &emoji {
        ann.client.put(&reactions_path(conversation, &other, e), json!({})).await.assert_status(200);
    }
    let refused = bob.client.put(&reactions_path(conversation, &other, "🤗"), json!({})).await;
    refused.assert_error(400, "VALIDATION_ERROR");
    bob.client.put(&reactions_path(conversation, &other, "😀"), json!({})).await.assert_status(200);
}

fn pin_path(conversation: Uuid, message: &Value) -> String {
    format!("/api/conversations/{conversation}/pins/{}", message["id"].as_str().unwrap())
}

async fn pins_are_for_owners_and_admins_and_stop_at_fifty(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[&bob]).await;
    let mut messages = Vec::new();
    for i in 0..51 {
        if i % 25 == 24 {
            app.clock.advance(std::time::Duration::from_secs(60)); // the message rate refills
        }
        messages.push(say(&ann, conversation, &format!("note {i}")).await);
    }
    bob.client.put(&pin_path(conversation, &messages[0]), json!({})).await.assert_error(403, "FORBIDDEN");
    for message in &messages[..50] {
        ann.client.put(&pin_path(conversation, message), json!({})).await.assert_status(200);
    }
    let full = ann.client.put(&pin_path(conversation, &messages[50]), json!({})).await;
    full.assert_error(400, "VALIDATION_ERROR");
    let again = ann.client.put(&pin_path(conversation, &messages[0]), json!({})).await.assert_status(200).clone();
    assert_eq!(again["message"]["id"], messages[0]["id"], "pinning again changes nothing");
    let listed = bob.client.get(&format!("/api/conversations/{conversation}/pins")).await.assert_status(200).clone();
    assert_eq!(listed.as_array().unwrap().len(), 50);
    assert_eq!(listed[0]["pinnedBy"], json!(ann.id));
    ann.client.delete(&pin_path(conversation, &messages[0])).await.assert_status(204);
    ann.client.delete(&pin_path(conversation, &messages[0])).await.assert_error(404, "NOT_FOUND");
    ann.client.put(&pin_path(conversation, &messages[50]), json!({})).await.assert_status(200);
    // In a direct conversation either person pins.
    let direct = id_of(
        ann.client
            .post("/api/conversations", json!({"type": "direct", "participantIds": [bob.id]}))
            .await
            .assert_status(201),
    );
    let note = say(&ann, direct, "remember").await;
    bob.client.put(&pin_path(direct, &note), json!({})).await.assert_status(200);
}

async fn search(user: &TestUser, query: &str) -> Value {
    let encoded: String = query.bytes().map(|b| format!("%{b:02X}")).collect();
    user.client.get(&format!("/api/search/messages?q={encoded}&limit=2")).await.assert_status(200).clone()
}

fn contents(page: &Value) -> Vec<String> {
    page["results"].as_array().unwrap().iter().map(|r| r["message"]["content"].as_str().unwrap().to_owned()).collect()
}

async fn search_finds_word_prefixes_highlights_them_and_pages(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let ours = group(&ann, &[&bob]).await;
    let theirs = group(&bob, &[&cat]).await;
    say(&ann, ours, "Deploy the release tonight").await;
    say(&bob, ours, "😀 the RELEASE notes").await;
    say(&bob, ours, "a release, a release").await;
    say(&cat, theirs, "release party").await;
    let thai = say(&ann, ours, "สวัสดีครับ ทดสอบระบบ").await;
    // Newest first, two a page, the caller's conversations only.
    let first = search(&ann, "releas").await;
    assert_eq!(contents(&first), ["a release, a release", "😀 the RELEASE notes"]);
    assert_eq!(first["results"][0]["highlights"], json!([[2, 8], [13, 19]]));
    assert_eq!(first["results"][1]["highlights"], json!([[7, 13]]), "UTF-16 offsets: 😀 counts 2");
    assert_eq!(first["hasMore"], true);
    let cursor = first["nextCursor"].as_str().unwrap();
    let next = ann.client.get(&format!("/api/search/messages?q=releas&limit=2&cursor={cursor}")).await;
    assert_eq!(contents(next.assert_status(200)), ["Deploy the release tonight"]);
    assert_eq!(next.body["hasMore"], false);
    assert_eq!(contents(&search(&ann, "สวัสดี").await), [thai["content"].as_str().unwrap()]);
    assert_eq!(search(&ann, "สวัสดี").await["results"][0]["highlights"], json!([[0, 6]]));
    assert_eq!(contents(&search(&cat, "release party").await), ["release party"]);
    // A deleted message is found no more.
    let hit = &search(&ann, "tonight").await["results"][0]["message"];
    let path = format!("/api/conversations/{ours}/messages/{}", hit["id"].as_str().unwrap());
    ann.client.delete(&path).await.assert_status(200);
    assert_eq!(search(&ann, "tonight").await["results"], json!([]));
    // Cleared for the caller: found no more by them, still by others; a newcomer finds only
    // what came after they joined.
    bob.client.delete(&format!("/api/conversations/{ours}/messages")).await.assert_status(204);
    assert_eq!(contents(&search(&bob, "releas").await), ["release party"], "only the other group's");
    assert_eq!(contents(&search(&ann, "releas").await).len(), 2);
    let dan = app.register("Dan").await;
    ann.client
        .post(&format!("/api/conversations/{ours}/participants"), json!({"userIds": [dan.id]}))
        .await
        .assert_status(200);
    assert_eq!(search(&dan, "releas").await["results"], json!([]));
    say(&ann, ours, "release day").await;
    assert_eq!(contents(&search(&dan, "releas").await), ["release day"]);
    // Bad input: no word, a bad cursor, a conversation that is not yours.
    ann.client.get("/api/search/messages?q=%20!").await.assert_error(400, "VALIDATION_ERROR");
    ann.client.get("/api/search/messages?q=x&cursor=nope").await.assert_error(400, "VALIDATION_ERROR");
    let foreign = ann.client.get(&format!("/api/search/messages?q=release&conversationId={theirs}")).await;
    foreign.assert_error(403, "NOT_IN_CONVERSATION");
}
