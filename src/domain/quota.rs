//! Per-key quotas shared by every replica (a token bucket in the shared state). They fail
//! open: an unreachable Redis admits rather than blocking chat.

use crate::{
    error::{AppError, AppResult},
    shared_state::{Admission, Quota, SharedState},
};

/// Takes one from `key`'s bucket; `RATE_LIMITED` (counted under `scope`) when it is empty.
pub async fn take(shared: &SharedState, key: &str, quota: Quota, scope: &'static str) -> AppResult<()> {
    match shared.rate_limits.take(key, quota).await {
        Ok(Admission::Admitted(_)) => Ok(()),
        Ok(Admission::Denied { retry_after }) => {
            metrics::counter!("parley_rate_limited_total", "scope" => scope).increment(1);
            Err(AppError::RateLimited { retry_after })
        }
        Err(err) => {
            tracing::warn!(error = %err, scope, "rate limit unavailable, admitting");
            Ok(())
        }
    }
}
