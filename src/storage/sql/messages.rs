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


        /// One group commit: the duplicate check, `seq` for every conversation of the batch,
        /// one multi-row insert, and the stored rows, in one transaction. `None` when a
        /// concurrent writer stored one of the keys first (the transaction rolled back).
        async fn try_send_batch(
            pool: &sqlx::Pool<$db>,
            batch: &[NewMessage],
        ) -> StorageResult<Option<Vec<SendOutcome>>> {
            if batch.is_empty() {
                return Ok(Some(Vec::new()));
            }
            let mut tx = pool.begin().await?;
            // Retries are rare: which keys are stored first, the originals in full after.
            let mut lookup = sqlx::QueryBuilder::<$db>::new(
                "SELECT m.id FROM messages m WHERE (m.sender_id, m.client_message_id) IN (VALUES ",
            );
            let mut keys = lookup.separated(", ");
            for message in batch {
                keys.push("(").push_bind_unseparated(message.sender_id);
                keys.push_unseparated(", ").push_bind_unseparated(&message.client_message_id).push_unseparated(")");
            }
            lookup.push(")");
            let known: Vec<uuid::Uuid> = lookup.build_query_scalar().fetch_all(&mut *tx).await?;
            let stored: Vec<MessageRecord> = if known.is_empty() {
                Vec::new()
            } else {
                let mut originals = sqlx::QueryBuilder::<$db>::new(concat!(select_messages!(), " WHERE m.id IN "));
                push_id_list(&mut originals, known);
                originals.build_query_as().fetch_all(&mut *tx).await?
            };
            let mut plan = crate::storage::batch::plan_batch(batch, &stored);
            let seqs = if plan.fresh.is_empty() { Default::default() } else { assign_seqs(&mut tx, batch, &plan).await? };
            let rows: Vec<(&NewMessage, i64, chrono::DateTime<chrono::Utc>)> =
                plan.fresh.iter().filter_map(|i| seqs.get(i).map(|(seq, at)| (&batch[*i], *seq, *at))).collect();
            if !rows.is_empty() {
                let Some(created) = insert_messages(&mut tx, &rows).await? else {
                    // Dropping the transaction rolls it back, `seq` numbers included.
                    return Ok(None);
                };
                plan.created(batch, created);
                insert_outbox(&mut tx, &rows).await?;
            }
            tx.commit().await?;
            Ok(Some(plan.finish(batch)))
        }

        /// Inserts `rows` (message, seq) and reads them back as stored; `None` when a
        /// concurrent writer stored one of their keys first.
        async fn insert_messages(
            tx: &mut sqlx::Transaction<'static, $db>,
            rows: &[(&NewMessage, i64, chrono::DateTime<chrono::Utc>)],
        ) -> StorageResult<Option<Vec<MessageRecord>>> {
            let mut insert = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO messages (id, conversation_id, seq, sender_id, client_message_id, \
                 content, content_type, media, is_encrypted, encrypted_content, forwarded_from, reply_to_id, \
                 mentions, created_at, updated_at) ",
            );
            insert.push_values(rows, |mut row, (message, seq, at)| {
                row.push_bind(message.id)
                    .push_bind(message.conversation_id)
                    .push_bind(*seq)
                    .push_bind(message.sender_id)
                    .push_bind(&message.client_message_id)
                    .push_bind(&message.content)
                    .push_bind(message.content_type.as_str())
                    .push_bind(message.media.clone().map(sqlx::types::Json))
                    .push_bind(message.encrypted_content.is_some())
                    .push_bind(&message.encrypted_content)
                    .push_bind(message.forwarded_from)
                    .push_bind(message.reply_to_id)
                    .push_bind((!message.mentions.is_empty()).then(|| sqlx::types::Json(message.mentions.clone())))
                    .push_bind(*at)
                    .push_bind(*at);
            });
            insert.push(" ON CONFLICT (sender_id, client_message_id) DO NOTHING");
            if insert.build().execute(&mut **tx).await?.rows_affected() < rows.len() as u64 {
                return Ok(None);
            }
            let mentions: Vec<(&NewMessage, i64, uuid::Uuid)> = rows
                .iter()
                .flat_map(|(message, seq, _)| message.mentions.iter().map(move |user| (*message, *seq, *user)))
                .collect();
            if !mentions.is_empty() {
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO message_mentions (message_id, user_id, conversation_id, seq) ",
                );
                insert.push_values(&mentions, |mut row, (message, seq, user)| {
                    row.push_bind(message.id).push_bind(*user).push_bind(message.conversation_id).push_bind(*seq);
                });
                insert.push(" ON CONFLICT (message_id, user_id) DO NOTHING");
                insert.build().execute(&mut **tx).await?;
            }
            let uploads: Vec<(&NewMessage, uuid::Uuid)> = rows
                .iter()
                .flat_map(|(message, _, _)| message.upload_ids().into_iter().map(move |upload| (*message, upload)))
                .collect();
            if !uploads.is_empty() {
                let mut insert =
                    sqlx::QueryBuilder::<$db>::new("INSERT INTO message_uploads (upload_id, message_id, conversation_id) ");
                insert.push_values(&uploads, |mut row, (message, upload)| {
                    row.push_bind(*upload).push_bind(message.id).push_bind(message.conversation_id);
                });
                insert.push(" ON CONFLICT (upload_id, message_id) DO NOTHING");
                insert.build().execute(&mut **tx).await?;
                let mut attach = sqlx::QueryBuilder::<$db>::new("UPDATE uploads SET attached_at = ");
                attach.push_bind(rows[0].2).push(" WHERE attached_at IS NULL AND id IN ");
                push_id_list(&mut attach, uploads.iter().map(|(_, upload)| *upload));
                attach.build().execute(&mut **tx).await?;
            }
            let replies = rows.iter().any(|(message, _, _)| message.reply_to_id.is_some());
            let mut reread = sqlx::QueryBuilder::<$db>::new(if replies {
                concat!(select_messages!(), " WHERE m.id IN ")
            } else {
                concat!(select_messages_without_replies!(), " WHERE m.id IN ")
            });
            push_id_list(&mut reread, rows.iter().map(|(message, _, _)| message.id));
            Ok(Some(reread.build_query_as().fetch_all(&mut **tx).await?))
        }

        /// Bumps `last_seq` once per conversation of the batch (row locks taken in id order)
        /// and hands out the numbers in batch order; conversations that are gone get none.
        /// Each message also gets its `created_at` here, under the lock: its own time, or 1 ms
        /// after the conversation's last message when that is not earlier. So `created_at`
        /// strictly grows with `seq` in every conversation, whatever the replicas' clocks say,
        /// and polling by time (`?since=`, seed 003's poll) misses and repeats nothing.
        async fn assign_seqs(
            tx: &mut sqlx::Transaction<'static, $db>,
            batch: &[NewMessage],
            plan: &crate::storage::batch::BatchPlan,
        ) -> StorageResult<std::collections::HashMap<usize, (i64, chrono::DateTime<chrono::Utc>)>> {
            let groups = plan.by_conversation(batch);
            let mut bump = sqlx::QueryBuilder::<$db>::new("WITH v(id, n, last_id, at) AS (VALUES ");
            let mut values = bump.separated(", ");
            for group in &groups {
                values.push("(").push_bind_unseparated(group.conversation);
                values.push_unseparated(", ").push_bind_unseparated(group.members.len() as i64);
                values.push_unseparated(", ").push_bind_unseparated(group.last_id);
                values.push_unseparated(", ").push_bind_unseparated(group.at).push_unseparated(")");
            }
            bump.push(
                ") UPDATE conversations SET last_seq = conversations.last_seq + v.n, last_message_id = v.last_id, \
                 updated_at = v.at \
                 FROM v WHERE conversations.id = v.id AND conversations.deleted_at IS NULL \
                 RETURNING conversations.id, conversations.last_seq, conversations.last_activity_at",
            );
            let last: Vec<(uuid::Uuid, i64, chrono::DateTime<chrono::Utc>)> =
                bump.build_query_as().fetch_all(&mut **tx).await?;
            let last: std::collections::HashMap<uuid::Uuid, (i64, chrono::DateTime<chrono::Utc>)> =
                last.into_iter().map(|(id, seq, at)| (id, (seq, at))).collect();
            let mut assigned = std::collections::HashMap::new();
            let mut activity = Vec::with_capacity(groups.len());
            for group in &groups {
                let Some((top, previous)) = last.get(&group.conversation) else { continue };
                let first = top - group.members.len() as i64 + 1;
                let mut floor = *previous;
                for (k, index) in group.members.iter().enumerate() {
                    let at = batch[*index].created_at.max(floor + chrono::Duration::milliseconds(1));
                    floor = at;
                    assigned.insert(*index, (first + k as i64, at));
                }
                activity.push((group.conversation, floor));
            }
            if !activity.is_empty() {
                let mut moved = sqlx::QueryBuilder::<$db>::new("WITH v(id, at) AS (VALUES ");
                let mut values = moved.separated(", ");
                for (conversation, at) in &activity {
                    values.push("(").push_bind_unseparated(*conversation);
                    values.push_unseparated(", ").push_bind_unseparated(*at).push_unseparated(")");
                }
                moved.push(
                    ") UPDATE conversations SET last_activity_at = v.at FROM v WHERE conversations.id = v.id",
                );
                moved.build().execute(&mut **tx).await?;
            }
            Ok(assigned)
        }

        #[async_trait::async_trait]
        impl MessageRepo for $store {
            async fn send_messages(&self, batch: &[NewMessage]) -> StorageResult<Vec<SendOutcome>> {
                // A retry after another writer (a second replica) committed one of these keys
                // between our duplicate check and our insert: the next check finds it.
                let mut last_error = None;
                for _ in 0..crate::storage::batch::SEND_ATTEMPTS {
                    match try_send_batch(self.writer(), batch).await {
                        Ok(Some(outcomes)) => return Ok(outcomes),
                        Ok(None) => {}
                        Err(err) if err.is_transient() => last_error = Some(err),
                        Err(err) => return Err(err),
                    }
                }
                Err(last_error.unwrap_or_else(|| StorageError::Conflict("messages_sender_client_id_key".into())))
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
                encrypted_content: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<Option<MessageRecord>> {
                let done = sqlx::query::<$db>(
                    "UPDATE messages SET content = $2, encrypted_content = $3, updated_at = $4 \
                     WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id)
                .bind(content)
                .bind(encrypted_content)
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
                    "UPDATE messages SET content = NULL, media = NULL, encrypted_content = NULL, deleted_at = $2, \
                     updated_at = $2 \
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
                    "SELECT c.id AS conversation_id, c.last_seq, p.last_delivered_seq, p.cleared_seq, \
                     COALESCE(p.hidden_seq, 0) AS hidden_seq \
                     FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id \
                     WHERE p.user_id = $1 AND c.deleted_at IS NULL \
                     AND c.last_seq > p.last_delivered_seq AND c.last_seq > p.cleared_seq \
                     AND (p.hidden_seq IS NULL OR c.last_seq > p.hidden_seq) \
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
                    // Forward only: marks gathered at emission may already be past the cutoff.
                    let mut update = sqlx::QueryBuilder::<$db>::new(
                        "WITH settled AS (SELECT p.conversation_id, p.user_id, (SELECT MAX(m.seq) FROM messages m \
                         WHERE m.conversation_id = p.conversation_id AND m.created_at <= ",
                    );
                    update.push_bind(cutoff);
                    update.push(
                        ") AS seq FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id \
                         WHERE p.last_delivered_seq < c.last_seq AND p.user_id IN ",
                    );
                    push_id_list(&mut update, chunk.iter().copied());
                    update.push(
                        ") UPDATE conversation_participants SET last_delivered_seq = settled.seq FROM settled \
                         WHERE conversation_participants.conversation_id = settled.conversation_id \
                         AND conversation_participants.user_id = settled.user_id \
                         AND conversation_participants.last_delivered_seq < settled.seq",
                    );
                    update.build().execute(self.writer()).await?;
                }
                Ok(())
            }

            async fn unmark_delivered_after(
                &self,
                user: uuid::Uuid,
                cutoff: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<()> {
                sqlx::query::<$db>(
                    "WITH back AS (SELECT p.conversation_id, COALESCE((SELECT MAX(m.seq) FROM messages m \
                     WHERE m.conversation_id = p.conversation_id AND m.created_at <= $2 AND m.seq > p.joined_seq), \
                     p.joined_seq) AS seq FROM conversation_participants p WHERE p.user_id = $1) \
                     UPDATE conversation_participants SET last_delivered_seq = back.seq FROM back \
                     WHERE conversation_participants.user_id = $1 \
                     AND conversation_participants.conversation_id = back.conversation_id \
                     AND conversation_participants.last_delivered_seq > back.seq",
                )
                .bind(user)
                .bind(cutoff)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn mark_delivered_many(&self, marks: &[DeliveredMark]) -> StorageResult<()> {
                for chunk in marks.chunks(500) {
                    let mut update =
                        sqlx::QueryBuilder::<$db>::new("WITH v(conversation_id, user_id, seq) AS (VALUES ");
                    let mut values = update.separated(", ");
                    for mark in chunk {
                        values.push("(").push_bind_unseparated(mark.conversation);
                        values.push_unseparated(", ").push_bind_unseparated(mark.user);
                        values.push_unseparated(", ").push_bind_unseparated(mark.seq).push_unseparated(")");
                    }
                    update.push(
                        ") UPDATE conversation_participants SET last_delivered_seq = v.seq FROM v \
                         WHERE conversation_participants.conversation_id = v.conversation_id \
                         AND conversation_participants.user_id = v.user_id \
                         AND conversation_participants.last_delivered_seq < v.seq",
                    );
                    update.build().execute(self.writer()).await?;
                }
                Ok(())
            }
        }
    };
}
