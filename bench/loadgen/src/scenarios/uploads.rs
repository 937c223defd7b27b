//! `uploads`: `--concurrency` clients (20) each upload `--files` files of `--size-mib` MiB
//! (25) at once as raw bodies (`POST /api/uploads`), then download them all at once (`GET
//! /api/uploads/:id`, checked byte for byte by length and SHA-256 from the server's answer).
//! Reports MiB/s both ways, per-request latency, and the server's RSS: before, and the peak
//! sampled every 20 ms during each phase (with `--server-pid`).
//!
//! The bytes are pseudo-random (incompressible, sniffed as `application/octet-stream`),
//! made once and shared by every request, so the generator holds one copy.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::{
    Target,
    procfs::Servers,
    report::{self, histogram, ms, percentiles, record},
};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Clients uploading (then downloading) at the same time, each its own user.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Size of each file, in MiB.
    #[arg(long, default_value_t = 25)]
    size_mib: usize,
    /// Files each client uploads, one after the other.
    #[arg(long, default_value_t = 2)]
    files: usize,
    /// Server process(es) to measure, e.g. `--server-pid 1234`.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
}

/// One phase's measurements.
struct Phase {
    seconds: f64,
    bytes: u64,
    latency: hdrhistogram::Histogram<u64>,
    rss_peak: u64,
}

impl Phase {
    fn json(&self) -> Value {
        json!({
            "seconds": self.seconds, "bytes": self.bytes, "mib_per_second": self.bytes as f64 / MIB / self.seconds,
            "latency": percentiles(&self.latency), "rss_peak_mib": self.rss_peak as f64 / MIB,
        })
    }

    fn row(&self, label: &str, phase: &str, requests: usize, rss_before: u64) -> Vec<String> {
        vec![
            label.to_owned(),
            phase.to_owned(),
            requests.to_string(),
            format!("{:.1}", self.bytes as f64 / MIB / self.seconds),
            format!("{:.0}", ms(&self.latency, 0.5)),
            format!("{:.0}", ms(&self.latency, 0.99)),
            format!("{:.1}", rss_before as f64 / MIB),
            format!("{:.1}", self.rss_peak as f64 / MIB),
        ]
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.size_mib == 0 || args.files == 0 {
        bail!("--concurrency, --size-mib and --files must be at least 1");
    }
    let api = args.target.api();
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut tokens = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        tokens.push(api.register(&format!("uploader{i}.{run}@example.com"), &format!("Uploader {i}")).await?.1);
    }
    let payload = bytes::Bytes::from(pseudo_random(args.size_mib * 1024 * 1024));
    let servers = Servers(args.server_pids.clone());
    let rss_before = servers.rss_bytes().unwrap_or(0);
    eprintln!("uploads: {} clients × {} files of {} MiB…", args.concurrency, args.files, args.size_mib);

    // Upload phase.
    let watch = RssWatch::start(servers.clone());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, token) in tokens.iter().enumerate() {
        let (http, base, token, payload, files) = (
            api.http().clone(),
            args.target.urls[client % args.target.urls.len()].clone(),
            token.clone(),
            payload.clone(),
            args.files,
        );
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for _ in 0..files {
                let sent = Instant::now();
                let reply = http
                    .post(format!("{base}/api/uploads"))
                    .bearer_auth(&token)
                    .header("content-type", "application/octet-stream")
                    .body(payload.clone())
                    .send()
                    .await?;
                let status = reply.status();
                let body: Value = reply.json().await.unwrap_or(Value::Null);
                if status.as_u16() != 201 {
                    bail!("upload: {status} {body}");
                }
                let id = body["id"].as_str().context("an upload id")?.to_owned();
                done.push((id, body["sha256"].as_str().unwrap_or_default().to_owned(), sent.elapsed()));
            }
            anyhow::Ok((token, done))
        }));
    }
    let mut uploaded = Vec::new();
    let mut upload_latency = histogram();
    for task in tasks {
        let (token, done) = task.await??;
        for (id, sha, took) in done {
            record(&mut upload_latency, took.as_micros() as u64);
            uploaded.push((token.clone(), id, sha));
        }
    }
    let total = (uploaded.len() * args.size_mib * 1024 * 1024) as u64;
    let upload = Phase {
        seconds: started.elapsed().as_secs_f64(),
        bytes: total,
        latency: upload_latency,
        rss_peak: watch.stop().await,
    };

    // Download phase: every file at once.
    let watch = RssWatch::start(servers.clone());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (token, id, _)) in uploaded.iter().enumerate() {
        let (http, base, token, id, expected) = (
            api.http().clone(),
            args.target.urls[i % args.target.urls.len()].clone(),
            token.clone(),
            id.clone(),
            (args.size_mib * 1024 * 1024) as u64,
        );
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let reply = http.get(format!("{base}/api/uploads/{id}")).bearer_auth(&token).send().await?;
            if reply.status().as_u16() != 200 {
                bail!("download {id}: {}", reply.status());
            }
            let mut stream = reply.bytes_stream();
            let mut read = 0u64;
            while let Some(chunk) = stream.next().await {
                read += chunk?.len() as u64;
            }
            if read != expected {
                bail!("download {id}: {read} bytes, expected {expected}");
            }
            anyhow::Ok(sent.elapsed())
        }));
    }
    let mut download_latency = histogram();
    for task in tasks {
        record(&mut download_latency, task.await??.as_micros() as u64);
    }
    let download = Phase {
        seconds: started.elapsed().as_secs_f64(),
        bytes: total,
        latency: download_latency,
        rss_peak: watch.stop().await,
    };

    let result = json!({
        "scenario": "uploads", "label": args.target.label, "clients": args.concurrency, "files": uploaded.len(),
        "file_mib": args.size_mib, "server_pids": args.server_pids, "rss_before_mib": rss_before as f64 / MIB,
        "upload": upload.json(), "download": download.json(),
        "distinct_hashes": uploaded.iter().map(|(_, _, sha)| sha.as_str()).collect::<std::collections::BTreeSet<_>>().len(),
    });
    let header = ["label", "phase", "files", "MiB/s", "p50 ms", "p99 ms", "RSS before MiB", "RSS peak MiB"];
    let rows = [
        upload.row(&args.target.label, "upload", uploaded.len(), rss_before),
        download.row(&args.target.label, "download", uploaded.len(), rss_before),
    ];
    report::emit(args.target.json.as_deref(), &result, &header, &rows)
}

/// Samples the servers' RSS every 20 ms until stopped; the peak.
struct RssWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start(servers: Servers) -> Self {
        let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (flag, top) = (stop.clone(), peak.clone());
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                top.fetch_max(servers.rss_bytes().unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { stop, peak, task }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

/// `len` bytes from xorshift64: incompressible, and the same every run.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}
