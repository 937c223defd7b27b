//! The encryption key directory over REST (SPEC §4.5, seed 004 Phase 4): keys per device,
//! rotation, fingerprints, verification records both ways, seed 004's aliases, what is
//! refused (private keys above all), and encrypted messages stored and returned untouched.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::in_both_modes;
use crate::support::{
    TestApp,
    http::TestUser,
    keys::{p256_private_scalar, p256_public_key},
};

in_both_modes!(
    devices_register_rotate_and_delete_their_keys,
    verification_is_recorded_both_ways,
    seed_004s_aliases_are_the_same_directory,
    private_keys_and_bad_fields_are_refused_and_change_nothing,
    encrypted_messages_are_stored_and_returned_untouched,
);

async fn register(user: &TestUser, device: &str, public_key: &str) -> crate::support::http::Reply {
    user.client.post("/api/keys", json!({"deviceId": device, "publicKey": public_key, "algorithm": "p256"})).await
}

async fn keys_of(viewer: &TestUser, user: Uuid) -> Value {
    viewer.client.get(&format!("/api/users/{user}/keys")).await.assert_status(200).clone()
}

fn devices(keys: &Value) -> Vec<(String, String)> {
    keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (k["deviceId"].as_str().unwrap_or_default().into(), k["fingerprint"].as_str().unwrap_or_default().into())
        })
        .collect()
}

async fn devices_register_rotate_and_delete_their_keys(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let (phone_key, phone_fp) = p256_public_key();
    let created = register(&ann, "phone", &phone_key).await;
    let body = created.assert_status(201);
    assert_eq!(body["fingerprint"], phone_fp.as_str(), "SHA-256 of the raw public key, lower-case hex");
    assert!(body["replacedKeyId"].is_null());
    let phone_id = body["keyId"].as_str().expect("keyId").to_owned();
    // The same key from the same device again: nothing changes.
    let again = register(&ann, "phone", &phone_key).await;
    assert_eq!(again.assert_status(200)["keyId"], phone_id.as_str());
    let (laptop_key, laptop_fp) = p256_public_key();
    register(&ann, "laptop", &laptop_key).await.assert_status(201);
    let listed = keys_of(&bob, ann.id).await;
    assert_eq!(listed["userId"], json!(ann.id));
    assert_eq!(devices(&listed), [("phone".into(), phone_fp.clone()), ("laptop".into(), laptop_fp.clone())]);
    let first = &listed["keys"][0];
    assert_eq!((first["algorithm"].clone(), first["publicKey"].clone()), (json!("p256"), json!(phone_key)));
    assert_eq!(first["verifiedByMe"], false);
    assert!(first.get("verifiedBy").is_none(), "who verified a key is its owner's to see");
    // Rotation: the phone's new key replaces the old one.
    let (rotated_key, rotated_fp) = p256_public_key();
    let rotated = register(&ann, "phone", &rotated_key).await;
    assert_eq!(rotated.assert_status(201)["replacedKeyId"], phone_id.as_str());
    assert_eq!(devices(&keys_of(&bob, ann.id).await), [("laptop".into(), laptop_fp), ("phone".into(), rotated_fp)]);
    // Deleting: only your own key, once.
    let laptop_id = keys_of(&ann, ann.id).await["keys"][0]["keyId"].as_str().expect("keyId").to_owned();
    bob.client.delete(&format!("/api/keys/{laptop_id}")).await.assert_error(404, "NOT_FOUND");
    ann.client.delete(&format!("/api/keys/{laptop_id}")).await.assert_status(204);
    ann.client.delete(&format!("/api/keys/{laptop_id}")).await.assert_error(404, "NOT_FOUND");
    ann.client.delete(&format!("/api/keys/{phone_id}")).await.assert_error(404, "NOT_FOUND");
    assert_eq!(keys_of(&bob, ann.id).await["keys"].as_array().map(Vec::len), Some(1));
    // Nobody's keys: an empty list; no such user: 404.
    assert_eq!(keys_of(&ann, bob.id).await["keys"], json!([]));
    ann.client.get(&format!("/api/users/{}/keys", Uuid::now_v7())).await.assert_error(404, "NOT_FOUND");
    // Twenty devices at most.
    for i in 0..19 {
        register(&bob, &format!("device-{i}"), &p256_public_key().0).await.assert_status(201);
    }
    register(&bob, "device-19", &p256_public_key().0).await.assert_status(201);
    let refused = register(&bob, "device-20", &p256_public_key().0).await;
    refused.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(refused.body["error"]["details"]["field"], "deviceId");
    assert_eq!(keys_of(&ann, bob.id).await["keys"].as_array().map(Vec::len), Some(20));
}

async fn verification_is_recorded_both_ways(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let (ann_key, ann_fp) = p256_public_key();
    let (bob_key, bob_fp) = p256_public_key();
    register(&ann, "phone", &ann_key).await.assert_status(201);
    register(&bob, "phone", &bob_key).await.assert_status(201);
    // Bob verifies Ann's key, written as people read fingerprints out (upper case, grouped).
    let grouped: String =
        ann_fp.to_uppercase().as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join(" ");
    let verified = bob.client.post("/api/keys/verify", json!({"userId": ann.id, "fingerprint": grouped})).await;
    let body = verified.assert_status(200);
    assert_eq!((body["userId"].clone(), body["fingerprint"].clone()), (json!(ann.id), json!(ann_fp)));
    let at = body["verifiedAt"].clone();
    let again = bob.client.post("/api/keys/verify", json!({"userId": ann.id, "fingerprint": ann_fp})).await;
    assert_eq!(again.assert_status(200)["verifiedAt"], at, "idempotent");
    // And Ann verifies Bob's: both directions are recorded.
    ann.client.post("/api/keys/verify", json!({"userId": bob.id, "fingerprint": bob_fp})).await.assert_status(200);
    assert_eq!(keys_of(&bob, ann.id).await["keys"][0]["verifiedByMe"], true);
    assert_eq!(keys_of(&cat, ann.id).await["keys"][0]["verifiedByMe"], false, "per viewer");
    assert_eq!(keys_of(&ann, bob.id).await["keys"][0]["verifiedByMe"], true);
    let own = keys_of(&ann, ann.id).await;
    assert_eq!(own["keys"][0]["verifiedBy"], json!([bob.id]), "the owner sees who verified their key");
    // A rotated key is a new key: nobody has verified it yet.
    register(&ann, "phone", &p256_public_key().0).await.assert_status(201);
    assert_eq!(keys_of(&bob, ann.id).await["keys"][0]["verifiedByMe"], false);
    // Only an active key can be verified; fingerprints must be SHA-256 hex.
    let stale = bob.client.post("/api/keys/verify", json!({"userId": ann.id, "fingerprint": ann_fp})).await;
    stale.assert_error(404, "NOT_FOUND");
    let bad = bob.client.post("/api/keys/verify", json!({"userId": ann.id, "fingerprint": "abc"})).await;
    bad.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(bad.body["error"]["details"]["field"], "fingerprint");
    bob.client.post("/api/keys/verify", json!({"fingerprint": ann_fp})).await.assert_error(400, "VALIDATION_ERROR");
}

async fn seed_004s_aliases_are_the_same_directory(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let (key, fingerprint) = p256_public_key();
    let body = json!({"deviceId": "web", "publicKey": key, "algorithm": "p256"});
    let created = ann.client.post("/api/chat/encryption/keys", body).await;
    assert_eq!(created.assert_status(201)["fingerprint"], fingerprint.as_str());
    let listed = bob.client.get(&format!("/api/chat/encryption/keys/{}", ann.id)).await;
    assert_eq!(listed.assert_status(200)["keys"], keys_of(&bob, ann.id).await["keys"]);
    let verify = json!({"userId": ann.id, "fingerprint": fingerprint});
    bob.client.post("/api/chat/encryption/verify", verify).await.assert_status(200);
    assert_eq!(keys_of(&bob, ann.id).await["keys"][0]["verifiedByMe"], true);
    // Ed25519 and X25519 keys, raw, as WebCrypto exports them.
    let ed = STANDARD.encode(curve25519_base_points().0);
    let x = STANDARD.encode(curve25519_base_points().1);
    let ed_body = json!({"deviceId": "signing", "publicKey": ed, "algorithm": "ed25519"});
    ann.client.post("/api/keys", ed_body).await.assert_status(201);
    let x_body = json!({"deviceId": "agreement", "publicKey": x, "algorithm": "x25519"});
    ann.client.post("/api/keys", x_body).await.assert_status(201);
    let algorithms: Vec<Value> =
        keys_of(&bob, ann.id).await["keys"].as_array().expect("keys").iter().map(|k| k["algorithm"].clone()).collect();
    assert_eq!(algorithms, [json!("p256"), json!("ed25519"), json!("x25519")]);
}

/// The Ed25519 base point and X25519's u = 9: public keys no one can object to.
fn curve25519_base_points() -> ([u8; 32], [u8; 32]) {
    let mut ed = [0x66u8; 32];
    ed[0] = 0x58;
    let mut x = [0u8; 32];
    x[0] = 9;
    (ed, x)
}

async fn private_keys_and_bad_fields_are_refused_and_change_nothing(app: TestApp) {
    let ann = app.register("Ann").await;
    let cases = [
        (json!({"deviceId": "d", "publicKey": p256_private_scalar(), "algorithm": "p256"}), "publicKey", "private key"),
        (
            json!({"deviceId": "d", "publicKey": STANDARD.encode("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI...\n-----END EC PRIVATE KEY-----"), "algorithm": "p256"}),
            "publicKey",
            "private key",
        ),
        (json!({"deviceId": "d", "publicKey": STANDARD.encode([4u8; 65]), "algorithm": "p256"}), "publicKey", "P-256"),
        (
            json!({"deviceId": "d", "publicKey": STANDARD.encode([0u8; 32]), "algorithm": "x25519"}),
            "publicKey",
            "small order",
        ),
        (
            json!({"deviceId": "d", "publicKey": STANDARD.encode([1u8; 16]), "algorithm": "x25519"}),
            "publicKey",
            "32 to 1024",
        ),
        (json!({"deviceId": "d", "publicKey": "%%%", "algorithm": "x25519"}), "publicKey", "base64"),
        (json!({"deviceId": "d", "publicKey": p256_public_key().0, "algorithm": "rsa"}), "algorithm", "x25519"),
        (json!({"deviceId": "", "publicKey": p256_public_key().0, "algorithm": "p256"}), "deviceId", "128"),
        (json!({"publicKey": p256_public_key().0, "algorithm": "p256"}), "deviceId", "required"),
        (json!({"deviceId": "d", "algorithm": "p256"}), "publicKey", "required"),
    ];
    for (body, field, reason) in cases {
        let reply = ann.client.post("/api/keys", body.clone()).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.body["error"]["details"]["field"], field, "{body}");
        let said = reply.body["error"]["details"]["reason"].as_str().unwrap_or_default();
        assert!(said.contains(reason), "{body}: {said}");
    }
    assert_eq!(keys_of(&ann, ann.id).await["keys"], json!([]), "nothing was stored");
}

async fn encrypted_messages_are_stored_and_returned_untouched(app: TestApp) {
    let (ann, bob, cat) = (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await);
    let direct = ann.client.post("/api/conversations", json!({"type": "direct", "participantIds": [bob.id]})).await;
    let conversation = direct.assert_status(201)["id"].as_str().expect("id").to_owned();
    let path = format!("/api/conversations/{conversation}/messages");
    // The largest ciphertext there is (64 KiB of base64) goes through REST.
    let big = STANDARD.encode(vec![0xa5u8; 49_152]);
    assert_eq!(big.len(), 65_536);
    let sealed = json!({"clientMessageId": "e-1", "isEncrypted": true, "encryptedContent": big});
    let sent = ann.client.post(&path, sealed).await;
    let message = sent.assert_status(201).clone();
    assert_eq!((message["isEncrypted"].clone(), message["content"].clone()), (json!(true), json!("")));
    assert_eq!(message["encryptedContent"], big.as_str());
    // A plain message beside it: a mixed conversation.
    let plain = bob.client.post(&path, json!({"clientMessageId": "p-1", "content": "plain text"})).await;
    assert_eq!(plain.assert_status(201)["isEncrypted"], false);
    assert!(plain.body.get("encryptedContent").is_none());
    let history = bob.client.get(&path).await;
    let messages = history.assert_status(200)["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["encryptedContent"], big.as_str(), "untouched in history");
    // Refused: plaintext beside the ciphertext, no ciphertext, not base64, too long, the
    // wrong kind of edit; and forwarding (the ciphertext is for this conversation's keys).
    let refusals = [
        (
            json!({"clientMessageId": "e-2", "isEncrypted": true, "encryptedContent": "AAAA", "content": "leak"}),
            "content",
        ),
        (json!({"clientMessageId": "e-3", "isEncrypted": true}), "encryptedContent"),
        (json!({"clientMessageId": "e-4", "isEncrypted": true, "encryptedContent": "not base64!"}), "encryptedContent"),
        (
            json!({"clientMessageId": "e-5", "isEncrypted": true, "encryptedContent": format!("{big}AAAA")}),
            "encryptedContent",
        ),
        (json!({"clientMessageId": "e-6", "encryptedContent": "AAAA", "content": "x"}), "encryptedContent"),
        (json!({"clientMessageId": "e-7", "isEncrypted": "yes", "encryptedContent": "AAAA"}), "isEncrypted"),
    ];
    for (body, field) in refusals {
        let reply = ann.client.post(&path, body.clone()).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.body["error"]["details"]["field"], field, "{body}");
    }
    let id = message["id"].as_str().expect("id");
    let edit_path = format!("{path}/{id}");
    let edited = ann.client.patch(&edit_path, json!({"encryptedContent": "3q2+7w=="})).await;
    assert_eq!(edited.assert_status(200)["encryptedContent"], "3q2+7w==");
    ann.client.patch(&edit_path, json!({"content": "plain now"})).await.assert_error(400, "VALIDATION_ERROR");
    let plain_id = plain.body["id"].as_str().expect("id");
    let plain_edit = bob.client.patch(&format!("{path}/{plain_id}"), json!({"encryptedContent": "AAAA"})).await;
    plain_edit.assert_error(400, "VALIDATION_ERROR");
    let group =
        ann.client.post("/api/conversations", json!({"type": "group", "title": "G", "participantIds": [cat.id]})).await;
    let group_id = group.assert_status(201)["id"].clone();
    let forward = ann.client.post(&format!("/api/messages/{id}/forward"), json!({"conversationIds": [group_id]})).await;
    forward.assert_error(400, "VALIDATION_ERROR");
    let after = bob.client.get(&path).await.body["messages"].as_array().map(Vec::len);
    assert_eq!(after, Some(2), "nothing refused was stored");
    // Deleted: a tombstone without the ciphertext.
    let deleted = ann.client.delete(&edit_path).await;
    let tombstone = deleted.assert_status(200);
    assert_eq!((tombstone["isEncrypted"].clone(), tombstone.get("encryptedContent")), (json!(true), None));
}
