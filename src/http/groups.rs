//! Running a group (SPEC §4.1): edit it, add and remove participants, change roles, invite
//! links, and mute for yourself.

use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path, RawBody, parse_optional_body, present};
use crate::{
    domain::{
        groups::{AddResult, GroupChange, Invite},
        views::{Conversation, ConversationDetail, Participant},
    },
    error::{AppResult, ErrorResponse},
    state::AppState,
    storage::models::{Role, Visibility},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update))
        .routes(routes!(add_participants))
        .routes(routes!(remove_participant, set_role))
        .routes(routes!(mute))
        .routes(routes!(create_invite, list_invites))
        .routes(routes!(revoke_invite))
        .routes(routes!(accept_invite))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateGroupRequest {
    /// 1–100 characters.
    title: Option<String>,
    /// At most 1,000 characters; `null` or blank clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// An http(s) URL; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
    visibility: Option<Visibility>,
}

/// Edit a group (owners and admins); every participant gets `conversation:updated`.
#[utoipa::path(patch, path = "/api/conversations/{id}", tag = "Groups", params(("id" = Uuid, Path)),
    request_body = UpdateGroupRequest, security(("bearerAuth" = [])),
    responses((status = 200, body = ConversationDetail),
        (status = 400, description = "Bad field, or not a group", body = ErrorResponse),
        (status = 403, description = "`NOT_IN_CONVERSATION`, or `FORBIDDEN` for members", body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateGroupRequest>,
) -> AppResult<Json<ConversationDetail>> {
    let change = GroupChange {
        title: body.title,
        description: body.description,
        avatar_url: body.avatar_url,
        visibility: body.visibility,
    };
    Ok(Json(state.services.groups.update(auth.id, id, change).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddParticipantsRequest {
    /// 1–100 users.
    user_ids: Vec<Uuid>,
}

/// Add participants (owners and admins). Their connected sockets join the conversation at
/// once, on every replica; they see history from now on. Users who do not exist, who are
/// blocked either way, who are members already, or beyond the group's 1,000 are skipped.
#[utoipa::path(post, path = "/api/conversations/{id}/participants", tag = "Groups", params(("id" = Uuid, Path)),
    request_body = AddParticipantsRequest, security(("bearerAuth" = [])),
    responses((status = 200, body = AddResult), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn add_participants(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<AddParticipantsRequest>,
) -> AppResult<Json<AddResult>> {
    Ok(Json(state.services.groups.add(auth.id, id, &body.user_ids).await?))
}

/// Remove a participant: the owner removes anyone, an admin members only; yourself is
/// leaving. Their sockets leave the conversation at once, on every replica.
#[utoipa::path(delete, path = "/api/conversations/{id}/participants/{userId}", tag = "Groups",
    params(("id" = Uuid, Path), ("userId" = Uuid, Path)), security(("bearerAuth" = [])),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, description = "Unknown conversation or not a participant", body = ErrorResponse)))]
async fn remove_participant(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    state.services.groups.remove(auth.id, id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct RoleRequest {
    /// `owner` hands ownership over: the old owner becomes an admin.
    role: Role,
}

/// Change a participant's role (the owner only); everyone gets `participant:updated`.
#[utoipa::path(patch, path = "/api/conversations/{id}/participants/{userId}", tag = "Groups",
    params(("id" = Uuid, Path), ("userId" = Uuid, Path)), request_body = RoleRequest, security(("bearerAuth" = [])),
    responses((status = 200, body = Participant), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn set_role(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<RoleRequest>,
) -> AppResult<Json<Participant>> {
    Ok(Json(state.services.groups.set_role(auth.id, id, user_id, body.role).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct MuteRequest {
    /// Muted until then (RFC 3339); `null`, or a time already past, unmutes. Required.
    #[serde(deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    until: Option<Option<DateTime<Utc>>>,
}

/// Mute a conversation for yourself: no push until then; it still counts unread.
#[utoipa::path(put, path = "/api/conversations/{id}/mute", tag = "Groups", params(("id" = Uuid, Path)),
    request_body = MuteRequest, security(("bearerAuth" = [])),
    responses((status = 200, body = Conversation), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn mute(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<MuteRequest>,
) -> AppResult<Json<Conversation>> {
    Ok(Json(state.services.groups.mute(auth.id, id, body.until.flatten()).await?))
}

/// The body may be left out; when present it may hold nothing else (a misspelt field is
/// refused, not ignored into an unlimited link).
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInviteRequest {
    /// 1 to 2,592,000 (30 days); 7 days when left out.
    expires_in_secs: Option<i64>,
    /// 1 to 100,000; unlimited when left out.
    max_uses: Option<i64>,
}

/// Create an invite link (owners and admins): a code of 128 random bits.
#[utoipa::path(post, path = "/api/conversations/{id}/invites", tag = "Groups", params(("id" = Uuid, Path)),
    request_body(content = Option<CreateInviteRequest>, description = "Optional"), security(("bearerAuth" = [])),
    responses((status = 201, body = Invite), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn create_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    RawBody(body): RawBody,
) -> AppResult<(StatusCode, Json<Invite>)> {
    let request: CreateInviteRequest = parse_optional_body(&body)?;
    let invite = state.services.groups.create_invite(auth.id, id, request.expires_in_secs, request.max_uses).await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

#[derive(Serialize, ToSchema)]
pub struct InviteList {
    invites: Vec<Invite>,
}

/// The group's invite links that still work (owners and admins).
#[utoipa::path(get, path = "/api/conversations/{id}/invites", tag = "Groups", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, body = InviteList), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn list_invites(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<InviteList>> {
    Ok(Json(InviteList { invites: state.services.groups.invites(auth.id, id).await? }))
}

/// Revoke an invite link (owners and admins of its group).
#[utoipa::path(delete, path = "/api/invites/{code}", tag = "Groups", params(("code" = String, Path)),
    security(("bearerAuth" = [])),
    responses((status = 204, description = "Revoked"), (status = 403, body = ErrorResponse),
        (status = 404, description = "Unknown code", body = ErrorResponse)))]
async fn revoke_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(code): Path<String>,
) -> AppResult<StatusCode> {
    state.services.groups.revoke_invite(auth.id, &code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Join a group through an invite link (at most 10 a minute per user).
#[utoipa::path(post, path = "/api/invites/{code}/accept", tag = "Groups", params(("code" = String, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, body = ConversationDetail),
        (status = 403, description = "The group is full", body = ErrorResponse),
        (status = 404, description = "Unknown code", body = ErrorResponse),
        (status = 410, description = "`INVITE_INVALID`: expired, used up or revoked", body = ErrorResponse),
        (status = 429, body = ErrorResponse)))]
async fn accept_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(code): Path<String>,
) -> AppResult<Json<ConversationDetail>> {
    Ok(Json(state.services.groups.accept_invite(auth.id, &code).await?))
}
