//! Parley's load generator: the scenarios of issue 7 against a Parley-compatible server,
//! each a subcommand. Clients speak raw Socket.IO v5 frames over WebSocket and use only the
//! SPEC subset: register/login, conversations, `auth.token` in the handshake,
//! `message:send` with an ack, `message:received`, three read routes and the message search
//! (issue 18, over a database seeded by SQL: `search-seed`). Every scenario prints JSON (also
//! written to `--json`) and a markdown row.

mod api;
mod corpus;
mod crowd;
mod pool;
mod procfs;
mod prom;
mod push_stub;
mod report;
mod scenarios;
mod socket;
mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "Load scenarios (issue 7) against a Parley-compatible server; see bench/README.md")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Register users once into a users file that the other scenarios reuse.
    Users(users::UsersArgs),
    /// N authenticated sockets held open: server RSS per connection and idle CPU.
    Idle(scenarios::idle::Args),
    /// N clients connect as fast as accepted, all close, all reconnect.
    Storm(scenarios::storm::Args),
    /// 1:1 chat: pairs in direct conversations sending open-loop at a fixed total rate.
    Chat(scenarios::chat::Args),
    /// One large group, a few senders: first- and last-recipient latency per message.
    Fanout(scenarios::fanout::Args),
    /// Concurrent REST reads for a user in 1,000 conversations.
    Rest(scenarios::rest::Args),
    /// Print the SQL that seeds a database for `search` (1,000 groups × 1,000 messages) and
    /// write its corpus file; run before the server starts.
    SearchSeed(corpus::SeedArgs),
    /// Concurrent message searches (`GET /api/search/messages`) over a seeded database.
    Search(scenarios::search::Args),
    /// Concurrent uploads then downloads of large files: MiB/s and the server's RSS.
    Uploads(scenarios::uploads::Args),
    /// Bounded soak: churn, sends and typing at a steady rate; RSS, tasks and typing state
    /// watched, checks fail the run.
    Soak(scenarios::soak::Args),
}

/// Where the server is and where the results go: shared by every scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// Base HTTP URL(s) of the server, comma-separated. Clients are spread round-robin over
    /// them (two replicas: the two ends of a pair are on different ones); REST setup calls
    /// go to the first.
    #[arg(long = "url", visible_alias = "urls", value_delimiter = ',', default_value = "http://127.0.0.1:3000")]
    pub urls: Vec<String>,
    /// Label of this run in the output (e.g. "sqlite 1k/s").
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Write the JSON result here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl Target {
    /// The REST client of the setup steps (first URL).
    pub fn api(&self) -> api::Api {
        api::Api::new(&self.urls[0])
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Users(args) => users::run(args).await,
        Command::Idle(args) => scenarios::idle::run(args).await,
        Command::Storm(args) => scenarios::storm::run(args).await,
        Command::Chat(args) => scenarios::chat::run(args).await,
        Command::Fanout(args) => scenarios::fanout::run(args).await,
        Command::Rest(args) => scenarios::rest::run(args).await,
        Command::SearchSeed(args) => corpus::run(args),
        Command::Search(args) => scenarios::search::run(args).await,
        Command::Soak(args) => scenarios::soak::run(args).await,
        Command::Uploads(args) => scenarios::uploads::run(args).await,
    }
}
