//! Read state over REST: unread counts, mark read / unread, archive, receipts, forwarding.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path};
use crate::{
    domain::{
        reads::{ReadOutcome, Receipts},
        views::{Conversation, Message},
    },
    error::{AppResult, ErrorResponse},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(unread_count))
        .routes(routes!(read_status))
        .routes(routes!(archive))
        .routes(routes!(receipts))
        .routes(routes!(forward))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationUnread {
    conversation_id: Uuid,
    unread_count: i64,
}

#[derive(Serialize, ToSchema)]
pub struct UnreadCounts {
    total: i64,
    /// Conversations with something unread.
    conversations: Vec<ConversationUnread>,
}

/// Unread messages in total and per conversation (messages from others after your read
/// watermark, not deleted, not cleared; a conversation marked unread counts at least 1).
#[utoipa::path(get, path = "/api/conversations/unread-count", tag = "Read state", security(("bearerAuth" = [])),
    responses((status = 200, body = UnreadCounts)))]
async fn unread_count(State(state): State<AppState>, auth: AuthUser) -> AppResult<Json<UnreadCounts>> {
    let (total, counts) = state.services.reads.unread(auth.id).await?;
    let conversations = counts
        .into_iter()
        .map(|c| ConversationUnread { conversation_id: c.conversation_id, unread_count: c.unread })
        .collect();
    Ok(Json(UnreadCounts { total, conversations }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadStatusRequest {
    /// `true`: read up to `messageId` (or everything); `false`: mark unread.
    read: bool,
    message_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadStatus {
    conversation_id: Uuid,
    seq: i64,
    #[schema(value_type = String, format = DateTime)]
    read_at: crate::domain::time::Timestamp,
    unread_count: i64,
}

impl From<ReadOutcome> for ReadStatus {
    fn from(o: ReadOutcome) -> Self {
        Self { conversation_id: o.conversation_id, seq: o.seq, read_at: o.read_at, unread_count: o.unread_count }
    }
}

/// Mark read (up to a message, or everything) or unread; your other devices get
/// `conversation:updated` and `unread:updated`.
#[utoipa::path(put, path = "/api/conversations/{id}/read-status", tag = "Read state", params(("id" = Uuid, Path)),
    request_body = ReadStatusRequest, security(("bearerAuth" = [])),
    responses((status = 200, body = ReadStatus), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
async fn read_status(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<ReadStatusRequest>,
) -> AppResult<Json<ReadStatus>> {
    Ok(Json(state.services.reads.set_read_status(auth.id, id, body.read, body.message_id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct ArchiveRequest {
    archived: bool,
}

/// Archive or unarchive for yourself (`GET /api/conversations?archived=true` lists them).
#[utoipa::path(put, path = "/api/conversations/{id}/archive", tag = "Read state", params(("id" = Uuid, Path)),
    request_body = ArchiveRequest, security(("bearerAuth" = [])),
    responses((status = 200, body = Conversation), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn archive(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<ArchiveRequest>,
) -> AppResult<Json<Conversation>> {
    Ok(Json(state.services.reads.archive(auth.id, id, body.archived).await?))
}

/// Who read a message and when (participants only; users hiding their reads are left out).
#[utoipa::path(get, path = "/api/messages/{id}/receipts", tag = "Read state", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, body = Receipts), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn receipts(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> AppResult<Json<Receipts>> {
    Ok(Json(state.services.reads.receipts(auth.id, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwardRequest {
    /// 1–10 conversations you are in.
    conversation_ids: Vec<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct ForwardedMessages {
    messages: Vec<Message>,
}

/// Forward a message to up to 10 of your conversations; the copies carry `forwardedFrom`
/// and the original's `forwardedCount` goes up.
#[utoipa::path(post, path = "/api/messages/{id}/forward", tag = "Messages", params(("id" = Uuid, Path)),
    request_body = ForwardRequest, security(("bearerAuth" = [])),
    responses((status = 201, body = ForwardedMessages),
        (status = 200, description = "A retry: every copy existed already", body = ForwardedMessages),
        (status = 400, body = ErrorResponse),
        (status = 403, description = "Not in the source or a target conversation", body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
async fn forward(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<ForwardRequest>,
) -> AppResult<(StatusCode, Json<ForwardedMessages>)> {
    let (messages, created) = state.services.messages.forward(auth.id, id, &body.conversation_ids).await?;
    let status = if created > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ForwardedMessages { messages })))
}
