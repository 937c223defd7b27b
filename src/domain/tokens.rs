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
        validation.leeway = 5;
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

    /// Checks signature, algorithm and expiry. Says nothing about revocation.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AppError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AppError::AuthFailed("access token expired"),
                _ => AppError::AuthFailed("invalid access token"),
            },
        )
    }
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
        assert_eq!(tokens.verify(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 900);
        let other = AccessTokens::new(b"another-secret-another-secret-xx", Duration::from_secs(900));
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn expired_and_garbage_tokens_are_refused() {
        let tokens = AccessTokens::new(SECRET, Duration::from_secs(900));
        let long_ago = chrono::Utc::now().timestamp() - 3600;
        let (token, _) = tokens.issue(Uuid::now_v7(), Uuid::now_v7(), long_ago).unwrap();
        assert_eq!(tokens.verify(&token).unwrap_err().to_string(), "access token expired");
        assert!(tokens.verify("not.a.jwt").is_err());
        assert!(tokens.verify("").is_err());
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
