//! `soak`: a bounded soak at a steady rate, watching the server for leaks.
//!
//! A pool of `--clients` users, paired in direct conversations; each socket subscribes to its
//! conversation (so typing events are broadcast to its peer). For the length of the run,
//! open-loop schedules issue, at fixed total rates: `message:send` (with an ack), `typing:start`
//! (with an ack), and reconnects of the churning clients (a `--churn-fraction` of the pool:
//! finish what is in flight, close, connect again, subscribe again). Every `--sample-every`
//! seconds the server is sampled: RSS (`VmRSS` of `--server-pid`, summed over replicas) and,
//! from `GET /metrics`, `parley_sockets_connected`, `parley_typing_entries` and
//! `parley_runtime_alive_tasks`.
//!
//! The first 20 % of the run is the warm-up: RSS growth is the end-of-load RSS against the
//! RSS at the end of the warm-up (the allocator keeps what it once took, so the RSS after the
//! drain says little). After the load: the clients stop sending but stay connected until the
//! outstanding acks are in and the typing entries are back to 0 (so the typing state has to
//! empty by the server's auto-stop, not by the disconnects, which would end it at once); then
//! they all disconnect, and the alive tasks must return to their baseline (taken before any
//! client connected). The run fails (non-zero exit, after the report) if any check fails.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use anyhow::bail;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::{
    Target, crowd,
    procfs::Servers,
    prom,
    report::{self, histogram, ms, percentiles, record},
    scenarios::chat::pair,
    socket::{Socket, parse_ack},
    users,
};

const MIB: f64 = 1024.0 * 1024.0;
/// The share of the run that is warm-up.
const WARMUP_SHARE: f64 = 0.2;
/// How long a churning client waits for its acks before it closes anyway.
const CHURN_ACK_WAIT: Duration = Duration::from_secs(5);
/// How long the end of the load waits for the outstanding acks.
const FINAL_ACK_WAIT: Duration = Duration::from_secs(15);
/// The server refreshes `parley_runtime_alive_tasks` every 5 s.
const TASK_GAUGE_PERIOD: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Clients in the pool (an even number: they are paired in direct conversations).
    #[arg(long, default_value_t = 300)]
    clients: usize,
    /// Length of the load in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Length of the load in seconds (instead of --minutes).
    #[arg(long, conflicts_with = "minutes")]
    seconds: Option<u64>,
    /// Share of the pool that reconnects continuously.
    #[arg(long, default_value_t = 0.2)]
    churn_fraction: f64,
    /// Reconnects per second, spread round-robin over the churning clients.
    #[arg(long, default_value_t = 5.0)]
    churn_rate: f64,
    /// `message:send` per second over the whole pool (open loop).
    #[arg(long, default_value_t = 100.0)]
    send_rate: f64,
    /// `typing:start` per second over the whole pool (open loop).
    #[arg(long, default_value_t = 50.0)]
    typing_rate: f64,
    /// Seconds between two samples of the server.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    /// Fail if the RSS grows by more than this between the end of the warm-up and the end of
    /// the load (percent).
    #[arg(long, default_value_t = 25.0)]
    max_growth_pct: f64,
    /// Fail if the alive tasks after the drain exceed the baseline by more than this.
    #[arg(long, default_value_t = 20)]
    task_tolerance: i64,
    /// Fail if the typing entries are not 0 this long after the last typist's start (ms):
    /// the server's bound of 10 s plus its 200 ms sweep and the 100 ms between our polls.
    #[arg(long, default_value_t = 10_300)]
    typing_deadline_ms: u64,
    /// How long the drain may wait for typing entries, sockets and tasks (seconds).
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// Users file to reuse (see the `users` subcommand); without it, users are registered.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// Server process(es) whose RSS is sampled (run.sh passes them); without, RSS is n/a.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
}

impl Args {
    fn load_duration(&self) -> Duration {
        match self.seconds {
            Some(seconds) => Duration::from_secs(seconds),
            None => Duration::from_secs_f64(self.minutes * 60.0),
        }
    }
}

/// What a client is told to do next.
#[derive(Clone, Copy, Debug)]
enum Command {
    Send,
    Typing,
    Reconnect,
}

/// Where the run is: clients act on commands only during `Load`, stay connected during
/// `Quiet`, and disconnect on `Close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Load,
    Quiet,
    Close,
}

/// Totals over all clients, updated as they go.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    send_errors: AtomicU64,
    typing_sent: AtomicU64,
    typing_acked: AtomicU64,
    typing_errors: AtomicU64,
    subscribe_errors: AtomicU64,
    /// Requests whose ack never came (socket dropped, or still missing at the end).
    lost_acks: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    /// Sockets the server closed on its own.
    dropped: AtomicU64,
    /// Commands that found their client still (re)connecting when the load ended.
    skipped: AtomicU64,
    /// Requests sent and not yet answered.
    in_flight: AtomicI64,
}

struct Shared {
    counters: Counters,
    /// `message:send` → ack latency since the last sample (swapped out by the sampler).
    window: Mutex<Histogram<u64>>,
    /// The same over the whole run.
    total: Mutex<Histogram<u64>>,
    /// When the last successful `typing:start` ack came back (the last typist).
    last_typing: Mutex<Option<Instant>>,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, what: &str, detail: impl std::fmt::Display) {
        let mut first = self.first_error.lock().unwrap();
        if first.is_none() {
            *first = Some(format!("{what}: {detail}"));
            eprintln!("first error: {what}: {detail}");
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Subscribe,
    Send,
    Typing,
}

/// One connection of a client and its requests awaiting an ack.
struct Session {
    socket: Socket,
    conversation: String,
    pending: HashMap<u64, (Kind, Instant)>,
    next_id: u64,
}

enum Outcome {
    Reconnect,
    Dropped(anyhow::Error),
    Close,
}

impl Session {
    async fn request(&mut self, kind: Kind, shared: &Shared) -> anyhow::Result<()> {
        let (id, conversation) = (self.next_id, &self.conversation);
        self.next_id += 1;
        let frame = match kind {
            Kind::Subscribe => format!("42/chat,{id}[\"subscribe\",{{\"conversationId\":\"{conversation}\"}}]"),
            Kind::Typing => format!("42/chat,{id}[\"typing:start\",{{\"conversationId\":\"{conversation}\"}}]"),
            Kind::Send => {
                let client_id = uuid::Uuid::new_v4();
                format!(
                    "42/chat,{id}[\"message:send\",{{\"conversationId\":\"{conversation}\",\"clientMessageId\":\"{client_id}\",\"content\":\"soak {id}\"}}]"
                )
            }
        };
        self.socket.send(frame).await?;
        self.pending.insert(id, (kind, Instant::now()));
        shared.counters.in_flight.fetch_add(1, Relaxed);
        match kind {
            Kind::Send => shared.counters.sent.fetch_add(1, Relaxed),
            Kind::Typing => shared.counters.typing_sent.fetch_add(1, Relaxed),
            Kind::Subscribe => 0,
        };
        Ok(())
    }

    /// Reads one frame: answers pings, settles acks, ignores the rest.
    async fn read(&mut self, shared: &Shared) -> anyhow::Result<()> {
        let Some(text) = self.socket.recv().await? else { bail!("the server closed the socket") };
        if self.socket.answer_ping(&text).await? {
            return Ok(());
        }
        let Some((id, ok)) = parse_ack(&text) else { return Ok(()) };
        let Some((kind, started)) = self.pending.remove(&id) else { return Ok(()) };
        let c = &shared.counters;
        c.in_flight.fetch_sub(1, Relaxed);
        match (kind, ok) {
            (Kind::Send, true) => {
                c.acked.fetch_add(1, Relaxed);
                let micros = started.elapsed().as_micros() as u64;
                record(&mut shared.window.lock().unwrap(), micros);
                record(&mut shared.total.lock().unwrap(), micros);
            }
            (Kind::Typing, true) => {
                c.typing_acked.fetch_add(1, Relaxed);
                *shared.last_typing.lock().unwrap() = Some(Instant::now());
            }
            (Kind::Subscribe, true) => {}
            (kind, false) => {
                match kind {
                    Kind::Send => c.send_errors.fetch_add(1, Relaxed),
                    Kind::Typing => c.typing_errors.fetch_add(1, Relaxed),
                    Kind::Subscribe => c.subscribe_errors.fetch_add(1, Relaxed),
                };
                shared.error(&format!("{kind:?} refused"), &text);
            }
        }
        Ok(())
    }

    /// Acts on commands while the phase is `Load`, keeps reading until told to reconnect or
    /// close, or until the server drops the socket.
    async fn run(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        phase: &mut watch::Receiver<Phase>,
        shared: &Shared,
    ) -> Outcome {
        loop {
            let now = *phase.borrow_and_update();
            if now == Phase::Close {
                return Outcome::Close;
            }
            let result = tokio::select! {
                _ = phase.changed() => Ok(()),
                command = commands.recv(), if now == Phase::Load => match command {
                    Some(Command::Send) => self.request(Kind::Send, shared).await,
                    Some(Command::Typing) => self.request(Kind::Typing, shared).await,
                    Some(Command::Reconnect) => return Outcome::Reconnect,
                    None => Ok(()),
                },
                read = self.read(shared) => read,
            };
            if let Err(err) = result {
                return Outcome::Dropped(err);
            }
        }
    }

    /// Waits (reading) until every request has its ack or `limit` passed.
    async fn settle(&mut self, limit: Duration, shared: &Shared) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.pending.is_empty() {
            match tokio::time::timeout_at(deadline, self.read(shared)).await {
                Ok(read) => read?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Counts what is still unanswered as lost.
    fn forget_pending(&mut self, shared: &Shared) {
        let lost = self.pending.len() as u64;
        self.pending.clear();
        shared.counters.lost_acks.fetch_add(lost, Relaxed);
        shared.counters.in_flight.fetch_sub(lost as i64, Relaxed);
    }
}

/// One client of the pool: connects (again and again if it churns) until the phase is `Close`.
async fn client(
    url: String,
    token: String,
    conversation: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut phase: watch::Receiver<Phase>,
    shared: Arc<Shared>,
) {
    let mut first = true;
    loop {
        if *phase.borrow() == Phase::Close {
            return;
        }
        let socket = match Socket::connect(&url, &token).await {
            Ok((socket, _)) => socket,
            Err(err) => {
                shared.counters.connect_failures.fetch_add(1, Relaxed);
                shared.error("connect", format!("{err:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if !first {
            shared.counters.reconnects.fetch_add(1, Relaxed);
        }
        first = false;
        let mut session = Session { socket, conversation: conversation.clone(), pending: HashMap::new(), next_id: 0 };
        let outcome = match session.request(Kind::Subscribe, &shared).await {
            Ok(()) => session.run(&mut commands, &mut phase, &shared).await,
            Err(err) => Outcome::Dropped(err),
        };
        match outcome {
            Outcome::Reconnect => {
                if let Err(err) = session.settle(CHURN_ACK_WAIT, &shared).await {
                    shared.counters.dropped.fetch_add(1, Relaxed);
                    shared.error("socket dropped", format!("{err:#}"));
                }
                session.forget_pending(&shared);
                session.socket.close().await;
            }
            Outcome::Dropped(err) => {
                shared.counters.dropped.fetch_add(1, Relaxed);
                shared.error("socket dropped", format!("{err:#}"));
                session.forget_pending(&shared);
            }
            Outcome::Close => {
                session.forget_pending(&shared);
                session.socket.close().await;
                break;
            }
        }
    }
    // Commands that never found a connected client.
    commands.close();
    while commands.recv().await.is_some() {
        shared.counters.skipped.fetch_add(1, Relaxed);
    }
}

/// Issues `command` at `rate` per second from `epoch` until `end`, to `targets` in turn.
fn schedule(
    rate: f64,
    command: Command,
    targets: Vec<usize>,
    mailboxes: Arc<Vec<mpsc::UnboundedSender<Command>>>,
    epoch: Instant,
    end: Instant,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if rate <= 0.0 || targets.is_empty() {
            return;
        }
        let interval = Duration::from_secs_f64(1.0 / rate);
        for k in 0u64.. {
            let at = epoch + interval.mul_f64(k as f64);
            if at >= end {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
            let _ = mailboxes[targets[k as usize % targets.len()]].send(command);
        }
    })
}

/// The server at one moment.
#[derive(Clone, Debug)]
struct Sample {
    at: Duration,
    rss: Option<u64>,
    sockets: f64,
    typing: f64,
    tasks: Option<f64>,
    sent: u64,
    acked: u64,
    /// p99 of the ack latency since the previous sample (ms).
    ack_p99_ms: Option<f64>,
}

impl Sample {
    fn to_json(&self) -> Value {
        json!({
            "t_s": round(self.at.as_secs_f64(), 1), "rss_mib": self.rss.map(|rss| round(rss as f64 / MIB, 1)),
            "sockets_connected": self.sockets, "typing_entries": self.typing, "alive_tasks": self.tasks,
            "sent": self.sent, "acked": self.acked, "window_ack_p99_ms": self.ack_p99_ms,
        })
    }

    fn log(&self, what: &str) {
        eprintln!(
            "  {:>6.1} s {what:<14} RSS {:>7} MiB  sockets {:>5}  typing {:>4}  tasks {:>6}  sent {:>7}  acked {:>7}  ack p99 {} ms",
            self.at.as_secs_f64(),
            self.rss.map_or("n/a".into(), |rss| format!("{:.1}", rss as f64 / MIB)),
            self.sockets,
            self.typing,
            self.tasks.map_or("n/a".into(), |tasks| tasks.to_string()),
            self.sent,
            self.acked,
            self.ack_p99_ms.map_or("-".into(), |p99| format!("{p99:.1}")),
        );
    }
}

/// Reads the server: RSS from /proc, the gauges from `/metrics` (sockets and tasks summed
/// over the replicas; typing entries are shared state, so the largest of their views).
struct Sampler {
    servers: Servers,
    http: reqwest::Client,
    urls: Vec<String>,
    epoch: Instant,
}

impl Sampler {
    async fn sample(&self, shared: &Shared) -> anyhow::Result<Sample> {
        let texts = prom::scrape(&self.http, &self.urls).await?;
        // `+ 0.0`: an empty float sum is -0.0, and a gauge decremented back to zero may read -0.
        let sum = |name: &str| texts.iter().filter_map(|text| prom::value(text, name)).sum::<f64>() + 0.0;
        let tasks: Option<Vec<f64>> =
            texts.iter().map(|text| prom::value(text, "parley_runtime_alive_tasks")).collect();
        let window = std::mem::replace(&mut *shared.window.lock().unwrap(), histogram());
        Ok(Sample {
            at: self.epoch.elapsed(),
            rss: if self.servers.0.is_empty() { None } else { Some(self.servers.rss_bytes()?) },
            sockets: sum("parley_sockets_connected"),
            typing: texts.iter().filter_map(|text| prom::value(text, "parley_typing_entries")).fold(0.0, f64::max),
            tasks: tasks.map(|tasks| tasks.iter().sum::<f64>() + 0.0),
            sent: shared.counters.sent.load(Relaxed),
            acked: shared.counters.acked.load(Relaxed),
            ack_p99_ms: (!window.is_empty()).then(|| ms(&window, 0.99)),
        })
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.clients < 2 || !args.clients.is_multiple_of(2) {
        bail!("--clients must be an even number ≥ 2");
    }
    let load = args.load_duration();
    if load < Duration::from_secs(10) {
        bail!("the load must last at least 10 s");
    }
    let users = users::ensure(&args.target.api(), args.users_file.as_deref(), args.clients).await?;
    eprintln!("pairing {} users in {} direct conversations…", users.len(), users.len() / 2);
    let conversations = pair(&args.target, &users).await?;
    let tokens: Vec<String> = users.into_iter().map(|user| user.token).collect();

    let shared = Arc::new(Shared {
        counters: Counters::default(),
        window: Mutex::new(histogram()),
        total: Mutex::new(histogram()),
        last_typing: Mutex::new(None),
        first_error: Mutex::new(None),
    });
    let mut sampler = Sampler {
        servers: Servers(args.server_pids.clone()),
        http: prom::client(),
        urls: args.target.urls.clone(),
        epoch: Instant::now(),
    };

    // Baseline: no client yet, and the setup's HTTP connections closed (their tasks gone),
    // seen by a refresh of the task gauge after that.
    tokio::time::sleep(TASK_GAUGE_PERIOD + Duration::from_millis(500)).await;
    let baseline = sampler.sample(&shared).await?;
    let Some(baseline_tasks) = baseline.tasks else { bail!("the server exports no parley_runtime_alive_tasks") };
    baseline.log("baseline");

    // The pool: one task per client, fed by the schedules through its mailbox.
    let (phase_tx, phase_rx) = watch::channel(Phase::Load);
    let mut mailboxes = Vec::with_capacity(args.clients);
    let mut clients = Vec::with_capacity(args.clients);
    for (i, (token, conversation)) in tokens.into_iter().zip(conversations).enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        mailboxes.push(tx);
        let url = crowd::url_for(&args.target.urls, i).to_owned();
        clients.push(tokio::spawn(client(url, token, conversation, rx, phase_rx.clone(), shared.clone())));
    }
    let mailboxes = Arc::new(mailboxes);
    let n = args.clients;
    let churners = ((args.churn_fraction.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
    let epoch = Instant::now();
    sampler.epoch = epoch;
    let end = epoch + load;
    let warmup_end = load.mul_f64(WARMUP_SHARE);
    eprintln!(
        "soak: {n} clients ({churners} churning, {} reconnects/s), {} msg/s, {} typing/s for {:.0} s (warm-up {:.0} s)",
        args.churn_rate,
        args.send_rate,
        args.typing_rate,
        load.as_secs_f64(),
        warmup_end.as_secs_f64()
    );
    let schedules = [
        schedule(args.send_rate, Command::Send, (0..n).collect(), mailboxes.clone(), epoch, end),
        // Offset by half the pool, so that the typists are not the senders of the moment.
        schedule(
            args.typing_rate,
            Command::Typing,
            (0..n).map(|k| (k + n / 2) % n).collect(),
            mailboxes.clone(),
            epoch,
            end,
        ),
        schedule(
            args.churn_rate,
            Command::Reconnect,
            (0..churners).map(|j| j * n / churners.max(1)).collect(),
            mailboxes.clone(),
            epoch,
            end,
        ),
    ];

    // Samples on the grid, plus one at the end of the warm-up.
    let step = Duration::from_secs(args.sample_every.max(1));
    let mut times: Vec<Duration> = (1..).map(|k| step * k).take_while(|at| *at < load).collect();
    times.push(warmup_end);
    times.sort();
    times.dedup();
    let mut samples = vec![baseline.clone()];
    let mut warmup = None;
    for at in times {
        tokio::time::sleep_until((epoch + at).into()).await;
        let sample = sampler.sample(&shared).await?;
        let is_warmup = at == warmup_end;
        sample.log(if is_warmup { "end of warm-up" } else { "" });
        if is_warmup {
            warmup = Some(sample.clone());
        }
        samples.push(sample);
    }
    tokio::time::sleep_until(end.into()).await;
    for handle in schedules {
        handle.await?;
    }
    let end_of_load = sampler.sample(&shared).await?;
    end_of_load.log("end of load");
    samples.push(end_of_load.clone());
    let warmup = warmup.expect("a warm-up sample");

    // Quiet: no more requests; the clients stay connected while their acks come in and the
    // typing state empties by the server's auto-stop.
    phase_tx.send_replace(Phase::Quiet);
    let quiet = Instant::now();
    while shared.counters.in_flight.load(Relaxed) > 0 && quiet.elapsed() < FINAL_ACK_WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_limit = Duration::from_secs(args.drain_timeout);
    let last_typing = *shared.last_typing.lock().unwrap();
    let typing_from = last_typing.unwrap_or_else(Instant::now);
    let mut typing_drain = None;
    let mut typing_seen = 0.0;
    while typing_from.elapsed() < drain_limit {
        let texts = prom::scrape(&sampler.http, &sampler.urls).await?;
        typing_seen = texts.iter().filter_map(|text| prom::value(text, "parley_typing_entries")).fold(0.0, f64::max);
        if typing_seen == 0.0 {
            typing_drain = Some(typing_from.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match typing_drain {
        Some(took) => eprintln!("typing entries 0 after {:.2} s from the last typist", took.as_secs_f64()),
        None => eprintln!("typing entries still {typing_seen} {} s after the last typist", args.drain_timeout),
    }

    // Close: every client disconnects; the sockets gauge must reach 0 and the tasks their
    // baseline (the task gauge lags by up to 5 s).
    phase_tx.send_replace(Phase::Close);
    for handle in clients {
        handle.await?;
    }
    let closed = Instant::now();
    let mut after_drain;
    loop {
        after_drain = sampler.sample(&shared).await?;
        let tasks_back = after_drain.tasks.is_some_and(|tasks| tasks - baseline_tasks <= args.task_tolerance as f64);
        if (after_drain.sockets == 0.0 && tasks_back) || closed.elapsed() >= drain_limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_seconds = closed.elapsed();
    after_drain.log("after drain");
    samples.push(after_drain.clone());

    let total = shared.total.lock().unwrap().clone();
    let outcome = Measured {
        baseline,
        warmup,
        end_of_load,
        after_drain,
        drain_seconds,
        typing_drain,
        typing_seen,
        had_typist: last_typing.is_some(),
        samples,
        churners,
        total,
    };
    report(&args, &shared, &outcome)
}

/// What the run measured, for the report.
struct Measured {
    baseline: Sample,
    warmup: Sample,
    end_of_load: Sample,
    after_drain: Sample,
    drain_seconds: Duration,
    typing_drain: Option<Duration>,
    typing_seen: f64,
    had_typist: bool,
    samples: Vec<Sample>,
    churners: usize,
    total: Histogram<u64>,
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

fn report(args: &Args, shared: &Shared, o: &Measured) -> anyhow::Result<()> {
    let c = &shared.counters;
    let get = |counter: &AtomicU64| counter.load(Relaxed);
    let mib = |rss: Option<u64>| rss.map(|rss| round(rss as f64 / MIB, 1));
    let growth = match (o.warmup.rss, o.end_of_load.rss) {
        (Some(from), Some(to)) => Some((to as f64 - from as f64, 100.0 * (to as f64 - from as f64) / from as f64)),
        _ => None,
    };
    // Least-squares slope of the RSS over the samples after the warm-up (MiB per minute).
    let loaded = &o.samples[1..o.samples.len() - 1];
    let after: Vec<(f64, f64)> = loaded
        .iter()
        .filter(|s| s.at >= o.warmup.at)
        .filter_map(|s| Some((s.at.as_secs_f64() / 60.0, s.rss? as f64 / MIB)))
        .collect();
    let slope = (after.len() >= 3).then(|| {
        let k = after.len() as f64;
        let (mx, my) = (after.iter().map(|p| p.0).sum::<f64>() / k, after.iter().map(|p| p.1).sum::<f64>() / k);
        let cov: f64 = after.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let var: f64 = after.iter().map(|p| (p.0 - mx).powi(2)).sum();
        cov / var
    });
    let task_excess = o.after_drain.tasks.zip(o.baseline.tasks).map(|(after, before)| after - before);
    let typing_deadline = Duration::from_millis(args.typing_deadline_ms);
    let message_errors = get(&c.send_errors) + get(&c.typing_errors) + get(&c.subscribe_errors) + get(&c.lost_acks);
    let connection_errors = get(&c.connect_failures) + get(&c.dropped);

    let mut failures = Vec::new();
    match task_excess {
        Some(excess) if excess > args.task_tolerance as f64 => failures.push(format!(
            "alive tasks after the drain: {} against {} before any client (+{excess}, tolerance {})",
            o.after_drain.tasks.unwrap_or_default(),
            o.baseline.tasks.unwrap_or_default(),
            args.task_tolerance
        )),
        Some(_) => {}
        None => failures.push("no parley_runtime_alive_tasks after the drain".to_owned()),
    }
    if o.after_drain.sockets != 0.0 {
        failures.push(format!("parley_sockets_connected is {} after the drain", o.after_drain.sockets));
    }
    match o.typing_drain {
        Some(took) if took > typing_deadline => failures.push(format!(
            "typing entries took {:.2} s to reach 0 after the last typist (limit {:.2} s)",
            took.as_secs_f64(),
            typing_deadline.as_secs_f64()
        )),
        Some(_) => {}
        None => failures.push(format!("typing entries still {} after {} s", o.typing_seen, args.drain_timeout)),
    }
    if message_errors > 0 {
        failures.push(format!(
            "request errors: {} message:send refused, {} typing:start refused, {} subscribe refused, {} acks never came",
            get(&c.send_errors),
            get(&c.typing_errors),
            get(&c.subscribe_errors),
            get(&c.lost_acks)
        ));
    }
    if connection_errors > 0 {
        failures.push(format!(
            "{} failed connects, {} sockets dropped by the server",
            get(&c.connect_failures),
            get(&c.dropped)
        ));
    }
    if let Some((_, pct)) = growth
        && pct > args.max_growth_pct
    {
        failures.push(format!("RSS grew {pct:.1} % after the warm-up (limit {} %)", args.max_growth_pct));
    }

    let load = args.load_duration().as_secs_f64();
    let result = json!({
        "scenario": "soak", "label": args.target.label, "urls": args.target.urls, "server_pids": args.server_pids,
        "passed": failures.is_empty(), "failures": failures,
        "clients": args.clients, "churning_clients": o.churners, "churn_rate": args.churn_rate,
        "send_rate": args.send_rate, "typing_rate": args.typing_rate,
        "load_seconds": load, "warmup_seconds": load * WARMUP_SHARE,
        "messages": {
            "sent": get(&c.sent), "acked": get(&c.acked), "errors": get(&c.send_errors),
            "achieved_rate": get(&c.acked) as f64 / load, "ack_latency": percentiles(&o.total),
        },
        "typing": {
            "sent": get(&c.typing_sent), "acked": get(&c.typing_acked), "errors": get(&c.typing_errors),
            "drain_seconds_after_last_typist": o.typing_drain.map(|d| round(d.as_secs_f64(), 2)),
            "had_typist": o.had_typist, "limit_seconds": typing_deadline.as_secs_f64(),
        },
        "connections": {
            "reconnects": get(&c.reconnects), "connect_failures": get(&c.connect_failures),
            "dropped_by_server": get(&c.dropped), "subscribe_errors": get(&c.subscribe_errors),
            "lost_acks": get(&c.lost_acks), "skipped_commands": get(&c.skipped),
        },
        "rss_mib": {
            "baseline": mib(o.baseline.rss), "end_of_warmup": mib(o.warmup.rss), "end_of_load": mib(o.end_of_load.rss),
            "after_drain": mib(o.after_drain.rss),
            "max_after_warmup": loaded.iter().filter(|s| s.at >= o.warmup.at).filter_map(|s| s.rss).max().map(|rss| round(rss as f64 / MIB, 1)),
            "growth_after_warmup_mib": growth.map(|g| round(g.0 / MIB, 1)), "growth_after_warmup_pct": growth.map(|g| round(g.1, 1)),
            "slope_after_warmup_mib_per_min": slope.map(|s| round(s, 2)), "max_growth_pct": args.max_growth_pct,
        },
        "alive_tasks": {
            "baseline": o.baseline.tasks, "end_of_load": o.end_of_load.tasks, "after_drain": o.after_drain.tasks,
            "excess": task_excess, "tolerance": args.task_tolerance,
        },
        "drain_seconds": round(o.drain_seconds.as_secs_f64(), 2),
        "samples": o.samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
    });
    let cell = |value: Option<f64>| value.map_or("n/a".to_owned(), |v| format!("{v:.1}"));
    let row = vec![
        args.target.label.clone(),
        format!("{} ({} churning)", args.clients, o.churners),
        format!("{load:.0}"),
        format!("{} / {} / {}", get(&c.sent), get(&c.acked), message_errors),
        report::p50_p99(&o.total),
        format!(
            "{} → {} → {}",
            cell(o.warmup.rss.map(|r| r as f64 / MIB)),
            cell(o.end_of_load.rss.map(|r| r as f64 / MIB)),
            cell(o.after_drain.rss.map(|r| r as f64 / MIB))
        ),
        growth.map_or("n/a".to_owned(), |(bytes, pct)| format!("{:+.1} MiB ({pct:+.1} %)", bytes / MIB)),
        format!("{} → {}", cell(o.baseline.tasks), cell(o.after_drain.tasks)),
        o.typing_drain.map_or("> limit".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        if failures.is_empty() { "pass".to_owned() } else { "FAIL".to_owned() },
    ];
    let header = [
        "label",
        "clients",
        "seconds",
        "sent / acked / errors",
        "ack p50 / p99 ms",
        "RSS MiB warm-up → end → drained",
        "growth after warm-up",
        "alive tasks before → drained",
        "typing drain",
        "checks",
    ];
    report::emit(args.target.json.as_deref(), &result, &header, &[row])?;
    if !failures.is_empty() {
        bail!("soak checks failed:\n  - {}", failures.join("\n  - "));
    }
    eprintln!("soak checks passed");
    Ok(())
}
