//! Real public keys for the key directory's tests, made the way a client's WebCrypto would.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use sha2::{Digest, Sha256};

/// A fresh P-256 key pair's public half: (base64 of the uncompressed point, its fingerprint).
pub fn p256_public_key() -> (String, String) {
    let secret = loop {
        if let Ok(secret) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            break secret;
        }
    };
    let point = secret.public_key().to_encoded_point(false);
    (STANDARD.encode(point.as_bytes()), hex_sha256(point.as_bytes()))
}

/// The private scalar of a fresh P-256 key, base64: what must never be accepted.
pub fn p256_private_scalar() -> String {
    STANDARD.encode(rand::random::<[u8; 32]>())
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
