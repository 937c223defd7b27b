//! What clients see: the wire shapes shared by REST responses and socket events.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::time::Timestamp;
use crate::storage::models::{PresenceSharing, UserRecord};

/// `User` from the SPEC: `email` only when you look at yourself.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub created_at: Timestamp,
}

impl User {
    /// The view `viewer` gets of `record`.
    pub fn seen_by(record: &UserRecord, viewer: Uuid) -> Self {
        Self {
            id: record.id,
            email: (record.id == viewer).then(|| record.email.clone()),
            username: record.username.clone(),
            display_name: record.display_name.clone(),
            avatar_url: record.avatar_url.clone(),
            created_at: record.created_at.into(),
        }
    }

    /// A user looking at themselves.
    pub fn own(record: &UserRecord) -> Self {
        Self::seen_by(record, record.id)
    }
}

/// Privacy settings of the calling user.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSettings {
    pub show_last_seen: bool,
    pub presence_sharing: PresenceSharing,
    pub read_receipts_enabled: bool,
}

impl From<&UserRecord> for UserSettings {
    fn from(r: &UserRecord) -> Self {
        Self {
            show_last_seen: r.show_last_seen,
            presence_sharing: r.presence_sharing,
            read_receipts_enabled: r.read_receipts_enabled,
        }
    }
}
