//! `/api/users`: profiles, search, settings (and the seed-000 `/api/v1` alias), follows and
//! blocks.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path, Query, present};
use crate::{
    domain::{
        time::Timestamp,
        users::ProfileChange,
        views::{User, UserSettings},
    },
    error::{AppResult, ErrorResponse},
    state::AppState,
    storage::models::{PresenceSharing, SettingsPatch},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_users))
        .routes(routes!(get_me, update_me))
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(update_settings_legacy))
        .routes(routes!(friends))
        .routes(routes!(blocks))
        .routes(routes!(get_user))
        .routes(routes!(follow, unfollow))
        .routes(routes!(block, unblock))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Prefix of a username or display name (1–64 characters, case-insensitive).
    query: String,
    /// 1–50, default 20.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    users: Vec<User>,
}

/// Search users by username or display-name prefix.
#[utoipa::path(get, path = "/api/users", tag = "Users", params(SearchParams),
    security(("bearerAuth" = [])),
    responses((status = 200, body = UserList), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse)))]
async fn search_users(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<SearchParams>,
) -> AppResult<Json<UserList>> {
    let found = state.services.users.search(auth.id, &params.query, params.limit).await?;
    Ok(Json(UserList { users: found.iter().map(|u| User::seen_by(u, auth.id)).collect() }))
}

/// A user's public profile.
#[utoipa::path(get, path = "/api/users/{id}", tag = "Users", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, body = User), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn get_user(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> AppResult<Json<User>> {
    let user = state.services.users.get(id).await?;
    Ok(Json(User::seen_by(&user, auth.id)))
}

/// The signed-in user (same as `GET /api/auth/me`).
#[utoipa::path(get, path = "/api/users/me", tag = "Users", security(("bearerAuth" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorResponse)))]
async fn get_me(state: State<AppState>, auth: AuthUser) -> AppResult<Json<User>> {
    super::auth::me(state, auth).await
}

/// Fields to change; absent fields stay, `avatarUrl: null` removes the avatar.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProfileRequest {
    display_name: Option<String>,
    username: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
}

/// Update the signed-in user's profile.
#[utoipa::path(patch, path = "/api/users/me", tag = "Users", request_body = UpdateProfileRequest,
    security(("bearerAuth" = [])),
    responses((status = 200, body = User), (status = 400, body = ErrorResponse), (status = 409, description = "`USERNAME_TAKEN`", body = ErrorResponse)))]
async fn update_me(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<UpdateProfileRequest>,
) -> AppResult<Json<User>> {
    let change =
        ProfileChange { display_name: body.display_name, username: body.username, avatar_url: body.avatar_url };
    let user = state.services.users.update_profile(auth.id, change).await?;
    Ok(Json(User::own(&user)))
}

/// The signed-in user's privacy settings.
#[utoipa::path(get, path = "/api/users/me/settings", tag = "Users", security(("bearerAuth" = [])),
    responses((status = 200, body = UserSettings), (status = 401, body = ErrorResponse)))]
async fn get_settings(State(state): State<AppState>, auth: AuthUser) -> AppResult<Json<UserSettings>> {
    let user = state.services.users.get(auth.id).await?;
    Ok(Json(UserSettings::from(&user)))
}

/// A settings change (absent fields stay as they are) and its [`SettingsPatch`]. The two
/// settings routes differ only in how the keys are spelled.
macro_rules! settings_request {
    ($(#[$meta:meta])* $name:ident) => {
        #[derive(Deserialize, ToSchema)]
        $(#[$meta])*
        pub struct $name {
            show_last_seen: Option<bool>,
            presence_sharing: Option<PresenceSharing>,
            read_receipts_enabled: Option<bool>,
        }

        impl From<$name> for SettingsPatch {
            fn from(body: $name) -> Self {
                Self {
                    show_last_seen: body.show_last_seen,
                    presence_sharing: body.presence_sharing,
                    read_receipts_enabled: body.read_receipts_enabled,
                }
            }
        }
    };
}

settings_request!(
    #[serde(rename_all = "camelCase")]
    UpdateSettingsRequest
);

/// Change privacy settings; absent fields stay as they are.
#[utoipa::path(patch, path = "/api/users/me/settings", tag = "Users", request_body = UpdateSettingsRequest,
    security(("bearerAuth" = [])),
    responses((status = 200, body = UserSettings), (status = 400, body = ErrorResponse)))]
async fn update_settings(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<UpdateSettingsRequest>,
) -> AppResult<Json<UserSettings>> {
    let user = state.services.users.update_settings(auth.id, body.into()).await?;
    Ok(Json(UserSettings::from(&user)))
}

settings_request!(
    /// Seed 000's snake_case settings request.
    LegacySettingsRequest
);

#[derive(Serialize, ToSchema)]
pub struct LegacySettings {
    show_last_seen: bool,
    presence_sharing: PresenceSharing,
    read_receipts_enabled: bool,
}

#[derive(Serialize, ToSchema)]
pub struct LegacySettingsResponse {
    success: bool,
    data: LegacySettings,
}

/// Legacy alias (seed 000) of `PATCH /api/users/me/settings`, in snake_case.
#[utoipa::path(patch, path = "/api/v1/users/me/settings", tag = "Legacy", request_body = LegacySettingsRequest,
    security(("bearerAuth" = [])),
    responses((status = 200, body = LegacySettingsResponse), (status = 400, body = ErrorResponse)))]
async fn update_settings_legacy(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<LegacySettingsRequest>,
) -> AppResult<Json<LegacySettingsResponse>> {
    let user = state.services.users.update_settings(auth.id, body.into()).await?;
    Ok(Json(LegacySettingsResponse {
        success: true,
        data: LegacySettings {
            show_last_seen: user.show_last_seen,
            presence_sharing: user.presence_sharing,
            read_receipts_enabled: user.read_receipts_enabled,
        },
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowResponse {
    user_id: Uuid,
    following: bool,
    /// Friends are mutual follows.
    is_friend: bool,
}

/// Follow a user; following each other makes you friends.
#[utoipa::path(post, path = "/api/users/{id}/follow", tag = "Friends", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, body = FollowResponse), (status = 400, body = ErrorResponse),
        (status = 403, description = "`BLOCKED`", body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn follow(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<FollowResponse>> {
    let relation = state.services.users.follow(auth.id, id).await?;
    Ok(Json(FollowResponse { user_id: id, following: true, is_friend: relation.is_friend() }))
}

/// Stop following a user (idempotent).
#[utoipa::path(delete, path = "/api/users/{id}/follow", tag = "Friends", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 204, description = "Not following any more"), (status = 404, body = ErrorResponse)))]
async fn unfollow(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> AppResult<StatusCode> {
    state.services.users.unfollow(auth.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct FriendList {
    friends: Vec<User>,
}

/// Users you follow who follow you back.
#[utoipa::path(get, path = "/api/users/me/friends", tag = "Friends", security(("bearerAuth" = [])),
    responses((status = 200, body = FriendList), (status = 401, body = ErrorResponse)))]
async fn friends(State(state): State<AppState>, auth: AuthUser) -> AppResult<Json<FriendList>> {
    let friends = state.services.users.friends(auth.id).await?;
    Ok(Json(FriendList { friends: friends.iter().map(|u| User::seen_by(u, auth.id)).collect() }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockEntry {
    user: User,
    blocked_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct BlockList {
    blocks: Vec<BlockEntry>,
}

/// Block a user: ends any follows between you, refuses their direct messages, hides your
/// presence and typing from them.
#[utoipa::path(post, path = "/api/users/{id}/block", tag = "Blocks", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 204, description = "Blocked"), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn block(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> AppResult<StatusCode> {
    state.services.users.set_blocked(auth.id, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unblock a user (idempotent).
#[utoipa::path(delete, path = "/api/users/{id}/block", tag = "Blocks", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 204, description = "Not blocked any more"), (status = 404, body = ErrorResponse)))]
async fn unblock(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> AppResult<StatusCode> {
    state.services.users.set_blocked(auth.id, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Users you have blocked, newest first.
#[utoipa::path(get, path = "/api/users/me/blocks", tag = "Blocks", security(("bearerAuth" = [])),
    responses((status = 200, body = BlockList), (status = 401, body = ErrorResponse)))]
async fn blocks(State(state): State<AppState>, auth: AuthUser) -> AppResult<Json<BlockList>> {
    let blocked = state.services.users.blocks(auth.id).await?;
    Ok(Json(BlockList {
        blocks: blocked
            .iter()
            .map(|b| BlockEntry { user: User::seen_by(&b.user, auth.id), blocked_at: b.blocked_at.into() })
            .collect(),
    }))
}
