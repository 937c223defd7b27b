//! Extractors whose rejections are `AppError`s, so axum's own failures (bad JSON, wrong
//! content type, oversize body, bad path or query) answer in the SPEC error shape.

use std::net::{IpAddr, SocketAddr};

use axum::{
    body::Bytes,
    extract::{
        ConnectInfo, FromRequest, FromRequestParts, Request,
        rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use uuid::Uuid;

use crate::{app::AppState, domain::tokens::AccessClaims, error::AppError};

/// JSON body in, JSON body out.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::body_too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::UnsupportedMediaType("expected `Content-Type: application/json`".into())
            }
            _ => match rejection {
                JsonRejection::JsonSyntaxError(_) => Self::validation("malformed JSON body"),
                other => Self::validation(other.body_text()),
            },
        }
    }
}

/// A raw body (for routes whose JSON body is optional), size-limited like every body.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        Ok(Self(Bytes::from_request(request, state).await?))
    }
}

impl From<BytesRejection> for AppError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::body_too_large(),
            _ => Self::validation(rejection.body_text()),
        }
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        invalid_part("invalid path parameter", rejection.body_text())
    }
}

fn invalid_part(message: &str, reason: String) -> AppError {
    AppError::Validation { message: message.into(), details: Some(serde_json::json!({ "reason": reason })) }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        invalid_part("invalid query string", rejection.body_text())
    }
}

/// The authenticated caller: a valid, unexpired, unrevoked access token.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub id: Uuid,
    pub claims: AccessClaims,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer_token(&parts.headers).ok_or(AppError::AuthFailed("missing bearer token"))?;
        let claims = state.auth.authenticate(token).await?;
        Ok(Self { id: claims.sub, claims })
    }
}

/// The token of an `Authorization: Bearer …` header, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// The client's address: the peer, or behind a trusted proxy the last `X-Forwarded-For` hop
/// (the one our own proxy appended; earlier hops are client-controlled).
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ip = client_ip(parts, state.config.trust_proxy);
        Ok(Self(ip.map_or_else(|| "unknown".into(), |ip| ip.to_string())))
    }
}

/// The address a request (or a Socket.IO handshake) comes from, as [`ClientIp`] describes; the
/// per-address connection limit of the socket gateway counts by it too.
pub fn client_ip(parts: &Parts, trust_proxy: bool) -> Option<IpAddr> {
    let forwarded = || {
        let header = parts.headers.get("x-forwarded-for")?.to_str().ok()?;
        header.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
    };
    trust_proxy
        .then(forwarded)
        .flatten()
        .or_else(|| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
}
