//! The encryption key directory's rows (SPEC §4.5): public keys per device and who verified
//! which. The server only ever stores public keys; see `domain::keys` for what is checked.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StorageResult;
pub use super::models::KeyAlgorithm;

/// A device's public key.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeviceKeyRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: String,
    #[sqlx(try_from = "String")]
    pub algorithm: KeyAlgorithm,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to register for a device (already validated).
#[derive(Clone, Debug)]
pub struct NewDeviceKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: String,
    pub algorithm: KeyAlgorithm,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
}

/// What registering a key did.
#[derive(Clone, Debug)]
pub enum KeyRegistration {
    /// Stored; `replaced` is the device's previous key, now revoked (a rotation).
    Stored { key: DeviceKeyRecord, replaced: Option<DeviceKeyRecord> },
    /// The device already had this very key: nothing changed.
    Unchanged(DeviceKeyRecord),
    /// The user has `limit` devices with keys already and this is a new one.
    TooManyDevices,
}

/// A verification record: `verifier` vouched for `fingerprint` of `user`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct VerificationRecord {
    pub verifier_id: Uuid,
    pub user_id: Uuid,
    pub fingerprint: String,
    pub verified_at: DateTime<Utc>,
}

#[async_trait]
pub trait KeyRepo: Send + Sync {
    /// Registers `key` as its device's active key, in one transaction: the same key again
    /// changes nothing; a different one revokes the device's previous key (rotation); a new
    /// device is refused when the user already has `max_devices` active keys.
    async fn register_key(&self, key: &NewDeviceKey, max_devices: usize) -> StorageResult<KeyRegistration>;
    /// `user`'s active keys, oldest first.
    async fn active_keys(&self, user: Uuid) -> StorageResult<Vec<DeviceKeyRecord>>;
    /// The active key `id`, whoever owns it.
    async fn active_key(&self, id: Uuid) -> StorageResult<Option<DeviceKeyRecord>>;
    /// Revokes the active key `id` of `user`; `false` when there is none.
    async fn revoke_key(&self, user: Uuid, id: Uuid, now: DateTime<Utc>) -> StorageResult<bool>;
    /// Records that `verifier` verified `fingerprint` of `user`; the first record stays.
    async fn record_verification(&self, verification: &VerificationRecord) -> StorageResult<VerificationRecord>;
    /// The verifications of `user`'s keys with one of `fingerprints`, by anyone.
    async fn verifications_of(&self, user: Uuid, fingerprints: &[String]) -> StorageResult<Vec<VerificationRecord>>;
    /// Everyone who should hear that `user`'s keys changed: friends (mutual follows) and
    /// everyone sharing a live conversation with them; not `user`.
    async fn key_contacts(&self, user: Uuid) -> StorageResult<Vec<Uuid>>;
}
