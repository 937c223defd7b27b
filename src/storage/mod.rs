//! Persistence behind repository traits, one implementation per SQL backend.
//!
//! Both backends share their query code (`sql_store!` in [`sql`]): the SQL is written once in
//! the dialect both PostgreSQL and SQLite understand (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT`), and each backend module supplies only what differs — the pool, its
//! migrations (`migrations/postgres`, `migrations/sqlite`) and a few dialect-specific
//! statements. The same contract test suite (`tests/storage`) runs against both.

pub mod models;
#[macro_use]
mod sql;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use models::*;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique constraint refused the write; holds the constraint (or the database's message).
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    #[error(transparent)]
    Database(sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                let what = db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned());
                return Self::Conflict(what);
            }
        }
        Self::Database(err)
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

#[async_trait]
pub trait UserRepo: Send + Sync {
    async fn create_user(&self, user: &NewUser) -> StorageResult<UserRecord>;
    async fn user_by_id(&self, id: Uuid) -> StorageResult<Option<UserRecord>>;
    async fn user_by_email(&self, email: &str) -> StorageResult<Option<UserRecord>>;
    async fn username_taken(&self, username: &str) -> StorageResult<bool>;
    /// Users whose username or lower-cased display name starts with `prefix` (lower case),
    /// excluding `viewer` and anyone who blocked `viewer`; ordered by username.
    async fn search_users(
        &self,
        prefix: &str,
        viewer: Uuid,
        limit: i64,
    ) -> StorageResult<Vec<UserRecord>>;
    async fn update_profile(
        &self,
        id: Uuid,
        patch: &ProfilePatch,
        now: DateTime<Utc>,
    ) -> StorageResult<UserRecord>;
    async fn update_settings(
        &self,
        id: Uuid,
        patch: &SettingsPatch,
        now: DateTime<Utc>,
    ) -> StorageResult<UserRecord>;
    async fn set_last_seen(&self, id: Uuid, at: DateTime<Utc>) -> StorageResult<()>;
}

#[async_trait]
pub trait SessionRepo: Send + Sync {
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StorageResult<()>;
    async fn refresh_token_by_hash(&self, hash: &[u8])
    -> StorageResult<Option<RefreshTokenRecord>>;
    /// Marks `old` rotated and stores its successor atomically. Returns `false` (and stores
    /// nothing) when `old` was already rotated or revoked: the caller lost a race or is
    /// replaying a used token.
    async fn rotate_refresh_token(
        &self,
        old: Uuid,
        successor: &NewRefreshToken,
    ) -> StorageResult<bool>;
    /// Revokes every live token of a family; returns how many were revoked.
    async fn revoke_refresh_family(&self, family: Uuid, now: DateTime<Utc>) -> StorageResult<u64>;
    async fn purge_expired_refresh_tokens(&self, now: DateTime<Utc>) -> StorageResult<u64>;
}

#[async_trait]
pub trait SocialRepo: Send + Sync {
    /// Idempotent: following twice keeps the first `created_at`.
    async fn follow(&self, follower: Uuid, followee: Uuid, now: DateTime<Utc>)
    -> StorageResult<()>;
    async fn unfollow(&self, follower: Uuid, followee: Uuid) -> StorageResult<bool>;
    /// Mutual follows, ordered by username.
    async fn friends_of(&self, user: Uuid) -> StorageResult<Vec<UserRecord>>;
    /// Blocks and drops the follows between the two users in both directions, atomically.
    async fn block(&self, blocker: Uuid, blocked: Uuid, now: DateTime<Utc>) -> StorageResult<()>;
    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> StorageResult<bool>;
    /// Users `blocker` has blocked, newest first.
    async fn blocked_by(&self, blocker: Uuid) -> StorageResult<Vec<BlockedUser>>;
    async fn relationship(&self, viewer: Uuid, other: Uuid) -> StorageResult<Relationship>;
}

/// Everything the application needs from a database.
#[async_trait]
pub trait Storage: UserRepo + SessionRepo + SocialRepo {
    /// `"postgres"` or `"sqlite"`.
    fn backend(&self) -> &'static str;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> StorageResult<()>;
}

/// Opens (and migrates) the database named by `url`: `postgres://…` or `sqlite://…`.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Storage>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else {
        anyhow::bail!("DATABASE_URL must start with postgres:// or sqlite://")
    }
}
