//! Uploads (SPEC §4.3, seed 002 §2.1: "media files are uploaded via REST first, then URLs
//! sent via WebSocket").
//!
//! The bytes stream into the object store (local files or S3, through `object_store`, one
//! code path for both) in parts, hashed on the way; nothing is visible until the last part is
//! in and the row is written. The type is sniffed from the first bytes (`infer`), never taken
//! from the client, and checked against the allow-list before anything is stored. Images get
//! their dimensions and a thumbnail, decoded off the runtime (`spawn_blocking`, a few at a
//! time) after their header's pixel count is checked, so a decompression bomb is refused
//! before it is decoded.
//!
//! Whatever ends an upload early (too big, the quota, the client gone, the handler dropped)
//! leaves nothing behind: [`Pending`] aborts the multipart write or deletes what was written.
//!
//! Who may read an upload is the storage's `readable_upload`: the uploader, and participants
//! of a conversation with a visible message that references it. Everyone else gets 404.

use std::{io::Cursor, ops::Range, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream::BoxStream};
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart, path::Path as ObjectPath};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Deps, time::Timestamp};
use crate::{
    clock::SharedClock,
    config::{UploadConfig, UploadStore},
    error::{AppError, AppResult},
    storage::{
        Storage,
        models::media_upload_ids,
        uploads::{UploadInsert, UploadRecord},
    },
};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX: u32 = 320;
/// Bytes read before the type is decided (enough for every signature `infer` knows).
const SNIFF_BYTES: usize = 8 * 1024;
/// Parts written to a local directory: small, so an upload holds little memory.
const LOCAL_PART: usize = 1024 * 1024;
/// Parts sent to S3: its smallest part (but the last) is 5 MiB.
const S3_PART: usize = 5 * 1024 * 1024;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Uploads no message references are deleted after this long.
pub const UNATTACHED_TTL: Duration = Duration::from_secs(24 * 3600);
/// Rows one cleanup statement takes.
const SWEEP_BATCH: i64 = 100;
/// The longest file name kept.
const NAME_MAX_CHARS: usize = 255;
/// Image types that are decoded for dimensions and a thumbnail, and served inline.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// An upload, as its uploader (and readers) see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    pub id: Uuid,
    /// Where to `GET` it (with the bearer token): `/api/uploads/{id}`.
    pub url: String,
    /// Sniffed from the bytes.
    pub content_type: String,
    pub size: i64,
    /// Lower-case hex SHA-256 of the bytes (also the download's `ETag`).
    pub sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<i32>,
    /// Images: a thumbnail of at most 320 px on its longest side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    pub created_at: Timestamp,
}

impl From<&UploadRecord> for Upload {
    fn from(record: &UploadRecord) -> Self {
        Self {
            id: record.id,
            url: upload_url(record.id),
            content_type: record.content_type.clone(),
            size: record.size,
            sha256: record.sha256.clone(),
            name: record.name.clone(),
            width: record.width,
            height: record.height,
            thumbnail_url: record.thumbnail_type.as_ref().map(|_| thumbnail_url(record.id)),
            created_at: record.created_at.into(),
        }
    }
}

pub fn upload_url(id: Uuid) -> String {
    format!("/api/uploads/{id}")
}

pub fn thumbnail_url(id: Uuid) -> String {
    format!("/api/uploads/{id}/thumbnail")
}

/// The file itself or its thumbnail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Original,
    Thumbnail,
}

/// A download under way: what it is, and its bytes (all, or the range asked for).
pub struct Download {
    pub record: UploadRecord,
    pub content_type: String,
    /// The whole object's length.
    pub total: u64,
    /// The bytes sent; the whole object unless a range was asked for.
    pub range: Range<u64>,
    /// An ETag for this part: the SHA-256 of the file (a thumbnail's has a suffix).
    pub etag: String,
    /// Served inline (a picture) rather than as an attachment.
    pub inline: bool,
    pub body: BoxStream<'static, Result<Bytes, object_store::Error>>,
}

/// A byte range as a request asked for it (already checked against the length).
pub type ByteRange = Range<u64>;

pub struct UploadService {
    storage: Arc<dyn Storage>,
    store: Arc<dyn ObjectStore>,
    clock: SharedClock,
    max_bytes: u64,
    quota_bytes: u64,
    allowed_types: Vec<String>,
    max_image_pixels: u64,
    part_size: usize,
    /// Images decoded at once (each may take up to `max_image_pixels` × 4 bytes).
    decoding: Arc<Semaphore>,
}

impl UploadService {
    pub fn new(deps: &Deps, config: &UploadConfig) -> anyhow::Result<Self> {
        let (store, part_size) = open_store(&config.store)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            storage: deps.storage.clone(),
            store,
            clock: deps.clock.clone(),
            max_bytes: config.max_bytes,
            quota_bytes: config.quota_bytes,
            allowed_types: config.allowed_types.clone(),
            max_image_pixels: config.max_image_pixels,
            part_size,
            decoding: Arc::new(Semaphore::new(cores.clamp(1, 4))),
        })
    }

    /// Stores what `body` streams as an upload of `owner`. `declared` is the length the client
    /// announced, if any (a body longer than the limit is refused before it is read).
    pub async fn upload<S, E>(
        &self,
        owner: Uuid,
        name: Option<String>,
        declared: Option<u64>,
        body: &mut S,
    ) -> AppResult<Upload>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let outcome = self.receive(owner, name, declared, body).await;
        let label = match &outcome {
            Ok(_) => "stored",
            Err(AppError::PayloadTooLarge(_)) => "too_large",
            Err(AppError::UnsupportedMediaType(_)) => "refused_type",
            Err(AppError::Validation { .. }) => "invalid",
            Err(_) => "failed",
        };
        metrics::counter!("parley_uploads_total", "outcome" => label).increment(1);
        outcome
    }

    async fn receive<S, E>(
        &self,
        owner: Uuid,
        name: Option<String>,
        declared: Option<u64>,
        body: &mut S,
    ) -> AppResult<Upload>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let name = clean_name(name)?;
        let used = self.storage.upload_usage(owner).await?;
        let left = self.quota_bytes.saturating_sub(u64::try_from(used).unwrap_or(0));
        if left == 0 {
            return Err(self.over_quota(used));
        }
        let limit = self.max_bytes.min(left);
        let too_big = |limit: u64| {
            if limit < self.max_bytes {
                self.over_quota(used)
            } else {
                AppError::PayloadTooLarge(format!("an upload may be at most {} bytes", self.max_bytes))
            }
        };
        if declared.is_some_and(|length| length > limit) {
            return Err(too_big(limit));
        }
        // The first bytes decide the type before anything is stored.
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut rest: Option<Bytes> = None;
        while head.len() < SNIFF_BYTES {
            match body.next().await {
                None => break,
                Some(Err(err)) => return Err(interrupted(&err)),
                Some(Ok(chunk)) => {
                    let room = SNIFF_BYTES - head.len();
                    if chunk.len() > room {
                        head.extend_from_slice(&chunk[..room]);
                        rest = Some(chunk.slice(room..));
                    } else {
                        head.extend_from_slice(&chunk);
                    }
                }
            }
        }
        if head.is_empty() {
            return Err(AppError::invalid_field("file", "is empty"));
        }
        let content_type = sniff(&head);
        if !type_allowed(&self.allowed_types, &content_type) {
            return Err(AppError::UnsupportedMediaType(format!("files of type {content_type} are not accepted")));
        }
        let id = Uuid::now_v7();
        let path = object_path(id, Part::Original);
        let writer = WriteMultipart::new_with_chunk_size(
            self.store.put_multipart(&path).await.map_err(store_error)?,
            self.part_size,
        );
        let mut pending = Pending::new(self.store.clone(), writer);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut chunk = Some(Bytes::from(head));
        loop {
            let bytes = match chunk.take().or_else(|| rest.take()) {
                Some(bytes) => bytes,
                None => match body.next().await {
                    None => break,
                    Some(Err(err)) => return Err(interrupted(&err)),
                    Some(Ok(bytes)) => bytes,
                },
            };
            size += bytes.len() as u64;
            if size > limit {
                return Err(too_big(limit));
            }
            hasher.update(&bytes);
            pending.write(bytes).await?;
        }
        pending.finish(path).await?;
        let sha256 = hex(&hasher.finalize());
        let mut record = UploadRecord {
            id,
            owner_id: owner,
            content_type,
            size: size as i64,
            sha256,
            name,
            width: None,
            height: None,
            thumbnail_type: None,
            thumbnail_size: None,
            created_at: self.clock.now(),
            attached_at: None,
        };
        if IMAGE_TYPES.contains(&record.content_type.as_str()) {
            let picture = self.picture(id, &record.content_type).await?;
            record.width = Some(picture.width as i32);
            record.height = Some(picture.height as i32);
            record.thumbnail_type = Some(picture.thumbnail_type.to_owned());
            record.thumbnail_size = Some(picture.thumbnail.len() as i64);
            let thumbnail = object_path(id, Part::Thumbnail);
            self.store.put(&thumbnail, PutPayload::from(picture.thumbnail)).await.map_err(store_error)?;
            pending.written(thumbnail);
        }
        match self.storage.insert_upload(&record, i64::try_from(self.quota_bytes).unwrap_or(i64::MAX)).await? {
            UploadInsert::Stored => {
                pending.keep();
                metrics::counter!("parley_upload_bytes_total").increment(size);
                Ok(Upload::from(&record))
            }
            // Another upload of the same user took the room meanwhile.
            UploadInsert::OverQuota { used } => Err(self.over_quota(used)),
        }
    }

    fn over_quota(&self, used: i64) -> AppError {
        AppError::PayloadTooLarge(format!(
            "upload quota exceeded: your uploads take {used} of {} bytes",
            self.quota_bytes
        ))
    }

    /// Reads back a stored image, checks its size in pixels from its header, then decodes it
    /// (off the runtime, a few at a time) for its dimensions and a thumbnail.
    async fn picture(&self, id: Uuid, content_type: &str) -> AppResult<Picture> {
        let _turn = self.decoding.clone().acquire_owned().await.map_err(|e| AppError::Internal(e.into()))?;
        let bytes = self
            .store
            .get(&object_path(id, Part::Original))
            .await
            .map_err(store_error)?
            .bytes()
            .await
            .map_err(store_error)?;
        let format = image::ImageFormat::from_mime_type(content_type)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no image format for {content_type}")))?;
        let max_pixels = self.max_image_pixels;
        tokio::task::spawn_blocking(move || make_picture(&bytes, format, max_pixels))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
    }

    /// Upload `id` (or its thumbnail) for `reader`, all of it or `range` of it; 404 unless
    /// they may read it.
    pub async fn download(
        &self,
        reader: Uuid,
        id: Uuid,
        part: Part,
        range: impl FnOnce(u64) -> AppResult<Option<ByteRange>>,
    ) -> AppResult<Download> {
        let record = self.storage.readable_upload(id, reader).await?.ok_or(AppError::NotFound("upload"))?;
        let (content_type, total, etag) = match part {
            Part::Original => (record.content_type.clone(), record.size as u64, format!("\"{}\"", record.sha256)),
            Part::Thumbnail => match (&record.thumbnail_type, record.thumbnail_size) {
                (Some(kind), Some(size)) => (kind.clone(), size as u64, format!("\"{}-thumb\"", record.sha256)),
                _ => return Err(AppError::NotFound("thumbnail")),
            },
        };
        // Stored files and thumbnails are never empty, and a checked range never is.
        let wanted = range(total)?;
        let served = wanted.clone().unwrap_or(0..total);
        let options = GetOptions { range: wanted.map(GetRange::Bounded), ..GetOptions::default() };
        let body = match self.store.get_opts(&object_path(id, part), options).await {
            Ok(result) => result.into_stream(),
            Err(object_store::Error::NotFound { .. }) => return Err(AppError::NotFound("upload")),
            Err(err) => return Err(store_error(err)),
        };
        let inline = IMAGE_TYPES.contains(&content_type.as_str());
        Ok(Download { record, content_type, total, range: served, etag, inline, body })
    }

    /// Deletes the uploads no message took within [`UNATTACHED_TTL`]: their rows first (so
    /// no reader is sent to a missing file), then their bytes. Returns how many went.
    pub async fn sweep(&self) -> usize {
        let before = self.clock.now() - chrono::Duration::from_std(UNATTACHED_TTL).unwrap_or_default();
        let mut deleted = 0;
        loop {
            let taken = match self.storage.take_unattached_uploads(before, SWEEP_BATCH).await {
                Ok(taken) => taken,
                Err(err) => {
                    tracing::warn!(error = %err, "deleting unattached uploads failed");
                    break;
                }
            };
            for record in &taken {
                self.delete_objects(record).await;
            }
            deleted += taken.len();
            metrics::counter!("parley_uploads_expired_total").increment(taken.len() as u64);
            if (taken.len() as i64) < SWEEP_BATCH {
                break;
            }
        }
        deleted
    }

    async fn delete_objects(&self, record: &UploadRecord) {
        let mut paths = vec![object_path(record.id, Part::Original)];
        if record.thumbnail_type.is_some() {
            paths.push(object_path(record.id, Part::Thumbnail));
        }
        for path in paths {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => tracing::warn!(error = %err, %path, "deleting an upload's bytes failed"),
            }
        }
    }

    /// Every key in the store, staging files excepted (for tests: nothing left behind).
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut listing = self.store.list(None);
        while let Some(Ok(meta)) = listing.next().await {
            keys.push(meta.location.to_string());
        }
        keys.sort();
        keys
    }
}

/// Fills in the `{uploadId}` items of a message's `media` from the uploads they name, which
/// must be `owner`'s: url, type, size, dimensions, thumbnail. Other items pass unchanged.
pub async fn fill_media(storage: &dyn Storage, owner: Uuid, media: Value) -> AppResult<Value> {
    let ids = media_upload_ids(Some(&media));
    if ids.is_empty() {
        return Ok(media);
    }
    let records = storage.uploads_of(owner, &ids).await?;
    let Value::Array(items) = media else { return Ok(media) };
    let mut filled = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(mut object) = item else {
            filled.push(item);
            continue;
        };
        let Some(id) = object.get("uploadId").and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok()) else {
            filled.push(Value::Object(object));
            continue;
        };
        let record = records
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| AppError::invalid_field("media", format!("uploadId {id} is not an upload of yours")))?;
        describe(&mut object, record);
        filled.push(Value::Object(object));
    }
    Ok(Value::Array(filled))
}

/// The fields a media item gets from its upload.
fn describe(item: &mut Map<String, Value>, record: &UploadRecord) {
    let upload = Upload::from(record);
    item.insert("url".into(), upload.url.into());
    item.insert("contentType".into(), upload.content_type.clone().into());
    item.insert("type".into(), media_kind(&upload.content_type).into());
    item.insert("size".into(), upload.size.into());
    for (key, value) in [("width", upload.width), ("height", upload.height)] {
        match value {
            Some(v) => item.insert(key.into(), v.into()),
            None => item.remove(key),
        };
    }
    match upload.thumbnail_url {
        Some(url) => item.insert("thumbnailUrl".into(), url.into()),
        None => item.remove("thumbnailUrl"),
    };
    if let (false, Some(name)) = (item.contains_key("name"), upload.name) {
        item.insert("name".into(), name.into());
    }
}

/// Seed 002's media `type` of a content type.
fn media_kind(content_type: &str) -> &'static str {
    match content_type.split('/').next() {
        Some("image") => "image",
        Some("video") => "video",
        Some("audio") => "audio",
        _ => "file",
    }
}

/// What the bytes are: `infer`'s answer, else text (valid UTF-8 without NUL) or binary.
pub fn sniff(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        // A character cut by the end of the sample still counts as text.
        Err(err) => err.error_len().is_none(),
    };
    if text && !head.contains(&0) { "text/plain".into() } else { "application/octet-stream".into() }
}

/// Whether `content_type` matches one of the allow-list's entries (`*`, `family/*`, exact).
pub fn type_allowed(allowed: &[String], content_type: &str) -> bool {
    allowed.iter().any(|entry| {
        entry == "*"
            || entry == content_type
            || entry.strip_suffix('*').is_some_and(|prefix| content_type.starts_with(prefix))
    })
}

fn clean_name(name: Option<String>) -> AppResult<Option<String>> {
    let Some(name) = name else { return Ok(None) };
    // A browser may send a path; only its last part is the name.
    let name = name.rsplit(['/', '\\']).next().unwrap_or_default().trim().to_owned();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::invalid_field("name", "must be at most 255 characters, without control characters"));
    }
    Ok(Some(name))
}

fn interrupted(err: &impl std::fmt::Display) -> AppError {
    AppError::validation(format!("the upload was interrupted: {err}"))
}

fn store_error(err: object_store::Error) -> AppError {
    AppError::Internal(anyhow::Error::new(err).context("the upload store"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of an upload's bytes, or of its thumbnail.
fn object_path(id: Uuid, part: Part) -> ObjectPath {
    match part {
        Part::Original => ObjectPath::from(id.to_string()),
        Part::Thumbnail => ObjectPath::from(format!("{id}.thumb")),
    }
}

/// The configured store, and the part size that suits it.
fn open_store(config: &UploadStore) -> anyhow::Result<(Arc<dyn ObjectStore>, usize)> {
    use anyhow::Context;
    match config {
        UploadStore::Local(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the upload directory {}", dir.display()))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .with_context(|| format!("opening the upload directory {}", dir.display()))?;
            Ok((Arc::new(store), LOCAL_PART))
        }
        UploadStore::S3(s3) => {
            let mut builder =
                object_store::aws::AmazonS3Builder::new().with_bucket_name(&s3.bucket).with_region(&s3.region);
            if let Some(endpoint) = &s3.endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            if let (Some(key), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                builder = builder.with_access_key_id(key).with_secret_access_key(secret.expose());
            }
            let store: Arc<dyn ObjectStore> = Arc::new(builder.build().context("the S3 upload store")?);
            let store: Arc<dyn ObjectStore> = if s3.prefix.is_empty() {
                store
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(store, s3.prefix.as_str()))
            };
            Ok((store, S3_PART))
        }
    }
}

/// An upload being written: unless [`Pending::keep`] is called, dropping it aborts the
/// multipart write (parts already sent are discarded) and deletes what was completed, in a
/// task of its own, so neither an error nor a dropped request leaves bytes behind.
struct Pending {
    store: Arc<dyn ObjectStore>,
    writer: Option<WriteMultipart>,
    written: Vec<ObjectPath>,
}

impl Pending {
    fn new(store: Arc<dyn ObjectStore>, writer: WriteMultipart) -> Self {
        Self { store, writer: Some(writer), written: Vec::new() }
    }

    async fn write(&mut self, bytes: Bytes) -> AppResult<()> {
        let writer = self.writer.as_mut().expect("writing before finish");
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(store_error)?;
        writer.put(bytes);
        Ok(())
    }

    async fn finish(&mut self, path: ObjectPath) -> AppResult<()> {
        let writer = self.writer.take().expect("finished once");
        writer.finish().await.map_err(store_error)?;
        self.written.push(path);
        Ok(())
    }

    fn written(&mut self, path: ObjectPath) {
        self.written.push(path);
    }

    fn keep(mut self) {
        self.written.clear();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let writer = self.writer.take();
        let written = std::mem::take(&mut self.written);
        if writer.is_none() && written.is_empty() {
            return;
        }
        let store = self.store.clone();
        let cleanup = async move {
            if let Some(writer) = writer
                && let Err(err) = writer.abort().await
            {
                tracing::warn!(error = %err, "aborting an unfinished upload failed");
            }
            for path in written {
                if let Err(err) = store.delete(&path).await {
                    tracing::warn!(error = %err, %path, "deleting a refused upload failed");
                }
            }
            metrics::counter!("parley_uploads_discarded_total").increment(1);
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(cleanup);
        }
    }
}

/// An image's dimensions (as displayed: EXIF orientation applied) and its thumbnail.
struct Picture {
    width: u32,
    height: u32,
    thumbnail: Vec<u8>,
    thumbnail_type: &'static str,
}

/// Checks the header's pixel count against `max_pixels` before decoding anything, then
/// decodes (with allocation limits as a second guard) and makes the thumbnail: JPEG, or PNG
/// when the image has transparency.
fn make_picture(bytes: &[u8], format: image::ImageFormat, max_pixels: u64) -> AppResult<Picture> {
    use image::{DynamicImage, ImageDecoder, ImageReader};
    let undecodable =
        |err: image::ImageError| AppError::invalid_field("file", format!("is not a readable image: {err}"));
    let (width, height) =
        ImageReader::with_format(Cursor::new(bytes), format).into_dimensions().map_err(undecodable)?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        metrics::counter!("parley_uploads_bombs_total").increment(1);
        return Err(AppError::PayloadTooLarge(format!(
            "an image may have at most {max_pixels} pixels; this one is {width} × {height}"
        )));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(64 * 1024 * 1024));
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    picture.apply_orientation(orientation);
    let (width, height) = (picture.width(), picture.height());
    let small = if width > THUMBNAIL_MAX || height > THUMBNAIL_MAX {
        picture.thumbnail(THUMBNAIL_MAX, THUMBNAIL_MAX)
    } else {
        picture
    };
    let mut thumbnail = Vec::new();
    let thumbnail_type = if small.color().has_alpha() {
        small.write_to(&mut Cursor::new(&mut thumbnail), image::ImageFormat::Png).map_err(encode_error)?;
        "image/png"
    } else {
        let rgb = DynamicImage::ImageRgb8(small.to_rgb8());
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut thumbnail, 80);
        rgb.write_with_encoder(encoder).map_err(encode_error)?;
        "image/jpeg"
    };
    Ok(Picture { width, height, thumbnail, thumbnail_type })
}

fn encode_error(err: image::ImageError) -> AppError {
    AppError::Internal(anyhow::Error::new(err).context("encoding a thumbnail"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_trusts_the_bytes() {
        let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'I', b'H', b'D', b'R'];
        assert_eq!(sniff(&png), "image/png");
        assert_eq!(sniff("héllo wörld".as_bytes()), "text/plain");
        // A multi-byte character cut at the end of the sample.
        assert_eq!(sniff(&"é".as_bytes()[..1]), "text/plain");
        assert_eq!(sniff(&[0, 1, 2, 3, 0xff]), "application/octet-stream");
        assert_eq!(sniff(b"<!DOCTYPE html><html><script>alert(1)</script>"), "text/html");
    }

    #[test]
    fn the_allow_list_takes_exact_types_families_and_everything() {
        let allowed: Vec<String> = ["image/png", "video/*"].map(String::from).to_vec();
        assert!(type_allowed(&allowed, "image/png"));
        assert!(type_allowed(&allowed, "video/mp4"));
        assert!(!type_allowed(&allowed, "image/jpeg"));
        assert!(!type_allowed(&allowed, "text/html"));
        assert!(type_allowed(&["*".to_owned()], "text/html"));
    }

    #[test]
    fn file_names_lose_their_directories() {
        assert_eq!(clean_name(Some("C:\\Users\\me\\cat.png".into())).unwrap().as_deref(), Some("cat.png"));
        assert_eq!(clean_name(Some("a/b/report.pdf".into())).unwrap().as_deref(), Some("report.pdf"));
        assert_eq!(clean_name(Some("  ".into())).unwrap(), None);
        assert!(clean_name(Some("bad\u{7}name".into())).is_err());
    }
}
