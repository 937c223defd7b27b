//! Generated users, registered once and kept in a JSON file: registering costs ~16 ms of
//! Argon2 per user on the server, minutes for 15k users, which no run should pay twice.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::{api::Api, pool::run_bounded};

/// Registrations in flight: enough to keep the server's two cores on Argon2.
const REGISTER_CONCURRENCY: usize = 8;
/// Logins in flight: each holds one of the 5 attempt slots of its client address until its
/// password is verified, and all of ours come from one address.
const LOGIN_CONCURRENCY: usize = 4;
/// The file is saved after every batch, so an interrupted registration keeps its progress.
const BATCH: usize = 1000;

#[derive(clap::Args, Debug, Clone)]
pub struct UsersArgs {
    /// Users to have in the file (only the missing ones are registered).
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// The users file: JSON `{users: [{id, email, token}]}`, created if absent.
    #[arg(long)]
    pub users_file: PathBuf,
    /// Base HTTP URL of the server the users live on.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

#[derive(Serialize, Deserialize, Default)]
struct UsersFile {
    users: Vec<User>,
}

/// The `users` subcommand.
pub async fn run(args: UsersArgs) -> anyhow::Result<()> {
    let users = ensure(&Api::new(&args.url), Some(&args.users_file), args.count).await?;
    eprintln!("{}: {} users", args.users_file.display(), users.len());
    Ok(())
}

/// `count` users that can sign in on the server behind `api`: those of `file` (tokens
/// renewed if they expired), then newly registered ones, saved back to `file`. Without a
/// file, all are registered for this run only.
pub async fn ensure(api: &Api, file: Option<&Path>, count: usize) -> anyhow::Result<Vec<User>> {
    let mut users = match file {
        Some(path) if path.exists() => load(path)?,
        _ => Vec::new(),
    };
    if !users.is_empty()
        && renew_if_stale(api, &mut users).await?
        && let Some(path) = file
    {
        save(path, &users)?;
    }
    let run = uuid::Uuid::new_v4().simple().to_string();
    while users.len() < count {
        let batch: Vec<usize> = (users.len()..count.min(users.len() + BATCH)).collect();
        users.extend(register(api, &run[..8], batch).await?);
        if let Some(path) = file {
            save(path, &users)?;
        }
        eprintln!("registered users: {}/{count}", users.len());
    }
    users.truncate(count);
    Ok(users)
}

/// Users numbered `indexes`, registered with emails unique to this batch of runs.
async fn register(api: &Api, run: &str, indexes: Vec<usize>) -> anyhow::Result<Vec<User>> {
    let run = run.to_owned();
    let results = run_bounded(indexes, REGISTER_CONCURRENCY, |i| {
        let (api, email) = (api.clone(), format!("load{i}.{run}@example.com"));
        async move {
            let (id, token) = api.register(&email, &format!("Load {i}")).await?;
            Ok(User { id, email, token })
        }
    })
    .await;
    results.into_iter().collect()
}

/// Checks that the file's users live on this server; logs them all in again (and returns
/// true) if their tokens are no longer accepted (expired, or another secret) but their
/// passwords are.
async fn renew_if_stale(api: &Api, users: &mut [User]) -> anyhow::Result<bool> {
    let probe = &users[users.len() - 1];
    if api.token_works(&probe.token, &probe.id).await? {
        return Ok(false);
    }
    if api.login(&probe.email).await.is_err() {
        bail!(
            "the users of the users file are not on {} (another database?): delete the file or pass another",
            api.base()
        );
    }
    eprintln!("the users' tokens are no longer accepted: logging {} users in again…", users.len());
    let emails: Vec<String> = users.iter().map(|user| user.email.clone()).collect();
    let tokens = run_bounded(emails, LOGIN_CONCURRENCY, |email| {
        let api = api.clone();
        async move { api.login(&email).await }
    })
    .await;
    for (user, token) in users.iter_mut().zip(tokens) {
        user.token = token?;
    }
    Ok(true)
}

/// The users of a users file, in its order.
pub fn load(path: &Path) -> anyhow::Result<Vec<User>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: UsersFile = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(file.users)
}

/// Writes through a temporary file so an interrupted save never truncates the list.
fn save(path: &Path, users: &[User]) -> anyhow::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let file = UsersFile { users: users.to_vec() };
    std::fs::write(&temporary, serde_json::to_vec(&file)?)?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}
