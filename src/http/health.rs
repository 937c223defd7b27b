//! Liveness, readiness (database and Redis) and the Prometheus scrape endpoint.

use std::time::Duration;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// A dependency that does not answer within this is reported as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live)).routes(routes!(ready)).routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    #[schema(example = "alive")]
    status: &'static str,
    /// Which replica answered (random per process start).
    instance: uuid::Uuid,
}

/// Liveness probe: the process is up and serving.
#[utoipa::path(get, path = "/health/live", tag = "Health", responses((status = 200, body = Liveness)))]
async fn live(State(state): State<AppState>) -> axum::Json<Liveness> {
    axum::Json(Liveness { status: "alive", instance: state.platform.instance })
}

#[derive(Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// `ok` or `error`
    database: &'static str,
    /// `ok`, `error`, or `disabled` in embedded mode
    redis: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`
    status: &'static str,
    checks: ReadinessChecks,
}

/// Readiness probe: the database and (in production mode) Redis answer.
#[utoipa::path(get, path = "/health/ready", tag = "Health", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "A dependency is down", body = Readiness)))]
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (database, redis) = checks(&state).await;
    let healthy = database == "ok" && redis != "error";
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body =
        Readiness { status: if healthy { "ready" } else { "not_ready" }, checks: ReadinessChecks { database, redis } };
    (status, axum::Json(body))
}

/// The database's and Redis's state: `ok` or `error` (Redis: `disabled` without one).
async fn checks(state: &AppState) -> (&'static str, &'static str) {
    let database = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.platform.storage.ping()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness: database check failed");
                "error"
            }
            Err(_) => "error",
        }
    };
    let redis = async { tokio::time::timeout(CHECK_TIMEOUT, state.platform.shared.health()).await.unwrap_or("error") };
    // At once: a scrape or probe waits for the slower of the two, not their sum.
    tokio::join!(database, redis)
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "Health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Each scrape checks the dependencies, so the alert rules see a replica's readiness
    // (`parley_dependency_up`, 1 or 0; no Redis series without Redis).
    let (database, redis) = checks(&state).await;
    metrics::gauge!("parley_dependency_up", "dependency" => "database").set(f64::from(u8::from(database == "ok")));
    if redis != "disabled" {
        metrics::gauge!("parley_dependency_up", "dependency" => "redis").set(f64::from(u8::from(redis == "ok")));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.platform.metrics.render())
}
