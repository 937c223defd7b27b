//! Users, refresh tokens, follows and blocks.

macro_rules! sql_accounts {
    ($store:ty, $db:ty) => {
        #[derive(sqlx::FromRow)]
        struct BlockRow {
            #[sqlx(flatten)]
            user: UserRecord,
            blocked_at: chrono::DateTime<chrono::Utc>,
        }

        #[async_trait::async_trait]
        impl UserRepo for $store {
            async fn create_user(&self, user: &NewUser) -> StorageResult<UserRecord> {
                let row = sqlx::query_as::<$db, UserRecord>(concat!(
                    "INSERT INTO users (id, email, username, display_name, password_hash, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
                    user_columns!()
                ))
                .bind(user.id)
                .bind(&user.email)
                .bind(&user.username)
                .bind(&user.display_name)
                .bind(&user.password_hash)
                .bind(user.created_at)
                .fetch_one(self.writer())
                .await?;
                Ok(row)
            }

            async fn user_by_id(&self, id: uuid::Uuid) -> StorageResult<Option<UserRecord>> {
                let row = sqlx::query_as::<$db, UserRecord>(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row)
            }

            async fn user_by_email(&self, email: &str) -> StorageResult<Option<UserRecord>> {
                let row = sqlx::query_as::<$db, UserRecord>(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE email = $1"
                ))
                .bind(email)
                .fetch_optional(self.reader())
                .await?;
                Ok(row)
            }

            async fn user_by_username(&self, username: &str) -> StorageResult<Option<UserRecord>> {
                let row = sqlx::query_as::<$db, UserRecord>(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE username = $1"
                ))
                .bind(username)
                .fetch_optional(self.reader())
                .await?;
                Ok(row)
            }

            async fn users_by_ids(&self, ids: &[uuid::Uuid]) -> StorageResult<Vec<UserRecord>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut select = sqlx::QueryBuilder::<$db>::new(concat!("SELECT ", user_columns!(), " FROM users WHERE id IN "));
                push_id_list(&mut select, ids.iter().copied());
                Ok(select.build_query_as::<UserRecord>().fetch_all(self.reader()).await?)
            }

            async fn username_taken(&self, username: &str) -> StorageResult<bool> {
                let found: Option<(uuid::Uuid,)> =
                    sqlx::query_as::<$db, _>("SELECT id FROM users WHERE username = $1")
                        .bind(username)
                        .fetch_optional(self.reader())
                        .await?;
                Ok(found.is_some())
            }

            async fn search_users(
                &self,
                prefix: &str,
                viewer: uuid::Uuid,
                limit: i64,
            ) -> StorageResult<Vec<UserRecord>> {
                let rows = sqlx::query_as::<$db, UserRecord>(dialect::SEARCH_USERS)
                    .bind(prefix)
                    .bind(viewer)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows)
            }

            async fn update_profile(
                &self,
                id: uuid::Uuid,
                patch: &ProfilePatch,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<UserRecord> {
                sqlx::query_as::<$db, UserRecord>(concat!(
                    "UPDATE users SET display_name = COALESCE($2, display_name), \
                     username = COALESCE($3, username), \
                     avatar_url = CASE WHEN $4 THEN $5 ELSE avatar_url END, \
                     updated_at = $6 WHERE id = $1 RETURNING ",
                    user_columns!()
                ))
                .bind(id)
                .bind(patch.display_name.as_deref())
                .bind(patch.username.as_deref())
                .bind(patch.avatar_url.is_some())
                .bind(patch.avatar_url.clone().flatten())
                .bind(now)
                .fetch_optional(self.writer())
                .await?
                .ok_or(StorageError::NotFound("user"))
            }

            async fn update_settings(
                &self,
                id: uuid::Uuid,
                patch: &SettingsPatch,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<UserRecord> {
                sqlx::query_as::<$db, UserRecord>(concat!(
                    "UPDATE users SET show_last_seen = COALESCE($2, show_last_seen), \
                     presence_sharing = COALESCE($3, presence_sharing), \
                     read_receipts_enabled = COALESCE($4, read_receipts_enabled), \
                     updated_at = $5 WHERE id = $1 RETURNING ",
                    user_columns!()
                ))
                .bind(id)
                .bind(patch.show_last_seen)
                .bind(patch.presence_sharing.map(PresenceSharing::as_str))
                .bind(patch.read_receipts_enabled)
                .bind(now)
                .fetch_optional(self.writer())
                .await?
                .ok_or(StorageError::NotFound("user"))
            }

            async fn set_last_seen(
                &self,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<()> {
                sqlx::query::<$db>("UPDATE users SET last_seen_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(at)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl SessionRepo for $store {
            async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StorageResult<()> {
                insert_refresh_token(self.writer(), token).await
            }

            async fn refresh_token_by_hash(
                &self,
                hash: &[u8],
            ) -> StorageResult<Option<RefreshTokenRecord>> {
                let row = sqlx::query_as::<$db, RefreshTokenRecord>(
                    "SELECT id, user_id, family_id, created_at, expires_at, rotated_at, \
                     revoked_at FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(hash)
                .fetch_optional(self.reader())
                .await?;
                Ok(row)
            }

            async fn rotate_refresh_token(
                &self,
                old: uuid::Uuid,
                successor: &NewRefreshToken,
            ) -> StorageResult<bool> {
                let mut tx = self.writer().begin().await?;
                let updated = sqlx::query::<$db>(
                    "UPDATE refresh_tokens SET rotated_at = $2 \
                     WHERE id = $1 AND rotated_at IS NULL AND revoked_at IS NULL",
                )
                .bind(old)
                .bind(successor.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated != 1 {
                    return Ok(false);
                }
                insert_refresh_token(&mut *tx, successor).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn revoke_refresh_family(
                &self,
                family: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<u64> {
                let done = sqlx::query::<$db>(
                    "UPDATE refresh_tokens SET revoked_at = $2 \
                     WHERE family_id = $1 AND revoked_at IS NULL",
                )
                .bind(family)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected())
            }

            async fn purge_expired_refresh_tokens(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<u64> {
                let done = sqlx::query::<$db>("DELETE FROM refresh_tokens WHERE expires_at < $1")
                    .bind(now)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected())
            }
        }

        async fn insert_refresh_token<'e, E>(
            executor: E,
            token: &NewRefreshToken,
        ) -> StorageResult<()>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            sqlx::query::<$db>(
                "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token.id)
            .bind(token.user_id)
            .bind(token.family_id)
            .bind(&token.token_hash)
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(executor)
            .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl SocialRepo for $store {
            async fn follow(
                &self,
                follower: uuid::Uuid,
                followee: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO follows (follower_id, followee_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(follower)
                .bind(followee)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn unfollow(
                &self,
                follower: uuid::Uuid,
                followee: uuid::Uuid,
            ) -> StorageResult<bool> {
                let done = sqlx::query::<$db>(
                    "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2",
                )
                .bind(follower)
                .bind(followee)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn friends_of(&self, user: uuid::Uuid) -> StorageResult<Vec<UserRecord>> {
                let rows = sqlx::query_as::<$db, UserRecord>(concat!(
                    "SELECT ",
                    user_columns_u!(),
                    " FROM follows f \
                     JOIN follows back ON back.follower_id = f.followee_id \
                                      AND back.followee_id = f.follower_id \
                     JOIN users u ON u.id = f.followee_id \
                     WHERE f.follower_id = $1 ORDER BY u.username"
                ))
                .bind(user)
                .fetch_all(self.reader())
                .await?;
                Ok(rows)
            }

            async fn block(
                &self,
                blocker: uuid::Uuid,
                blocked: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query::<$db>(
                    "INSERT INTO blocks (blocker_id, blocked_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(blocker)
                .bind(blocked)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query::<$db>(
                    "DELETE FROM follows WHERE (follower_id = $1 AND followee_id = $2) \
                     OR (follower_id = $2 AND followee_id = $1)",
                )
                .bind(blocker)
                .bind(blocked)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn unblock(
                &self,
                blocker: uuid::Uuid,
                blocked: uuid::Uuid,
            ) -> StorageResult<bool> {
                let done = sqlx::query::<$db>(
                    "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
                )
                .bind(blocker)
                .bind(blocked)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn blocked_by(&self, blocker: uuid::Uuid) -> StorageResult<Vec<BlockedUser>> {
                let rows = sqlx::query_as::<$db, BlockRow>(concat!(
                    "SELECT ",
                    user_columns_u!(),
                    ", b.created_at AS blocked_at FROM blocks b \
                     JOIN users u ON u.id = b.blocked_id \
                     WHERE b.blocker_id = $1 ORDER BY b.created_at DESC, u.username"
                ))
                .bind(blocker)
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| BlockedUser { user: r.user, blocked_at: r.blocked_at })
                    .collect())
            }

            async fn relationship(
                &self,
                viewer: uuid::Uuid,
                other: uuid::Uuid,
            ) -> StorageResult<Relationship> {
                let (following, followed_by, blocking, blocked_by) =
                    sqlx::query_as::<$db, (bool, bool, bool, bool)>(
                        "SELECT \
                         EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2), \
                         EXISTS (SELECT 1 FROM follows WHERE follower_id = $2 AND followee_id = $1), \
                         EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2), \
                         EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $2 AND blocked_id = $1)",
                    )
                    .bind(viewer)
                    .bind(other)
                    .fetch_one(self.reader())
                    .await?;
                Ok(Relationship { following, followed_by, blocking, blocked_by })
            }

            async fn blocks_among(&self, users: &[uuid::Uuid]) -> StorageResult<Vec<(uuid::Uuid, uuid::Uuid)>> {
                if users.len() < 2 {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new("SELECT blocker_id, blocked_id FROM blocks WHERE blocker_id IN ");
                push_id_list(&mut query, users.iter().copied());
                query.push(" AND blocked_id IN ");
                push_id_list(&mut query, users.iter().copied());
                Ok(query.build_query_as().fetch_all(self.reader()).await?)
            }

            async fn contacts(&self, user: uuid::Uuid) -> StorageResult<Contacts> {
                let ids = |rows: Vec<(uuid::Uuid,)>| rows.into_iter().map(|(id,)| id).collect::<Vec<_>>();
                let friends = sqlx::query_as::<$db, (uuid::Uuid,)>(
                    "SELECT f.followee_id FROM follows f JOIN follows back \
                     ON back.follower_id = f.followee_id AND back.followee_id = f.follower_id \
                     WHERE f.follower_id = $1",
                )
                .bind(user)
                .fetch_all(self.reader())
                .await?;
                let peers = sqlx::query_as::<$db, (uuid::Uuid,)>(
                    "SELECT DISTINCT other.user_id FROM conversation_participants mine \
                     JOIN conversations c ON c.id = mine.conversation_id AND c.kind = 'direct' AND c.deleted_at IS NULL \
                     JOIN conversation_participants other ON other.conversation_id = mine.conversation_id \
                     AND other.user_id <> mine.user_id WHERE mine.user_id = $1",
                )
                .bind(user)
                .fetch_all(self.reader())
                .await?;
                let blocked = sqlx::query_as::<$db, (uuid::Uuid,)>(
                    "SELECT blocked_id FROM blocks WHERE blocker_id = $1 \
                     UNION SELECT blocker_id FROM blocks WHERE blocked_id = $1",
                )
                .bind(user)
                .fetch_all(self.reader())
                .await?;
                Ok(Contacts { friends: ids(friends), direct_peers: ids(peers), blocked_either: ids(blocked) })
            }
        }

    };
}
