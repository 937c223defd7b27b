//! Reaching people who are offline (SPEC §4.4), against a real Web Push receiver
//! (`support::push`: it decrypts every push and checks its VAPID token) and a webhook
//! receiver, in every mode: who gets a push and who does not, a gone subscription, a retried
//! failure, coalesced group pushes, signed webhooks, and (with two replicas) each push sent
//! once, and sent by the survivor when the replica sending it dies.
//!
//! "Nothing was sent" is proven through the outbox: its rows are written in the same
//! transaction as the message, so once a send is acked, a push that is not in the outbox
//! will never go out; the tests wait for the outbox to be empty and then look at what the
//! receiver got.

use std::time::Duration;

use parley::clock::Clock as _;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    Mode, TestApp,
    http::TestUser,
    push::{Answer, PushReceiver, decrypt, signature_verifies},
};
use crate::{WAIT, direct, group};

const WEBHOOK_SECRET: &str = "webhook-secret-for-the-tests-0123";
/// A fixed VAPID key, so that both replicas sign with it (as production requires).
const VAPID_PRIVATE_KEY: &str = "Bwc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc";

macro_rules! push_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some((app, receiver)) = super::spawn(crate::support::Mode::Embedded).await { super::$name(app, receiver).await }
            }
        )* }
        mod production { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some((app, receiver)) = super::spawn(crate::support::Mode::Production).await { super::$name(app, receiver).await }
            }
        )* }
        mod replicated { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some((app, receiver)) = super::spawn(crate::support::Mode::Replicated).await { super::$name(app, receiver).await }
            }
        )* }
    };
}

push_tests!(
    offline_users_get_a_push_and_online_muted_or_blocking_ones_none,
    a_gone_subscription_is_removed_and_a_failed_push_is_retried,
    group_pushes_are_coalesced_per_conversation,
    webhooks_are_signed_and_retried,
    each_push_is_sent_once,
    a_push_that_keeps_failing_is_dropped_after_a_day,
);

async fn spawn(mode: Mode) -> Option<(TestApp, PushReceiver)> {
    let receiver = PushReceiver::start().await;
    let hook = format!("{}/hook", receiver.base);
    let vars = [
        ("WEBHOOK_URL", hook.as_str()),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("VAPID_PRIVATE_KEY", VAPID_PRIVATE_KEY),
        ("MESSAGE_RATE_PER_MIN", "100000"),
    ];
    let app = TestApp::try_spawn_with(mode, &vars).await?;
    let key = app.client().get("/api/push/vapid-public-key").await;
    receiver.trust(key.assert_status(200)["publicKey"].as_str().expect("publicKey"));
    Some((app, receiver))
}

/// Subscribes `user` with a new subscription of the receiver's; its index there.
async fn subscribe(user: &TestUser, receiver: &PushReceiver) -> usize {
    let (index, subscription) = receiver.subscription();
    let reply = user.client.post("/api/push/subscriptions", subscription).await;
    reply.assert_status(201);
    index
}

/// A REST send from `user`; the message id.
async fn send(user: &TestUser, conversation: Uuid, content: &str) -> Uuid {
    let body = json!({"clientMessageId": Uuid::new_v4().to_string(), "content": content});
    let reply = user.client.post(&format!("/api/conversations/{conversation}/messages"), body).await;
    reply.assert_status(201)["id"].as_str().and_then(|id| id.parse().ok()).expect("an id")
}

/// Waits until every outbox row was sent (or dropped): what the receivers got is then all
/// they will get.
async fn drained(app: &TestApp) {
    let storage = app.state.platform.storage.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let depth = storage.outbox_stats(app.clock.now()).await.expect("outbox stats").depth;
        if depth == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the outbox still holds {depth} rows");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Push rows in the outbox (sent ones are deleted).
async fn pushes_pending(app: &TestApp) -> i64 {
    app.state.platform.storage.outbox_stats(app.clock.now()).await.expect("outbox stats").pushes
}

fn ids(pushes: &[crate::support::push::Push]) -> Vec<Value> {
    pushes.iter().map(|p| p.payload["messageId"].clone()).collect()
}

async fn offline_users_get_a_push_and_online_muted_or_blocking_ones_none(app: TestApp, receiver: PushReceiver) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let chat = direct(&ann, &bob).await;
    let bobs = subscribe(&bob, &receiver).await;
    // Bob has no socket: he gets a push, with Ann's name and the text.
    let first = send(&ann, chat, "are you there?").await;
    receiver.wait_until("bob's push", |r| r.pushes_to(bobs).len() == 1).await;
    let push = &receiver.pushes_to(bobs)[0].payload;
    assert_eq!(
        push,
        &json!({"type": "message", "conversationId": chat, "messageId": first, "senderName": "Ann",
            "preview": "are you there?", "count": 1})
    );
    drained(&app).await;

    // Online (a socket on any replica): no push. The outbox row would have been written
    // with the message, so an empty outbox right after the send means none will go out.
    let socket = crate::connect(&app, &bob).await;
    send(&ann, chat, "now you are here").await;
    assert_eq!(pushes_pending(&app).await, 0, "no push row was written for an online user");
    socket.disconnect().await;
    drained(&app).await;
    // Presence forgets a closed socket at once; the grace period is only for announcements.
    // Muted: no push, unless (hook for mentions) they are mentioned.
    bob.client
        .put(&format!("/api/conversations/{chat}/mute"), json!({"until": "2999-01-01T00:00:00Z"}))
        .await
        .assert_status(200);
    send(&ann, chat, "psst").await;
    assert_eq!(pushes_pending(&app).await, 0, "no push row for a muted conversation");
    drained(&app).await;
    // A group where Bob blocked Cat: Cat's messages push nothing to Bob, Ann's do.
    let crew = group(&ann, &[&bob, &cat]).await;
    bob.client.post_empty(&format!("/api/users/{}/block", cat.id)).await.assert_status(204);
    send(&cat, crew, "from someone bob blocked").await;
    assert_eq!(pushes_pending(&app).await, 0, "no push row from a blocked sender");
    let from_ann = send(&ann, crew, "from ann").await;
    receiver.wait_until("the group push", |r| r.pushes_to(bobs).len() == 2).await;
    drained(&app).await;
    let got = receiver.pushes_to(bobs);
    assert_eq!(ids(&got), [json!(first), json!(from_ann)], "muted, online and blocked sends pushed nothing");
    // Ann, Cat: never subscribed, nothing.
    assert_eq!(receiver.pushes().len(), 2);
}

async fn a_gone_subscription_is_removed_and_a_failed_push_is_retried(app: TestApp, receiver: PushReceiver) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let chat = direct(&ann, &bob).await;
    let gone = subscribe(&bob, &receiver).await;
    let flaky = subscribe(&bob, &receiver).await;
    receiver.answer(gone, &[Answer::Status(410)]);
    receiver.answer(flaky, &[Answer::Status(500)]);
    let message = send(&ann, chat, "hello").await;
    receiver.wait_until("both endpoints were tried", |r| r.push_requests() == 2).await;
    // 410: the subscription is deleted.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = bob.client.get("/api/push/subscriptions").await;
        if list.body["subscriptions"].as_array().map(Vec::len) == Some(1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the gone subscription was not removed: {}", list.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 500: retried with backoff (2 s ± 50 % on the app's clock), then delivered.
    assert!(receiver.pushes().is_empty());
    held_back(&app).await;
    app.clock.advance(Duration::from_secs(4));
    receiver.wait_until("the retried push", |r| r.pushes_to(flaky).len() == 1).await;
    assert_eq!(receiver.pushes_to(flaky)[0].payload["messageId"], json!(message));
    drained(&app).await;
    assert_eq!(receiver.push_requests(), 3, "one try each, one retry");
}

/// Waits until the one webhook left is rescheduled for later.
async fn webhook_held_back(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = app.state.platform.storage.outbox_stats(app.clock.now()).await.expect("outbox stats");
        if stats.depth == 1 && stats.due == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the failed webhook was not rescheduled: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the pushes left in the outbox are all held back (rescheduled for later).
async fn held_back(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while pushes_due_now(app).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the pushes were not rescheduled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn group_pushes_are_coalesced_per_conversation(app: TestApp, receiver: PushReceiver) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let crew = group(&ann, &[&bob, &cat]).await;
    let bobs = subscribe(&bob, &receiver).await;
    send(&ann, crew, "first").await;
    receiver.wait_until("the first push", |r| r.pushes_to(bobs).len() == 1).await;
    assert_eq!(receiver.pushes_to(bobs)[0].payload["count"], 1);
    // Within the next 10 s: held back, then one push that counts them, for the latest.
    send(&cat, crew, "second").await;
    send(&ann, crew, "third").await;
    let last = send(&cat, crew, "fourth").await;
    // The sender sees them, and holds them back until the window closes.
    held_back(&app).await;
    assert_eq!(receiver.pushes_to(bobs).len(), 1, "nothing more within the window");
    app.clock.advance(Duration::from_secs(10));
    receiver.wait_until("the coalesced push", |r| r.pushes_to(bobs).len() == 2).await;
    let coalesced = &receiver.pushes_to(bobs)[1].payload;
    assert_eq!((coalesced["count"].clone(), coalesced["messageId"].clone()), (json!(3), json!(last)), "{coalesced}");
    assert_eq!(coalesced["preview"], "fourth");
    drained(&app).await;
    assert_eq!(receiver.pushes_to(bobs).len(), 2);
}

/// Push rows due at the app's now (held-back ones are due when their window closes).
async fn pushes_due_now(app: &TestApp) -> i64 {
    app.state.platform.storage.outbox_stats(app.clock.now()).await.expect("outbox stats").pushes_due
}

async fn webhooks_are_signed_and_retried(app: TestApp, receiver: PushReceiver) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let chat = direct(&ann, &bob).await;
    receiver.answer_webhooks(&[503]);
    let message = send(&ann, chat, "to the bridge").await;
    // message.created and message.offline for Bob (no socket); one of them got a 503 and
    // is retried (2 s ± 50 % later on the app's clock).
    receiver.wait_until("both webhooks were tried", |r| r.requests() == 2).await;
    assert_eq!(receiver.webhooks().len(), 1);
    webhook_held_back(&app).await;
    app.clock.advance(Duration::from_secs(4));
    receiver.wait_until("the retried webhook", |r| r.webhooks().len() == 2).await;
    let hooks = receiver.webhooks();
    for hook in &hooks {
        assert!(signature_verifies(WEBHOOK_SECRET.as_bytes(), &hook.body, &hook.signature), "{}", hook.signature);
        let mut tampered = hook.body.to_vec();
        tampered[10] ^= 1;
        assert!(!signature_verifies(WEBHOOK_SECRET.as_bytes(), &tampered, &hook.signature), "tampering shows");
        let body: Value = serde_json::from_slice(&hook.body).expect("JSON");
        assert_eq!(
            (body["event"].as_str(), body["deliveryId"].as_str()),
            (Some(hook.event.as_str()), Some(hook.delivery.as_str()))
        );
        assert_eq!(body["data"]["message"]["id"], json!(message));
    }
    let offline = hooks.iter().find(|h| h.event == "message.offline").expect("offline");
    let body: Value = serde_json::from_slice(&offline.body).expect("JSON");
    assert_eq!(body["data"]["userId"], json!(bob.id));
    assert_ne!(hooks[0].delivery, hooks[1].delivery, "a delivery id each");
    // A member added to a group.
    let crew = group(&ann, &[&bob]).await;
    let add = json!({"userIds": [cat.id]});
    ann.client.post(&format!("/api/conversations/{crew}/participants"), add).await.assert_status(200);
    receiver.wait_until("member_added", |r| r.webhooks().iter().any(|w| w.event == "conversation.member_added")).await;
    let added = receiver.webhooks().into_iter().find(|w| w.event == "conversation.member_added").expect("added");
    let body: Value = serde_json::from_slice(&added.body).expect("JSON");
    assert_eq!(
        (body["data"]["conversationId"].clone(), body["data"]["userIds"].clone()),
        (json!(crew), json!([cat.id]))
    );
    assert!(signature_verifies(WEBHOOK_SECRET.as_bytes(), &added.body, &added.signature));
}

async fn each_push_is_sent_once(app: TestApp, receiver: PushReceiver) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let chat = direct(&ann, &bob).await;
    let bobs = subscribe(&bob, &receiver).await;
    // Sends through both replicas (in replicated mode), pushes from both senders.
    let other = app.other.as_ref().map(|other| crate::support::http::Client::new(&other.base).with_token(&ann.token));
    let mut sent = Vec::new();
    for i in 0..20 {
        let body = json!({"clientMessageId": format!("m{i}"), "content": format!("message {i}")});
        let client = match (&other, i % 2) {
            (Some(other), 1) => other.clone(),
            _ => ann.client.clone(),
        };
        let reply = client.post(&format!("/api/conversations/{chat}/messages"), body).await;
        sent.push(reply.assert_status(201)["id"].clone());
    }
    receiver.wait_until("twenty pushes", |r| r.pushes_to(bobs).len() >= 20).await;
    drained(&app).await;
    let mut got = ids(&receiver.pushes_to(bobs));
    got.sort_by_key(|v| v.to_string());
    sent.sort_by_key(|v| v.to_string());
    assert_eq!(got, sent, "each message pushed exactly once");
}

/// The receiver's decryption, checked against RFC 8291 Appendix A.
#[test]
fn the_test_receiver_decrypts_rfc_8291_appendix_a() {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let secret = p256::SecretKey::from_slice(
        &URL_SAFE_NO_PAD.decode("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94").expect("base64"),
    )
    .expect("a key");
    let auth = URL_SAFE_NO_PAD.decode("BTBZMqHH6r4Tts7J_aSIgg").expect("base64");
    let body = URL_SAFE_NO_PAD
        .decode(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        )
        .expect("base64");
    assert_eq!(decrypt(&body, &secret, &auth).expect("decrypts"), b"When I grow up, I want to be a watermelon");
    let mut tampered = body.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(decrypt(&tampered, &secret, &auth).is_err());
}

/// Two replicas: the one sending a push dies in the middle of it; once its claim runs out,
/// the survivor sends the push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_send_leaves_the_push_to_the_survivor() {
    let Some((survivor, receiver)) = spawn(Mode::Production).await else { return };
    let doomed = survivor.replica().await;
    let (ann, bob) = (survivor.register("Ann").await, survivor.register("Bob").await);
    let chat = direct(&ann, &bob).await;
    let bobs = subscribe(&bob, &receiver).await;
    // The push service holds the first request; the doomed replica makes it.
    receiver.answer(bobs, &[Answer::Slow(Duration::from_secs(30))]);
    let via_doomed = crate::support::http::Client::new(&doomed.base).with_token(&ann.token);
    let body = json!({"clientMessageId": "m-1", "content": "before the crash"});
    let sent = via_doomed.post(&format!("/api/conversations/{chat}/messages"), body).await;
    let message = sent.assert_status(201)["id"].clone();
    receiver.wait_until("the doomed replica's request", |r| r.push_requests() == 1).await;
    drop(doomed);
    assert!(receiver.pushes_to(bobs).is_empty(), "the held request never completed");
    // The claim (a lease of 60 s on the app's clock) runs out; the survivor takes the row.
    survivor.clock.advance(Duration::from_secs(61));
    receiver.wait_until("the survivor's push", |r| r.pushes_to(bobs).len() == 1).await;
    assert_eq!(receiver.pushes_to(bobs)[0].payload["messageId"], message);
    drained(&survivor).await;
}

async fn a_push_that_keeps_failing_is_dropped_after_a_day(app: TestApp, receiver: PushReceiver) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let chat = direct(&ann, &bob).await;
    let bobs = subscribe(&bob, &receiver).await;
    receiver.answer(bobs, &[Answer::Status(503); 3]);
    send(&ann, chat, "will never arrive").await;
    receiver.wait_until("the first try", |r| r.push_requests() == 1).await;
    held_back(&app).await;
    // Still retried an hour later (the backoff doubles: 2 s, 4 s, …)…
    app.clock.advance(Duration::from_secs(3600));
    receiver.clock_moved(Duration::from_secs(3600));
    receiver.wait_until("a retry", |r| r.push_requests() == 2).await;
    held_back(&app).await;
    assert_eq!(pushes_pending(&app).await, 1);
    // …but not past a day: the next failure drops it.
    app.clock.advance(Duration::from_secs(24 * 3600));
    receiver.clock_moved(Duration::from_secs(24 * 3600));
    receiver.wait_until("the last try", |r| r.push_requests() == 3).await;
    drained(&app).await;
    assert!(receiver.pushes().is_empty());
    // (Bob's access token expired a day ago on the app's clock: ask the database.)
    let kept = app.state.platform.storage.subscriptions_of(bob.id).await.expect("subscriptions");
    assert_eq!(kept.len(), 1, "a 503 keeps the subscription");
}
