//! Per-key quotas shared by every replica (a token bucket in the shared state). They fail
//! open: an unreachable Redis admits rather than blocking chat.

use std::{net::IpAddr, time::Duration};

use uuid::Uuid;

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

/// What a flood costs beyond its connection: the user and the client address that flooded are
/// refused new connections (on either gateway, on every replica) for `FLOOD_COOLDOWN_SECS`,
/// so a client cannot reconnect around the per-socket budget. Fails open like the quotas.
#[derive(Clone)]
pub struct FloodCooldown {
    shared: SharedState,
    /// Zero: no cool-down.
    duration: Duration,
}

impl FloodCooldown {
    pub fn new(shared: SharedState, duration: Duration) -> Self {
        Self { shared, duration }
    }

    fn keys(user: Option<Uuid>, ip: Option<IpAddr>) -> Vec<String> {
        let user = user.map(|user| format!("flood:user:{user}"));
        user.into_iter().chain(ip.map(|ip| format!("flood:ip:{ip}"))).collect()
    }

    /// Starts the cool-down of whoever flooded.
    pub async fn penalize(&self, user: Option<Uuid>, ip: Option<IpAddr>) {
        if self.duration.is_zero() {
            return;
        }
        for key in Self::keys(user, ip) {
            if let Err(err) = self.shared.rate_limits.penalize(&key, self.duration).await {
                tracing::warn!(error = %err, "flood cool-down not recorded");
            }
        }
    }

    /// `RATE_LIMITED` (with the time left) while the user or the address cools down.
    pub async fn check(&self, user: Option<Uuid>, ip: Option<IpAddr>) -> AppResult<()> {
        if self.duration.is_zero() {
            return Ok(());
        }
        match self.shared.rate_limits.penalty(&Self::keys(user, ip)).await {
            Ok(None) => Ok(()),
            Ok(Some(retry_after)) => {
                metrics::counter!("parley_rate_limited_total", "scope" => "flood_cooldown").increment(1);
                Err(AppError::RateLimited { retry_after })
            }
            Err(err) => {
                tracing::warn!(error = %err, "flood cool-down unavailable, admitting");
                Ok(())
            }
        }
    }
}
