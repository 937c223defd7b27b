//! Access tokens (JWT HS256, short-lived) and refresh tokens (opaque, stored hashed).

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::AppError;

/// The claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: Uuid,
    /// The login session (refresh token family) the token was issued to.
    pub sid: Uuid,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

impl AccessClaims {
    pub fn user_id(&self) -> Uuid {
        self.sub
    }
}

pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl AccessTokens {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against the application's clock, with the one leeway of
        // [`is_expired`], not by the JWT library against the system clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation, ttl }
    }

    /// Issues a token for `user` in login session `session` at `now_secs` (Unix seconds).
    pub fn issue(&self, user: Uuid, session: Uuid, now_secs: i64) -> Result<(String, AccessClaims), AppError> {
        let claims = AccessClaims {
            sub: user,
            sid: session,
            jti: Uuid::now_v7().to_string(),
            iat: now_secs,
            exp: now_secs + self.ttl.as_secs() as i64,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("signing a JWT: {e}")))?;
        Ok((token, claims))
    }

    /// Checks signature, algorithm and expiry at `now_secs`. Says nothing about revocation.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<AccessClaims, AppError> {
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| AppError::AuthFailed("invalid access token"))?;
        if is_expired(claims.exp, now_secs) {
            return Err(AppError::AuthFailed("access token expired"));
        }
        Ok(claims)
    }
}

/// How long past its `exp` an access token still counts (clocks of clients and replicas
/// drift a little). The one rule for connecting, `auth`, every socket event and REST.
pub const EXPIRY_LEEWAY_SECS: i64 = 5;

/// Whether a token that expires at `exp` has expired at `now` (both Unix seconds).
pub fn is_expired(exp: i64, now: i64) -> bool {
    exp + EXPIRY_LEEWAY_SECS <= now
}

/// A fresh opaque refresh token: 256 random bits, base64url.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps instead of the token itself.
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_verifies_with_its_own_secret_only() {
        let tokens = AccessTokens::new(SECRET, Duration::from_secs(900));
        let now = chrono::Utc::now().timestamp();
        let (token, claims) = tokens.issue(Uuid::now_v7(), Uuid::now_v7(), now).unwrap();
        assert_eq!(tokens.verify(&token, now).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 900);
        let other = AccessTokens::new(b"another-secret-another-secret-xx", Duration::from_secs(900));
        assert!(other.verify(&token, now).is_err());
    }

    #[test]
    fn expired_and_garbage_tokens_are_refused() {
        let tokens = AccessTokens::new(SECRET, Duration::from_secs(900));
        let now = chrono::Utc::now().timestamp();
        let (token, claims) = tokens.issue(Uuid::now_v7(), Uuid::now_v7(), now - 900).unwrap();
        // Expired at `now`, but within the leeway until `now + 4`; refused from `now + 5` on.
        assert!(tokens.verify(&token, now + EXPIRY_LEEWAY_SECS - 1).is_ok());
        assert_eq!(tokens.verify(&token, now + EXPIRY_LEEWAY_SECS).unwrap_err().to_string(), "access token expired");
        assert!(is_expired(claims.exp, claims.exp + EXPIRY_LEEWAY_SECS) && !is_expired(claims.exp, claims.exp + 4));
        assert!(tokens.verify("not.a.jwt", now).is_err());
        assert!(tokens.verify("", now).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_refresh_token(&a), hash_refresh_token(&a));
        assert_ne!(hash_refresh_token(&a), hash_refresh_token(&b));
    }
}
