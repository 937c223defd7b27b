//! Runtime configuration: every setting is an environment variable with a safe default
//! (see `.env.example`). Secrets never appear in `Debug` output or logs.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use rand::RngCore;

/// Where the process runs; production makes secrets mandatory and cookies `Secure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A value that must never be printed.
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Connection string; may hold a password, so `Debug` shows [`redact_url`] of it.
    pub database_url: Secret<String>,
    pub redis_url: Option<Secret<String>>,
    /// Prefix for every Redis key, so several deployments (or tests) can share one Redis.
    pub redis_key_prefix: String,
    pub jwt_secret: Secret<Vec<u8>>,
    pub environment: Environment,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    pub legacy_events: bool,
    pub presence_grace: Duration,
    /// Largest interval between flushes of large-group read receipts.
    pub receipt_flush: Duration,
    /// How long a socket that connected without a token has to send `auth {token}`.
    pub auth_timeout: Duration,
    pub message_rate_per_min: u32,
    /// Accounts one client address may register per hour (0: no limit).
    pub registrations_per_hour: u32,
    /// Take the client address from the last `X-Forwarded-For` hop (set when behind nginx).
    pub trust_proxy: bool,
    /// Largest accepted REST request body, in bytes.
    pub body_limit: usize,
    /// Largest Socket.IO packet a client may send (a websocket message or a polling body).
    pub socket_max_payload: usize,
    /// Engine.IO heartbeat: the server pings every `ping_interval` (the first one
    /// `ping_interval` after the handshake) and closes a session whose pong does not come
    /// within `ping_timeout`.
    pub ping_interval: Duration,
    /// Raw WebSocket gateway (`/chat/ws`, seed 002 §1.3): a ping frame every
    /// `raw_ws_ping_interval`; a connection with no pong for `raw_ws_pong_timeout` is closed.
    pub raw_ws_ping_interval: Duration,
    pub raw_ws_pong_timeout: Duration,
    pub ping_timeout: Duration,
    /// Concurrent `/chat` connections per client address on this replica (0: no limit).
    pub max_connections_per_ip: u32,
    /// Sustained client events per second per socket (0: no limit), and the burst above it.
    pub socket_events_per_sec: u32,
    pub socket_events_burst: u32,
    /// How long a user and an address that flooded are refused new connections (0: not at all).
    pub flood_cooldown: Duration,
    /// Conversation rooms one socket may be subscribed to (0: no limit).
    pub max_subscriptions_per_socket: u32,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Web Push and webhooks (SPEC §4.4).
    pub push: PushConfig,
    /// Uploads (SPEC §4.3).
    pub uploads: UploadConfig,
    /// The Socket.IO Admin UI's server side on `/admin` (`ADMIN_UI=true`); `None`: off.
    pub admin_ui: Option<AdminUiConfig>,
}

/// The Socket.IO Admin UI (npm `@socket.io/admin-ui`) on the `/admin` namespace.
#[derive(Clone, Debug)]
pub struct AdminUiConfig {
    /// `None`: no authentication (`ADMIN_UI_AUTH=false`, refused in production).
    pub credentials: Option<AdminCredentials>,
    /// Only observe: the UI's join, leave and disconnect operations are refused.
    pub readonly: bool,
    /// The UI's development mode: socket lists, room changes and live events. Otherwise the
    /// UI gets server statistics only.
    pub development: bool,
}

/// The one admin account; only an Argon2 hash of its password is configured.
#[derive(Clone, Debug)]
pub struct AdminCredentials {
    pub username: String,
    /// A PHC string (`$argon2id$v=19$…`), as `parley hash-password` prints it.
    pub password_hash: Secret<String>,
}

/// Where uploaded bytes are kept.
#[derive(Clone, Debug)]
pub enum UploadStore {
    /// Files under a directory (`PARLEY_DATA_DIR/uploads` by default, or `file:///path`).
    Local(PathBuf),
    /// An S3 bucket (`s3://bucket/prefix`): what replicas share.
    S3(S3Store),
}

#[derive(Clone, Debug)]
pub struct S3Store {
    pub bucket: String,
    /// Keys are made under this prefix (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// `S3_ENDPOINT`: an S3-compatible service instead of AWS (path-style requests).
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret<String>>,
}

/// Uploads: the store, the limits, the allowed types.
#[derive(Clone, Debug)]
pub struct UploadConfig {
    pub store: UploadStore,
    /// The largest upload, enforced while it streams in.
    pub max_bytes: u64,
    /// What one user's uploads may take in all.
    pub quota_bytes: u64,
    /// Sniffed types accepted: exact (`image/png`) or a family (`video/*`), or `*`.
    pub allowed_types: Vec<String>,
    /// Images with more pixels than this are refused before they are decoded.
    pub max_image_pixels: u64,
    /// How often this replica deletes uploads left unattached for 24 hours.
    pub cleanup_interval: Duration,
}

/// The types accepted when `UPLOAD_ALLOWED_TYPES` is not set: pictures the server can
/// thumbnail, video, audio, documents and archives, plain text, and other binary files
/// (served as attachments). Not HTML, XML or SVG, nor executables that `infer` recognises.
pub const DEFAULT_UPLOAD_TYPES: &str = "image/png,image/jpeg,image/gif,image/webp,video/*,audio/*,\
application/pdf,application/zip,application/gzip,application/x-7z-compressed,application/vnd.rar,\
application/msword,application/vnd.ms-excel,application/vnd.ms-powerpoint,\
application/vnd.openxmlformats-officedocument.*,application/vnd.oasis.opendocument.*,text/plain,\
application/octet-stream";

/// Reaching people who are offline: the VAPID identity, webhooks, the outbox sender.
#[derive(Clone, Debug)]
pub struct PushConfig {
    /// The 32-byte P-256 private scalar that signs VAPID tokens.
    pub vapid_private_key: Secret<Vec<u8>>,
    /// The VAPID `sub` claim: a `mailto:` or `https:` contact for push services.
    pub vapid_subject: String,
    /// Push endpoints may be `http` and point at loopback or private addresses (the default
    /// in development; `PUSH_ALLOW_INSECURE=false` makes development strict too).
    pub allow_insecure: bool,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Secret<String>>,
    /// Notifications in flight at once per replica.
    pub concurrency: usize,
    /// Per request to a push service or the webhook receiver.
    pub timeout: Duration,
}

/// Where a configuration value comes from: the process environment, or a map in tests.
pub trait VarSource {
    fn var(&self, name: &str) -> Option<String>;
}

/// Reads the real process environment.
pub struct ProcessEnv;

impl VarSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl VarSource for &[(&str, &str)] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }
}

impl<const N: usize> VarSource for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }
}

/// Every variable [`Config::load`] reads; `.env.example` documents each (a test checks).
pub const VARIABLES: &[&str] = &[
    "PARLEY_ADDR",
    "PARLEY_DATA_DIR",
    "PARLEY_ENV",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "JWT_SECRET",
    "ACCESS_TOKEN_TTL_SECS",
    "REFRESH_TOKEN_TTL_SECS",
    "CORS_ORIGINS",
    "TRUST_PROXY",
    "BODY_LIMIT_BYTES",
    "SOCKET_MAX_PAYLOAD_BYTES",
    "SOCKET_PING_INTERVAL_MS",
    "SOCKET_PING_TIMEOUT_MS",
    "RAW_WS_PING_INTERVAL_MS",
    "RAW_WS_PONG_TIMEOUT_MS",
    "MAX_CONNECTIONS_PER_IP",
    "SOCKET_EVENTS_PER_SEC",
    "SOCKET_EVENTS_BURST",
    "FLOOD_COOLDOWN_SECS",
    "MAX_SUBSCRIPTIONS_PER_SOCKET",
    "LEGACY_EVENTS",
    "PRESENCE_GRACE_SECS",
    "AUTH_TIMEOUT_MS",
    "RECEIPT_FLUSH_MS",
    "MESSAGE_RATE_PER_MIN",
    "REGISTRATIONS_PER_HOUR",
    "LOG_FORMAT",
    "VAPID_PRIVATE_KEY",
    "VAPID_SUBJECT",
    "PUSH_ALLOW_INSECURE",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "OUTBOX_CONCURRENCY",
    "OUTBOX_TIMEOUT_MS",
    "UPLOAD_STORE",
    "S3_ENDPOINT",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "UPLOAD_MAX_BYTES",
    "UPLOAD_QUOTA_BYTES",
    "UPLOAD_ALLOWED_TYPES",
    "UPLOAD_MAX_IMAGE_PIXELS",
    "UPLOAD_CLEANUP_INTERVAL_SECS",
    "ADMIN_UI",
    "ADMIN_USERNAME",
    "ADMIN_PASSWORD_HASH",
    "ADMIN_UI_AUTH",
    "ADMIN_UI_READONLY",
    "ADMIN_UI_MODE",
];

const JWT_SECRET_FILE: &str = "jwt_secret";
const VAPID_KEY_FILE: &str = "vapid_private_key";
const MIN_JWT_SECRET_LEN: usize = 32;

impl Config {
    /// Reads the configuration from the process environment, creating the data dir and the
    /// embedded-mode JWT secret on first start.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::load(&ProcessEnv)
    }

    pub fn load(vars: &impl VarSource) -> anyhow::Result<Self> {
        let get = |name: &str| vars.var(name);
        let environment = match get("PARLEY_ENV").as_deref() {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => bail!("PARLEY_ENV must be `development` or `production`, got `{other}`"),
        };
        let data_dir = PathBuf::from(get("PARLEY_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let data_dir_for_keys = data_dir.clone();
        let database_url = match get("DATABASE_URL") {
            Some(url) => url,
            None => format!("sqlite://{}", data_dir.join("parley.db").display()),
        };
        let jwt_secret = match get("JWT_SECRET") {
            Some(secret) if secret.len() < MIN_JWT_SECRET_LEN => {
                bail!("JWT_SECRET must be at least {MIN_JWT_SECRET_LEN} characters long")
            }
            Some(secret) => secret.into_bytes(),
            None if environment == Environment::Production => {
                bail!("JWT_SECRET is required when PARLEY_ENV=production")
            }
            None => load_or_create_secret(&data_dir)?,
        };
        Ok(Self {
            addr: parse_or(&get, "PARLEY_ADDR", "127.0.0.1:3000".parse()?)?,
            data_dir,
            database_url: Secret::new(database_url),
            redis_url: get("REDIS_URL").map(Secret::new),
            redis_key_prefix: get("REDIS_KEY_PREFIX").unwrap_or_else(|| "parley:".into()),
            jwt_secret: Secret::new(jwt_secret),
            environment,
            cors_origins: get("CORS_ORIGINS")
                .unwrap_or_else(|| "http://localhost:5173".into())
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect(),
            log_format: match get("LOG_FORMAT").as_deref() {
                None | Some("pretty") => LogFormat::Pretty,
                Some("json") => LogFormat::Json,
                Some(other) => bail!("LOG_FORMAT must be `pretty` or `json`, got `{other}`"),
            },
            legacy_events: parse_or(&get, "LEGACY_EVENTS", true)?,
            presence_grace: Duration::from_secs(parse_or(&get, "PRESENCE_GRACE_SECS", 5)?),
            auth_timeout: Duration::from_millis(parse_or(&get, "AUTH_TIMEOUT_MS", 10_000)?),
            receipt_flush: Duration::from_millis(parse_or(&get, "RECEIPT_FLUSH_MS", 10_000)?.max(10)),
            message_rate_per_min: parse_or(&get, "MESSAGE_RATE_PER_MIN", 30)?,
            registrations_per_hour: parse_or(&get, "REGISTRATIONS_PER_HOUR", 10)?,
            trust_proxy: parse_or(&get, "TRUST_PROXY", false)?,
            body_limit: parse_or(&get, "BODY_LIMIT_BYTES", 128 * 1024)?,
            socket_max_payload: parse_or(&get, "SOCKET_MAX_PAYLOAD_BYTES", 256 * 1024)?,
            ping_interval: Duration::from_millis(positive(
                parse_or(&get, "SOCKET_PING_INTERVAL_MS", 25_000)?,
                "SOCKET_PING_INTERVAL_MS",
            )?),
            ping_timeout: Duration::from_millis(positive(
                parse_or(&get, "SOCKET_PING_TIMEOUT_MS", 20_000)?,
                "SOCKET_PING_TIMEOUT_MS",
            )?),
            raw_ws_ping_interval: Duration::from_millis(positive(
                parse_or(&get, "RAW_WS_PING_INTERVAL_MS", 54_000)?,
                "RAW_WS_PING_INTERVAL_MS",
            )?),
            raw_ws_pong_timeout: Duration::from_millis(positive(
                parse_or(&get, "RAW_WS_PONG_TIMEOUT_MS", 60_000)?,
                "RAW_WS_PONG_TIMEOUT_MS",
            )?),
            max_connections_per_ip: parse_or(&get, "MAX_CONNECTIONS_PER_IP", 256)?,
            socket_events_per_sec: parse_or(&get, "SOCKET_EVENTS_PER_SEC", 20)?,
            socket_events_burst: parse_or(&get, "SOCKET_EVENTS_BURST", 120)?,
            flood_cooldown: Duration::from_secs(parse_or(&get, "FLOOD_COOLDOWN_SECS", 60)?),
            max_subscriptions_per_socket: parse_or(&get, "MAX_SUBSCRIPTIONS_PER_SOCKET", 100)?,
            access_token_ttl: Duration::from_secs(parse_or(&get, "ACCESS_TOKEN_TTL_SECS", 15 * 60)?),
            refresh_token_ttl: Duration::from_secs(parse_or(&get, "REFRESH_TOKEN_TTL_SECS", 7 * 24 * 3600)?),
            push: load_push(&get, &data_dir_for_keys, environment)?,
            uploads: load_uploads(&get, &data_dir_for_keys)?,
            admin_ui: load_admin_ui(&get, environment)?,
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// What push endpoints may point at.
    pub fn push_policy(&self) -> crate::net_guard::EndpointPolicy {
        if self.push.allow_insecure {
            crate::net_guard::EndpointPolicy::AllowInsecure
        } else {
            crate::net_guard::EndpointPolicy::PublicHttps
        }
    }

    pub fn uses_postgres(&self) -> bool {
        let url = self.database_url.expose();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }
}

/// `ADMIN_UI=true` needs credentials (a username and an Argon2 hash) or an explicit
/// `ADMIN_UI_AUTH=false`, which production refuses.
fn load_admin_ui(
    get: &impl Fn(&str) -> Option<String>,
    environment: Environment,
) -> anyhow::Result<Option<AdminUiConfig>> {
    if !parse_or(get, "ADMIN_UI", false)? {
        return Ok(None);
    }
    let credentials = if parse_or(get, "ADMIN_UI_AUTH", true)? {
        let (Some(username), Some(password_hash)) = (get("ADMIN_USERNAME"), get("ADMIN_PASSWORD_HASH")) else {
            bail!(
                "ADMIN_UI=true needs ADMIN_USERNAME and ADMIN_PASSWORD_HASH (an Argon2 hash: `parley hash-password`), \
                 or ADMIN_UI_AUTH=false for an admin UI without authentication"
            )
        };
        if username.trim().is_empty() {
            bail!("ADMIN_USERNAME must not be empty");
        }
        match argon2::PasswordHash::new(&password_hash) {
            Ok(hash) if hash.algorithm.as_str().starts_with("argon2") => {}
            _ => bail!("ADMIN_PASSWORD_HASH must be an Argon2 hash in PHC form ($argon2id$…): `parley hash-password`"),
        }
        Some(AdminCredentials { username, password_hash: Secret::new(password_hash) })
    } else if environment == Environment::Production {
        bail!("ADMIN_UI_AUTH=false (an admin UI without authentication) is refused when PARLEY_ENV=production")
    } else {
        None
    };
    let development = match get("ADMIN_UI_MODE").as_deref() {
        None => environment == Environment::Development,
        Some("development") => true,
        Some("production") => false,
        Some(other) => bail!("ADMIN_UI_MODE must be `development` or `production`, got `{other}`"),
    };
    Ok(Some(AdminUiConfig { credentials, readonly: parse_or(get, "ADMIN_UI_READONLY", true)?, development }))
}

/// Web Push and webhook settings. Like the JWT secret, the VAPID key is generated once into
/// the data dir in development and required in production (every replica must sign with
/// the one key browsers subscribed with).
fn load_push(
    get: &impl Fn(&str) -> Option<String>,
    data_dir: &std::path::Path,
    environment: Environment,
) -> anyhow::Result<PushConfig> {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let vapid_private_key = match get("VAPID_PRIVATE_KEY") {
        Some(raw) => URL_SAFE_NO_PAD
            .decode(raw.trim().trim_end_matches('='))
            .ok()
            .filter(|key| key.len() == 32)
            .context("VAPID_PRIVATE_KEY must be the base64url of a 32-byte P-256 private key")?,
        None if environment == Environment::Production => {
            bail!("VAPID_PRIVATE_KEY is required when PARLEY_ENV=production")
        }
        None => load_or_create_vapid_key(data_dir)?,
    };
    let webhook_url = get("WEBHOOK_URL");
    let webhook_secret = get("WEBHOOK_SECRET");
    if webhook_url.is_some() && webhook_secret.as_ref().is_none_or(|s| s.len() < 16) {
        bail!("WEBHOOK_URL needs a WEBHOOK_SECRET of at least 16 characters");
    }
    if let Some(url) = &webhook_url {
        url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .context("WEBHOOK_URL must be an http(s) URL")?;
    }
    Ok(PushConfig {
        vapid_private_key: Secret::new(vapid_private_key),
        vapid_subject: get("VAPID_SUBJECT").unwrap_or_else(|| "mailto:admin@localhost".into()),
        allow_insecure: parse_or(get, "PUSH_ALLOW_INSECURE", environment == Environment::Development)?,
        webhook_url,
        webhook_secret: webhook_secret.map(Secret::new),
        concurrency: parse_or(get, "OUTBOX_CONCURRENCY", 64usize)?.max(1),
        timeout: Duration::from_millis(positive(parse_or(get, "OUTBOX_TIMEOUT_MS", 10_000)?, "OUTBOX_TIMEOUT_MS")?),
    })
}

/// Upload settings: `UPLOAD_STORE` unset keeps files under the data dir.
fn load_uploads(get: &impl Fn(&str) -> Option<String>, data_dir: &std::path::Path) -> anyhow::Result<UploadConfig> {
    let store = match get("UPLOAD_STORE") {
        None => UploadStore::Local(data_dir.join("uploads")),
        Some(raw) => parse_upload_store(&raw, get)?,
    };
    let allowed_types: Vec<String> = get("UPLOAD_ALLOWED_TYPES")
        .unwrap_or_else(|| DEFAULT_UPLOAD_TYPES.into())
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    if allowed_types.is_empty() {
        bail!("UPLOAD_ALLOWED_TYPES must name at least one type");
    }
    Ok(UploadConfig {
        store,
        max_bytes: positive(parse_or(get, "UPLOAD_MAX_BYTES", 25 * 1024 * 1024)?, "UPLOAD_MAX_BYTES")?,
        quota_bytes: parse_or(get, "UPLOAD_QUOTA_BYTES", 1024 * 1024 * 1024)?,
        allowed_types,
        max_image_pixels: positive(parse_or(get, "UPLOAD_MAX_IMAGE_PIXELS", 50_000_000)?, "UPLOAD_MAX_IMAGE_PIXELS")?,
        cleanup_interval: Duration::from_secs(positive(
            parse_or(get, "UPLOAD_CLEANUP_INTERVAL_SECS", 600)?,
            "UPLOAD_CLEANUP_INTERVAL_SECS",
        )?),
    })
}

/// `file:///absolute/dir` or `s3://bucket[/prefix]`.
fn parse_upload_store(raw: &str, get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<UploadStore> {
    let url = url::Url::parse(raw).context("UPLOAD_STORE must be file:///dir or s3://bucket/prefix")?;
    match url.scheme() {
        "file" => Ok(UploadStore::Local(
            url.to_file_path().ok().context("UPLOAD_STORE=file://… must name an absolute directory")?,
        )),
        "s3" => {
            let bucket = url.host_str().filter(|b| !b.is_empty()).context("UPLOAD_STORE=s3://… needs a bucket")?;
            let endpoint = get("S3_ENDPOINT");
            if let Some(endpoint) = &endpoint {
                url::Url::parse(endpoint)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .context("S3_ENDPOINT must be an http(s) URL")?;
            }
            Ok(UploadStore::S3(S3Store {
                bucket: bucket.to_owned(),
                prefix: url.path().trim_matches('/').to_owned(),
                endpoint,
                region: get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
                access_key_id: get("AWS_ACCESS_KEY_ID"),
                secret_access_key: get("AWS_SECRET_ACCESS_KEY").map(Secret::new),
            }))
        }
        other => bail!("UPLOAD_STORE must be file:///dir or s3://bucket/prefix, not {other}://"),
    }
}

/// A P-256 private scalar kept in the data dir (base64url), made on first start.
fn load_or_create_vapid_key(data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let path = data_dir.join(VAPID_KEY_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && let Ok(key) = URL_SAFE_NO_PAD.decode(existing.trim())
        && p256::SecretKey::from_slice(&key).is_ok()
    {
        return Ok(key);
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let key = loop {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        if p256::SecretKey::from_slice(&bytes).is_ok() {
            break bytes.to_vec();
        }
    };
    write_private(&path, URL_SAFE_NO_PAD.encode(&key).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

/// `value`, or an error naming `name` when it is 0.
fn positive(value: u64, name: &str) -> anyhow::Result<u64> {
    if value == 0 {
        bail!("{name} must be at least 1");
    }
    Ok(value)
}

fn parse_or<T: std::str::FromStr>(get: &impl Fn(&str) -> Option<String>, name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e| anyhow::anyhow!("{name}: cannot parse `{raw}`: {e}")),
    }
}

/// Embedded mode keeps one random secret in the data dir, so tokens survive restarts
/// without a secret ever living in the code.
fn load_or_create_secret(data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(JWT_SECRET_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= MIN_JWT_SECRET_LEN {
            return Ok(existing.as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, secret.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret.into_bytes())
}

fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

/// Hides the password of a connection URL: `postgres://u:secret@h/db` → `postgres://u:***@h/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl Config {
    /// One line for the start-up log: what runs where, with nothing secret in it.
    pub fn summary(&self) -> String {
        format!(
            "addr={} env={:?} database={} redis={} cors={:?} legacy_events={}",
            self.addr,
            self.environment,
            redact_url(self.database_url.expose()),
            self.redis_url
                .as_ref()
                .map(|u| redact_url(u.expose()))
                .unwrap_or_else(|| "disabled (in-process state)".into()),
            self.cors_origins,
            self.legacy_events,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_without_jwt_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let err = Config::load(&[("PARLEY_ENV", "production"), ("PARLEY_DATA_DIR", data_dir)]).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET is required"), "{err}");
    }

    #[test]
    fn embedded_mode_generates_the_secret_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let first = Config::load(&[("PARLEY_DATA_DIR", data_dir)]).unwrap();
        let second = Config::load(&[("PARLEY_DATA_DIR", data_dir)]).unwrap();
        assert_eq!(first.jwt_secret.expose(), second.jwt_secret.expose());
        assert!(first.jwt_secret.expose().len() >= MIN_JWT_SECRET_LEN);
        assert!(dir.path().join(JWT_SECRET_FILE).exists());
    }

    #[test]
    fn defaults_match_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let config = Config::load(&[("PARLEY_DATA_DIR", data_dir)]).unwrap();
        assert_eq!(config.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.cors_origins, vec!["http://localhost:5173".to_string()]);
        assert!(config.database_url.expose().ends_with("parley.db"));
        assert!(config.redis_url.is_none());
        assert_eq!(config.message_rate_per_min, 30);
        assert_eq!(config.socket_max_payload, 256 * 1024);
        assert_eq!(config.max_connections_per_ip, 256);
        assert_eq!((config.socket_events_per_sec, config.socket_events_burst), (20, 120));
        assert_eq!(config.flood_cooldown, Duration::from_secs(60));
        assert_eq!(config.max_subscriptions_per_socket, 100);
        assert_eq!((config.ping_interval, config.ping_timeout), (Duration::from_secs(25), Duration::from_secs(20)));
        assert_eq!(config.presence_grace, Duration::from_secs(5));
        assert!(config.legacy_events);
    }

    /// A VAPID key for the tests that give no data dir (nothing is written to `./data`).
    const VAPID: &str = "Bwc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc";

    #[test]
    fn embedded_mode_generates_the_vapid_key_once_and_production_requires_it() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let first = Config::load(&[("PARLEY_DATA_DIR", data_dir)]).unwrap();
        let second = Config::load(&[("PARLEY_DATA_DIR", data_dir)]).unwrap();
        assert_eq!(first.push.vapid_private_key.expose(), second.push.vapid_private_key.expose());
        assert!(p256::SecretKey::from_slice(first.push.vapid_private_key.expose()).is_ok());
        assert!(first.push.allow_insecure, "development allows http and loopback endpoints");
        let secret = "x".repeat(40);
        let production = [("PARLEY_ENV", "production"), ("PARLEY_DATA_DIR", data_dir), ("JWT_SECRET", secret.as_str())];
        let err = Config::load(&production).unwrap_err();
        assert!(err.to_string().contains("VAPID_PRIVATE_KEY is required"), "{err}");
        let with_key = [
            ("PARLEY_ENV", "production"),
            ("PARLEY_DATA_DIR", data_dir),
            ("JWT_SECRET", secret.as_str()),
            ("VAPID_PRIVATE_KEY", VAPID),
        ];
        assert!(!Config::load(&with_key).unwrap().push.allow_insecure, "production: https to public addresses");
        let bad = [("PARLEY_DATA_DIR", data_dir), ("VAPID_PRIVATE_KEY", "short")];
        assert!(Config::load(&bad).is_err());
        let hook = [("PARLEY_DATA_DIR", data_dir), ("WEBHOOK_URL", "https://bridge.example/hook")];
        assert!(Config::load(&hook).unwrap_err().to_string().contains("WEBHOOK_SECRET"));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let config = Config::load(&[
            ("VAPID_PRIVATE_KEY", VAPID),
            ("WEBHOOK_URL", "https://bridge.example/hook"),
            ("WEBHOOK_SECRET", "webhook-secret-nobody-should-see"),
            ("JWT_SECRET", "a-very-long-secret-value-that-nobody-should-see-0123"),
            ("DATABASE_URL", "postgres://app:hunter2hunter2@db/parley"),
            ("REDIS_URL", "redis://:redispass@cache:6379"),
        ])
        .unwrap();
        let shown = format!("{config:?} {}", config.summary());
        assert!(!shown.contains("nobody-should-see"));
        assert!(!shown.contains(VAPID));
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("redispass"));
        assert!(shown.contains("postgres://app:***@db/parley"));
    }

    /// A well-formed Argon2id PHC string (what `parley hash-password` prints).
    const ADMIN_HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$YWJjZGVmZ2hpamtsbW5vcA$YWJjZGVmZ2hpamtsbW5vcGFiY2RlZmdoaWprbG1ub3A";

    #[test]
    fn the_admin_ui_needs_credentials_or_an_explicit_no_auth_outside_production() {
        let secret = "x".repeat(40);
        let base = [("JWT_SECRET", secret.as_str()), ("VAPID_PRIVATE_KEY", VAPID)];
        let load = |extra: &[(&'static str, &'static str)]| {
            let mut vars: Vec<(&str, &str)> = base.to_vec();
            vars.extend_from_slice(extra);
            Config::load(&vars.as_slice())
        };
        assert!(load(&[]).unwrap().admin_ui.is_none(), "off by default");
        let err = load(&[("ADMIN_UI", "true")]).unwrap_err().to_string();
        assert!(err.contains("ADMIN_PASSWORD_HASH"), "{err}");
        let err = load(&[("ADMIN_UI", "true"), ("ADMIN_USERNAME", "admin"), ("ADMIN_PASSWORD_HASH", "hunter2")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("Argon2"), "a plain password is refused: {err}");
        let admin = load(&[("ADMIN_UI", "true"), ("ADMIN_USERNAME", "admin"), ("ADMIN_PASSWORD_HASH", ADMIN_HASH)])
            .unwrap()
            .admin_ui
            .unwrap();
        assert!(admin.readonly, "read-only by default");
        assert!(admin.development, "development mode follows PARLEY_ENV");
        assert_eq!(admin.credentials.unwrap().username, "admin");
        let open = load(&[("ADMIN_UI", "true"), ("ADMIN_UI_AUTH", "false"), ("ADMIN_UI_READONLY", "false")])
            .unwrap()
            .admin_ui
            .unwrap();
        assert!(open.credentials.is_none() && !open.readonly);
        let production = [
            ("PARLEY_ENV", "production"),
            ("JWT_SECRET", secret.as_str()),
            ("VAPID_PRIVATE_KEY", VAPID),
            ("ADMIN_UI", "true"),
            ("ADMIN_UI_AUTH", "false"),
        ];
        let err = Config::load(&production.as_slice()).unwrap_err().to_string();
        assert!(err.contains("refused when PARLEY_ENV=production"), "{err}");
        let err = load(&[("ADMIN_UI", "true"), ("ADMIN_UI_AUTH", "false"), ("ADMIN_UI_MODE", "debug")]).unwrap_err();
        assert!(err.to_string().contains("ADMIN_UI_MODE"));
    }

    /// Records every variable name `load` asks for.
    struct Recorder(std::cell::RefCell<Vec<String>>);

    impl VarSource for Recorder {
        fn var(&self, name: &str) -> Option<String> {
            self.0.borrow_mut().push(name.to_owned());
            match name {
                "JWT_SECRET" => Some("x".repeat(40)),
                "VAPID_PRIVATE_KEY" => Some(VAPID.to_owned()),
                // So that the S3 settings are read too.
                "UPLOAD_STORE" => Some("s3://bucket/prefix".to_owned()),
                // So that the admin UI's settings are read too.
                "ADMIN_UI" => Some("true".to_owned()),
                "ADMIN_USERNAME" => Some("admin".to_owned()),
                "ADMIN_PASSWORD_HASH" => Some(ADMIN_HASH.to_owned()),
                _ => None,
            }
        }
    }

    #[test]
    fn every_variable_read_is_listed_and_documented() {
        let recorder = Recorder(Default::default());
        Config::load(&recorder).unwrap();
        let mut read = recorder.0.into_inner();
        read.sort();
        read.dedup();
        let mut listed: Vec<String> = VARIABLES.iter().map(|v| v.to_string()).collect();
        listed.sort();
        assert_eq!(read, listed, "VARIABLES must list exactly what Config::load reads");
        let example = include_str!("../.env.example");
        for name in VARIABLES {
            assert!(example.contains(&format!("# {name}=")), "{name} is missing from .env.example");
        }
    }

    #[test]
    fn the_upload_store_is_a_directory_or_a_bucket() {
        let secret = "x".repeat(40);
        let load = |store: &str| {
            Config::load(&[("JWT_SECRET", secret.as_str()), ("VAPID_PRIVATE_KEY", VAPID), ("UPLOAD_STORE", store)])
        };
        match load("s3://media/chat/uploads/").unwrap().uploads.store {
            UploadStore::S3(s3) => assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("media", "chat/uploads")),
            other => panic!("{other:?}"),
        }
        match load("file:///srv/parley-uploads").unwrap().uploads.store {
            UploadStore::Local(dir) => assert_eq!(dir, PathBuf::from("/srv/parley-uploads")),
            other => panic!("{other:?}"),
        }
        for bad in ["s3://", "ftp://host/x", "relative/dir", "file://host/x"] {
            assert!(load(bad).is_err(), "{bad}");
        }
        let default = Config::load(&[("JWT_SECRET", secret.as_str()), ("VAPID_PRIVATE_KEY", VAPID)]).unwrap();
        assert!(matches!(default.uploads.store, UploadStore::Local(ref dir) if dir.ends_with("uploads")));
        assert_eq!(default.uploads.max_bytes, 25 * 1024 * 1024);
    }

    #[test]
    fn short_or_malformed_values_are_rejected() {
        assert!(Config::load(&[("JWT_SECRET", "short")]).is_err());
        let secret = "x".repeat(40);
        assert!(
            Config::load(&[("JWT_SECRET", secret.as_str()), ("VAPID_PRIVATE_KEY", VAPID), ("PARLEY_ADDR", "nope")])
                .is_err()
        );
        assert!(
            Config::load(&[("JWT_SECRET", secret.as_str()), ("VAPID_PRIVATE_KEY", VAPID), ("LOG_FORMAT", "xml")])
                .is_err()
        );
    }
}
