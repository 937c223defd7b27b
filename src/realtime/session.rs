//! A socket's authenticated identity, and the check every event goes through.

use socketioxide::{adapter::Adapter, extract::SocketRef};
use uuid::Uuid;

use crate::{
    domain::tokens::{AccessClaims, is_expired},
    error::AppError,
    state::AppState,
};

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

/// Why a socket's event was refused before its handler ran.
pub enum Refusal {
    /// No session: the socket never authenticated.
    Missing,
    /// The session's access token expired (past the same leeway as at connect and `auth`):
    /// the client refreshes and sends `auth` to go on.
    Expired(Session),
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Missing => AppError::AuthFailed("authenticate first: send `auth {token}`"),
            Refusal::Expired(_) => AppError::AuthFailed("access token expired; send `auth` with a fresh token"),
        }
    }
}

/// The socket's session, refused when missing or past the access token's expiry.
pub fn current_session<A: Adapter>(socket: &SocketRef<A>, state: &AppState) -> Result<Session, Refusal> {
    let session = socket.extensions.get::<Session>().ok_or(Refusal::Missing)?;
    if is_expired(session.expires_at, state.clock.now().timestamp()) {
        return Err(Refusal::Expired(session));
    }
    Ok(session)
}
