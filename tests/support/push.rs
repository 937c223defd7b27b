//! A real Web Push receiver, playing the push service and the browser at once: an HTTP
//! server on loopback that holds each subscription's P-256 key pair and auth secret,
//! checks the VAPID token (RFC 8292: ES256, `aud` the endpoint's origin, `exp` within 24 h,
//! `k` the key Parley publishes), decrypts the body (RFC 8291 with RFC 8188's `aes128gcm`,
//! written here independently of the server's crate and checked against RFC 8291's test
//! vector), and records the JSON. It also receives webhooks and checks their signatures.
//! Each endpoint can be told how to answer (`410`, `500` n times, after a delay).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use aes_gcm::{Aes128Gcm, KeyInit, aead::Aead};
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use p256::{
    ecdsa::{Signature, VerifyingKey, signature::Verifier},
    elliptic_curve::sec1::ToEncodedPoint,
};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;

/// How an endpoint answers its next pushes.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Status(u16),
    /// Holds the request this long, then 201.
    Slow(Duration),
}

/// One push as the browser would see it.
#[derive(Clone, Debug)]
pub struct Push {
    pub subscription: usize,
    pub payload: Value,
    pub topic: Option<String>,
}

/// One webhook delivery.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub event: String,
    pub delivery: String,
    pub signature: String,
    pub body: Bytes,
}

struct Subscription {
    secret: p256::SecretKey,
    auth: [u8; 16],
    answers: VecDeque<Answer>,
}

#[derive(Default)]
struct Inbox {
    subscriptions: Vec<Subscription>,
    pushes: Vec<Push>,
    webhooks: Vec<Webhook>,
    /// Every request the endpoints got, including the ones answered with an error.
    requests: usize,
    /// Of which pushes (the rest: webhooks).
    push_requests: usize,
    /// What is wrong with requests that broke the protocol.
    violations: Vec<String>,
    vapid_key: Option<String>,
    webhook_answers: VecDeque<u16>,
    /// How far the server's (manual) clock is ahead of the real one, for `exp` checks.
    clock_ahead_secs: i64,
}

#[derive(Clone)]
pub struct PushReceiver {
    pub base: String,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
}

impl PushReceiver {
    pub async fn start() -> Self {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let arrived = Arc::new(Notify::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the push receiver");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let receiver = Self { base, inbox, arrived };
        let app = Router::new()
            .route("/push/{id}", post(receive_push))
            .route("/hook", post(receive_webhook))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    /// The VAPID public key Parley publishes; tokens must carry it.
    pub fn trust(&self, vapid_public_key: &str) {
        self.inbox.lock().unwrap().vapid_key = Some(vapid_public_key.to_owned());
    }

    /// The server's clock moved `by` ahead: VAPID tokens' `exp` is checked against it.
    pub fn clock_moved(&self, by: Duration) {
        self.inbox.lock().unwrap().clock_ahead_secs += by.as_secs() as i64;
    }

    /// A new subscription: its index and the JSON `pushManager.subscribe()` would give.
    pub fn subscription(&self) -> (usize, Value) {
        let secret = loop {
            if let Ok(secret) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break secret;
            }
        };
        let auth: [u8; 16] = rand::random();
        let public = secret.public_key().to_encoded_point(false);
        let mut inbox = self.inbox.lock().unwrap();
        inbox.subscriptions.push(Subscription { secret, auth, answers: VecDeque::new() });
        let id = inbox.subscriptions.len() - 1;
        let json = json!({
            "endpoint": format!("{}/push/{id}", self.base),
            "keys": { "p256dh": URL_SAFE_NO_PAD.encode(public.as_bytes()), "auth": URL_SAFE_NO_PAD.encode(auth) },
        });
        (id, json)
    }

    /// The next pushes to `subscription` get these answers (then 201).
    pub fn answer(&self, subscription: usize, answers: &[Answer]) {
        self.inbox.lock().unwrap().subscriptions[subscription].answers.extend(answers);
    }

    pub fn answer_webhooks(&self, statuses: &[u16]) {
        self.inbox.lock().unwrap().webhook_answers.extend(statuses);
    }

    pub fn pushes(&self) -> Vec<Push> {
        self.inbox.lock().unwrap().pushes.clone()
    }

    pub fn pushes_to(&self, subscription: usize) -> Vec<Push> {
        self.pushes().into_iter().filter(|p| p.subscription == subscription).collect()
    }

    pub fn webhooks(&self) -> Vec<Webhook> {
        self.inbox.lock().unwrap().webhooks.clone()
    }

    /// Requests of either kind, answered with success or not.
    pub fn requests(&self) -> usize {
        self.inbox.lock().unwrap().requests
    }

    /// Push requests, answered with success or not.
    pub fn push_requests(&self) -> usize {
        self.inbox.lock().unwrap().push_requests
    }

    /// Waits until `done` holds of what arrived (5 s at most), then asserts that no request
    /// broke the protocol.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&PushReceiver) -> bool) {
        self.wait_within(Duration::from_secs(5), what, done).await
    }

    pub async fn wait_within(&self, limit: Duration, what: &str, done: impl Fn(&PushReceiver) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.arrived.notified();
            if done(self) {
                break;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "{what}: not within {limit:?}; pushes {:?}, webhooks {}",
                self.pushes(),
                self.webhooks().len()
            );
        }
        let violations = self.inbox.lock().unwrap().violations.clone();
        assert!(violations.is_empty(), "protocol violations: {violations:?}");
    }
}

async fn receive_push(
    State(receiver): State<PushReceiver>,
    Path(id): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (answer, checked) = {
        let mut inbox = receiver.inbox.lock().unwrap();
        inbox.requests += 1;
        inbox.push_requests += 1;
        let endpoint_origin = receiver.base.clone();
        let checked = match inbox.subscriptions.get(id) {
            None => Err(format!("push to an unknown subscription {id}")),
            Some(subscription) => {
                let now = chrono::Utc::now().timestamp() + inbox.clock_ahead_secs;
                check_push(&headers, &body, subscription, &endpoint_origin, inbox.vapid_key.as_deref(), now)
            }
        };
        let answer = inbox.subscriptions.get_mut(id).and_then(|s| s.answers.pop_front());
        (answer, checked)
    };
    if let Some(Answer::Slow(delay)) = answer {
        // Those waiting for the request to arrive hear of it now, not when it is answered.
        receiver.arrived.notify_waiters();
        tokio::time::sleep(delay).await;
    }
    let status = match answer {
        Some(Answer::Status(code)) => StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        _ => StatusCode::CREATED,
    };
    {
        let mut inbox = receiver.inbox.lock().unwrap();
        match checked {
            Ok(payload) if status.is_success() => {
                let topic = headers.get("topic").and_then(|t| t.to_str().ok()).map(str::to_owned);
                inbox.pushes.push(Push { subscription: id, payload, topic });
            }
            Ok(_) => {}
            Err(violation) => inbox.violations.push(violation),
        }
    }
    receiver.arrived.notify_waiters();
    status
}

/// The decrypted JSON of a well-formed push, or what is wrong with it.
fn check_push(
    headers: &HeaderMap,
    body: &[u8],
    subscription: &Subscription,
    origin: &str,
    vapid_key: Option<&str>,
    now: i64,
) -> Result<Value, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if header("content-encoding") != "aes128gcm" {
        return Err(format!("Content-Encoding is {:?}", header("content-encoding")));
    }
    if header("ttl").parse::<u64>().is_err() {
        return Err("no TTL".into());
    }
    check_vapid(&header("authorization"), origin, vapid_key, now)?;
    let plain = decrypt(body, &subscription.secret, &subscription.auth)?;
    serde_json::from_slice(&plain).map_err(|e| format!("the payload is not JSON: {e}"))
}

/// RFC 8292: `vapid t=<ES256 JWT>, k=<public key>`.
fn check_vapid(authorization: &str, origin: &str, trusted: Option<&str>, now: i64) -> Result<(), String> {
    let rest = authorization.strip_prefix("vapid ").ok_or("no vapid authorization")?;
    let mut token = None;
    let mut key = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => token = Some(value.to_owned()),
            Some(("k", value)) => key = Some(value.to_owned()),
            _ => {}
        }
    }
    let (token, key) = (token.ok_or("no t=")?, key.ok_or("no k=")?);
    if trusted.is_some_and(|trusted| trusted != key) {
        return Err("k= is not the key the server publishes".into());
    }
    let verifying = VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(&key).map_err(|_| "k= not base64url")?)
        .map_err(|_| "k= not a P-256 key")?;
    let mut parts = token.split('.');
    let (Some(head), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not a JWS".into());
    };
    let head: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).map_err(|_| "bad header")?).map_err(|_| "bad header")?;
    if head["alg"] != "ES256" {
        return Err(format!("alg is {}", head["alg"]));
    }
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).map_err(|_| "bad signature")?)
        .map_err(|_| "bad signature")?;
    let signed = format!("{}.{}", token.split('.').next().unwrap_or_default(), claims);
    verifying.verify(signed.as_bytes(), &signature).map_err(|_| "the VAPID signature does not verify")?;
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).map_err(|_| "bad claims")?).map_err(|_| "bad claims")?;
    if claims["aud"] != origin {
        return Err(format!("aud is {} (expected {origin})", claims["aud"]));
    }
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    if exp <= now - 3600 || exp > now + 24 * 3600 + 60 {
        return Err(format!("exp {exp} is not within 24 h of now ({now})"));
    }
    if !claims["sub"].as_str().is_some_and(|s| s.starts_with("mailto:") || s.starts_with("https:")) {
        return Err(format!("sub is {}", claims["sub"]));
    }
    Ok(())
}

/// RFC 8291 §3.4 and RFC 8188: one `aes128gcm` record.
pub fn decrypt(body: &[u8], secret: &p256::SecretKey, auth: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 21 {
        return Err("body shorter than the aes128gcm header".into());
    }
    let salt = &body[..16];
    let record_size = u32::from_be_bytes(body[16..20].try_into().unwrap_or_default()) as usize;
    let id_len = body[20] as usize;
    let sender_key = body.get(21..21 + id_len).ok_or("truncated keyid")?;
    let ciphertext = &body[21 + id_len..];
    if ciphertext.len() > record_size || id_len != 65 {
        return Err(format!(
            "record size {record_size}, keyid {id_len} bytes, {} bytes of ciphertext",
            ciphertext.len()
        ));
    }
    let sender = p256::PublicKey::from_sec1_bytes(sender_key).map_err(|_| "the keyid is not a P-256 key")?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), sender.as_affine());
    let receiver_key = secret.public_key().to_encoded_point(false);
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(receiver_key.as_bytes());
    key_info.extend_from_slice(sender_key);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), &shared.raw_secret_bytes()[..]).expand(&key_info, &mut ikm).map_err(|_| "hkdf")?;
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).map_err(|_| "hkdf")?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).map_err(|_| "hkdf")?;
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| "aes key")?;
    let mut plain = cipher.decrypt(&nonce.into(), ciphertext).map_err(|_| "the record does not decrypt")?;
    // The last record ends with the delimiter 0x02, then zero padding.
    while plain.last() == Some(&0) {
        plain.pop();
    }
    if plain.pop() != Some(2) {
        return Err("no last-record delimiter".into());
    }
    Ok(plain)
}

async fn receive_webhook(State(receiver): State<PushReceiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let status = {
        let mut inbox = receiver.inbox.lock().unwrap();
        inbox.requests += 1;
        let status = inbox.webhook_answers.pop_front().unwrap_or(200);
        if (200..300).contains(&status) {
            inbox.webhooks.push(Webhook {
                event: header("x-parley-event"),
                delivery: header("x-parley-delivery"),
                signature: header("x-parley-signature"),
                body,
            });
        }
        status
    };
    receiver.arrived.notify_waiters();
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

/// What a webhook receiver does with `X-Parley-Signature` (the README's example, in Rust).
pub fn signature_verifies(secret: &[u8], body: &[u8], header: &str) -> bool {
    use hmac::Hmac;
    let Some(hex) = header.strip_prefix("sha256=") else { return false };
    let Ok(expected) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..(i + 2).min(hex.len())], 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(secret).expect("any key length");
    hmac::Mac::update(&mut mac, body);
    hmac::Mac::verify_slice(mac, &expected).is_ok()
}
