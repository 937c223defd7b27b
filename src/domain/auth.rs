//! Registration, login, token refresh with rotation and reuse detection, logout, and the
//! check every authenticated request (REST or socket) goes through.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Deps,
    input::{DisplayName, Email, Password, Username},
    password::PasswordHasher,
    tokens::{AccessClaims, AccessTokens, hash_refresh_token, new_refresh_token},
};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    fanout::Fanout,
    shared_state::{Admission, SharedState, Ticket},
    storage::{
        Storage, StorageError,
        models::{NewRefreshToken, NewUser, UserRecord},
    },
};

/// Failed logins allowed per email and per client address within [`LOGIN_WINDOW`].
pub const LOGIN_ATTEMPTS: u32 = 5;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How often registration retries a derived username with a random suffix.
const USERNAME_ATTEMPTS: u32 = 8;

pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub display_name: String,
    pub username: Option<String>,
}

/// A signed-in session: the user, a fresh access token and a fresh refresh token.
pub struct Session {
    pub user: UserRecord,
    pub access_token: String,
    pub access_claims: AccessClaims,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

/// How tokens are signed and how long they live.
pub struct TokenSettings<'a> {
    pub jwt_secret: &'a [u8],
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Registrations allowed per client address per [`REGISTRATION_WINDOW`] (0: no limit).
    pub registrations_per_hour: u32,
}

/// The window of the per-address registration limit.
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(3600);

pub struct AuthService {
    storage: Arc<dyn Storage>,
    shared: SharedState,
    clock: SharedClock,
    tokens: AccessTokens,
    hasher: PasswordHasher,
    refresh_ttl: Duration,
    fanout: Fanout,
    registrations_per_hour: u32,
}

impl AuthService {
    /// The hasher every password check of this process shares (its concurrency bound).
    pub fn password_hasher(&self) -> PasswordHasher {
        self.hasher.clone()
    }

    pub fn new(deps: &Deps, settings: TokenSettings<'_>) -> Self {
        Self {
            storage: deps.storage.clone(),
            shared: deps.shared.clone(),
            clock: deps.clock.clone(),
            tokens: AccessTokens::new(settings.jwt_secret, settings.access_ttl),
            hasher: PasswordHasher::new(),
            refresh_ttl: settings.refresh_ttl,
            fanout: deps.fanout.clone(),
            registrations_per_hour: settings.registrations_per_hour,
        }
    }

    /// Creates an account from `client_ip`: at most `REGISTRATIONS_PER_HOUR` per address (each
    /// costs an Argon2 hash; an account-spam run is refused with 429), counted across replicas.
    pub async fn register(&self, input: RegisterInput, client_ip: &str) -> AppResult<Session> {
        let email = Email::parse(&input.email)?;
        let password = Password::parse(input.password)?;
        let display_name = DisplayName::parse(&input.display_name)?;
        let requested = input.username.as_deref().map(Username::parse).transpose()?;
        self.admit_registration(client_ip).await?;
        if self.storage.user_by_email(email.as_str()).await?.is_some() {
            return Err(AppError::EmailTaken);
        }
        let password_hash = self.hasher.hash(&password).await?;
        let user = match requested {
            Some(username) => self.insert_user(&email, &username, &display_name, &password_hash).await?,
            None => self.insert_with_derived_username(&email, &display_name, &password_hash).await?,
        };
        tracing::info!(user_id = %user.id, "user registered");
        self.start_session(user, Uuid::now_v7()).await
    }

    async fn insert_user(
        &self,
        email: &Email,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
    ) -> AppResult<UserRecord> {
        let new = NewUser {
            id: Uuid::now_v7(),
            email: email.as_str().to_owned(),
            username: username.as_str().to_owned(),
            display_name: display_name.clone().into_inner(),
            password_hash: password_hash.to_owned(),
            created_at: self.clock.now(),
        };
        Ok(self.storage.create_user(&new).await?)
    }

    /// The email's slug, or the slug plus a random number when taken; the unique index has
    /// the last word, so a concurrent registration with the same slug just tries again.
    async fn insert_with_derived_username(
        &self,
        email: &Email,
        display_name: &DisplayName,
        password_hash: &str,
    ) -> AppResult<UserRecord> {
        let base = Username::slug_from(email);
        for attempt in 0..USERNAME_ATTEMPTS {
            let candidate = match attempt {
                0 => base.clone(),
                n => base.with_suffix(rand::random_range(10u32.pow(n.min(6))..10u32.pow(n.min(6) + 1))),
            };
            if self.storage.username_taken(candidate.as_str()).await? {
                continue;
            }
            match self.insert_user(email, &candidate, display_name, password_hash).await {
                Err(AppError::UsernameTaken) => continue,
                other => return other,
            }
        }
        Err(AppError::Internal(anyhow::anyhow!("no free username derived from {}", base.as_str())))
    }

    /// Checks the password, under the per-email and per-address failure limits.
    pub async fn login(&self, email: &str, password: &str, client_ip: &str) -> AppResult<Session> {
        let email = email.trim().to_lowercase();
        let email_key = format!("login:email:{email}");
        let ip_key = format!("login:ip:{client_ip}");
        let email_ticket = self.admit_login("login", &email_key).await?;
        let ip_ticket = match self.admit_login("login", &ip_key).await {
            Ok(ticket) => ticket,
            Err(err) => {
                self.release_login(&email_key, email_ticket).await;
                return Err(err);
            }
        };
        // No account's email holds NUL (`Email::parse` refuses control characters), and
        // PostgreSQL cannot even compare with one: a lookup would be a 500.
        let user = if email.contains('\0') { None } else { self.storage.user_by_email(&email).await? };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        if !self.hasher.verify(password, hash).await? {
            metrics::counter!("parley_login_failures_total").increment(1);
            return Err(AppError::InvalidCredentials);
        }
        // A successful login is not a failure: hand both slots back.
        self.release_login(&email_key, email_ticket).await;
        self.release_login(&ip_key, ip_ticket).await;
        let user = user.ok_or(AppError::InvalidCredentials)?;
        self.start_session(user, Uuid::now_v7()).await
    }

    /// Every well-formed registration counts (it costs a hash, whether it then succeeds or
    /// not); rate limits fail open.
    async fn admit_registration(&self, client_ip: &str) -> AppResult<()> {
        if self.registrations_per_hour == 0 {
            return Ok(());
        }
        let key = format!("register:ip:{client_ip}");
        match self.shared.rate_limits.acquire(&key, self.registrations_per_hour, REGISTRATION_WINDOW).await {
            Ok(Admission::Admitted(_)) => Ok(()),
            Ok(Admission::Denied { retry_after }) => {
                metrics::counter!("parley_rate_limited_total", "scope" => "register").increment(1);
                Err(AppError::RateLimited { retry_after })
            }
            Err(err) => {
                tracing::warn!(error = %err, "registration rate limit unavailable, admitting");
                Ok(())
            }
        }
    }

    /// One password attempt under `key` ([`LOGIN_ATTEMPTS`] per [`LOGIN_WINDOW`]), refused
    /// with `RateLimited` (counted under `scope`); give the ticket back with
    /// [`Self::release_login`] when the password was right. Rate limits fail open: an
    /// unreachable Redis must not lock everybody out.
    pub async fn admit_login(&self, scope: &'static str, key: &str) -> AppResult<Option<Ticket>> {
        match self.shared.rate_limits.acquire(key, LOGIN_ATTEMPTS, LOGIN_WINDOW).await {
            Ok(Admission::Admitted(ticket)) => Ok(Some(ticket)),
            Ok(Admission::Denied { retry_after }) => {
                metrics::counter!("parley_rate_limited_total", "scope" => scope).increment(1);
                Err(AppError::RateLimited { retry_after })
            }
            Err(err) => {
                tracing::warn!(error = %err, "login rate limit unavailable, admitting");
                Ok(None)
            }
        }
    }

    pub async fn release_login(&self, key: &str, ticket: Option<Ticket>) {
        if let Some(ticket) = ticket
            && let Err(err) = self.shared.rate_limits.release(key, &ticket).await
        {
            tracing::warn!(error = %err, "could not release a login attempt");
        }
    }

    /// Rotates a refresh token. A token that was already rotated or revoked is a replay:
    /// the whole family is revoked and the caller must sign in again.
    pub async fn refresh(&self, refresh_token: &str) -> AppResult<Session> {
        let invalid = AppError::AuthFailed("invalid refresh token");
        let record = self.storage.refresh_token_by_hash(&hash_refresh_token(refresh_token)).await?.ok_or(invalid)?;
        let now = self.clock.now();
        if record.rotated_at.is_some() || record.revoked_at.is_some() {
            self.revoke_family_after_reuse(record.family_id, now).await?;
            return Err(AppError::AuthFailed("refresh token reuse detected; session revoked"));
        }
        if record.expires_at <= now {
            return Err(AppError::AuthFailed("refresh token expired"));
        }
        let user =
            self.storage.user_by_id(record.user_id).await?.ok_or(AppError::AuthFailed("invalid refresh token"))?;
        let (successor, token) = self.new_refresh_token(user.id, record.family_id, now);
        if !self.storage.rotate_refresh_token(record.id, &successor).await? {
            // Another request rotated it first: same treatment as a replay.
            self.revoke_family_after_reuse(record.family_id, now).await?;
            return Err(AppError::AuthFailed("refresh token reuse detected; session revoked"));
        }
        self.finish_session(user, record.family_id, token, successor.expires_at)
    }

    async fn revoke_family_after_reuse(&self, family: Uuid, now: DateTime<Utc>) -> AppResult<()> {
        let revoked = self.storage.revoke_refresh_family(family, now).await?;
        tracing::warn!(%family, revoked, "refresh token reuse: family revoked");
        self.fanout.session_revoked(family).await;
        Ok(())
    }

    /// Revokes the access token (until it would have expired) and the refresh family, and
    /// disconnects the session's sockets. Returns the user that was signed out.
    pub async fn logout(&self, access: Option<&AccessClaims>, refresh_token: Option<&str>) -> AppResult<Uuid> {
        let mut user = None;
        let mut sessions = Vec::new();
        if let Some(claims) = access {
            sessions.push(claims.sid);
            let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now);
            self.shared.revocations.revoke(&claims.jti, expires_at).await.map_err(|e| AppError::Internal(e.into()))?;
            // The session's refresh tokens go too, even when the client sent none of them.
            self.storage.revoke_refresh_family(claims.sid, self.clock.now()).await?;
            user = Some(claims.sub);
        }
        if let Some(token) = refresh_token
            && let Some(record) = self.storage.refresh_token_by_hash(&hash_refresh_token(token)).await?
            && user.is_none_or(|u| u == record.user_id)
        {
            self.storage.revoke_refresh_family(record.family_id, self.clock.now()).await?;
            user = Some(record.user_id);
            sessions.push(record.family_id);
        }
        sessions.dedup();
        for session in sessions {
            self.fanout.session_revoked(session).await;
        }
        user.ok_or(AppError::AuthFailed("no valid session to log out"))
    }

    /// The user of a token whose signature verifies (expired or revoked alike): who a
    /// connection claims to be, for the flood cool-down, before it is authenticated.
    pub fn token_user(&self, token: &str) -> Option<Uuid> {
        self.tokens.verify(token, i64::MIN).ok().map(|claims| claims.sub)
    }

    /// Verifies an access token and that it was not revoked. Used by REST and sockets.
    pub async fn authenticate(&self, token: &str) -> AppResult<AccessClaims> {
        let claims = self.tokens.verify(token, self.clock.now().timestamp())?;
        let revoked = self
            .shared
            .revocations
            .is_revoked(&claims.jti)
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("revocation check failed: {e}")))?;
        if revoked {
            return Err(AppError::TokenRevoked);
        }
        Ok(claims)
    }

    async fn start_session(&self, user: UserRecord, family: Uuid) -> AppResult<Session> {
        let (record, token) = self.new_refresh_token(user.id, family, self.clock.now());
        self.storage.insert_refresh_token(&record).await?;
        self.finish_session(user, family, token, record.expires_at)
    }

    fn new_refresh_token(&self, user: Uuid, family: Uuid, now: DateTime<Utc>) -> (NewRefreshToken, String) {
        let token = new_refresh_token();
        let ttl = chrono::Duration::from_std(self.refresh_ttl).unwrap_or(chrono::Duration::days(7));
        let record = NewRefreshToken {
            id: Uuid::now_v7(),
            user_id: user,
            family_id: family,
            token_hash: hash_refresh_token(&token),
            created_at: now,
            expires_at: now + ttl,
        };
        (record, token)
    }

    fn finish_session(
        &self,
        user: UserRecord,
        session: Uuid,
        refresh_token: String,
        refresh_expires_at: DateTime<Utc>,
    ) -> AppResult<Session> {
        let (access_token, access_claims) = self.tokens.issue(user.id, session, self.clock.now().timestamp())?;
        Ok(Session { user, access_token, access_claims, refresh_token, refresh_expires_at })
    }

    /// Deletes refresh tokens past their expiry; run periodically.
    pub async fn purge_expired(&self) -> Result<u64, StorageError> {
        self.storage.purge_expired_refresh_tokens(self.clock.now()).await
    }
}
