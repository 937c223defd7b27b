//! Reactions, pins and search (SPEC §4.2).

macro_rules! sql_extras {
    ($store:ty, $db:ty) => {
        use $crate::storage::extras::{
            ExtrasRepo, PinOutcome, PinRecord, REACTORS_LISTED, ReactionChange, ReactionOutcome, ReactionSummary,
            SearchQuery, SearchScope,
        };

        /// One row of [`reaction_summaries`]: a listed reactor of an emoji, with the emoji's
        /// count and whether the viewer reacted with it.
        #[derive(sqlx::FromRow)]
        struct ReactorRow {
            message_id: uuid::Uuid,
            emoji: String,
            user_id: uuid::Uuid,
            count: i64,
            mine: i32,
        }

        /// The reactions of `messages` as `viewer` sees them: per message, each emoji in the
        /// order of its first reaction, with its first reactors.
        async fn reaction_summaries<'e, E: sqlx::Executor<'e, Database = $db>>(
            executor: E,
            messages: &[uuid::Uuid],
            viewer: uuid::Uuid,
        ) -> StorageResult<Vec<ReactionSummary>> {
            if messages.is_empty() {
                return Ok(Vec::new());
            }
            let mut query = sqlx::QueryBuilder::<$db>::new(
                "SELECT message_id, emoji, user_id, count, mine FROM (SELECT message_id, emoji, user_id, \
                 ROW_NUMBER() OVER (PARTITION BY message_id, emoji ORDER BY created_at, user_id) AS rn, \
                 COUNT(*) OVER (PARTITION BY message_id, emoji) AS count, \
                 CAST(MAX(CASE WHEN user_id = ",
            );
            query.push_bind(viewer);
            query.push(
                " THEN 1 ELSE 0 END) OVER (PARTITION BY message_id, emoji) AS INTEGER) AS mine, \
                 MIN(created_at) OVER (PARTITION BY message_id, emoji) AS first_at \
                 FROM message_reactions WHERE message_id IN ",
            );
            push_id_list(&mut query, messages.iter().copied());
            query.push(") r WHERE rn <= ");
            query.push_bind(REACTORS_LISTED);
            query.push(" ORDER BY message_id, first_at, emoji, rn");
            let rows: Vec<ReactorRow> = query.build_query_as().fetch_all(executor).await?;
            let mut summaries: Vec<ReactionSummary> = Vec::new();
            for row in rows {
                match summaries.last_mut() {
                    Some(last) if last.message_id == row.message_id && last.emoji == row.emoji => {
                        last.user_ids.push(row.user_id)
                    }
                    _ => summaries.push(ReactionSummary {
                        message_id: row.message_id,
                        emoji: row.emoji,
                        count: row.count,
                        user_ids: vec![row.user_id],
                        me: row.mine != 0,
                    }),
                }
            }
            Ok(summaries)
        }

        #[async_trait::async_trait]
        impl ExtrasRepo for $store {
            async fn react(&self, change: &ReactionChange, max_emoji: usize) -> StorageResult<ReactionOutcome> {
                let mut tx = self.writer().begin().await?;
                // The message's row lock: reactors of one message take turns, so the emoji
                // limit holds and the version counts every change once.
                let version: Option<i64> = sqlx::query_scalar::<$db, i64>(
                    "UPDATE messages SET reaction_version = reaction_version WHERE id = $1 AND deleted_at IS NULL \
                     RETURNING reaction_version",
                )
                .bind(change.message_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(mut version) = version else { return Ok(ReactionOutcome::MessageGone) };
                let changed = if change.add {
                    let (distinct, present): (i64, i64) = sqlx::query_as::<$db, (i64, i64)>(
                        "SELECT COUNT(DISTINCT emoji), COUNT(CASE WHEN emoji = $2 THEN 1 END) \
                         FROM message_reactions WHERE message_id = $1",
                    )
                    .bind(change.message_id)
                    .bind(&change.emoji)
                    .fetch_one(&mut *tx)
                    .await?;
                    if present == 0 && distinct >= max_emoji as i64 {
                        return Ok(ReactionOutcome::TooManyEmoji);
                    }
                    sqlx::query::<$db>(
                        "INSERT INTO message_reactions (message_id, emoji, user_id, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (message_id, emoji, user_id) DO NOTHING",
                    )
                    .bind(change.message_id)
                    .bind(&change.emoji)
                    .bind(change.user_id)
                    .bind(change.at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                } else {
                    sqlx::query::<$db>(
                        "DELETE FROM message_reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
                    )
                    .bind(change.message_id)
                    .bind(&change.emoji)
                    .bind(change.user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                };
                if changed {
                    version = sqlx::query_scalar::<$db, i64>(
                        "UPDATE messages SET reaction_version = reaction_version + 1 WHERE id = $1 \
                         RETURNING reaction_version",
                    )
                    .bind(change.message_id)
                    .fetch_one(&mut *tx)
                    .await?;
                }
                let reactions = reaction_summaries(&mut *tx, &[change.message_id], change.user_id).await?;
                tx.commit().await?;
                Ok(ReactionOutcome::Done { changed, version, reactions })
            }

            async fn reactions(
                &self,
                messages: &[uuid::Uuid],
                viewer: uuid::Uuid,
            ) -> StorageResult<Vec<ReactionSummary>> {
                reaction_summaries(self.reader(), messages, viewer).await
            }

            async fn reactors(&self, message: uuid::Uuid) -> StorageResult<Vec<(uuid::Uuid, String)>> {
                let rows = sqlx::query_as::<$db, (uuid::Uuid, String)>(
                    "SELECT user_id, emoji FROM message_reactions WHERE message_id = $1",
                )
                .bind(message)
                .fetch_all(self.reader())
                .await?;
                Ok(rows)
            }

            async fn pin(
                &self,
                conversation: uuid::Uuid,
                message: uuid::Uuid,
                by: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
                max: usize,
            ) -> StorageResult<PinOutcome> {
                let mut tx = self.writer().begin().await?;
                // The conversation's row lock: pins of one conversation take turns (the limit holds).
                sqlx::query::<$db>("UPDATE conversations SET updated_at = updated_at WHERE id = $1")
                    .bind(conversation)
                    .execute(&mut *tx)
                    .await?;
                let existing = sqlx::query_as::<$db, PinRecord>(
                    "SELECT conversation_id, message_id, pinned_by, pinned_at FROM message_pins \
                     WHERE conversation_id = $1 AND message_id = $2",
                )
                .bind(conversation)
                .bind(message)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(pin) = existing {
                    return Ok(PinOutcome::AlreadyPinned(pin));
                }
                let pinned: i64 =
                    sqlx::query_scalar::<$db, i64>("SELECT COUNT(*) FROM message_pins WHERE conversation_id = $1")
                        .bind(conversation)
                        .fetch_one(&mut *tx)
                        .await?;
                if pinned >= max as i64 {
                    return Ok(PinOutcome::Full);
                }
                let pin = sqlx::query_as::<$db, PinRecord>(
                    "INSERT INTO message_pins (conversation_id, message_id, pinned_by, pinned_at) VALUES ($1, $2, $3, $4) \
                     RETURNING conversation_id, message_id, pinned_by, pinned_at",
                )
                .bind(conversation)
                .bind(message)
                .bind(by)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(PinOutcome::Pinned(pin))
            }

            async fn unpin(&self, conversation: uuid::Uuid, message: uuid::Uuid) -> StorageResult<bool> {
                let done = sqlx::query::<$db>("DELETE FROM message_pins WHERE conversation_id = $1 AND message_id = $2")
                    .bind(conversation)
                    .bind(message)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn pins(
                &self,
                conversation: uuid::Uuid,
                floor_seq: i64,
            ) -> StorageResult<Vec<(PinRecord, MessageRecord)>> {
                let pins = sqlx::query_as::<$db, PinRecord>(
                    "SELECT p.conversation_id, p.message_id, p.pinned_by, p.pinned_at FROM message_pins p \
                     JOIN messages m ON m.id = p.message_id \
                     WHERE p.conversation_id = $1 AND m.seq > $2 ORDER BY p.pinned_at DESC, p.message_id",
                )
                .bind(conversation)
                .bind(floor_seq)
                .fetch_all(self.reader())
                .await?;
                if pins.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(select_messages!(), " WHERE m.id IN "));
                push_id_list(&mut query, pins.iter().map(|pin| pin.message_id));
                let messages: Vec<MessageRecord> = query.build_query_as().fetch_all(self.reader()).await?;
                let mut by_id: std::collections::HashMap<uuid::Uuid, MessageRecord> =
                    messages.into_iter().map(|message| (message.id, message)).collect();
                Ok(pins.into_iter().filter_map(|pin| by_id.remove(&pin.message_id).map(|m| (pin, m))).collect())
            }

            async fn participants_not_seeing(&self, conversation: uuid::Uuid, seq: i64) -> StorageResult<Vec<uuid::Uuid>> {
                let rows = sqlx::query_scalar::<$db, uuid::Uuid>(
                    "SELECT user_id FROM conversation_participants WHERE conversation_id = $1 \
                     AND (joined_seq >= $2 OR cleared_seq >= $2)",
                )
                .bind(conversation)
                .bind(seq)
                .fetch_all(self.reader())
                .await?;
                Ok(rows)
            }

            async fn members_named(
                &self,
                conversation: uuid::Uuid,
                usernames: &[String],
            ) -> StorageResult<Vec<(uuid::Uuid, String)>> {
                if usernames.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT u.id, u.username FROM conversation_participants p JOIN users u ON u.id = p.user_id \
                     WHERE p.conversation_id = ",
                );
                query.push_bind(conversation).push(" AND u.username IN (");
                let mut names = query.separated(", ");
                for name in usernames {
                    names.push_bind(name);
                }
                query.push(")");
                Ok(query.build_query_as().fetch_all(self.reader()).await?)
            }

            async fn search_scope(&self, user: uuid::Uuid) -> StorageResult<Vec<SearchScope>> {
                let rows = sqlx::query_as::<$db, (uuid::Uuid, i64, i64, Option<i64>)>(
                    "SELECT p.conversation_id, p.cleared_seq, p.joined_seq, p.hidden_seq \
                     FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id \
                     WHERE p.user_id = $1 AND c.deleted_at IS NULL",
                )
                .bind(user)
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(conversation_id, cleared, joined, hidden)| SearchScope {
                        conversation_id,
                        floor: cleared.max(joined).max(hidden.unwrap_or(0)),
                    })
                    .collect())
            }

            async fn search_messages(&self, search: &SearchQuery) -> StorageResult<Vec<MessageRecord>> {
                if search.terms.is_empty() || search.scopes.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(dialect::SEARCH_FROM);
                query.push_bind(dialect::search_expression(&search.terms));
                query.push(")) AND m.deleted_at IS NULL AND m.conversation_id IN ");
                push_id_list(&mut query, search.scopes.iter().map(|scope| scope.conversation_id));
                // Above the reader's floor in each conversation (the CASE is NULL elsewhere).
                query.push(" AND m.seq > CASE m.conversation_id");
                for scope in &search.scopes {
                    query.push(" WHEN ").push_bind(scope.conversation_id).push(" THEN ").push_bind(scope.floor);
                }
                query.push(" END");
                if let Some(after) = search.after {
                    query.push(dialect::SEARCH_AFTER).push_bind(after).push(dialect::SEARCH_AFTER_END);
                }
                query.push(dialect::SEARCH_ORDER).push_bind(search.limit);
                // Planned with its values (an unnamed statement): a plan made once for all words
                // would use one index for all, and which one serves depends on the word.
                Ok(query.build_query_as().persistent(false).fetch_all(self.reader()).await?)
            }
        }
    };
}
