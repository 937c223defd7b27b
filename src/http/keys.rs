//! The encryption key directory (SPEC §4.5), under `/api/keys` and seed 004's aliases under
//! `/api/chat/encryption/`. Public keys only: what is checked is in `domain::public_key`.

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Json, Path};
use crate::{
    domain::{
        keys::{KeyUpload, RegisteredKey, UserKeys, Verification},
        public_key::parse_fingerprint,
    },
    error::{AppError, AppResult, ErrorResponse},
    state::AppState,
    storage::keys::KeyAlgorithm,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(register_alias))
        .routes(routes!(keys_of))
        .routes(routes!(keys_of_alias))
        .routes(routes!(delete))
        .routes(routes!(verify))
        .routes(routes!(verify_alias))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterKeyRequest {
    /// The device's own id (1–128 characters); registering again from it rotates its key.
    device_id: Option<String>,
    /// Base64 of the public key: 32 raw bytes (`x25519`, `ed25519`), a SEC1 point of 33 or
    /// 65 bytes (`p256`), or SubjectPublicKeyInfo DER of any of them. Private keys are refused.
    public_key: Option<String>,
    #[schema(value_type = KeyAlgorithm)]
    algorithm: Option<String>,
}

fn required<'a>(field: &str, value: &'a Option<String>) -> AppResult<&'a str> {
    value.as_deref().ok_or_else(|| AppError::invalid_field(field, "is required"))
}

impl RegisterKeyRequest {
    fn parse(&self) -> AppResult<KeyUpload> {
        let algorithm = KeyAlgorithm::try_from(required("algorithm", &self.algorithm)?.to_owned())
            .map_err(|_| AppError::invalid_field("algorithm", "must be x25519, p256 or ed25519"))?;
        KeyUpload::parse(required("deviceId", &self.device_id)?, algorithm, required("publicKey", &self.public_key)?)
    }
}

async fn register_key(
    state: AppState,
    auth: AuthUser,
    body: RegisterKeyRequest,
) -> AppResult<(StatusCode, Json<RegisteredKey>)> {
    let registered = state.services.keys.register(auth.id, body.parse()?).await?;
    let status = if registered.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(registered)))
}

/// Publish a device's public key (a new device, or the same `deviceId` again to rotate it).
/// Your contacts and your other devices get `keys:changed`.
#[utoipa::path(post, path = "/api/keys", tag = "Encryption", request_body = RegisterKeyRequest,
    security(("bearerAuth" = [])),
    responses((status = 201, description = "Stored (a rotation names the key it replaced)", body = RegisteredKey),
        (status = 200, description = "The device had this very key already", body = RegisteredKey),
        (status = 400, description = "A bad field, a private key, or a 21st device", body = ErrorResponse)))]
async fn register(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<RegisterKeyRequest>,
) -> AppResult<(StatusCode, Json<RegisteredKey>)> {
    register_key(state, auth, body).await
}

/// Seed 004's name for `POST /api/keys`.
#[utoipa::path(post, path = "/api/chat/encryption/keys", tag = "Encryption", request_body = RegisterKeyRequest,
    security(("bearerAuth" = [])),
    responses((status = 201, body = RegisteredKey), (status = 200, body = RegisteredKey),
        (status = 400, body = ErrorResponse)))]
async fn register_alias(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<RegisterKeyRequest>,
) -> AppResult<(StatusCode, Json<RegisteredKey>)> {
    register_key(state, auth, body).await
}

/// A user's active keys (one per device), with whether you verified each; on your own keys,
/// who verified them.
#[utoipa::path(get, path = "/api/users/{id}/keys", tag = "Encryption", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, body = UserKeys), (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
async fn keys_of(State(state): State<AppState>, auth: AuthUser, Path(id): Path<Uuid>) -> AppResult<Json<UserKeys>> {
    Ok(Json(state.services.keys.keys_of(auth.id, id).await?))
}

/// Seed 004's name for `GET /api/users/{id}/keys`.
#[utoipa::path(get, path = "/api/chat/encryption/keys/{user_id}", tag = "Encryption",
    params(("user_id" = Uuid, Path)), security(("bearerAuth" = [])),
    responses((status = 200, body = UserKeys), (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
async fn keys_of_alias(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<UserKeys>> {
    Ok(Json(state.services.keys.keys_of(auth.id, id).await?))
}

/// Delete one of your keys (a device you no longer use). Your contacts get `keys:changed`.
#[utoipa::path(delete, path = "/api/keys/{keyId}", tag = "Encryption", params(("keyId" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorResponse),
        (status = 404, description = "No such key of yours", body = ErrorResponse)))]
async fn delete(State(state): State<AppState>, auth: AuthUser, Path(key): Path<Uuid>) -> AppResult<StatusCode> {
    state.services.keys.delete(auth.id, key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyKeyRequest {
    /// Whose key you verified.
    user_id: Option<Uuid>,
    /// The key's fingerprint as you compared it (64 hex digits; `:` or spaces allowed).
    fingerprint: Option<String>,
}

async fn verify_key(state: AppState, auth: AuthUser, body: VerifyKeyRequest) -> AppResult<Json<Verification>> {
    let user = body.user_id.ok_or_else(|| AppError::invalid_field("userId", "is required"))?;
    let fingerprint = parse_fingerprint(required("fingerprint", &body.fingerprint)?)?;
    Ok(Json(state.services.keys.verify(auth.id, user, fingerprint).await?))
}

/// Record that you verified a user's key (compared its fingerprint out of band). Idempotent;
/// `GET /api/users/{id}/keys` then marks it `verifiedByMe`, and its owner sees you in
/// `verifiedBy`.
#[utoipa::path(post, path = "/api/keys/verify", tag = "Encryption", request_body = VerifyKeyRequest,
    security(("bearerAuth" = [])),
    responses((status = 200, body = Verification), (status = 400, body = ErrorResponse),
        (status = 404, description = "The user has no active key with this fingerprint", body = ErrorResponse)))]
async fn verify(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<VerifyKeyRequest>,
) -> AppResult<Json<Verification>> {
    verify_key(state, auth, body).await
}

/// Seed 004's name for `POST /api/keys/verify`.
#[utoipa::path(post, path = "/api/chat/encryption/verify", tag = "Encryption", request_body = VerifyKeyRequest,
    security(("bearerAuth" = [])),
    responses((status = 200, body = Verification), (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
async fn verify_alias(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<VerifyKeyRequest>,
) -> AppResult<Json<Verification>> {
    verify_key(state, auth, body).await
}
