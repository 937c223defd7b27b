//! `search`: concurrent clients (closed loop) searching messages (`GET /api/search/messages`,
//! issue 18) in a database that `search-seed` filled: by default 1,000 groups of 10 to 30
//! members with 1,000 messages each. Each request is made by a random member and asks for
//! one or two words of the corpus's vocabulary (see [`MIX`]). Reports p50/p90/p99/max,
//! requests/s and the mean number of results, overall and per kind of query. Latency is
//! measured at the client, from sending the request to the end of the body. Any answer but
//! a 2xx fails the run (after the report).

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, de::IgnoredAny};
use serde_json::{Value, json};

use crate::{
    Target,
    corpus::{Corpus, Rng},
    pool::run_bounded,
    report::{self, histogram, ms, percentiles, record},
    users::{self, User},
};

/// A request that takes longer than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Vocabulary ranks (0-based, the most frequent first) of the frequent and the medium
/// words; the rare ones are the rest. With the default corpus a frequent word is in 0.6 %
/// ("talk") to 56 % ("the") of the messages, a medium one in 0.09 % to 0.6 %, a rare one in
/// 0.03 % to 0.09 %.
const FREQUENT: (usize, usize) = (0, 200);
const MEDIUM: (usize, usize) = (200, 1500);
/// Failed requests quoted in the result.
const ERROR_SAMPLES: usize = 5;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Users file (see the `users` subcommand): the tokens of the corpus's users.
    #[arg(long)]
    users_file: PathBuf,
    /// The corpus file `search-seed` wrote when it seeded the server's database.
    #[arg(long)]
    corpus: PathBuf,
    /// Clients searching at the same time (each sends its next request when the last ends).
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Measure this many requests instead of `--duration` seconds.
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds of warm-up, excluded from the results.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Page size (`limit`, 1–100); without it the server's default (50).
    #[arg(long)]
    limit: Option<u32>,
    /// Seed of the queries.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only this kind of query (`frequent`, `medium`, …, `absent`) instead of the mix: e.g.
    /// `absent` measures what a search costs besides its matches.
    #[arg(long, value_parser = parse_kind)]
    only: Option<Kind>,
}

fn parse_kind(name: &str) -> Result<Kind, String> {
    MIX.iter().map(|(kind, _)| *kind).find(|kind| kind.name() == name).ok_or_else(|| {
        let names: Vec<_> = MIX.iter().map(|(kind, _)| kind.name()).collect();
        format!("one of {}", names.join(", "))
    })
}

/// The kinds of query, in the order of [`MIX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// One of the 200 most frequent words.
    Frequent,
    /// A word of rank 201 to 1,500.
    Medium,
    /// A word of rank 1,501 or more.
    Rare,
    /// The first three letters of a frequent or medium word (of four letters or more).
    Prefix,
    /// A frequent word and a medium one: messages with both.
    TwoWords,
    /// A Thai word, drawn as the Thai messages draw them.
    Thai,
    /// A frequent or medium word within one of the user's conversations (`conversationId`).
    InConversation,
    /// A word no message has.
    Absent,
}

/// The query mix: each kind (in declaration order) and its share of the requests, in %.
const MIX: [(Kind, usize); 8] = [
    (Kind::Frequent, 25),
    (Kind::Medium, 20),
    (Kind::Rare, 10),
    (Kind::Prefix, 10),
    (Kind::TwoWords, 10),
    (Kind::Thai, 10),
    (Kind::InConversation, 10),
    (Kind::Absent, 5),
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Frequent => "frequent",
            Kind::Medium => "medium",
            Kind::Rare => "rare",
            Kind::Prefix => "prefix",
            Kind::TwoWords => "two_words",
            Kind::Thai => "thai",
            Kind::InConversation => "in_conversation",
            Kind::Absent => "absent",
        }
    }
}

/// One request to make.
struct Query {
    kind: Kind,
    /// Index into the corpus's users.
    user: usize,
    text: String,
    /// Index into the corpus's conversations.
    conversation: Option<usize>,
}

/// Draws the queries from the corpus.
struct Queries {
    corpus: Corpus,
    /// The conversations (indexes) of each user.
    memberships: Vec<Vec<usize>>,
    /// `--only`: every query of this kind.
    only: Option<Kind>,
}

impl Queries {
    fn new(corpus: Corpus, only: Option<Kind>) -> anyhow::Result<Self> {
        if corpus.users.is_empty() || corpus.vocabulary.is_empty() {
            bail!("the corpus has no users or no vocabulary");
        }
        let mut memberships = vec![Vec::new(); corpus.users.len()];
        for (i, conversation) in corpus.conversations.iter().enumerate() {
            for &member in &conversation.members {
                memberships.get_mut(member).context("a member of the corpus is not one of its users")?.push(i);
            }
        }
        Ok(Self { corpus, memberships, only })
    }

    fn next(&self, rng: &mut Rng) -> Query {
        let user = rng.below(self.corpus.users.len());
        let words = &self.corpus.vocabulary;
        let thai = &self.corpus.thai;
        let kind = self.only.unwrap_or_else(|| pick_kind(rng));
        let mut conversation = None;
        let text = match kind {
            Kind::Frequent => pick(rng, words, FREQUENT).to_owned(),
            Kind::Medium => pick(rng, words, MEDIUM).to_owned(),
            Kind::Rare => pick(rng, words, (MEDIUM.1, words.len())).to_owned(),
            Kind::Prefix => prefix(rng, words),
            Kind::TwoWords => format!("{} {}", pick(rng, words, FREQUENT), pick(rng, words, MEDIUM)),
            Kind::Thai if !thai.is_empty() => thai[rng.zipf(thai.len())].clone(),
            Kind::Thai => pick(rng, words, FREQUENT).to_owned(),
            Kind::InConversation => {
                let mine = &self.memberships[user];
                if !mine.is_empty() {
                    conversation = Some(mine[rng.below(mine.len())]);
                }
                pick(rng, words, (FREQUENT.0, MEDIUM.1)).to_owned()
            }
            Kind::Absent => {
                // No generated word has a q, an x or a "zq".
                let letters: String = (0..4).map(|_| char::from(b'a' + rng.below(26) as u8)).collect();
                format!("qzx{letters}")
            }
        };
        Query { kind, user, text, conversation }
    }

    /// The query string of a request.
    fn params(&self, query: &Query, limit: Option<u32>) -> Vec<(&'static str, String)> {
        let mut params = vec![("q", query.text.clone())];
        if let Some(conversation) = query.conversation {
            params.push(("conversationId", self.corpus.conversations[conversation].id.clone()));
        }
        if let Some(limit) = limit {
            params.push(("limit", limit.to_string()));
        }
        params
    }
}

fn pick_kind(rng: &mut Rng) -> Kind {
    let total: usize = MIX.iter().map(|(_, share)| share).sum();
    let mut roll = rng.below(total);
    for (kind, share) in MIX {
        if roll < share {
            return kind;
        }
        roll -= share;
    }
    Kind::Frequent
}

/// A word of ranks `[from, to)` (clamped to the vocabulary), uniformly.
fn pick<'a>(rng: &mut Rng, words: &'a [String], (from, to): (usize, usize)) -> &'a str {
    let to = to.clamp(1, words.len());
    let from = from.min(to - 1);
    &words[from + rng.below(to - from)]
}

/// The first three letters of a frequent or medium word of four letters or more.
fn prefix(rng: &mut Rng, words: &[String]) -> String {
    for _ in 0..100 {
        let word = pick(rng, words, (FREQUENT.0, MEDIUM.1));
        if word.chars().count() >= 4 {
            return word.chars().take(3).collect();
        }
    }
    pick(rng, words, FREQUENT).to_owned()
}

/// The fields of a search page the scenario reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    results: Vec<IgnoredAny>,
    has_more: bool,
}

/// What the clients measured for one kind of query.
#[derive(Clone)]
struct KindStats {
    latency: Histogram<u64>,
    requests: u64,
    errors: u64,
    results: u64,
    /// Pages with more after them (`hasMore`).
    full_pages: u64,
}

impl KindStats {
    fn new() -> Self {
        Self { latency: histogram(), requests: 0, errors: 0, results: 0, full_pages: 0 }
    }

    fn add(&mut self, other: &KindStats) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        self.requests += other.requests;
        self.errors += other.errors;
        self.results += other.results;
        self.full_pages += other.full_pages;
        Ok(())
    }

    fn mean_results(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.results as f64 / self.requests as f64 }
    }
}

/// What one client (or all) measured.
struct Stats {
    /// Indexed by `Kind as usize`.
    kinds: Vec<KindStats>,
    error_samples: Vec<String>,
    /// When the last measured request ended.
    last_done: Option<Instant>,
}

impl Stats {
    fn new() -> Self {
        Self { kinds: vec![KindStats::new(); MIX.len()], error_samples: Vec::new(), last_done: None }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let corpus = Corpus::load(&args.corpus)?;
    let api = args.target.api();
    let users = users::ensure(&api, Some(args.users_file.as_path()), corpus.users.len()).await?;
    if users.len() < corpus.users.len()
        || users.iter().zip(&corpus.users).any(|(user, id)| !user.id.eq_ignore_ascii_case(id))
    {
        bail!("the users file is not the one the corpus was made from (search-seed --users-file)");
    }
    let summary = json!({
        "conversations": corpus.conversations.len(), "messages": corpus.messages(), "members": corpus.users.len(),
        "vocabulary": corpus.vocabulary.len(), "thai_words": corpus.thai.len(), "thai_share": corpus.thai_share,
        "seed": corpus.seed,
    });
    let queries = Queries::new(corpus, args.only)?;
    probe(api.http(), &args, &queries, &users).await?;
    eprintln!(
        "search: {} clients for {}…",
        args.concurrency,
        match args.requests {
            Some(requests) => format!("{} s of warm-up then {requests} requests", args.warmup),
            None => format!("{} s", args.warmup + args.duration),
        }
    );
    let (stats, seconds) = load(&args, api.http(), Arc::new(queries), users.into()).await?;
    report(&args, &summary, &stats, seconds)
}

/// Fails early if the database was not seeded with this corpus: a member searching for the
/// most frequent word must find messages.
async fn probe(http: &reqwest::Client, args: &Args, queries: &Queries, users: &[User]) -> anyhow::Result<()> {
    let user = queries.memberships.iter().position(|mine| !mine.is_empty()).context("no user is in a conversation")?;
    let query = Query { kind: Kind::Frequent, user, text: queries.corpus.vocabulary[0].clone(), conversation: None };
    let url = search_url(&args.target.urls[0]);
    let (_, page) = search(http, &url, &users[user].token, &queries.params(&query, args.limit))
        .await
        .map_err(|err| anyhow::anyhow!("probe search {:?} failed: {err}", query.text))?;
    if page.results.is_empty() {
        bail!(
            "a member searching {:?} found nothing: was the database seeded by search-seed with this corpus?",
            query.text
        );
    }
    Ok(())
}

fn search_url(base: &str) -> String {
    format!("{}/api/search/messages", base.trim_end_matches('/'))
}

/// `--concurrency` clients for warm-up + duration (or until `--requests` were measured);
/// returns what they measured and the seconds it took after the warm-up.
async fn load(
    args: &Args,
    http: &reqwest::Client,
    queries: Arc<Queries>,
    users: Arc<[User]>,
) -> anyhow::Result<(Stats, f64)> {
    let measure_from = Instant::now() + Duration::from_secs(args.warmup);
    let end = args.requests.is_none().then(|| measure_from + Duration::from_secs(args.duration));
    let urls: Arc<[String]> = args.target.urls.iter().map(|base| search_url(base)).collect();
    let issued = Arc::new(AtomicU64::new(0));
    let clients = run_bounded((0..args.concurrency).collect(), args.concurrency, |i: usize| {
        let (http, queries, users, urls, issued) =
            (http.clone(), queries.clone(), users.clone(), urls.clone(), issued.clone());
        let (limit, requests) = (args.limit, args.requests);
        let mut rng = Rng::new(args.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        async move {
            let url = &urls[i % urls.len()];
            let mut stats = Stats::new();
            loop {
                let now = Instant::now();
                if end.is_some_and(|end| now >= end) {
                    break;
                }
                let measured = now >= measure_from;
                if measured
                    && let Some(requests) = requests
                    && issued.fetch_add(1, Ordering::Relaxed) >= requests
                {
                    break;
                }
                let query = queries.next(&mut rng);
                let params = queries.params(&query, limit);
                let outcome = search(&http, url, &users[query.user].token, &params).await;
                let kind = &mut stats.kinds[query.kind as usize];
                match outcome {
                    Ok((took, page)) => {
                        if measured {
                            record(&mut kind.latency, took.as_micros() as u64);
                            kind.requests += 1;
                            kind.results += page.results.len() as u64;
                            kind.full_pages += page.has_more as u64;
                        }
                    }
                    // Errors count in the warm-up too: any fails the run.
                    Err(error) => {
                        kind.errors += 1;
                        if stats.error_samples.len() < ERROR_SAMPLES {
                            let within = query.conversation.map_or(String::new(), |c| format!(" in conversation {c}"));
                            stats.error_samples.push(format!("{:?}{within}: {error}", query.text));
                        }
                    }
                }
                if measured {
                    stats.last_done = Some(Instant::now());
                }
            }
            Ok(stats)
        }
    })
    .await;
    let mut total = Stats::new();
    for client in clients {
        let client = client?;
        for (sum, kind) in total.kinds.iter_mut().zip(&client.kinds) {
            sum.add(kind)?;
        }
        total.error_samples.extend(client.error_samples);
        total.last_done = total.last_done.max(client.last_done);
    }
    total.error_samples.truncate(ERROR_SAMPLES);
    let seconds = match total.last_done {
        Some(done) if done > measure_from => done.duration_since(measure_from).as_secs_f64(),
        _ => args.duration as f64,
    };
    Ok((total, seconds))
}

/// One search, its body read to the end: the time it took and the page, or why it failed.
async fn search(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    params: &[(&'static str, String)],
) -> Result<(Duration, Page), String> {
    let sent = Instant::now();
    let request = http.get(url).bearer_auth(token).query(params).timeout(REQUEST_TIMEOUT);
    let reply = request.send().await.map_err(|err| err.to_string())?;
    let status = reply.status();
    let body = reply.bytes().await.map_err(|err| err.to_string())?;
    let took = sent.elapsed();
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        return Err(format!("{status}: {text}"));
    }
    let page: Page = serde_json::from_slice(&body).map_err(|err| format!("unreadable page: {err}"))?;
    Ok((took, page))
}

fn report(args: &Args, corpus: &Value, stats: &Stats, seconds: f64) -> anyhow::Result<()> {
    let mut all = KindStats::new();
    for kind in &stats.kinds {
        all.add(kind)?;
    }
    let per_second = |s: &KindStats| s.requests as f64 / seconds;
    let per_kind: Vec<_> = MIX
        .iter()
        .zip(&stats.kinds)
        .map(|((kind, share), s)| {
            json!({
                "kind": kind.name(), "share_pct": share, "requests": s.requests, "errors": s.errors,
                "requests_per_second": per_second(s), "mean_results": s.mean_results(),
                "full_pages": s.full_pages, "latency": percentiles(&s.latency),
            })
        })
        .collect();
    let result = json!({
        "scenario": "search", "label": args.target.label, "urls": args.target.urls, "corpus": corpus,
        "concurrency": args.concurrency, "seconds": seconds, "limit": args.limit, "seed": args.seed,
        "requests": all.requests, "errors": all.errors, "error_samples": stats.error_samples,
        "requests_per_second": per_second(&all), "mean_results": all.mean_results(),
        "full_pages": all.full_pages, "latency": percentiles(&all.latency), "kinds": per_kind,
    });
    let row = |name: &str, share: String, s: &KindStats| {
        vec![
            args.target.label.clone(),
            name.to_owned(),
            share,
            s.requests.to_string(),
            format!("{:.0}", per_second(s)),
            format!("{:.1}", s.mean_results()),
            format!("{:.2}", ms(&s.latency, 0.5)),
            format!("{:.2}", ms(&s.latency, 0.9)),
            format!("{:.2}", ms(&s.latency, 0.99)),
            format!("{:.2}", s.latency.max() as f64 / 1000.0),
            s.errors.to_string(),
        ]
    };
    let mut rows = vec![row("all", "100 %".to_owned(), &all)];
    for ((kind, share), s) in MIX.iter().zip(&stats.kinds) {
        rows.push(row(kind.name(), format!("{share} %"), s));
    }
    let header = [
        "label",
        "queries",
        "share",
        "requests",
        "req/s",
        "mean results",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
    ];
    report::emit(args.target.json.as_deref(), &result, &header, &rows)?;
    if all.errors > 0 {
        bail!("{} searches failed, e.g.:\n  - {}", all.errors, stats.error_samples.join("\n  - "));
    }
    Ok(())
}
