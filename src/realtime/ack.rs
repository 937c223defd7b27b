//! The ack envelope every client event gets when it asks for one: `{ok: true, data}` or
//! `{ok: false, error: {code, message, details?, retryAfterMs?}}`. The error object is the
//! REST error body ([`crate::error::ErrorBody`]), so a socket client learns which field was
//! wrong as a REST client does; `retryAfterMs` is the socket's own addition.

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{AppError, AppResult, ErrorBody};

/// An error ack's `error`.
#[derive(Serialize)]
struct AckError {
    #[serde(flatten)]
    body: ErrorBody,
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

/// A handler's output as the ack's `data`.
pub fn render(output: impl Serialize) -> AppResult<Value> {
    serde_json::to_value(output).map_err(|err| AppError::Internal(err.into()))
}

pub fn ok(data: Value) -> Value {
    json!({ "ok": true, "data": data })
}

/// Reports `err` (an internal one is logged; every one is counted) and renders it.
pub fn error(err: &AppError) -> Value {
    err.report();
    let retry_after_ms = match err {
        AppError::RateLimited { retry_after } => Some(retry_after.as_millis() as u64),
        _ => None,
    };
    json!({ "ok": false, "error": AckError { body: err.body(), retry_after_ms } })
}

pub fn envelope(result: AppResult<Value>) -> Value {
    match result {
        Ok(data) => ok(data),
        Err(err) => error(&err),
    }
}
