//! The admin UI's login: the username and password of `ADMIN_USERNAME` /
//! `ADMIN_PASSWORD_HASH`, then a session id the UI keeps and sends instead on its next
//! connections (its `auth.sessionId`).
//!
//! A session id is signed, not stored: `<expiry>.<HMAC-SHA256>` over the expiry, the
//! username and the configured hash, keyed by the JWT secret. So every replica accepts the
//! ones every other replica issued, and changing the password ends every session.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{config::AdminCredentials, domain::password::PasswordHasher};

/// How long a session id stays good (the npm package keeps its sessions a day).
pub const SESSION_TTL_SECS: i64 = 24 * 3600;

/// What the UI sends in the namespace connect's `auth`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub session_id: Option<String>,
}

/// The outcome of a login.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    /// By username and password: here is the session id for the next connections.
    Password(String),
    /// By a session id still good.
    Session,
}

pub struct AdminLogin {
    credentials: AdminCredentials,
    key: Vec<u8>,
    hasher: PasswordHasher,
}

impl AdminLogin {
    /// `hasher`: the process's (the REST login's), so Argon2 work stays bounded in one place.
    pub fn new(credentials: AdminCredentials, jwt_secret: &[u8], hasher: PasswordHasher) -> Self {
        Self { credentials, key: jwt_secret.to_vec(), hasher }
    }

    /// `None` when refused: no such session, or a wrong username or password.
    pub async fn check(&self, auth: &AdminAuth, now: i64) -> Option<Login> {
        if let Some(session) = &auth.session_id
            && self.session_is_good(session, now)
        {
            return Some(Login::Session);
        }
        let (username, password) = (auth.username.as_deref()?, auth.password.as_deref()?);
        let hash = Some(self.credentials.password_hash.expose().clone());
        // The hash is verified whatever the username, so a wrong one takes as long.
        let matches = self.hasher.verify(password, hash).await.unwrap_or(false);
        (matches && username == self.credentials.username).then(|| Login::Password(self.issue(now)))
    }

    fn issue(&self, now: i64) -> String {
        let expiry = now + SESSION_TTL_SECS;
        format!("{expiry}.{}", hex(&self.signature(expiry)))
    }

    fn session_is_good(&self, session: &str, now: i64) -> bool {
        let Some((expiry, signature)) = session.split_once('.') else { return false };
        let Ok(expiry) = expiry.parse::<i64>() else { return false };
        let Some(signature) = unhex(signature) else { return false };
        expiry > now && self.mac(expiry).verify_slice(&signature).is_ok()
    }

    fn signature(&self, expiry: i64) -> Vec<u8> {
        self.mac(expiry).finalize().into_bytes().to_vec()
    }

    fn mac(&self, expiry: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        for part in ["parley admin ui session", &self.credentials.username, self.credentials.password_hash.expose()] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac.update(expiry.to_string().as_bytes());
        mac
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher as _;

    use super::*;
    use crate::config::Secret;

    fn login() -> AdminLogin {
        let hash = argon2::Argon2::default().hash_password(b"correct horse").unwrap().to_string();
        let credentials = AdminCredentials { username: "ops".into(), password_hash: Secret::new(hash) };
        AdminLogin::new(credentials, b"a jwt secret of at least thirty-two bytes", PasswordHasher::new())
    }

    fn auth(username: &str, password: &str) -> AdminAuth {
        AdminAuth { username: Some(username.into()), password: Some(password.into()), session_id: None }
    }

    #[tokio::test]
    async fn the_password_gives_a_session_that_expires_and_cannot_be_forged() {
        let login = login();
        let now = 1_800_000_000;
        assert_eq!(login.check(&auth("ops", "wrong"), now).await, None);
        assert_eq!(login.check(&auth("other", "correct horse"), now).await, None);
        assert_eq!(login.check(&AdminAuth::default(), now).await, None);
        let Some(Login::Password(session)) = login.check(&auth("ops", "correct horse"), now).await else {
            panic!("the right password is accepted")
        };
        let by_session = |session: &str, at: i64| {
            let auth = AdminAuth { session_id: Some(session.into()), ..AdminAuth::default() };
            let login = &login;
            async move { login.check(&auth, at).await }
        };
        assert_eq!(by_session(&session, now + 60).await, Some(Login::Session));
        assert_eq!(by_session(&session, now + SESSION_TTL_SECS).await, None, "expired");
        let (expiry, signature) = session.split_once('.').unwrap();
        let later = format!("{}.{signature}", expiry.parse::<i64>().unwrap() + 3600);
        assert_eq!(by_session(&later, now).await, None, "the expiry is signed");
        for junk in ["", "123", "x.y", "99999999999.00", &format!("{expiry}.{}", &signature[2..])] {
            assert_eq!(by_session(junk, now).await, None, "{junk}");
        }
        let other_password = {
            let hash = argon2::Argon2::default().hash_password(b"new password").unwrap().to_string();
            let credentials = AdminCredentials { username: "ops".into(), password_hash: Secret::new(hash) };
            AdminLogin::new(credentials, b"a jwt secret of at least thirty-two bytes", PasswordHasher::new())
        };
        let auth = AdminAuth { session_id: Some(session.clone()), ..AdminAuth::default() };
        assert_eq!(other_password.check(&auth, now).await, None, "a new password ends the sessions");
    }
}
