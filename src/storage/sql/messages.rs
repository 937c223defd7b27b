//! Messages: the send transaction (dedup, `seq`, conversation bump), history, edits,
//! tombstones and the delivered watermark.

macro_rules! sql_messages {
    ($store:ty, $db:ty) => {
        async fn message_by_id<'e, E: sqlx::Executor<'e, Database = $db>>(
            executor: E,
            id: uuid::Uuid,
        ) -> StorageResult<Option<MessageRecord>> {
            let row = sqlx::query_as::<$db, MessageRecord>(concat!(select_messages!(), " WHERE m.id = $1"))
                .bind(id)
                .fetch_optional(executor)
                .await?;
            Ok(row)
        }

        /// The message after an update, or `None` when the update matched nothing.
        async fn reread_if_changed<'e, E: sqlx::Executor<'e, Database = $db>>(
            executor: E,
            rows: u64,
            id: uuid::Uuid,
        ) -> StorageResult<Option<MessageRecord>> {
            if rows == 0 {
                return Ok(None);
            }
            message_by_id(executor, id).await
        }

        async fn message_by_client_id<'e, E: sqlx::Executor<'e, Database = $db>>(
            executor: E,
            sender: uuid::Uuid,
            client_message_id: &str,
        ) -> StorageResult<Option<MessageRecord>> {
            let row = sqlx::query_as::<$db, MessageRecord>(concat!(
                select_messages!(),
                " WHERE m.sender_id = $1 AND m.client_message_id = $2"
            ))
            .bind(sender)
            .bind(client_message_id)
            .fetch_optional(executor)
            .await?;
            Ok(row)
        }

        #[async_trait::async_trait]
        impl MessageRepo for $store {
            async fn send_message(&self, message: &NewMessage) -> StorageResult<SendOutcome> {
                let mut tx = self.writer().begin().await?;
                if let Some(original) =
                    message_by_client_id(&mut *tx, message.sender_id, &message.client_message_id).await?
                {
                    return Ok(SendOutcome::Duplicate(original));
                }
                // Row lock on the conversation: writers of one conversation take turns here,
                // which is what makes `seq` gapless and unique.
                let seq: Option<(i64,)> = sqlx::query_as::<$db, _>(
                    "UPDATE conversations SET last_seq = last_seq + 1, last_message_id = $2, \
                     last_activity_at = CASE WHEN last_activity_at < $3 THEN $3 ELSE last_activity_at END, \
                     updated_at = $3 WHERE id = $1 AND deleted_at IS NULL RETURNING last_seq",
                )
                .bind(message.conversation_id)
                .bind(message.id)
                .bind(message.created_at)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((seq,)) = seq else {
                    return Err(StorageError::NotFound("conversation"));
                };
                let inserted = sqlx::query::<$db>(
                    "INSERT INTO messages (id, conversation_id, seq, sender_id, client_message_id, \
                     content, content_type, media, forwarded_from, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                )
                .bind(message.id)
                .bind(message.conversation_id)
                .bind(seq)
                .bind(message.sender_id)
                .bind(&message.client_message_id)
                .bind(&message.content)
                .bind(message.content_type.as_str())
                .bind(message.media.clone().map(sqlx::types::Json))
                .bind(message.forwarded_from)
                .bind(message.created_at)
                .execute(&mut *tx)
                .await;
                match inserted.map_err(StorageError::from) {
                    Ok(_) => {}
                    // A concurrent send with the same key committed first: the rollback
                    // returns its `seq`, and the caller gets the original.
                    Err(StorageError::Conflict(_)) => {
                        drop(tx);
                        let original =
                            message_by_client_id(self.writer(), message.sender_id, &message.client_message_id)
                                .await?
                                .ok_or(StorageError::NotFound("message"))?;
                        return Ok(SendOutcome::Duplicate(original));
                    }
                    Err(other) => return Err(other),
                }
                let created = message_by_id(&mut *tx, message.id).await?.ok_or(StorageError::NotFound("message"))?;
                tx.commit().await?;
                Ok(SendOutcome::Created(created))
            }

            async fn message(&self, id: uuid::Uuid) -> StorageResult<Option<MessageRecord>> {
                message_by_id(self.reader(), id).await
            }

            async fn message_by_client_id(
                &self,
                sender: uuid::Uuid,
                client_message_id: &str,
            ) -> StorageResult<Option<MessageRecord>> {
                message_by_client_id(self.reader(), sender, client_message_id).await
            }

            async fn history(
                &self,
                conversation: uuid::Uuid,
                floor_seq: i64,
                query: HistoryQuery,
                limit: i64,
            ) -> StorageResult<Vec<MessageRecord>> {
                let rows = match query {
                    HistoryQuery::Before { seq } => {
                        sqlx::query_as::<$db, MessageRecord>(concat!(
                            select_messages!(),
                            " WHERE m.conversation_id = $1 AND m.seq > $2 AND m.seq < $3 \
                             ORDER BY m.seq DESC LIMIT $4"
                        ))
                        .bind(conversation)
                        .bind(floor_seq)
                        .bind(seq.unwrap_or(i64::MAX))
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?
                    }
                    HistoryQuery::After { seq } => {
                        sqlx::query_as::<$db, MessageRecord>(concat!(
                            select_messages!(),
                            " WHERE m.conversation_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3"
                        ))
                        .bind(conversation)
                        .bind(floor_seq.max(seq))
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?
                    }
                    HistoryQuery::Since { time } => {
                        sqlx::query_as::<$db, MessageRecord>(concat!(
                            select_messages!(),
                            " WHERE m.conversation_id = $1 AND m.seq > $2 AND m.created_at > $3 \
                             ORDER BY m.seq LIMIT $4"
                        ))
                        .bind(conversation)
                        .bind(floor_seq)
                        .bind(time)
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?
                    }
                };
                Ok(rows)
            }

            async fn edit_message(
                &self,
                id: uuid::Uuid,
                content: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<Option<MessageRecord>> {
                let done = sqlx::query::<$db>(
                    "UPDATE messages SET content = $2, updated_at = $3 WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id)
                .bind(content)
                .bind(now)
                .execute(self.writer())
                .await?;
                reread_if_changed(self.writer(), done.rows_affected(), id).await
            }

            async fn delete_message(
                &self,
                id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<Option<MessageRecord>> {
                let done = sqlx::query::<$db>(
                    "UPDATE messages SET content = NULL, media = NULL, deleted_at = $2, updated_at = $2 \
                     WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .execute(self.writer())
                .await?;
                reread_if_changed(self.writer(), done.rows_affected(), id).await
            }

            async fn pending_deliveries(&self, user: uuid::Uuid) -> StorageResult<Vec<PendingDelivery>> {
                let rows = sqlx::query_as::<$db, PendingDelivery>(
                    "SELECT c.id AS conversation_id, c.last_seq, p.last_delivered_seq, p.cleared_seq \
                     FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id \
                     WHERE p.user_id = $1 AND c.deleted_at IS NULL \
                     AND c.last_seq > p.last_delivered_seq AND c.last_seq > p.cleared_seq \
                     ORDER BY c.last_activity_at, c.id",
                )
                .bind(user)
                .fetch_all(self.reader())
                .await?;
                Ok(rows)
            }

            async fn mark_delivered_before(
                &self,
                users: &[uuid::Uuid],
                cutoff: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<()> {
                for chunk in users.chunks(500) {
                    let mut update = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE conversation_participants SET last_delivered_seq = COALESCE((\
                         SELECT MAX(m.seq) FROM messages m WHERE m.conversation_id = conversation_participants.conversation_id \
                         AND m.created_at <= ",
                    );
                    update.push_bind(cutoff);
                    update.push("), last_delivered_seq) WHERE last_delivered_seq < (SELECT c.last_seq FROM conversations c \
                         WHERE c.id = conversation_participants.conversation_id) AND user_id IN (");
                    let mut ids = update.separated(", ");
                    for user in chunk {
                        ids.push_bind(*user);
                    }
                    update.push(")");
                    update.build().execute(self.writer()).await?;
                }
                Ok(())
            }

            async fn mark_delivered(
                &self,
                conversation: uuid::Uuid,
                users: &[uuid::Uuid],
                seq: i64,
            ) -> StorageResult<()> {
                if users.is_empty() {
                    return Ok(());
                }
                let mut update = sqlx::QueryBuilder::<$db>::new("UPDATE conversation_participants SET last_delivered_seq = ");
                update.push_bind(seq);
                update.push(" WHERE conversation_id = ").push_bind(conversation);
                update.push(" AND last_delivered_seq < ").push_bind(seq);
                update.push(" AND user_id IN (");
                let mut ids = update.separated(", ");
                for user in users {
                    ids.push_bind(*user);
                }
                update.push(")");
                update.build().execute(self.writer()).await?;
                Ok(())
            }
        }
    };
}
