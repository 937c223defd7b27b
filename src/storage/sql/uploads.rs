//! Uploads: the quota-checked insert, who may read one, the cleanup of unattached ones. The
//! references from messages are written by the send transaction (`sql_messages!`).

/// Columns of [`UploadRecord`](crate::storage::uploads::UploadRecord).
macro_rules! upload_columns {
    () => {
        "id, owner_id, content_type, size, sha256, name, width, height, thumbnail_type, thumbnail_size, \
         created_at, attached_at"
    };
}

/// The same columns qualified with the alias `up`.
macro_rules! upload_columns_up {
    () => {
        "up.id, up.owner_id, up.content_type, up.size, up.sha256, up.name, up.width, up.height, \
         up.thumbnail_type, up.thumbnail_size, up.created_at, up.attached_at"
    };
}

/// Bytes one owner's uploads take (`$1`: the owner).
macro_rules! upload_usage_sql {
    () => {
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM uploads WHERE owner_id = $1"
    };
}

macro_rules! sql_uploads {
    ($store:ty, $db:ty) => {
        use $crate::storage::uploads::{UploadInsert, UploadRecord, UploadRepo};

        #[async_trait::async_trait]
        impl UploadRepo for $store {
            async fn insert_upload(&self, upload: &UploadRecord, quota: i64) -> StorageResult<UploadInsert> {
                let mut tx = self.writer().begin().await?;
                // The owner's row lock makes concurrent uploads of one user take turns.
                sqlx::query::<$db>("UPDATE users SET updated_at = updated_at WHERE id = $1")
                    .bind(upload.owner_id)
                    .execute(&mut *tx)
                    .await?;
                let used: i64 =
                    sqlx::query_scalar::<$db, i64>(upload_usage_sql!())
                        .bind(upload.owner_id)
                        .fetch_one(&mut *tx)
                        .await?;
                if used.saturating_add(upload.size) > quota {
                    return Ok(UploadInsert::OverQuota { used });
                }
                sqlx::query::<$db>(
                    "INSERT INTO uploads (id, owner_id, content_type, size, sha256, name, width, height, \
                     thumbnail_type, thumbnail_size, created_at, attached_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(upload.id)
                .bind(upload.owner_id)
                .bind(&upload.content_type)
                .bind(upload.size)
                .bind(&upload.sha256)
                .bind(&upload.name)
                .bind(upload.width)
                .bind(upload.height)
                .bind(&upload.thumbnail_type)
                .bind(upload.thumbnail_size)
                .bind(upload.created_at)
                .bind(upload.attached_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(UploadInsert::Stored)
            }

            async fn upload_usage(&self, owner: uuid::Uuid) -> StorageResult<i64> {
                Ok(sqlx::query_scalar::<$db, i64>(upload_usage_sql!())
                .bind(owner)
                .fetch_one(self.reader())
                .await?)
            }

            async fn readable_upload(&self, id: uuid::Uuid, reader: uuid::Uuid) -> StorageResult<Option<UploadRecord>> {
                Ok(sqlx::query_as::<$db, UploadRecord>(concat!(
                    "SELECT ",
                    upload_columns_up!(),
                    " FROM uploads up WHERE up.id = $1 AND (up.owner_id = $2 OR EXISTS (\
                     SELECT 1 FROM message_uploads mu \
                     JOIN messages m ON m.id = mu.message_id \
                     JOIN conversations c ON c.id = mu.conversation_id \
                     JOIN conversation_participants p ON p.conversation_id = mu.conversation_id AND p.user_id = $2 \
                     WHERE mu.upload_id = up.id AND m.deleted_at IS NULL AND c.deleted_at IS NULL \
                     AND m.seq > p.joined_seq AND m.seq > p.cleared_seq))"
                ))
                .bind(id)
                .bind(reader)
                .fetch_optional(self.reader())
                .await?)
            }

            async fn uploads_of(&self, owner: uuid::Uuid, ids: &[uuid::Uuid]) -> StorageResult<Vec<UploadRecord>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    upload_columns_up!(),
                    " FROM uploads up WHERE up.owner_id = "
                ));
                query.push_bind(owner).push(" AND up.id IN ");
                push_id_list(&mut query, ids.iter().copied());
                Ok(query.build_query_as().fetch_all(self.reader()).await?)
            }

            async fn take_unattached_uploads(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> StorageResult<Vec<UploadRecord>> {
                // Two replicas sweeping at once pick the same rows; each row is deleted, and
                // so returned, by one of them only (the other's delete finds it gone).
                Ok(sqlx::query_as::<$db, UploadRecord>(concat!(
                    "DELETE FROM uploads WHERE id IN (SELECT u2.id FROM uploads u2 \
                     WHERE u2.attached_at IS NULL AND u2.created_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM message_uploads mu WHERE mu.upload_id = u2.id) \
                     ORDER BY u2.created_at LIMIT $2) RETURNING ",
                    upload_columns!()
                ))
                .bind(before)
                .bind(limit)
                .fetch_all(self.writer())
                .await?)
            }
        }
    };
}
