//! A socket's authenticated identity, and the check every event goes through.

use socketioxide::{adapter::Adapter, extract::SocketRef};
use uuid::Uuid;

use crate::{domain::tokens::AccessClaims, error::AppError, state::AppState};

/// The authenticated identity of a socket, kept in its extensions.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub expires_at: i64,
}

impl From<&AccessClaims> for Session {
    fn from(claims: &AccessClaims) -> Self {
        Self { user_id: claims.sub, session_id: claims.sid, expires_at: claims.exp }
    }
}

/// The socket's session, refused when missing or past the access token's expiry (the client
/// sends `auth` with a refreshed token to continue).
pub fn current_session<A: Adapter>(socket: &SocketRef<A>, state: &AppState) -> Result<Session, AppError> {
    let session =
        socket.extensions.get::<Session>().ok_or(AppError::AuthFailed("authenticate first: send `auth {token}`"))?;
    if session.expires_at <= state.clock.now().timestamp() {
        return Err(AppError::AuthFailed("access token expired; send `auth` with a fresh token"));
    }
    Ok(session)
}
