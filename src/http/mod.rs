//! REST: one module per resource, each exposing `router()` with its utoipa-documented
//! handlers; this module assembles them with the cross-cutting layers (request ids, tracing,
//! metrics, CORS, body limit, panics → 500) and the SPEC-shaped 404/405 fallbacks.

pub mod auth;
pub mod conversations;
pub mod extract;
pub mod extras;
pub mod groups;
pub mod health;
pub mod keys;
pub mod messages;
pub mod presence;
pub mod push;
pub mod reads;
pub mod rooms;
pub mod uploads;
pub mod users;

use std::time::{Duration, Instant};

use axum::{
    Router,
    body::{Body, HttpBody},
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, Ref, ResponseBuilder,
        path::Operation,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::{config::Config, error::AppError, state::AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parley",
        description = "REST API of the Parley chat server. Realtime events (Socket.IO, namespace \
                       `/chat`) are described in docs/websocket-protocol.md.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorResponse)),
    tags(
        (name = "Authentication", description = "Accounts, sessions and tokens"),
        (name = "Users", description = "Profiles, search and privacy settings"),
        (name = "Friends", description = "Follows; friends are mutual follows"),
        (name = "Blocks", description = "Blocking other users"),
        (name = "Conversations", description = "Direct conversations and groups"),
        (name = "Groups", description = "Running a group: members, roles, invite links, mute"),
        (name = "Encryption", description = "The key directory: public keys per device, verification records"),
        (name = "Messages", description = "History, polling, the HTTP send fallback, edits and deletes"),
        (name = "Uploads", description = "Files and images: upload, thumbnails, download"),
        (name = "Push", description = "Web Push subscriptions: reaching users who are offline"),
        (name = "Presence", description = "Who is online, as privacy settings allow"),
        (name = "Read state", description = "Unread counts, receipts, read status, archive"),
        (name = "Legacy", description = "Routes kept for older clients"),
        (name = "Health", description = "Probes and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Documents the 401 of every route that requires a bearer token, so no handler can forget.
/// Runs on the assembled document (the `#[openapi]` modifiers run before routes are merged).
struct UnauthorizedResponses;

impl Modify for UnauthorizedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let requires_token = |op: &Operation| {
            op.security.as_ref().is_some_and(|alternatives| {
                !alternatives.is_empty()
                    && alternatives.iter().all(|requirement| {
                        serde_json::to_value(requirement).is_ok_and(|v| v.get("bearerAuth").is_some())
                    })
            })
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.patch, &mut item.delete];
            for op in operations.into_iter().flatten().filter(|op| requires_token(op)) {
                op.responses.responses.entry("401".into()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("`AUTH_FAILED` (missing, invalid or expired token) or `TOKEN_REVOKED`")
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorResponse"))).build(),
                        )
                        .build()
                        .into()
                });
            }
        }
    }
}

/// Every documented route, with the OpenAPI document generated from them.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(users::router())
        .merge(conversations::router())
        .merge(extras::router())
        .merge(groups::router())
        .merge(keys::router())
        .merge(messages::router())
        .merge(presence::router())
        .merge(push::router())
        .merge(reads::router())
        .merge(rooms::router())
        .merge(uploads::router())
        .merge(health::router())
        .split_for_parts();
    UnauthorizedResponses.modify(&mut openapi);
    (router, openapi)
}

/// The OpenAPI document as committed under `openapi/`.
pub fn openapi_json() -> String {
    let mut json = api().1.to_pretty_json().unwrap_or_default();
    json.push('\n');
    json
}

/// The REST application: routes, docs, 404/405, metrics, body limit, tracing, request ids.
/// [`with_edges`] adds what must also wrap the Socket.IO layer.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api();
    let config = state.config.clone();
    api.merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .fallback(|| async { AppError::NotFound("route") })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            BodyLimits {
                body: config.body_limit as u64,
                upload: config.uploads.max_bytes.saturating_add(uploads::MULTIPART_SLACK),
            },
            refuse_oversize,
        ))
        .layer(middleware::from_fn(record_http_metrics))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let request_id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// CORS and the panic guard, around everything (REST and Socket.IO long-polling alike).
pub fn with_edges(router: Router, config: &Config) -> Router {
    catch_panics(router.layer(cors(config)))
}

/// A panicking handler answers 500 (the SPEC error shape) instead of dropping the connection.
pub fn catch_panics(router: Router) -> Router {
    router.layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
        AppError::Internal(anyhow::anyhow!("handler panicked")).into_response()
    }))
}

fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<HeaderValue> = config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("x-request-id")])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// How much of a refused upload is read (and thrown away) after its 413, and for how long.
pub(crate) const OVERSIZE_DRAIN: u64 = 8 * 1024 * 1024;
pub(crate) const OVERSIZE_DRAIN_TIME: Duration = Duration::from_secs(10);

/// The largest bodies accepted: any route's, and an upload's.
#[derive(Clone, Copy)]
struct BodyLimits {
    body: u64,
    upload: u64,
}

/// A body whose `Content-Length` is over the limit (the upload route's own for uploads) gets
/// its 413 at once, before the handler runs, and is then read and thrown away (up to
/// [`OVERSIZE_DRAIN`] bytes, for at most [`OVERSIZE_DRAIN_TIME`]) while the answer goes out:
/// closing a connection with an upload still arriving makes the kernel reset it, and the
/// client may never see the 413. (A body without a length that turns out too big is refused
/// when it is read, as before.)
async fn refuse_oversize(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let uploading = request.method() == Method::POST
        && request.extensions().get::<MatchedPath>().is_some_and(|path| path.as_str() == uploads::UPLOADS_PATH);
    let limit = if uploading { limits.upload } else { limits.body };
    if declared.is_none_or(|length| length <= limit) {
        return next.run(request).await;
    }
    tokio::spawn(drain(request.into_body()));
    if uploading {
        return AppError::PayloadTooLarge("the upload is larger than UPLOAD_MAX_BYTES".into()).into_response();
    }
    AppError::body_too_large().into_response()
}

pub(crate) async fn drain(body: Body) {
    let mut body = std::pin::pin!(body);
    let mut read = 0u64;
    let _ = tokio::time::timeout(OVERSIZE_DRAIN_TIME, async {
        while read <= OVERSIZE_DRAIN {
            match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len() as u64),
                Some(Err(_)) | None => break,
            }
        }
    })
    .await;
}

/// `http_request_duration_seconds{method, route, status}`, labelled by the matched route
/// (never the raw path, which would explode the label set).
async fn record_http_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}
