//! Running a group over REST (SPEC §4.1): editing it, adding and removing participants,
//! roles and the ownership hand-over, history from the moment of joining, invite links in
//! every state, and mute.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::in_both_modes;
use crate::support::{TestApp, http::TestUser};

in_both_modes!(
    owners_and_admins_edit_a_group_and_members_cannot,
    adding_reports_who_was_skipped_and_why,
    owners_remove_anyone_admins_only_members,
    only_the_owner_changes_roles_and_hands_ownership_over,
    a_member_added_later_sees_history_from_their_join_on,
    invite_links_in_every_state,
    accepting_invites_is_rate_limited,
    muting_is_per_user_and_shown_in_the_conversation,
);

fn id_of(body: &Value) -> Uuid {
    body["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no id in {body}"))
}

async fn group(owner: &TestUser, members: &[&TestUser]) -> Uuid {
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let reply =
        owner.client.post("/api/conversations", json!({"type": "group", "title": "Crew", "participantIds": ids})).await;
    id_of(reply.assert_status(201))
}

async fn post(user: &TestUser, conversation: Uuid, content: &str) -> Uuid {
    let body = json!({"clientMessageId": Uuid::new_v4().to_string(), "content": content});
    id_of(user.client.post(&format!("/api/conversations/{conversation}/messages"), body).await.assert_status(201))
}

async fn add(by: &TestUser, conversation: Uuid, users: &[Uuid]) -> Value {
    let reply =
        by.client.post(&format!("/api/conversations/{conversation}/participants"), json!({"userIds": users})).await;
    reply.assert_status(200).clone()
}

async fn set_role(by: &TestUser, conversation: Uuid, user: Uuid, role: &str) -> crate::support::http::Reply {
    by.client.patch(&format!("/api/conversations/{conversation}/participants/{user}"), json!({"role": role})).await
}

fn role_of(detail: &Value, user: Uuid) -> Value {
    detail["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["user"]["id"] == json!(user))
        .map_or(Value::Null, |p| p["role"].clone())
}

async fn owners_and_admins_edit_a_group_and_members_cannot(app: TestApp) {
    let (ann, bob, cat, eve) =
        (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await, app.register("Eve").await);
    let conversation = group(&ann, &[&bob, &cat]).await;
    set_role(&ann, conversation, bob.id, "admin").await.assert_status(200);
    let path = format!("/api/conversations/{conversation}");
    let change = json!({"title": "Crew 2", "description": "we row", "avatarUrl": "https://cdn.example/crew.png"});
    let edited = ann.client.patch(&path, change).await;
    let body = edited.assert_status(200);
    assert_eq!((body["title"].clone(), body["description"].clone()), (json!("Crew 2"), json!("we row")));
    assert_eq!(body["avatarUrl"], "https://cdn.example/crew.png");
    assert_eq!(body["participants"].as_array().map(Vec::len), Some(3), "a detail");
    let by_admin = bob.client.patch(&path, json!({"description": null, "visibility": "public"})).await;
    assert!(by_admin.assert_status(200)["description"].is_null(), "null clears");
    assert_eq!(by_admin.body["visibility"], "public");
    assert_eq!(by_admin.body["title"], "Crew 2", "left out, left alone");
    cat.client.patch(&path, json!({"title": "mine"})).await.assert_error(403, "FORBIDDEN");
    eve.client.patch(&path, json!({"title": "mine"})).await.assert_error(403, "NOT_IN_CONVERSATION");
    let bad = ann.client.patch(&path, json!({"avatarUrl": "javascript:alert(1)"})).await;
    bad.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(bad.body["error"]["details"]["field"], "avatarUrl");
    let bad = ann.client.patch(&path, json!({"title": ""})).await;
    bad.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(bad.body["error"]["details"]["field"], "title");
    ann.client.patch(&path, json!({"visibility": "hidden"})).await.assert_error(400, "VALIDATION_ERROR");
    let unchanged = ann.client.get(&path).await;
    assert_eq!(unchanged.assert_status(200)["title"], "Crew 2", "refused changes changed nothing");
    // Public now: eve may join.
    eve.client.post_empty(&format!("{path}/join")).await.assert_status(200);
    let direct = id_of(
        ann.client
            .post("/api/conversations", json!({"type": "direct", "participantIds": [bob.id]}))
            .await
            .assert_status(201),
    );
    ann.client
        .patch(&format!("/api/conversations/{direct}"), json!({"title": "x"}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
}

async fn adding_reports_who_was_skipped_and_why(app: TestApp) {
    let (ann, bob, cat, dan, eve) = (
        app.register("Ann").await,
        app.register("Bob").await,
        app.register("Cat").await,
        app.register("Dan").await,
        app.register("Eve").await,
    );
    let conversation = group(&ann, &[&bob]).await;
    dan.client.post_empty(&format!("/api/users/{}/block", ann.id)).await.assert_status(204);
    ann.client.post_empty(&format!("/api/users/{}/block", eve.id)).await.assert_status(204);
    let ghost = Uuid::now_v7();
    let result = add(&ann, conversation, &[bob.id, cat.id, ghost, dan.id, eve.id, cat.id]).await;
    let added: Vec<&Value> = result["added"].as_array().unwrap().iter().collect();
    assert_eq!(added.len(), 1, "{result}");
    assert_eq!(added[0]["id"], json!(cat.id));
    assert!(added[0].get("email").is_none(), "no emails of others");
    let mut skipped: Vec<(String, String)> = result["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["userId"].as_str().unwrap().to_owned(), s["reason"].as_str().unwrap().to_owned()))
        .collect();
    skipped.sort();
    let mut expected = vec![
        (bob.id.to_string(), "already_member".to_owned()),
        (ghost.to_string(), "not_found".to_owned()),
        (dan.id.to_string(), "blocked".to_owned()),
        (eve.id.to_string(), "blocked".to_owned()),
    ];
    expected.sort();
    assert_eq!(skipped, expected);
    let detail = ann.client.get(&format!("/api/conversations/{conversation}")).await;
    assert_eq!(detail.assert_status(200)["participantCount"], 3);
    let path = format!("/api/conversations/{conversation}/participants");
    ann.client.post(&path, json!({"userIds": []})).await.assert_error(400, "VALIDATION_ERROR");
    let many: Vec<Uuid> = (0..101).map(|_| Uuid::now_v7()).collect();
    ann.client.post(&path, json!({"userIds": many})).await.assert_error(400, "VALIDATION_ERROR");
    bob.client.post(&path, json!({"userIds": [eve.id]})).await.assert_error(403, "FORBIDDEN");
}

async fn owners_remove_anyone_admins_only_members(app: TestApp) {
    let (ann, bob, cat, dan, eve) = (
        app.register("Ann").await,
        app.register("Bob").await,
        app.register("Cat").await,
        app.register("Dan").await,
        app.register("Eve").await,
    );
    let conversation = group(&ann, &[&bob, &cat, &dan]).await;
    set_role(&ann, conversation, bob.id, "admin").await.assert_status(200);
    set_role(&ann, conversation, cat.id, "admin").await.assert_status(200);
    let remove = |by: &TestUser, user: Uuid| {
        let path = format!("/api/conversations/{conversation}/participants/{user}");
        let client = by.client.clone();
        async move { client.delete(&path).await }
    };
    remove(&bob, ann.id).await.assert_error(403, "FORBIDDEN");
    remove(&bob, cat.id).await.assert_error(403, "FORBIDDEN");
    remove(&dan, bob.id).await.assert_error(403, "FORBIDDEN");
    remove(&bob, eve.id).await.assert_error(404, "NOT_FOUND");
    remove(&eve, dan.id).await.assert_error(403, "NOT_IN_CONVERSATION");
    remove(&bob, dan.id).await.assert_status(204);
    dan.client.get(&format!("/api/conversations/{conversation}")).await.assert_error(403, "NOT_IN_CONVERSATION");
    dan.client
        .get(&format!("/api/conversations/{conversation}/messages"))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
    remove(&ann, cat.id).await.assert_status(204);
    // Yourself: that is leaving, and the owner's leaving hands ownership on.
    remove(&ann, ann.id).await.assert_status(204);
    let detail = bob.client.get(&format!("/api/conversations/{conversation}")).await;
    assert_eq!(role_of(detail.assert_status(200), bob.id), "owner");
    assert_eq!(detail.body["participantCount"], 1);
}

async fn only_the_owner_changes_roles_and_hands_ownership_over(app: TestApp) {
    let (ann, bob, cat, eve) =
        (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await, app.register("Eve").await);
    let conversation = group(&ann, &[&bob, &cat]).await;
    let promoted = set_role(&ann, conversation, bob.id, "admin").await;
    assert_eq!(promoted.assert_status(200)["role"], "admin");
    assert_eq!(promoted.body["user"]["id"], json!(bob.id));
    set_role(&bob, conversation, cat.id, "admin").await.assert_error(403, "FORBIDDEN");
    set_role(&cat, conversation, cat.id, "admin").await.assert_error(403, "FORBIDDEN");
    set_role(&ann, conversation, eve.id, "admin").await.assert_error(404, "NOT_FOUND");
    set_role(&ann, conversation, ann.id, "member").await.assert_error(400, "VALIDATION_ERROR");
    set_role(&ann, conversation, cat.id, "boss").await.assert_error(400, "VALIDATION_ERROR");
    let handed = set_role(&ann, conversation, cat.id, "owner").await;
    assert_eq!(handed.assert_status(200)["role"], "owner");
    let detail = cat.client.get(&format!("/api/conversations/{conversation}")).await;
    let body = detail.assert_status(200);
    assert_eq!(
        (role_of(body, cat.id), role_of(body, ann.id), role_of(body, bob.id)),
        (json!("owner"), json!("admin"), json!("admin"))
    );
    set_role(&ann, conversation, bob.id, "member").await.assert_error(403, "FORBIDDEN");
    set_role(&cat, conversation, bob.id, "member").await.assert_status(200);
}

async fn a_member_added_later_sees_history_from_their_join_on(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let conversation = group(&ann, &[&bob]).await;
    let before = post(&ann, conversation, "before cat").await;
    bob.client
        .put(&format!("/api/conversations/{conversation}/read-status"), json!({"read": true}))
        .await
        .assert_status(200);
    add(&ann, conversation, &[cat.id]).await;
    let history = |user: &TestUser| {
        let (client, path) = (user.client.clone(), format!("/api/conversations/{conversation}/messages"));
        async move { client.get(&path).await.body["messages"].clone() }
    };
    assert_eq!(history(&cat).await, json!([]), "nothing from before the join");
    let listed = cat.client.get("/api/conversations").await;
    let entry = &listed.assert_status(200)["conversations"][0];
    assert!(entry["lastMessage"].is_null(), "no preview from before: {entry}");
    assert_eq!(entry["unreadCount"], 0);
    cat.client.get(&format!("/api/messages/{before}/receipts")).await.assert_error(404, "NOT_FOUND");
    let forward = json!({"conversationIds": [conversation]});
    cat.client.post(&format!("/api/messages/{before}/forward"), forward).await.assert_error(404, "NOT_FOUND");
    let polled = cat.client.get(&format!("/api/conversations/{conversation}/messages?afterSeq=0")).await;
    assert_eq!(polled.body["messages"], json!([]), "polling from 0 neither");
    // Cat is no reader of what came before; bob is.
    let receipts = ann.client.get(&format!("/api/messages/{before}/receipts")).await;
    assert_eq!((receipts.body["totalCount"].clone(), receipts.body["readCount"].clone()), (json!(1), json!(1)));
    let after = post(&ann, conversation, "after cat").await;
    let seen = history(&cat).await;
    assert_eq!(seen.as_array().map(Vec::len), Some(1));
    assert_eq!(seen[0]["id"], json!(after));
    let unread = cat.client.get("/api/conversations/unread-count").await;
    assert_eq!(unread.assert_status(200)["total"], 1, "only what came after");
    let receipts = ann.client.get(&format!("/api/messages/{after}/receipts")).await;
    assert_eq!(receipts.body["totalCount"], 2, "cat counts for what came after");
    // Removed: nothing after.
    ann.client.delete(&format!("/api/conversations/{conversation}/participants/{}", cat.id)).await.assert_status(204);
    post(&ann, conversation, "after cat left").await;
    cat.client
        .get(&format!("/api/conversations/{conversation}/messages"))
        .await
        .assert_error(403, "NOT_IN_CONVERSATION");
    cat.client.get(&format!("/api/messages/{after}/receipts")).await.assert_error(403, "NOT_IN_CONVERSATION");
    assert_eq!(cat.client.get("/api/conversations/unread-count").await.body["total"], 0);
    // Added again: history starts at the new join.
    add(&ann, conversation, &[cat.id]).await;
    assert_eq!(history(&cat).await, json!([]), "a new join, a new start");
}

async fn invite_links_in_every_state(app: TestApp) {
    let (ann, bob, cat, dan, eve, fay) = (
        app.register("Ann").await,
        app.register("Bob").await,
        app.register("Cat").await,
        app.register("Dan").await,
        app.register("Eve").await,
        app.register("Fay").await,
    );
    let conversation = group(&ann, &[&bob]).await;
    let invites = format!("/api/conversations/{conversation}/invites");
    // Live, with the defaults: 7 days, no use limit.
    let open = ann.client.post_empty(&invites).await;
    let body = open.assert_status(201).clone();
    let code = body["code"].as_str().unwrap().to_owned();
    assert!(code.len() >= 22, "128 bits: {code}");
    assert_eq!((body["maxUses"].clone(), body["uses"].clone()), (Value::Null, json!(0)));
    let expires = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    let created = chrono::DateTime::parse_from_rfc3339(body["createdAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, chrono::Duration::days(7));
    let joined = cat.client.post_empty(&format!("/api/invites/{code}/accept")).await;
    assert_eq!(joined.assert_status(200)["id"], json!(conversation));
    assert_eq!(joined.body["participantCount"], 3);
    // A member accepting again: nothing changes, no use is spent.
    cat.client.post_empty(&format!("/api/invites/{code}/accept")).await.assert_status(200);
    let listed = ann.client.get(&invites).await;
    assert_eq!(listed.assert_status(200)["invites"][0]["uses"], 1);
    // Used up.
    let once = ann.client.post(&invites, json!({"maxUses": 1})).await;
    let once = once.assert_status(201)["code"].as_str().unwrap().to_owned();
    dan.client.post_empty(&format!("/api/invites/{once}/accept")).await.assert_status(200);
    eve.client.post_empty(&format!("/api/invites/{once}/accept")).await.assert_error(410, "INVITE_INVALID");
    // Expired (by the app clock).
    let short = ann.client.post(&invites, json!({"expiresInSecs": 60})).await;
    let short = short.assert_status(201)["code"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(61));
    eve.client.post_empty(&format!("/api/invites/{short}/accept")).await.assert_error(410, "INVITE_INVALID");
    // Revoked, by an admin; revoking again is fine.
    ann.client
        .patch(&format!("/api/conversations/{conversation}/participants/{}", bob.id), json!({"role": "admin"}))
        .await
        .assert_status(200);
    cat.client.delete(&format!("/api/invites/{code}")).await.assert_error(403, "FORBIDDEN");
    bob.client.delete(&format!("/api/invites/{code}")).await.assert_status(204);
    bob.client.delete(&format!("/api/invites/{code}")).await.assert_status(204);
    eve.client.post_empty(&format!("/api/invites/{code}/accept")).await.assert_error(410, "INVITE_INVALID");
    // Only live links are listed: the used-up, expired and revoked ones are not.
    let live = ann.client.get(&invites).await;
    assert_eq!(live.assert_status(200)["invites"], json!([]), "{}", live.body);
    // Unknown codes, bad parameters, members and strangers.
    eve.client.post_empty("/api/invites/not-a-code/accept").await.assert_error(404, "NOT_FOUND");
    ann.client.delete("/api/invites/not-a-code").await.assert_error(404, "NOT_FOUND");
    for bad in [json!({"expiresInSecs": 0}), json!({"expiresInSecs": 2_592_001}), json!({"maxUses": 0})] {
        ann.client.post(&invites, bad).await.assert_error(400, "VALIDATION_ERROR");
    }
    cat.client.post_empty(&invites).await.assert_error(403, "FORBIDDEN");
    cat.client.get(&invites).await.assert_error(403, "FORBIDDEN");
    fay.client.get(&invites).await.assert_error(403, "NOT_IN_CONVERSATION");
    // The inviter blocked fay: their links are closed to her.
    let fresh = ann.client.post_empty(&invites).await.assert_status(201)["code"].as_str().unwrap().to_owned();
    ann.client.post_empty(&format!("/api/users/{}/block", fay.id)).await.assert_status(204);
    fay.client.post_empty(&format!("/api/invites/{fresh}/accept")).await.assert_error(403, "BLOCKED");
    eve.client.get(&format!("/api/conversations/{conversation}")).await.assert_error(403, "NOT_IN_CONVERSATION");
}

async fn accepting_invites_is_rate_limited(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&ann, &[]).await;
    let invite = ann.client.post_empty(&format!("/api/conversations/{conversation}/invites")).await;
    let code = invite.assert_status(201)["code"].as_str().unwrap().to_owned();
    for attempt in 1..=10 {
        let reply = bob.client.post_empty(&format!("/api/invites/{code}/accept")).await;
        assert_eq!(reply.status, 200, "attempt {attempt}: {}", reply.body);
    }
    bob.client.post_empty(&format!("/api/invites/{code}/accept")).await.assert_error(429, "RATE_LIMITED");
}

async fn muting_is_per_user_and_shown_in_the_conversation(app: TestApp) {
    let (ann, bob, eve) = (app.register("Ann").await, app.register("Bob").await, app.register("Eve").await);
    let conversation = group(&ann, &[&bob]).await;
    let path = format!("/api/conversations/{conversation}/mute");
    let muted = bob.client.put(&path, json!({"until": "2999-01-01T00:00:00Z"})).await;
    assert_eq!(muted.assert_status(200)["mutedUntil"], "2999-01-01T00:00:00.000Z");
    let listed = bob.client.get("/api/conversations").await;
    assert_eq!(listed.body["conversations"][0]["mutedUntil"], "2999-01-01T00:00:00.000Z");
    let others = ann.client.get(&format!("/api/conversations/{conversation}")).await;
    assert!(others.assert_status(200)["mutedUntil"].is_null(), "mute is per user");
    post(&ann, conversation, "still counted").await;
    assert_eq!(bob.client.get("/api/conversations/unread-count").await.body["total"], 1, "muted still counts unread");
    let past = bob.client.put(&path, json!({"until": "2000-01-01T00:00:00Z"})).await;
    assert!(past.assert_status(200)["mutedUntil"].is_null(), "a time already past unmutes");
    bob.client.put(&path, json!({"until": "2999-01-01T00:00:00Z"})).await.assert_status(200);
    let unmuted = bob.client.put(&path, json!({"until": null})).await;
    assert!(unmuted.assert_status(200)["mutedUntil"].is_null());
    bob.client.put(&path, json!({"until": "tomorrow"})).await.assert_error(400, "VALIDATION_ERROR");
    eve.client.put(&path, json!({"until": null})).await.assert_error(403, "NOT_IN_CONVERSATION");
}
