//! `storm`: N clients connect as fast as the server accepts them (at most `--concurrency`
//! handshakes in flight), stay a few seconds, all close at once and all reconnect. Reports
//! connections/s and handshake latency of both waves and the time until all are back.

use std::{path::PathBuf, time::Duration};

use serde_json::json;

use crate::{
    Target,
    crowd::{self, Crowd, Holding},
    report::{self, p50_p99},
    users,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Clients (one user each).
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Handshakes in flight (both waves).
    #[arg(long, default_value_t = 1000)]
    concurrency: usize,
    /// Seconds all clients stay connected before they close at once.
    #[arg(long, default_value_t = 5)]
    settle: u64,
    /// Users file to reuse (see the `users` subcommand); without it, users are registered.
    #[arg(long)]
    users_file: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let users = users::ensure(&args.target.api(), args.users_file.as_deref(), args.clients).await?;
    let tokens: Vec<String> = users.into_iter().map(|user| user.token).collect();

    eprintln!("wave 1: connecting {} clients, {} in flight…", tokens.len(), args.concurrency);
    let mut first = crowd::connect(&args.target.urls, &tokens, args.concurrency).await;
    eprintln!(
        "{} connected in {:.2} s; closing all in {} s",
        first.connected_count(),
        first.elapsed.as_secs_f64(),
        args.settle
    );
    let holding = Holding::start(std::mem::take(&mut first.sockets));
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let (dropped, closing) = holding.close_all().await;

    eprintln!("wave 2: reconnecting…");
    let mut second = crowd::connect(&args.target.urls, &tokens, args.concurrency).await;
    eprintln!("{} back in {:.2} s", second.connected_count(), second.elapsed.as_secs_f64());
    let closing_all =
        std::mem::take(&mut second.sockets).into_iter().flatten().map(|socket| tokio::spawn(socket.close()));
    futures_util::future::join_all(closing_all).await;

    report(&args, &first, &second, dropped, closing)
}

fn report(args: &Args, first: &Crowd, second: &Crowd, dropped: usize, closing: Duration) -> anyhow::Result<()> {
    let result = json!({
        "scenario": "storm", "label": args.target.label, "clients": args.clients, "concurrency": args.concurrency,
        "connect": first.summary(), "dropped_while_connected": dropped, "close_all_seconds": closing.as_secs_f64(),
        "reconnect": second.summary(),
    });
    let row = vec![
        args.target.label.clone(),
        args.clients.to_string(),
        args.concurrency.to_string(),
        format!("{:.0}", first.connected_count() as f64 / first.elapsed.as_secs_f64()),
        p50_p99(&first.connected),
        p50_p99(&first.ready),
        format!("{:.2} s", second.elapsed.as_secs_f64()),
        p50_p99(&second.ready),
        (first.failures + dropped + second.failures).to_string(),
    ];
    let header = [
        "label",
        "clients",
        "in flight",
        "connections/s",
        "CONNECT ack p50 / p99 ms",
        "ready p50 / p99 ms",
        "reconnect: all back in",
        "reconnect ready p50 / p99 ms",
        "failures",
    ];
    report::emit(args.target.json.as_deref(), &result, &header, &[row])
}
