//! The shared-state contract, run on the in-process implementation always and on Redis
//! whenever it is reachable (always under CI). Time is a manual clock: windows and expiries
//! are crossed by moving it, never by sleeping.

#[path = "../support/mod.rs"]
mod support;

use std::{sync::Arc, time::Duration};

use chrono::Duration as ChronoDuration;
use parley::{
    clock::{Clock, ManualClock},
    shared_state::{Admission, Quota, SharedState},
};

async fn in_process(clock: &ManualClock) -> SharedState {
    SharedState::in_process(Arc::new(clock.clone()))
}

async fn redis(clock: &ManualClock) -> Option<SharedState> {
    if !support::redis_available().await {
        return None;
    }
    let prefix = format!("parley-test:{}:", uuid::Uuid::new_v4().simple());
    Some(SharedState::redis(&support::redis_url(), &prefix, Arc::new(clock.clone())).await.expect("connect to Redis"))
}

macro_rules! state_tests {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $name() {
                    let clock = parley::clock::ManualClock::starting_now();
                    let state = crate::in_process(&clock).await;
                    crate::$name(state, clock).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let clock = parley::clock::ManualClock::starting_now();
                    if let Some(state) = crate::redis(&clock).await {
                        crate::$name(state, clock).await;
                    }
                }
            )*
        }
    };
}

state_tests!(
    revoked_tokens_stay_revoked_until_they_expire,
    tokens_already_expired_are_not_kept,
    a_window_admits_its_limit_then_says_when_to_retry,
    released_attempts_free_their_slot,
    windows_are_per_key,
    parallel_attempts_never_overshoot_the_window,
    a_bucket_allows_its_burst_then_refills_evenly,
    a_penalty_runs_its_time_and_the_longest_of_several_counts,
    health_reports_the_backend,
    presence_aggregates_devices_best_status_first,
    presence_entries_expire_unless_renewed,
    presence_remembers_what_was_announced,
    typing_rebroadcasts_at_most_once_a_second,
    typing_expires_once_at_its_deadline_and_each_start_resets_it,
    typing_stops_and_lists_per_conversation,
);

use parley::shared_state::{CONNECTION_TTL, PresenceStatus};
use uuid::Uuid;

async fn presence_aggregates_devices_best_status_first(state: SharedState, _clock: ManualClock) {
    let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let p = &state.presence;
    assert_eq!(p.states(&[ann]).await.unwrap()[0].status, PresenceStatus::Offline);
    p.touch(ann, "phone", PresenceStatus::Away).await.unwrap();
    assert_eq!(p.states(&[ann]).await.unwrap()[0].status, PresenceStatus::Away);
    p.touch(ann, "laptop", PresenceStatus::Online).await.unwrap();
    let states = p.states(&[ann, bob]).await.unwrap();
    assert_eq!((states[0].status, states[1].status), (PresenceStatus::Online, PresenceStatus::Offline));
    assert!(states[0].last_activity_ms.is_some() && states[1].last_activity_ms.is_none());
    assert_eq!(p.online(&[ann, bob]).await.unwrap(), [ann]);
    p.remove(ann, "laptop").await.unwrap();
    assert_eq!(p.states(&[ann]).await.unwrap()[0].status, PresenceStatus::Away, "the phone is still there");
    p.remove(ann, "phone").await.unwrap();
    assert_eq!(p.states(&[ann]).await.unwrap()[0].status, PresenceStatus::Offline);
}

async fn presence_entries_expire_unless_renewed(state: SharedState, clock: ManualClock) {
    let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
    state.presence.touch(ann, "a", PresenceStatus::Online).await.unwrap();
    state.presence.touch(bob, "b", PresenceStatus::Online).await.unwrap();
    for _ in 0..3 {
        clock.advance(CONNECTION_TTL / 2);
        state.presence.renew(&[(ann, "a".to_owned())]).await.unwrap();
    }
    let states = state.presence.states(&[ann, bob]).await.unwrap();
    assert_eq!(states[0].status, PresenceStatus::Online, "renewed");
    assert_eq!(states[1].status, PresenceStatus::Offline, "its replica stopped renewing it");
}

async fn presence_remembers_what_was_announced(state: SharedState, _clock: ManualClock) {
    let ann = Uuid::now_v7();
    let p = &state.presence;
    assert_eq!(p.announce(ann, PresenceStatus::Online).await.unwrap(), PresenceStatus::Offline);
    assert_eq!(p.announce(ann, PresenceStatus::Away).await.unwrap(), PresenceStatus::Online);
    assert!(p.announced_present().await.unwrap().contains(&ann));
    assert_eq!(p.announce(ann, PresenceStatus::Offline).await.unwrap(), PresenceStatus::Away);
    assert!(!p.announced_present().await.unwrap().contains(&ann));
}

const TTL: Duration = Duration::from_secs(5);
const GAP: Duration = Duration::from_secs(1);

async fn typing_rebroadcasts_at_most_once_a_second(state: SharedState, clock: ManualClock) {
    let (conv, ann) = (Uuid::now_v7(), Uuid::now_v7());
    assert!(state.typing.start(conv, ann, TTL, GAP).await.unwrap(), "the first start is news");
    for _ in 0..50 {
        assert!(!state.typing.start(conv, ann, TTL, GAP).await.unwrap(), "a storm within the second is not");
    }
    clock.advance(GAP);
    assert!(state.typing.start(conv, ann, TTL, GAP).await.unwrap());
    assert!(state.typing.stop(conv, ann).await.unwrap());
    assert!(state.typing.start(conv, ann, TTL, GAP).await.unwrap(), "after a stop, a start is news again");
}

async fn typing_expires_once_at_its_deadline_and_each_start_resets_it(state: SharedState, clock: ManualClock) {
    let (conv, ann, bob) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    state.typing.start(conv, ann, TTL, GAP).await.unwrap();
    clock.advance(Duration::from_secs(4));
    state.typing.start(conv, ann, TTL, GAP).await.unwrap();
    state.typing.start(conv, bob, TTL, GAP).await.unwrap();
    clock.advance(Duration::from_secs(2));
    assert!(state.typing.expire().await.unwrap().is_empty(), "the second start reset the timer");
    clock.advance(Duration::from_secs(3));
    let expired = state.typing.expire().await.unwrap();
    assert_eq!(expired.len(), 2, "{expired:?}");
    assert!(expired.contains(&(conv, ann)) && expired.contains(&(conv, bob)));
    assert!(state.typing.expire().await.unwrap().is_empty(), "each stop is announced once");
    assert_eq!(state.typing.count().await.unwrap(), 0, "nothing is kept past its deadline");
}

async fn typing_stops_and_lists_per_conversation(state: SharedState, _clock: ManualClock) {
    let (one, two, ann, bob) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    state.typing.start(one, ann, TTL, GAP).await.unwrap();
    state.typing.start(one, bob, TTL, GAP).await.unwrap();
    state.typing.start(two, bob, TTL, GAP).await.unwrap();
    let lists = state.typing.typing_in(&[one, two, Uuid::now_v7()]).await.unwrap();
    let mut first = lists[0].clone();
    first.sort();
    let mut expected = vec![ann, bob];
    expected.sort();
    assert_eq!((first, lists[1].clone(), lists[2].clone()), (expected, vec![bob], vec![]));
    assert!(state.typing.stop(one, bob).await.unwrap());
    assert!(!state.typing.stop(one, bob).await.unwrap(), "stopping twice is nothing");
    assert_eq!(state.typing.typing_in(&[one]).await.unwrap()[0], vec![ann]);
    assert_eq!(state.typing.count().await.unwrap(), 2);
}

async fn revoked_tokens_stay_revoked_until_they_expire(state: SharedState, clock: ManualClock) {
    let revocations = &state.revocations;
    assert!(!revocations.is_revoked("jti-1").await.unwrap());
    revocations.revoke("jti-1", clock.now() + ChronoDuration::minutes(15)).await.unwrap();
    assert!(revocations.is_revoked("jti-1").await.unwrap());
    assert!(!revocations.is_revoked("jti-2").await.unwrap());
    revocations.revoke("jti-1", clock.now() + ChronoDuration::minutes(15)).await.unwrap();
    assert!(revocations.is_revoked("jti-1").await.unwrap(), "revoking twice is harmless");
}

async fn tokens_already_expired_are_not_kept(state: SharedState, clock: ManualClock) {
    state.revocations.revoke("old", clock.now() - ChronoDuration::seconds(1)).await.unwrap();
    assert!(!state.revocations.is_revoked("old").await.unwrap());
}

async fn a_window_admits_its_limit_then_says_when_to_retry(state: SharedState, clock: ManualClock) {
    let window = Duration::from_secs(900);
    for i in 0..5 {
        let admission = state.rate_limits.acquire("k", 5, window).await.unwrap();
        assert!(admission.is_admitted(), "attempt {i}");
        clock.advance(Duration::from_secs(10));
    }
    // The oldest attempt was 50 s ago: it leaves the window in 850 s.
    match state.rate_limits.acquire("k", 5, window).await.unwrap() {
        Admission::Denied { retry_after } => assert_eq!(retry_after, Duration::from_secs(850)),
        other => panic!("expected a denial, got {other:?}"),
    }
    clock.advance(Duration::from_secs(849));
    assert!(!state.rate_limits.acquire("k", 5, window).await.unwrap().is_admitted());
    clock.advance(Duration::from_secs(1));
    assert!(state.rate_limits.acquire("k", 5, window).await.unwrap().is_admitted(), "one slot freed");
    assert!(!state.rate_limits.acquire("k", 5, window).await.unwrap().is_admitted());
}

async fn released_attempts_free_their_slot(state: SharedState, _clock: ManualClock) {
    let window = Duration::from_secs(60);
    let Admission::Admitted(first) = state.rate_limits.acquire("r", 2, window).await.unwrap() else {
        panic!("first attempt refused");
    };
    assert!(state.rate_limits.acquire("r", 2, window).await.unwrap().is_admitted());
    assert!(!state.rate_limits.acquire("r", 2, window).await.unwrap().is_admitted());
    state.rate_limits.release("r", &first).await.unwrap();
    assert!(state.rate_limits.acquire("r", 2, window).await.unwrap().is_admitted());
}

async fn windows_are_per_key(state: SharedState, _clock: ManualClock) {
    let window = Duration::from_secs(60);
    assert!(state.rate_limits.acquire("a", 1, window).await.unwrap().is_admitted());
    assert!(!state.rate_limits.acquire("a", 1, window).await.unwrap().is_admitted());
    assert!(state.rate_limits.acquire("b", 1, window).await.unwrap().is_admitted());
}

async fn parallel_attempts_never_overshoot_the_window(state: SharedState, _clock: ManualClock) {
    let attempts = (0..50).map(|_| {
        let state = state.clone();
        tokio::spawn(async move { state.rate_limits.acquire("burst", 5, Duration::from_secs(60)).await.unwrap() })
    });
    let mut admitted = 0;
    for attempt in attempts {
        admitted += usize::from(attempt.await.unwrap().is_admitted());
    }
    assert_eq!(admitted, 5);
}

async fn a_bucket_allows_its_burst_then_refills_evenly(state: SharedState, clock: ManualClock) {
    let quota = Quota::per_minute(30);
    for i in 0..30 {
        assert!(state.rate_limits.take("user", quota).await.unwrap().is_admitted(), "message {i}");
    }
    match state.rate_limits.take("user", quota).await.unwrap() {
        Admission::Denied { retry_after } => assert_eq!(retry_after, Duration::from_secs(2)),
        other => panic!("expected a denial, got {other:?}"),
    }
    clock.advance(Duration::from_secs(2));
    assert!(state.rate_limits.take("user", quota).await.unwrap().is_admitted(), "one token per 2 s");
    assert!(!state.rate_limits.take("user", quota).await.unwrap().is_admitted());
    assert!(state.rate_limits.take("someone-else", quota).await.unwrap().is_admitted());
    clock.advance(Duration::from_secs(60));
    for _ in 0..30 {
        assert!(state.rate_limits.take("user", quota).await.unwrap().is_admitted(), "a full minute refills the burst");
    }
}

async fn a_penalty_runs_its_time_and_the_longest_of_several_counts(state: SharedState, clock: ManualClock) {
    let limits = &state.rate_limits;
    let (user, address, other) = ("flood:user:1".to_owned(), "flood:ip:192.0.2.1".to_owned(), "flood:ip:x".to_owned());
    assert_eq!(limits.penalty(&[user.clone(), address.clone()]).await.unwrap(), None);
    assert_eq!(limits.penalty(&[]).await.unwrap(), None);
    limits.penalize(&user, Duration::from_secs(60)).await.unwrap();
    clock.advance(Duration::from_secs(20));
    limits.penalize(&address, Duration::from_secs(60)).await.unwrap();
    assert_eq!(limits.penalty(std::slice::from_ref(&user)).await.unwrap(), Some(Duration::from_secs(40)));
    assert_eq!(limits.penalty(&[user.clone(), address.clone()]).await.unwrap(), Some(Duration::from_secs(60)));
    assert_eq!(limits.penalty(std::slice::from_ref(&other)).await.unwrap(), None, "penalties are per key");
    clock.advance(Duration::from_secs(40));
    assert_eq!(limits.penalty(std::slice::from_ref(&user)).await.unwrap(), None, "over at its end");
    assert_eq!(limits.penalty(&[user, address]).await.unwrap(), Some(Duration::from_secs(20)));
}

async fn health_reports_the_backend(state: SharedState, _clock: ManualClock) {
    assert!(["disabled", "ok"].contains(&state.health().await));
}
