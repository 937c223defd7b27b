//! The corpus of the `search` scenario (issue 18): a vocabulary, group conversations whose
//! members are users of the users file, and the SQL that fills a run's database with their
//! messages (`search-seed`). A million messages would take hours through the API, so they
//! are written by SQL into the database before the server starts; the database draws the
//! words itself (`random()`), which keeps the SQL small. The corpus file written alongside
//! tells the `search` scenario the vocabulary and who is in which conversation.
//!
//! The text: 5 to 20 words per message, drawn from a Zipf-like distribution (exponent 1: the
//! word of rank r, from 1, has probability ln((r+1)/r) / ln(n+1)) over common English words
//! followed by generated pseudo-words, so a few words are in most messages and most words in
//! few; a share of the messages (10 %) are Thai, drawn the same way from Thai words. Words
//! are separated by spaces (Thai too, so that each is a word for both full-text indexes).

use std::{
    collections::HashSet,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::users;

const DAY_MS: i64 = 86_400_000;
/// Words per message: uniform in this range.
const MIN_WORDS: usize = 5;
const MAX_WORDS: usize = 20;
/// Rows per `INSERT … VALUES` statement.
const ROWS_PER_INSERT: usize = 500;

/// Common English words, the most frequent first: the top ranks of the vocabulary.
const ENGLISH: &str = "
    the i you to a and it is that we for in of on be this have my me not just so do can are with but what will
    at was if all get your know no yes ok like now up out go about one there they how good think see need time
    today tomorrow when then here sure thanks please let make want from more would back new work call meeting
    later also could should right well really some maybe still going done send check looks great sorry first
    last next week day night morning lunch coffee team project release deploy build test review bug fix issue
    server client update change file link doc plan idea question answer problem before after again soon already
    home office free busy late early happy nice cool love hey hello bye people everyone someone something
    nothing because only even much many very too which who where why our their them him her she he us been had
    did has were said tell ask try use find give take come look keep start stop wait help put read write run
    show hear feel leave meet pay buy open close move live play talk watch learn remember forget agree hope
    guess weekend monday friday dinner train flight hotel ticket price money order customer design photo video
    music game movie";

/// Thai words, the most frequent first: the vocabulary of the Thai messages. Each is one
/// word for PostgreSQL's `simple` parser and for FTS5's `unicode61` with combining marks.
const THAI: &str = "
    ครับ ค่ะ ไม่ ได้ ไป มา แล้ว ยัง อะไร เรา คุณ ผม ฉัน วันนี้ พรุ่งนี้ ตอนนี้ เดี๋ยว สวัสดี ขอบคุณ ประชุม ทำงาน
    กิน ข้าว งาน เวลา ที่ไหน เมื่อไหร่ ทำไม อย่างไร เท่าไหร่ ใคร เขา เพื่อน บ้าน ร้าน กาแฟ น้ำ อาหาร อร่อย สนุก
    สบายดี โทร ส่ง ไฟล์ รูป ลูกค้า โปรเจกต์ ทดสอบ ระบบ ข้อความ ค้นหา นาที ชั่วโมง เช้า เย็น เมื่อวาน กรุงเทพ
    เชียงใหม่ ตลาด รถไฟ สนามบิน เดินทาง ช่วย ด้วย เสร็จ เริ่ม รอ เจอ คิดถึง ขอโทษ ไม่เป็นไร โอเค จริง มาก
    นิดหน่อย";

/// Syllables of the generated pseudo-words.
const ONSETS: &[&str] = &[
    "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "dr", "gr", "kr", "pl", "st",
    "tr", "sh", "ch", "th",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ei", "ou", "ia"];
const CODAS: &[&str] = &["", "", "", "", "n", "r", "l", "s", "t", "m", "k"];

/// Which database the SQL is for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SeedArgs {
    /// The database the SQL is written for (SQLite: pipe into `sqlite3 -bail <data dir>/parley.db`;
    /// PostgreSQL: into `psql -v ON_ERROR_STOP=1`), before the server starts.
    #[arg(long, value_enum)]
    backend: Backend,
    /// Users file (see the `users` subcommand) of the users already in that database; its
    /// first `--users` users are the members.
    #[arg(long)]
    users_file: PathBuf,
    /// Where to write the corpus for the `search` scenario.
    #[arg(long)]
    corpus: PathBuf,
    /// Group conversations.
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// Messages in each conversation.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Users who are members (the first of the users file).
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Fewest members of a conversation.
    #[arg(long, default_value_t = 10)]
    min_members: usize,
    /// Most members of a conversation (uniform in between: 20 on average, so each of 1,000
    /// users is in ~20 of 1,000 conversations).
    #[arg(long, default_value_t = 30)]
    max_members: usize,
    /// Generated pseudo-words after the common English ones.
    #[arg(long, default_value_t = 5000)]
    words: usize,
    /// Share of the messages that are Thai.
    #[arg(long, default_value_t = 0.1)]
    thai_share: f64,
    /// Days of history the messages span, up to now.
    #[arg(long, default_value_t = 180)]
    days: i64,
    /// Seed of the vocabulary, the memberships and the ids (not of the message text, which
    /// the database draws).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// What `search-seed` wrote into the database, as the `search` scenario needs it.
#[derive(Serialize, Deserialize, Debug)]
pub struct Corpus {
    /// Ids of the users who are members: the first ones of the users file, in its order.
    pub users: Vec<String>,
    pub conversations: Vec<Conversation>,
    /// The vocabulary of the non-Thai messages, the most frequent first (see the module doc).
    pub vocabulary: Vec<String>,
    /// The vocabulary of the Thai messages, the most frequent first.
    pub thai: Vec<String>,
    pub messages_per_conversation: usize,
    pub thai_share: f64,
    /// Time of the first message slot (Unix ms); message `seq` of every conversation is at a
    /// random time within `[first_message_ms + (seq - 1) * step_ms, first_message_ms + seq * step_ms)`.
    pub first_message_ms: i64,
    pub step_ms: i64,
    pub seed: u64,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Conversation {
    pub id: String,
    /// Indexes into [`Corpus::users`]; the first is the owner.
    pub members: Vec<usize>,
    pub created_ms: i64,
}

impl Corpus {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec(self)?).with_context(|| format!("writing {}", path.display()))
    }

    /// The total number of messages.
    pub fn messages(&self) -> usize {
        self.conversations.len() * self.messages_per_conversation
    }
}

/// SplitMix64: a small, seedable generator (the load generator has no `rand` dependency).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index in `0..n` (`n` > 0) drawn like the words of the messages: index i with
    /// probability ln((i+2)/(i+1)) / ln(n+1).
    pub fn zipf(&mut self, n: usize) -> usize {
        let rank = ((n + 1) as f64).powf(self.fraction()) as usize;
        rank.clamp(1, n) - 1
    }
}

/// The `search-seed` subcommand: writes the corpus file and prints the SQL.
pub fn run(args: SeedArgs) -> anyhow::Result<()> {
    let users = users::load(&args.users_file)?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let corpus = generate(&args, &users, now_ms)?;
    corpus.save(&args.corpus)?;
    let mut out = BufWriter::new(io::stdout().lock());
    match args.backend {
        Backend::Postgres => write_postgres(&mut out, &corpus)?,
        Backend::Sqlite => write_sqlite(&mut out, &corpus)?,
    }
    out.flush()?;
    let participants: usize = corpus.conversations.iter().map(|c| c.members.len()).sum();
    eprintln!(
        "search corpus: {} conversations × {} messages, {participants} memberships of {} users, {} + {} Thai words",
        corpus.conversations.len(),
        corpus.messages_per_conversation,
        corpus.users.len(),
        corpus.vocabulary.len(),
        corpus.thai.len()
    );
    Ok(())
}

/// The conversations, their members and the vocabulary.
fn generate(args: &SeedArgs, users: &[users::User], now_ms: i64) -> anyhow::Result<Corpus> {
    if args.conversations == 0 || args.messages == 0 || args.users == 0 {
        bail!("--conversations, --messages and --users must be at least 1");
    }
    if users.len() < args.users {
        bail!(
            "the users file has {} users, the corpus needs --users {} (register more: BENCH_USERS, or the `users` subcommand)",
            users.len(),
            args.users
        );
    }
    if args.min_members == 0 || args.min_members > args.max_members || args.max_members > args.users {
        bail!("need 1 ≤ --min-members ≤ --max-members ≤ --users");
    }
    if !(0.0..=1.0).contains(&args.thai_share) {
        bail!("--thai-share is a fraction in [0, 1]");
    }
    let step_ms = args.days * DAY_MS / args.messages as i64;
    if step_ms < 1 {
        bail!("--days too short for --messages: messages need a millisecond each");
    }
    let mut rng = Rng::new(args.seed);
    // The vocabulary first: it depends on the seed and --words only.
    let mut taken: HashSet<String> = HashSet::new();
    let mut vocabulary: Vec<String> =
        ENGLISH.split_whitespace().filter(|word| taken.insert(word.to_string())).map(str::to_owned).collect();
    let size = vocabulary.len() + args.words;
    while vocabulary.len() < size {
        let word = pseudo_word(&mut rng);
        if taken.insert(word.clone()) {
            vocabulary.push(word);
        }
    }
    let thai = THAI.split_whitespace().filter(|word| taken.insert(word.to_string())).map(str::to_owned).collect();
    let users: Vec<String> = users[..args.users]
        .iter()
        .map(|user| Uuid::parse_str(&user.id).map(|id| id.to_string()))
        .collect::<Result<Vec<String>, _>>()
        .context("a user id of the users file is not a UUID")?;
    let first_message_ms = now_ms - args.messages as i64 * step_ms;
    // The conversations were created during the day before their first message.
    let created_from = first_message_ms - DAY_MS;
    let mut pool: Vec<usize> = (0..users.len()).collect();
    let mut conversations = Vec::with_capacity(args.conversations);
    for i in 0..args.conversations {
        let count = args.min_members + rng.below(args.max_members - args.min_members + 1);
        // A partial Fisher-Yates shuffle: `count` distinct users.
        for j in 0..count {
            let k = j + rng.below(pool.len() - j);
            pool.swap(j, k);
        }
        let created_ms = created_from + i as i64 * DAY_MS / args.conversations as i64;
        let id = uuid_v7(created_ms, &mut rng).to_string();
        conversations.push(Conversation { id, members: pool[..count].to_vec(), created_ms });
    }
    Ok(Corpus {
        users,
        conversations,
        vocabulary,
        thai,
        messages_per_conversation: args.messages,
        thai_share: args.thai_share,
        first_message_ms,
        step_ms,
        seed: args.seed,
    })
}

/// Two or three syllables, 4 to 12 letters: "brailo", "tousmek", …
fn pseudo_word(rng: &mut Rng) -> String {
    loop {
        let mut word = String::new();
        for _ in 0..2 + rng.below(2) {
            word.push_str(ONSETS[rng.below(ONSETS.len())]);
            word.push_str(VOWELS[rng.below(VOWELS.len())]);
            word.push_str(CODAS[rng.below(CODAS.len())]);
        }
        if (4..=12).contains(&word.len()) {
            return word;
        }
    }
}

/// A UUIDv7 of `ms`: the 48-bit millisecond time first, so ids sort by time.
fn uuid_v7(ms: i64, rng: &mut Rng) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    bytes[..6].copy_from_slice(&(ms as u64).to_be_bytes()[2..]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    Uuid::from_bytes(bytes)
}

fn text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A UUID as a literal of the backend: PostgreSQL's text form, SQLite's 16-byte BLOB.
fn uuid_literal(backend: Backend, id: &str) -> anyhow::Result<String> {
    let id = Uuid::parse_str(id).with_context(|| format!("not a UUID: {id}"))?;
    Ok(match backend {
        Backend::Postgres => format!("'{id}'"),
        Backend::Sqlite => format!("X'{}'", id.simple()),
    })
}

/// `INSERT INTO <table> VALUES …;` in statements of at most [`ROWS_PER_INSERT`] rows.
fn insert_rows(out: &mut impl Write, table: &str, rows: &[String]) -> io::Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        writeln!(out, "INSERT INTO {table} VALUES\n{};", chunk.join(",\n"))?;
    }
    Ok(())
}

/// The rows of the three staging tables both backends start from: `seed_words (rank, word)`
/// (main vocabulary at ranks 1..n, Thai after it), `seed_conversations (idx, id, title,
/// created_ms, members)` and `seed_members (idx, pos, user_id)` (pos 1: the owner).
fn insert_staging(out: &mut impl Write, backend: Backend, corpus: &Corpus) -> anyhow::Result<()> {
    let words: Vec<String> = corpus
        .vocabulary
        .iter()
        .chain(&corpus.thai)
        .enumerate()
        .map(|(i, word)| format!("({}, {})", i + 1, text(word)))
        .collect();
    insert_rows(out, "seed_words", &words)?;
    let mut conversations = Vec::with_capacity(corpus.conversations.len());
    let mut members = Vec::new();
    for (i, conversation) in corpus.conversations.iter().enumerate() {
        let idx = i + 1;
        let title = text(&format!("Search group {idx}"));
        let id = uuid_literal(backend, &conversation.id)?;
        let count = conversation.members.len();
        conversations.push(format!("({idx}, {id}, {title}, {}, {count})", conversation.created_ms));
        for (pos, &user) in conversation.members.iter().enumerate() {
            members.push(format!("({idx}, {}, {})", pos + 1, uuid_literal(backend, &corpus.users[user])?));
        }
    }
    insert_rows(out, "seed_conversations", &conversations)?;
    insert_rows(out, "seed_members", &members)?;
    Ok(())
}

/// The SQL shared by both backends once the messages are in: the conversations' last
/// message, the participants (everything read and delivered) and their read receipts.
fn finish_sql(messages: usize) -> String {
    format!(
        "UPDATE conversations SET last_seq = m.seq, last_message_id = m.id, last_activity_at = m.created_at,
    updated_at = m.created_at
FROM seed_conversations s JOIN messages m ON m.conversation_id = s.id AND m.seq = {messages}
WHERE conversations.id = s.id;
INSERT INTO conversation_participants (conversation_id, user_id, role, joined_at, last_read_seq, last_read_at,
    last_delivered_seq)
SELECT c.id, sm.user_id, CASE WHEN sm.pos = 1 THEN 'owner' ELSE 'member' END, c.created_at, c.last_seq,
    c.last_activity_at, c.last_seq
FROM seed_members sm JOIN seed_conversations s ON s.idx = sm.idx JOIN conversations c ON c.id = s.id;
INSERT INTO read_receipts (conversation_id, user_id, seq, read_at)
SELECT p.conversation_id, p.user_id, p.last_read_seq, p.last_read_at
FROM conversation_participants p JOIN seed_conversations s ON s.id = p.conversation_id;
"
    )
}

/// PostgreSQL: one transaction (the staging tables drop at its end), then `VACUUM ANALYZE`
/// as autovacuum would do on a database that grew this large, so that the planner has
/// statistics and the GIN index's pending list is merged. The `search` column and its GIN
/// index are kept by PostgreSQL itself.
fn write_postgres(out: &mut impl Write, corpus: &Corpus) -> anyhow::Result<()> {
    writeln!(
        out,
        "-- parley-loadgen search-seed: {} conversations × {} messages (seed {})
SET client_min_messages = warning;
BEGIN;
SET LOCAL synchronous_commit = off;
SET LOCAL jit = off;
SET LOCAL work_mem = '256MB';
CREATE TEMP TABLE seed_words (rank integer PRIMARY KEY, word text NOT NULL) ON COMMIT DROP;
CREATE TEMP TABLE seed_conversations (idx integer PRIMARY KEY, id uuid NOT NULL, title text NOT NULL,
    created_ms bigint NOT NULL, members integer NOT NULL) ON COMMIT DROP;
CREATE TEMP TABLE seed_members (idx integer NOT NULL, pos integer NOT NULL, user_id uuid NOT NULL,
    PRIMARY KEY (idx, pos)) ON COMMIT DROP;",
        corpus.conversations.len(),
        corpus.messages_per_conversation,
        corpus.seed
    )?;
    insert_staging(out, Backend::Postgres, corpus)?;
    let (first, step, messages) = (corpus.first_message_ms, corpus.step_ms, corpus.messages_per_conversation);
    let (min_words, word_span) = (MIN_WORDS, MAX_WORDS - MIN_WORDS + 1);
    let (main, thai) = (corpus.vocabulary.len(), corpus.thai.len());
    let thai_share = if thai == 0 { 0.0 } else { corpus.thai_share };
    // A volatile expression is evaluated once per row where it is computed: each message's
    // random draws are columns of `seed_slots`, and each word's rank is computed in a
    // subquery (OFFSET 0 keeps it from being merged into the join with the words).
    let thai_rank = if thai == 0 {
        "NULL".to_owned()
    } else {
        format!("{main} + least({thai}, floor(power({thai} + 1, random()))::integer)")
    };
    write!(
        out,
        "ANALYZE seed_words, seed_conversations, seed_members;
INSERT INTO conversations (id, kind, title, visibility, created_by, last_seq, last_activity_at, created_at,
    updated_at)
SELECT c.id, 'group', c.title, 'private', m.user_id, 0, t.at, t.at, t.at
FROM seed_conversations c
JOIN seed_members m ON m.idx = c.idx AND m.pos = 1
CROSS JOIN LATERAL (SELECT timestamptz 'epoch' + c.created_ms * interval '1 millisecond' AS at) t;
CREATE TEMP TABLE seed_slots ON COMMIT DROP AS
SELECT c.idx, s.seq,
    {first} + (s.seq - 1) * {step}::bigint + floor(random() * {step})::bigint AS ms,
    1 + floor(random() * c.members)::integer AS sender_pos,
    {min_words} + floor(random() * {word_span})::integer AS words,
    random() < {thai_share} AS thai,
    CASE floor(random() * 6)::integer WHEN 0 THEN '.' WHEN 1 THEN '?' WHEN 2 THEN '!' ELSE '' END AS ending
FROM seed_conversations c CROSS JOIN generate_series(1, {messages}) AS s(seq);
INSERT INTO messages (id, conversation_id, seq, sender_id, client_message_id, content, created_at, updated_at)
SELECT encode(set_byte(a.b, 6, (get_byte(a.b, 6) & 15) | 112), 'hex')::uuid,
    c.id, s.seq, m.user_id, 'seed-' || s.idx || '-' || s.seq,
    upper(left(t.text, 1)) || substr(t.text, 2) || s.ending, a.at, a.at
FROM seed_slots s
JOIN seed_conversations c ON c.idx = s.idx
JOIN seed_members m ON m.idx = s.idx AND m.pos = s.sender_pos
CROSS JOIN LATERAL (
    SELECT timestamptz 'epoch' + s.ms * interval '1 millisecond' AS at,
        overlay(uuid_send(gen_random_uuid()) PLACING substring(int8send(s.ms) FROM 3) FROM 1 FOR 6) AS b
) a
CROSS JOIN LATERAL (
    SELECT string_agg(w.word, ' ') AS text
    FROM (
        SELECT CASE WHEN s.thai THEN {thai_rank}
            ELSE least({main}, floor(power({main} + 1, random()))::integer) END AS rank
        FROM generate_series(1, s.words) OFFSET 0
    ) k
    JOIN seed_words w ON w.rank = k.rank
) t
ORDER BY s.ms;
{finish}COMMIT;
VACUUM (ANALYZE) conversations, conversation_participants, messages, read_receipts;
SELECT format('%s conversations, %s participants, %s messages', (SELECT count(*) FROM conversations),
    (SELECT count(*) FROM conversation_participants), (SELECT count(*) FROM messages));
",
        finish = finish_sql(messages)
    )?;
    Ok(())
}

/// SQLite: one transaction; the `messages_fts` triggers index every message as it is
/// inserted. No `ANALYZE`: the server never runs it, so a database it grew has no statistics.
/// Ids are 16-byte BLOBs assembled from a table of all 2-byte BLOBs (SQLite 3.40 has no
/// `unhex`); times are RFC 3339 text as sqlx writes them (`…T…[.mmm]+00:00`).
fn write_sqlite(out: &mut impl Write, corpus: &Corpus) -> anyhow::Result<()> {
    writeln!(
        out,
        "-- parley-loadgen search-seed: {} conversations × {} messages (seed {})
PRAGMA foreign_keys = ON;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
PRAGMA temp_store = MEMORY;
BEGIN;
CREATE TEMP TABLE seed_words (rank INTEGER PRIMARY KEY, word TEXT NOT NULL);
CREATE TEMP TABLE seed_conversations (idx INTEGER PRIMARY KEY, id BLOB NOT NULL, title TEXT NOT NULL,
    created_ms INTEGER NOT NULL, members INTEGER NOT NULL);
CREATE TEMP TABLE seed_members (idx INTEGER NOT NULL, pos INTEGER NOT NULL, user_id BLOB NOT NULL,
    PRIMARY KEY (idx, pos));
CREATE TEMP TABLE seed_bytes (b INTEGER PRIMARY KEY, x BLOB NOT NULL);
CREATE TEMP TABLE seed_pairs (b INTEGER PRIMARY KEY, x BLOB NOT NULL);",
        corpus.conversations.len(),
        corpus.messages_per_conversation,
        corpus.seed
    )?;
    insert_staging(out, Backend::Sqlite, corpus)?;
    let bytes: Vec<String> = (0..256).map(|b| format!("({b}, X'{b:02X}')")).collect();
    insert_rows(out, "seed_bytes", &bytes)?;
    let (first, step, messages) = (corpus.first_message_ms, corpus.step_ms, corpus.messages_per_conversation);
    let (min_words, word_span) = (MIN_WORDS, MAX_WORDS - MIN_WORDS + 1);
    let (main, thai) = (corpus.vocabulary.len(), corpus.thai.len());
    let thai_ppm = if thai == 0 { 0 } else { (corpus.thai_share * 1_000_000.0).round() as i64 };
    // Uniform in [0, 1) from 53 random bits.
    let uniform = "((random() & 9007199254740991) / 9007199254740992.0)";
    let thai_rank = if thai == 0 {
        "NULL".to_owned()
    } else {
        format!("{main} + min({thai}, CAST(pow({thai} + 1, {uniform}) AS INTEGER))")
    };
    let created = sqlite_time("c.created_ms");
    let at = sqlite_time("s.ms");
    // Each message's random draws are columns of `seed_slots`, so the subqueries that use
    // them are correlated (evaluated per message). `CROSS JOIN` keeps the word series the
    // outer loop, so each word's rank is drawn once, as the key of a lookup in `seed_words`.
    write!(
        out,
        "INSERT INTO seed_pairs SELECT h.b * 256 + l.b, CAST(h.x || l.x AS BLOB) FROM seed_bytes h, seed_bytes l;
INSERT INTO conversations (id, kind, title, visibility, created_by, last_seq, last_activity_at, created_at,
    updated_at)
SELECT c.id, 'group', c.title, 'private', m.user_id, 0, {created}, {created}, {created}
FROM seed_conversations c JOIN seed_members m ON m.idx = c.idx AND m.pos = 1;
CREATE TEMP TABLE seed_slots AS
SELECT c.idx AS idx, s.value AS seq,
    {first} + (s.value - 1) * {step} + abs(random() % {step}) AS ms,
    1 + abs(random() % c.members) AS sender_pos,
    {min_words} + abs(random() % {word_span}) AS words,
    abs(random() % 1000000) < {thai_ppm} AS thai,
    random() & 4095 AS r1,
    random() & 16383 AS r2,
    CASE abs(random() % 6) WHEN 0 THEN '.' WHEN 1 THEN '?' WHEN 2 THEN '!' ELSE '' END AS ending
FROM seed_conversations c, generate_series(1, {messages}) s;
INSERT INTO messages (id, conversation_id, seq, sender_id, client_message_id, content, created_at, updated_at)
SELECT CAST((SELECT x FROM seed_pairs WHERE b = (s.ms >> 32) & 65535)
        || (SELECT x FROM seed_pairs WHERE b = (s.ms >> 16) & 65535)
        || (SELECT x FROM seed_pairs WHERE b = s.ms & 65535)
        || (SELECT x FROM seed_pairs WHERE b = 28672 | s.r1)
        || (SELECT x FROM seed_pairs WHERE b = 32768 | s.r2)
        || randomblob(6) AS BLOB),
    c.id, s.seq, m.user_id, 'seed-' || s.idx || '-' || s.seq,
    (SELECT upper(substr(t, 1, 1)) || substr(t, 2) || s.ending FROM (
        SELECT group_concat(w.word, ' ') AS t
        FROM generate_series(1, s.words) AS k CROSS JOIN seed_words AS w
        WHERE w.rank = CASE WHEN s.thai THEN {thai_rank}
            ELSE min({main}, CAST(pow({main} + 1, {uniform}) AS INTEGER)) END
    )),
    {at}, {at}
FROM seed_slots s
JOIN seed_conversations c ON c.idx = s.idx
JOIN seed_members m ON m.idx = s.idx AND m.pos = s.sender_pos
ORDER BY s.ms;
{finish}COMMIT;
SELECT printf('%d conversations, %d participants, %d messages', (SELECT count(*) FROM conversations),
    (SELECT count(*) FROM conversation_participants), (SELECT count(*) FROM messages));
",
        finish = finish_sql(messages)
    )?;
    Ok(())
}

/// The SQLite text of a Unix-ms expression as sqlx writes a `DateTime<Utc>` (RFC 3339,
/// milliseconds when there are any, `+00:00`).
fn sqlite_time(ms: &str) -> String {
    format!(
        "(strftime('%Y-%m-%dT%H:%M:%S', {ms} / 1000, 'unixepoch') \
         || CASE WHEN {ms} % 1000 = 0 THEN '' ELSE printf('.%03d', {ms} % 1000) END || '+00:00')"
    )
}
