//! `fanout`: one group of `--members` users, all connected; `--senders` of them send
//! open-loop at each rate of `--rate` in turn (a rising list finds the knee). For every
//! message the generator records when each recipient socket got it; per step it reports the
//! first- and the last-recipient latency, the ack latency and the deliveries per second.

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::{
    Target, crowd, procfs,
    report::{self, histogram, p50_p99, percentiles, record},
    socket::{Socket, number_after, parse_ack},
    users,
};

/// Pause between two rates, for the queues of the previous one to drain.
const STEP_GAP: Duration = Duration::from_secs(3);
/// How long the last deliveries are waited for after the last step.
const FINAL_DRAIN: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Members of the group (at most 1000), all connected.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Members that send (the first ones); the rate is split between them.
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Total messages per second into the group; several (comma-separated) run one after
    /// the other, e.g. `--rate 10,50,100,200`.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    rate: Vec<u64>,
    /// Seconds measured at each rate (after the warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up at each rate, excluded from the results.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Users file to reuse (see the `users` subcommand); without it, users are registered.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// Server process(es) whose CPU time is reported per rate (`--server-pid 1 --server-pid 2`).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
}

/// One rate of the run; times are offsets from the run's epoch.
#[derive(Clone, Copy, Debug)]
struct Step {
    rate: u64,
    start: Duration,
    measure_from: Duration,
    end: Duration,
}

/// What happened to one message. Times are µs since the epoch plus one (0: not yet;
/// `first` starts at `u64::MAX` for `fetch_min`).
struct Slot {
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicBool,
    first: AtomicU64,
    last: AtomicU64,
    count: AtomicU32,
}

/// Every message of the run, numbered in the order they are sent; shared by all sockets.
struct Tracker {
    epoch: Instant,
    run: String,
    next: AtomicUsize,
    slots: Vec<Slot>,
}

impl Slot {
    fn new() -> Self {
        Self {
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            first: AtomicU64::new(u64::MAX),
            last: AtomicU64::new(0),
            count: AtomicU32::new(0),
        }
    }
}

impl Tracker {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    fn slot(&self, index: u64) -> Option<&Slot> {
        self.slots.get(usize::try_from(index).ok()?)
    }

    fn delivered(&self, index: u64) {
        let Some(slot) = self.slot(index) else { return };
        let now = self.now();
        slot.first.fetch_min(now, Ordering::Relaxed);
        slot.last.fetch_max(now, Ordering::Relaxed);
        slot.count.fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(2..=1000).contains(&args.members) || args.senders == 0 || args.senders > args.members {
        bail!("need 2 ≤ --members ≤ 1000 and 1 ≤ --senders ≤ --members");
    }
    let users = users::ensure(&args.target.api(), args.users_file.as_deref(), args.members).await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let others: Vec<String> = users[1..].iter().map(|user| user.id.clone()).collect();
    let group = args.target.api().create_group(&users[0].token, &format!("fanout {run}"), &others).await?;
    let tokens: Vec<String> = users.into_iter().map(|user| user.token).collect();
    eprintln!("group of {} created; connecting…", tokens.len());
    let crowd = crowd::connect(&args.target.urls, &tokens, 200).await;
    if let Some(err) = &crowd.first_error {
        bail!("{} of {} members failed to connect: {err}", crowd.failures, tokens.len());
    }

    let epoch = Instant::now() + Duration::from_secs(1);
    let steps = plan(&args);
    let schedules: Vec<VecDeque<Instant>> =
        (0..args.senders).map(|s| send_times(&steps, epoch, s, args.senders)).collect();
    let total = schedules.iter().map(VecDeque::len).sum();
    let tracker =
        Arc::new(Tracker { epoch, run, next: AtomicUsize::new(0), slots: (0..total).map(|_| Slot::new()).collect() });
    let until = epoch + steps.last().context("no --rate")?.end + FINAL_DRAIN;
    eprintln!("sending {total} messages at {:?} msg/s…", args.rate);

    let windows = steps.iter().map(|step| (epoch + step.measure_from, epoch + step.end)).collect();
    let cpu = procfs::cpu_in_windows(procfs::Servers(args.server_pids.clone()), windows);
    let group: Arc<str> = group.into();
    let mut schedules = schedules.into_iter();
    let tasks: Vec<_> = crowd
        .sockets
        .into_iter()
        .flatten()
        .map(|socket| {
            let sends = schedules.next().unwrap_or_default();
            tokio::spawn(member(socket, tracker.clone(), group.clone(), sends, until))
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let cpu = cpu.await?;
    report(&args, &steps, &tracker, &cpu)
}

/// The steps, one per rate, back to back with a gap between them.
fn plan(args: &Args) -> Vec<Step> {
    let (warmup, duration) = (Duration::from_secs(args.warmup), Duration::from_secs(args.duration));
    let mut start = Duration::ZERO;
    let mut steps = Vec::new();
    for &rate in &args.rate {
        steps.push(Step { rate, start, measure_from: start + warmup, end: start + warmup + duration });
        start += warmup + duration + STEP_GAP;
    }
    steps
}

/// When sender `sender` of `senders` sends: evenly spaced within each step, the senders
/// staggered so that the total rate is smooth.
fn send_times(steps: &[Step], epoch: Instant, sender: usize, senders: usize) -> VecDeque<Instant> {
    let mut times = VecDeque::new();
    for step in steps.iter().filter(|step| step.rate > 0) {
        let interval = Duration::from_secs_f64(senders as f64 / step.rate as f64);
        let mut at = step.start + interval.mul_f64(sender as f64 / senders as f64);
        while at < step.end {
            times.push_back(epoch + at);
            at += interval;
        }
    }
    times
}

/// One member socket until `until`: sends at the times of `sends` (empty for a pure
/// recipient), records acks and every `message:received`.
async fn member(
    mut socket: Socket,
    tracker: Arc<Tracker>,
    group: Arc<str>,
    mut sends: VecDeque<Instant>,
    until: Instant,
) -> anyhow::Result<()> {
    while Instant::now() < until {
        let wake = sends.front().map_or(until, |&at| at.min(until));
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                if sends.front().is_some_and(|&at| at <= Instant::now()) {
                    sends.pop_front();
                    send(&mut socket, &tracker, &group).await?;
                }
            }
            frame = socket.recv() => {
                let text = frame?.context("the server closed the socket")?;
                if !socket.answer_ping(&text).await? {
                    on_frame(&text, &tracker);
                }
            }
        }
    }
    socket.close().await;
    Ok(())
}

/// Sends the next message of the run; its number is both its ack id and its content.
async fn send(socket: &mut Socket, tracker: &Tracker, group: &str) -> anyhow::Result<()> {
    let index = tracker.next.fetch_add(1, Ordering::Relaxed);
    let Some(slot) = tracker.slots.get(index) else { return Ok(()) };
    slot.sent.store(tracker.now(), Ordering::Relaxed);
    let run = &tracker.run;
    socket
        .send(format!(
            "42/chat,{index}[\"message:send\",{{\"conversationId\":\"{group}\",\"clientMessageId\":\"{run}-{index}\",\"content\":\"f{index}\"}}]"
        ))
        .await
}

/// Records an ack (`43/chat,<index>[…]`) or a `message:received` (`"content":"f<index>"`).
fn on_frame(text: &str, tracker: &Tracker) {
    if let Some((index, ok)) = parse_ack(text) {
        let Some(slot) = tracker.slot(index) else { return };
        if ok {
            slot.acked.store(tracker.now(), Ordering::Relaxed);
        } else {
            slot.failed.store(true, Ordering::Relaxed);
        }
    } else if text.starts_with("42/chat,[\"message:received\"")
        && let Some(index) = number_after(text, "\"content\":\"f")
    {
        tracker.delivered(index);
    }
}

/// The figures of one step, over the messages sent in its measured window.
struct StepStats {
    sent: u64,
    acked: u64,
    failed: u64,
    deliveries: u64,
    complete: u64,
    ack: Histogram<u64>,
    first: Histogram<u64>,
    last: Histogram<u64>,
}

/// Sorts every message into the step whose measured window it was sent in.
fn tally(steps: &[Step], tracker: &Tracker, recipients: u32) -> Vec<StepStats> {
    let mut stats: Vec<StepStats> = steps
        .iter()
        .map(|_| StepStats {
            sent: 0,
            acked: 0,
            failed: 0,
            deliveries: 0,
            complete: 0,
            ack: histogram(),
            first: histogram(),
            last: histogram(),
        })
        .collect();
    for slot in &tracker.slots {
        let sent = slot.sent.load(Ordering::Relaxed);
        let at = Duration::from_micros(sent.saturating_sub(1));
        let Some(step) = steps.iter().position(|step| sent > 0 && at >= step.measure_from && at < step.end) else {
            continue;
        };
        let stats = &mut stats[step];
        stats.sent += 1;
        let acked = slot.acked.load(Ordering::Relaxed);
        if acked > 0 {
            stats.acked += 1;
            record(&mut stats.ack, acked - sent);
        }
        stats.failed += slot.failed.load(Ordering::Relaxed) as u64;
        let count = slot.count.load(Ordering::Relaxed);
        stats.deliveries += count as u64;
        if count > 0 {
            record(&mut stats.first, slot.first.load(Ordering::Relaxed).saturating_sub(sent));
        }
        if count >= recipients {
            stats.complete += 1;
            record(&mut stats.last, slot.last.load(Ordering::Relaxed).saturating_sub(sent));
        }
    }
    stats
}

fn report(args: &Args, steps: &[Step], tracker: &Tracker, cpu: &[Option<Duration>]) -> anyhow::Result<()> {
    let recipients = (args.members - 1) as u32;
    let stats = tally(steps, tracker, recipients);
    let seconds = args.duration as f64;
    let mut cpu = cpu.iter();
    let step_json = |(step, s): (&Step, &StepStats)| -> Value {
        let cpu = cpu.next().copied().flatten().map(|spent| spent.as_secs_f64());
        json!({
            "server_cpu_percent_of_one_core": cpu.map(|spent| spent / seconds * 100.0),
            "server_cpu_ms_per_1k_deliveries": cpu.filter(|_| s.deliveries > 0).map(|spent| spent * 1e6 / s.deliveries as f64),
            "target_rate": step.rate, "sent": s.sent, "acked": s.acked, "errors": s.failed,
            "achieved_rate": s.acked as f64 / seconds,
            "deliveries": s.deliveries, "expected_deliveries": s.sent * recipients as u64,
            "deliveries_per_second": s.deliveries as f64 / seconds,
            "messages_reaching_everyone": s.complete,
            "ack_latency": percentiles(&s.ack),
            "first_recipient_latency": percentiles(&s.first), "last_recipient_latency": percentiles(&s.last),
        })
    };
    let result = json!({
        "scenario": "fanout", "label": args.target.label, "urls": args.target.urls, "members": args.members,
        "senders": args.senders, "seconds_per_rate": args.duration,
        "steps": steps.iter().zip(&stats).map(step_json).collect::<Vec<_>>(),
    });
    let rows: Vec<Vec<String>> = steps
        .iter()
        .zip(&stats)
        .map(|(step, s)| {
            vec![
                args.target.label.clone(),
                args.members.to_string(),
                step.rate.to_string(),
                format!("{:.0}", s.acked as f64 / seconds),
                format!("{:.0}", s.deliveries as f64 / seconds),
                p50_p99(&s.first),
                p50_p99(&s.last),
                p50_p99(&s.ack),
                format!("{} / {}", s.sent - s.complete, s.failed),
            ]
        })
        .collect();
    let header = [
        "label",
        "members",
        "target msg/s",
        "achieved msg/s",
        "deliveries/s",
        "first recipient p50 / p99 ms",
        "last recipient p50 / p99 ms",
        "ack p50 / p99 ms",
        "incomplete / errors",
    ];
    report::emit(args.target.json.as_deref(), &result, &header, &rows)
}
