//! Time as the application sees it. Everything that expires (rate-limit windows, revocations,
//! presence grace periods, typing timers) asks a [`Clock`], and waits on it, so tests can
//! move time by hand instead of sleeping.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::Notify;

pub type Wait<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Now, at the millisecond precision every stored and wire timestamp has.
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.now_ms()).single().unwrap_or_default()
    }

    /// Resolves once the clock reads `deadline_ms` or later.
    fn sleep_until(&self, deadline_ms: i64) -> Wait<'_>;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }

    fn sleep_until(&self, deadline_ms: i64) -> Wait<'_> {
        let left = u64::try_from(deadline_ms - self.now_ms()).unwrap_or(0);
        Box::pin(tokio::time::sleep(Duration::from_millis(left)))
    }
}

/// A clock that only moves when told to; clones share the same time, and what waits on one
/// wakes when [`Self::advance`] moves it past the deadline.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Manual>);

#[derive(Debug)]
struct Manual {
    ms: AtomicI64,
    moved: Notify,
}

impl ManualClock {
    pub fn starting_now() -> Self {
        Self(Arc::new(Manual { ms: AtomicI64::new(SystemClock.now_ms()), moved: Notify::new() }))
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.ms.fetch_add(ms, Ordering::SeqCst);
        self.0.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.ms.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline_ms: i64) -> Wait<'_> {
        Box::pin(async move {
            loop {
                // Registered before the check, so an advance in between is not missed.
                let moved = self.0.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if self.now_ms() >= deadline_ms {
                    return;
                }
                moved.await;
            }
        })
    }
}

pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_when_moved_past_their_deadline() {
        let clock = ManualClock::starting_now();
        let deadline = clock.now_ms() + 1000;
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        clock.advance(Duration::from_millis(999));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its deadline");
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper).await.expect("woke").expect("ran");
        // A deadline already passed does not wait at all.
        clock.sleep_until(deadline).await;
    }
}
