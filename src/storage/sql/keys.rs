//! The encryption key directory: device keys, rotation, verification records.

/// Columns of [`DeviceKeyRecord`](crate::storage::keys::DeviceKeyRecord).
macro_rules! device_key_columns {
    () => {
        "id, user_id, device_id, algorithm, public_key, fingerprint, created_at, revoked_at"
    };
}

macro_rules! sql_keys {
    ($store:ty, $db:ty) => {
        use $crate::storage::keys::{DeviceKeyRecord, KeyRegistration, KeyRepo, NewDeviceKey, VerificationRecord};

        #[async_trait::async_trait]
        impl KeyRepo for $store {
            async fn register_key(&self, key: &NewDeviceKey, max_devices: usize) -> StorageResult<KeyRegistration> {
                let mut tx = self.writer().begin().await?;
                // Takes the user's row lock first, so registrations of one user take turns
                // (the device limit and the one-active-key-per-device rule hold under races).
                sqlx::query::<$db>("UPDATE users SET updated_at = updated_at WHERE id = $1")
                    .bind(key.user_id)
                    .execute(&mut *tx)
                    .await?;
                let active: Vec<DeviceKeyRecord> = sqlx::query_as::<$db, DeviceKeyRecord>(concat!(
                    "SELECT ",
                    device_key_columns!(),
                    " FROM device_keys WHERE user_id = $1 AND revoked_at IS NULL"
                ))
                .bind(key.user_id)
                .fetch_all(&mut *tx)
                .await?;
                let previous = active.iter().find(|k| k.device_id == key.device_id).cloned();
                match &previous {
                    Some(same) if same.fingerprint == key.fingerprint && same.algorithm == key.algorithm => {
                        return Ok(KeyRegistration::Unchanged(same.clone()));
                    }
                    None if active.len() >= max_devices => return Ok(KeyRegistration::TooManyDevices),
                    _ => {}
                }
                if let Some(old) = &previous {
                    sqlx::query::<$db>("UPDATE device_keys SET revoked_at = $2 WHERE id = $1")
                        .bind(old.id)
                        .bind(key.created_at)
                        .execute(&mut *tx)
                        .await?;
                }
                let stored = sqlx::query_as::<$db, DeviceKeyRecord>(concat!(
                    "INSERT INTO device_keys (id, user_id, device_id, algorithm, public_key, fingerprint, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
                    device_key_columns!()
                ))
                .bind(key.id)
                .bind(key.user_id)
                .bind(&key.device_id)
                .bind(key.algorithm.as_str())
                .bind(&key.public_key)
                .bind(&key.fingerprint)
                .bind(key.created_at)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                let replaced = previous.map(|old| DeviceKeyRecord { revoked_at: Some(key.created_at), ..old });
                Ok(KeyRegistration::Stored { key: stored, replaced })
            }

            async fn active_keys(&self, user: uuid::Uuid) -> StorageResult<Vec<DeviceKeyRecord>> {
                Ok(sqlx::query_as::<$db, DeviceKeyRecord>(concat!(
                    "SELECT ",
                    device_key_columns!(),
                    " FROM device_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id"
                ))
                .bind(user)
                .fetch_all(self.reader())
                .await?)
            }

            async fn active_key(&self, id: uuid::Uuid) -> StorageResult<Option<DeviceKeyRecord>> {
                Ok(sqlx::query_as::<$db, DeviceKeyRecord>(concat!(
                    "SELECT ",
                    device_key_columns!(),
                    " FROM device_keys WHERE id = $1 AND revoked_at IS NULL"
                ))
                .bind(id)
                .fetch_optional(self.reader())
                .await?)
            }

            async fn revoke_key(
                &self,
                user: uuid::Uuid,
                id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<bool> {
                let done = sqlx::query::<$db>(
                    "UPDATE device_keys SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(user)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn record_verification(
                &self,
                verification: &VerificationRecord,
            ) -> StorageResult<VerificationRecord> {
                sqlx::query::<$db>(
                    "INSERT INTO key_verifications (verifier_id, user_id, fingerprint, verified_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (verifier_id, user_id, fingerprint) DO NOTHING",
                )
                .bind(verification.verifier_id)
                .bind(verification.user_id)
                .bind(&verification.fingerprint)
                .bind(verification.verified_at)
                .execute(self.writer())
                .await?;
                Ok(sqlx::query_as::<$db, VerificationRecord>(
                    "SELECT verifier_id, user_id, fingerprint, verified_at FROM key_verifications \
                     WHERE verifier_id = $1 AND user_id = $2 AND fingerprint = $3",
                )
                .bind(verification.verifier_id)
                .bind(verification.user_id)
                .bind(&verification.fingerprint)
                .fetch_one(self.writer())
                .await?)
            }

            async fn verifications_of(
                &self,
                user: uuid::Uuid,
                fingerprints: &[String],
            ) -> StorageResult<Vec<VerificationRecord>> {
                if fingerprints.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT verifier_id, user_id, fingerprint, verified_at FROM key_verifications WHERE user_id = ",
                );
                query.push_bind(user).push(" AND fingerprint IN (");
                let mut list = query.separated(", ");
                for fingerprint in fingerprints {
                    list.push_bind(fingerprint.clone());
                }
                query.push(") ORDER BY verified_at, verifier_id");
                Ok(query.build_query_as().fetch_all(self.reader()).await?)
            }

            async fn key_contacts(&self, user: uuid::Uuid) -> StorageResult<Vec<uuid::Uuid>> {
                let rows = sqlx::query_as::<$db, (uuid::Uuid,)>(
                    "SELECT f.followee_id FROM follows f JOIN follows back \
                     ON back.follower_id = f.followee_id AND back.followee_id = f.follower_id \
                     WHERE f.follower_id = $1 \
                     UNION SELECT other.user_id FROM conversation_participants mine \
                     JOIN conversations c ON c.id = mine.conversation_id AND c.deleted_at IS NULL \
                     JOIN conversation_participants other ON other.conversation_id = mine.conversation_id \
                     AND other.user_id <> mine.user_id WHERE mine.user_id = $1",
                )
                .bind(user)
                .fetch_all(self.reader())
                .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }
        }
    };
}
