//! One Web Push request (RFC 8030): the payload encrypted for the subscription (RFC 8291,
//! `aes128gcm` of RFC 8188, by the `web-push-native` crate) and signed for with VAPID
//! (RFC 8292: an ES256 JWT by `jsonwebtoken`, whose `aud` is the push service's origin).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::{elliptic_curve::sec1::ToEncodedPoint as _, pkcs8::EncodePrivateKey as _};
use serde::Serialize;

use crate::{storage::push::PushSubscriptionRecord, sync::lock};

/// How long a push service keeps an undelivered push (the `TTL` header): a day, like the
/// outbox's own retries.
pub const PUSH_TTL: Duration = Duration::from_secs(24 * 3600);
/// Lifetime of a VAPID token (RFC 8292 allows at most 24 h); reused for an hour.
const VAPID_LIFETIME_SECS: i64 = 12 * 3600;
const VAPID_REUSE_SECS: i64 = 3600;

/// The server's VAPID identity.
pub struct Vapid {
    key: EncodingKey,
    /// base64url of the uncompressed public point: the `k=` of the header, and the
    /// `applicationServerKey` browsers subscribe with.
    public_key: String,
    subject: String,
    /// audience → (token, issued at, s)
    tokens: Mutex<HashMap<String, (String, i64)>>,
}

#[derive(Serialize)]
struct VapidClaims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

impl Vapid {
    /// From the 32-byte private scalar.
    pub fn new(private_key: &[u8], subject: &str) -> anyhow::Result<Self> {
        let secret = p256::SecretKey::from_slice(private_key)
            .map_err(|_| anyhow::anyhow!("VAPID_PRIVATE_KEY is not a P-256 private key"))?;
        let der = secret.to_pkcs8_der().map_err(|e| anyhow::anyhow!("encoding the VAPID key: {e}"))?;
        let public_key = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        Ok(Self {
            key: EncodingKey::from_ec_der(der.as_bytes()),
            public_key,
            subject: subject.to_owned(),
            tokens: Mutex::default(),
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// `Authorization: vapid t=<jwt>, k=<public key>` for a push to `endpoint`, at `now` (s).
    pub fn authorization(&self, endpoint: &reqwest::Url, now: i64) -> anyhow::Result<String> {
        let audience = endpoint.origin().ascii_serialization();
        let mut tokens = lock(&self.tokens);
        let token = match tokens.get(&audience) {
            Some((token, issued)) if now - issued < VAPID_REUSE_SECS => token.clone(),
            _ => {
                let claims = VapidClaims { aud: &audience, exp: now + VAPID_LIFETIME_SECS, sub: &self.subject };
                let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key)?;
                tokens.insert(audience, (token.clone(), now));
                token
            }
        };
        Ok(format!("vapid t={token}, k={}", self.public_key))
    }
}

/// The encrypted body of a push of `payload` to `subscription`.
pub fn encrypt(subscription: &PushSubscriptionRecord, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let key = URL_SAFE_NO_PAD.decode(&subscription.p256dh)?;
    let auth = URL_SAFE_NO_PAD.decode(&subscription.auth)?;
    anyhow::ensure!(auth.len() == 16, "the subscription's auth secret is not 16 bytes");
    let ua_public = p256::PublicKey::from_sec1_bytes(&key).map_err(|_| anyhow::anyhow!("bad p256dh"))?;
    let mut ua_auth = web_push_native::Auth::default();
    ua_auth.copy_from_slice(&auth);
    web_push_native::encrypt(payload.to_vec(), &ua_public, &ua_auth).map_err(|e| anyhow::anyhow!("encrypting: {e}"))
}

/// What a push service's answer means for the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted (201, or any 2xx).
    Sent,
    /// 404 / 410: the subscription is gone for good.
    Gone,
    /// Another 4xx: this push will never be accepted (too large, malformed, unauthorized).
    Rejected,
    /// 5xx, 429, a timeout, a refused connection: try again later.
    Retry,
}

pub fn verdict(status: reqwest::StatusCode) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Sent,
        404 | 410 => Verdict::Gone,
        408 | 429 => Verdict::Retry,
        400..=499 => Verdict::Rejected,
        _ => Verdict::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vapid_tokens_are_es256_for_the_endpoint_origin_and_reused_for_an_hour() {
        let vapid = Vapid::new(&[7u8; 32], "mailto:ops@example.com").unwrap();
        let endpoint: reqwest::Url = "https://push.example.net:8443/send/abc?x=1".parse().unwrap();
        let header = vapid.authorization(&endpoint, 1_000_000).unwrap();
        let (token, key) = header.strip_prefix("vapid t=").unwrap().split_once(", k=").unwrap();
        assert_eq!(key, vapid.public_key());
        let public = URL_SAFE_NO_PAD.decode(key).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://push.example.net:8443"]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &jsonwebtoken::DecodingKey::from_ec_der(&public),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims["exp"], 1_000_000 + VAPID_LIFETIME_SECS);
        assert_eq!(decoded.claims["sub"], "mailto:ops@example.com");
        assert_eq!(vapid.authorization(&endpoint, 1_000_000 + 3599).unwrap(), header, "reused");
        assert_ne!(vapid.authorization(&endpoint, 1_000_000 + 3600).unwrap(), header, "renewed");
    }

    #[test]
    fn answers_map_to_what_the_outbox_does() {
        let v = |code: u16| verdict(reqwest::StatusCode::from_u16(code).unwrap());
        assert_eq!(
            (v(201), v(410), v(404), v(413), v(400), v(429), v(500), v(503)),
            (
                Verdict::Sent,
                Verdict::Gone,
                Verdict::Gone,
                Verdict::Rejected,
                Verdict::Rejected,
                Verdict::Retry,
                Verdict::Retry,
                Verdict::Retry
            )
        );
    }
}
