//! Backend-independent expectations of [`Storage`].

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use parley::storage::{
    Storage, StorageError,
    models::{NewRefreshToken, NewUser, PresenceSharing, ProfilePatch, SettingsPatch, UserRecord},
};
use uuid::Uuid;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0).unwrap() + Duration::milliseconds(123)
}

async fn user(store: &Arc<dyn Storage>, username: &str, display_name: &str) -> UserRecord {
    store
        .create_user(&NewUser {
            id: Uuid::now_v7(),
            email: format!("{username}@example.com"),
            username: username.to_owned(),
            display_name: display_name.to_owned(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            created_at: at(0),
        })
        .await
        .expect("create user")
}

fn token(user: Uuid, family: Uuid, hash: &[u8], created: DateTime<Utc>) -> NewRefreshToken {
    NewRefreshToken {
        id: Uuid::now_v7(),
        user_id: user,
        family_id: family,
        token_hash: hash.to_vec(),
        created_at: created,
        expires_at: created + Duration::days(7),
    }
}

pub async fn reports_its_backend_and_answers_pings(store: Arc<dyn Storage>) {
    assert!(["sqlite", "postgres"].contains(&store.backend()));
    store.ping().await.expect("ping");
}

pub async fn created_users_read_back_identically(store: Arc<dyn Storage>) {
    let created = user(&store, "ann", "Ann Lee").await;
    assert_eq!(created.created_at, at(0), "millisecond timestamps round-trip exactly");
    assert_eq!(created.presence_sharing, PresenceSharing::Everyone);
    assert!(created.show_last_seen && created.read_receipts_enabled);
    let by_id = store.user_by_id(created.id).await.unwrap().expect("by id");
    let by_email = store.user_by_email("ann@example.com").await.unwrap().expect("by email");
    for found in [&by_id, &by_email] {
        assert_eq!(found.id, created.id);
        assert_eq!(found.username, "ann");
        assert_eq!(found.display_name, "Ann Lee");
        assert_eq!(found.created_at, created.created_at);
        assert_eq!(found.password_hash, created.password_hash);
    }
    assert!(store.user_by_id(Uuid::now_v7()).await.unwrap().is_none());
    assert!(store.user_by_email("nobody@example.com").await.unwrap().is_none());
    assert!(store.username_taken("ann").await.unwrap());
    assert!(!store.username_taken("bob").await.unwrap());
}

pub async fn emails_and_usernames_are_unique(store: Arc<dyn Storage>) {
    let ann = user(&store, "ann", "Ann").await;
    let mut same_email = NewUser {
        id: Uuid::now_v7(),
        email: ann.email.clone(),
        username: "other".into(),
        display_name: "Other".into(),
        password_hash: "x".into(),
        created_at: at(1),
    };
    let err = store.create_user(&same_email).await.unwrap_err();
    assert!(matches!(&err, StorageError::Conflict(c) if c.contains("email")), "{err:?}");
    same_email.email = "fresh@example.com".into();
    same_email.username = "ann".into();
    let err = store.create_user(&same_email).await.unwrap_err();
    assert!(matches!(&err, StorageError::Conflict(c) if c.contains("username")), "{err:?}");
    let taken = ProfilePatch { username: Some("ann".into()), ..Default::default() };
    let bob = user(&store, "bob", "Bob").await;
    let err = store.update_profile(bob.id, &taken, at(2)).await.unwrap_err();
    assert!(matches!(&err, StorageError::Conflict(c) if c.contains("username")), "{err:?}");
}

pub async fn search_matches_prefixes_in_byte_order_and_respects_blocks(store: Arc<dyn Storage>) {
    let viewer = user(&store, "viewer", "Viewer").await;
    let zed = user(&store, "zed", "Alpha Zed").await;
    let zoe = user(&store, "zoe", "Zoë Quinn").await;
    let alpha = user(&store, "alpha", "Zulu").await;
    user(&store, "z_", "Underscore").await;
    let names = |found: Vec<UserRecord>| found.into_iter().map(|u| u.username).collect::<Vec<_>>();

    assert_eq!(names(store.search_users("z", viewer.id, 10).await.unwrap()), ["alpha", "z_", "zed", "zoe"]);
    assert_eq!(names(store.search_users("alpha", viewer.id, 10).await.unwrap()), ["alpha", "zed"]);
    assert_eq!(names(store.search_users("z", viewer.id, 2).await.unwrap()), ["alpha", "z_"]);
    // `_` and `%` are literal characters, not patterns.
    assert_eq!(names(store.search_users("z_", viewer.id, 10).await.unwrap()), ["z_"]);
    assert!(store.search_users("%", viewer.id, 10).await.unwrap().is_empty());
    // The viewer never finds themselves, nor anyone who blocked them.
    assert!(store.search_users("view", viewer.id, 10).await.unwrap().is_empty());
    store.block(zoe.id, viewer.id, at(5)).await.unwrap();
    assert_eq!(names(store.search_users("zo", viewer.id, 10).await.unwrap()), Vec::<String>::new());
    assert_eq!(names(store.search_users("zo", zed.id, 10).await.unwrap()), ["zoe"]);
    let _ = alpha;
}

pub async fn profile_and_settings_patches_touch_only_given_fields(store: Arc<dyn Storage>) {
    let ann = user(&store, "ann", "Ann").await;
    let patch = ProfilePatch { avatar_url: Some(Some("https://a.example/x.png".into())), ..Default::default() };
    let updated = store.update_profile(ann.id, &patch, at(10)).await.unwrap();
    assert_eq!(updated.avatar_url.as_deref(), Some("https://a.example/x.png"));
    assert_eq!(updated.display_name, "Ann");
    assert_eq!(updated.updated_at, at(10));
    let renamed = ProfilePatch { display_name: Some("Annie".into()), ..Default::default() };
    let updated = store.update_profile(ann.id, &renamed, at(11)).await.unwrap();
    assert_eq!(updated.display_name, "Annie");
    assert_eq!(updated.avatar_url.as_deref(), Some("https://a.example/x.png"));
    let cleared = ProfilePatch { avatar_url: Some(None), ..Default::default() };
    assert!(store.update_profile(ann.id, &cleared, at(12)).await.unwrap().avatar_url.is_none());

    let settings = SettingsPatch { presence_sharing: Some(PresenceSharing::Nobody), ..Default::default() };
    let updated = store.update_settings(ann.id, &settings, at(13)).await.unwrap();
    assert_eq!(updated.presence_sharing, PresenceSharing::Nobody);
    assert!(updated.show_last_seen && updated.read_receipts_enabled);
    let more = SettingsPatch { show_last_seen: Some(false), read_receipts_enabled: Some(false), ..Default::default() };
    let updated = store.update_settings(ann.id, &more, at(14)).await.unwrap();
    assert_eq!(updated.presence_sharing, PresenceSharing::Nobody);
    assert!(!updated.show_last_seen && !updated.read_receipts_enabled);

    let missing = store.update_settings(Uuid::now_v7(), &more, at(15)).await.unwrap_err();
    assert!(matches!(missing, StorageError::NotFound("user")));
}

pub async fn last_seen_is_stored(store: Arc<dyn Storage>) {
    let ann = user(&store, "ann", "Ann").await;
    assert!(ann.last_seen_at.is_none());
    store.set_last_seen(ann.id, at(42)).await.unwrap();
    assert_eq!(store.user_by_id(ann.id).await.unwrap().unwrap().last_seen_at, Some(at(42)));
}

pub async fn refresh_tokens_rotate_exactly_once(store: Arc<dyn Storage>) {
    let ann = user(&store, "ann", "Ann").await;
    let family = Uuid::now_v7();
    let first = token(ann.id, family, b"first", at(0));
    store.insert_refresh_token(&first).await.unwrap();
    let found = store.refresh_token_by_hash(b"first").await.unwrap().expect("stored");
    assert_eq!((found.id, found.family_id, found.expires_at), (first.id, family, first.expires_at));
    assert!(found.rotated_at.is_none() && found.revoked_at.is_none());

    let second = token(ann.id, family, b"second", at(60));
    assert!(store.rotate_refresh_token(first.id, &second).await.unwrap());
    let third = token(ann.id, family, b"third", at(61));
    assert!(!store.rotate_refresh_token(first.id, &third).await.unwrap(), "a token rotates once");
    assert!(store.refresh_token_by_hash(b"third").await.unwrap().is_none(), "the loser stores nothing");
    assert_eq!(store.refresh_token_by_hash(b"first").await.unwrap().unwrap().rotated_at, Some(at(60)));
    assert!(store.refresh_token_by_hash(b"second").await.unwrap().is_some());
    assert!(store.refresh_token_by_hash(b"unknown").await.unwrap().is_none());
}

pub async fn revoking_a_family_revokes_every_live_token_in_it(store: Arc<dyn Storage>) {
    let ann = user(&store, "ann", "Ann").await;
    let (family, other) = (Uuid::now_v7(), Uuid::now_v7());
    let first = token(ann.id, family, b"a", at(0));
    store.insert_refresh_token(&first).await.unwrap();
    store.rotate_refresh_token(first.id, &token(ann.id, family, b"b", at(1))).await.unwrap();
    store.insert_refresh_token(&token(ann.id, other, b"c", at(2))).await.unwrap();

    assert_eq!(store.revoke_refresh_family(family, at(3)).await.unwrap(), 2);
    assert_eq!(store.refresh_token_by_hash(b"b").await.unwrap().unwrap().revoked_at, Some(at(3)));
    assert!(store.refresh_token_by_hash(b"c").await.unwrap().unwrap().revoked_at.is_none());
    assert_eq!(store.revoke_refresh_family(family, at(4)).await.unwrap(), 0, "already revoked");
    let late = token(ann.id, family, b"d", at(5));
    let b = store.refresh_token_by_hash(b"b").await.unwrap().unwrap();
    assert!(!store.rotate_refresh_token(b.id, &late).await.unwrap(), "revoked tokens do not rotate");
}

pub async fn expired_refresh_tokens_are_purged(store: Arc<dyn Storage>) {
    let ann = user(&store, "ann", "Ann").await;
    store.insert_refresh_token(&token(ann.id, Uuid::now_v7(), b"old", at(0))).await.unwrap();
    store.insert_refresh_token(&token(ann.id, Uuid::now_v7(), b"new", at(6 * 86_400))).await.unwrap();
    assert_eq!(store.purge_expired_refresh_tokens(at(8 * 86_400)).await.unwrap(), 1);
    assert!(store.refresh_token_by_hash(b"old").await.unwrap().is_none());
    assert!(store.refresh_token_by_hash(b"new").await.unwrap().is_some());
}

pub async fn follows_are_idempotent_and_friends_are_mutual(store: Arc<dyn Storage>) {
    let ann = user(&store, "ann", "Ann").await;
    let bob = user(&store, "bob", "Bob").await;
    let cat = user(&store, "cat", "Cat").await;
    store.follow(ann.id, bob.id, at(1)).await.unwrap();
    store.follow(ann.id, bob.id, at(2)).await.unwrap();
    store.follow(ann.id, cat.id, at(3)).await.unwrap();
    assert!(store.friends_of(ann.id).await.unwrap().is_empty());
    store.follow(bob.id, ann.id, at(4)).await.unwrap();
    store.follow(cat.id, ann.id, at(5)).await.unwrap();
    let friends: Vec<_> = store.friends_of(ann.id).await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(friends, ["bob", "cat"]);
    assert_eq!(store.friends_of(bob.id).await.unwrap().len(), 1);
    assert!(store.unfollow(bob.id, ann.id).await.unwrap());
    assert!(!store.unfollow(bob.id, ann.id).await.unwrap());
    let friends: Vec<_> = store.friends_of(ann.id).await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(friends, ["cat"]);
}

pub async fn blocking_drops_follows_both_ways_and_lists_newest_first(store: Arc<dyn Storage>) {
    let ann = user(&store, "ann", "Ann").await;
    let bob = user(&store, "bob", "Bob").await;
    let cat = user(&store, "cat", "Cat").await;
    store.follow(ann.id, bob.id, at(1)).await.unwrap();
    store.follow(bob.id, ann.id, at(1)).await.unwrap();
    store.block(ann.id, bob.id, at(2)).await.unwrap();
    store.block(ann.id, bob.id, at(9)).await.unwrap();
    store.block(ann.id, cat.id, at(3)).await.unwrap();
    let relation = store.relationship(ann.id, bob.id).await.unwrap();
    assert!(!relation.following && !relation.followed_by && relation.blocking);
    let blocked = store.blocked_by(ann.id).await.unwrap();
    let listed: Vec<_> = blocked.iter().map(|b| (b.user.username.as_str(), b.blocked_at)).collect();
    assert_eq!(listed, [("cat", at(3)), ("bob", at(2))], "newest first; blocking twice keeps the first time");
    assert!(store.unblock(ann.id, bob.id).await.unwrap());
    assert!(!store.unblock(ann.id, bob.id).await.unwrap());
    assert_eq!(store.blocked_by(ann.id).await.unwrap().len(), 1);
}

pub async fn relationships_are_seen_from_the_viewer(store: Arc<dyn Storage>) {
    let ann = user(&store, "ann", "Ann").await;
    let bob = user(&store, "bob", "Bob").await;
    assert_eq!(store.relationship(ann.id, bob.id).await.unwrap(), Default::default());
    store.follow(ann.id, bob.id, at(1)).await.unwrap();
    store.block(bob.id, ann.id, at(2)).await.unwrap();
    let from_ann = store.relationship(ann.id, bob.id).await.unwrap();
    assert!(!from_ann.following, "the block dropped ann's follow");
    assert!(from_ann.blocked_by && !from_ann.blocking);
    let from_bob = store.relationship(bob.id, ann.id).await.unwrap();
    assert!(from_bob.blocking && !from_bob.blocked_by && !from_bob.is_friend());
}
