//! The encryption key directory (SPEC §4.5, seed 004 Phase 4). Each device of a user
//! publishes one public key; registering again from the same device rotates it. Others fetch
//! a user's active keys to encrypt to them, and record that they verified a key's
//! fingerprint out of band (both ways: each side verifies the other's keys, and an owner
//! sees who verified theirs). Whenever a user's keys change, their contacts and their own
//! other devices get `keys:changed {userId}`.
//!
//! The server holds public keys only ([`PublicKey`] refuses anything else) and never sees
//! plaintext of encrypted messages: those carry `encryptedContent`, stored and delivered
//! untouched (see [`super::message_input`]).

use std::{collections::HashMap, sync::Arc};

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Deps, public_key::PublicKey, time::Timestamp};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    fanout::Fanout,
    storage::{
        Storage,
        keys::{DeviceKeyRecord, KeyAlgorithm, KeyRegistration, NewDeviceKey, VerificationRecord},
    },
};

/// Devices (active keys) one user may have.
pub const MAX_DEVICES: usize = 20;
pub const DEVICE_ID_MAX_CHARS: usize = 128;

/// A device's public key as others see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceKey {
    pub key_id: Uuid,
    pub user_id: Uuid,
    pub device_id: String,
    pub algorithm: KeyAlgorithm,
    /// Base64 of the public key bytes, as the device registered them.
    pub public_key: String,
    /// Lower-case hex SHA-256 of the raw public key.
    pub fingerprint: String,
    pub created_at: Timestamp,
    /// The caller recorded that they verified this key.
    pub verified_by_me: bool,
    /// Who verified this key: only on the caller's own keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<Vec<Uuid>>,
}

/// `GET /api/users/:id/keys`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserKeys {
    pub user_id: Uuid,
    pub keys: Vec<DeviceKey>,
}

/// What registering a key did.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredKey {
    pub key_id: Uuid,
    pub fingerprint: String,
    pub device_id: String,
    pub algorithm: KeyAlgorithm,
    pub created_at: Timestamp,
    /// The key this one replaced on the device (a rotation).
    pub replaced_key_id: Option<Uuid>,
    /// `false` when the device had this very key already (nothing changed).
    #[serde(skip)]
    pub created: bool,
}

/// A verification record.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub user_id: Uuid,
    pub fingerprint: String,
    pub verified_at: Timestamp,
}

/// A key to register, as parsed from a request.
pub struct KeyUpload {
    pub device_id: String,
    pub key: PublicKey,
}

impl KeyUpload {
    pub fn parse(device_id: &str, algorithm: KeyAlgorithm, public_key: &str) -> AppResult<Self> {
        let device_id = device_id.trim();
        if device_id.is_empty()
            || device_id.chars().count() > DEVICE_ID_MAX_CHARS
            || device_id.chars().any(char::is_control)
        {
            return Err(AppError::invalid_field("deviceId", "must be 1 to 128 printable characters"));
        }
        Ok(Self { device_id: device_id.to_owned(), key: PublicKey::parse(algorithm, public_key)? })
    }
}

pub struct KeyService {
    storage: Arc<dyn Storage>,
    fanout: Fanout,
    clock: SharedClock,
}

impl KeyService {
    pub fn new(deps: &Deps) -> Self {
        Self { storage: deps.storage.clone(), fanout: deps.fanout.clone(), clock: deps.clock.clone() }
    }

    /// Registers (or rotates) the key of one of `user`'s devices.
    pub async fn register(&self, user: Uuid, upload: KeyUpload) -> AppResult<RegisteredKey> {
        let new = NewDeviceKey {
            id: Uuid::now_v7(),
            user_id: user,
            device_id: upload.device_id,
            algorithm: upload.key.algorithm,
            public_key: upload.key.encoded,
            fingerprint: upload.key.fingerprint,
            created_at: self.clock.now(),
        };
        let (key, replaced, created) = match self.storage.register_key(&new, MAX_DEVICES).await? {
            KeyRegistration::Stored { key, replaced } => (key, replaced.map(|old| old.id), true),
            KeyRegistration::Unchanged(key) => (key, None, false),
            KeyRegistration::TooManyDevices => {
                return Err(AppError::invalid_field("deviceId", "at most 20 devices may have keys: delete one first"));
            }
        };
        if created {
            self.announce(user).await?;
        }
        Ok(RegisteredKey {
            key_id: key.id,
            fingerprint: key.fingerprint,
            device_id: key.device_id,
            algorithm: key.algorithm,
            created_at: key.created_at.into(),
            replaced_key_id: replaced,
            created,
        })
    }

    /// `user`'s active keys as `viewer` sees them.
    pub async fn keys_of(&self, viewer: Uuid, user: Uuid) -> AppResult<UserKeys> {
        if self.storage.user_by_id(user).await?.is_none() {
            return Err(AppError::NotFound("user"));
        }
        let records = self.storage.active_keys(user).await?;
        let fingerprints: Vec<String> = records.iter().map(|k| k.fingerprint.clone()).collect();
        let mut verifiers: HashMap<String, Vec<Uuid>> = HashMap::new();
        for record in self.storage.verifications_of(user, &fingerprints).await? {
            verifiers.entry(record.fingerprint).or_default().push(record.verifier_id);
        }
        let keys = records.into_iter().map(|record| view(record, viewer, &verifiers)).collect();
        Ok(UserKeys { user_id: user, keys })
    }

    /// Deletes one of the caller's own keys.
    pub async fn delete(&self, user: Uuid, key: Uuid) -> AppResult<()> {
        if !self.storage.revoke_key(user, key, self.clock.now()).await? {
            return Err(AppError::NotFound("key"));
        }
        self.announce(user).await
    }

    /// Records that `verifier` verified the active key of `user` with `fingerprint`.
    pub async fn verify(&self, verifier: Uuid, user: Uuid, fingerprint: String) -> AppResult<Verification> {
        let keys = self.storage.active_keys(user).await?;
        if !keys.iter().any(|k| k.fingerprint == fingerprint) {
            return Err(AppError::NotFound("key"));
        }
        let record =
            VerificationRecord { verifier_id: verifier, user_id: user, fingerprint, verified_at: self.clock.now() };
        let stored = self.storage.record_verification(&record).await?;
        Ok(Verification {
            user_id: stored.user_id,
            fingerprint: stored.fingerprint,
            verified_at: stored.verified_at.into(),
        })
    }

    /// `keys:changed` to `user`'s contacts and to `user`'s own devices.
    async fn announce(&self, user: Uuid) -> AppResult<()> {
        let mut audience = self.storage.key_contacts(user).await?;
        audience.push(user);
        self.fanout.keys_changed(user, &audience).await;
        Ok(())
    }
}

fn view(record: DeviceKeyRecord, viewer: Uuid, verifiers: &HashMap<String, Vec<Uuid>>) -> DeviceKey {
    let by = verifiers.get(&record.fingerprint).map(Vec::as_slice).unwrap_or_default();
    DeviceKey {
        key_id: record.id,
        user_id: record.user_id,
        verified_by_me: by.contains(&viewer),
        verified_by: (record.user_id == viewer).then(|| by.to_vec()),
        device_id: record.device_id,
        algorithm: record.algorithm,
        public_key: record.public_key,
        fingerprint: record.fingerprint,
        created_at: record.created_at.into(),
    }
}
