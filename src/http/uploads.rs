//! Uploads (SPEC §4.3): `POST /api/uploads` streams a file in (multipart with one `file`
//! part, or the raw body), `GET /api/uploads/{id}` and its thumbnail stream it out, with
//! ranges, an ETag, and headers that keep an uploaded page or script from running in the
//! app's origin. What is checked and how the bytes are kept: `domain::uploads`.

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, FromRequest, Multipart, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::{AuthUser, Path, Query};
use crate::{
    domain::uploads::{ByteRange, Download, Part, Upload},
    error::{AppError, AppResult, ErrorResponse},
    state::AppState,
};

/// Where uploads are posted; the body limit of other routes does not apply to it.
pub const UPLOADS_PATH: &str = "/api/uploads";
/// What a multipart body may carry besides the file (boundaries, part headers, small fields).
pub const MULTIPART_SLACK: u64 = 64 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(DefaultBodyLimit::disable())
        .routes(routes!(download))
        .routes(routes!(thumbnail))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The file's name, for a raw body (a multipart part carries its own `filename`).
    name: Option<String>,
}

/// A multipart body: one part named `file`.
#[allow(dead_code)]
#[derive(ToSchema)]
struct MultipartUpload {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload a file: `multipart/form-data` with one `file` part, or the bytes as the body with
/// any `Content-Type`. The type is sniffed from the bytes (what the client declares is
/// ignored) and must be one of `UPLOAD_ALLOWED_TYPES`; images get their dimensions and a
/// thumbnail (at most 320 px). Attach it to a message with a `media` item `{uploadId}`;
/// uploads no message references are deleted after 24 hours.
#[utoipa::path(post, path = "/api/uploads", tag = "Uploads", params(UploadParams),
    request_body(content(
        (MultipartUpload = "multipart/form-data"),
        (Vec<u8> = "application/octet-stream"),
    )),
    security(("bearerAuth" = [])),
    responses((status = 201, description = "Stored", body = Upload),
        (status = 400, description = "No `file` part, an empty file, an image that does not decode, or the upload was cut", body = ErrorResponse),
        (status = 413, description = "Over `UPLOAD_MAX_BYTES`, over the quota (`UPLOAD_QUOTA_BYTES`), or an image over `UPLOAD_MAX_IMAGE_PIXELS`", body = ErrorResponse),
        (status = 415, description = "A type not in `UPLOAD_ALLOWED_TYPES`", body = ErrorResponse)))]
async fn upload(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<UploadParams>,
    request: axum::extract::Request,
) -> AppResult<(StatusCode, axum::Json<Upload>)> {
    let uploads = &state.services.uploads;
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let stored = if multipart {
        let mut form = Multipart::from_request(request, &state).await.map_err(|rejection| {
            AppError::UnsupportedMediaType(format!("a multipart body with a `file` part: {}", rejection.body_text()))
        })?;
        let outcome = loop {
            match form.next_field().await {
                Ok(Some(field)) if field.name() == Some("file") => {
                    let name = field.file_name().map(str::to_owned).or(params.name);
                    let mut field = std::pin::pin!(field);
                    break uploads.upload(auth.id, name, None, &mut field).await;
                }
                // Other parts are skipped (read and dropped).
                Ok(Some(_)) => continue,
                Ok(None) => break Err(AppError::invalid_field("file", "a multipart upload needs a `file` part")),
                Err(err) => break Err(AppError::validation(format!("the multipart body is malformed: {err}"))),
            }
        };
        if matches!(outcome, Err(AppError::PayloadTooLarge(_))) {
            tokio::spawn(drain_multipart(form));
        }
        outcome?
    } else {
        let mut body = request.into_body().into_data_stream();
        let outcome = uploads.upload(auth.id, params.name, declared, &mut body).await;
        if matches!(outcome, Err(AppError::PayloadTooLarge(_))) {
            tokio::spawn(super::drain(Body::from_stream(body)));
        }
        outcome?
    };
    Ok((StatusCode::CREATED, axum::Json(stored)))
}

/// What is left of a refused multipart upload is read and dropped as a refused body is (see
/// `super::drain`), so that the client, still sending, reads the 413 instead of a reset.
async fn drain_multipart(mut form: Multipart) {
    let _ = tokio::time::timeout(super::OVERSIZE_DRAIN_TIME, async {
        let mut read = 0;
        while let Ok(Some(mut field)) = form.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                read += chunk.len() as u64;
                if read >= super::OVERSIZE_DRAIN {
                    return;
                }
            }
        }
    })
    .await;
}

/// Download an upload: its uploader, or a participant of a conversation with a message that
/// references it (and that they can see); anyone else gets 404. Supports `Range` (one
/// range: 206) and `If-None-Match`. Images are served inline, everything else as an
/// attachment; with `X-Content-Type-Options: nosniff` and a sandboxing CSP either way.
#[utoipa::path(get, path = "/api/uploads/{id}", tag = "Uploads", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 400, body = ErrorResponse),
        (status = 404, description = "No such upload, or not yours to read", body = ErrorResponse),
        (status = 416, description = "The range starts past the end", body = ErrorResponse)))]
async fn download(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> AppResult<Response> {
    serve(&state, auth, id, Part::Original, &headers).await
}

/// An image upload's thumbnail (JPEG, or PNG for pictures with transparency; at most 320 px
/// on its longest side), for the same readers as the upload.
#[utoipa::path(get, path = "/api/uploads/{id}/thumbnail", tag = "Uploads", params(("id" = Uuid, Path)),
    security(("bearerAuth" = [])),
    responses((status = 200, description = "The thumbnail", content_type = "image/jpeg", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "image/jpeg", body = Vec<u8>),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 400, body = ErrorResponse),
        (status = 404, description = "No such upload, not yours to read, or not an image", body = ErrorResponse),
        (status = 416, description = "The range starts past the end", body = ErrorResponse)))]
async fn thumbnail(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> AppResult<Response> {
    serve(&state, auth, id, Part::Thumbnail, &headers).await
}

async fn serve(state: &AppState, auth: AuthUser, id: Uuid, part: Part, headers: &HeaderMap) -> AppResult<Response> {
    let not_modified = |etag: &str| {
        headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"))
    };
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let download = state
        .services
        .uploads
        .download(auth.id, id, part, |total| requested_range(range_header.as_deref(), total))
        .await?;
    if not_modified(&download.etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        common_headers(response.headers_mut(), &download);
        return Ok(response);
    }
    Ok(respond(download))
}

/// The one range a `Range` header asks for, checked against `total`; `None` for the whole
/// file (no header, one that does not parse, or several ranges: the whole file answers).
fn requested_range(header: Option<&str>, total: u64) -> AppResult<Option<ByteRange>> {
    let Some(header) = header else { return Ok(None) };
    let Ok(parsed) = http_range_header::parse_range_header(header) else { return Ok(None) };
    match parsed.validate(total) {
        Ok(ranges) if ranges.len() == 1 => Ok(Some(*ranges[0].start()..*ranges[0].end() + 1)),
        Ok(_) => Ok(None),
        Err(_) => Err(AppError::RangeNotSatisfiable { size: total }),
    }
}

fn respond(download: Download) -> Response {
    let partial = download.range.start != 0 || download.range.end != download.total;
    let length = download.range.end - download.range.start;
    let mut headers = HeaderMap::new();
    common_headers(&mut headers, &download);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if partial {
        let range = format!("bytes {}-{}/{}", download.range.start, download.range.end - 1, download.total);
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&range).expect("digits are a header value"));
    }
    let status = if partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let body = Body::from_stream(download.body);
    (status, headers, body).into_response()
}

/// What every answer about the file carries, a 304 included.
fn common_headers(headers: &mut HeaderMap, download: &Download) {
    let content_type = if download.content_type == "text/plain" {
        "text/plain; charset=utf-8".to_owned()
    } else {
        download.content_type.clone()
    };
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&download.etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    headers.insert(header::CONTENT_DISPOSITION, disposition(download));
}

/// `inline` for pictures, `attachment` for everything else, with the file's name.
fn disposition(download: &Download) -> HeaderValue {
    let kind = if download.inline { "inline" } else { "attachment" };
    let value = match &download.record.name {
        Some(name) => {
            let ascii: String = name
                .chars()
                .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
                .collect();
            let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
            format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
        }
        None => kind.to_owned(),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}
