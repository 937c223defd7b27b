//! Parley's load generator: N authenticated Socket.IO clients over raw WebSocket frames,
//! paired in direct conversations, sending `message:send` open-loop at a fixed total rate.
//! Every payload carries its send time; the generator records the `message:sent` ack latency
//! and the send → `message:received` latency in HDR histograms, and writes JSON plus a
//! markdown row. It needs only the SPEC subset: register/login, create a direct
//! conversation, `auth` in the handshake, `message:send` with an ack, `message:received`.

mod socket;

use std::{sync::Arc, time::{Duration, Instant}};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Parser, Debug, Clone)]
#[command(about = "Open-loop 1:1 chat load against a Parley-compatible server")]
struct Args {
    /// Base HTTP URL of the server (REST and Socket.IO).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Clients (an even number: they are paired in direct conversations).
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// Total messages per second across all clients.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of sending (after connecting).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up sending excluded from the results.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Label of this run in the output (e.g. "sqlite 1k/s").
    #[arg(long, default_value = "run")]
    label: String,
    /// Write the JSON result here too.
    #[arg(long)]
    json: Option<String>,
}

/// Latencies in microseconds, 1 µs .. 60 s, 3 significant figures.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

#[derive(Default)]
struct Stats {
    ack: Option<Histogram<u64>>,
    delivery: Option<Histogram<u64>>,
    sent: u64,
    acked: u64,
    errors: u64,
    delivered: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.clients < 2 || args.clients % 2 != 0 {
        bail!("--clients must be an even number ≥ 2");
    }
    let http = reqwest::Client::new();
    eprintln!("setting up {} users and {} conversations…", args.clients, args.clients / 2);
    let users = setup(&http, &args).await?;
    eprintln!("connecting {} sockets…", args.clients);
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(users.len());
    for chunk in users.chunks(50) {
        let connecting = chunk.iter().map(|(token, _)| socket::Socket::connect(&args.url, token));
        for socket in futures_util::future::join_all(connecting).await {
            sockets.push(socket?);
        }
    }
    eprintln!("connected in {:.2} s; sending {} msg/s for {} s", started.elapsed().as_secs_f64(), args.rate, args.duration);

    let stats = Arc::new(Mutex::new(Stats { ack: Some(histogram()), delivery: Some(histogram()), ..Default::default() }));
    let epoch = Instant::now();
    let measure_from = Duration::from_secs(args.warmup);
    let run_for = Duration::from_secs(args.warmup + args.duration);
    let per_client = args.rate as f64 / args.clients as f64;
    let mut tasks = Vec::new();
    for (socket, (_, conversation)) in sockets.into_iter().zip(users.iter().cloned()) {
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            socket.run(conversation, per_client, epoch, measure_from, run_for, stats).await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let stats = stats.lock().await;
    report(&args, &stats)
}

/// Registers the users and pairs them: returns (token, conversation) per client.
async fn setup(http: &reqwest::Client, args: &Args) -> anyhow::Result<Vec<(String, String)>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut users = Vec::with_capacity(args.clients);
    for chunk in (0..args.clients).collect::<Vec<_>>().chunks(20) {
        let registering = chunk.iter().map(|i| {
            let body = json!({"email": format!("load{i}.{}@example.com", &run[..8]), "password": "load-test-password", "displayName": format!("Load {i}")});
            http.post(format!("{}/api/auth/register", args.url)).json(&body).send()
        });
        for reply in futures_util::future::join_all(registering).await {
            let reply: Value = reply?.error_for_status()?.json().await?;
            let token = reply["accessToken"].as_str().context("accessToken")?.to_owned();
            let id = reply["user"]["id"].as_str().context("user id")?.to_owned();
            users.push((token, id));
        }
    }
    let mut out = Vec::with_capacity(users.len());
    for pair in users.chunks(2) {
        let body = json!({"type": "direct", "participantIds": [pair[1].1]});
        let reply: Value = http
            .post(format!("{}/api/conversations", args.url))
            .bearer_auth(&pair[0].0)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let conversation = reply["id"].as_str().context("conversation id")?.to_owned();
        out.push((pair[0].0.clone(), conversation.clone()));
        out.push((pair[1].0.clone(), conversation));
    }
    Ok(out)
}

fn percentiles(h: &Histogram<u64>) -> Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({"count": h.len(), "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": h.max() as f64 / 1000.0})
}

fn report(args: &Args, stats: &Stats) -> anyhow::Result<()> {
    let ack = stats.ack.as_ref().context("ack histogram")?;
    let delivery = stats.delivery.as_ref().context("delivery histogram")?;
    let result = json!({
        "label": args.label, "clients": args.clients, "target_rate": args.rate, "seconds": args.duration,
        "sent": stats.sent, "acked": stats.acked, "errors": stats.errors, "delivered": stats.delivered,
        "achieved_rate": stats.acked as f64 / args.duration as f64,
        "ack_latency": percentiles(ack), "delivery_latency": percentiles(delivery),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
    }
    println!(
        "| {} | {} | {} | {:.0} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {} |",
        args.label, args.clients, args.rate, stats.acked as f64 / args.duration as f64,
        ack.value_at_quantile(0.5) as f64 / 1000.0, ack.value_at_quantile(0.99) as f64 / 1000.0, ack.value_at_quantile(0.999) as f64 / 1000.0,
        delivery.value_at_quantile(0.5) as f64 / 1000.0, delivery.value_at_quantile(0.99) as f64 / 1000.0, delivery.value_at_quantile(0.999) as f64 / 1000.0,
        stats.errors,
    );
    Ok(())
}
