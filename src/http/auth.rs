//! `/api/auth`: register, login, refresh, logout, me.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AuthUser, ClientIp, Json, RawBody, parse_optional_body};
use crate::{
    domain::{
        auth::{RegisterInput, Session},
        views::User,
    },
    error::{AppError, AppResult, ErrorResponse},
    state::AppState,
};

pub const REFRESH_COOKIE: &str = "refresh_token";
const COOKIE_PATH: &str = "/api/auth";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    #[schema(format = Email, example = "ann@example.com")]
    email: String,
    #[schema(min_length = 8, example = "correct horse battery")]
    password: String,
    #[schema(min_length = 2, max_length = 64, example = "Ann Lee")]
    display_name: String,
    /// Defaults to a unique slug of the email's local part.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.]{2,31}$", example = "ann")]
    username: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// For clients that cannot use the cookie; when given, the rotated token comes back in
    /// the body too.
    refresh_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    user: User,
    access_token: String,
    /// Only when the refresh token was sent in the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl AuthResponse {
    fn from_session(session: &Session, with_refresh: bool) -> Self {
        Self {
            user: User::own(&session.user),
            access_token: session.access_token.clone(),
            refresh_token: with_refresh.then(|| session.refresh_token.clone()),
        }
    }
}

/// The `refresh_token` cookie: httpOnly, `SameSite=Strict`, scoped to `/api/auth`, `Secure`
/// in production.
fn auth_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build((REFRESH_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(COOKIE_PATH)
        .secure(state.config.is_production())
        .build()
}

fn refresh_cookie(state: &AppState, session: &Session) -> Cookie<'static> {
    let secs = (session.refresh_expires_at - state.clock.now()).num_seconds().max(0);
    let mut cookie = auth_cookie(state, session.refresh_token.clone());
    cookie.set_max_age(cookie::time::Duration::seconds(secs));
    cookie
}

fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = auth_cookie(state, String::new());
    cookie.make_removal();
    cookie
}

/// Create an account and sign in.
#[utoipa::path(post, path = "/api/auth/register", tag = "Authentication",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in; sets the `refresh_token` cookie", body = AuthResponse),
        (status = 400, description = "Invalid input", body = ErrorResponse),
        (status = 409, description = "`EMAIL_TAKEN` or `USERNAME_TAKEN`", body = ErrorResponse),
        (status = 429, description = "`RATE_LIMITED`: `REGISTRATIONS_PER_HOUR` from this address; see `Retry-After`", body = ErrorResponse),
    ))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Json(body): Json<RegisterRequest>,
) -> AppResult<impl IntoResponse> {
    let session = state
        .services
        .auth
        .register(
            RegisterInput {
                email: body.email,
                password: body.password,
                display_name: body.display_name,
                username: body.username,
            },
            &ip,
        )
        .await?;
    let jar = jar.add(refresh_cookie(&state, &session));
    Ok((StatusCode::CREATED, jar, Json(AuthResponse::from_session(&session, false))))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "Authentication",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; sets the `refresh_token` cookie", body = AuthResponse),
        (status = 401, description = "`INVALID_CREDENTIALS`", body = ErrorResponse),
        (status = 429, description = "`RATE_LIMITED`: 5 failures in 15 min for this email or address; see `Retry-After`", body = ErrorResponse),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Json(body): Json<LoginRequest>,
) -> AppResult<impl IntoResponse> {
    let session = state.services.auth.login(&body.email, &body.password, &ip).await?;
    let jar = jar.add(refresh_cookie(&state, &session));
    Ok((jar, Json(AuthResponse::from_session(&session, false))))
}

/// Exchange a refresh token (cookie, or body) for a new access token and a rotated refresh
/// token. Presenting an already-rotated token revokes its whole family.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "Authentication",
    request_body(content = Option<RefreshRequest>, description = "Optional; the cookie is used when absent"),
    responses(
        (status = 200, description = "Rotated; sets the new `refresh_token` cookie", body = AuthResponse),
        (status = 401, description = "`AUTH_FAILED`: unknown, expired, revoked or reused token", body = ErrorResponse),
    ))]
async fn refresh(
    State(state): State<AppState>,
    jar: CookieJar,
    RawBody(body): RawBody,
) -> AppResult<impl IntoResponse> {
    let from_body = parse_optional_body::<RefreshRequest>(&body)?.refresh_token;
    let token = from_body
        .clone()
        .or_else(|| jar.get(REFRESH_COOKIE).map(|c| c.value().to_owned()))
        .filter(|t| !t.is_empty())
        .ok_or(AppError::AuthFailed("missing refresh token"))?;
    let session = state.services.auth.refresh(&token).await?;
    let jar = jar.add(refresh_cookie(&state, &session));
    Ok((jar, Json(AuthResponse::from_session(&session, from_body.is_some()))))
}

/// Sign out: revokes the access token (until it expires) and the refresh token family, and
/// clears the cookie. Either credential is enough.
#[utoipa::path(post, path = "/api/auth/logout", tag = "Authentication",
    request_body(content = Option<RefreshRequest>, description = "Optional refresh token, for clients without the cookie"),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "No valid credential presented", body = ErrorResponse),
    ))]
async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<impl IntoResponse> {
    let access = match crate::transport::bearer_token(&headers) {
        Some(token) => state.services.auth.authenticate(token).await.ok(),
        None => None,
    };
    let refresh = parse_optional_body::<RefreshRequest>(&body)?
        .refresh_token
        .or_else(|| jar.get(REFRESH_COOKIE).map(|c| c.value().to_owned()));
    state.services.auth.logout(access.as_ref(), refresh.as_deref()).await?;
    Ok((StatusCode::NO_CONTENT, jar.add(removal_cookie(&state))))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/auth/me", tag = "Authentication",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, body = User),
        (status = 401, description = "`AUTH_FAILED` or `TOKEN_REVOKED`", body = ErrorResponse),
    ))]
pub async fn me(State(state): State<AppState>, auth: AuthUser) -> AppResult<Json<User>> {
    let user = state.services.users.get(auth.id).await.map_err(|err| match err {
        AppError::NotFound(_) => AppError::AuthFailed("this account no longer exists"),
        other => other,
    })?;
    Ok(Json(User::own(&user)))
}
