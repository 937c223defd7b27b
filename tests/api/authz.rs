//! The authorization matrix of the REST API (issue 8): every route of `src/http/*.rs` (and
//! `openapi/openapi.json`) × the roles {anonymous, expired token, revoked token, non-participant,
//! blocked user, participant, admin, owner}, asserting the exact status and SPEC error code,
//! and that no response shows another user's email. One fixture per test; every failing row
//! is reported (route and role) before the test fails.
//!
//! Roles: the conversation routes act on a group (owner, admin, member; the outsider is the
//! non-participant), except the blocked user, who acts on the direct conversation its owner
//! blocked them in. The user routes target the owner (so "owner" there means "yourself").
//! Routes that destroy their target get a fresh group per row.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    Mode, TestApp,
    authz::{
        AUTH_FAILED, BLOCKED, Expect, FORBIDDEN, Fixture, INVALID, NA, NOT_FOUND, NOT_IN, ROLES, Role, TOKEN_REVOKED,
        create_group, id_of, make_admin, send,
    },
    http::{Client, Reply},
    keys::p256_public_key,
};

/// Messages per minute are not what this test is about.
async fn spawn(mode: Mode) -> Option<TestApp> {
    TestApp::try_spawn_with(mode, &[("MESSAGE_RATE_PER_MIN", "100000")]).await
}

mod production {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_route_by_every_role() {
        if let Some(app) = super::spawn(crate::support::Mode::Production).await {
            super::every_route_by_every_role(app).await
        }
    }
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_route_by_every_role() {
        let app = super::spawn(crate::support::Mode::Embedded).await.expect("embedded app");
        super::every_route_by_every_role(app).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logout_with_the_bearer_alone_ends_the_session() {
        let app = super::spawn(crate::support::Mode::Embedded).await.expect("embedded app");
        super::logout_with_the_bearer_alone_ends_the_session(app).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_deleted_and_foreign_resources() {
        let app = super::spawn(crate::support::Mode::Embedded).await.expect("embedded app");
        super::unknown_deleted_and_foreign_resources(app).await
    }
}

/// A route's expectations for the roles signed in with a valid token (non-participant,
/// blocked, participant, admin, owner); the three bad-token roles are always refused.
fn signed_in(np: Expect, blocked: Expect, participant: Expect, admin: Expect, owner: Expect) -> [Expect; 8] {
    [AUTH_FAILED, AUTH_FAILED, TOKEN_REVOKED, np, blocked, participant, admin, owner]
}

const fn ok(status: u16) -> Expect {
    Expect::Ok(status)
}

/// Every signed-in role gets `status`.
fn anyone(status: u16) -> [Expect; 8] {
    signed_in(ok(status), ok(status), ok(status), ok(status), ok(status))
}

/// Routes about the caller only: the "participant" column stands for any signed-in user.
fn caller_only(status: u16) -> [Expect; 8] {
    signed_in(NA, NA, ok(status), NA, NA)
}

/// Public routes: anonymous only.
fn public(expect: Expect) -> [Expect; 8] {
    [expect, NA, NA, NA, NA, NA, NA, NA]
}

fn table() -> Vec<(&'static str, [Expect; 8])> {
    vec![
        // --- public
        ("POST /api/auth/register", public(ok(201))),
        ("POST /api/auth/login", public(ok(200))),
        ("GET /health/live", public(ok(200))),
        ("GET /health/ready", public(ok(200))),
        ("GET /metrics", public(ok(200))),
        ("GET /api/openapi.json", public(ok(200))),
        // --- auth: refresh and logout take a cookie or body token, or (logout) a bearer token
        ("POST /api/auth/refresh", [AUTH_FAILED, AUTH_FAILED, AUTH_FAILED, NA, NA, ok(200), NA, NA]),
        ("POST /api/auth/logout", [AUTH_FAILED, AUTH_FAILED, AUTH_FAILED, NA, NA, ok(204), NA, NA]),
        ("GET /api/auth/me", anyone(200)),
        // --- the caller's own things
        ("GET /api/users?query=", anyone(200)),
        ("GET /api/users/me", anyone(200)),
        ("PATCH /api/users/me", caller_only(200)),
        ("GET /api/users/me/settings", anyone(200)),
        ("PATCH /api/users/me/settings", caller_only(200)),
        ("PATCH /api/v1/users/me/settings", caller_only(200)),
        ("GET /api/users/me/friends", anyone(200)),
        ("GET /api/users/me/blocks", anyone(200)),
        ("GET /api/conversations", anyone(200)),
        ("GET /api/conversations/unread-count", anyone(200)),
        // --- conversations (group; the blocked user: the direct conversation)
        ("POST /api/conversations (direct with the owner)", signed_in(ok(201), BLOCKED, ok(201), ok(201), INVALID)),
        ("GET /api/conversations/{id}", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        ("DELETE /api/conversations/{id}", signed_in(NOT_IN, FORBIDDEN, FORBIDDEN, FORBIDDEN, ok(204))),
        ("DELETE /api/conversations/{id}?scope=me", signed_in(NOT_IN, ok(204), ok(204), ok(204), ok(204))),
        // SPEC §4.1: only public groups can be joined; a private group's id is no invitation.
        ("POST /api/conversations/{id}/join", signed_in(FORBIDDEN, INVALID, ok(200), ok(200), ok(200))),
        ("POST /api/conversations/{id}/join (public group)", signed_in(ok(200), INVALID, ok(200), ok(200), ok(200))),
        ("DELETE /api/conversations/{id}/leave", signed_in(NOT_IN, INVALID, ok(204), ok(204), ok(204))),
        // --- seed 003's routes
        ("POST /api/chat/rooms/{id}/typing/", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        ("GET /api/chat/rooms/", anyone(200)),
        ("GET /api/chat/messages/poll/?room_id=", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        // --- running a group (SPEC §4.1; the blocked user: the direct conversation)
        ("PATCH /api/conversations/{id}", signed_in(NOT_IN, INVALID, FORBIDDEN, ok(200), ok(200))),
        ("POST /api/conversations/{id}/participants", signed_in(NOT_IN, INVALID, FORBIDDEN, ok(200), ok(200))),
        // a plain member added for the occasion
        (
            "DELETE /api/conversations/{id}/participants/{userId} (a member)",
            signed_in(NOT_IN, INVALID, FORBIDDEN, ok(204), ok(204)),
        ),
        (
            "DELETE /api/conversations/{id}/participants/{userId} (the owner)",
            signed_in(NOT_IN, INVALID, FORBIDDEN, FORBIDDEN, ok(204)),
        ),
        (
            "PATCH /api/conversations/{id}/participants/{userId} (the member → admin)",
            signed_in(NOT_IN, INVALID, FORBIDDEN, FORBIDDEN, ok(200)),
        ),
        ("PUT /api/conversations/{id}/mute", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        ("POST /api/conversations/{id}/invites", signed_in(NOT_IN, INVALID, FORBIDDEN, ok(201), ok(201))),
        ("GET /api/conversations/{id}/invites", signed_in(NOT_IN, INVALID, FORBIDDEN, ok(200), ok(200))),
        // an invite of the owner's group (the blocked user is not in it)
        ("DELETE /api/invites/{code}", signed_in(NOT_IN, NOT_IN, FORBIDDEN, ok(204), ok(204))),
        // the owner's invite: the blocked user may not use it; members are members already
        ("POST /api/invites/{code}/accept", signed_in(ok(200), BLOCKED, ok(200), ok(200), ok(200))),
        ("PUT /api/conversations/{id}/archive", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        ("PUT /api/conversations/{id}/read-status", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        ("POST /api/conversations/{id}/typing", signed_in(NOT_IN, ok(204), ok(204), ok(204), ok(204))),
        ("GET /api/conversations/{id}/messages", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        ("GET /api/conversations/{id}/messages?afterSeq=0", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        ("POST /api/conversations/{id}/messages", signed_in(NOT_IN, BLOCKED, ok(201), ok(201), ok(201))),
        ("DELETE /api/conversations/{id}/messages", signed_in(NOT_IN, ok(204), ok(204), ok(204), ok(204))),
        (
            "DELETE /api/conversations/{id}/messages?scope=everyone",
            signed_in(NOT_IN, FORBIDDEN, FORBIDDEN, ok(204), ok(204)),
        ),
        // the owner's message
        (
            "PATCH /api/conversations/{id}/messages/{messageId} (owner's)",
            signed_in(NOT_IN, FORBIDDEN, FORBIDDEN, FORBIDDEN, ok(200)),
        ),
        // another participant's message (the member's; the blocked user: the owner's)
        (
            "DELETE /api/conversations/{id}/messages/{messageId} (another's)",
            signed_in(NOT_IN, FORBIDDEN, FORBIDDEN, ok(200), ok(200)),
        ),
        ("DELETE /api/conversations/{id}/messages/{messageId} (own)", signed_in(NA, NA, ok(200), ok(200), ok(200))),
        // --- reactions, pins, search (SPEC §4.2; the blocked user: the direct conversation)
        (
            "PUT /api/conversations/{id}/messages/{messageId}/reactions/{emoji}",
            signed_in(NOT_IN, BLOCKED, ok(200), ok(200), ok(200)),
        ),
        (
            "DELETE /api/conversations/{id}/messages/{messageId}/reactions/{emoji}",
            signed_in(NOT_IN, BLOCKED, ok(200), ok(200), ok(200)),
        ),
        ("PUT /api/conversations/{id}/pins/{messageId}", signed_in(NOT_IN, BLOCKED, FORBIDDEN, ok(200), ok(200))),
        // pinned by the owner first (in the group)
        ("DELETE /api/conversations/{id}/pins/{messageId}", signed_in(NOT_IN, BLOCKED, FORBIDDEN, ok(204), ok(204))),
        ("GET /api/conversations/{id}/pins", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        ("GET /api/search/messages?q=", anyone(200)),
        ("POST /api/messages/{id}/forward", signed_in(NOT_IN, BLOCKED, ok(201), ok(201), ok(201))),
        ("GET /api/messages/{id}/receipts", signed_in(NOT_IN, ok(200), ok(200), ok(200), ok(200))),
        // --- other users (the owner; "owner" = yourself)
        ("GET /api/users/{id}", anyone(200)),
        ("GET /api/users/{id}/presence", anyone(200)),
        ("GET /api/presence?userIds=", anyone(200)),
        ("GET /api/v1/presence/users?user_ids=", anyone(200)),
        ("POST /api/users/{id}/follow", signed_in(ok(200), BLOCKED, ok(200), ok(200), INVALID)),
        ("DELETE /api/users/{id}/follow", signed_in(ok(204), ok(204), ok(204), ok(204), INVALID)),
        ("POST /api/users/{id}/block", signed_in(ok(204), ok(204), ok(204), ok(204), INVALID)),
        ("DELETE /api/users/{id}/block", signed_in(ok(204), ok(204), ok(204), ok(204), INVALID)),
        // --- the key directory (SPEC §4.5): the caller's own keys; anyone's public keys
        ("POST /api/keys", anyone(201)),
        ("POST /api/chat/encryption/keys", anyone(201)),
        ("GET /api/users/{id}/keys", anyone(200)),
        ("GET /api/chat/encryption/keys/{user_id}", anyone(200)),
        ("DELETE /api/keys/{keyId} (own)", anyone(204)),
        ("DELETE /api/keys/{keyId} (the owner's)", signed_in(NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, ok(204))),
        ("POST /api/keys/verify (the owner's key)", anyone(200)),
        ("POST /api/chat/encryption/verify (the owner's key)", anyone(200)),
        // --- uploads (SPEC §4.3): the owner's picture, attached to a message in the group;
        // whoever may not read it gets 404 (ids leak nothing; the blocked user is not in the group)
        ("POST /api/uploads", anyone(201)),
        ("GET /api/uploads/{id}", signed_in(NOT_FOUND, NOT_FOUND, ok(200), ok(200), ok(200))),
        ("GET /api/uploads/{id}/thumbnail", signed_in(NOT_FOUND, NOT_FOUND, ok(200), ok(200), ok(200))),
        // --- Web Push subscriptions (SPEC §4.4): the caller's own
        ("GET /api/push/vapid-public-key", public(ok(200))),
        ("POST /api/push/subscriptions", anyone(201)),
        ("GET /api/push/subscriptions", anyone(200)),
        ("DELETE /api/push/subscriptions (own)", anyone(204)),
        (
            "DELETE /api/push/subscriptions (the owner's)",
            signed_in(NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, ok(204)),
        ),
    ]
}

/// A group like the fixture's (owner, admin, member), for rows that destroy their target.
async fn fresh_group(app: &TestApp, fx: &Fixture) -> Uuid {
    let group = create_group(app, &fx.owner, &[&fx.admin, &fx.member]).await;
    make_admin(app, group, fx.admin.id).await;
    group
}

/// A public group with the fixture's owner, admin and member.
async fn public_group(app: &TestApp, fx: &Fixture) -> Uuid {
    let ids = [fx.admin.id, fx.member.id];
    let body = json!({"type": "group", "title": "Open", "visibility": "public", "participantIds": ids});
    let group = id_of(&fx.owner.client.post("/api/conversations", body).await.assert_status(201)["id"]);
    make_admin(app, group, fx.admin.id).await;
    group
}

/// An invite link of a fresh group of the owner's.
async fn owners_invite(app: &TestApp, fx: &Fixture) -> String {
    let group = fresh_group(app, fx).await;
    let invite = fx.owner.client.post(&format!("/api/conversations/{group}/invites"), json!({})).await;
    invite.assert_status(201)["code"].as_str().expect("a code").to_owned()
}

/// A fresh key for `user`'s `device` (a rotation when it had one): (keyId, fingerprint).
async fn device_key(user: &crate::support::http::TestUser, device: &str) -> (String, String) {
    let (public_key, fingerprint) = p256_public_key();
    let body = json!({"deviceId": device, "publicKey": public_key, "algorithm": "p256"});
    let reply = user.client.post("/api/keys", body).await;
    (reply.assert_status(201)["keyId"].as_str().expect("keyId").to_owned(), fingerprint)
}

/// A picture the owner uploaded and sent in the fixture's group.
async fn owners_attached_upload(fx: &Fixture) -> Uuid {
    let request = fx
        .owner
        .client
        .request(reqwest::Method::POST, "/api/uploads")
        .header("content-type", "image/png")
        .body(crate::support::uploads::png(8, 8));
    let upload = id_of(&fx.owner.client.send(request).await.assert_status(201)["id"]);
    let media = json!({"clientMessageId": new_client_id(), "content": "", "contentType": "image",
        "media": [{"uploadId": upload}]});
    fx.owner.client.post(&format!("/api/conversations/{}/messages", fx.group), media).await.assert_status(201);
    upload
}

/// A fresh push subscription as a browser gives it (loopback is allowed in development).
fn push_subscription() -> Value {
    json!({
        "endpoint": format!("http://127.0.0.1:9/push/{}", Uuid::new_v4()),
        "keys": {"p256dh": p256_push_key(), "auth": "AAAAAAAAAAAAAAAAAAAAAA"},
    })
}

fn p256_push_key() -> String {
    use base64::{
        Engine as _,
        engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    };
    let standard = p256_public_key().0;
    URL_SAFE_NO_PAD.encode(STANDARD.decode(standard).expect("base64"))
}

/// The conversation a destructive row acts on.
async fn target(app: &TestApp, fx: &Fixture, role: Role) -> Uuid {
    match role {
        Role::Blocked => fx.direct,
        _ => fresh_group(app, fx).await,
    }
}

fn new_client_id() -> String {
    Uuid::new_v4().to_string()
}

/// Performs `route` as `role`.
async fn call(app: &TestApp, fx: &Fixture, route: &str, role: Role) -> Reply {
    let c: Client = fx.client(app, role);
    let conv = fx.conversation(role);
    let message = fx.message(role);
    let owner = fx.owner.id;
    match route {
        "POST /api/auth/register" => {
            let email = format!("new.{}@example.com", &new_client_id()[..8]);
            c.post(
                "/api/auth/register",
                json!({"email": email, "password": "correct horse battery", "displayName": "Newcomer"}),
            )
            .await
        }
        "POST /api/auth/login" => {
            c.post("/api/auth/login", json!({"email": fx.member.email, "password": fx.member.password})).await
        }
        "GET /health/live" => c.get("/health/live").await,
        "GET /health/ready" => c.get("/health/ready").await,
        "GET /metrics" => {
            let reply = c.get("/metrics").await;
            Reply { body: Value::Null, ..reply } // text; nothing to check for emails
        }
        "GET /api/openapi.json" => c.get("/api/openapi.json").await,
        "POST /api/auth/refresh" | "POST /api/auth/logout" => {
            let path = route.trim_start_matches("POST ");
            match role {
                Role::Participant => {
                    // A session of its own, with its refresh cookie in a jar of its own.
                    let fresh = app.client();
                    let login = fresh
                        .post("/api/auth/login", json!({"email": fx.member.email, "password": fx.member.password}))
                        .await;
                    let token = login.body["accessToken"].as_str().unwrap_or_default().to_owned();
                    fresh.with_token(&token).post_empty(path).await
                }
                _ => c.post_empty(path).await,
            }
        }
        "GET /api/auth/me" => c.get("/api/auth/me").await,
        "GET /api/users?query=" => c.get("/api/users?query=Own").await,
        "GET /api/users/me" => c.get("/api/users/me").await,
        "PATCH /api/users/me" => c.patch("/api/users/me", json!({"displayName": "Member"})).await,
        "GET /api/users/me/settings" => c.get("/api/users/me/settings").await,
        "PATCH /api/users/me/settings" => c.patch("/api/users/me/settings", json!({"readReceiptsEnabled": true})).await,
        "PATCH /api/v1/users/me/settings" => {
            c.patch("/api/v1/users/me/settings", json!({"show_last_seen": true})).await
        }
        "GET /api/users/me/friends" => c.get("/api/users/me/friends").await,
        "GET /api/users/me/blocks" => c.get("/api/users/me/blocks").await,
        "GET /api/conversations" => c.get("/api/conversations").await,
        "GET /api/conversations/unread-count" => c.get("/api/conversations/unread-count").await,
        "POST /api/conversations (direct with the owner)" => {
            c.post("/api/conversations", json!({"type": "direct", "participantIds": [owner]})).await
        }
        "GET /api/conversations/{id}" => c.get(&format!("/api/conversations/{conv}")).await,
        "DELETE /api/conversations/{id}" => {
            let conv = target(app, fx, role).await;
            c.delete(&format!("/api/conversations/{conv}")).await
        }
        "DELETE /api/conversations/{id}?scope=me" => {
            let conv = target(app, fx, role).await;
            c.delete(&format!("/api/conversations/{conv}?scope=me")).await
        }
        "POST /api/conversations/{id}/join" => {
            let conv = target(app, fx, role).await;
            c.post_empty(&format!("/api/conversations/{conv}/join")).await
        }
        "POST /api/conversations/{id}/join (public group)" => {
            let conv = match role {
                Role::Blocked => fx.direct,
                _ => public_group(app, fx).await,
            };
            c.post_empty(&format!("/api/conversations/{conv}/join")).await
        }
        "POST /api/chat/rooms/{id}/typing/" => {
            c.post(&format!("/api/chat/rooms/{conv}/typing/"), json!({"is_typing": true})).await
        }
        "GET /api/chat/rooms/" => c.get("/api/chat/rooms/").await,
        "GET /api/chat/messages/poll/?room_id=" => c.get(&format!("/api/chat/messages/poll/?room_id={conv}")).await,
        "PATCH /api/conversations/{id}" => {
            let conv = target(app, fx, role).await;
            c.patch(&format!("/api/conversations/{conv}"), json!({"description": "ours"})).await
        }
        "POST /api/conversations/{id}/participants" => {
            let conv = target(app, fx, role).await;
            let extra = app.register("Extra").await;
            c.post(&format!("/api/conversations/{conv}/participants"), json!({"userIds": [extra.id]})).await
        }
        "DELETE /api/conversations/{id}/participants/{userId} (a member)" => {
            let conv = target(app, fx, role).await;
            let extra = app.register("Extra").await;
            if role != Role::Blocked {
                let add = json!({"userIds": [extra.id]});
                fx.owner.client.post(&format!("/api/conversations/{conv}/participants"), add).await.assert_status(200);
            }
            c.delete(&format!("/api/conversations/{conv}/participants/{}", extra.id)).await
        }
        "DELETE /api/conversations/{id}/participants/{userId} (the owner)" => {
            let conv = target(app, fx, role).await;
            c.delete(&format!("/api/conversations/{conv}/participants/{owner}")).await
        }
        "PATCH /api/conversations/{id}/participants/{userId} (the member → admin)" => {
            let conv = target(app, fx, role).await;
            let member = fx.member.id;
            c.patch(&format!("/api/conversations/{conv}/participants/{member}"), json!({"role": "admin"})).await
        }
        "PUT /api/conversations/{id}/mute" => {
            c.put(&format!("/api/conversations/{conv}/mute"), json!({"until": "2999-01-01T00:00:00Z"})).await
        }
        "POST /api/conversations/{id}/invites" => {
            let conv = target(app, fx, role).await;
            c.post(&format!("/api/conversations/{conv}/invites"), json!({"maxUses": 3})).await
        }
        "GET /api/conversations/{id}/invites" => c.get(&format!("/api/conversations/{conv}/invites")).await,
        "DELETE /api/invites/{code}" => {
            let code = owners_invite(app, fx).await;
            c.delete(&format!("/api/invites/{code}")).await
        }
        "POST /api/invites/{code}/accept" => {
            let code = owners_invite(app, fx).await;
            c.post_empty(&format!("/api/invites/{code}/accept")).await
        }
        "DELETE /api/conversations/{id}/leave" => {
            let conv = target(app, fx, role).await;
            c.delete(&format!("/api/conversations/{conv}/leave")).await
        }
        "PUT /api/conversations/{id}/archive" => {
            let conv = target(app, fx, role).await;
            c.put(&format!("/api/conversations/{conv}/archive"), json!({"archived": true})).await
        }
        "PUT /api/conversations/{id}/read-status" => {
            c.put(&format!("/api/conversations/{conv}/read-status"), json!({"read": true, "messageId": message})).await
        }
        "POST /api/conversations/{id}/typing" => {
            c.post(&format!("/api/conversations/{conv}/typing"), json!({"isTyping": true})).await
        }
        "GET /api/conversations/{id}/messages" => c.get(&format!("/api/conversations/{conv}/messages")).await,
        "GET /api/conversations/{id}/messages?afterSeq=0" => {
            c.get(&format!("/api/conversations/{conv}/messages?afterSeq=0")).await
        }
        "POST /api/conversations/{id}/messages" => {
            c.post(
                &format!("/api/conversations/{conv}/messages"),
                json!({"clientMessageId": new_client_id(), "content": "hi"}),
            )
            .await
        }
        "DELETE /api/conversations/{id}/messages" => {
            let conv = target(app, fx, role).await;
            c.delete(&format!("/api/conversations/{conv}/messages")).await
        }
        "DELETE /api/conversations/{id}/messages?scope=everyone" => {
            let conv = target(app, fx, role).await;
            c.delete(&format!("/api/conversations/{conv}/messages?scope=everyone")).await
        }
        "PATCH /api/conversations/{id}/messages/{messageId} (owner's)" => {
            c.patch(&format!("/api/conversations/{conv}/messages/{message}"), json!({"content": "edited"})).await
        }
        "DELETE /api/conversations/{id}/messages/{messageId} (another's)" => {
            let (conv, message) = match role {
                Role::Blocked => (fx.direct, fx.direct_message),
                Role::Participant => (fx.group, send(&fx.admin, fx.group, "the admin's").await),
                _ => (fx.group, send(&fx.member, fx.group, "the member's").await),
            };
            c.delete(&format!("/api/conversations/{conv}/messages/{message}")).await
        }
        "DELETE /api/conversations/{id}/messages/{messageId} (own)" => {
            let message = match fx.user(role) {
                Some(user) => send(user, fx.group, "mine").await,
                None => send(&fx.member, fx.group, "the member's").await,
            };
            c.delete(&format!("/api/conversations/{}/messages/{message}", fx.group)).await
        }
        "POST /api/messages/{id}/forward" => {
            c.post(&format!("/api/messages/{message}/forward"), json!({"conversationIds": [conv]})).await
        }
        "GET /api/messages/{id}/receipts" => c.get(&format!("/api/messages/{message}/receipts")).await,
        "PUT /api/conversations/{id}/messages/{messageId}/reactions/{emoji}" => {
            c.put(&format!("/api/conversations/{conv}/messages/{message}/reactions/%F0%9F%91%8D"), json!({})).await
        }
        "DELETE /api/conversations/{id}/messages/{messageId}/reactions/{emoji}" => {
            c.delete(&format!("/api/conversations/{conv}/messages/{message}/reactions/%F0%9F%91%8D")).await
        }
        "PUT /api/conversations/{id}/pins/{messageId}" => {
            c.put(&format!("/api/conversations/{conv}/pins/{message}"), json!({})).await
        }
        "DELETE /api/conversations/{id}/pins/{messageId}" => {
            if conv == fx.group {
                let pinned = fx.owner.client.put(&format!("/api/conversations/{conv}/pins/{message}"), json!({})).await;
                pinned.assert_status(200);
            }
            c.delete(&format!("/api/conversations/{conv}/pins/{message}")).await
        }
        "GET /api/conversations/{id}/pins" => c.get(&format!("/api/conversations/{conv}/pins")).await,
        "GET /api/search/messages?q=" => c.get("/api/search/messages?q=hello").await,
        "POST /api/uploads" => {
            let request = c
                .request(reqwest::Method::POST, "/api/uploads")
                .header("content-type", "text/plain")
                .body("notes for the matrix");
            c.send(request).await
        }
        "GET /api/uploads/{id}" | "GET /api/uploads/{id}/thumbnail" => {
            let upload = owners_attached_upload(fx).await;
            let path = route.trim_start_matches("GET ").replace("{id}", &upload.to_string());
            let reply = c.get(&path).await;
            Reply { body: if reply.status.is_success() { Value::Null } else { reply.body }, ..reply }
        }
        "GET /api/users/{id}" => c.get(&format!("/api/users/{owner}")).await,
        "GET /api/users/{id}/presence" => c.get(&format!("/api/users/{owner}/presence")).await,
        "GET /api/presence?userIds=" => c.get(&format!("/api/presence?userIds={owner}")).await,
        "GET /api/v1/presence/users?user_ids=" => c.get(&format!("/api/v1/presence/users?user_ids={owner}")).await,
        "POST /api/users/{id}/follow" => c.post_empty(&format!("/api/users/{owner}/follow")).await,
        "DELETE /api/users/{id}/follow" => c.delete(&format!("/api/users/{owner}/follow")).await,
        "POST /api/users/{id}/block" => c.post_empty(&format!("/api/users/{owner}/block")).await,
        "DELETE /api/users/{id}/block" => c.delete(&format!("/api/users/{owner}/block")).await,
        "POST /api/keys" | "POST /api/chat/encryption/keys" => {
            let path = route.trim_start_matches("POST ");
            c.post(path, json!({"deviceId": new_client_id(), "publicKey": p256_public_key().0, "algorithm": "p256"}))
                .await
        }
        "GET /api/users/{id}/keys" => c.get(&format!("/api/users/{owner}/keys")).await,
        "GET /api/chat/encryption/keys/{user_id}" => c.get(&format!("/api/chat/encryption/keys/{owner}")).await,
        "DELETE /api/keys/{keyId} (own)" => {
            let key = match fx.user(role) {
                Some(user) => device_key(user, &new_client_id()).await.0,
                None => device_key(&fx.member, &new_client_id()).await.0,
            };
            c.delete(&format!("/api/keys/{key}")).await
        }
        "DELETE /api/keys/{keyId} (the owner's)" => {
            let (key, _) = device_key(&fx.owner, "authz-delete").await;
            c.delete(&format!("/api/keys/{key}")).await
        }
        "POST /api/keys/verify (the owner's key)" | "POST /api/chat/encryption/verify (the owner's key)" => {
            let (_, fingerprint) = device_key(&fx.owner, "authz-verify").await;
            let path = route.trim_start_matches("POST ").split(" (").next().unwrap_or_default();
            c.post(path, json!({"userId": owner, "fingerprint": fingerprint})).await
        }
        "GET /api/push/vapid-public-key" => c.get("/api/push/vapid-public-key").await,
        "POST /api/push/subscriptions" => c.post("/api/push/subscriptions", push_subscription()).await,
        "GET /api/push/subscriptions" => c.get("/api/push/subscriptions").await,
        "DELETE /api/push/subscriptions (own)" | "DELETE /api/push/subscriptions (the owner's)" => {
            let owner_of = if route.ends_with("(own)") { fx.user(role).unwrap_or(&fx.member) } else { &fx.owner };
            let subscription = push_subscription();
            owner_of.client.post("/api/push/subscriptions", subscription.clone()).await.assert_status(201);
            let request = c.request(reqwest::Method::DELETE, "/api/push/subscriptions");
            c.send(request.json(&json!({"endpoint": subscription["endpoint"]}))).await
        }
        other => panic!("no request for route {other:?}"),
    }
}

/// `None` when the reply is what `expect` says, else why not.
fn check(reply: &Reply, expect: Expect) -> Option<String> {
    let got = format!("{} {}", reply.status.as_u16(), reply.code());
    match expect {
        Expect::Na => None,
        Expect::Ok(status) if reply.status.as_u16() == status => None,
        Expect::Err(status, code)
            if reply.status.as_u16() == status
                && reply.code() == code
                && reply.body["error"]["message"].is_string() =>
        {
            None
        }
        Expect::Ok(status) => Some(format!("expected {status}, got {got}: {}", reply.body)),
        Expect::Err(status, code) => Some(format!("expected {status} {code}, got {got}: {}", reply.body)),
    }
}

async fn every_route_by_every_role(app: TestApp) {
    let fx = Fixture::build(&app).await;
    let (mut failures, mut assertions, mut not_applicable) = (Vec::new(), 0, 0);
    let mut routes = std::collections::BTreeSet::new();
    for (route, expectations) in table() {
        routes.insert(route.split(" (").next().unwrap_or(route).split('?').next().unwrap_or(route).to_owned());
        for (role, expect) in ROLES.iter().zip(expectations) {
            if expect == NA {
                not_applicable += 1;
                continue;
            }
            let reply = call(&app, &fx, route, *role).await;
            assertions += 1;
            if let Some(why) = check(&reply, expect) {
                failures.push(format!("{route} as {role:?}: {why}"));
            }
            // No response shows the email of a user other than the caller.
            // (Signing in, refreshing and signing out show the member their own account.)
            let viewer = match route {
                "POST /api/auth/login" | "POST /api/auth/refresh" | "POST /api/auth/logout" => Some(fx.member.id),
                _ => fx.user(*role).map(|u| u.id),
            };
            if let Some(leak) = fx.foreign_email(viewer, &reply.body) {
                failures.push(format!("{route} as {role:?}: {leak}"));
            }
        }
    }
    // Every operation of the committed OpenAPI document has a row.
    let openapi: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).expect("openapi.json"),
    )
    .expect("JSON");
    for (path, item) in openapi["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let operation = format!("{} {path}", method.to_uppercase());
            if !routes.contains(&operation) {
                failures.push(format!("{operation} (in openapi.json) has no row in the matrix"));
            }
        }
    }
    eprintln!(
        "authorization matrix: {} rows ({} distinct method+path), {assertions} role assertions (+ as many email checks), {not_applicable} n/a",
        table().len(),
        routes.len()
    );
    assert!(failures.is_empty(), "{} of {assertions} rows failed:\n{}", failures.len(), failures.join("\n"));
}

/// Unknown ids are 404, malformed ones 400, a deleted conversation is 404 for its former
/// participants, a message addressed through another conversation is 404.
async fn unknown_deleted_and_foreign_resources(app: TestApp) {
    let fx = Fixture::build(&app).await;
    let member = &fx.member.client;
    let unknown = Uuid::now_v7();
    let deleted = fresh_group(&app, &fx).await;
    let deleted_message = send(&fx.member, deleted, "soon gone").await;
    fx.owner.client.delete(&format!("/api/conversations/{deleted}")).await.assert_status(204);
    let in_direct = fx.direct_message;
    let rows: Vec<(String, Reply, Expect)> = vec![
        (format!("GET conversation {unknown}"), member.get(&format!("/api/conversations/{unknown}")).await, NOT_FOUND),
        ("GET conversation not-a-uuid".into(), member.get("/api/conversations/not-a-uuid").await, INVALID),
        ("GET deleted conversation".into(), member.get(&format!("/api/conversations/{deleted}")).await, NOT_FOUND),
        (
            "GET messages of a deleted conversation".into(),
            member.get(&format!("/api/conversations/{deleted}/messages")).await,
            NOT_FOUND,
        ),
        (
            "POST message into a deleted conversation".into(),
            member
                .post(
                    &format!("/api/conversations/{deleted}/messages"),
                    json!({"clientMessageId": "z", "content": "late"}),
                )
                .await,
            NOT_FOUND,
        ),
        (
            "GET receipts of a message of a deleted conversation".into(),
            member.get(&format!("/api/messages/{deleted_message}/receipts")).await,
            NOT_FOUND,
        ),
        (
            "POST message into an unknown conversation".into(),
            member
                .post(
                    &format!("/api/conversations/{unknown}/messages"),
                    json!({"clientMessageId": "y", "content": "x"}),
                )
                .await,
            NOT_FOUND,
        ),
        (
            "PATCH a message of the direct conversation through the group (owner)".into(),
            fx.owner
                .client
                .patch(&format!("/api/conversations/{}/messages/{in_direct}", fx.group), json!({"content": "x"}))
                .await,
            NOT_FOUND,
        ),
        (
            "DELETE a message of the direct conversation through the group (owner)".into(),
            fx.owner.client.delete(&format!("/api/conversations/{}/messages/{in_direct}", fx.group)).await,
            NOT_FOUND,
        ),
        (
            "read-status with a message of another conversation".into(),
            fx.owner
                .client
                .put(
                    &format!("/api/conversations/{}/read-status", fx.group),
                    json!({"read": true, "messageId": in_direct}),
                )
                .await,
            NOT_FOUND,
        ),
        (
            "GET receipts of a message in a conversation the caller is not in".into(),
            member.get(&format!("/api/messages/{in_direct}/receipts")).await,
            NOT_IN,
        ),
        (
            "GET receipts of an unknown message".into(),
            member.get(&format!("/api/messages/{unknown}/receipts")).await,
            NOT_FOUND,
        ),
        (
            "forward an unknown message".into(),
            member.post(&format!("/api/messages/{unknown}/forward"), json!({"conversationIds": [fx.group]})).await,
            NOT_FOUND,
        ),
        (
            "forward a message one can read into a conversation one is not in".into(),
            member
                .post(&format!("/api/messages/{}/forward", fx.group_message), json!({"conversationIds": [fx.direct]}))
                .await,
            NOT_IN,
        ),
        ("GET unknown user".into(), member.get(&format!("/api/users/{unknown}")).await, NOT_FOUND),
        ("GET unknown user's presence".into(), member.get(&format!("/api/users/{unknown}/presence")).await, NOT_FOUND),
        ("follow unknown user".into(), member.post_empty(&format!("/api/users/{unknown}/follow")).await, NOT_FOUND),
        ("block unknown user".into(), member.post_empty(&format!("/api/users/{unknown}/block")).await, NOT_FOUND),
        (
            "direct conversation with an unknown user".into(),
            member.post("/api/conversations", json!({"type": "direct", "participantIds": [unknown]})).await,
            NOT_FOUND,
        ),
        (
            "the blocker opens a direct conversation with the blocked user".into(),
            fx.owner
                .client
                .post("/api/conversations", json!({"type": "direct", "participantIds": [fx.blocked.id]}))
                .await,
            BLOCKED,
        ),
        (
            "the blocker sends into the direct conversation".into(),
            fx.owner
                .client
                .post(
                    &format!("/api/conversations/{}/messages", fx.direct),
                    json!({"clientMessageId": "b", "content": "x"}),
                )
                .await,
            BLOCKED,
        ),
        (
            "the blocker forwards into the direct conversation".into(),
            fx.owner
                .client
                .post(&format!("/api/messages/{}/forward", fx.group_message), json!({"conversationIds": [fx.direct]}))
                .await,
            BLOCKED,
        ),
    ];
    let mut failures = Vec::new();
    for (what, reply, expect) in &rows {
        if let Some(why) = check(reply, *expect) {
            failures.push(format!("{what}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

/// SPEC §2 Auth: `POST /api/auth/logout` "revokes the refresh family and the access token's
/// `jti`". Signed out with the access token alone (no refresh cookie or body reaches the
/// route: another client, a cookie not sent), the session's refresh token must be dead too:
/// the token's `sid` names the family.
async fn logout_with_the_bearer_alone_ends_the_session(app: TestApp) {
    let user = app.register("Leaver").await;
    let device = app.client(); // holds this session's refresh cookie
    let login = device.post("/api/auth/login", json!({"email": user.email, "password": user.password})).await;
    let token = login.assert_status(200)["accessToken"].as_str().expect("token").to_owned();
    app.client().with_token(&token).post_empty("/api/auth/logout").await.assert_status(204);
    app.client().with_token(&token).get("/api/auth/me").await.assert_error(401, "TOKEN_REVOKED");
    let refreshed = device.post_empty("/api/auth/refresh").await;
    refreshed.assert_error(401, "AUTH_FAILED");
}
