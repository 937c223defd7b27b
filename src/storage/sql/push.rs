//! Push subscriptions and the outbox: the rows a send transaction writes, and what the
//! senders claim, release and delete.

/// Columns of [`PushSubscriptionRecord`](crate::storage::push::PushSubscriptionRecord).
macro_rules! subscription_columns {
    () => {
        "id, user_id, endpoint, p256dh, auth, user_agent, created_at, updated_at"
    };
}

/// Columns of [`OutboxRow`](crate::storage::push::OutboxRow).
macro_rules! outbox_columns {
    () => {
        "id, kind, event, subscription_id, user_id, conversation_id, message_id, with_preview, coalesced, \
         body, delivery_id, created_at, due_at, attempts"
    };
}

macro_rules! sql_push {
    ($store:ty, $db:ty) => {
        use $crate::storage::push::{
            NewWebhook, Notify, OutboxRepo, OutboxRow, OutboxStats, PushRepo, PushSubscriptionRecord,
        };

        /// Appends `(id, id, …)` of outbox rows, the list of an `IN`.
        fn push_row_ids(query: &mut sqlx::QueryBuilder<$db>, ids: &[i64]) {
            query.push("(");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            query.push(")");
        }

        /// The outbox rows of the messages a send transaction just stored: per message with
        /// a [`Notify`], one `message.created` webhook; per offline recipient who has not
        /// muted the conversation (or is mentioned) and has not blocked the sender, one push
        /// per subscription and one `message.offline` webhook. Three statements per batch at
        /// most, none when nobody is to be told.
        async fn insert_outbox(
            tx: &mut sqlx::Transaction<'static, $db>,
            rows: &[(&NewMessage, i64, chrono::DateTime<chrono::Utc>)],
        ) -> StorageResult<()> {
            // Due at the sender's time, not the stored `created_at` (which may be a few ms
            // later, to keep it growing with `seq`).
            let notified: Vec<(&NewMessage, &Notify, chrono::DateTime<chrono::Utc>)> =
                rows.iter().filter_map(|(m, _, _)| m.notify.as_ref().map(|n| (*m, n, m.created_at))).collect();
            let created: Vec<_> = notified.iter().filter(|(_, n, _)| n.webhooks).collect();
            if !created.is_empty() {
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO outbox (kind, event, conversation_id, message_id, created_at, due_at) ",
                );
                insert.push_values(&created, |mut row, (message, _, at)| {
                    row.push_bind("webhook")
                        .push_bind("message.created")
                        .push_bind(message.conversation_id)
                        .push_bind(message.id)
                        .push_bind(*at)
                        .push_bind(*at);
                });
                insert.build().execute(&mut **tx).await?;
            }
            let pairs: Vec<(&NewMessage, &Notify, chrono::DateTime<chrono::Utc>, uuid::Uuid)> = notified
                .iter()
                .flat_map(|(m, n, at)| n.offline.iter().map(move |user| (*m, *n, *at, *user)))
                .collect();
            if pairs.is_empty() {
                return Ok(());
            }
            let webhooks = pairs.iter().any(|(_, n, _, _)| n.webhooks);
            for (kind, join, event) in [
                ("push", "JOIN push_subscriptions s ON s.user_id = v.recipient", "'message'"),
                ("webhook", "", "'message.offline'"),
            ] {
                if kind == "webhook" && !webhooks {
                    continue;
                }
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "WITH v(message_id, conversation_id, sender, recipient, mentioned, coalesced, webhooks, at) AS (VALUES ",
                );
                let mut values = insert.separated(", ");
                for (message, notify, at, user) in &pairs {
                    values.push("(").push_bind_unseparated(message.id);
                    values.push_unseparated(", ").push_bind_unseparated(message.conversation_id);
                    values.push_unseparated(", ").push_bind_unseparated(message.sender_id);
                    values.push_unseparated(", ").push_bind_unseparated(*user);
                    values.push_unseparated(", ").push_bind_unseparated(notify.mentioned.contains(user));
                    values.push_unseparated(", ").push_bind_unseparated(notify.coalesce);
                    values.push_unseparated(", ").push_bind_unseparated(notify.webhooks);
                    values.push_unseparated(", ").push_bind_unseparated(*at).push_unseparated(")");
                }
                let subscription = if kind == "push" { "s.id" } else { "NULL" };
                insert.push(format!(
                    ") INSERT INTO outbox (kind, event, subscription_id, user_id, conversation_id, message_id, \
                     with_preview, coalesced, created_at, due_at) \
                     SELECT '{kind}', {event}, {subscription}, v.recipient, v.conversation_id, v.message_id, \
                     (p.muted_until IS NULL OR p.muted_until <= v.at), v.coalesced, v.at, v.at \
                     FROM v {join} \
                     JOIN conversation_participants p ON p.conversation_id = v.conversation_id AND p.user_id = v.recipient \
                     WHERE (p.muted_until IS NULL OR p.muted_until <= v.at OR v.mentioned) \
                     AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = v.recipient AND b.blocked_id = v.sender)"
                ));
                if kind == "webhook" {
                    insert.push(" AND v.webhooks");
                }
                insert.build().execute(&mut **tx).await?;
            }
            Ok(())
        }

        #[async_trait::async_trait]
        impl PushRepo for $store {
            async fn upsert_subscription(
                &self,
                s: &PushSubscriptionRecord,
            ) -> StorageResult<(PushSubscriptionRecord, bool)> {
                let stored = sqlx::query_as::<$db, PushSubscriptionRecord>(concat!(
                    "INSERT INTO push_subscriptions (",
                    subscription_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, p256dh = excluded.p256dh, \
                     auth = excluded.auth, user_agent = excluded.user_agent, updated_at = excluded.updated_at \
                     RETURNING ",
                    subscription_columns!()
                ))
                .bind(s.id)
                .bind(s.user_id)
                .bind(&s.endpoint)
                .bind(&s.p256dh)
                .bind(&s.auth)
                .bind(&s.user_agent)
                .bind(s.created_at)
                .bind(s.updated_at)
                .fetch_one(self.writer())
                .await?;
                let created = stored.id == s.id;
                Ok((stored, created))
            }

            async fn subscriptions_of(&self, user: uuid::Uuid) -> StorageResult<Vec<PushSubscriptionRecord>> {
                Ok(sqlx::query_as::<$db, PushSubscriptionRecord>(concat!(
                    "SELECT ",
                    subscription_columns!(),
                    " FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at, id"
                ))
                .bind(user)
                .fetch_all(self.reader())
                .await?)
            }

            async fn subscriptions_by_ids(&self, ids: &[uuid::Uuid]) -> StorageResult<Vec<PushSubscriptionRecord>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    subscription_columns!(),
                    " FROM push_subscriptions WHERE id IN "
                ));
                push_id_list(&mut query, ids.iter().copied());
                Ok(query.build_query_as().fetch_all(self.reader()).await?)
            }

            async fn delete_subscription(&self, user: uuid::Uuid, endpoint: &str) -> StorageResult<bool> {
                let done = sqlx::query::<$db>("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
                    .bind(user)
                    .bind(endpoint)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_subscription_by_id(&self, id: uuid::Uuid) -> StorageResult<()> {
                sqlx::query::<$db>("DELETE FROM push_subscriptions WHERE id = $1").bind(id).execute(self.writer()).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl OutboxRepo for $store {
            async fn claim_outbox(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> StorageResult<Vec<OutboxRow>> {
                Ok(sqlx::query_as::<$db, OutboxRow>(dialect::CLAIM_OUTBOX)
                    .bind(now)
                    .bind(lease_until)
                    .bind(limit)
                    .fetch_all(self.writer())
                    .await?)
            }

            async fn claim_coalesced(
                &self,
                subscription: uuid::Uuid,
                conversation: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<Vec<OutboxRow>> {
                Ok(sqlx::query_as::<$db, OutboxRow>(dialect::CLAIM_COALESCED)
                    .bind(subscription)
                    .bind(conversation)
                    .bind(now)
                    .bind(lease_until)
                    .fetch_all(self.writer())
                    .await?)
            }

            async fn take_push_window(
                &self,
                subscription: uuid::Uuid,
                conversation: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<Option<chrono::DateTime<chrono::Utc>>> {
                let taken: Option<(chrono::DateTime<chrono::Utc>,)> = sqlx::query_as::<$db, _>(
                    "INSERT INTO push_windows (subscription_id, conversation_id, open_until) VALUES ($1, $2, $4) \
                     ON CONFLICT (subscription_id, conversation_id) DO UPDATE SET open_until = excluded.open_until \
                     WHERE push_windows.open_until <= $3 RETURNING open_until",
                )
                .bind(subscription)
                .bind(conversation)
                .bind(now)
                .bind(until)
                .fetch_optional(self.writer())
                .await?;
                if taken.is_some() {
                    return Ok(None);
                }
                let open: Option<(chrono::DateTime<chrono::Utc>,)> = sqlx::query_as::<$db, _>(
                    "SELECT open_until FROM push_windows WHERE subscription_id = $1 AND conversation_id = $2",
                )
                .bind(subscription)
                .bind(conversation)
                .fetch_optional(self.writer())
                .await?;
                Ok(Some(open.map_or(until, |(at,)| at)))
            }

            async fn outbox_done(&self, ids: &[i64]) -> StorageResult<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new("DELETE FROM outbox WHERE id IN ");
                push_row_ids(&mut query, ids);
                query.build().execute(self.writer()).await?;
                Ok(())
            }

            async fn outbox_retry(
                &self,
                ids: &[i64],
                due_at: chrono::DateTime<chrono::Utc>,
                failed: bool,
                error: &str,
            ) -> StorageResult<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new("UPDATE outbox SET claimed_until = NULL, due_at = ");
                query.push_bind(due_at);
                if failed {
                    query.push(", attempts = attempts + 1, last_error = ").push_bind(error.to_owned());
                }
                query.push(" WHERE id IN ");
                push_row_ids(&mut query, ids);
                query.build().execute(self.writer()).await?;
                Ok(())
            }

            async fn set_webhook_body(&self, id: i64, body: &str, delivery_id: &str) -> StorageResult<()> {
                sqlx::query::<$db>("UPDATE outbox SET body = $2, delivery_id = $3 WHERE id = $1")
                    .bind(id)
                    .bind(body)
                    .bind(delivery_id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn enqueue_webhook(&self, webhook: &NewWebhook) -> StorageResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO outbox (kind, event, body, delivery_id, created_at, due_at) \
                     VALUES ('webhook', $1, $2, $3, $4, $4)",
                )
                .bind(&webhook.event)
                .bind(&webhook.body)
                .bind(&webhook.delivery_id)
                .bind(webhook.at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn outbox_stats(&self, now: chrono::DateTime<chrono::Utc>) -> StorageResult<OutboxStats> {
                type Row = (i64, Option<i64>, Option<i64>, Option<i64>, Option<chrono::DateTime<chrono::Utc>>);
                let (depth, pushes, pushes_due, due, oldest): Row = sqlx::query_as::<$db, _>(
                    "SELECT COUNT(*), SUM(CASE WHEN kind = 'push' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN kind = 'push' AND due_at <= $1 THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN due_at <= $1 THEN 1 ELSE 0 END), MIN(created_at) FROM outbox",
                )
                .bind(now)
                .fetch_one(self.writer())
                .await?;
                Ok(OutboxStats {
                    depth,
                    pushes: pushes.unwrap_or(0),
                    pushes_due: pushes_due.unwrap_or(0),
                    due: due.unwrap_or(0),
                    oldest,
                })
            }

            async fn outbox_messages(&self, ids: &[uuid::Uuid]) -> StorageResult<Vec<MessageRecord>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(select_messages!(), " WHERE m.id IN "));
                push_id_list(&mut query, ids.iter().copied());
                Ok(query.build_query_as().fetch_all(self.reader()).await?)
            }
        }
    };
}
