//! Missed messages: replay on connect, truncation, `sync`, and the shared rate limit.

use serde_json::json;

use crate::support::{Mode, TestApp};
use crate::{WAIT, connect, group, send};

async fn spawn(mode: Mode, vars: &[(&str, &str)]) -> Option<TestApp> {
    TestApp::try_spawn_with(mode, vars).await
}

macro_rules! both {
    ($($name:ident),*) => {
        mod embedded { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(crate::support::Mode::Embedded).await }
        )* }
        mod production { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(crate::support::Mode::Production).await }
        )* }
        mod replicated { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(crate::support::Mode::Replicated).await }
        )* }
    };
}

both!(
    reconnecting_while_messages_keep_coming_skips_nothing,
    a_silent_death_replays_what_was_emitted_to_the_dead_connection,
    an_offline_user_gets_what_three_others_sent_once_in_order,
    more_than_a_hundred_missed_messages_are_truncated,
    sync_answers_through_its_ack,
    the_message_rate_limit_spans_sockets_and_rest
);

async fn an_offline_user_gets_what_three_others_sent_once_in_order(mode: Mode) {
    let Some(app) = spawn(mode, &[]).await else { return };
    let bea = app.register("Bea").await;
    let others = [app.register("Al").await, app.register("Cy").await, app.register("Di").await];
    let conversation = group(&others[0], &[&bea, &others[1], &others[2]]).await;
    // Bea is online once (nothing to replay), then goes away.
    connect(&app, &bea).await.disconnect().await;
    for round in 0..3 {
        for (i, sender) in others.iter().enumerate() {
            let socket = connect(&app, sender).await;
            let ack = send(&socket, conversation, &format!("{round}-{i}"), &format!("from {i} #{round}")).await;
            assert_eq!(ack["ok"], true, "{ack}");
        }
    }
    let socket = crate::connect_raw(&app, Some(json!({"token": bea.token}))).await;
    socket.expect_event("auth:success", WAIT).await;
    let mut seqs = Vec::new();
    for _ in 0..9 {
        let received = socket.expect_event("message:received", WAIT).await;
        assert_eq!(received["message"]["conversationId"], conversation.to_string());
        seqs.push(received["message"]["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>(), "every message once, in seq order");
    let summary = socket.expect_event("sync:complete", WAIT).await;
    assert_eq!(summary, json!({"messages": 9, "conversations": 1, "truncated": []}));
    socket.disconnect().await;
    // Nothing is replayed twice.
    let again = crate::connect_raw(&app, Some(json!({"token": bea.token}))).await;
    again.expect_event("auth:success", WAIT).await;
    assert_eq!(again.expect_event("sync:complete", WAIT).await["messages"], 0);
}

async fn more_than_a_hundred_missed_messages_are_truncated(mode: Mode) {
    let Some(app) = spawn(mode, &[("MESSAGE_RATE_PER_MIN", "100000")]).await else { return };
    let bea = app.register("Bea").await;
    let al = app.register("Al").await;
    let conversation = group(&al, &[&bea]).await;
    let socket = connect(&app, &al).await;
    for i in 0..105 {
        assert_eq!(send(&socket, conversation, &format!("m{i}"), "many").await["ok"], true);
    }
    let bea_socket = crate::connect_raw(&app, Some(json!({"token": bea.token}))).await;
    bea_socket.expect_event("auth:success", WAIT).await;
    for expected in 1..=100 {
        let received = bea_socket.expect_event("message:received", WAIT).await;
        assert_eq!(received["message"]["seq"], expected);
    }
    let summary = bea_socket.expect_event("sync:complete", WAIT).await;
    assert_eq!(summary, json!({"messages": 100, "conversations": 1, "truncated": [conversation]}));
    let page = bea.client.get(&format!("/api/conversations/{conversation}/messages?afterSeq=100")).await;
    let rest: Vec<i64> = page.body["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(rest, [101, 102, 103, 104, 105], "the client pages the rest over REST");
}

async fn sync_answers_through_its_ack(mode: Mode) {
    let Some(app) = spawn(mode, &[]).await else { return };
    let al = app.register("Al").await;
    let bea = app.register("Bea").await;
    let conversation = group(&al, &[&bea]).await;
    let socket = connect(&app, &al).await;
    for i in 0..4 {
        send(&socket, conversation, &format!("s{i}"), "x").await;
    }
    let bea_socket = connect(&app, &bea).await;
    let ack = bea_socket
        .emit_with_ack("sync", json!({"conversations": [{"conversationId": conversation, "afterSeq": 2}]}), WAIT)
        .await
        .unwrap();
    let seqs: Vec<i64> =
        ack["data"]["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [3, 4]);
    let since = ack["data"]["messages"][0]["createdAt"].clone();
    let by_time = bea_socket.emit_with_ack("sync", json!({"since": "2000-01-01T00:00:00.000Z"}), WAIT).await.unwrap();
    assert_eq!(by_time["data"]["messages"].as_array().unwrap().len(), 4);
    assert!(since.is_string());
    for bad in [
        json!({}),
        json!({"conversations": "x"}),
        json!({"since": "yesterday"}),
        json!({"conversations": [{"conversationId": "x"}]}),
    ] {
        let refused = bea_socket.emit_with_ack("sync", bad.clone(), WAIT).await.unwrap();
        assert_eq!(refused["error"]["code"], "VALIDATION_ERROR", "{bad}");
    }
    let stranger = app.register("Eve").await;
    let eve_socket = connect(&app, &stranger).await;
    let refused = eve_socket
        .emit_with_ack("sync", json!({"conversations": [{"conversationId": conversation, "afterSeq": 0}]}), WAIT)
        .await
        .unwrap();
    assert_eq!(refused["error"]["code"], "NOT_IN_CONVERSATION");
}

async fn the_message_rate_limit_spans_sockets_and_rest(mode: Mode) {
    let Some(app) = spawn(mode, &[("MESSAGE_RATE_PER_MIN", "3")]).await else { return };
    let al = app.register("Al").await;
    let bea = app.register("Bea").await;
    let conversation = group(&al, &[&bea]).await;
    let (one, two) = (connect(&app, &al).await, connect(&app, &al).await);
    assert_eq!(send(&one, conversation, "1", "a").await["ok"], true);
    assert_eq!(send(&two, conversation, "2", "b").await["ok"], true);
    let path = format!("/api/conversations/{conversation}/messages");
    al.client.post(&path, json!({"clientMessageId": "3", "content": "c"})).await.assert_status(201);
    let refused = send(&one, conversation, "4", "d").await;
    assert_eq!(refused["error"]["code"], "RATE_LIMITED");
    assert_eq!(one.expect_event("message:error", WAIT).await["code"], "RATE_LIMITED");
    let over_rest = al.client.post(&path, json!({"clientMessageId": "5", "content": "e"})).await;
    over_rest.assert_error(429, "RATE_LIMITED");
    assert!(over_rest.header("retry-after").is_some());
    let retry = send(&one, conversation, "1", "a").await;
    assert_eq!(
        (retry["ok"].clone(), retry["data"]["duplicate"].clone()),
        (json!(true), json!(true)),
        "a retry of a stored message is answered, not refused: {retry}"
    );
    app.clock.advance(std::time::Duration::from_secs(20));
    assert_eq!(send(&two, conversation, "6", "f").await["ok"], true, "a token refills every 20 s at 3/min");
}

/// A socket that (re)connects while messages keep arriving on the same replica gets all it
/// missed: a message emitted to it before its replay was read used to move its watermark past
/// everything the replay had yet to send (issue 17, found by the rolling-restart test).
async fn reconnecting_while_messages_keep_coming_skips_nothing(mode: Mode) {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    let vars = [("MESSAGE_RATE_PER_MIN", "1000000"), ("SOCKET_EVENTS_PER_SEC", "0")];
    let Some(app) = spawn(mode, &vars).await else { return };
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = group(&bob, &[&ann]).await;
    let bob_socket = connect(&app, &bob).await;
    let (last_tx, mut last_rx) = tokio::sync::watch::channel(0i64);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let ack = send(&bob_socket, conversation, &format!("c{n}"), &format!("m{n}")).await;
                assert_eq!(ack["ok"], true, "{ack}");
                let _ = last_tx.send(ack["data"]["message"]["seq"].as_i64().expect("a seq"));
                n += 1;
            }
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    let mut note = |events: Vec<(String, serde_json::Value)>| {
        for (name, data) in events {
            if name == "message:received" {
                seen.insert(data["message"]["seq"].as_i64().unwrap());
            }
        }
    };
    for _ in 0..40 {
        // Away while Bob stores two more: there is always something to replay.
        let away_from = *last_rx.borrow();
        last_rx.wait_for(|last| *last >= away_from + 2).await.unwrap();
        let socket = connect(&app, &ann).await;
        note(socket.disconnect_and_drain().await);
    }
    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    let last = *last_rx.borrow();
    let socket = connect(&app, &ann).await;
    note(socket.disconnect_and_drain().await);
    let missing: Vec<i64> = (1..=last).filter(|seq| !seen.contains(seq)).collect();
    assert!(missing.is_empty(), "never reached Ann, live or replayed: {missing:?} of 1..={last}");
}

/// Messages emitted to a connection that then died silently (it stopped answering pings) are
/// replayed when the user comes back: their watermark moved as they were emitted, and goes
/// back to what is older than the silent-loss margin.
async fn a_silent_death_replays_what_was_emitted_to_the_dead_connection(mode: Mode) {
    let vars = [("SOCKET_PING_INTERVAL_MS", "300"), ("SOCKET_PING_TIMEOUT_MS", "200"), ("PRESENCE_GRACE_SECS", "0")];
    let Some(app) = spawn(mode, &vars).await else { return };
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = crate::direct(&bob, &ann).await;
    let ann_socket = connect(&app, &ann).await;
    let bob_socket = connect(&app, &bob).await;
    let ack = send(&bob_socket, conversation, "lost?", "did you get this?").await;
    assert_eq!(ack["ok"], true, "{ack}");
    let live = ann_socket.expect_event("message:received", WAIT).await;
    assert_eq!(live["message"]["content"], "did you get this?");
    // The connection goes quiet (a phone in a tunnel): the server closes it at its ping timeout.
    ann_socket.go_silent();
    ann_socket.expect_disconnect(std::time::Duration::from_secs(10)).await.unwrap();
    // Bob hears her go offline once her replica settled her socket's end (it does that first).
    loop {
        let update = bob_socket.expect_event("presence:update", WAIT).await;
        if update["userId"] == ann.id.to_string() && update["status"] == "offline" {
            break;
        }
    }
    let again = crate::connect_raw(&app, Some(json!({"token": ann.token}))).await;
    let replayed = again.expect_event("message:received", WAIT).await;
    assert_eq!(replayed["message"]["content"], "did you get this?", "replayed: the dead connection may have lost it");
    assert_eq!(again.expect_event("sync:complete", WAIT).await["messages"], 1);
}
