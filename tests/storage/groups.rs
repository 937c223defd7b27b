//! Contract: running a group — fields, the size limit under concurrent adds, roles and the
//! hand-over, mute, invite links and their uses.

use std::sync::Arc;

use parley::storage::{
    Storage,
    models::{ConversationKind, ConversationPatch, NewInvite, Role, Visibility},
};

use crate::conversations::{at, conversation, message, send, users};

pub async fn a_patch_changes_only_the_fields_it_names(store: Arc<dyn Storage>) {
    let u = users(&store, 1).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[]).await.unwrap();
    let patch = ConversationPatch {
        description: Some(Some("about".into())),
        visibility: Some(Visibility::Public),
        ..Default::default()
    };
    let updated = store.update_conversation(group.id, &patch, at(5)).await.unwrap().unwrap();
    assert_eq!((updated.title.as_deref(), updated.description.as_deref()), (Some("Team"), Some("about")));
    assert_eq!((updated.visibility, updated.updated_at), (Visibility::Public, at(5)));
    let clear = ConversationPatch {
        description: Some(None),
        avatar_url: Some(Some("https://a.b/c".into())),
        ..Default::default()
    };
    let updated = store.update_conversation(group.id, &clear, at(6)).await.unwrap().unwrap();
    assert_eq!((updated.description, updated.avatar_url.as_deref()), (None, Some("https://a.b/c")));
    store.soft_delete_conversation(group.id, at(7)).await.unwrap();
    assert!(
        store.update_conversation(group.id, &patch, at(8)).await.unwrap().is_none(),
        "deleted groups stay as they are"
    );
}

pub async fn adds_stop_at_the_size_limit_even_when_concurrent(store: Arc<dyn Storage>) {
    let u = users(&store, 12).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    send(&store, &message(group.id, u[0], "before", 1)).await;
    let outcome = store.add_members(group.id, &[u[1], u[2], u[3]], 4, at(2)).await.unwrap();
    assert_eq!((outcome.added, outcome.already_members, outcome.full), (vec![u[2], u[3]], vec![u[1]], vec![]));
    let newcomer = store.participant(group.id, u[2]).await.unwrap().unwrap();
    assert_eq!((newcomer.role, newcomer.joined_seq, newcomer.cleared_seq), (Role::Member, 1, 1));
    assert_eq!(store.add_members(group.id, &[u[4]], 4, at(3)).await.unwrap().full, [u[4]]);
    // Eight at once, each trying to add one more, with room for three.
    let (tasks, limit) = (8, 7);
    let mut handles = Vec::new();
    for i in 0..tasks {
        let (store, user) = (store.clone(), u[4 + i]);
        handles.push(tokio::spawn(async move { store.add_members(group.id, &[user], limit, at(4)).await.unwrap() }));
    }
    let mut added = 0;
    for handle in handles {
        added += handle.await.unwrap().added.len();
    }
    assert_eq!(added, 3, "the limit holds under concurrent adds");
    assert_eq!(store.member_ids(group.id).await.unwrap().len(), limit);
}

pub async fn roles_change_and_ownership_moves_in_one_step(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    assert!(store.set_role(group.id, u[1], Role::Admin).await.unwrap());
    assert!(!store.set_role(group.id, u[2], Role::Admin).await.unwrap(), "not a participant");
    assert!(!store.transfer_ownership(group.id, u[1], u[0]).await.unwrap(), "only the owner hands over");
    assert!(!store.transfer_ownership(group.id, u[0], u[2]).await.unwrap(), "to a participant only");
    assert_eq!(
        store.participant(group.id, u[0]).await.unwrap().unwrap().role,
        Role::Owner,
        "a refusal changes nothing"
    );
    assert!(store.transfer_ownership(group.id, u[0], u[1]).await.unwrap());
    let roles: Vec<(uuid::Uuid, Role)> =
        store.members(group.id).await.unwrap().iter().map(|m| (m.user.id, m.role)).collect();
    assert!(roles.contains(&(u[1], Role::Owner)) && roles.contains(&(u[0], Role::Admin)), "{roles:?}");
}

pub async fn mute_is_kept_per_participant(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    assert!(store.set_muted(group.id, u[1], Some(at(100))).await.unwrap());
    assert_eq!(store.participant(group.id, u[1]).await.unwrap().unwrap().muted_until, Some(at(100)));
    assert_eq!(store.conversation_summary(u[1], group.id).await.unwrap().unwrap().muted_until, Some(at(100)));
    assert_eq!(store.conversation_summary(u[0], group.id).await.unwrap().unwrap().muted_until, None);
    store.set_muted(group.id, u[1], None).await.unwrap();
    assert_eq!(store.participant(group.id, u[1]).await.unwrap().unwrap().muted_until, None);
}

pub async fn invites_count_uses_and_stop_when_expired_used_up_or_revoked(store: Arc<dyn Storage>) {
    let u = users(&store, 1).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[]).await.unwrap();
    let invite = |code: &str, expires: Option<i64>, max_uses: Option<i32>| NewInvite {
        code: code.into(),
        conversation_id: group.id,
        created_by: u[0],
        created_at: at(1),
        expires_at: expires.map(at),
        max_uses,
    };
    let created = store.create_invite(&invite("twice", Some(100), Some(2))).await.unwrap();
    assert_eq!((created.uses, created.max_uses, created.expires_at), (0, Some(2), Some(at(100))));
    store.create_invite(&invite("short", Some(10), None)).await.unwrap();
    store.create_invite(&invite("revoked", None, None)).await.unwrap();
    assert!(store.revoke_invite("revoked", at(2)).await.unwrap());
    assert!(!store.revoke_invite("revoked", at(3)).await.unwrap(), "once");
    let live: Vec<String> = store.live_invites(group.id, at(5)).await.unwrap().into_iter().map(|i| i.code).collect();
    assert_eq!(live, ["short", "twice"]);
    assert!(store.use_invite("short", at(11)).await.unwrap().is_none(), "expired");
    assert!(store.use_invite("revoked", at(5)).await.unwrap().is_none(), "revoked");
    assert_eq!(store.use_invite("twice", at(5)).await.unwrap().unwrap().uses, 1);
    store.unuse_invite("twice").await.unwrap();
    // Concurrent accepts never exceed max_uses.
    let mut handles = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        handles.push(tokio::spawn(async move { store.use_invite("twice", at(6)).await.unwrap().is_some() }));
    }
    let mut used = 0;
    for handle in handles {
        used += usize::from(handle.await.unwrap());
    }
    assert_eq!(used, 2);
    assert_eq!(store.invite("twice").await.unwrap().unwrap().uses, 2);
    assert!(store.live_invites(group.id, at(6)).await.unwrap().iter().all(|i| i.code != "twice"), "used up");
    assert!(store.invite("nope").await.unwrap().is_none());
}
