//! Rows as the storage layer reads and writes them. Domain code turns these into wire types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who may see a user's presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceSharing {
    Everyone,
    Friends,
    Nobody,
}

impl PresenceSharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Friends => "friends",
            Self::Nobody => "nobody",
        }
    }
}

impl TryFrom<String> for PresenceSharing {
    type Error = UnknownVariant;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "everyone" => Ok(Self::Everyone),
            "friends" => Ok(Self::Friends),
            "nobody" => Ok(Self::Nobody),
            _ => Err(UnknownVariant(value)),
        }
    }
}

/// A text column held a value the code does not know (a newer schema, or manual edits).
#[derive(Debug, thiserror::Error)]
#[error("unknown enum value `{0}` in the database")]
pub struct UnknownVariant(pub String);

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub password_hash: String,
    pub show_last_seen: bool,
    #[sqlx(try_from = "String")]
    pub presence_sharing: PresenceSharing,
    pub read_receipts_enabled: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// Profile fields to change; `None` leaves a field as it is. `avatar_url: Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<Option<String>>,
}

#[derive(Clone, Debug, Default)]
pub struct SettingsPatch {
    pub show_last_seen: Option<bool>,
    pub presence_sharing: Option<PresenceSharing>,
    pub read_receipts_enabled: Option<bool>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefreshTokenRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// How two users stand towards each other, seen from `viewer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relationship {
    pub following: bool,
    pub followed_by: bool,
    pub blocking: bool,
    pub blocked_by: bool,
}

impl Relationship {
    pub fn is_friend(&self) -> bool {
        self.following && self.followed_by
    }
}

#[derive(Clone, Debug)]
pub struct BlockedUser {
    pub user: UserRecord,
    pub blocked_at: DateTime<Utc>,
}
