//! Reactions, pins and search over REST (SPEC §4.2). The socket gateway has `reaction:add` /
//! `reaction:remove` over the same services.

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path, Query};
use crate::{
    domain::{
        reactions::Emoji,
        search::SearchPage,
        views::{Pin, ReactionUpdate},
    },
    error::{AppResult, ErrorResponse},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_reaction, remove_reaction))
        .routes(routes!(pin, unpin))
        .routes(routes!(pins))
        .routes(routes!(search))
}

/// React to a message with one emoji (percent-encoded in the path). Reacting again with the
/// same emoji changes nothing. Participants get `reaction:updated`, each with their own `me`.
#[utoipa::path(put, path = "/api/conversations/{id}/messages/{messageId}/reactions/{emoji}", tag = "Messages",
    params(("id" = Uuid, Path), ("messageId" = Uuid, Path), ("emoji" = String, Path, description = "One emoji")),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The message's reactions now", body = ReactionUpdate),
        (status = 400, description = "Not one emoji, or the message has 20 different ones", body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 429, body = ErrorResponse)))]
async fn add_reaction(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message, emoji)): Path<(Uuid, Uuid, String)>,
) -> AppResult<Json<ReactionUpdate>> {
    let emoji = Emoji::parse(&emoji)?;
    Ok(Json(state.services.reactions.react(auth.id, id, message, &emoji, true).await?))
}

/// Take your reaction back. Removing one you did not make changes nothing.
#[utoipa::path(delete, path = "/api/conversations/{id}/messages/{messageId}/reactions/{emoji}", tag = "Messages",
    params(("id" = Uuid, Path), ("messageId" = Uuid, Path), ("emoji" = String, Path, description = "One emoji")),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The message's reactions now", body = ReactionUpdate),
        (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
async fn remove_reaction(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message, emoji)): Path<(Uuid, Uuid, String)>,
) -> AppResult<Json<ReactionUpdate>> {
    let emoji = Emoji::parse(&emoji)?;
    Ok(Json(state.services.reactions.react(auth.id, id, message, &emoji, false).await?))
}

/// Pin a message (owners and admins in a group; either person in a direct conversation), at
/// most 50 per conversation. Participants get `message:pinned`.
#[utoipa::path(put, path = "/api/conversations/{id}/pins/{messageId}", tag = "Messages",
    params(("id" = Uuid, Path), ("messageId" = Uuid, Path)), security(("bearerAuth" = [])),
    responses((status = 200, description = "The pin (pinning again changes nothing)", body = Pin),
        (status = 400, description = "The conversation has 50 pins", body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn pin(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(Uuid, Uuid)>,
) -> AppResult<Json<Pin>> {
    Ok(Json(state.services.pins.pin(auth.id, id, message).await?))
}

/// Unpin a message. Participants get `message:unpinned`.
#[utoipa::path(delete, path = "/api/conversations/{id}/pins/{messageId}", tag = "Messages",
    params(("id" = Uuid, Path), ("messageId" = Uuid, Path)), security(("bearerAuth" = [])),
    responses((status = 204, description = "Unpinned"), (status = 403, body = ErrorResponse),
        (status = 404, description = "Unknown conversation, or not pinned", body = ErrorResponse)))]
async fn unpin(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    state.services.pins.unpin(auth.id, id, message).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The conversation's pinned messages you can see, newest pin first.
#[utoipa::path(get, path = "/api/conversations/{id}/pins", tag = "Messages",
    params(("id" = Uuid, Path)), security(("bearerAuth" = [])),
    responses((status = 200, body = Vec<Pin>), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
async fn pins(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> AppResult<Json<Vec<Pin>>> {
    Ok(Json(state.services.pins.list(auth.id, id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct SearchParams {
    /// The words to find: each must start a word of the message (up to 200 characters).
    q: String,
    /// Only this conversation.
    conversation_id: Option<Uuid>,
    /// Opaque cursor from `nextCursor`.
    cursor: Option<String>,
    /// 1–100, default 50.
    limit: Option<i64>,
}

/// Full-text search of your messages, newest first: every word of `q` must start a word of
/// the message. Only your conversations, never deleted or cleared messages, nothing from before
/// you joined. `highlights` are `[start, end)` offsets in UTF-16 code units of `content`.
#[utoipa::path(get, path = "/api/search/messages", tag = "Messages",
    params(SearchParams), security(("bearerAuth" = [])),
    responses((status = 200, body = SearchPage), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn search(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<SearchParams>,
) -> AppResult<Json<SearchPage>> {
    let search = &state.services.search;
    let page =
        search.messages(auth.id, &params.q, params.conversation_id, params.cursor.as_deref(), params.limit).await?;
    Ok(Json(page))
}
