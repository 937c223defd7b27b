//! Conversations and their participants.

/// `SELECT` of [`ConversationSummaryRecord`](crate::storage::models::ConversationSummaryRecord)
/// for participant `p`: counts, unread messages and the last message's preview columns.
macro_rules! select_summaries {
    () => {
        concat!(
            "SELECT ",
            conversation_columns_c!(),
            ", p.archived_at, p.cleared_seq, p.marked_unread, p.muted_until, \
             (SELECT COUNT(*) FROM conversation_participants pc \
              WHERE pc.conversation_id = c.id) AS participant_count, \
             (SELECT COUNT(*) FROM messages um WHERE um.conversation_id = c.id \
              AND um.seq > p.last_read_seq AND um.seq > p.cleared_seq \
              AND um.sender_id <> p.user_id AND um.deleted_at IS NULL) AS unread_count, \
             (SELECT COUNT(*) FROM message_mentions mm JOIN messages mn ON mn.id = mm.message_id \
              WHERE mm.user_id = p.user_id AND mm.conversation_id = c.id \
              AND mm.seq > p.last_read_seq AND mm.seq > p.cleared_seq \
              AND mn.sender_id <> p.user_id AND mn.deleted_at IS NULL) AS mentioned_count, \
             lm.id AS lm_id, lm.seq AS lm_seq, lm.sender_id AS lm_sender_id, \
             lm.content AS lm_content, lm.content_type AS lm_content_type, \
             lm.created_at AS lm_created_at, lm.deleted_at AS lm_deleted_at \
             FROM conversation_participants p \
             JOIN conversations c ON c.id = p.conversation_id \
             LEFT JOIN messages lm ON lm.id = c.last_message_id"
        )
    };
}

macro_rules! sql_conversations {
    ($store:ty, $db:ty) => {
        /// `"<smaller id>:<larger id>"`: one live direct conversation per pair.
        fn direct_key(a: uuid::Uuid, b: uuid::Uuid) -> String {
            let (low, high) = if a < b { (a, b) } else { (b, a) };
            format!("{low}:{high}")
        }

        async fn insert_conversation<'e, E: sqlx::Executor<'e, Database = $db>>(
            executor: E,
            conversation: &NewConversation,
            direct_key: Option<&str>,
        ) -> StorageResult<u64> {
            let done = sqlx::query::<$db>(
                "INSERT INTO conversations (id, kind, title, visibility, direct_key, created_by, \
                 last_activity_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7) \
                 ON CONFLICT (direct_key) DO NOTHING",
            )
            .bind(conversation.id)
            .bind(conversation.kind.as_str())
            .bind(conversation.title.as_deref())
            .bind(conversation.visibility.as_str())
            .bind(direct_key)
            .bind(conversation.created_by)
            .bind(conversation.created_at)
            .execute(executor)
            .await?;
            Ok(done.rows_affected())
        }

        /// Adds participants with one role, in one statement.
        async fn insert_participants<'e, E: sqlx::Executor<'e, Database = $db>>(
            executor: E,
            conversation: uuid::Uuid,
            users: &[uuid::Uuid],
            role: Role,
            now: chrono::DateTime<chrono::Utc>,
        ) -> StorageResult<()> {
            if users.is_empty() {
                return Ok(());
            }
            let mut insert = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO conversation_participants (conversation_id, user_id, role, joined_at) ",
            );
            insert.push_values(users, |mut row, user| {
                row.push_bind(conversation).push_bind(*user).push_bind(role.as_str()).push_bind(now);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert.build().execute(executor).await?;
            Ok(())
        }

        async fn conversation_by_id<'e, E: sqlx::Executor<'e, Database = $db>>(
            executor: E,
            id: uuid::Uuid,
        ) -> StorageResult<Option<ConversationRecord>> {
            let row = sqlx::query_as::<$db, ConversationRecord>(concat!(
                "SELECT ",
                conversation_columns_c!(),
                " FROM conversations c WHERE c.id = $1"
            ))
            .bind(id)
            .fetch_optional(executor)
            .await?;
            Ok(row)
        }

        #[async_trait::async_trait]
        impl ConversationRepo for $store {
            async fn create_group(
                &self,
                conversation: &NewConversation,
                members: &[uuid::Uuid],
            ) -> StorageResult<ConversationRecord> {
                let owner = conversation.created_by;
                let members: Vec<uuid::Uuid> = members.iter().copied().filter(|m| *m != owner).collect();
                let mut tx = self.writer().begin().await?;
                insert_conversation(&mut *tx, conversation, None).await?;
                insert_participants(&mut *tx, conversation.id, &[owner], Role::Owner, conversation.created_at).await?;
                insert_participants(&mut *tx, conversation.id, &members, Role::Member, conversation.created_at).await?;
                let created = conversation_by_id(&mut *tx, conversation.id)
                    .await?
                    .ok_or(StorageError::NotFound("conversation"))?;
                tx.commit().await?;
                Ok(created)
            }

            async fn find_or_create_direct(
                &self,
                conversation: &NewConversation,
                other: uuid::Uuid,
            ) -> StorageResult<(ConversationRecord, bool)> {
                let key = direct_key(conversation.created_by, other);
                let mut tx = self.writer().begin().await?;
                let created = insert_conversation(&mut *tx, conversation, Some(&key)).await? == 1;
                let id = if created {
                    let at = conversation.created_at;
                    insert_participants(&mut *tx, conversation.id, &[conversation.created_by], Role::Owner, at).await?;
                    insert_participants(&mut *tx, conversation.id, &[other], Role::Member, at).await?;
                    conversation.id
                } else {
                    let (id,): (uuid::Uuid,) =
                        sqlx::query_as::<$db, _>("SELECT id FROM conversations WHERE direct_key = $1")
                            .bind(&key)
                            .fetch_one(&mut *tx)
                            .await?;
                    id
                };
                let found = conversation_by_id(&mut *tx, id).await?.ok_or(StorageError::NotFound("conversation"))?;
                tx.commit().await?;
                Ok((found, created))
            }

            async fn conversation(&self, id: uuid::Uuid) -> StorageResult<Option<ConversationRecord>> {
                conversation_by_id(self.reader(), id).await
            }

            async fn participant(
                &self,
                conversation: uuid::Uuid,
                user: uuid::Uuid,
            ) -> StorageResult<Option<ParticipantRecord>> {
                let row = sqlx::query_as::<$db, ParticipantRecord>(concat!(
                    "SELECT ",
                    participant_columns!(),
                    " FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2"
                ))
                .bind(conversation)
                .bind(user)
                .fetch_optional(self.reader())
                .await?;
                Ok(row)
            }

            async fn members(&self, conversation: uuid::Uuid) -> StorageResult<Vec<MemberRecord>> {
                let rows = sqlx::query_as::<$db, MemberRecord>(concat!(
                    "SELECT p.role, p.joined_at, p.joined_seq, ",
                    user_columns_u!(),
                    " FROM conversation_participants p JOIN users u ON u.id = p.user_id \
                     WHERE p.conversation_id = $1 ORDER BY p.joined_at, u.username"
                ))
                .bind(conversation)
                .fetch_all(self.reader())
                .await?;
                Ok(rows)
            }

            async fn member_ids(&self, conversation: uuid::Uuid) -> StorageResult<Vec<uuid::Uuid>> {
                let rows: Vec<(uuid::Uuid,)> = sqlx::query_as::<$db, _>(
                    "SELECT user_id FROM conversation_participants WHERE conversation_id = $1",
                )
                .bind(conversation)
                .fetch_all(self.reader())
                .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn send_contexts(&self, ids: &[uuid::Uuid]) -> StorageResult<Vec<SendContext>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT c.id, c.kind, p.user_id, \
                     EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = p.user_id) \
                     FROM conversations c \
                     LEFT JOIN conversation_participants p ON p.conversation_id = c.id \
                     WHERE c.deleted_at IS NULL AND c.id IN ",
                );
                push_id_list(&mut query, ids.iter().copied());
                let rows: Vec<(uuid::Uuid, String, Option<uuid::Uuid>, bool)> =
                    query.build_query_as().fetch_all(self.reader()).await?;
                let mut contexts: std::collections::HashMap<uuid::Uuid, SendContext> = std::collections::HashMap::new();
                for (id, kind, member, subscribed) in rows {
                    let context = match contexts.entry(id) {
                        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                        std::collections::hash_map::Entry::Vacant(entry) => {
                            let kind = ConversationKind::try_from(kind)
                                .map_err(|err| StorageError::Database(sqlx::Error::Decode(Box::new(err))))?;
                            entry.insert(SendContext { id, kind, members: Vec::new(), subscribed: Vec::new() })
                        }
                    };
                    context.members.extend(member);
                    context.subscribed.extend(member.filter(|_| subscribed));
                }
                Ok(contexts.into_values().collect())
            }

            async fn send_versions(&self, ids: &[uuid::Uuid]) -> StorageResult<Vec<(uuid::Uuid, SendVersion)>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT c.id, c.members_version, g.generation \
                     FROM conversations c CROSS JOIN send_context_generation g \
                     WHERE c.deleted_at IS NULL AND c.id IN ",
                );
                push_id_list(&mut query, ids.iter().copied());
                let rows: Vec<(uuid::Uuid, i64, i64)> = query.build_query_as().fetch_all(self.reader()).await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, members, generation)| (id, SendVersion { members, generation }))
                    .collect())
            }

            async fn conversations_of(
                &self,
                user: uuid::Uuid,
                archived: bool,
                after: Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>,
                limit: i64,
            ) -> StorageResult<Vec<ConversationSummaryRecord>> {
                let rows = sqlx::query_as::<$db, ConversationSummaryRecord>(concat!(
                    select_summaries!(),
                    // The page is chosen first, without the per-row counts; only its rows get
                    // them (a user in 1,000 conversations would otherwise count them all).
                    " WHERE p.user_id = $1 AND p.conversation_id IN (\
                     SELECT pp.conversation_id FROM conversation_participants pp \
                     JOIN conversations pc ON pc.id = pp.conversation_id \
                     WHERE pp.user_id = $1 AND pc.deleted_at IS NULL \
                     AND (pp.archived_at IS NOT NULL) = $2 \
                     AND (pp.hidden_seq IS NULL OR pc.last_seq > pp.hidden_seq) \
                     AND ($3 IS NULL OR (pc.last_activity_at, pc.id) < ($3, $4)) \
                     ORDER BY pc.last_activity_at DESC, pc.id DESC LIMIT $5) \
                     ORDER BY c.last_activity_at DESC, c.id DESC"
                ))
                .bind(user)
                .bind(archived)
                .bind(after.map(|(at, _)| at))
                .bind(after.map(|(_, id)| id))
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                Ok(rows)
            }

            async fn conversation_summary(
                &self,
                user: uuid::Uuid,
                conversation: uuid::Uuid,
            ) -> StorageResult<Option<ConversationSummaryRecord>> {
                let row = sqlx::query_as::<$db, ConversationSummaryRecord>(concat!(
                    select_summaries!(),
                    " WHERE p.user_id = $1 AND p.conversation_id = $2"
                ))
                .bind(user)
                .bind(conversation)
                .fetch_optional(self.reader())
                .await?;
                Ok(row)
            }

            async fn hide_conversation(&self, conversation: uuid::Uuid, user: uuid::Uuid) -> StorageResult<bool> {
                let done = sqlx::query::<$db>(
                    "UPDATE conversation_participants SET hidden_seq = \
                     (SELECT last_seq FROM conversations WHERE id = $1) \
                     WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation)
                .bind(user)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn soft_delete_conversation(
                &self,
                id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<bool> {
                let done = sqlx::query::<$db>(
                    "UPDATE conversations SET deleted_at = $2, updated_at = $2, direct_key = NULL \
                     WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn leave(
                &self,
                conversation: uuid::Uuid,
                user: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<LeaveOutcome> {
                let mut tx = self.writer().begin().await?;
                let removed: Option<(String,)> = sqlx::query_as::<$db, _>(
                    "DELETE FROM conversation_participants WHERE conversation_id = $1 AND user_id = $2 \
                     RETURNING role",
                )
                .bind(conversation)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((role,)) = removed else {
                    return Ok(LeaveOutcome::default());
                };
                let mut outcome = LeaveOutcome { left: true, ..Default::default() };
                let (owners, remaining): (i64, i64) = sqlx::query_as::<$db, _>(
                    "SELECT COUNT(CASE WHEN role = 'owner' THEN 1 END), COUNT(*) \
                     FROM conversation_participants WHERE conversation_id = $1",
                )
                .bind(conversation)
                .fetch_one(&mut *tx)
                .await?;
                if remaining == 0 {
                    sqlx::query::<$db>(
                        "UPDATE conversations SET deleted_at = $2, updated_at = $2, direct_key = NULL \
                         WHERE id = $1 AND deleted_at IS NULL",
                    )
                    .bind(conversation)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    outcome.emptied = true;
                } else if role == Role::Owner.as_str() && owners == 0 {
                    let (heir,): (uuid::Uuid,) = sqlx::query_as::<$db, _>(
                        "UPDATE conversation_participants SET role = 'owner' \
                         WHERE conversation_id = $1 AND user_id = ( \
                           SELECT user_id FROM conversation_participants WHERE conversation_id = $1 \
                           ORDER BY CASE role WHEN 'admin' THEN 0 ELSE 1 END, joined_at, user_id \
                           LIMIT 1) RETURNING user_id",
                    )
                    .bind(conversation)
                    .fetch_one(&mut *tx)
                    .await?;
                    outcome.new_owner = Some(heir);
                }
                tx.commit().await?;
                Ok(outcome)
            }
        }
    };
}
