//! Signed webhooks (SPEC §4.4): a JSON body POSTed to `WEBHOOK_URL` with
//! `X-Parley-Signature: sha256=<hex HMAC-SHA256 of the raw body with WEBHOOK_SECRET>`,
//! `X-Parley-Event` and `X-Parley-Delivery` (the same id on every retry, for dedup).

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

use crate::domain::time::Timestamp;

pub const SIGNATURE_HEADER: &str = "x-parley-signature";
pub const EVENT_HEADER: &str = "x-parley-event";
pub const DELIVERY_HEADER: &str = "x-parley-delivery";

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Whether `header` is the signature of `body` (compared in constant time).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else { return false };
    let Some(expected) = decode_hex(hex) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// The body of every webhook: `{event, deliveryId, occurredAt, data}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    pub event: &'a str,
    pub delivery_id: Uuid,
    pub occurred_at: Timestamp,
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_does_not() {
        // RFC 4231, test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify(b"jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"what do ya want for nothing?", "sha256=zz"));
        assert!(!verify(b"Jefe", b"what do ya want for nothing?", sig.trim_start_matches("sha256=")));
    }
}
