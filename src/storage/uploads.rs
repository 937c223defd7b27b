//! Uploads' rows (SPEC §4.3): what an upload is, whose it is, and which messages reference
//! it. The bytes are in the object store (`domain::uploads`); the row is written only once
//! they are all there, and deleted before they are.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StorageResult;

/// An upload, as stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct UploadRecord {
    pub id: Uuid,
    pub owner_id: Uuid,
    /// Sniffed from the bytes.
    pub content_type: String,
    pub size: i64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    /// The file name the client gave.
    pub name: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// The thumbnail's type and size, when there is one (images).
    pub thumbnail_type: Option<String>,
    pub thumbnail_size: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// When a message first referenced it.
    pub attached_at: Option<DateTime<Utc>>,
}

/// What recording an upload did.
#[derive(Clone, Debug, PartialEq)]
pub enum UploadInsert {
    Stored,
    /// The owner's uploads already take `used` bytes, and this one would pass the quota.
    OverQuota {
        used: i64,
    },
}

#[async_trait]
pub trait UploadRepo: Send + Sync {
    /// Records `upload` unless its owner's uploads would then pass `quota` bytes; checked and
    /// written under the owner's row lock, so concurrent uploads cannot both squeeze in.
    async fn insert_upload(&self, upload: &UploadRecord, quota: i64) -> StorageResult<UploadInsert>;
    /// Bytes `owner`'s uploads take.
    async fn upload_usage(&self, owner: Uuid) -> StorageResult<i64>;
    /// Upload `id` if `reader` may read it: its owner, or a participant of a conversation
    /// with a message that references it and that they can see (not deleted, not from before
    /// they joined, not cleared for them). `None` for everyone else, as for an unknown id.
    async fn readable_upload(&self, id: Uuid, reader: Uuid) -> StorageResult<Option<UploadRecord>>;
    /// Those of `ids` that `owner` uploaded.
    async fn uploads_of(&self, owner: Uuid, ids: &[Uuid]) -> StorageResult<Vec<UploadRecord>>;
    /// Deletes up to `limit` uploads that no message references and that were made before
    /// `before`, and returns them. A row is returned by one call only, whichever replica
    /// makes it: the caller then deletes its bytes.
    async fn take_unattached_uploads(&self, before: DateTime<Utc>, limit: i64) -> StorageResult<Vec<UploadRecord>>;
}
