//! Contract: conversations, participants, messages and the delivered watermark.

use std::{collections::BTreeSet, sync::Arc};

use chrono::{DateTime, TimeZone, Utc};
use parley::storage::{
    Storage, StorageError,
    models::{
        ContentType, ConversationKind, DeliveredMark, HistoryQuery, NewConversation, NewMessage, NewUser, SendOutcome,
        Visibility,
    },
};
use uuid::Uuid;

pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0).unwrap()
}

pub(crate) async fn users(store: &Arc<dyn Storage>, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = Uuid::now_v7();
        store
            .create_user(&NewUser {
                id,
                email: format!("u{i}-{id}@example.com"),
                username: format!("u{i}_{}", &id.simple().to_string()[..8]),
                display_name: format!("User {i}"),
                password_hash: "x".into(),
                created_at: at(i as i64),
            })
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

pub(crate) fn conversation(kind: ConversationKind, creator: Uuid, secs: i64) -> NewConversation {
    NewConversation {
        id: Uuid::now_v7(),
        kind,
        title: (kind == ConversationKind::Group).then(|| "Team".to_owned()),
        visibility: Visibility::Private,
        created_by: creator,
        created_at: at(secs),
    }
}

pub(crate) fn message(conversation: Uuid, sender: Uuid, client_id: &str, secs: i64) -> NewMessage {
    NewMessage {
        id: Uuid::now_v7(),
        conversation_id: conversation,
        sender_id: sender,
        client_message_id: client_id.to_owned(),
        content: format!("hello {client_id}"),
        content_type: ContentType::Text,
        media: None,
        encrypted_content: None,
        forwarded_from: None,
        reply_to_id: None,
        mentions: Vec::new(),
        created_at: at(secs),
        notify: None,
    }
}

pub(crate) async fn send(store: &Arc<dyn Storage>, m: &NewMessage) -> (i64, bool) {
    match store.send_message(m).await.unwrap() {
        SendOutcome::Created(r) => (r.seq, true),
        SendOutcome::Duplicate(r) => (r.seq, false),
        SendOutcome::ConversationGone => panic!("the conversation is gone"),
    }
}

pub async fn a_direct_conversation_is_unique_per_pair(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let (first, created) =
        store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 1), u[1]).await.unwrap();
    assert!(created);
    let (again, created) =
        store.find_or_create_direct(&conversation(ConversationKind::Direct, u[1], 2), u[0]).await.unwrap();
    assert!(!created, "the other side opening it finds the same one");
    assert_eq!(first.id, again.id);
    assert_eq!(
        store.member_ids(first.id).await.unwrap().into_iter().collect::<BTreeSet<_>>(),
        u.iter().copied().collect()
    );
    assert!(store.soft_delete_conversation(first.id, at(3)).await.unwrap());
    let (fresh, created) =
        store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 4), u[1]).await.unwrap();
    assert!(created && fresh.id != first.id, "a deleted direct conversation does not block a new one");
}

pub async fn groups_have_one_owner_and_refuse_unknown_members(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 1), &[u[1], u[2], u[0]]).await.unwrap();
    assert_eq!(group.title.as_deref(), Some("Team"));
    let members = store.members(group.id).await.unwrap();
    assert_eq!(members.len(), 3);
    let owners: Vec<_> = members.iter().filter(|m| m.role.as_str() == "owner").map(|m| m.user.id).collect();
    assert_eq!(owners, [u[0]]);
    let err = store.create_group(&conversation(ConversationKind::Group, u[0], 2), &[Uuid::now_v7()]).await.unwrap_err();
    assert!(matches!(err, StorageError::UnknownReference(_)), "{err:?}");
}

pub async fn messages_get_consecutive_seqs_and_bump_the_conversation(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let (c, _) = store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    for (i, client) in ["a", "b", "c"].into_iter().enumerate() {
        assert_eq!(send(&store, &message(c.id, u[i % 2], client, 10 + i as i64)).await, (i as i64 + 1, true));
    }
    let bumped = store.conversation(c.id).await.unwrap().unwrap();
    assert_eq!(bumped.last_seq, 3);
    assert_eq!(bumped.last_activity_at, at(12));
    let last = store.message(bumped.last_message_id.unwrap()).await.unwrap().unwrap();
    assert_eq!((last.seq, last.client_message_id.as_str()), (3, "c"));
    assert!(last.sender_username.starts_with("u0_"));
}

pub async fn a_retried_client_message_id_returns_the_original(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let (c, _) = store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    let original = message(c.id, u[0], "retry-me", 1);
    assert_eq!(send(&store, &original).await, (1, true));
    let retry = NewMessage { content: "different text".into(), ..message(c.id, u[0], "retry-me", 2) };
    let SendOutcome::Duplicate(found) = store.send_message(&retry).await.unwrap() else { panic!("not deduplicated") };
    assert_eq!((found.id, found.seq, found.content.as_deref()), (original.id, 1, Some("hello retry-me")));
    assert_eq!(store.conversation(c.id).await.unwrap().unwrap().last_seq, 1, "a retry takes no seq");
    // The key is per sender: someone else may use the same client id.
    assert_eq!(send(&store, &message(c.id, u[1], "retry-me", 3)).await, (2, true));
}

pub async fn concurrent_senders_get_gapless_unique_seqs(store: Arc<dyn Storage>) {
    let u = users(&store, 10).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &u[1..]).await.unwrap();
    let mut tasks = Vec::new();
    for (i, sender) in u.iter().copied().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..20 {
                let m = message(group.id, sender, &format!("{i}-{n}"), n);
                seqs.push(send(&store, &m).await.0);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let seqs = task.await.unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "one sender's messages keep their order: {seqs:?}");
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<i64>>());
}

pub async fn concurrent_retries_store_one_message(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let (c, _) = store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    let sender = u[0];
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.send_message(&message(c.id, sender, "same", 1)).await.unwrap() })
        })
        .collect();
    let mut ids = BTreeSet::new();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            SendOutcome::Created(m) => {
                created += 1;
                ids.insert(m.id);
            }
            SendOutcome::Duplicate(m) => {
                ids.insert(m.id);
            }
            SendOutcome::ConversationGone => panic!("the conversation is gone"),
        }
    }
    assert_eq!((created, ids.len()), (1, 1));
    assert_eq!(store.conversation(c.id).await.unwrap().unwrap().last_seq, 1);
}

pub async fn history_pages_respect_the_floor_and_direction(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let (c, _) = store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    for i in 1..=6 {
        send(&store, &message(c.id, u[0], &format!("m{i}"), i * 10)).await;
    }
    let seqs = |rows: Vec<parley::storage::models::MessageRecord>| rows.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.history(c.id, 0, HistoryQuery::Before { seq: None }, 3).await.unwrap()), [6, 5, 4]);
    assert_eq!(seqs(store.history(c.id, 0, HistoryQuery::Before { seq: Some(4) }, 3).await.unwrap()), [3, 2, 1]);
    assert_eq!(seqs(store.history(c.id, 2, HistoryQuery::Before { seq: Some(4) }, 3).await.unwrap()), [3]);
    assert_eq!(seqs(store.history(c.id, 0, HistoryQuery::After { seq: 4 }, 10).await.unwrap()), [5, 6]);
    assert_eq!(seqs(store.history(c.id, 5, HistoryQuery::After { seq: 1 }, 10).await.unwrap()), [6]);
    assert_eq!(seqs(store.history(c.id, 0, HistoryQuery::Since { time: at(30) }, 10).await.unwrap()), [4, 5, 6]);
}

pub async fn edits_and_tombstones(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let (c, _) = store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    let m = message(c.id, u[0], "x", 1);
    send(&store, &m).await;
    let edited = store.edit_message(m.id, "fixed", None, at(2)).await.unwrap().unwrap();
    assert_eq!((edited.content.as_deref(), edited.updated_at), (Some("fixed"), at(2)));
    let gone = store.delete_message(m.id, at(3)).await.unwrap().unwrap();
    assert!(gone.content.is_none() && gone.deleted_at == Some(at(3)));
    assert!(store.delete_message(m.id, at(4)).await.unwrap().is_none(), "already deleted");
    assert!(store.edit_message(m.id, "again", None, at(5)).await.unwrap().is_none(), "tombstones stay");
}

pub async fn the_last_owner_leaving_hands_over_and_the_last_member_deletes(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    assert_eq!(store.add_members(group.id, &[u[2]], 1000, at(5)).await.unwrap().added, [u[2]]);
    let again = store.add_members(group.id, &[u[2]], 1000, at(6)).await.unwrap();
    assert_eq!((again.added.len(), again.already_members), (0, vec![u[2]]), "joining twice changes nothing");
    let outcome = store.leave(group.id, u[0], at(7)).await.unwrap();
    assert!(outcome.left && !outcome.emptied);
    assert_eq!(outcome.new_owner, Some(u[1]), "the longest-standing member inherits");
    assert!(!store.leave(group.id, u[0], at(8)).await.unwrap().left);
    assert_eq!(store.leave(group.id, u[1], at(9)).await.unwrap().new_owner, Some(u[2]));
    let last = store.leave(group.id, u[2], at(10)).await.unwrap();
    assert!(last.emptied);
    assert!(store.conversation(group.id).await.unwrap().unwrap().deleted_at.is_some());
}

pub async fn newcomers_start_with_history_delivered_and_read(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    send(&store, &message(group.id, u[0], "before", 1)).await;
    store.add_members(group.id, &[u[2]], 1000, at(2)).await.unwrap();
    let newcomer = store.participant(group.id, u[2]).await.unwrap().unwrap();
    assert_eq!((newcomer.last_delivered_seq, newcomer.last_read_seq), (1, 1));
    assert_eq!((newcomer.joined_seq, newcomer.cleared_seq), (1, 1), "history starts at the join");
    assert!(store.pending_deliveries(u[2]).await.unwrap().is_empty());
}

/// `(seq, created, client id)` of each outcome; `None` for a conversation that is gone.
fn outcomes(batch: &[SendOutcome]) -> Vec<Option<(i64, bool, String)>> {
    batch
        .iter()
        .map(|outcome| match outcome {
            SendOutcome::Created(m) => Some((m.seq, true, m.client_message_id.clone())),
            SendOutcome::Duplicate(m) => Some((m.seq, false, m.client_message_id.clone())),
            SendOutcome::ConversationGone => None,
        })
        .collect()
}

pub async fn a_batch_numbers_per_conversation_and_answers_every_entry(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let (direct, _) =
        store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1], u[2]]).await.unwrap();
    let gone = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    store.soft_delete_conversation(gone.id, at(1)).await.unwrap();
    let old = message(direct.id, u[0], "old", 1);
    send(&store, &old).await;
    let batch = [
        message(direct.id, u[0], "a", 10),
        message(group.id, u[1], "b", 11),
        message(direct.id, u[1], "c", 12),
        message(direct.id, u[0], "old", 13),
        message(group.id, u[1], "b", 14),
        message(gone.id, u[0], "x", 15),
        message(group.id, u[2], "e", 16),
    ];
    let answers = store.send_messages(&batch).await.unwrap();
    let expected = [
        Some((2, true, "a")),
        Some((1, true, "b")),
        Some((3, true, "c")),
        Some((1, false, "old")),
        Some((1, false, "b")),
        None,
        Some((2, true, "e")),
    ];
    let expected: Vec<_> = expected.iter().map(|o| o.map(|(seq, created, id)| (seq, created, id.to_owned()))).collect();
    assert_eq!(outcomes(&answers), expected);
    let SendOutcome::Duplicate(repeat) = &answers[4] else { panic!("the repeat is a duplicate") };
    assert_eq!(repeat.id, batch[1].id, "a repeat within the batch answers with the first entry's message");
    let direct_now = store.conversation(direct.id).await.unwrap().unwrap();
    assert_eq!(
        (direct_now.last_seq, direct_now.last_message_id, direct_now.last_activity_at),
        (3, Some(batch[2].id), at(12))
    );
    let group_now = store.conversation(group.id).await.unwrap().unwrap();
    assert_eq!((group_now.last_seq, group_now.last_message_id), (2, Some(batch[6].id)));
    assert_eq!(store.conversation(gone.id).await.unwrap().unwrap().last_seq, 0);
    assert!(store.message(batch[5].id).await.unwrap().is_none(), "nothing is stored in a deleted conversation");
    assert!(store.send_messages(&[]).await.unwrap().is_empty());
}

pub async fn send_checks_read_members_and_blocks_in_bulk(store: Arc<dyn Storage>) {
    let u = users(&store, 4).await;
    let (direct, _) =
        store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[2]]).await.unwrap();
    let gone = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    store.soft_delete_conversation(gone.id, at(1)).await.unwrap();
    let mut contexts = store.send_contexts(&[direct.id, group.id, gone.id, Uuid::now_v7()]).await.unwrap();
    contexts.sort_by_key(|c| c.id);
    let seen: Vec<_> =
        contexts.iter().map(|c| (c.id, c.kind, c.members.iter().copied().collect::<BTreeSet<_>>())).collect();
    let mut expected = vec![
        (direct.id, ConversationKind::Direct, BTreeSet::from([u[0], u[1]])),
        (group.id, ConversationKind::Group, BTreeSet::from([u[0], u[2]])),
    ];
    expected.sort_by_key(|c| c.0);
    assert_eq!(seen, expected, "deleted and unknown conversations are left out");
    store.block(u[1], u[0], at(2)).await.unwrap();
    store.block(u[3], u[2], at(2)).await.unwrap();
    assert_eq!(store.blocks_among(&[u[0], u[1], u[2]]).await.unwrap(), [(u[1], u[0])], "only blocks inside the set");
    assert!(store.blocks_among(&[u[0]]).await.unwrap().is_empty());
}

pub async fn delivered_marks_are_written_in_bulk_and_only_forward(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1], u[2]]).await.unwrap();
    let (direct, _) =
        store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    for i in 1..=3 {
        send(&store, &message(group.id, u[0], &format!("g{i}"), i)).await;
        send(&store, &message(direct.id, u[0], &format!("d{i}"), i)).await;
    }
    store.mark_delivered(group.id, &[u[2]], 3).await.unwrap();
    let mark = |conversation, user, seq| DeliveredMark { conversation, user, seq };
    store
        .mark_delivered_many(&[mark(group.id, u[1], 2), mark(direct.id, u[1], 3), mark(group.id, u[2], 1)])
        .await
        .unwrap();
    let delivered = |c, user| {
        let store = store.clone();
        async move { store.participant(c, user).await.unwrap().unwrap().last_delivered_seq }
    };
    assert_eq!(delivered(group.id, u[1]).await, 2);
    assert_eq!(delivered(direct.id, u[1]).await, 3);
    assert_eq!(delivered(group.id, u[2]).await, 3, "a lower mark does not move the watermark back");
    store.mark_delivered_many(&[]).await.unwrap();
}

/// After a silent death the watermark goes back to what was created at or before a cutoff,
/// never below where the user joined, and never forward.
pub async fn unmarking_moves_the_watermark_back_to_the_cutoff_only(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    let (direct, _) =
        store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    for i in 1..=4 {
        send(&store, &message(group.id, u[0], &format!("g{i}"), 10 * i)).await;
    }
    send(&store, &message(direct.id, u[0], "d1", 5)).await;
    store.mark_delivered(group.id, &[u[1]], 4).await.unwrap();
    store.mark_delivered(direct.id, &[u[1]], 1).await.unwrap();
    // A newcomer joins at seq 4: its watermark starts there.
    store.add_members(group.id, &[u[2]], 10, at(45)).await.unwrap();
    let delivered = |c, user| {
        let store = store.clone();
        async move { store.participant(c, user).await.unwrap().unwrap().last_delivered_seq }
    };
    // Messages at 10, 20, 30, 40 s; cutoff at 25 s: back to seq 2 (and the direct one, at 5 s, stays).
    store.unmark_delivered_after(u[1], at(25)).await.unwrap();
    assert_eq!(delivered(group.id, u[1]).await, 2);
    assert_eq!(delivered(direct.id, u[1]).await, 1, "nothing after the cutoff there");
    store.unmark_delivered_after(u[2], at(0)).await.unwrap();
    assert_eq!(delivered(group.id, u[2]).await, 4, "never below the join");
    // It never moves a watermark forward.
    store.mark_delivered(group.id, &[u[0]], 1).await.unwrap();
    store.unmark_delivered_after(u[0], at(100)).await.unwrap();
    assert_eq!(delivered(group.id, u[0]).await, 1);
}

/// Settling (a socket closed, or a periodic pass) moves the watermark up to what was created
/// at or before a cutoff, and never back: gathered marks may already be past the cutoff.
pub async fn settling_moves_the_watermark_forward_to_the_cutoff_only(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1], u[2]]).await.unwrap();
    for i in 1..=4 {
        send(&store, &message(group.id, u[0], &format!("g{i}"), 10 * i)).await;
    }
    store.mark_delivered(group.id, &[u[2]], 3).await.unwrap();
    let delivered = |user| {
        let store = store.clone();
        async move { store.participant(group.id, user).await.unwrap().unwrap().last_delivered_seq }
    };
    // Messages at 10, 20, 30, 40 s; cutoff at 25 s.
    store.mark_delivered_before(&[u[1], u[2]], at(25)).await.unwrap();
    assert_eq!(delivered(u[1]).await, 2, "up to the cutoff");
    assert_eq!(delivered(u[2]).await, 3, "a watermark past the cutoff stays where it is");
    store.mark_delivered(group.id, &[u[1]], 3).await.unwrap();
    store.mark_delivered_before(&[u[1]], at(5)).await.unwrap();
    assert_eq!(delivered(u[1]).await, 3, "nothing at or before the cutoff: unchanged");
    store.mark_delivered_before(&[u[1]], at(100)).await.unwrap();
    assert_eq!(delivered(u[1]).await, 4);
}

pub async fn the_delivered_watermark_only_moves_forward(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1], u[2]]).await.unwrap();
    for i in 1..=3 {
        send(&store, &message(group.id, u[0], &format!("{i}"), i)).await;
    }
    let pending = store.pending_deliveries(u[1]).await.unwrap();
    assert_eq!((pending.len(), pending[0].last_seq, pending[0].last_delivered_seq), (1, 3, 0));
    store.mark_delivered(group.id, &[u[1], u[2]], 2).await.unwrap();
    store.mark_delivered(group.id, &[u[1]], 1).await.unwrap();
    assert_eq!(store.participant(group.id, u[1]).await.unwrap().unwrap().last_delivered_seq, 2);
    store.mark_delivered(group.id, &[u[1]], 3).await.unwrap();
    assert!(store.pending_deliveries(u[1]).await.unwrap().is_empty());
    assert_eq!(store.pending_deliveries(u[2]).await.unwrap()[0].last_delivered_seq, 2);
}

pub async fn lists_page_by_activity_and_count_unread(store: Arc<dyn Storage>) {
    let u = users(&store, 4).await;
    let mut ids = Vec::new();
    for (i, other) in u[1..].iter().enumerate() {
        let (c, _) =
            store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], i as i64), *other).await.unwrap();
        ids.push(c.id);
    }
    // Activity order: the middle conversation is the newest.
    send(&store, &message(ids[1], u[2], "x", 100)).await;
    send(&store, &message(ids[1], u[0], "y", 101)).await;
    let first = store.conversations_of(u[0], false, None, 2).await.unwrap();
    assert_eq!(first.iter().map(|s| s.conversation.id).collect::<Vec<_>>(), [ids[1], ids[2]]);
    assert_eq!((first[0].unread_count, first[0].participant_count), (1, 2), "own messages are not unread");
    assert_eq!(first[0].lm_content.as_deref(), Some("hello y"));
    let last = &first[1].conversation;
    let rest = store.conversations_of(u[0], false, Some((last.last_activity_at, last.id)), 2).await.unwrap();
    assert_eq!(rest.iter().map(|s| s.conversation.id).collect::<Vec<_>>(), [ids[0]]);
    assert!(store.conversations_of(u[0], true, None, 10).await.unwrap().is_empty(), "nothing archived");

    assert!(store.hide_conversation(ids[1], u[0]).await.unwrap());
    let visible = store.conversations_of(u[0], false, None, 10).await.unwrap();
    assert!(!visible.iter().any(|s| s.conversation.id == ids[1]), "hidden for me");
    assert_eq!(store.conversations_of(u[2], false, None, 10).await.unwrap().len(), 1, "not for the other side");
    send(&store, &message(ids[1], u[2], "z", 102)).await;
    let back = store.conversations_of(u[0], false, None, 10).await.unwrap();
    assert_eq!(back[0].conversation.id, ids[1], "a new message brings it back");
}

pub async fn the_read_watermark_only_moves_forward_and_counts_stay_exact(store: Arc<dyn Storage>) {
    use parley::storage::models::ReadMark;
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1], u[2]]).await.unwrap();
    for i in 1..=5 {
        send(&store, &message(group.id, u[i % 2], &format!("{i}"), i as i64)).await;
    }
    let unread = |counts: Vec<parley::storage::models::UnreadCount>| {
        counts.iter().find(|c| c.conversation_id == group.id).map_or(0, |c| c.unread)
    };
    // u[2] has 5 unread; u[1] sent 3 of them (its own do not count).
    assert_eq!(unread(store.unread_counts(u[2]).await.unwrap()), 5);
    assert_eq!(unread(store.unread_counts(u[1]).await.unwrap()), 2);
    let mut both: Vec<(Uuid, i64)> =
        store.unread_counts_of(&[u[1], u[2]]).await.unwrap().into_iter().map(|(user, c)| (user, c.unread)).collect();
    both.sort();
    let mut expected = vec![(u[1], 2), (u[2], 5)];
    expected.sort();
    assert_eq!(both, expected, "one query answers for several users");
    assert!(store.mark_read(group.id, u[2], 3, at(10)).await.unwrap());
    assert!(!store.mark_read(group.id, u[2], 2, at(11)).await.unwrap(), "never back");
    assert_eq!(store.participant(group.id, u[2]).await.unwrap().unwrap().last_read_seq, 3);
    assert_eq!(unread(store.unread_counts(u[2]).await.unwrap()), 2);
    store.mark_unread(group.id, u[2]).await.unwrap();
    assert_eq!(
        unread(store.unread_counts(u[2]).await.unwrap()),
        2,
        "marked unread with unread messages changes nothing"
    );
    assert!(store.mark_read(group.id, u[2], 5, at(12)).await.unwrap());
    store.mark_unread(group.id, u[2]).await.unwrap();
    assert_eq!(unread(store.unread_counts(u[2]).await.unwrap()), 1, "marked unread shows one");
    assert!(store.mark_read(group.id, u[2], 5, at(13)).await.unwrap(), "reading clears the mark");
    assert_eq!(unread(store.unread_counts(u[2]).await.unwrap()), 0);

    let marks = [ReadMark { conversation_id: group.id, user_id: u[2], seq: 3, read_at: at(10) }];
    store.insert_read_marks(&marks).await.unwrap();
    store.insert_read_marks(&marks).await.unwrap();
    let first = store.history(group.id, 0, HistoryQuery::After { seq: 0 }, 10).await.unwrap();
    let readers = store.readers(group.id, first[1].seq, first[1].sender_id).await.unwrap();
    assert_eq!(readers.iter().map(|r| (r.user.id, r.read_at)).collect::<Vec<_>>(), [(u[2], Some(at(10)))]);
    store.clear_history(group.id, Some(u[1]), at(20)).await.unwrap();
    assert_eq!(unread(store.unread_counts(u[1]).await.unwrap()), 0, "cleared for u1");
    assert_eq!(store.participant(group.id, u[2]).await.unwrap().unwrap().cleared_seq, 0, "not for u2");
    store.set_archived(group.id, u[2], Some(at(21))).await.unwrap();
    assert_eq!(store.conversations_of(u[2], true, None, 10).await.unwrap().len(), 1);
    store.increment_forwarded(first[0].id, 3).await.unwrap();
    assert_eq!(store.message(first[0].id).await.unwrap().unwrap().forwarded_count, 3);
}
