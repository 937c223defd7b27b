//! Seed 003's Django-style routes: typing over HTTP, `typing_user` in the room list, and
//! polling by time that misses and repeats nothing under concurrent writes.

use std::collections::HashSet;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::in_both_modes;
use crate::support::{TestApp, http::TestUser};

in_both_modes!(
    typing_over_http_shows_in_the_room_list,
    polling_by_time_misses_and_repeats_nothing_under_concurrent_writes
);

async fn direct(a: &TestUser, b: &TestUser) -> Uuid {
    let reply = a.client.post("/api/conversations", json!({"type": "direct", "participantIds": [b.id]})).await;
    reply.assert_status(201)["id"].as_str().unwrap().parse().unwrap()
}

fn room(rooms: &Value, id: Uuid) -> &Value {
    rooms.as_array().expect("a list of rooms").iter().find(|r| r["id"] == json!(id)).expect("the room")
}

async fn typing_over_http_shows_in_the_room_list(app: TestApp) {
    let ann = app.register("Ann Lee").await;
    let bob = app.register("Bob").await;
    let eve = app.register("Eve").await;
    let conversation = direct(&ann, &bob).await;
    let path = format!("/api/chat/rooms/{conversation}/typing/");
    let typed = ann.client.post(&path, json!({"is_typing": true})).await;
    assert_eq!(typed.assert_status(200), &json!({"success": true, "message": "Typing status updated"}));
    let rooms = bob.client.get("/api/chat/rooms/").await;
    let seen = room(rooms.assert_status(200), conversation);
    assert_eq!(
        seen["typing_user"],
        json!({"id": ann.id, "username": ann.username, "first_name": "Ann", "last_name": "Lee"})
    );
    assert_eq!(seen["type"], "direct");
    let mut participants: Vec<String> =
        seen["participants"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
    participants.sort();
    let mut expected = vec![ann.id.to_string(), bob.id.to_string()];
    expected.sort();
    assert_eq!(participants, expected);
    assert!(
        room(&ann.client.get("/api/chat/rooms/").await.body, conversation)["typing_user"].is_null(),
        "not yourself"
    );
    // Stopping (or a body left out: is_typing false) clears it.
    ann.client.post_empty(&path).await.assert_status(200);
    assert!(room(&bob.client.get("/api/chat/rooms/").await.body, conversation)["typing_user"].is_null());
    eve.client.post(&path, json!({"is_typing": true})).await.assert_error(403, "NOT_IN_CONVERSATION");
    ann.client.post(&path, json!({"is_typing": "yes"})).await.assert_error(400, "VALIDATION_ERROR");
}

async fn polling_by_time_misses_and_repeats_nothing_under_concurrent_writes(app: TestApp) {
    let (ann, bob, cat, dan) =
        (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await, app.register("Dan").await);
    let group = json!({"type": "group", "title": "Busy", "participantIds": [bob.id, cat.id, dan.id]});
    let conversation: Uuid =
        ann.client.post("/api/conversations", group).await.assert_status(201)["id"].as_str().unwrap().parse().unwrap();
    // Four writers at once (within each sender's message rate), while bob polls. The app
    // clock stands still: every message is written in the same millisecond as every poll,
    // the hardest case for polling by time.
    let writers: Vec<_> = [&ann, &bob, &cat, &dan]
        .into_iter()
        .enumerate()
        .map(|(w, user)| (user.client.clone(), w))
        .map(|(client, w)| {
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0..25 {
                    let body = json!({"clientMessageId": format!("{w}-{i}-{}", Uuid::new_v4()), "content": format!("m {w} {i}")});
                    let reply = client.post(&format!("/api/conversations/{conversation}/messages"), body).await;
                    sent.push(reply.assert_status(201)["id"].as_str().unwrap().to_owned());
                }
                sent
            })
        })
        .collect();
    let mut seen: Vec<String> = Vec::new();
    let mut since: Option<String> = None;
    let poll = |since: Option<String>| {
        let client = bob.client.clone();
        async move {
            let query = since.map(|s| format!("&since={}", urlencode(&s))).unwrap_or_default();
            let reply = client.get(&format!("/api/chat/messages/poll/?room_id={conversation}{query}")).await;
            reply.assert_status(200).clone()
        }
    };
    while !writers.iter().all(|w| w.is_finished()) {
        let page = poll(since.clone()).await;
        seen.extend(page["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()));
        since = Some(page["timestamp"].as_str().unwrap().to_owned());
    }
    let mut sent = HashSet::new();
    for writer in writers {
        sent.extend(writer.await.unwrap());
    }
    // Polls after the writers are done, until one brings nothing.
    loop {
        let page = poll(since.clone()).await;
        let messages = page["messages"].as_array().unwrap();
        seen.extend(messages.iter().map(|m| m["id"].as_str().unwrap().to_owned()));
        since = Some(page["timestamp"].as_str().unwrap().to_owned());
        if messages.is_empty() {
            break;
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a message came twice");
    assert_eq!(unique, sent, "every message came, once");
    assert_eq!(sent.len(), 100);
    bob.client.get("/api/chat/messages/poll/").await.assert_error(400, "VALIDATION_ERROR");
    bob.client
        .get(&format!("/api/chat/messages/poll/?room_id={conversation}&since=yesterday"))
        .await
        .assert_error(400, "VALIDATION_ERROR");
}

fn urlencode(raw: &str) -> String {
    raw.replace('+', "%2B").replace(':', "%3A")
}
