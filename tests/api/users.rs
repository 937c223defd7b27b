//! Profiles, search, settings (and the legacy alias), follows and friends, blocks.

use serde_json::json;

use crate::in_both_modes;
use crate::support::TestApp;

in_both_modes!(
    profiles_show_email_only_to_their_owner,
    unknown_or_malformed_user_ids_are_404_and_400,
    profile_updates_change_only_the_given_fields,
    invalid_profile_updates_are_refused_and_change_nothing,
    search_finds_username_and_display_name_prefixes,
    search_hides_users_who_blocked_you_and_validates_input,
    settings_default_to_open_and_update_partially,
    legacy_settings_alias_speaks_snake_case,
    mutual_follows_make_friends,
    following_yourself_or_nobody_is_refused,
    blocking_ends_friendship_and_refuses_follows,
    user_routes_require_a_token,
);

async fn profiles_show_email_only_to_their_owner(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let seen = bob.client.get(&format!("/api/users/{}", ann.id)).await;
    let body = seen.assert_status(200);
    assert_eq!(body["username"], ann.username.as_str());
    assert!(body.get("email").is_none(), "another user's email leaked: {body}");
    let own = ann.client.get(&format!("/api/users/{}", ann.id)).await;
    assert_eq!(own.assert_status(200)["email"], ann.email.as_str());
    let me = ann.client.get("/api/users/me").await;
    assert_eq!(me.assert_status(200)["email"], ann.email.as_str());
}

async fn unknown_or_malformed_user_ids_are_404_and_400(app: TestApp) {
    let ann = app.register("Ann").await;
    ann.client.get(&format!("/api/users/{}", uuid::Uuid::now_v7())).await.assert_error(404, "NOT_FOUND");
    ann.client.get("/api/users/not-a-uuid").await.assert_error(400, "VALIDATION_ERROR");
    ann.client.post_empty("/api/users/not-a-uuid/follow").await.assert_error(400, "VALIDATION_ERROR");
}

async fn profile_updates_change_only_the_given_fields(app: TestApp) {
    let ann = app.register("Ann").await;
    let reply = ann
        .client
        .patch("/api/users/me", json!({"displayName": "  Ann Lee ", "avatarUrl": "https://cdn.example.com/a.png"}))
        .await;
    let body = reply.assert_status(200);
    assert_eq!(body["displayName"], "Ann Lee");
    assert_eq!(body["avatarUrl"], "https://cdn.example.com/a.png");
    assert_eq!(body["username"], ann.username.as_str());

    let renamed = ann.client.patch("/api/users/me", json!({"username": "Ann_Lee"})).await;
    assert_eq!(renamed.assert_status(200)["username"], "ann_lee");
    assert_eq!(renamed.body["avatarUrl"], "https://cdn.example.com/a.png", "absent fields stay");

    let cleared = ann.client.patch("/api/users/me", json!({"avatarUrl": null})).await;
    assert!(cleared.assert_status(200)["avatarUrl"].is_null());
    let me = ann.client.get("/api/auth/me").await;
    assert_eq!(me.body["displayName"], "Ann Lee");
    assert!(me.body["avatarUrl"].is_null());
}

async fn invalid_profile_updates_are_refused_and_change_nothing(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    for body in [
        json!({"displayName": "A"}),
        json!({"username": "x"}),
        json!({"avatarUrl": "javascript:alert(1)"}),
        json!({"displayName": 42}),
    ] {
        ann.client.patch("/api/users/me", body).await.assert_error(400, "VALIDATION_ERROR");
    }
    ann.client.patch("/api/users/me", json!({"username": bob.username})).await.assert_error(409, "USERNAME_TAKEN");
    let me = ann.client.get("/api/auth/me").await;
    assert_eq!(me.body["displayName"], "Ann");
    assert_eq!(me.body["username"], ann.username.as_str());
}

async fn search_finds_username_and_display_name_prefixes(app: TestApp) {
    let me = app.register("Searcher").await;
    let zed = app.register("Zed Alpha").await;
    let zelda = app.register("Zelda").await;
    app.register("Other").await;
    me.client.patch("/api/users/me", json!({"username": "zebra_me"})).await.assert_status(200);

    let found = me.client.get("/api/users?query=ZE").await;
    let names: Vec<&str> =
        found.assert_status(200)["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&zed.username.as_str()) && names.contains(&zelda.username.as_str()));
    assert!(found.body["users"][0].get("email").is_none());

    let by_display_name = me.client.get("/api/users?query=zed%20al").await;
    assert_eq!(by_display_name.assert_status(200)["users"][0]["id"], zed.id.to_string());
    let limited = me.client.get("/api/users?query=z&limit=1").await;
    assert_eq!(limited.assert_status(200)["users"].as_array().unwrap().len(), 1);
    let wildcard = me.client.get("/api/users?query=%25").await;
    assert!(wildcard.assert_status(200)["users"].as_array().unwrap().is_empty(), "% is not a wildcard");
}

async fn search_hides_users_who_blocked_you_and_validates_input(app: TestApp) {
    let me = app.register("Seeker").await;
    let hider = app.register("Hidden Person").await;
    hider.client.post_empty(&format!("/api/users/{}/block", me.id)).await.assert_status(204);
    let found = me.client.get("/api/users?query=hidden").await;
    assert!(found.assert_status(200)["users"].as_array().unwrap().is_empty());

    me.client.get("/api/users?query=").await.assert_error(400, "VALIDATION_ERROR");
    me.client.get("/api/users").await.assert_error(400, "VALIDATION_ERROR");
    me.client.get("/api/users?query=a&limit=0").await.assert_error(400, "VALIDATION_ERROR");
    me.client.get("/api/users?query=a&limit=many").await.assert_error(400, "VALIDATION_ERROR");
    me.client.get(&format!("/api/users?query={}", "a".repeat(65))).await.assert_error(400, "VALIDATION_ERROR");
}

async fn settings_default_to_open_and_update_partially(app: TestApp) {
    let ann = app.register("Ann").await;
    let defaults = ann.client.get("/api/users/me/settings").await;
    assert_eq!(
        *defaults.assert_status(200),
        json!({"showLastSeen": true, "presenceSharing": "everyone", "readReceiptsEnabled": true})
    );
    let changed = ann.client.patch("/api/users/me/settings", json!({"presenceSharing": "friends"})).await;
    assert_eq!(
        *changed.assert_status(200),
        json!({"showLastSeen": true, "presenceSharing": "friends", "readReceiptsEnabled": true})
    );
    ann.client
        .patch("/api/users/me/settings", json!({"readReceiptsEnabled": false, "showLastSeen": false}))
        .await
        .assert_status(200);
    ann.client
        .patch("/api/users/me/settings", json!({"presenceSharing": "aliens"}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    ann.client
        .patch("/api/users/me/settings", json!({"showLastSeen": "no"}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let now = ann.client.get("/api/users/me/settings").await;
    assert_eq!(
        *now.assert_status(200),
        json!({"showLastSeen": false, "presenceSharing": "friends", "readReceiptsEnabled": false})
    );
}

async fn legacy_settings_alias_speaks_snake_case(app: TestApp) {
    let ann = app.register("Ann").await;
    let reply = ann.client.patch("/api/v1/users/me/settings", json!({"show_last_seen": false})).await;
    assert_eq!(
        *reply.assert_status(200),
        json!({"success": true, "data": {"show_last_seen": false, "presence_sharing": "everyone", "read_receipts_enabled": true}})
    );
    let canonical = ann.client.get("/api/users/me/settings").await;
    assert_eq!(canonical.body["showLastSeen"], false);
}

async fn mutual_follows_make_friends(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let one_way = ann.client.post_empty(&format!("/api/users/{}/follow", bob.id)).await;
    assert_eq!(*one_way.assert_status(200), json!({"userId": bob.id, "following": true, "isFriend": false}));
    // Following twice is harmless.
    ann.client.post_empty(&format!("/api/users/{}/follow", bob.id)).await.assert_status(200);
    assert!(ann.client.get("/api/users/me/friends").await.body["friends"].as_array().unwrap().is_empty());

    let mutual = bob.client.post_empty(&format!("/api/users/{}/follow", ann.id)).await;
    assert_eq!(mutual.assert_status(200)["isFriend"], true);
    let friends = ann.client.get("/api/users/me/friends").await;
    assert_eq!(friends.assert_status(200)["friends"][0]["id"], bob.id.to_string());
    assert!(friends.body["friends"][0].get("email").is_none());

    bob.client.delete(&format!("/api/users/{}/follow", ann.id)).await.assert_status(204);
    bob.client.delete(&format!("/api/users/{}/follow", ann.id)).await.assert_status(204);
    assert!(ann.client.get("/api/users/me/friends").await.body["friends"].as_array().unwrap().is_empty());
}

async fn following_yourself_or_nobody_is_refused(app: TestApp) {
    let ann = app.register("Ann").await;
    ann.client.post_empty(&format!("/api/users/{}/follow", ann.id)).await.assert_error(400, "VALIDATION_ERROR");
    ann.client.post_empty(&format!("/api/users/{}/block", ann.id)).await.assert_error(400, "VALIDATION_ERROR");
    let nobody = uuid::Uuid::now_v7();
    ann.client.post_empty(&format!("/api/users/{nobody}/follow")).await.assert_error(404, "NOT_FOUND");
    ann.client.post_empty(&format!("/api/users/{nobody}/block")).await.assert_error(404, "NOT_FOUND");
}

async fn blocking_ends_friendship_and_refuses_follows(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    ann.client.post_empty(&format!("/api/users/{}/follow", bob.id)).await.assert_status(200);
    bob.client.post_empty(&format!("/api/users/{}/follow", ann.id)).await.assert_status(200);

    ann.client.post_empty(&format!("/api/users/{}/block", bob.id)).await.assert_status(204);
    assert!(ann.client.get("/api/users/me/friends").await.body["friends"].as_array().unwrap().is_empty());
    assert!(bob.client.get("/api/users/me/friends").await.body["friends"].as_array().unwrap().is_empty());
    let blocks = ann.client.get("/api/users/me/blocks").await;
    assert_eq!(blocks.assert_status(200)["blocks"][0]["user"]["id"], bob.id.to_string());
    assert!(blocks.body["blocks"][0]["blockedAt"].is_string());
    assert!(bob.client.get("/api/users/me/blocks").await.body["blocks"].as_array().unwrap().is_empty());

    bob.client.post_empty(&format!("/api/users/{}/follow", ann.id)).await.assert_error(403, "BLOCKED");
    ann.client.post_empty(&format!("/api/users/{}/follow", bob.id)).await.assert_error(403, "BLOCKED");

    ann.client.delete(&format!("/api/users/{}/block", bob.id)).await.assert_status(204);
    assert!(ann.client.get("/api/users/me/blocks").await.body["blocks"].as_array().unwrap().is_empty());
    bob.client.post_empty(&format!("/api/users/{}/follow", ann.id)).await.assert_status(200);
}

async fn user_routes_require_a_token(app: TestApp) {
    let ann = app.register("Ann").await;
    let anon = app.client();
    let id = ann.id;
    for (method, path) in [
        ("GET", "/api/users?query=a".to_owned()),
        ("GET", format!("/api/users/{id}")),
        ("GET", "/api/users/me".to_owned()),
        ("PATCH", "/api/users/me".to_owned()),
        ("GET", "/api/users/me/settings".to_owned()),
        ("PATCH", "/api/users/me/settings".to_owned()),
        ("PATCH", "/api/v1/users/me/settings".to_owned()),
        ("POST", format!("/api/users/{id}/follow")),
        ("DELETE", format!("/api/users/{id}/follow")),
        ("GET", "/api/users/me/friends".to_owned()),
        ("POST", format!("/api/users/{id}/block")),
        ("DELETE", format!("/api/users/{id}/block")),
        ("GET", "/api/users/me/blocks".to_owned()),
    ] {
        let request = anon.request(method.parse().unwrap(), &path).json(&json!({}));
        let reply = anon.send(request).await;
        assert_eq!(reply.status.as_u16(), 401, "{method} {path}: {}", reply.body);
        assert_eq!(reply.code(), "AUTH_FAILED", "{method} {path}");
    }
}
