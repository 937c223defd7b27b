//! Connecting many clients at once, spread over the server URLs, with bounded concurrency.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    pool::run_bounded,
    report::{histogram, percentiles, record},
    socket::Socket,
};

/// The outcome of connecting a crowd.
pub struct Crowd {
    /// One slot per client, in the order of the tokens; `None` where the handshake failed.
    pub sockets: Vec<Option<Socket>>,
    /// Start of the TCP connect → Socket.IO CONNECT ack, per client.
    pub connected: Histogram<u64>,
    /// Start of the TCP connect → `sync:complete`, per client.
    pub ready: Histogram<u64>,
    pub failures: usize,
    pub first_error: Option<String>,
    /// Wall time until the last handshake ended.
    pub elapsed: Duration,
}

impl Crowd {
    /// Successful handshakes (still right once the sockets have been taken out).
    pub fn connected_count(&self) -> usize {
        self.ready.len() as usize
    }

    /// The handshake figures as JSON (connections/s counts successful handshakes).
    pub fn summary(&self) -> Value {
        json!({
            "clients": self.connected_count() + self.failures, "connected": self.connected_count(), "failures": self.failures,
            "first_error": self.first_error, "seconds": self.elapsed.as_secs_f64(),
            "connections_per_second": self.connected_count() as f64 / self.elapsed.as_secs_f64(),
            "connect_ack_latency": percentiles(&self.connected), "ready_latency": percentiles(&self.ready),
        })
    }
}

/// The URL of client `i`: round-robin, so with two URLs the two ends of a pair (clients
/// 2k and 2k+1) land on different servers.
pub fn url_for(urls: &[String], i: usize) -> &str {
    &urls[i % urls.len()]
}

/// Connects one client per token, at most `concurrency` handshakes in flight.
pub async fn connect(urls: &[String], tokens: &[String], concurrency: usize) -> Crowd {
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<(String, String)> =
        tokens.iter().enumerate().map(|(i, token)| (url_for(urls, i).to_owned(), token.clone())).collect();
    let total = jobs.len();
    let results = run_bounded(jobs, concurrency, |(url, token)| {
        let done = done.clone();
        async move {
            let outcome = Socket::connect(&url, &token).await;
            let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
            if finished.is_multiple_of(1000) {
                eprintln!("  {finished}/{total} handshakes");
            }
            outcome
        }
    })
    .await;
    collect(results, started.elapsed())
}

fn collect(results: Vec<anyhow::Result<(Socket, crate::socket::Handshake)>>, elapsed: Duration) -> Crowd {
    let mut crowd = Crowd {
        sockets: Vec::with_capacity(results.len()),
        connected: histogram(),
        ready: histogram(),
        failures: 0,
        first_error: None,
        elapsed,
    };
    for result in results {
        match result {
            Ok((socket, handshake)) => {
                record(&mut crowd.connected, handshake.connected.as_micros() as u64);
                record(&mut crowd.ready, handshake.ready.as_micros() as u64);
                crowd.sockets.push(Some(socket));
            }
            Err(err) => {
                crowd.failures += 1;
                crowd.first_error.get_or_insert_with(|| format!("{err:#}"));
                crowd.sockets.push(None);
            }
        }
    }
    crowd
}

/// Sockets kept open by one task each (answering pings) until `close_all`.
pub struct Holding {
    stop: watch::Sender<bool>,
    holders: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Holding {
    pub fn start(sockets: Vec<Option<Socket>>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let holders = sockets.into_iter().flatten().map(|socket| tokio::spawn(socket.hold(stopped.clone()))).collect();
        Self { stop, holders }
    }

    /// Closes every socket at once. Returns how many the server had dropped meanwhile and
    /// how long sending all the closes took.
    pub async fn close_all(self) -> (usize, Duration) {
        let started = Instant::now();
        let _ = self.stop.send(true);
        let outcomes = futures_util::future::join_all(self.holders).await;
        let dropped = outcomes.iter().filter(|outcome| !matches!(outcome, Ok(Ok(())))).count();
        (dropped, started.elapsed())
    }
}
