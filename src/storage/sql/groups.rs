//! Running a group: its fields, members and roles, invite links, per-user mute.

/// Columns of [`InviteRecord`](crate::storage::models::InviteRecord).
macro_rules! invite_columns {
    () => {
        "code, conversation_id, created_by, created_at, expires_at, max_uses, uses, revoked_at"
    };
}

/// The conditions under which an invite can still be accepted (`$2`: now).
macro_rules! invite_is_live {
    () => {
        "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) \
         AND (max_uses IS NULL OR uses < max_uses)"
    };
}

macro_rules! sql_groups {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl GroupRepo for $store {
            async fn update_conversation(
                &self,
                id: uuid::Uuid,
                patch: &ConversationPatch,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<Option<ConversationRecord>> {
                let mut update = sqlx::QueryBuilder::<$db>::new("UPDATE conversations SET updated_at = ");
                update.push_bind(now);
                if let Some(title) = &patch.title {
                    update.push(", title = ").push_bind(title.clone());
                }
                if let Some(description) = &patch.description {
                    update.push(", description = ").push_bind(description.clone());
                }
                if let Some(avatar_url) = &patch.avatar_url {
                    update.push(", avatar_url = ").push_bind(avatar_url.clone());
                }
                if let Some(visibility) = patch.visibility {
                    update.push(", visibility = ").push_bind(visibility.as_str());
                }
                update.push(" WHERE id = ").push_bind(id).push(" AND deleted_at IS NULL");
                let mut tx = self.writer().begin().await?;
                if update.build().execute(&mut *tx).await?.rows_affected() == 0 {
                    return Ok(None);
                }
                let updated = conversation_by_id(&mut *tx, id).await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn add_members(
                &self,
                conversation: uuid::Uuid,
                users: &[uuid::Uuid],
                limit: usize,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<AddOutcome> {
                let mut tx = self.writer().begin().await?;
                // A no-op update: it locks the conversation's row, so concurrent adds take
                // turns and the size limit holds.
                let locked: Option<(i64,)> = sqlx::query_as::<$db, _>(
                    "UPDATE conversations SET updated_at = updated_at WHERE id = $1 AND deleted_at IS NULL \
                     RETURNING last_seq",
                )
                .bind(conversation)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((last_seq,)) = locked else {
                    return Err(StorageError::NotFound("conversation"));
                };
                let present: Vec<(uuid::Uuid,)> = sqlx::query_as::<$db, _>(
                    "SELECT user_id FROM conversation_participants WHERE conversation_id = $1",
                )
                .bind(conversation)
                .fetch_all(&mut *tx)
                .await?;
                let mut members: std::collections::HashSet<uuid::Uuid> = present.into_iter().map(|(id,)| id).collect();
                let mut outcome = AddOutcome::default();
                for user in users {
                    if members.contains(user) {
                        outcome.already_members.push(*user);
                    } else if members.len() >= limit {
                        outcome.full.push(*user);
                    } else {
                        members.insert(*user);
                        outcome.added.push(*user);
                    }
                }
                if !outcome.added.is_empty() {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO conversation_participants (conversation_id, user_id, role, joined_at, \
                         joined_seq, cleared_seq, last_read_seq, last_delivered_seq) ",
                    );
                    insert.push_values(&outcome.added, |mut row, user| {
                        row.push_bind(conversation)
                            .push_bind(*user)
                            .push_bind(Role::Member.as_str())
                            .push_bind(now)
                            .push_bind(last_seq)
                            .push_bind(last_seq)
                            .push_bind(last_seq)
                            .push_bind(last_seq);
                    });
                    insert.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(outcome)
            }

            async fn set_role(&self, conversation: uuid::Uuid, user: uuid::Uuid, role: Role) -> StorageResult<bool> {
                let done = sqlx::query::<$db>(
                    "UPDATE conversation_participants SET role = $3 WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation)
                .bind(user)
                .bind(role.as_str())
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn transfer_ownership(
                &self,
                conversation: uuid::Uuid,
                from: uuid::Uuid,
                to: uuid::Uuid,
            ) -> StorageResult<bool> {
                let mut tx = self.writer().begin().await?;
                let demoted = sqlx::query::<$db>(
                    "UPDATE conversation_participants SET role = 'admin' \
                     WHERE conversation_id = $1 AND user_id = $2 AND role = 'owner'",
                )
                .bind(conversation)
                .bind(from)
                .execute(&mut *tx)
                .await?;
                let promoted = sqlx::query::<$db>(
                    "UPDATE conversation_participants SET role = 'owner' WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation)
                .bind(to)
                .execute(&mut *tx)
                .await?;
                if demoted.rows_affected() != 1 || promoted.rows_affected() != 1 {
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn set_muted(
                &self,
                conversation: uuid::Uuid,
                user: uuid::Uuid,
                until: Option<chrono::DateTime<chrono::Utc>>,
            ) -> StorageResult<bool> {
                let done = sqlx::query::<$db>(
                    "UPDATE conversation_participants SET muted_until = $3 \
                     WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation)
                .bind(user)
                .bind(until)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_invite(&self, invite: &NewInvite) -> StorageResult<InviteRecord> {
                let row = sqlx::query_as::<$db, InviteRecord>(concat!(
                    "INSERT INTO conversation_invites (code, conversation_id, created_by, created_at, \
                     expires_at, max_uses) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
                    invite_columns!()
                ))
                .bind(&invite.code)
                .bind(invite.conversation_id)
                .bind(invite.created_by)
                .bind(invite.created_at)
                .bind(invite.expires_at)
                .bind(invite.max_uses)
                .fetch_one(self.writer())
                .await?;
                Ok(row)
            }

            async fn invite(&self, code: &str) -> StorageResult<Option<InviteRecord>> {
                let row = sqlx::query_as::<$db, InviteRecord>(concat!(
                    "SELECT ",
                    invite_columns!(),
                    " FROM conversation_invites WHERE code = $1"
                ))
                .bind(code)
                .fetch_optional(self.reader())
                .await?;
                Ok(row)
            }

            async fn live_invites(
                &self,
                conversation: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<Vec<InviteRecord>> {
                let rows = sqlx::query_as::<$db, InviteRecord>(concat!(
                    "SELECT ",
                    invite_columns!(),
                    " FROM conversation_invites WHERE conversation_id = $1 AND ",
                    invite_is_live!(),
                    " ORDER BY created_at, code"
                ))
                .bind(conversation)
                .bind(now)
                .fetch_all(self.reader())
                .await?;
                Ok(rows)
            }

            async fn revoke_invite(&self, code: &str, now: chrono::DateTime<chrono::Utc>) -> StorageResult<bool> {
                let done = sqlx::query::<$db>(
                    "UPDATE conversation_invites SET revoked_at = $2 WHERE code = $1 AND revoked_at IS NULL",
                )
                .bind(code)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn use_invite(
                &self,
                code: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<Option<InviteRecord>> {
                let row = sqlx::query_as::<$db, InviteRecord>(concat!(
                    "UPDATE conversation_invites SET uses = uses + 1 WHERE code = $1 AND ",
                    invite_is_live!(),
                    " RETURNING ",
                    invite_columns!()
                ))
                .bind(code)
                .bind(now)
                .fetch_optional(self.writer())
                .await?;
                Ok(row)
            }

            async fn unuse_invite(&self, code: &str) -> StorageResult<()> {
                sqlx::query::<$db>("UPDATE conversation_invites SET uses = uses - 1 WHERE code = $1 AND uses > 0")
                    .bind(code)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }
        }
    };
}
