//! Extractors whose rejections are `AppError`s, so axum's own failures (bad JSON, wrong
//! content type, oversize body, bad path or query) answer in the SPEC error shape.

use axum::{
    body::Bytes,
    extract::{
        FromRequest, FromRequestParts, Request,
        rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    domain::{json_text, tokens::AccessClaims},
    error::AppError,
    state::AppState,
    transport,
};

/// JSON body in, JSON body out. In: as `axum::Json` (an `application/json` or `…+json`
/// content type, then serde), except that a body whose text has half a surrogate pair is
/// refused naming the field ([`json_text::lone_surrogate`]) rather than as malformed JSON.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        if !is_json(request.headers()) {
            return Err(AppError::UnsupportedMediaType("expected `Content-Type: application/json`".into()));
        }
        let body = Bytes::from_request(request, state).await?;
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::JsonSyntaxError(rejection)) => {
                let text = std::str::from_utf8(&body).ok();
                match text.and_then(json_text::lone_surrogate) {
                    Some(path) => Err(json_text::lone_surrogate_error(&path)),
                    None => Err(JsonRejection::JsonSyntaxError(rejection).into()),
                }
            }
            Err(rejection) => Err(rejection.into()),
        }
    }
}

/// `application/json`, or a `+json` type such as `application/merge-patch+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

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
        let token = transport::bearer_token(&parts.headers).ok_or(AppError::AuthFailed("missing bearer token"))?;
        let claims = state.services.auth.authenticate(token).await?;
        Ok(Self { id: claims.sub, claims })
    }
}

/// The client's address: the peer, or behind a trusted proxy the last `X-Forwarded-For` hop
/// (the one our own proxy appended; earlier hops are client-controlled).
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ip = transport::client_ip(parts, state.config.trust_proxy);
        Ok(Self(ip.map_or_else(|| "unknown".into(), |ip| ip.to_string())))
    }
}

/// Distinguishes a field sent as `null` (`Some(None)`) from one left out (`None`): use with
/// `#[serde(default, deserialize_with = "present")]`.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// A JSON body that may be left out (empty or whitespace: `T::default()`).
pub fn parse_optional_body<T: for<'de> serde::Deserialize<'de> + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| AppError::validation(format!("invalid JSON body: {e}")))
}
