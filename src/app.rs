//! Builds the application from a [`Config`]: storage, shared state, services and router;
//! then serves it until told to stop.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    clock::{SharedClock, SystemClock},
    config::Config,
    domain::{auth::AuthService, users::UserService},
    shared_state::SharedState,
    storage::{self, Storage},
    telemetry,
};

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub storage: Arc<dyn Storage>,
    pub shared: SharedState,
    pub auth: Arc<AuthService>,
    pub users: Arc<UserService>,
    pub metrics: PrometheusHandle,
}

impl AppState {
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let storage = storage::connect(config.database_url.expose())
            .await
            .context("opening the database")?;
        let shared = match &config.redis_url {
            Some(url) => SharedState::redis(url.expose(), &config.redis_key_prefix, clock.clone())
                .await
                .context("connecting to Redis")?,
            None => SharedState::in_process(clock.clone()),
        };
        let auth = AuthService::new(
            storage.clone(),
            shared.clone(),
            clock.clone(),
            config.jwt_secret.expose(),
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        Ok(Self {
            users: Arc::new(UserService::new(storage.clone(), clock.clone())),
            auth: Arc::new(auth),
            storage,
            shared,
            clock,
            metrics: telemetry::metrics_handle(),
            config: Arc::new(config),
        })
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Binds `config.addr` (port 0 picks a free port; see [`Self::local_addr`]).
    pub async fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let addr = config.addr;
        let state = AppState::build(config, clock).await?;
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests for at most
    /// [`SHUTDOWN_GRACE`].
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let background = spawn_background(&self.state, stop_rx.clone());
        let app = crate::http::router(self.state.clone());
        let mut graceful = stop_rx.clone();
        let server = axum::serve(self.listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = graceful.wait_for(|stop| *stop).await;
                tracing::info!("shutting down: no new connections, draining requests");
            });
        let mut deadline = stop_rx;
        tokio::select! {
            result = server => result.context("serving HTTP")?,
            _ = async {
                let _ = deadline.wait_for(|stop| *stop).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => tracing::warn!("shutdown grace period over; closing remaining connections"),
        }
        for task in background {
            task.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Periodic housekeeping; each task ends when the stop signal fires.
fn spawn_background(state: &AppState, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let auth = state.auth.clone();
    let purge = every(PURGE_EVERY, stop.clone(), move || {
        let auth = auth.clone();
        async move {
            match auth.purge_expired().await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "expired refresh tokens deleted"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "purging refresh tokens failed"),
            }
        }
    });
    let handle = state.metrics.clone();
    let upkeep = every(Duration::from_secs(5), stop, move || {
        let handle = handle.clone();
        async move { handle.run_upkeep() }
    });
    vec![purge, upkeep]
}

fn every<F, Fut>(period: Duration, mut stop: watch::Receiver<bool>, mut job: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = ticker.tick() => job().await,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
    })
}
