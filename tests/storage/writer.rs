//! The group-commit writer when the database refuses one message of a batch: the batch's
//! transaction fails, each message is then stored alone, and only the refused one fails.
//! The refusal is real: a trigger in the test's database rejects the content `poison`.

use std::{collections::BTreeSet, sync::Arc};

use futures_util::future::join_all;
use parley::{
    clock::{ManualClock, SharedClock},
    domain::message_writer::{MessageWriter, NotifyPlanner, Stored},
    error::AppError,
    shared_state::SharedState,
    storage::{
        Storage, models::ConversationKind, postgres::PgStore, push::PushSubscriptionRecord, sqlite::SqliteStore,
    },
};
use sqlx::{Connection, PgConnection, SqliteConnection};

use uuid::Uuid;

use crate::conversations::{at, conversation, message, users};

const SENDS: usize = 20;
const POISONED: usize = 7;

#[tokio::test]
async fn sqlite_one_refused_message_fails_alone_and_the_rest_of_its_batch_is_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("writer.db").display());
    let store = SqliteStore::connect(&url).await.expect("open SQLite");
    let mut admin = SqliteConnection::connect(&url).await.expect("a second connection");
    sqlx::raw_sql(
        "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.content = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poison refused'); END;",
    )
    .execute(&mut admin)
    .await
    .expect("create the trigger");
    one_refused_message_fails_alone(Arc::new(store)).await;
}

#[tokio::test]
async fn postgres_one_refused_message_fails_alone_and_the_rest_of_its_batch_is_stored() {
    if !crate::support::postgres_available().await {
        return;
    }
    let db = crate::support::PgDatabase::create().await;
    let store = PgStore::connect(&db.url).await.expect("open PostgreSQL");
    let mut admin = PgConnection::connect(&db.url).await.expect("a second connection");
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.content = 'poison' THEN RAISE EXCEPTION 'poison refused'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&mut admin)
    .await
    .expect("create the trigger");
    one_refused_message_fails_alone(Arc::new(store)).await;
}

/// On the test's single-threaded runtime the writer task runs only once every send is
/// queued, so the 20 sends are one batch.
async fn one_refused_message_fails_alone(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1]]).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::starting_now());
    let planner = NotifyPlanner { shared: SharedState::in_process(clock), webhooks: false };
    let writer = MessageWriter::spawn(store.clone(), planner, Default::default());
    let sends = (0..SENDS).map(|i| {
        let mut send = message(group.id, u[i % 2], &format!("c{i}"), i as i64);
        if i == POISONED {
            send.content = "poison".into();
        }
        send
    });
    let answers = join_all(sends.map(|send| writer.store(send))).await;

    let mut seqs = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Err(AppError::Internal(err)) if i == POISONED => assert!(err.to_string().contains("not stored"), "{err}"),
            Ok(Stored::Created { record, participants, .. }) if i != POISONED => {
                assert_eq!(record.client_message_id, format!("c{i}"));
                assert_eq!(participants.len(), 2);
                seqs.push(record.seq);
            }
            Ok(_) => panic!("send {i}: unexpected outcome"),
            Err(err) => panic!("send {i}: {err}"),
        }
    }
    assert_eq!(seqs, (1..SENDS as i64).collect::<Vec<_>>(), "the others in order, gapless");
    let stored =
        store.history(group.id, 0, parley::storage::models::HistoryQuery::After { seq: 0 }, 100).await.unwrap();
    assert_eq!(stored.len(), SENDS - 1);
    assert!(stored.iter().all(|m| m.content.as_deref() != Some("poison")));
    assert_eq!(store.conversation(group.id).await.unwrap().unwrap().last_seq, SENDS as i64 - 1);
}

/// What one send through `writer` came to: the participants it went to and whether outbox
/// rows (pushes) were planned with it, or the refusal.
async fn sent(
    writer: &MessageWriter,
    conversation: Uuid,
    sender: Uuid,
    n: &mut i64,
) -> Result<(BTreeSet<Uuid>, bool), AppError> {
    *n += 1;
    match writer.store(message(conversation, sender, &format!("cache-{n}"), *n)).await? {
        Stored::Created { participants, notified, .. } => Ok((participants.into_iter().collect(), notified)),
        Stored::Duplicate(_) => panic!("send {n} was taken for a retry"),
    }
}

fn subscription(user: Uuid, endpoint: &str) -> PushSubscriptionRecord {
    PushSubscriptionRecord {
        id: Uuid::now_v7(),
        user_id: user,
        endpoint: endpoint.into(),
        p256dh: "key".into(),
        auth: "secret".into(),
        user_agent: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// The writer keeps each conversation's members, blocks and push subscribers between
/// batches; every change to them, made outside the writer (by a request, or on another
/// replica), is seen by its next send. Each change comes right after a send that warmed the
/// cache, so a cache that missed the change would answer with the old members.
pub async fn cached_send_checks_see_every_change_to_members_blocks_and_subscriptions(store: Arc<dyn Storage>) {
    let u = users(&store, 4).await;
    let group = store.create_group(&conversation(ConversationKind::Group, u[0], 0), &[u[1], u[2]]).await.unwrap();
    let (direct, _) =
        store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::starting_now());
    // Nobody is connected: every recipient with a push subscription gets a push.
    let planner = NotifyPlanner { shared: SharedState::in_process(clock), webhooks: false };
    let writer = MessageWriter::spawn(store.clone(), planner, Default::default());
    let n = &mut 0;
    let members = |ids: &[usize]| ids.iter().map(|i| u[*i]).collect::<BTreeSet<_>>();

    assert_eq!(sent(&writer, group.id, u[0], n).await.unwrap(), (members(&[0, 1, 2]), false));
    assert!(store.leave(group.id, u[2], at(1)).await.unwrap().left);
    assert!(matches!(sent(&writer, group.id, u[2], n).await, Err(AppError::NotInConversation)), "left");
    assert_eq!(sent(&writer, group.id, u[0], n).await.unwrap(), (members(&[0, 1]), false));
    let added = store.add_members(group.id, &[u[3]], 100, at(2)).await.unwrap();
    assert_eq!(added.added, [u[3]]);
    assert_eq!(sent(&writer, group.id, u[3], n).await.unwrap(), (members(&[0, 1, 3]), false), "joined");

    assert_eq!(sent(&writer, direct.id, u[0], n).await.unwrap(), (members(&[0, 1]), false));
    store.block(u[1], u[0], at(3)).await.unwrap();
    assert!(matches!(sent(&writer, direct.id, u[0], n).await, Err(AppError::Blocked(_))), "blocked");
    assert!(store.unblock(u[1], u[0]).await.unwrap());
    assert_eq!(sent(&writer, direct.id, u[0], n).await.unwrap(), (members(&[0, 1]), false), "unblocked");

    store.upsert_subscription(&subscription(u[1], "https://push.example/u1")).await.unwrap();
    assert_eq!(sent(&writer, direct.id, u[0], n).await.unwrap(), (members(&[0, 1]), true), "u1 subscribed");
    assert_eq!(sent(&writer, group.id, u[0], n).await.unwrap(), (members(&[0, 1, 3]), true));
    // The same browser signs in as u3: the subscription moves, u1 has none left.
    store.upsert_subscription(&subscription(u[3], "https://push.example/u1")).await.unwrap();
    assert_eq!(sent(&writer, direct.id, u[0], n).await.unwrap(), (members(&[0, 1]), false), "moved to u3");
    assert_eq!(sent(&writer, group.id, u[0], n).await.unwrap(), (members(&[0, 1, 3]), true));
    assert!(store.delete_subscription(u[3], "https://push.example/u1").await.unwrap());
    assert_eq!(sent(&writer, group.id, u[0], n).await.unwrap(), (members(&[0, 1, 3]), false), "unsubscribed");

    store.soft_delete_conversation(group.id, at(4)).await.unwrap();
    assert!(matches!(sent(&writer, group.id, u[0], n).await, Err(AppError::NotFound(_))), "deleted");
}
