//! Messages over REST: history (and polling), the HTTP send fallback (same pipeline as the
//! socket path), edits and deletes.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path, Query};
use crate::{
    domain::{
        input::Scope,
        message_input::{MessageEdit, OutgoingMessage, RawMessage},
        messages::HistoryRequest,
        views::Message,
    },
    error::{AppError, AppResult, ErrorResponse},
    state::AppState,
    storage::models::ContentType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(history, send, clear)).routes(routes!(edit, delete))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct HistoryParams {
    /// Opaque cursor from `nextCursor` (newest-first paging).
    cursor: Option<String>,
    /// 1–100, default 50.
    limit: Option<i64>,
    /// Polling: messages with a greater `seq`, oldest first.
    after_seq: Option<i64>,
    /// Polling: messages created after this RFC 3339 time, oldest first.
    since: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    messages: Vec<Message>,
    next_cursor: Option<String>,
    has_more: bool,
}

/// History, newest first; or with `afterSeq`/`since`, what came after, oldest first.
/// Deleted messages are tombstones; messages you cleared are not returned.
#[utoipa::path(get, path = "/api/conversations/{id}/messages", tag = "Messages",
    params(("id" = Uuid, Path), HistoryParams), security(("bearerAuth" = [])),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn history(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(params): Query<HistoryParams>,
) -> AppResult<Json<MessagePage>> {
    let request = HistoryRequest {
        cursor: params.cursor.as_deref(),
        limit: params.limit,
        after_seq: params.after_seq,
        since: params.since.as_deref(),
    };
    let page = state.services.messages.history(auth.id, id, request).await?;
    Ok(Json(MessagePage { messages: page.messages, next_cursor: page.next_cursor, has_more: page.has_more }))
}

/// The message a client sends. Documents the body; the handler validates each field of the
/// raw JSON so every mistake gets a `VALIDATION_ERROR` naming the field.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// 1–4000 characters; may be left out (or empty) for an image, video or file message
    /// with `media`, and must be for an encrypted message.
    content: Option<String>,
    /// The client's id for this message: retries with the same id return the original.
    client_message_id: String,
    content_type: Option<ContentType>,
    /// Up to 10 `{url, type?, thumbnail?, width?, height?, size?, duration?, mimeType?, name?}`.
    #[schema(value_type = Option<Vec<Object>>)]
    media: Option<Value>,
    /// `true` for an end-to-end encrypted message: `encryptedContent` then replaces
    /// `content` (which must be absent or empty).
    is_encrypted: Option<bool>,
    /// The base64 ciphertext (at most 65,536 characters), stored and delivered untouched.
    encrypted_content: Option<String>,
    /// The message this one answers: one of this conversation that you can see.
    reply_to_id: Option<Uuid>,
}

/// Send a message over HTTP: same checks, storage, dedup and broadcasts as `message:send`.
#[utoipa::path(post, path = "/api/conversations/{id}/messages", tag = "Messages", params(("id" = Uuid, Path)),
    request_body = SendMessageRequest, security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Stored and broadcast", body = Message),
        (status = 200, description = "A retry: the original message", body = Message),
        (status = 400, body = ErrorResponse),
        (status = 403, description = "`NOT_IN_CONVERSATION` or `BLOCKED`", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 429, description = "`RATE_LIMITED`", body = ErrorResponse)))]
async fn send(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<Value>,
) -> AppResult<(StatusCode, Json<Message>)> {
    let object = body.as_object().ok_or_else(|| AppError::validation("the body must be a JSON object"))?;
    let conversation = Value::String(id.to_string());
    let message = OutgoingMessage::parse(RawMessage {
        conversation_id: Some(&conversation),
        content: object.get("content"),
        client_message_id: object.get("clientMessageId"),
        content_type: object.get("contentType").filter(|v| !v.is_null()),
        media: object.get("media").filter(|v| !v.is_null()),
        is_encrypted: object.get("isEncrypted").filter(|v| !v.is_null()),
        encrypted_content: object.get("encryptedContent").filter(|v| !v.is_null()),
        reply_to_id: object.get("replyToId").filter(|v| !v.is_null()),
    })?;
    let sent = state.services.messages.send(auth.id, message, None).await?;
    let status = if sent.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(sent.message)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClearParams {
    /// `me` (default) or `everyone` (owners and admins).
    scope: Option<String>,
}

/// Clear the history: for yourself, or with `?scope=everyone` for every participant
/// (owners and admins). Cleared messages leave history, replay and unread counts.
#[utoipa::path(delete, path = "/api/conversations/{id}/messages", tag = "Messages",
    params(("id" = Uuid, Path), ClearParams), security(("bearerAuth" = [])),
    responses((status = 204, description = "Cleared"), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn clear(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(params): Query<ClearParams>,
) -> AppResult<StatusCode> {
    let scope = Scope::parse(params.scope.as_deref(), Scope::Me)?;
    state.services.reads.clear(auth.id, id, scope).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EditMessageRequest {
    /// 1–4000 characters (a message that is not encrypted).
    content: Option<String>,
    /// The new base64 ciphertext (an encrypted message).
    encrypted_content: Option<String>,
}

/// Edit your own message; participants get `message:updated`.
#[utoipa::path(patch, path = "/api/conversations/{id}/messages/{messageId}", tag = "Messages",
    params(("id" = Uuid, Path), ("messageId" = Uuid, Path)), request_body = EditMessageRequest,
    security(("bearerAuth" = [])),
    responses((status = 200, body = Message), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn edit(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(Uuid, Uuid)>,
    Json(body): Json<EditMessageRequest>,
) -> AppResult<Json<Message>> {
    let edit = MessageEdit::parse(body.content.as_deref(), body.encrypted_content.as_deref())?;
    Ok(Json(state.services.messages.edit(auth.id, id, message, edit).await?))
}

/// Delete a message (yours, or any as owner/admin): it becomes a tombstone; participants
/// get `message:deleted`.
#[utoipa::path(delete, path = "/api/conversations/{id}/messages/{messageId}", tag = "Messages",
    params(("id" = Uuid, Path), ("messageId" = Uuid, Path)), security(("bearerAuth" = [])),
    responses((status = 200, description = "The tombstone", body = Message),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(Uuid, Uuid)>,
) -> AppResult<Json<Message>> {
    Ok(Json(state.services.messages.delete(auth.id, id, message).await?))
}
