//! The key directory and encrypted messages on the wire (SPEC §4.5): `keys:changed` reaches
//! a user's contacts and own devices on both gateways and every replica, and nobody else;
//! encrypted messages cross between a Socket.IO client and a raw WebSocket client with the
//! ciphertext untouched.

use serde_json::json;

use crate::support::{TestApp, http::TestUser, keys::p256_public_key, raw::RawClient};
use crate::{WAIT, direct, in_all_modes};

in_all_modes!(key_changes_reach_contacts_and_own_devices_only, encrypted_messages_cross_both_gateways_untouched,);

async fn register(user: &TestUser, device: &str, public_key: &str) -> u16 {
    let body = json!({"deviceId": device, "publicKey": public_key, "algorithm": "p256"});
    user.client.post("/api/keys", body).await.status.as_u16()
}

async fn key_changes_reach_contacts_and_own_devices_only(app: TestApp) {
    let (ann, bob, cat, dan) =
        (app.register("Ann").await, app.register("Bob").await, app.register("Cat").await, app.register("Dan").await);
    direct(&ann, &bob).await;
    crate::presence::befriend(&ann, &dan).await;
    let (here, there) = crate::replicas(&app);
    // Bob (a direct peer) and Ann's other device on the other replica; Dan (a friend, raw)
    // and Cat (a stranger) on the replica the REST calls go to.
    let bob_socket = crate::connect_at(&there, &bob.token).await;
    let ann_device = crate::connect_at(&there, &ann.token).await;
    let cat_socket = crate::connect_at(&here, &cat.token).await;
    let mut dan_raw = RawClient::connect_as(&here, &dan.token).await;

    let (key, _) = p256_public_key();
    assert_eq!(register(&ann, "phone", &key).await, 201);
    assert_eq!(bob_socket.expect_event("keys:changed", WAIT).await, json!({"userId": ann.id}));
    assert_eq!(ann_device.expect_event("keys:changed", WAIT).await["userId"], json!(ann.id));
    assert_eq!(dan_raw.expect("keys.changed").await, json!({"userId": ann.id}));
    cat_socket.assert_no_event("keys:changed", "a stranger heard of Ann's keys").await;

    // The same key again changes nothing, and nobody hears of it.
    assert_eq!(register(&ann, "phone", &key).await, 200);
    dan_raw.assert_none("keys.changed", "an unchanged key was announced").await;

    // A rotation and a deletion are changes.
    assert_eq!(register(&ann, "phone", &p256_public_key().0).await, 201);
    assert_eq!(dan_raw.expect("keys.changed").await["userId"], json!(ann.id));
    assert_eq!(bob_socket.expect_event("keys:changed", WAIT).await["userId"], json!(ann.id));
    let keys = ann.client.get(&format!("/api/users/{}/keys", ann.id)).await;
    let key_id = keys.body["keys"][0]["keyId"].as_str().expect("keyId").to_owned();
    ann.client.delete(&format!("/api/keys/{key_id}")).await.assert_status(204);
    assert_eq!(dan_raw.expect("keys.changed").await["userId"], json!(ann.id));
    assert_eq!(ann_device.expect_event("keys:changed", WAIT).await["userId"], json!(ann.id));
    cat_socket.assert_no_event("keys:changed", "a stranger heard of Ann's keys").await;
}

async fn encrypted_messages_cross_both_gateways_untouched(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let conversation = direct(&ann, &bob).await;
    let (here, there) = crate::replicas(&app);
    let bob_socket = crate::connect_at(&there, &bob.token).await;
    let mut ann_raw = RawClient::connect_as(&here, &ann.token).await;

    // Socket.IO → raw.
    let sealed = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let payload = json!({"conversationId": conversation, "clientMessageId": "e-1", "isEncrypted": true,
        "encryptedContent": sealed});
    let ack = bob_socket.emit_with_ack("message:send", payload, WAIT).await.expect("ack");
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["data"]["message"]["isEncrypted"], true, "{ack}");
    let new = ann_raw.expect("message.new").await;
    let message = &new["message"];
    assert_eq!((message["isEncrypted"].clone(), message["encryptedContent"].clone()), (json!(true), json!(sealed)));
    assert_eq!(message["content"], "", "no plaintext beside the ciphertext");

    // Raw → Socket.IO, the seed's envelope with the encryption fields.
    let sealed_back = "_-8A_-8A_-8";
    let send = json!({"conversationId": conversation, "type": "text", "tempId": "t-1", "isEncrypted": true,
        "encryptedContent": sealed_back});
    ann_raw.send("message.send", send).await;
    assert_eq!(ann_raw.expect("message.sent").await["message"]["encryptedContent"], sealed_back);
    let received = bob_socket.expect_event("message:received", WAIT).await;
    assert_eq!(received["message"]["encryptedContent"], sealed_back, "URL-safe base64 kept as sent");

    // Plaintext beside a ciphertext is refused on both gateways, naming the field.
    let leak = json!({"conversationId": conversation, "clientMessageId": "e-2", "isEncrypted": true,
        "encryptedContent": sealed, "content": "the secret"});
    let refused = bob_socket.emit_with_ack("message:send", leak, WAIT).await.expect("ack");
    assert_eq!(refused["error"]["code"], "VALIDATION_ERROR", "{refused}");
    assert_eq!(refused["error"]["details"]["field"], "content", "{refused}");
    let leak_raw = json!({"conversationId": conversation, "tempId": "t-2", "isEncrypted": true,
        "encryptedContent": sealed, "content": "the secret"});
    ann_raw.send("message.send", leak_raw).await;
    assert_eq!(ann_raw.expect("message.error").await["tempId"], "t-2");
    let history = bob.client.get(&format!("/api/conversations/{conversation}/messages")).await;
    assert_eq!(history.body["messages"].as_array().map(Vec::len), Some(2), "nothing refused was stored");
}
