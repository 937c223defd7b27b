//! PostgreSQL backend: one pool for reads and writes; migrations from `migrations/postgres`
//! (run under sqlx's advisory lock, so replicas starting together migrate once).

use std::time::Duration;

use sqlx::{PgPool, Postgres, postgres::PgPoolOptions};

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> StorageResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Self::from_pool(pool).await
    }

    pub async fn from_pool(pool: PgPool) -> StorageResult<Self> {
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

mod dialect {
    pub const NAME: &str = "postgres";

    /// Claims due outbox rows (see `OutboxRepo::claim_outbox`).
    pub const CLAIM_OUTBOX: &str = concat!(
        "UPDATE outbox SET claimed_until = $2 WHERE id IN (SELECT id FROM outbox WHERE due_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until <= $1) ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING ",
        outbox_columns!()
    );

    /// Claims the coalesced pushes of one subscription and conversation (see
    /// `OutboxRepo::claim_coalesced`).
    pub const CLAIM_COALESCED: &str = concat!(
        "UPDATE outbox SET claimed_until = $4 WHERE id IN (SELECT id FROM outbox WHERE coalesced \
         AND subscription_id = $1 AND conversation_id = $2 AND (claimed_until IS NULL OR claimed_until <= $3) FOR UPDATE SKIP LOCKED) \
         RETURNING ",
        outbox_columns!()
    );

    /// Full-text search, newest first (by id, a UUIDv7): the generated `tsvector` against a
    /// prefix query ([`search_expression`], bound, then `))`). With no join in the way, and
    /// planned with the query's words (see `search_messages`), the planner picks per query:
    /// the GIN index for a rare word, a backward scan of the primary key for a frequent one
    /// (it finds a page among the newest messages at once). One branch per conversation
    /// merged by `created_at` cost more (bench/README.md, search): the GIN index expands a
    /// prefix once per branch.
    pub const SEARCH_FROM: &str = concat!(select_messages!(), " WHERE (m.search @@ to_tsquery('simple', ");
    /// Strictly older than the message bound after it (the cursor); `)` closes it.
    pub const SEARCH_AFTER: &str = " AND (m.id < ";
    pub const SEARCH_AFTER_END: &str = ")";
    pub const SEARCH_ORDER: &str = " ORDER BY m.id DESC LIMIT ";

    /// `'term':* & …`: every term starts a word.
    pub fn search_expression(terms: &[String]) -> String {
        let quoted: Vec<String> =
            terms.iter().map(|term| format!("'{}':*", term.replace('\\', "").replace('\'', "''"))).collect();
        quoted.join(" & ")
    }

    /// Prefix ranges in byte order (`COLLATE "C"`) so the expression indexes serve them.
    pub const SEARCH_USERS: &str = concat!(
        "SELECT ",
        user_columns_u!(),
        " FROM users u WHERE \
         ((u.username COLLATE \"C\" >= $1 AND u.username COLLATE \"C\" < ($1 || chr(1114111))) \
          OR (lower(u.display_name) COLLATE \"C\" >= $1 \
              AND lower(u.display_name) COLLATE \"C\" < ($1 || chr(1114111)))) \
         AND u.id <> $2 \
         AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = $2) \
         ORDER BY u.username COLLATE \"C\" LIMIT $3"
    );
}

sql_store!(PgStore, Postgres);
