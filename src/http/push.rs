//! Web Push subscriptions (SPEC §4.4): the VAPID public key to subscribe with, and storing
//! and removing a browser's subscription.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AuthUser, Json};
use crate::{
    domain::push::{NewSubscription, Subscription},
    error::{AppError, AppResult, ErrorResponse},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(vapid_public_key)).routes(routes!(subscribe, unsubscribe, subscriptions))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VapidPublicKey {
    /// base64url of the server's P-256 public key (65 bytes): the `applicationServerKey` of
    /// `pushManager.subscribe()`.
    public_key: String,
}

/// The VAPID public key browsers subscribe with. No token needed.
#[utoipa::path(get, path = "/api/push/vapid-public-key", tag = "Push",
    responses((status = 200, body = VapidPublicKey)))]
async fn vapid_public_key(State(state): State<AppState>) -> Json<VapidPublicKey> {
    Json(VapidPublicKey { public_key: state.services.push.vapid_public_key().to_owned() })
}

#[derive(Deserialize, ToSchema)]
pub struct SubscriptionKeys {
    /// base64url of the browser's P-256 public key (65 bytes).
    p256dh: Option<String>,
    /// base64url of the 16-byte authentication secret.
    auth: Option<String>,
}

/// `PushSubscription.toJSON()` as the browser gives it, plus an optional label.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    /// The push service URL (`https` to a public address in production).
    endpoint: Option<String>,
    keys: Option<SubscriptionKeys>,
    /// Shown back in the list of subscriptions (at most 255 characters).
    user_agent: Option<String>,
}

/// Subscribe this browser to pushes: while you have no connected socket, messages reach
/// you as encrypted Web Pushes. The same endpoint again refreshes it (201 the first time,
/// 200 after).
#[utoipa::path(post, path = "/api/push/subscriptions", tag = "Push", request_body = SubscribeRequest,
    security(("bearerAuth" = [])),
    responses((status = 201, body = Subscription), (status = 200, description = "Refreshed", body = Subscription),
        (status = 400, description = "A bad field, an endpoint that is not https to a public address (production), or a 21st subscription", body = ErrorResponse)))]
async fn subscribe(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<SubscribeRequest>,
) -> AppResult<(StatusCode, Json<Subscription>)> {
    let endpoint = body.endpoint.ok_or_else(|| AppError::invalid_field("endpoint", "is required"))?;
    let keys = body.keys.ok_or_else(|| AppError::invalid_field("keys", "is required"))?;
    let p256dh = keys.p256dh.ok_or_else(|| AppError::invalid_field("keys.p256dh", "is required"))?;
    let secret = keys.auth.ok_or_else(|| AppError::invalid_field("keys.auth", "is required"))?;
    let policy = state.config.push_policy();
    let new = NewSubscription::parse(&endpoint, &p256dh, &secret, body.user_agent.as_deref(), policy)?;
    let (subscription, created) = state.services.push.subscribe(auth.id, new).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(subscription)))
}

#[derive(Deserialize, ToSchema)]
pub struct UnsubscribeRequest {
    endpoint: Option<String>,
}

/// Stop pushes to this browser.
#[utoipa::path(delete, path = "/api/push/subscriptions", tag = "Push", request_body = UnsubscribeRequest,
    security(("bearerAuth" = [])),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorResponse),
        (status = 404, description = "No such subscription of yours", body = ErrorResponse)))]
async fn unsubscribe(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<UnsubscribeRequest>,
) -> AppResult<StatusCode> {
    let endpoint = body.endpoint.ok_or_else(|| AppError::invalid_field("endpoint", "is required"))?;
    state.services.push.unsubscribe(auth.id, &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    subscriptions: Vec<Subscription>,
}

/// Your push subscriptions (the browsers that get pushes).
#[utoipa::path(get, path = "/api/push/subscriptions", tag = "Push", security(("bearerAuth" = [])),
    responses((status = 200, body = SubscriptionList)))]
async fn subscriptions(State(state): State<AppState>, auth: AuthUser) -> AppResult<Json<SubscriptionList>> {
    Ok(Json(SubscriptionList { subscriptions: state.services.push.subscriptions(auth.id).await? }))
}
