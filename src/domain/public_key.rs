//! A device's public key as a client registers it (SPEC §4.5), parsed into a value that can
//! only hold a public key of its algorithm. The server never accepts anything that is, or
//! could only be, a private key:
//!
//! * `x25519`: 32 raw bytes (WebCrypto `exportKey("raw")`), or SubjectPublicKeyInfo DER with
//!   the X25519 OID (`exportKey("spki")`). The point must lie on Curve25519 (not its twist) and
//!   not be of small order.
//! * `ed25519`: 32 raw bytes or SPKI DER with the Ed25519 OID; the bytes must decompress to a
//!   curve point that is not of small order.
//! * `p256`: a SEC1 point, compressed (33 bytes) or uncompressed (65 bytes), or SPKI DER with
//!   `id-ecPublicKey` on `prime256v1`; the point must be on the curve and not the identity.
//! * Anything that parses as a PKCS#8 private key (`exportKey("pkcs8")`), or as PEM / JWK text
//!   naming a private key, is refused with a reason that says so; so is a 32-byte value
//!   offered as a P-256 key (the size of a P-256 private scalar).
//!
//! What no server can tell: 32 random bytes sent as an X25519 key could be someone's private
//! scalar rather than a point (about half of all scalars are valid points). Clients must send
//! `exportKey("raw")`/`"spki"` of the public key; the fingerprint the server returns lets the
//! owner check that what it stored is what their device holds.

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use sha2::{Digest, Sha256};

use crate::{error::AppError, storage::keys::KeyAlgorithm};

/// The decoded size range of `publicKey` (SPEC §4.5).
pub const MIN_BYTES: usize = 32;
pub const MAX_BYTES: usize = 1024;

const X25519_OID: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.110");

/// Decodes base64 in any of its common spellings (standard or URL-safe, padded or not).
pub fn decode_base64(raw: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(raw).ok())
}

/// A validated public key: its bytes as the client sent them, and its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: KeyAlgorithm,
    /// Standard base64 (padded) of the bytes the client sent.
    pub encoded: String,
    /// Lower-case hex SHA-256 of the raw key: the 32 bytes of an X25519 or Ed25519 key, the
    /// 65-byte uncompressed point of a P-256 key (whatever encoding was sent).
    pub fingerprint: String,
}

impl PublicKey {
    pub fn parse(algorithm: KeyAlgorithm, raw: &str) -> Result<Self, AppError> {
        let invalid = |why: &str| AppError::invalid_field("publicKey", why.to_owned());
        if looks_private(raw.as_bytes()) {
            return Err(invalid("looks like a private key: send only the public key"));
        }
        let bytes = decode_base64(raw.trim()).ok_or_else(|| invalid("must be base64"))?;
        if !(MIN_BYTES..=MAX_BYTES).contains(&bytes.len()) {
            return Err(invalid("must be base64 of 32 to 1024 bytes"));
        }
        if looks_private(&bytes) || pkcs8::PrivateKeyInfo::try_from(bytes.as_slice()).is_ok() {
            return Err(invalid("looks like a private key: send only the public key"));
        }
        let canonical = match algorithm {
            KeyAlgorithm::X25519 => x25519_point(&bytes),
            KeyAlgorithm::Ed25519 => ed25519_point(&bytes),
            KeyAlgorithm::P256 => p256_point(&bytes),
        }
        .map_err(invalid)?;
        Ok(Self { algorithm, encoded: STANDARD.encode(&bytes), fingerprint: fingerprint_of(&canonical) })
    }
}

/// Lower-case hex SHA-256.
pub fn fingerprint_of(raw: &[u8]) -> String {
    Sha256::digest(raw).iter().map(|b| format!("{b:02x}")).collect()
}

/// A fingerprint as a client may write it: 64 hex digits, any case, optionally grouped
/// with `:` or spaces. Returns the canonical lower-case form.
pub fn parse_fingerprint(raw: &str) -> Result<String, AppError> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ':' | ' ')).collect::<String>().to_ascii_lowercase();
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::invalid_field("fingerprint", "must be the 64 hex digits of a SHA-256"));
    }
    Ok(digits)
}

/// PEM or JWK text of a private key (`-----BEGIN … PRIVATE KEY-----`, a JWK with `"d"`).
fn looks_private(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    if text.contains("PRIVATE KEY") {
        return true;
    }
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|jwk| jwk.get("d").is_some())
}

/// The raw 32 bytes of an X25519 public key.
fn x25519_point(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
    let raw: [u8; 32] = match bytes.len() {
        32 => bytes.try_into().map_err(|_| "must be 32 bytes")?,
        _ => {
            let spki = spki::SubjectPublicKeyInfoRef::try_from(bytes)
                .map_err(|_| "an X25519 key is 32 raw bytes or SubjectPublicKeyInfo DER")?;
            if spki.algorithm.oid != X25519_OID {
                return Err("the SubjectPublicKeyInfo is not of an X25519 key");
            }
            spki.subject_public_key
                .as_bytes()
                .and_then(|key| <[u8; 32]>::try_from(key).ok())
                .ok_or("an X25519 key is 32 bytes")?
        }
    };
    // On the curve (honest keys always are) and of large order.
    let point =
        curve25519_dalek::montgomery::MontgomeryPoint(raw).to_edwards(0).ok_or("is not a point of Curve25519")?;
    if point.is_small_order() {
        return Err("is a point of small order, not a public key");
    }
    Ok(raw.to_vec())
}

/// The raw 32 bytes of an Ed25519 public key.
fn ed25519_point(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
    let key = match bytes.len() {
        32 => {
            let raw: &[u8; 32] = bytes.try_into().map_err(|_| "must be 32 bytes")?;
            ed25519_dalek::VerifyingKey::from_bytes(raw).map_err(|_| "is not a point of Ed25519")?
        }
        _ => ed25519_dalek::VerifyingKey::from_public_key_der(bytes)
            .map_err(|_| "an Ed25519 key is 32 raw bytes or SubjectPublicKeyInfo DER of an Ed25519 key")?,
    };
    if key.is_weak() {
        return Err("is a point of small order, not a public key");
    }
    Ok(key.to_bytes().to_vec())
}

/// The uncompressed SEC1 point (65 bytes) of a P-256 public key.
fn p256_point(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let key = match bytes.first() {
        Some(0x02..=0x04) if bytes.len() == 33 || bytes.len() == 65 => {
            p256::PublicKey::from_sec1_bytes(bytes).map_err(|_| "is not a point of P-256")?
        }
        _ if bytes.len() == 32 => return Err("32 bytes is a P-256 private key's size: send the public point"),
        _ => p256::PublicKey::from_public_key_der(bytes)
            .map_err(|_| "a P-256 key is a SEC1 point (33 or 65 bytes) or SubjectPublicKeyInfo DER of a P-256 key")?,
    };
    Ok(key.to_encoded_point(false).as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use p256::{elliptic_curve::sec1::ToEncodedPoint as _, pkcs8::EncodePublicKey as _};

    use super::*;

    fn reason(algorithm: KeyAlgorithm, raw: &str) -> String {
        match PublicKey::parse(algorithm, raw) {
            Err(AppError::Validation { details: Some(details), .. }) => {
                assert_eq!(details["field"], "publicKey");
                details["reason"].as_str().unwrap_or_default().to_owned()
            }
            other => panic!("{raw}: expected a validation error, got {other:?}"),
        }
    }

    fn p256_secret() -> p256::SecretKey {
        p256::SecretKey::from_slice(&[7u8; 32]).expect("a valid scalar")
    }

    #[test]
    fn p256_points_in_every_encoding_share_one_fingerprint() {
        let public = p256_secret().public_key();
        let uncompressed = public.to_encoded_point(false);
        let compressed = public.to_encoded_point(true);
        let der = public.to_public_key_der().expect("spki");
        let keys: Vec<PublicKey> = [uncompressed.as_bytes(), compressed.as_bytes(), der.as_bytes()]
            .iter()
            .map(|bytes| PublicKey::parse(KeyAlgorithm::P256, &STANDARD.encode(bytes)).expect("a public key"))
            .collect();
        let expected = fingerprint_of(uncompressed.as_bytes());
        assert!(keys.iter().all(|k| k.fingerprint == expected), "{keys:?}");
        assert_eq!(keys[0].encoded, STANDARD.encode(uncompressed.as_bytes()), "kept as sent");
        let url_safe = URL_SAFE_NO_PAD.encode(uncompressed.as_bytes());
        assert_eq!(PublicKey::parse(KeyAlgorithm::P256, &url_safe).unwrap().fingerprint, expected);
    }

    #[test]
    fn private_keys_are_refused_whatever_their_dress() {
        let secret = p256_secret();
        let scalar = STANDARD.encode(secret.to_bytes());
        assert!(reason(KeyAlgorithm::P256, &scalar).contains("private key"));
        use p256::pkcs8::EncodePrivateKey as _;
        let pkcs8 = secret.to_pkcs8_der().expect("pkcs8");
        for algorithm in [KeyAlgorithm::P256, KeyAlgorithm::X25519, KeyAlgorithm::Ed25519] {
            assert!(reason(algorithm, &STANDARD.encode(pkcs8.as_bytes())).contains("private key"));
        }
        let pem =
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";
        assert!(reason(KeyAlgorithm::P256, pem).contains("private key"));
        assert!(reason(KeyAlgorithm::P256, &STANDARD.encode(pem)).contains("private key"));
        let jwk =
            r#"{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","d":"secret-scalar-here"}"#;
        assert!(reason(KeyAlgorithm::P256, &STANDARD.encode(jwk)).contains("private key"));
    }

    #[test]
    fn curve25519_keys_are_points_of_large_order() {
        // The X25519 base point (u = 9) and the Ed25519 base point are honest public keys.
        let mut base = [0u8; 32];
        base[0] = 9;
        let x = PublicKey::parse(KeyAlgorithm::X25519, &STANDARD.encode(base)).expect("u = 9");
        assert_eq!(x.fingerprint, fingerprint_of(&base));
        let mut spki = hex_bytes("302a300506032b656e032100");
        spki.extend_from_slice(&base);
        assert_eq!(PublicKey::parse(KeyAlgorithm::X25519, &STANDARD.encode(&spki)).unwrap().fingerprint, x.fingerprint);
        let ed = curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED.to_bytes();
        let e = PublicKey::parse(KeyAlgorithm::Ed25519, &STANDARD.encode(ed)).expect("the base point");
        let mut ed_spki = hex_bytes("302a300506032b6570032100");
        ed_spki.extend_from_slice(&ed);
        assert_eq!(
            PublicKey::parse(KeyAlgorithm::Ed25519, &STANDARD.encode(&ed_spki)).unwrap().fingerprint,
            e.fingerprint
        );
        // An X25519 SPKI is not an Ed25519 key, and the other way round.
        assert!(reason(KeyAlgorithm::Ed25519, &STANDARD.encode(&spki)).contains("Ed25519"));
        assert!(reason(KeyAlgorithm::X25519, &STANDARD.encode(&ed_spki)).contains("X25519"));
        // u = 0 and u = 1 are of small order: no honest key is either.
        assert!(reason(KeyAlgorithm::X25519, &STANDARD.encode([0u8; 32])).contains("small order"));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(reason(KeyAlgorithm::Ed25519, &STANDARD.encode(one)).contains("small order"));
    }

    #[test]
    fn sizes_and_spelling_are_checked() {
        assert!(reason(KeyAlgorithm::X25519, "not base64!").contains("base64"));
        assert!(reason(KeyAlgorithm::X25519, &STANDARD.encode([9u8; 31])).contains("32 to 1024"));
        assert!(reason(KeyAlgorithm::P256, &STANDARD.encode([4u8; 1025])).contains("32 to 1024"));
        assert!(reason(KeyAlgorithm::P256, &STANDARD.encode([4u8; 65])).contains("P-256"));
        assert!(reason(KeyAlgorithm::X25519, &STANDARD.encode([9u8; 40])).contains("X25519"));
        assert_eq!(parse_fingerprint(&"AB:".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }
}
