//! The one error type every client-facing failure becomes. Each variant has a stable wire
//! `code`; [`AppError::body`] renders it as the SPEC error body, the one shape of REST
//! errors and of socket error acks alike. [`AppError::report`] logs internal causes (never
//! sent to clients) and counts every error, once, whichever edge renders it.

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::Value;

use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    Validation { message: String, details: Option<Value> },
    /// Missing, malformed, forged or expired credentials.
    #[error("{0}")]
    AuthFailed(&'static str),
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("this token has been revoked")]
    TokenRevoked,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("you are not a participant of this conversation")]
    NotInConversation,
    #[error("{0}")]
    Blocked(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An invite link that expired, was used up or was revoked.
    #[error("this invite link is no longer valid")]
    InviteInvalid,
    #[error("this email is already registered")]
    EmailTaken,
    #[error("this username is already taken")]
    UsernameTaken,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A `Range` that starts past the end of a `size`-byte file.
    #[error("the requested range is not within the file's {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many requests, retry later")]
    RateLimited { retry_after: Duration },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// A REST request body over `BODY_LIMIT_BYTES`.
    pub fn body_too_large() -> Self {
        Self::PayloadTooLarge("request body too large".into())
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation { message: message.into(), details: None }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Validation {
            details: Some(serde_json::json!({ "field": field, "reason": message })),
            message: format!("{field}: {message}"),
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "VALIDATION_ERROR",
            Self::AuthFailed(_) => "AUTH_FAILED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::TokenRevoked => "TOKEN_REVOKED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotInConversation => "NOT_IN_CONVERSATION",
            Self::Blocked(_) => "BLOCKED",
            Self::NotFound(_) => "NOT_FOUND",
            Self::InviteInvalid => "INVITE_INVALID",
            Self::EmailTaken => "EMAIL_TAKEN",
            Self::UsernameTaken => "USERNAME_TAKEN",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::RangeNotSatisfiable { .. } => "RANGE_NOT_SATISFIABLE",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Internal(_) => "INTERNAL",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation { .. } => StatusCode::BAD_REQUEST,
            Self::AuthFailed(_) | Self::InvalidCredentials | Self::TokenRevoked => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::NotInConversation | Self::Blocked(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::InviteInvalid => StatusCode::GONE,
            Self::EmailTaken | Self::UsernameTaken => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body clients see: `{code, message, details?}`. A 500 says nothing more.
    pub fn body(&self) -> ErrorBody {
        let details = match self {
            Self::Validation { details, .. } => details.clone(),
            Self::RateLimited { retry_after } => {
                Some(serde_json::json!({ "retryAfterSecs": retry_after_secs(*retry_after) }))
            }
            _ => None,
        };
        ErrorBody { code: self.code(), message: self.to_string(), details }
    }
}

fn retry_after_secs(retry_after: Duration) -> u64 {
    retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
}

/// The inner object of the SPEC error shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[schema(example = "VALIDATION_ERROR")]
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// `{"error": {...}}`, the one error shape of every REST route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

impl AppError {
    /// Logs an internal cause and counts the error by code. Each edge (a REST response, a
    /// socket ack) calls it once for the error it renders.
    pub fn report(&self) {
        if let Self::Internal(cause) = self {
            tracing::error!(error = ?cause, "internal error");
        }
        metrics::counter!("parley_errors_total", "code" => self.code()).increment(1);
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.report();
        let status = self.status();
        let mut response = (status, axum::Json(ErrorResponse { error: self.body() })).into_response();
        let extra = match self {
            Self::RateLimited { retry_after } => Some((header::RETRY_AFTER, retry_after_secs(retry_after).to_string())),
            Self::RangeNotSatisfiable { size } => Some((header::CONTENT_RANGE, format!("bytes */{size}"))),
            _ => None,
        };
        if let Some((name, value)) = extra
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<StorageError> for AppError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound(what) => Self::NotFound(what),
            StorageError::Conflict(constraint) if constraint.contains("email") => Self::EmailTaken,
            StorageError::Conflict(constraint) if constraint.contains("username") => Self::UsernameTaken,
            other => Self::Internal(other.into()),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
