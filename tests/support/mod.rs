//! Shared by every test binary: real services (a fresh PostgreSQL database per test, a
//! Redis key prefix per test), the real server on an ephemeral port, and a REST client.
//!
//! PostgreSQL and Redis are used whenever reachable; under `CI=true` they must be, so a
//! CI run can never silently skip the production backends.
#![allow(dead_code)]

pub mod authz;
pub mod http;
pub mod keys;
pub mod push;
pub mod raw;
pub mod socket;
pub mod uploads;

use std::{sync::Arc, time::Duration};

use parley::{
    app::Application,
    clock::{ManualClock, SharedClock},
    config::Config,
    state::AppState,
};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub const JWT_SECRET: &str = "tests-only-secret-0123456789abcdef0123456789";

fn pg_admin_url() -> String {
    std::env::var("PARLEY_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("PARLEY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether a backend can be used; in CI an unreachable one fails the test instead.
pub async fn reachable(name: &str, probe: impl std::future::Future<Output = Result<(), String>>) -> bool {
    let why = match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(())) => return true,
        Ok(Err(err)) => err,
        Err(_) => "timed out".into(),
    };
    assert!(!in_ci(), "{name} must be reachable under CI=true: {why}");
    eprintln!("SKIPPED: {name} is not reachable ({why}); start it to run this test");
    false
}

pub async fn postgres_available() -> bool {
    static AVAILABLE: OnceCell<bool> = OnceCell::const_new();
    *AVAILABLE
        .get_or_init(|| {
            reachable("PostgreSQL", async {
                PgConnection::connect(&pg_admin_url()).await.map(drop).map_err(|e| e.to_string())
            })
        })
        .await
}

pub async fn redis_available() -> bool {
    static AVAILABLE: OnceCell<bool> = OnceCell::const_new();
    *AVAILABLE
        .get_or_init(|| {
            reachable("Redis", async {
                let client = redis::Client::open(redis_url()).map_err(|e| e.to_string())?;
                let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
                redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop).map_err(|e| e.to_string())
            })
        })
        .await
}

/// A PostgreSQL database that exists for one test and is dropped afterwards.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let name = format!("parley_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&pg_admin_url()).await.expect("connect to PostgreSQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let base = pg_admin_url();
        let (server, _) = base.rsplit_once('/').expect("the admin URL names a database");
        Self { url: format!("{server}/{name}"), name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a short-lived thread with its own runtime does the I/O.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(mut admin) = PgConnection::connect(&pg_admin_url()).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                    }
                });
            }
        })
        .join();
    }
}

/// The two ways Parley runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// SQLite + in-process state.
    Embedded,
    /// PostgreSQL + Redis.
    Production,
    /// Two production replicas sharing PostgreSQL and Redis; sockets alternate between them.
    Replicated,
}

/// A running server for one test; stops when dropped.
pub struct TestApp {
    pub base: String,
    pub clock: ManualClock,
    pub state: AppState,
    pub mode: Mode,
    vars: Vec<(String, String)>,
    /// The second replica, in [`Mode::Replicated`].
    pub other: Option<Box<TestApp>>,
    next_socket: std::sync::atomic::AtomicUsize,
    _data_dir: tempfile::TempDir,
    _database: Option<PgDatabase>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    /// `None` when the production services are not reachable (never in CI).
    pub async fn try_spawn(mode: Mode) -> Option<Self> {
        Self::try_spawn_with(mode, &[]).await
    }

    pub async fn try_spawn_with(mode: Mode, extra: &[(&str, &str)]) -> Option<Self> {
        if mode != Mode::Embedded && !(postgres_available().await && redis_available().await) {
            return None;
        }
        let data_dir = tempfile::tempdir().expect("temp dir");
        let database = match mode {
            Mode::Embedded => None,
            Mode::Production | Mode::Replicated => Some(PgDatabase::create().await),
        };
        let prefix = format!("parley-test:{}:", Uuid::new_v4().simple());
        let mut vars: Vec<(String, String)> = vec![
            ("PARLEY_ADDR".into(), "127.0.0.1:0".into()),
            ("PARLEY_DATA_DIR".into(), data_dir.path().display().to_string()),
            ("JWT_SECRET".into(), JWT_SECRET.into()),
            ("REDIS_KEY_PREFIX".into(), prefix),
            // Tests register many users from one address; tests/api/auth.rs checks the limit.
            ("REGISTRATIONS_PER_HOUR".into(), "0".into()),
        ];
        if let Some(db) = &database {
            vars.push(("DATABASE_URL".into(), db.url.clone()));
            vars.push(("REDIS_URL".into(), redis_url()));
        }
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push((k.to_string(), v.to_string()));
        }
        let mut app = Self::start(mode, vars, ManualClock::starting_now(), data_dir, database).await;
        if mode == Mode::Replicated {
            app.other = Some(Box::new(app.replica().await));
        }
        Some(app)
    }

    /// Where the next socket connects: in [`Mode::Replicated`], each replica in turn.
    pub fn socket_base(&self) -> String {
        let turn = self.next_socket.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match (&self.other, turn % 2) {
            (Some(other), 1) => other.base.clone(),
            _ => self.base.clone(),
        }
    }

    async fn start(
        mode: Mode,
        vars: Vec<(String, String)>,
        clock: ManualClock,
        data_dir: tempfile::TempDir,
        database: Option<PgDatabase>,
    ) -> Self {
        let config = Config::load(&VarList(vars.clone())).expect("test config");
        let shared_clock: SharedClock = Arc::new(clock.clone());
        let app = Application::build_with_clock(config, shared_clock).await.expect("build the app");
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            clock,
            state,
            mode,
            vars,
            other: None,
            next_socket: Default::default(),
            _data_dir: data_dir,
            _database: database,
            stop: Some(stop),
        }
    }

    /// A second replica sharing this one's PostgreSQL database, Redis prefix and clock.
    pub async fn replica(&self) -> TestApp {
        assert_ne!(self.mode, Mode::Embedded, "replicas share PostgreSQL and Redis");
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut vars = self.vars.clone();
        vars.retain(|(k, _)| k != "PARLEY_DATA_DIR");
        vars.push(("PARLEY_DATA_DIR".into(), data_dir.path().display().to_string()));
        Self::start(self.mode, vars, self.clock.clone(), data_dir, None).await
    }

    pub async fn spawn(mode: Mode) -> Self {
        Self::try_spawn(mode).await.expect("production services are reachable")
    }

    /// This server and, in [`Mode::Replicated`], the other replica.
    pub fn replicas(&self) -> Vec<&TestApp> {
        std::iter::once(self).chain(self.other.as_deref()).collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct VarList(Vec<(String, String)>);

impl parley::config::VarSource for VarList {
    fn var(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

/// Runs a test body in every mode: `embedded::name`, `production::name` (PostgreSQL + Redis),
/// and `replicated::name` (two replicas; sockets alternate between them).
#[macro_export]
macro_rules! in_all_modes {
    ($($name:ident),* $(,)?) => {
        $crate::in_both_modes!($($name),*);
        mod replicated {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::support::TestApp::try_spawn($crate::support::Mode::Replicated).await {
                        super::$name(app).await
                    }
                }
            )*
        }
    };
}

/// Like [`in_all_modes!`] for bodies taking a `TestApp` from a custom `spawn(mode)` in the
/// calling module (for tests that need particular settings).
#[macro_export]
macro_rules! in_all_modes_spawned_by {
    ($spawn:ident; $($name:ident),* $(,)?) => {
        mod embedded { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(app) = super::$spawn($crate::support::Mode::Embedded).await { super::$name(app).await } }
        )* }
        mod production { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(app) = super::$spawn($crate::support::Mode::Production).await { super::$name(app).await } }
        )* }
        mod replicated { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(app) = super::$spawn($crate::support::Mode::Replicated).await { super::$name(app).await } }
        )* }
    };
}

/// Runs a test body once per mode: `embedded::name` always, `production::name` on
/// PostgreSQL + Redis (skipped with a notice when they are unreachable outside CI).
#[macro_export]
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::support::TestApp::spawn($crate::support::Mode::Embedded).await;
                    super::$name(app).await
                }
            )*
        }
        mod production {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::support::TestApp::try_spawn($crate::support::Mode::Production).await {
                        super::$name(app).await
                    }
                }
            )*
        }
    };
}
