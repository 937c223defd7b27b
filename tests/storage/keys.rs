//! Contract: the encryption key directory — one active key per device, rotation, the device
//! limit under concurrent registrations, verification records, who hears of key changes,
//! and encrypted messages stored untouched.

use std::sync::Arc;

use parley::storage::{
    Storage,
    keys::{KeyAlgorithm, KeyRegistration, NewDeviceKey, VerificationRecord},
    models::{ConversationKind, NewMessage},
};
use uuid::Uuid;

use crate::conversations::{at, conversation, message, send, users};

fn key(user: Uuid, device: &str, fingerprint: &str, secs: i64) -> NewDeviceKey {
    NewDeviceKey {
        id: Uuid::now_v7(),
        user_id: user,
        device_id: device.to_owned(),
        algorithm: KeyAlgorithm::X25519,
        public_key: format!("base64-of-{fingerprint}"),
        fingerprint: fingerprint.to_owned(),
        created_at: at(secs),
    }
}

fn stored(outcome: KeyRegistration) -> (Uuid, Option<Uuid>) {
    match outcome {
        KeyRegistration::Stored { key, replaced } => (key.id, replaced.map(|r| r.id)),
        other => panic!("expected a stored key, got {other:?}"),
    }
}

pub async fn a_device_has_one_active_key_and_rotation_replaces_it(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let (phone, none) = stored(store.register_key(&key(u[0], "phone", "f1", 1), 20).await.unwrap());
    assert_eq!(none, None);
    let (laptop, _) = stored(store.register_key(&key(u[0], "laptop", "f2", 2), 20).await.unwrap());
    match store.register_key(&key(u[0], "phone", "f1", 3), 20).await.unwrap() {
        KeyRegistration::Unchanged(same) => assert_eq!(same.id, phone, "the same key again changes nothing"),
        other => panic!("{other:?}"),
    }
    let (rotated, replaced) = stored(store.register_key(&key(u[0], "phone", "f3", 4), 20).await.unwrap());
    assert_eq!(replaced, Some(phone));
    let active = store.active_keys(u[0]).await.unwrap();
    let listed: Vec<(Uuid, &str, &str)> =
        active.iter().map(|k| (k.id, k.device_id.as_str(), k.fingerprint.as_str())).collect();
    assert_eq!(listed, [(laptop, "laptop", "f2"), (rotated, "phone", "f3")], "oldest first, the rotated one gone");
    assert!(store.active_key(phone).await.unwrap().is_none(), "a rotated key is no longer active");
    assert_eq!(store.active_key(rotated).await.unwrap().map(|k| k.algorithm), Some(KeyAlgorithm::X25519));
    assert!(store.active_keys(u[1]).await.unwrap().is_empty());
    assert!(!store.revoke_key(u[1], laptop, at(5)).await.unwrap(), "only the owner revokes");
    assert!(store.revoke_key(u[0], laptop, at(5)).await.unwrap());
    assert!(!store.revoke_key(u[0], laptop, at(6)).await.unwrap(), "already revoked");
    assert_eq!(store.active_keys(u[0]).await.unwrap().len(), 1);
    // The device id is free again after a delete.
    stored(store.register_key(&key(u[0], "laptop", "f4", 7), 20).await.unwrap());
}

pub async fn concurrent_registrations_keep_the_device_limit(store: Arc<dyn Storage>) {
    let u = users(&store, 1).await;
    stored(store.register_key(&key(u[0], "first", "f0", 0), 3).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        let user = u[0];
        tasks.push(tokio::spawn(async move {
            store.register_key(&key(user, &format!("d{i}"), &format!("f{}", i + 1), i + 1), 3).await.unwrap()
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            KeyRegistration::Stored { .. } => accepted += 1,
            KeyRegistration::TooManyDevices => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, 2, "room for exactly two more devices");
    assert_eq!(store.active_keys(u[0]).await.unwrap().len(), 3);
    // Rotating a device that has a key is not a new device.
    stored(store.register_key(&key(u[0], "first", "f9", 9), 3).await.unwrap());
}

pub async fn verifications_are_recorded_once_per_fingerprint(store: Arc<dyn Storage>) {
    let u = users(&store, 3).await;
    let record = |verifier: Uuid, fingerprint: &str, secs| VerificationRecord {
        verifier_id: verifier,
        user_id: u[0],
        fingerprint: fingerprint.to_owned(),
        verified_at: at(secs),
    };
    let first = store.record_verification(&record(u[1], "f1", 1)).await.unwrap();
    let again = store.record_verification(&record(u[1], "f1", 9)).await.unwrap();
    assert_eq!((first.verified_at, again.verified_at), (at(1), at(1)), "the first record stays");
    store.record_verification(&record(u[2], "f1", 2)).await.unwrap();
    store.record_verification(&record(u[2], "f2", 3)).await.unwrap();
    let of =
        |list: Vec<VerificationRecord>| list.into_iter().map(|v| (v.verifier_id, v.fingerprint)).collect::<Vec<_>>();
    let f1 = store.verifications_of(u[0], &["f1".to_owned()]).await.unwrap();
    assert_eq!(of(f1), [(u[1], "f1".to_owned()), (u[2], "f1".to_owned())]);
    assert_eq!(store.verifications_of(u[0], &["f1".into(), "f2".into()]).await.unwrap().len(), 3);
    assert!(store.verifications_of(u[1], &["f1".into()]).await.unwrap().is_empty(), "per key owner");
    assert!(store.verifications_of(u[0], &[]).await.unwrap().is_empty());
}

pub async fn key_contacts_are_friends_and_conversation_partners(store: Arc<dyn Storage>) {
    let u = users(&store, 6).await;
    // u1: a friend (mutual follow); u2: followed one way only; u3: direct peer; u4: in a
    // group with u0; u5: in a deleted group only.
    store.follow(u[0], u[1], at(1)).await.unwrap();
    store.follow(u[1], u[0], at(1)).await.unwrap();
    store.follow(u[0], u[2], at(1)).await.unwrap();
    store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 2), u[3]).await.unwrap();
    store.create_group(&conversation(ConversationKind::Group, u[4], 3), &[u[0]]).await.unwrap();
    let gone = store.create_group(&conversation(ConversationKind::Group, u[5], 4), &[u[0]]).await.unwrap();
    store.soft_delete_conversation(gone.id, at(5)).await.unwrap();
    let mut contacts = store.key_contacts(u[0]).await.unwrap();
    contacts.sort();
    let mut expected = vec![u[1], u[3], u[4]];
    expected.sort();
    assert_eq!(contacts, expected);
}

pub async fn encrypted_messages_are_stored_untouched(store: Arc<dyn Storage>) {
    let u = users(&store, 2).await;
    let (c, _) = store.find_or_create_direct(&conversation(ConversationKind::Direct, u[0], 0), u[1]).await.unwrap();
    let sealed = NewMessage {
        content: String::new(),
        encrypted_content: Some("q83vEjRWeJA=".into()),
        ..message(c.id, u[0], "sealed", 1)
    };
    let plain = message(c.id, u[1], "plain", 2);
    send(&store, &sealed).await;
    send(&store, &plain).await;
    let read = store.message(sealed.id).await.unwrap().unwrap();
    assert_eq!((read.is_encrypted, read.encrypted_content.as_deref()), (true, Some("q83vEjRWeJA=")));
    assert_eq!(read.content.as_deref(), Some(""));
    let other = store.message(plain.id).await.unwrap().unwrap();
    assert_eq!((other.is_encrypted, other.encrypted_content), (false, None), "mixed in one conversation");
    let edited = store.edit_message(sealed.id, "", Some("3q2+7w=="), at(3)).await.unwrap().unwrap();
    assert_eq!((edited.is_encrypted, edited.encrypted_content.as_deref()), (true, Some("3q2+7w==")));
    let gone = store.delete_message(sealed.id, at(4)).await.unwrap().unwrap();
    assert_eq!((gone.is_encrypted, gone.encrypted_content), (true, None), "a tombstone keeps no ciphertext");
}
