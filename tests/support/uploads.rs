//! Uploads in tests: the two stores (a directory, and a real S3-compatible server: moto's
//! `moto_server`, started by `.ci/run`), files to upload (real PNGs, a decompression bomb's
//! header), and what a store holds (to prove nothing was left behind).

use std::{io::Cursor, path::Path, time::Duration};

use parley::config::UploadStore;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{Mode, TestApp, http::TestUser, reachable};

/// The two places uploads are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// Files under the data dir (the default).
    Local,
    /// An S3 bucket of the test S3 server (`PARLEY_TEST_S3_ENDPOINT`).
    S3,
}

pub fn s3_endpoint() -> String {
    std::env::var("PARLEY_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

/// Whether the S3 server answers; under `CI=true` it must.
pub async fn s3_available() -> bool {
    static AVAILABLE: OnceCell<bool> = OnceCell::const_new();
    *AVAILABLE
        .get_or_init(|| {
            reachable("the S3 server (moto_server)", async {
                let reply = reqwest::get(s3_endpoint()).await.map_err(|e| e.to_string())?;
                if reply.status().is_server_error() { Err(format!("status {}", reply.status())) } else { Ok(()) }
            })
        })
        .await
}

/// A new, empty bucket on the S3 server.
pub async fn create_bucket() -> String {
    let bucket = format!("parley-test-{}", &Uuid::new_v4().simple().to_string()[..16]);
    let reply =
        reqwest::Client::new().put(format!("{}/{bucket}", s3_endpoint())).send().await.expect("the S3 server answers");
    assert!(reply.status().is_success(), "creating bucket {bucket}: {}", reply.status());
    bucket
}

/// A server in `mode` keeping uploads in `store`, with `extra` settings.
pub async fn spawn_with_store(mode: Mode, store: Store, extra: &[(&str, &str)]) -> Option<TestApp> {
    let mut vars: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if store == Store::S3 {
        if !s3_available().await {
            return None;
        }
        let bucket = create_bucket().await;
        vars.push(("UPLOAD_STORE".into(), format!("s3://{bucket}/uploads")));
        vars.push(("S3_ENDPOINT".into(), s3_endpoint()));
        vars.push(("AWS_ACCESS_KEY_ID".into(), "test".into()));
        vars.push(("AWS_SECRET_ACCESS_KEY".into(), "test".into()));
        vars.push(("AWS_REGION".into(), "us-east-1".into()));
    }
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::try_spawn_with(mode, &refs).await
}

/// Everything the app's upload store holds: finished objects, and what an unfinished upload
/// left (a local staging file, an S3 multipart upload in progress).
pub async fn leftovers(app: &TestApp) -> Vec<String> {
    let mut found = Vec::new();
    match &app.state.config.uploads.store {
        // Every file of the directory, staging files included.
        UploadStore::Local(dir) => list_files(dir, dir, &mut found),
        UploadStore::S3(s3) => {
            found = app.state.services.uploads.keys().await;
            let listing = reqwest::get(format!("{}/{}?uploads", s3_endpoint(), s3.bucket))
                .await
                .expect("list multipart uploads")
                .text()
                .await
                .expect("a listing");
            let in_progress = listing.matches("<UploadId>").count();
            found.extend((0..in_progress).map(|i| format!("(multipart upload in progress #{i})")));
        }
    }
    found.sort();
    found
}

fn list_files(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(root, &path, found);
        } else {
            found.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
        }
    }
}

/// Waits (up to 10 s) until `check` holds; panics with `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PNG of `width` × `height` with a gradient (so it does not compress to nothing).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encode a PNG");
    bytes
}

/// A PNG whose header claims `width` × `height` pixels (a decompression bomb's opening):
/// signature, IHDR, a tiny IDAT, IEND, with correct CRCs.
pub fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale, deflate, no filter, no interlace
    chunk(&mut bytes, b"IHDR", &ihdr);
    chunk(&mut bytes, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut bytes, b"IEND", &[]);
    bytes
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (IEEE), bit by bit: a few dozen bytes, no table needed.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// What a download answered, with the body as bytes.
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Fetched {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The body as JSON (an error answer).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

/// `GET path` as `user` (bearer token) with extra `headers`.
pub async fn fetch(user: &TestUser, path: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut request = user.client.request(Method::GET, path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body").to_vec();
    Fetched { status, headers, bytes }
}

/// Uploads `bytes` as the raw body, declared as `content_type`.
pub async fn upload_raw(user: &TestUser, bytes: Vec<u8>, content_type: &str) -> super::http::Reply {
    let request = user.client.request(Method::POST, "/api/uploads").header("content-type", content_type).body(bytes);
    user.client.send(request).await
}

/// Uploads `bytes` as the `file` part of a multipart body, the part declared as
/// `content_type` with `file_name`.
pub async fn upload_multipart(
    user: &TestUser,
    bytes: Vec<u8>,
    content_type: &str,
    file_name: &str,
) -> super::http::Reply {
    let part =
        reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()).mime_str(content_type).expect("a type");
    let form = reqwest::multipart::Form::new().text("note", "ignored").part("file", part);
    let request = user.client.request(Method::POST, "/api/uploads").multipart(form);
    user.client.send(request).await
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
