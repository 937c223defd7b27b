//! Seed 003's Django-style routes, for the clients written against them: the HTTP typing
//! endpoint, the room list with `typing_user`, and polling for new messages by time. Same
//! services as the rest of the API; snake_case shapes as Django REST Framework serializes.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path, Query, RawBody, parse_optional_body};
use crate::{
    domain::{
        time::Timestamp,
        views::{Conversation, Message, TypingUser},
    },
    error::{AppError, AppResult, ErrorResponse},
    state::AppState,
    storage::models::ConversationKind,
};

/// Rooms one list returns (the most recently active first).
const ROOMS_MAX: i64 = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(typing)).routes(routes!(rooms)).routes(routes!(poll))
}

/// May be left out; when present it holds `is_typing` only (a misspelt field is refused).
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypingRequest {
    /// `false` when left out (seed 003: `request.data.get('is_typing', False)`).
    #[serde(default)]
    is_typing: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TypingResponse {
    success: bool,
    message: &'static str,
}

/// Seed 003: say you are typing in a room (or stopped). Participants only.
#[utoipa::path(post, path = "/api/chat/rooms/{id}/typing/", tag = "Legacy", params(("id" = Uuid, Path)),
    request_body(content = Option<TypingRequest>, description = "Optional"), security(("bearerAuth" = [])),
    responses((status = 200, body = TypingResponse), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn typing(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    RawBody(body): RawBody,
) -> AppResult<Json<TypingResponse>> {
    let request: TypingRequest = parse_optional_body(&body)?;
    state.services.typing.set(auth.id, id, request.is_typing).await?;
    Ok(Json(TypingResponse { success: true, message: "Typing status updated" }))
}

/// A user as Django shows one.
#[derive(Serialize, ToSchema)]
pub struct RoomUser {
    id: Uuid,
    username: String,
    first_name: String,
    last_name: String,
}

impl From<&TypingUser> for RoomUser {
    fn from(user: &TypingUser) -> Self {
        let (first_name, last_name) = split_name(&user.display_name);
        Self { id: user.user_id, username: user.username.clone(), first_name, last_name }
    }
}

/// Django has first and last names; Parley has one display name: the first word, and the rest.
fn split_name(display_name: &str) -> (String, String) {
    let name = display_name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, rest)) => (first.to_owned(), rest.trim().to_owned()),
        None => (name.to_owned(), String::new()),
    }
}

#[derive(Serialize, ToSchema)]
pub struct RoomMessage {
    id: Uuid,
    sender: Uuid,
    content: Option<String>,
    created_at: Timestamp,
}

/// A room as seed 003's `ChatRoomSerializer` shows it.
#[derive(Serialize, ToSchema)]
pub struct Room {
    id: Uuid,
    #[serde(rename = "type")]
    kind: ConversationKind,
    name: Option<String>,
    participants: Vec<Uuid>,
    last_message: Option<RoomMessage>,
    unread_count: i64,
    updated_at: Timestamp,
    created_at: Timestamp,
    /// Someone other than you typing in the last 5 s, or `null`.
    typing_user: Option<RoomUser>,
}

/// Seed 003: your rooms, each with `typing_user`.
#[utoipa::path(get, path = "/api/chat/rooms/", tag = "Legacy", security(("bearerAuth" = [])),
    responses((status = 200, body = [Room])))]
async fn rooms(State(state): State<AppState>, auth: AuthUser) -> AppResult<Json<Vec<Room>>> {
    let page = state.services.conversations.list(auth.id, false, None, Some(ROOMS_MAX)).await?;
    let mut rooms = Vec::with_capacity(page.conversations.len());
    for conversation in page.conversations {
        let participants = state.platform.storage.member_ids(conversation.id).await?;
        rooms.push(room(conversation, participants));
    }
    Ok(Json(rooms))
}

fn room(c: Conversation, participants: Vec<Uuid>) -> Room {
    Room {
        id: c.id,
        kind: c.kind,
        name: c.title,
        participants,
        last_message: c.last_message.map(|m| RoomMessage {
            id: m.id,
            sender: m.sender_id,
            content: m.content,
            created_at: m.created_at,
        }),
        unread_count: c.unread_count,
        updated_at: c.updated_at,
        created_at: c.created_at,
        typing_user: c.typing_users.first().map(RoomUser::from),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PollParams {
    room_id: Option<Uuid>,
    /// RFC 3339; pass the previous answer's `timestamp`. Left out: from the start.
    since: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PollResponse {
    /// Oldest first; at most 100 (poll again from `timestamp` for the rest).
    messages: Vec<Message>,
    /// The `since` of the next poll: nothing is missed or repeated between the two.
    timestamp: Timestamp,
}

/// Seed 003: new messages of a room since a time.
#[utoipa::path(get, path = "/api/chat/messages/poll/", tag = "Legacy", params(PollParams),
    security(("bearerAuth" = [])),
    responses((status = 200, body = PollResponse), (status = 400, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
async fn poll(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<PollParams>,
) -> AppResult<Json<PollResponse>> {
    let room = params.room_id.ok_or_else(|| AppError::invalid_field("room_id", "is required"))?;
    let (messages, timestamp) = state.services.messages.poll(auth.id, room, params.since.as_deref()).await?;
    Ok(Json(PollResponse { messages, timestamp }))
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn display_names_split_into_first_and_last() {
        assert_eq!(split_name("สมชาย มีสุข"), ("สมชาย".into(), "มีสุข".into()));
        assert_eq!(split_name("Ann"), ("Ann".into(), String::new()));
        assert_eq!(split_name(" Mary  Ann Lee "), ("Mary".into(), "Ann Lee".into()));
    }
}
