//! Read watermarks, read marks (receipts), unread counts, archive, clear, forward counts.

macro_rules! sql_reads {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl ReadRepo for $store {
            async fn mark_read(
                &self,
                conversation: uuid::Uuid,
                user: uuid::Uuid,
                seq: i64,
                at: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<bool> {
                let done = sqlx::query::<$db>(
                    "UPDATE conversation_participants SET \
                     last_read_seq = CASE WHEN last_read_seq < $3 THEN $3 ELSE last_read_seq END, \
                     last_read_at = CASE WHEN last_read_seq < $3 THEN $4 ELSE last_read_at END, \
                     marked_unread = FALSE \
                     WHERE conversation_id = $1 AND user_id = $2 AND (last_read_seq < $3 OR marked_unread)",
                )
                .bind(conversation)
                .bind(user)
                .bind(seq)
                .bind(at)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn mark_unread(&self, conversation: uuid::Uuid, user: uuid::Uuid) -> StorageResult<()> {
                sqlx::query::<$db>(
                    "UPDATE conversation_participants SET marked_unread = TRUE \
                     WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation)
                .bind(user)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn insert_read_marks(&self, marks: &[ReadMark]) -> StorageResult<()> {
                // Bounded chunks keep well under SQLite's bind-parameter limit.
                for chunk in marks.chunks(500) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO read_receipts (conversation_id, user_id, seq, read_at) ",
                    );
                    insert.push_values(chunk, |mut row, mark| {
                        row.push_bind(mark.conversation_id).push_bind(mark.user_id).push_bind(mark.seq).push_bind(mark.read_at);
                    });
                    insert.push(" ON CONFLICT DO NOTHING");
                    insert.build().execute(self.writer()).await?;
                }
                Ok(())
            }

            async fn unread_counts_of(&self, users: &[uuid::Uuid]) -> StorageResult<Vec<(uuid::Uuid, UnreadCount)>> {
                // Only conversations with a message past both watermarks (or marked unread)
                // are counted: in the others nothing can be unread.
                let mut counts = Vec::new();
                for chunk in users.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "SELECT p.user_id, p.conversation_id, \
                         (SELECT COUNT(*) FROM messages um WHERE um.conversation_id = p.conversation_id \
                          AND um.seq > p.last_read_seq AND um.seq > p.cleared_seq \
                          AND um.sender_id <> p.user_id AND um.deleted_at IS NULL), \
                         p.marked_unread \
                         FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id \
                         WHERE c.deleted_at IS NULL AND (p.hidden_seq IS NULL OR c.last_seq > p.hidden_seq) \
                         AND (p.marked_unread OR (c.last_seq > p.last_read_seq AND c.last_seq > p.cleared_seq)) \
                         AND p.user_id IN ",
                    );
                    push_id_list(&mut query, chunk.iter().copied());
                    let rows: Vec<(uuid::Uuid, uuid::Uuid, i64, bool)> = query.build_query_as().fetch_all(self.reader()).await?;
                    counts.extend(rows.into_iter().map(|(user, conversation_id, unread, marked)| {
                        (user, UnreadCount { conversation_id, unread: if marked && unread == 0 { 1 } else { unread } })
                    }));
                }
                Ok(counts)
            }

            async fn readers(
                &self,
                conversation: uuid::Uuid,
                seq: i64,
                sender: uuid::Uuid,
            ) -> StorageResult<Vec<ReceiptRecord>> {
                let rows = sqlx::query_as::<$db, ReceiptRecord>(concat!(
                    "SELECT ",
                    user_columns_u!(),
                    ", COALESCE((SELECT MIN(r.read_at) FROM read_receipts r \
                       WHERE r.conversation_id = p.conversation_id AND r.user_id = p.user_id AND r.seq >= $2), \
                       p.last_read_at) AS read_at \
                     FROM conversation_participants p JOIN users u ON u.id = p.user_id \
                     WHERE p.conversation_id = $1 AND p.user_id <> $3 AND p.last_read_seq >= $2 \
                     AND p.joined_seq < $2 \
                     AND u.read_receipts_enabled ORDER BY read_at, u.username"
                ))
                .bind(conversation)
                .bind(seq)
                .bind(sender)
                .fetch_all(self.reader())
                .await?;
                Ok(rows)
            }

            async fn set_archived(
                &self,
                conversation: uuid::Uuid,
                user: uuid::Uuid,
                archived_at: Option<chrono::DateTime<chrono::Utc>>,
            ) -> StorageResult<()> {
                sqlx::query::<$db>(
                    "UPDATE conversation_participants SET archived_at = $3 \
                     WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation)
                .bind(user)
                .bind(archived_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn clear_history(
                &self,
                conversation: uuid::Uuid,
                user: Option<uuid::Uuid>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<()> {
                sqlx::query::<$db>(
                    "UPDATE conversation_participants SET \
                     cleared_seq = (SELECT last_seq FROM conversations WHERE id = $1), messages_cleared_at = $3, \
                     marked_unread = FALSE \
                     WHERE conversation_id = $1 AND ($2 IS NULL OR user_id = $2)",
                )
                .bind(conversation)
                .bind(user)
                .bind(at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn increment_forwarded(&self, message: uuid::Uuid, by: i32) -> StorageResult<()> {
                sqlx::query::<$db>("UPDATE messages SET forwarded_count = forwarded_count + $2 WHERE id = $1")
                    .bind(message)
                    .bind(by)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }
        }
    };
}
