//! Presence over REST (privacy rules as for socket events) and HTTP typing (seed 003).

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path, Query};
use crate::{
    domain::views::PresenceView,
    error::{AppError, AppResult, ErrorResponse},
    shared_state::PresenceStatus,
    state::AppState,
};

/// At most this many users per bulk presence request.
pub const PRESENCE_BATCH_MAX: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(user_presence))
        .routes(routes!(bulk_presence))
        .routes(routes!(legacy_presence))
        .routes(routes!(typing))
}

/// A user's presence: `403` when they share it with friends only and you are not one;
/// `presenceSharing: nobody` and blocks look offline; `showLastSeen: false` hides `lastSeenAt`.
#[utoipa::path(get, path = "/api/users/{id}/presence", tag = "Presence", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, body = PresenceView), (status = 403, description = "Friends only", body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
async fn user_presence(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<PresenceView>> {
    Ok(Json(state.services.presence.view(auth.id, id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct BulkParams {
    /// Comma-separated user ids, at most 200.
    user_ids: String,
}

#[derive(Serialize, ToSchema)]
pub struct PresenceList {
    presences: Vec<PresenceView>,
}

fn parse_ids(raw: &str, field: &str) -> AppResult<Vec<Uuid>> {
    let ids: Vec<Uuid> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Uuid::parse_str(s).map_err(|_| AppError::invalid_field(field, "must be comma-separated UUIDs")))
        .collect::<AppResult<_>>()?;
    if ids.is_empty() || ids.len() > PRESENCE_BATCH_MAX {
        return Err(AppError::invalid_field(field, "must name 1 to 200 users"));
    }
    Ok(ids)
}

/// Several users' presence; users you may not see look offline, unknown ids are left out.
#[utoipa::path(get, path = "/api/presence", tag = "Presence", params(BulkParams), security(("bearerAuth" = [])),
    responses((status = 200, body = PresenceList), (status = 400, body = ErrorResponse)))]
async fn bulk_presence(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<BulkParams>,
) -> AppResult<Json<PresenceList>> {
    let ids = parse_ids(&params.user_ids, "userIds")?;
    Ok(Json(PresenceList { presences: state.services.presence.views(auth.id, &ids).await? }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LegacyParams {
    /// Comma-separated user ids, at most 200.
    user_ids: String,
}

#[derive(Serialize, ToSchema)]
pub struct LegacyPresence {
    user_id: Uuid,
    status: PresenceStatus,
    is_online: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_seen: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_active_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LegacyPresenceResponse {
    success: bool,
    data: Vec<LegacyPresence>,
}

/// Seed 000's presence shape, kept for older clients.
#[utoipa::path(get, path = "/api/v1/presence/users", tag = "Legacy", params(LegacyParams), security(("bearerAuth" = [])),
    responses((status = 200, body = LegacyPresenceResponse), (status = 400, body = ErrorResponse)))]
async fn legacy_presence(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<LegacyParams>,
) -> AppResult<Json<LegacyPresenceResponse>> {
    let ids = parse_ids(&params.user_ids, "user_ids")?;
    let data = state
        .services
        .presence
        .views(auth.id, &ids)
        .await?
        .into_iter()
        .map(|view| LegacyPresence {
            user_id: view.user_id,
            status: view.status,
            is_online: view.status != PresenceStatus::Offline,
            last_seen: view.last_seen_at.map(|t| t.to_wire()),
            last_active_at: view.last_activity.map(|t| t.to_wire()),
        })
        .collect();
    Ok(Json(LegacyPresenceResponse { success: true, data }))
}

/// `{isTyping}` (or seed 003's `{is_typing}`).
#[derive(Deserialize, ToSchema)]
pub struct TypingRequest {
    #[serde(rename = "isTyping", alias = "is_typing")]
    is_typing: bool,
}

/// HTTP typing indicator: the same service as the `typing:start` / `typing:stop` events.
#[utoipa::path(post, path = "/api/conversations/{id}/typing", tag = "Conversations", params(("id" = Uuid, Path)),
    request_body = TypingRequest, security(("bearerAuth" = [])),
    responses((status = 204, description = "Recorded"), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn typing(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<TypingRequest>,
) -> AppResult<StatusCode> {
    state.services.typing.set(auth.id, id, body.is_typing).await?;
    Ok(StatusCode::NO_CONTENT)
}
