//! `rest`: concurrent clients (closed loop) reading for one user who is in 1,000
//! conversations with unread messages: a history page, the conversation list and the
//! unread counts, one route after the other. Reports p50/p99 and requests/s per route.
//!
//! Setup (fresh users each run, so that repeated runs on one database do not pile up): a
//! reader and a writer; the reader creates `--conversations` groups with the writer; the
//! writer posts `--unread` messages in each, and `--history` more in the first
//! `--history-conversations`, so that a history page is full (limit=50).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::json;

use crate::{
    Target,
    api::Api,
    pool::run_bounded,
    report::{self, histogram, ms, percentiles, record},
};

/// Setup requests in flight.
const SETUP_CONCURRENCY: usize = 8;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Clients requesting at the same time (each sends its next request when the last ends).
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Conversations of the reader.
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// Unread messages in every conversation.
    #[arg(long, default_value_t = 2)]
    unread: usize,
    /// Conversations that get a longer history; the history route cycles through them.
    #[arg(long, default_value_t = 10)]
    history_conversations: usize,
    /// Extra messages in each of those.
    #[arg(long, default_value_t = 100)]
    history: usize,
    /// Seconds measured per route (after the warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up per route, excluded from the results.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
}

/// A route under test: its name and the paths its requests cycle through.
struct Route {
    name: &'static str,
    paths: Vec<String>,
}

/// What the clients measured on one route.
struct RouteStats {
    latency: Histogram<u64>,
    requests: u64,
    errors: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.history_conversations == 0 || args.history_conversations > args.conversations {
        bail!("need 1 ≤ --history-conversations ≤ --conversations");
    }
    let api = args.target.api();
    let (token, conversations) = setup(&api, &args).await?;
    let history = conversations[..args.history_conversations]
        .iter()
        .map(|id| format!("/api/conversations/{id}/messages?limit=50"));
    let routes = [
        Route { name: "GET /api/conversations/:id/messages?limit=50", paths: history.collect() },
        Route { name: "GET /api/conversations?limit=50", paths: vec!["/api/conversations?limit=50".into()] },
        Route { name: "GET /api/conversations/unread-count", paths: vec!["/api/conversations/unread-count".into()] },
    ];
    let mut results = Vec::new();
    for route in &routes {
        eprintln!("{}: {} clients for {} s…", route.name, args.concurrency, args.warmup + args.duration);
        results.push(load(&api, &token, route, &args).await?);
    }
    report(&args, &routes, &results)
}

/// Creates the reader's conversations and the unread messages; returns the reader's token
/// and the conversation ids.
async fn setup(api: &Api, args: &Args) -> anyhow::Result<(String, Vec<String>)> {
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (_, reader) = api.register(&format!("reader.{run}@example.com"), "Reader").await?;
    let (writer_id, writer) = api.register(&format!("writer.{run}@example.com"), "Writer").await?;
    let started = Instant::now();
    let created = run_bounded((0..args.conversations).collect(), SETUP_CONCURRENCY, |i| {
        let (api, reader, others) = (api.clone(), reader.clone(), [writer_id.clone()]);
        async move { api.create_group(&reader, &format!("g{i}"), &others).await }
    })
    .await;
    let conversations = created.into_iter().collect::<anyhow::Result<Vec<String>>>()?;
    let mut posts: Vec<(String, usize)> = Vec::new();
    for (i, conversation) in conversations.iter().enumerate() {
        let count = args.unread + if i < args.history_conversations { args.history } else { 0 };
        posts.extend((0..count).map(|n| (conversation.clone(), n)));
    }
    let expected_unread = posts.len();
    let posted =
        run_bounded(posts, SETUP_CONCURRENCY, |(conversation, n)| {
            let (api, writer) = (api.clone(), writer.clone());
            async move {
                api.post_message(&writer, &conversation, &format!("{conversation}-{n}"), &format!("unread {n}")).await
            }
        })
        .await;
    posted.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let unread = api.call(Method::GET, "/api/conversations/unread-count", Some(&reader), None).await?;
    let total = unread["total"].as_u64().context("unread total")?;
    if total != expected_unread as u64 {
        bail!("the reader has {total} unread messages, expected {expected_unread}");
    }
    eprintln!(
        "setup: {} conversations, {total} unread messages in {:.1} s",
        conversations.len(),
        started.elapsed().as_secs_f64()
    );
    Ok((reader, conversations))
}

/// `--concurrency` clients on one route for warm-up + duration.
async fn load(api: &Api, token: &str, route: &Route, args: &Args) -> anyhow::Result<RouteStats> {
    let started = Instant::now();
    let measure_from = started + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let urls: Arc<[String]> = route.paths.iter().map(|path| format!("{}{path}", api.base())).collect();
    let turn = Arc::new(AtomicUsize::new(0));
    let clients = run_bounded((0..args.concurrency).collect(), args.concurrency, |_| {
        let (http, token, urls, turn) = (api.http().clone(), token.to_owned(), urls.clone(), turn.clone());
        async move {
            let mut stats = RouteStats { latency: histogram(), requests: 0, errors: 0 };
            while Instant::now() < end {
                let url = &urls[turn.fetch_add(1, Ordering::Relaxed) % urls.len()];
                let sent = Instant::now();
                let ok = get(&http, url, &token).await;
                if sent >= measure_from {
                    stats.requests += 1;
                    stats.errors += !ok as u64;
                    record(&mut stats.latency, sent.elapsed().as_micros() as u64);
                }
            }
            Ok(stats)
        }
    })
    .await;
    let mut total = RouteStats { latency: histogram(), requests: 0, errors: 0 };
    for client in clients {
        let client = client?;
        total.latency.add(&client.latency)?;
        total.requests += client.requests;
        total.errors += client.errors;
    }
    Ok(total)
}

/// One GET, body read to the end; true on a 2xx.
async fn get(http: &reqwest::Client, url: &str, token: &str) -> bool {
    match http.get(url).bearer_auth(token).send().await {
        Ok(reply) => {
            let ok = reply.status().is_success();
            reply.bytes().await.is_ok() && ok
        }
        Err(_) => false,
    }
}

fn report(args: &Args, routes: &[Route], results: &[RouteStats]) -> anyhow::Result<()> {
    let seconds = args.duration as f64;
    let per_route: Vec<_> = routes
        .iter()
        .zip(results)
        .map(|(route, stats)| {
            json!({
                "route": route.name, "requests": stats.requests, "errors": stats.errors,
                "requests_per_second": stats.requests as f64 / seconds, "latency": percentiles(&stats.latency),
            })
        })
        .collect();
    let result = json!({
        "scenario": "rest", "label": args.target.label, "concurrency": args.concurrency,
        "conversations": args.conversations, "seconds_per_route": args.duration, "routes": per_route,
    });
    let rows: Vec<Vec<String>> = routes
        .iter()
        .zip(results)
        .map(|(route, stats)| {
            vec![
                args.target.label.clone(),
                format!("`{}`", route.name),
                args.concurrency.to_string(),
                format!("{:.0}", stats.requests as f64 / seconds),
                format!("{:.2}", ms(&stats.latency, 0.5)),
                format!("{:.2}", ms(&stats.latency, 0.99)),
                stats.errors.to_string(),
            ]
        })
        .collect();
    let header = ["label", "route", "concurrency", "req/s", "p50 ms", "p99 ms", "errors"];
    report::emit(args.target.json.as_deref(), &result, &header, &rows)
}
