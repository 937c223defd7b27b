//! `chat`: clients paired in direct conversations send `message:send` open-loop at a fixed
//! total rate. Every payload carries its send time; HDR histograms record the ack latency
//! (`message:send` → ack, which comes after the commit, like `message:sent`) and the
//! send → peer's `message:received` latency.
//!
//! With `--offline-recipients` only the first of each pair connects and sends; the peers
//! stay offline, and with `--push-subscribe` each has a Web Push subscription to a push
//! service stand-in of the generator's ([`crate::push_stub`]), answering after
//! `--push-delay-ms`: the cost of notifications on the send path (SPEC §4.4).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Mutex;

use crate::{
    Target, crowd,
    pool::run_bounded,
    procfs,
    push_stub::PushStub,
    report::{self, histogram, ms, percentiles, record},
    socket::{Socket, number_after, parse_ack},
    users::{self, User},
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Clients (an even number: they are paired in direct conversations).
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// Total messages per second across all clients.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of measured sending (after the warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up sending excluded from the results.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Users file to reuse (see the `users` subcommand); without it, users are registered.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// Only the first client of each pair connects and sends: the recipients are offline.
    #[arg(long)]
    offline_recipients: bool,
    /// The recipients subscribe to Web Push at the generator's push service stand-in.
    #[arg(long)]
    push_subscribe: bool,
    /// How long the stand-in takes to answer each push.
    #[arg(long, default_value_t = 0)]
    push_delay_ms: u64,
    /// Server process(es) whose CPU time over the measured seconds is reported.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
}

/// The P-256 base point, uncompressed and base64url: a valid `p256dh` (the stand-in does not
/// decrypt, so whose key it is does not matter).
const P256DH: &str = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";

/// Totals over all clients.
struct Stats {
    ack: Histogram<u64>,
    delivery: Histogram<u64>,
    sent: u64,
    acked: u64,
    errors: u64,
    delivered: u64,
}

/// The shared clock of a run: the send times in payloads are µs since `epoch`.
#[derive(Clone, Copy)]
struct Schedule {
    epoch: Instant,
    measure_from: Duration,
    run_for: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.clients < 2 || !args.clients.is_multiple_of(2) {
        bail!("--clients must be an even number ≥ 2");
    }
    let users = users::ensure(&args.target.api(), args.users_file.as_deref(), args.clients).await?;
    eprintln!("pairing {} users in {} direct conversations…", users.len(), users.len() / 2);
    let conversations = pair(&args.target, &users).await?;
    let stub = match args.push_subscribe {
        true => Some(subscribe_recipients(&args, &users).await?),
        false => None,
    };
    let (tokens, conversations): (Vec<String>, Vec<String>) = users
        .into_iter()
        .zip(conversations)
        .enumerate()
        .filter(|(i, _)| !args.offline_recipients || i % 2 == 0)
        .map(|(_, (user, conversation))| (user.token, conversation))
        .unzip();
    let crowd = crowd::connect(&args.target.urls, &tokens, 50).await;
    if let Some(err) = &crowd.first_error {
        bail!("{} of {} sockets failed to connect: {err}", crowd.failures, tokens.len());
    }
    eprintln!(
        "connected in {:.2} s; sending {} msg/s for {} s",
        crowd.elapsed.as_secs_f64(),
        args.rate,
        args.warmup + args.duration
    );

    let stats = Arc::new(Mutex::new(Stats {
        ack: histogram(),
        delivery: histogram(),
        sent: 0,
        acked: 0,
        errors: 0,
        delivered: 0,
    }));
    let schedule = Schedule {
        epoch: Instant::now(),
        measure_from: Duration::from_secs(args.warmup),
        run_for: Duration::from_secs(args.warmup + args.duration),
    };
    let window = (schedule.epoch + schedule.measure_from, schedule.epoch + schedule.run_for);
    let cpu = procfs::cpu_in_windows(procfs::Servers(args.server_pids.clone()), vec![window]);
    let per_client = args.rate as f64 / tokens.len() as f64;
    let clients =
        crowd.sockets.into_iter().zip(conversations).filter_map(|(socket, conversation)| Some((socket?, conversation)));
    let tasks: Vec<_> = clients
        .map(|(socket, conversation)| tokio::spawn(drive(socket, conversation, per_client, schedule, stats.clone())))
        .collect();
    for task in tasks {
        task.await??;
    }
    let cpu = cpu.await?.into_iter().next().flatten();
    let stats = stats.lock().await;
    report(&args, &stats, stub.as_ref(), cpu)
}

/// Every second user (the recipients) subscribes to the push stand-in.
async fn subscribe_recipients(args: &Args, users: &[User]) -> anyhow::Result<PushStub> {
    let stub = PushStub::start(Duration::from_millis(args.push_delay_ms)).await?;
    let api = args.target.api();
    let recipients: Vec<(usize, String)> =
        users.iter().enumerate().filter(|(i, _)| i % 2 == 1).map(|(i, u)| (i, u.token.clone())).collect();
    let base = stub.base.clone();
    let subscribed = run_bounded(recipients, 16, |(i, token)| {
        let (api, base) = (api.clone(), base.clone());
        async move {
            let body = json!({"endpoint": format!("{base}/push/{i}"), "keys": {"p256dh": P256DH, "auth": "AAECAwQFBgcICQoLDA0ODw"}});
            api.http()
                .post(format!("{}/api/push/subscriptions", api.base()))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?
                .error_for_status()?;
            anyhow::Ok(())
        }
    })
    .await;
    for result in subscribed {
        result.context("subscribing a recipient to pushes")?;
    }
    eprintln!("{} recipients subscribed to pushes at {base}", users.len() / 2);
    Ok(stub)
}

/// Creates a direct conversation per pair (users 2k and 2k+1); returns each user's.
pub(crate) async fn pair(target: &Target, users: &[User]) -> anyhow::Result<Vec<String>> {
    let api = target.api();
    let pairs: Vec<(String, String)> =
        users.chunks(2).map(|pair| (pair[0].token.clone(), pair[1].id.clone())).collect();
    let created = run_bounded(pairs, 16, |(token, peer)| {
        let api = api.clone();
        async move { api.create_direct(&token, &peer).await }
    })
    .await;
    let mut conversations = Vec::with_capacity(users.len());
    for conversation in created {
        let conversation = conversation?;
        conversations.push(conversation.clone());
        conversations.push(conversation);
    }
    Ok(conversations)
}

/// One client: sends at `rate` messages/s into `conversation` until the end of the run,
/// reading acks and deliveries all along, then adds what it measured to `stats`.
async fn drive(
    mut socket: Socket,
    conversation: String,
    rate: f64,
    schedule: Schedule,
    stats: Arc<Mutex<Stats>>,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    // Spread the clients' schedules so that the total rate is smooth.
    let mut next_send = schedule.epoch + interval.mul_f64(stable_fraction(&conversation));
    let end = schedule.epoch + schedule.run_for;
    let drain_until = end + Duration::from_secs(5);
    let mut pending: HashMap<u64, Instant> = HashMap::new();
    let mut next_ack_id: u64 = 0;
    let mut local = Stats { ack: histogram(), delivery: histogram(), sent: 0, acked: 0, errors: 0, delivered: 0 };
    loop {
        let now = Instant::now();
        if now >= drain_until || (now >= end && pending.is_empty()) {
            break;
        }
        let wake = if now < end { next_send.min(end) } else { drain_until };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                if Instant::now() >= end || Instant::now() < next_send { continue; }
                let sent_at = schedule.epoch.elapsed().as_micros();
                let id = uuid::Uuid::new_v4();
                socket.send(format!(
                    "42/chat,{next_ack_id}[\"message:send\",{{\"conversationId\":\"{conversation}\",\"clientMessageId\":\"{id}\",\"content\":\"t{sent_at}\"}}]"
                )).await?;
                if schedule.epoch.elapsed() >= schedule.measure_from {
                    pending.insert(next_ack_id, Instant::now());
                    local.sent += 1;
                }
                next_ack_id += 1;
                next_send += interval;
            }
            frame = socket.recv() => {
                let text = frame?.context("the server closed the socket")?;
                if !socket.answer_ping(&text).await? {
                    on_frame(&text, &mut pending, &mut local, schedule);
                }
            }
        }
    }
    socket.close().await;
    let mut stats = stats.lock().await;
    stats.ack.add(&local.ack)?;
    stats.delivery.add(&local.delivery)?;
    stats.sent += local.sent;
    stats.acked += local.acked;
    stats.errors += local.errors;
    stats.delivered += local.delivered;
    Ok(())
}

/// Records an ack (`43/chat,<id>[…]`) or a measured `message:received`.
fn on_frame(text: &str, pending: &mut HashMap<u64, Instant>, local: &mut Stats, schedule: Schedule) {
    if let Some((id, ok)) = parse_ack(text) {
        let Some(started) = pending.remove(&id) else { return };
        if ok {
            local.acked += 1;
            record(&mut local.ack, started.elapsed().as_micros() as u64);
        } else {
            local.errors += 1;
        }
    } else if text.starts_with("42/chat,[\"message:received\"") {
        let Some(sent_at) = number_after(text, "\"content\":\"t") else { return };
        if Duration::from_micros(sent_at) >= schedule.measure_from {
            record(&mut local.delivery, (schedule.epoch.elapsed().as_micros() as u64).saturating_sub(sent_at));
            local.delivered += 1;
        }
    }
}

/// A stable fraction in [0, 1) from a string (spreads schedules without a rand dependency).
fn stable_fraction(seed: &str) -> f64 {
    let hash = seed.bytes().fold(1469598103934665603u64, |h, b| (h ^ b as u64).wrapping_mul(1099511628211));
    (hash % 10_000) as f64 / 10_000.0
}

fn report(args: &Args, stats: &Stats, stub: Option<&PushStub>, cpu: Option<Duration>) -> anyhow::Result<()> {
    let achieved = stats.acked as f64 / args.duration as f64;
    let pushes = stub.map(PushStub::received);
    let cpu = cpu.map(|spent| spent.as_secs_f64());
    let result = json!({
        "server_cpu_percent_of_one_core": cpu.map(|spent| spent / args.duration as f64 * 100.0),
        "server_cpu_ms_per_1k_messages": cpu.filter(|_| stats.acked > 0).map(|spent| spent * 1e6 / stats.acked as f64),
        "scenario": "chat", "label": args.target.label, "urls": args.target.urls, "clients": args.clients,
        "target_rate": args.rate, "seconds": args.duration,
        "offline_recipients": args.offline_recipients, "push_subscribe": args.push_subscribe,
        "push_delay_ms": args.push_delay_ms, "pushes_received": pushes,
        "sent": stats.sent, "acked": stats.acked, "errors": stats.errors, "delivered": stats.delivered,
        "achieved_rate": achieved,
        "ack_latency": percentiles(&stats.ack), "delivery_latency": percentiles(&stats.delivery),
    });
    let triple = |h: &Histogram<u64>| format!("{:.2} / {:.2} / {:.2}", ms(h, 0.5), ms(h, 0.99), ms(h, 0.999));
    let row = vec![
        args.target.label.clone(),
        args.clients.to_string(),
        args.rate.to_string(),
        format!("{achieved:.0}"),
        triple(&stats.ack),
        triple(&stats.delivery),
        stats.errors.to_string(),
        pushes.map_or_else(|| "-".to_owned(), |n| n.to_string()),
    ];
    let header = [
        "label",
        "clients",
        "target msg/s",
        "achieved msg/s",
        "ack p50 / p99 / p99.9 ms",
        "send → received p50 / p99 / p99.9 ms",
        "errors",
        "pushes received",
    ];
    report::emit(args.target.json.as_deref(), &result, &header, &[row])
}
