//! One socket's events, run in arrival order, one at a time. An idle socket holds no task:
//! one is spawned when a job arrives and ends when the queue is empty again.
//!
//! A pipelined event (`message:send`) holds the queue only until its message has its place
//! in the writer's queue; the rest (commit, broadcast, ack) runs in a task of its own, after
//! the previous pipelined event's rest ([`EventQueue::pipeline`]). Those in flight count
//! against [`EVENT_QUEUE`] like waiting events: a socket that sends faster than its
//! messages are stored gets `RATE_LIMITED` acks (`parley_rate_limited_total{scope="socket_events"}`).

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
};

use tokio::sync::{oneshot, watch};

use crate::{domain::messages::SendOrder, transport::limits};

/// Events a socket may have waiting or (pipelined) in flight; beyond this its events are
/// refused with `RATE_LIMITED`.
pub const EVENT_QUEUE: usize = 256;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One socket's events, run in arrival order, one at a time, once [`Self::start`] was called.
/// An idle socket holds no task: one is spawned when a job arrives and ends when the queue
/// is empty again.
#[derive(Clone, Default)]
pub struct EventQueue(Arc<Mutex<QueueState>>);

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    started: bool,
    /// A task is draining `jobs`.
    running: bool,
    /// The socket's event rate limit (see [`limits::EventBudget`]).
    budget: limits::EventBudget,
    /// Pipelined events that left `jobs` and whose rest has not finished.
    in_flight: usize,
    /// Closes once the last pipelined event's rest, and every one before it, finished.
    tail: Option<watch::Receiver<()>>,
}

/// A pipelined event, from its place in the queue until its rest and the rests before it
/// finished ([`Self::finish`]): only then does the next one get its turn. While it runs it
/// counts against [`EVENT_QUEUE`] in place of its job.
pub struct InFlight {
    queue: EventQueue,
    /// Dropped (closing the next one's turn) with this guard.
    _done: watch::Sender<()>,
    /// The previous pipelined event's turn.
    previous: Option<watch::Receiver<()>>,
    counted: bool,
}

impl InFlight {
    /// The job started: from now on it counts as in flight (no longer as waiting).
    pub fn start(&mut self) {
        crate::sync::lock(&self.queue.0).in_flight += 1;
        self.counted = true;
    }

    /// Ends once the previous pipelined events finished too, however this one ended (a
    /// send refused before it waited for its turn included), so that the chain of turns
    /// never lets a later send overtake an earlier one.
    pub async fn finish(mut self) {
        if let Some(mut previous) = self.previous.take() {
            // Err once the sender is gone: the previous one finished.
            let _ = previous.changed().await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.counted {
            let mut queue = crate::sync::lock(&self.queue.0);
            queue.in_flight = queue.in_flight.saturating_sub(1);
        }
    }
}

impl EventQueue {
    /// Lets the queued jobs run (the namespace `connect` packet is out).
    pub fn start(&self) {
        let mut queue = crate::sync::lock(&self.0);
        queue.started = true;
        self.run_if_idle(&mut queue);
    }

    /// Queues `job`; `false` when the socket already has [`EVENT_QUEUE`] events waiting.
    pub fn push(&self, job: impl Future<Output = ()> + Send + 'static) -> bool {
        let mut queue = crate::sync::lock(&self.0);
        if queue.jobs.len() >= EVENT_QUEUE {
            return false;
        }
        queue.jobs.push_back(Box::pin(job));
        self.run_if_idle(&mut queue);
        true
    }

    pub fn take_budget(&self, rate: limits::EventRate) -> limits::Verdict {
        crate::sync::lock(&self.0).budget.take(rate)
    }

    pub fn is_full(&self) -> bool {
        let queue = crate::sync::lock(&self.0);
        queue.jobs.len() + queue.in_flight >= EVENT_QUEUE
    }

    /// The links of a pipelined event, taken in arrival order: its [`SendOrder`] (which
    /// waits for the previous pipelined event's rest), the signal that it holds its place
    /// (the queue may go on), and its [`InFlight`] guard, to hold until its rest is done.
    pub fn pipeline(&self) -> (SendOrder, oneshot::Receiver<()>, InFlight) {
        let (queued, released) = oneshot::channel();
        let (done, finished) = watch::channel(());
        let previous = crate::sync::lock(&self.0).tail.replace(finished);
        let order = SendOrder { queued: Some(queued), turn: previous.clone() };
        (order, released, InFlight { queue: self.clone(), _done: done, previous, counted: false })
    }

    fn run_if_idle(&self, queue: &mut QueueState) {
        if !queue.started || queue.running || queue.jobs.is_empty() {
            return;
        }
        // No runtime: it is shutting down, and the jobs go with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            queue.running = true;
            runtime.spawn(self.clone().drain());
        }
    }

    async fn drain(self) {
        /// Ends the run however the task ends (a panicking job included): a job queued
        /// meanwhile gets a new task.
        struct Running(EventQueue);
        impl Drop for Running {
            fn drop(&mut self) {
                let mut queue = crate::sync::lock(&(self.0).0);
                queue.running = false;
                self.0.run_if_idle(&mut queue);
            }
        }
        let _running = Running(self.clone());
        loop {
            let job = {
                let mut queue = crate::sync::lock(&self.0);
                match queue.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        if queue.jobs.capacity() > 8 {
                            queue.jobs.shrink_to_fit();
                        }
                        return;
                    }
                }
            };
            job.await;
        }
    }
}
