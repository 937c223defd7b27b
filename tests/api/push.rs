//! Web Push subscriptions over REST (SPEC §4.4): the VAPID key, subscribing, refreshing,
//! listing and unsubscribing, what is refused, and the guard against server-side request
//! forgery (production's rule, switched on here with `PUSH_ALLOW_INSECURE=false`).

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde_json::{Value, json};

use crate::in_both_modes;
use crate::support::{Mode, TestApp, keys::p256_public_key};

in_both_modes!(browsers_subscribe_refresh_and_unsubscribe, bad_subscriptions_are_refused_and_change_nothing);

fn p256dh() -> String {
    URL_SAFE_NO_PAD.encode(STANDARD.decode(p256_public_key().0).expect("base64"))
}

fn subscription(endpoint: &str) -> Value {
    json!({"endpoint": endpoint, "keys": {"p256dh": p256dh(), "auth": URL_SAFE_NO_PAD.encode([7u8; 16])}})
}

async fn browsers_subscribe_refresh_and_unsubscribe(app: TestApp) {
    let (ann, bob) = (app.register("Ann").await, app.register("Bob").await);
    let key = app.client().get("/api/push/vapid-public-key").await;
    let public =
        URL_SAFE_NO_PAD.decode(key.assert_status(200)["publicKey"].as_str().expect("a key")).expect("base64url");
    assert!(public.len() == 65 && p256::PublicKey::from_sec1_bytes(&public).is_ok(), "an uncompressed P-256 point");
    let endpoint = "http://127.0.0.1:9/push/ann-laptop";
    let mut first = subscription(endpoint);
    first["userAgent"] = json!("Firefox 140");
    let created = ann.client.post("/api/push/subscriptions", first).await;
    assert_eq!(created.assert_status(201)["endpoint"], endpoint);
    assert_eq!(created.body["userAgent"], "Firefox 140");
    // The same endpoint again (new keys after a browser reset): refreshed, not doubled.
    ann.client.post("/api/push/subscriptions", subscription(endpoint)).await.assert_status(200);
    let list = ann.client.get("/api/push/subscriptions").await;
    assert_eq!(list.assert_status(200)["subscriptions"].as_array().map(Vec::len), Some(1));
    // The browser is now signed in as Bob: the endpoint moves to him.
    bob.client.post("/api/push/subscriptions", subscription(endpoint)).await.assert_status(200);
    assert_eq!(ann.client.get("/api/push/subscriptions").await.body["subscriptions"], json!([]));
    // Unsubscribing: only your own, once.
    let delete = |client: &crate::support::http::Client, endpoint: &str| {
        let request = client.request(reqwest::Method::DELETE, "/api/push/subscriptions");
        (client.clone(), request.json(&json!({"endpoint": endpoint})))
    };
    let (client, request) = delete(&ann.client, endpoint);
    client.send(request).await.assert_error(404, "NOT_FOUND");
    let (client, request) = delete(&bob.client, endpoint);
    client.send(request).await.assert_status(204);
    let (client, request) = delete(&bob.client, endpoint);
    client.send(request).await.assert_error(404, "NOT_FOUND");
    // Twenty browsers at most.
    for i in 0..20 {
        let reply =
            ann.client.post("/api/push/subscriptions", subscription(&format!("http://127.0.0.1:9/push/{i}"))).await;
        reply.assert_status(201);
    }
    let refused = ann.client.post("/api/push/subscriptions", subscription("http://127.0.0.1:9/push/21")).await;
    refused.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(refused.body["error"]["details"]["field"], "endpoint");
}

async fn bad_subscriptions_are_refused_and_change_nothing(app: TestApp) {
    let ann = app.register("Ann").await;
    let ok = subscription("http://127.0.0.1:9/push/x");
    let mut cases = vec![
        (json!({"keys": ok["keys"]}), "endpoint"),
        (json!({"endpoint": "http://127.0.0.1:9/push/x"}), "keys"),
        (json!({"endpoint": "ftp://127.0.0.1/x", "keys": ok["keys"]}), "endpoint"),
        (json!({"endpoint": "not a url", "keys": ok["keys"]}), "endpoint"),
        (
            json!({"endpoint": "http://127.0.0.1:9/x", "keys": {"p256dh": "AAAA", "auth": ok["keys"]["auth"]}}),
            "keys.p256dh",
        ),
        (
            json!({"endpoint": "http://127.0.0.1:9/x", "keys": {"p256dh": ok["keys"]["p256dh"], "auth": "AAAA"}}),
            "keys.auth",
        ),
        (json!({"endpoint": "http://127.0.0.1:9/x", "keys": {"auth": ok["keys"]["auth"]}}), "keys.p256dh"),
    ];
    let long = format!("http://127.0.0.1:9/{}", "x".repeat(2100));
    cases.push((json!({"endpoint": long, "keys": ok["keys"]}), "endpoint"));
    for (body, field) in cases {
        let reply = ann.client.post("/api/push/subscriptions", body.clone()).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.body["error"]["details"]["field"], field, "{body}");
    }
    assert_eq!(ann.client.get("/api/push/subscriptions").await.body["subscriptions"], json!([]));
}

/// Production's rule: https to a public address. Loopback, private and link-local
/// addresses (the cloud metadata service at 169.254.169.254 above all) and plain http are
/// refused; so are names that only resolve inside (checked when a push is sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_production_endpoints_must_be_https_to_public_addresses() {
    let app = TestApp::try_spawn_with(Mode::Embedded, &[("PUSH_ALLOW_INSECURE", "false")]).await.expect("an app");
    let ann = app.register("Ann").await;
    for endpoint in [
        "http://fcm.googleapis.com/fcm/send/abc",
        "https://127.0.0.1/push",
        "https://localhost/push",
        "https://10.0.0.5/push",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/push",
        "https://[fd12::1]/push",
    ] {
        let reply = ann.client.post("/api/push/subscriptions", subscription(endpoint)).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.body["error"]["details"]["field"], "endpoint", "{endpoint}");
    }
    let public =
        ann.client.post("/api/push/subscriptions", subscription("https://fcm.googleapis.com/fcm/send/abc")).await;
    public.assert_status(201);
}
