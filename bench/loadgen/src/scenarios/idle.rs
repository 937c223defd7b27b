//! `idle`: N authenticated sockets held open for a while. With `--server-pid`, the server's
//! RSS before connecting and after the hold gives the memory per connection, and its CPU
//! time during the hold the cost of idle sockets (pings, presence renewals, sweeps).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    Target,
    crowd::{self, Holding},
    procfs::Servers,
    report, users,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Sockets (one user each).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Seconds the sockets are held open once all are connected.
    #[arg(long, default_value_t = 60)]
    hold: u64,
    /// Handshakes in flight while connecting.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Users file to reuse (see the `users` subcommand); without it, users are registered.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// Server process(es) to measure, e.g. `--server-pid 1234 --server-pid 1235`.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
}

/// What the server looked like around the hold (bytes, CPU time).
struct Sample {
    rss_before: u64,
    rss_after: u64,
    cpu: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let users = users::ensure(&args.target.api(), args.users_file.as_deref(), args.clients).await?;
    let tokens: Vec<String> = users.into_iter().map(|user| user.token).collect();
    // Without --server-pid this watches no process: the sums are 0 and reported as n/a.
    let servers = Servers(args.server_pids.clone());
    let rss_before = servers.rss_bytes()?;

    eprintln!("connecting {} sockets…", tokens.len());
    let mut crowd = crowd::connect(&args.target.urls, &tokens, args.concurrency).await;
    eprintln!("{} connected in {:.1} s; holding {} s", crowd.connected_count(), crowd.elapsed.as_secs_f64(), args.hold);

    let cpu_before = servers.cpu_time()?;
    let holding = Holding::start(std::mem::take(&mut crowd.sockets));
    let hold_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let held = hold_started.elapsed();
    let sample = Sample { rss_before, rss_after: servers.rss_bytes()?, cpu: servers.cpu_time()? - cpu_before };
    let sample = (!args.server_pids.is_empty()).then_some(sample);
    let (dropped, _) = holding.close_all().await;
    report(&args, crowd.connected_count(), crowd.failures, dropped, held, sample.as_ref())
}

fn report(
    args: &Args,
    connected: usize,
    failures: usize,
    dropped: usize,
    held: Duration,
    sample: Option<&Sample>,
) -> anyhow::Result<()> {
    const MIB: f64 = 1024.0 * 1024.0;
    let per_connection_kib = |s: &Sample| (s.rss_after as f64 - s.rss_before as f64) / 1024.0 / connected.max(1) as f64;
    let cpu_percent = |s: &Sample| 100.0 * s.cpu.as_secs_f64() / held.as_secs_f64();
    let result = json!({
        "scenario": "idle", "label": args.target.label, "clients": args.clients, "connected": connected,
        "failures": failures, "dropped_during_hold": dropped, "hold_seconds": held.as_secs_f64(),
        "server_pids": args.server_pids,
        "rss_before_mib": sample.map(|s| s.rss_before as f64 / MIB),
        "rss_after_mib": sample.map(|s| s.rss_after as f64 / MIB),
        "rss_per_connection_kib": sample.map(per_connection_kib),
        "idle_cpu_percent_of_one_core": sample.map(cpu_percent),
    });
    let cell = |value: Option<f64>, unit: &str| value.map_or("n/a".to_owned(), |v| format!("{v:.1}{unit}"));
    let row = vec![
        args.target.label.clone(),
        connected.to_string(),
        cell(sample.map(|s| s.rss_before as f64 / MIB), " MiB"),
        cell(sample.map(|s| s.rss_after as f64 / MIB), " MiB"),
        cell(sample.map(per_connection_kib), " KiB"),
        cell(sample.map(cpu_percent), " %"),
        (failures + dropped).to_string(),
    ];
    let header = [
        "label",
        "sockets",
        "RSS before",
        "RSS after hold",
        "RSS per connection",
        "idle CPU (one core)",
        "failed + dropped",
    ];
    report::emit(args.target.json.as_deref(), &result, &header, &[row])
}
