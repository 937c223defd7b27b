//! The ack envelope every client event gets when it asks for one:
//! `{ok: true, data}` or `{ok: false, error: {code, message}}`.

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::AppError;

pub fn ok(data: impl Serialize) -> Value {
    json!({ "ok": true, "data": data })
}

pub fn error(err: &AppError) -> Value {
    if let AppError::Internal(cause) = err {
        tracing::error!(error = ?cause, "internal error in a socket handler");
    }
    metrics::counter!("parley_errors_total", "code" => err.code()).increment(1);
    let mut error = json!({ "code": err.code(), "message": err.to_string() });
    if let AppError::RateLimited { retry_after } = err {
        error["retryAfterMs"] = json!(retry_after.as_millis() as u64);
    }
    json!({ "ok": false, "error": error })
}

pub fn envelope(result: &Result<Value, AppError>) -> Value {
    match result {
        Ok(data) => ok(data),
        Err(err) => error(err),
    }
}
