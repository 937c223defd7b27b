//! `/api/conversations`: list, create, detail, delete (for everyone, or hide for me), join,
//! leave.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path, Query};
use crate::{
    domain::{
        conversations::CreateConversation,
        input::Scope,
        views::{Conversation, ConversationDetail},
    },
    error::{AppResult, ErrorResponse},
    state::AppState,
    storage::models::{ConversationKind, Visibility},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(detail, delete))
        .routes(routes!(join))
        .routes(routes!(leave))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Opaque cursor from a previous page's `nextCursor`.
    cursor: Option<String>,
    /// 1–100, default 50.
    limit: Option<i64>,
    /// `true` lists archived conversations only; the default lists the others.
    archived: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationList {
    conversations: Vec<Conversation>,
    next_cursor: Option<String>,
    has_more: bool,
}

/// Your conversations by last activity, newest first.
#[utoipa::path(get, path = "/api/conversations", tag = "Conversations", params(ListParams),
    security(("bearerAuth" = [])),
    responses((status = 200, body = ConversationList), (status = 400, description = "Bad cursor or limit", body = ErrorResponse)))]
async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<ListParams>,
) -> AppResult<Json<ConversationList>> {
    let page = state
        .services
        .conversations
        .list(auth.id, params.archived.unwrap_or(false), params.cursor.as_deref(), params.limit)
        .await?;
    Ok(Json(ConversationList {
        has_more: page.next_cursor.is_some(),
        conversations: page.conversations,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    #[serde(rename = "type")]
    kind: ConversationKind,
    /// Required for groups; ignored for direct conversations.
    title: Option<String>,
    /// Groups only, default `private`: a `public` group can be joined by anyone who knows
    /// its id; a `private` one only by being added.
    visibility: Option<Visibility>,
    /// The other participants: exactly one for `direct`.
    participant_ids: Vec<Uuid>,
}

/// Create a group, or open the direct conversation with one user (200 with the existing one
/// when it already exists).
#[utoipa::path(post, path = "/api/conversations", tag = "Conversations", request_body = CreateRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Created", body = ConversationDetail),
        (status = 200, description = "The direct conversation already existed", body = ConversationDetail),
        (status = 400, body = ErrorResponse),
        (status = 403, description = "`BLOCKED`", body = ErrorResponse),
        (status = 404, description = "Unknown user", body = ErrorResponse)))]
async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<CreateRequest>,
) -> AppResult<(StatusCode, Json<ConversationDetail>)> {
    let input = CreateConversation {
        kind: body.kind,
        title: body.title,
        visibility: body.visibility,
        participant_ids: body.participant_ids,
    };
    let (detail, created) = state.services.conversations.create(auth.id, input).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(detail)))
}

/// A conversation with its participants.
#[utoipa::path(get, path = "/api/conversations/{id}", tag = "Conversations", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, body = ConversationDetail),
        (status = 403, description = "`NOT_IN_CONVERSATION`", body = ErrorResponse),
        (status = 404, description = "Unknown or deleted", body = ErrorResponse)))]
async fn detail(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<ConversationDetail>> {
    Ok(Json(state.services.conversations.detail(auth.id, id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// `everyone` (default; owners only) or `me` (hide until a new message arrives).
    scope: Option<String>,
}

/// Delete for everyone (owner), or hide for yourself with `?scope=me`.
#[utoipa::path(delete, path = "/api/conversations/{id}", tag = "Conversations",
    params(("id" = Uuid, Path), DeleteParams), security(("bearerAuth" = [])),
    responses((status = 204, description = "Deleted or hidden"),
        (status = 403, description = "Not the owner, or not a participant", body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(params): Query<DeleteParams>,
) -> AppResult<StatusCode> {
    match Scope::parse(params.scope.as_deref(), Scope::Everyone)? {
        Scope::Everyone => state.services.conversations.delete(auth.id, id).await?,
        Scope::Me => state.services.conversations.hide(auth.id, id).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Join a public group (a member joining again gets the detail, nothing changes).
#[utoipa::path(post, path = "/api/conversations/{id}/join", tag = "Conversations", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, body = ConversationDetail), (status = 400, description = "Not a group", body = ErrorResponse),
        (status = 403, description = "`FORBIDDEN`: a private group", body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
async fn join(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<ConversationDetail>> {
    Ok(Json(state.services.conversations.join(auth.id, id).await?))
}

/// Leave a group; the last owner leaving hands ownership to the longest-standing admin,
/// else member.
#[utoipa::path(delete, path = "/api/conversations/{id}/leave", tag = "Conversations", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 204, description = "Left"), (status = 400, description = "Not a group", body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn leave(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> AppResult<StatusCode> {
    state.services.conversations.leave(auth.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
