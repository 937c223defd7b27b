//! Contract: replies, mentions, reactions, pins and full-text search (SPEC §4.2).

use std::sync::Arc;

use futures_util::future::join_all;
use parley::storage::{
    Storage,
    extras::{PinOutcome, ReactionChange, ReactionOutcome, SearchQuery, SearchScope},
    models::{ConversationKind, NewMessage},
};
use uuid::Uuid;

use crate::conversations::{at, conversation, message, send, users};

fn reaction(message_id: Uuid, user_id: Uuid, emoji: &str, add: bool) -> ReactionChange {
    reaction_at(message_id, user_id, emoji, add, 100)
}

fn reaction_at(message_id: Uuid, user_id: Uuid, emoji: &str, add: bool, secs: i64) -> ReactionChange {
    ReactionChange { message_id, user_id, emoji: emoji.to_owned(), add, at: at(secs) }
}

pub async fn replies_and_mentions_are_stored_with_the_message(store: Arc<dyn Storage>) {
    let u = users(&store, 4).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &u[1..3]).await.unwrap();
    let original = message(group.id, u[1], "original", 1);
    send(&store, &original).await;
    let reply = NewMessage {
        reply_to_id: Some(original.id),
        mentions: vec![u[2], u[1]],
        content: "answering".into(),
        ..message(group.id, u[0], "reply", 2)
    };
    send(&store, &reply).await;
    let read = store.message(reply.id).await.unwrap().unwrap();
    assert_eq!(read.reply_to_id, Some(original.id));
    assert_eq!((read.reply_seq, read.reply_sender_id), (Some(1), Some(u[1])));
    assert_eq!(read.reply_content.as_deref(), Some("hello original"));
    assert_eq!(read.mentions.map(|m| m.0), Some(vec![u[2], u[1]]), "in the order given");
    let plain = store.message(original.id).await.unwrap().unwrap();
    assert_eq!((plain.reply_to_id, plain.mentions.is_none(), plain.reaction_version), (None, true, 0));
    // The original deleted: the reply shows a tombstone.
    store.delete_message(original.id, at(3)).await.unwrap();
    let read = store.message(reply.id).await.unwrap().unwrap();
    assert_eq!((read.reply_content, read.reply_deleted_at), (None, Some(at(3))));
    // Participants by username.
    let names: Vec<String> = store.members(group.id).await.unwrap().into_iter().map(|m| m.user.username).collect();
    let stranger_name = store.user_by_id(u[3]).await.unwrap().unwrap().username;
    let mut found = store.members_named(group.id, &[names[1].clone(), stranger_name, "nobody".into()]).await.unwrap();
    found.sort();
    assert_eq!(found.len(), 1, "only participants: {found:?}");
    assert_eq!(found[0].1, names[1]);
}

pub async fn concurrent_reactions_count_exactly_and_the_emoji_limit_holds(store: Arc<dyn Storage>) {
    let u = users(&store, 21).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &u[1..]).await.unwrap();
    let target = message(group.id, u[0], "react-to-me", 1);
    send(&store, &target).await;
    // 20 reactors at once, one emoji: 20, and 20 versions.
    let reactors = u[1..].to_vec();
    let outcomes = join_all(reactors.iter().map(|user| {
        let (store, change) = (store.clone(), reaction(target.id, *user, "👍", true));
        async move { store.react(&change, 20).await.unwrap() }
    }))
    .await;
    let mut versions: Vec<i64> = outcomes
        .iter()
        .map(|outcome| match outcome {
            ReactionOutcome::Done { changed: true, version, .. } => *version,
            other => panic!("{other:?}"),
        })
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<i64>>(), "each change counted once");
    let seen = store.reactions(&[target.id], u[0]).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].emoji.as_str(), seen[0].count, seen[0].me, seen[0].user_ids.len()), ("👍", 20, false, 10));
    assert!(store.reactions(&[target.id], u[5]).await.unwrap()[0].me, "a reactor sees `me`");
    // The same reaction again changes nothing; removing it does.
    let again = store.react(&reaction(target.id, u[1], "👍", true), 20).await.unwrap();
    assert!(matches!(again, ReactionOutcome::Done { changed: false, version: 20, .. }), "{again:?}");
    let removed = store.react(&reaction(target.id, u[1], "👍", false), 20).await.unwrap();
    let ReactionOutcome::Done { changed: true, version: 21, reactions } = removed else { panic!("{removed:?}") };
    assert_eq!((reactions[0].count, reactions[0].me), (19, false));
    // At most 3 distinct emoji here: a 4th is refused, one already there is not.
    for (i, emoji) in ["❤️", "😂"].into_iter().enumerate() {
        let change = reaction_at(target.id, u[2], emoji, true, 101 + i as i64);
        assert!(matches!(store.react(&change, 3).await.unwrap(), ReactionOutcome::Done { .. }));
    }
    assert_eq!(store.react(&reaction(target.id, u[3], "🎉", true), 3).await.unwrap(), ReactionOutcome::TooManyEmoji);
    let late = reaction_at(target.id, u[3], "😂", true, 110);
    assert!(matches!(store.react(&late, 3).await.unwrap(), ReactionOutcome::Done { changed: true, .. }));
    // Summaries keep the order of first use.
    let emoji: Vec<String> = store.reactions(&[target.id], u[3]).await.unwrap().into_iter().map(|r| r.emoji).collect();
    assert_eq!(emoji, ["👍", "❤️", "😂"]);
    // A deleted message takes no reactions.
    store.delete_message(target.id, at(2)).await.unwrap();
    assert_eq!(store.react(&reaction(target.id, u[4], "👍", true), 20).await.unwrap(), ReactionOutcome::MessageGone);
    assert_eq!(store.message(target.id).await.unwrap().unwrap().reaction_version, 24, "20 + 1 + 3 changes");
}

pub async fn pins_stop_at_the_limit_under_concurrency(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let (c, _) = store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        let m = message(c.id, u[i % 2], &format!("m{i}"), i as i64 + 1);
        send(&store, &m).await;
        ids.push(m.id);
    }
    assert!(matches!(store.pin(c.id, ids[0], u[0], at(10), 3).await.unwrap(), PinOutcome::Pinned(_)));
    assert!(
        matches!(store.pin(c.id, ids[0], u[1], at(11), 3).await.unwrap(), PinOutcome::AlreadyPinned(p) if p.pinned_by == Some(u[0]))
    );
    // Five at once with room for two: exactly two.
    let pinner = u[0];
    let outcomes = join_all(ids[1..].iter().enumerate().map(|(i, id)| {
        let store = store.clone();
        let id = *id;
        async move { store.pin(c.id, id, pinner, at(12 + i as i64), 3).await.unwrap() }
    }))
    .await;
    assert_eq!(outcomes.iter().filter(|o| matches!(o, PinOutcome::Pinned(_))).count(), 2);
    assert_eq!(outcomes.iter().filter(|o| matches!(o, PinOutcome::Full)).count(), 3);
    let pins = store.pins(c.id, 0).await.unwrap();
    assert_eq!(pins.len(), 3);
    assert!(pins.windows(2).all(|w| w[0].0.pinned_at >= w[1].0.pinned_at), "newest pin first");
    assert!(pins.iter().all(|(pin, message)| pin.message_id == message.id));
    // The floor hides what the reader may not see.
    assert_eq!(store.pins(c.id, 1).await.unwrap().len(), 2);
    assert!(store.unpin(c.id, ids[0]).await.unwrap());
    assert!(!store.unpin(c.id, ids[0]).await.unwrap());
    assert_eq!(store.pins(c.id, 0).await.unwrap().len(), 2);
}

/// A search of `conversations`, all of each.
fn search(conversations: &[Uuid], terms: &[&str]) -> SearchQuery {
    SearchQuery {
        scopes: conversations.iter().map(|&conversation_id| SearchScope { conversation_id, floor: 0 }).collect(),
        terms: terms.iter().map(|t| t.to_string()).collect(),
        after: None,
        limit: 20,
    }
}

async fn found(store: &Arc<dyn Storage>, query: SearchQuery) -> Vec<String> {
    store.search_messages(&query).await.unwrap().into_iter().map(|m| m.content.unwrap_or_default()).collect()
}

/// The floors of `user`'s searchable conversations.
async fn scope(store: &Arc<dyn Storage>, user: Uuid) -> Vec<(Uuid, i64)> {
    let mut scope: Vec<(Uuid, i64)> =
        store.search_scope(user).await.unwrap().into_iter().map(|s| (s.conversation_id, s.floor)).collect();
    scope.sort();
    scope
}

pub async fn search_matches_word_prefixes_in_the_given_conversations(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    let (other, _) = store.find_or_create_direct(&conversation(ConversationKind::Direct, u[1], 0), u[2]).await.unwrap();
    let texts = [
        "Deploy the release tonight",
        "the RELEASE notes are ready",
        "สวัสดีครับ ทดสอบ ระบบค้นหา",
        "café au lait, naïve plan",
        "prerelease builds only",
        "hello-world and e-mail",
    ];
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let m = NewMessage { content: (*text).into(), ..message(group.id, u[i % 2], &format!("s{i}"), i as i64 + 1) };
        send(&store, &m).await;
        ids.push(m.id);
    }
    let secret = NewMessage { content: "release plans for two".into(), ..message(other.id, u[2], "x", 20) };
    send(&store, &secret).await;
    let g = [group.id];

    // Word prefixes, any case, newest first; a word inside another word is no match.
    assert_eq!(found(&store, search(&g, &["releas"])).await, [texts[1], texts[0]]);
    assert_eq!(found(&store, search(&g, &["release", "notes"])).await, [texts[1]], "every term");
    assert_eq!(found(&store, search(&g, &["สวัสดี"])).await, [texts[2]], "Thai, a word prefix");
    assert_eq!(found(&store, search(&g, &["ทดสอบ"])).await, [texts[2]]);
    assert_eq!(found(&store, search(&g, &["café"])).await, [texts[3]]);
    assert_eq!(found(&store, search(&g, &["world"])).await, [texts[5]]);
    assert!(found(&store, search(&g, &["lease"])).await.is_empty());
    // The given conversations only.
    assert_eq!(
        found(&store, search(&[group.id, other.id], &["release"])).await,
        ["release plans for two", texts[1], texts[0]]
    );
    assert!(found(&store, search(&[], &["release"])).await.is_empty());
    // Pages: after a cursor.
    let page = SearchQuery { limit: 1, ..search(&g, &["release"]) };
    let first = store.search_messages(&page).await.unwrap();
    let after = Some(first[0].id);
    assert_eq!(found(&store, SearchQuery { after, ..page.clone() }).await, [texts[0]]);
    let both = SearchQuery { limit: 2, ..search(&[group.id, other.id], &["release"]) };
    let first = store.search_messages(&both).await.unwrap();
    let after = Some(first[1].id);
    assert_eq!(found(&store, SearchQuery { after, ..both }).await, [texts[0]], "across conversations");
    // Each conversation above its floor only (cleared, joined later).
    let floors = |floor| SearchQuery {
        scopes: vec![
            SearchScope { conversation_id: group.id, floor },
            SearchScope { conversation_id: other.id, floor: 1 },
        ],
        ..search(&[], &["release"])
    };
    assert_eq!(found(&store, floors(1)).await, [texts[1]], "seq 1 is at the floor");
    assert!(found(&store, floors(2)).await.is_empty());
    // Edits and deletes show at once.
    store.edit_message(ids[0], "Deploy the build tonight", None, at(30)).await.unwrap();
    assert_eq!(found(&store, search(&g, &["release"])).await, [texts[1]]);
    assert_eq!(found(&store, search(&g, &["build"])).await, [texts[4], "Deploy the build tonight"]);
    store.delete_message(ids[1], at(31)).await.unwrap();
    assert!(found(&store, search(&g, &["release"])).await.is_empty());
}

/// What each user may search: their live conversations, each with the `seq` at or below which
/// its messages are not theirs (cleared, before they joined).
pub async fn search_scope_is_the_users_live_conversations_with_their_floors(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    let (other, _) = store.find_or_create_direct(&conversation(ConversationKind::Direct, u[1], 0), u[2]).await.unwrap();
    for i in 0..3 {
        send(&store, &message(group.id, u[0], &format!("g{i}"), i + 1)).await;
    }
    let mut expected = vec![(group.id, 0), (other.id, 0)];
    expected.sort();
    assert_eq!(scope(&store, u[1]).await, expected);
    store.clear_history(group.id, Some(u[1]), at(10)).await.unwrap();
    store.add_members(group.id, &[u[2]], 100, at(11)).await.unwrap();
    assert!(scope(&store, u[1]).await.contains(&(group.id, 3)), "cleared at 3");
    assert!(scope(&store, u[2]).await.contains(&(group.id, 3)), "joined at 3");
    assert_eq!(scope(&store, u[0]).await, [(group.id, 0)]);
    store.soft_delete_conversation(other.id, at(12)).await.unwrap();
    assert_eq!(scope(&store, u[2]).await, [(group.id, 3)], "a deleted conversation is not searched");
}
