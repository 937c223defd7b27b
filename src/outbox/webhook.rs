//! Signed webhooks (SPEC §4.4): a JSON body POSTed to `WEBHOOK_URL` with
//! `X-Parley-Signature: sha256=<hex HMAC-SHA256 of the raw body with WEBHOOK_SECRET>`,
//! `X-Parley-Event` and `X-Parley-Delivery` (the same id on every retry, for dedup).

use hmac::{Hmac, Mac};
use sha2::Sha256;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_ne!(signature(b"Jefe", b"what do ya want for nothing!"), sig, "another body");
        assert_ne!(signature(b"jefe", b"what do ya want for nothing?"), sig, "another secret");
    }
}
