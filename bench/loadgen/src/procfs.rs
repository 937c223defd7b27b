//! Memory and CPU of the server process(es), read from /proc (Linux).

use std::time::Duration;

use anyhow::Context;

/// Clock ticks per second of /proc/<pid>/stat: USER_HZ, 100 on every Linux ABI in use.
const USER_HZ: u64 = 100;

/// The server processes a scenario watches (several with replicas: figures are summed).
#[derive(Clone, Debug)]
pub struct Servers(pub Vec<u32>);

impl Servers {
    /// Total resident set size in bytes (`VmRSS` of /proc/<pid>/status).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        self.0.iter().map(|&pid| rss_bytes(pid)).sum()
    }

    /// Total CPU time used so far (user + system).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        self.0.iter().map(|&pid| cpu_time(pid)).sum()
    }
}

fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("no process {pid}"))?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).context("no VmRSS")?;
    let kib: u64 = line.split_whitespace().nth(1).context("VmRSS value")?.parse()?;
    Ok(kib * 1024)
}

/// `utime + stime` (fields 14 and 15 of /proc/<pid>/stat, counted after the `(comm)` field,
/// which may hold spaces).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("no process {pid}"))?;
    let after_comm = &stat[stat.rfind(')').context("malformed stat")? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).context("utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// The servers' CPU time within each window `[from, to)` (instants ahead), sampled from a
/// task of its own; `None` for a window whose reading failed, or when no server is watched.
pub fn cpu_in_windows(
    servers: Servers,
    windows: Vec<(std::time::Instant, std::time::Instant)>,
) -> tokio::task::JoinHandle<Vec<Option<Duration>>> {
    tokio::spawn(async move {
        let mut spent = Vec::with_capacity(windows.len());
        for (from, to) in windows {
            if servers.0.is_empty() {
                spent.push(None);
                continue;
            }
            tokio::time::sleep_until(from.into()).await;
            let start = servers.cpu_time().ok();
            tokio::time::sleep_until(to.into()).await;
            spent.push(start.zip(servers.cpu_time().ok()).map(|(a, b)| b.saturating_sub(a)));
        }
        spent
    })
}
