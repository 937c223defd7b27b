//! SQLite backend for embedded mode: WAL journal, one writer connection (SQLite admits one
//! writer at a time; a single connection turns lock contention into queueing instead of
//! `SQLITE_BUSY`) and a small pool of read-only connections. Migrations from
//! `migrations/sqlite`.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Sqlite, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens `sqlite://path`, creating the file (and its directory) when missing.
    pub async fn connect(url: &str) -> StorageResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(Self { writer, reader })
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

mod dialect {
    pub const NAME: &str = "sqlite";

    /// Claims due outbox rows (see `OutboxRepo::claim_outbox`).
    pub const CLAIM_OUTBOX: &str = concat!(
        "UPDATE outbox SET claimed_until = $2 WHERE id IN (SELECT id FROM outbox WHERE due_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until <= $1) ORDER BY due_at, id LIMIT $3) RETURNING ",
        outbox_columns!()
    );

    /// Claims the coalesced pushes of one subscription and conversation (see
    /// `OutboxRepo::claim_coalesced`).
    pub const CLAIM_COALESCED: &str = concat!(
        "UPDATE outbox SET claimed_until = $4 WHERE id IN (SELECT id FROM outbox WHERE coalesced \
         AND subscription_id = $1 AND conversation_id = $2 AND (claimed_until IS NULL OR claimed_until <= $3)) \
         RETURNING ",
        outbox_columns!()
    );

    /// Full-text search, newest first: FTS5 drives, in descending rowid order (the order the
    /// messages were stored in), so a page of a frequent word stops early; the match is a
    /// prefix query ([`search_expression`], bound, then `))`).
    pub const SEARCH_FROM: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages_fts f JOIN messages m ON m.rowid = f.rowid ",
        message_joins!(),
        " WHERE (messages_fts MATCH ("
    );
    /// Strictly older than the message bound after it (the cursor); `)` closes it.
    pub const SEARCH_AFTER: &str = " AND (f.rowid < (SELECT rowid FROM messages WHERE id = ";
    pub const SEARCH_AFTER_END: &str = "))";
    pub const SEARCH_ORDER: &str = " ORDER BY f.rowid DESC LIMIT ";

    /// `"term"* "term"*`: every term starts a word (FTS5 ANDs them).
    pub fn search_expression(terms: &[String]) -> String {
        let quoted: Vec<String> = terms.iter().map(|term| format!("\"{}\"*", term.replace('"', "\"\""))).collect();
        quoted.join(" ")
    }

    /// Prefix ranges (BINARY collation is byte order) so the indexes serve them.
    pub const SEARCH_USERS: &str = concat!(
        "SELECT ",
        user_columns_u!(),
        " FROM users u WHERE \
         ((u.username >= $1 AND u.username < ($1 || char(1114111))) \
          OR (lower(u.display_name) >= $1 AND lower(u.display_name) < ($1 || char(1114111)))) \
         AND u.id <> $2 \
         AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = $2) \
         ORDER BY u.username LIMIT $3"
    );
}

sql_store!(SqliteStore, Sqlite);
