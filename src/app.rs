//! Builds the application from a [`Config`]: storage, shared state, services and router;
//! then serves it until told to stop.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    serve::{ListenerExt, TapIo},
};
use metrics_exporter_prometheus::PrometheusHandle;
use socketioxide::SocketIo;
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::watch,
    task::JoinHandle,
};

use crate::{
    clock::{SharedClock, SystemClock},
    config::Config,
    domain::unread::UNREAD_TICK,
    domain::{
        auth::AuthService,
        conversations::ConversationService,
        delivery::{LocalSockets, SILENT_LOSS_MARGIN},
        messages::{DELIVERED_FLUSH, MessageService},
        presence::PresenceService,
        reads::ReadService,
        typing::TypingService,
        unread::UnreadNotifier,
        users::UserService,
    },
    fanout::{Broadcaster, Fanout},
    realtime::{
        self, RealtimeHandle, SocketIoBroadcaster,
        first_ping::{self, FirstPingIo, FirstPingListener},
        redis_driver::ReconnectingDriver,
    },
    shared_state::{CONNECTION_RENEW, SharedState},
    storage::{self, Storage},
    telemetry,
};

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How often each replica looks for users whose devices all vanished (their replica died).
const PRESENCE_SWEEP: Duration = Duration::from_secs(5);
/// How often each replica announces typing stops that came due.
const TYPING_SWEEP: Duration = Duration::from_millis(200);

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// This process, among the replicas (random per start).
    pub instance: uuid::Uuid,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub storage: Arc<dyn Storage>,
    pub shared: SharedState,
    pub fanout: Fanout,
    pub auth: Arc<AuthService>,
    pub users: Arc<UserService>,
    pub conversations: Arc<ConversationService>,
    pub messages: Arc<MessageService>,
    pub presence: Arc<PresenceService>,
    pub typing: Arc<TypingService>,
    pub reads: Arc<ReadService>,
    pub unread: Arc<UnreadNotifier>,
    /// Users with a socket on this replica.
    pub local: Arc<LocalSockets>,
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// `broadcaster` reaches the sockets (see [`crate::fanout`]).
    pub async fn build(config: Config, clock: SharedClock, broadcaster: Arc<dyn Broadcaster>) -> anyhow::Result<Self> {
        let storage = storage::connect(config.database_url.expose()).await.context("opening the database")?;
        let shared = match &config.redis_url {
            Some(url) => SharedState::redis(url.expose(), &config.redis_key_prefix, clock.clone())
                .await
                .context("connecting to Redis")?,
            None => SharedState::in_process(clock.clone()),
        };
        let fanout = Fanout::new(broadcaster, config.legacy_events);
        let auth = AuthService::new(
            storage.clone(),
            shared.clone(),
            clock.clone(),
            config.jwt_secret.expose(),
            config.access_token_ttl,
            config.refresh_token_ttl,
            fanout.clone(),
        );
        let typing = Arc::new(TypingService::new(storage.clone(), shared.clone(), fanout.clone()));
        let unread = Arc::new(UnreadNotifier::new(storage.clone(), shared.clone(), fanout.clone()));
        let reads = ReadService::new(storage.clone(), shared.clone(), fanout.clone(), unread.clone(), clock.clone());
        let local = Arc::new(LocalSockets::default());
        let messages = MessageService::new(
            storage.clone(),
            shared.clone(),
            fanout.clone(),
            typing.clone(),
            unread.clone(),
            local.clone(),
            clock.clone(),
            config.message_rate_per_min,
        );
        let presence = Arc::new(PresenceService::new(
            storage.clone(),
            shared.clone(),
            fanout.clone(),
            clock.clone(),
            config.presence_grace,
        ));
        Ok(Self {
            instance: uuid::Uuid::new_v4(),
            users: Arc::new(UserService::new(storage.clone(), presence.clone(), clock.clone())),
            conversations: Arc::new(ConversationService::new(
                storage.clone(),
                fanout.clone(),
                typing.clone(),
                clock.clone(),
            )),
            messages: Arc::new(messages),
            presence,
            typing,
            reads: Arc::new(reads),
            unread,
            local,
            auth: Arc::new(auth),
            fanout,
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
    router: Router,
    realtime: Arc<dyn RealtimeHandle>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Binds `config.addr` (port 0 picks a free port; see [`Self::local_addr`]).
    pub async fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let addr = config.addr;
        let builder = SocketIo::builder()
            .max_buffer_size(realtime::SOCKET_BUFFER)
            .ping_interval(config.ping_interval)
            .ping_timeout(config.ping_timeout)
            .max_payload(config.socket_max_payload as u64)
            .ws_max_message_size(config.socket_max_payload)
            .ws_read_buffer_size(realtime::SOCKET_READ_BUFFER);
        let (state, router, realtime): (AppState, Router, Arc<dyn RealtimeHandle>) = match config.redis_url.clone() {
            None => {
                let (layer, io) = builder.build_layer();
                let state = AppState::build(config, clock, Arc::new(SocketIoBroadcaster::new(io.clone()))).await?;
                realtime::register(&io, state.clone());
                (state.clone(), detached(crate::http::router(state).layer(layer)), Arc::new(io))
            }
            Some(url) => {
                // Broadcasts reach the sockets of every replica through Redis pub/sub.
                let client = redis::Client::open(with_resp3(url.expose())).context("REDIS_URL")?;
                let driver =
                    ReconnectingDriver::connect(&client).await.context("connecting the Socket.IO adapter to Redis")?;
                let driver = RedisAdapterCtr::new_with_driver(
                    driver,
                    RedisAdapterConfig::new().with_prefix(format!("{}socket.io", config.redis_key_prefix)),
                );
                let (layer, io) =
                    builder.with_adapter::<CustomRedisAdapter<_, ReconnectingDriver>>(driver).build_layer();
                let state = AppState::build(config, clock, Arc::new(SocketIoBroadcaster::new(io.clone()))).await?;
                realtime::register(&io, state.clone()).await.map_err(|e| anyhow::anyhow!("Socket.IO adapter: {e}"))?;
                (state.clone(), detached(crate::http::router(state).layer(layer)), Arc::new(io))
            }
        };
        let router = crate::http::with_edges(router, &state.config);
        let listener = listen(addr).with_context(|| format!("binding {addr}"))?;
        Ok(Self { listener, state, router, realtime })
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
        let background = spawn_background(&self.state, &self.realtime, stop_rx.clone());
        let mut graceful = stop_rx.clone();
        let io = self.realtime.clone();
        let listener = accepting(self.listener);
        let server = axum::serve(listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = graceful.wait_for(|stop| *stop).await;
                tracing::info!("shutting down: closing sockets, draining requests");
                // Sockets are told to go (clients reconnect elsewhere) so the drain can end.
                io.close().await;
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
        // Batched receipts and delivered watermarks are written before the process goes.
        self.state.reads.flush().await;
        self.state.messages.flush_delivered().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Connections the kernel completes and queues before the server accepts them (capped by
/// `net.core.somaxconn`). tokio's default of 1,024 overflows in a reconnect storm, and a
/// dropped handshake costs the client a one-second SYN retry.
const LISTEN_BACKLOG: u32 = 8192;

pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The listener `axum::serve` gets: accepted connections answer Engine.IO's first PING
/// themselves ([`first_ping`]) and send small frames (acks, events) at once instead of
/// waiting on the peer's delayed ACK.
pub(crate) fn accepting(listener: TcpListener) -> TapIo<FirstPingListener, fn(&mut FirstPingIo<TcpStream>)> {
    FirstPingListener(listener).tap_io(set_nodelay)
}

fn set_nodelay(io: &mut FirstPingIo<TcpStream>) {
    if let Err(err) = io.get_mut().set_nodelay(true) {
        tracing::debug!(error = %err, "TCP_NODELAY not set");
    }
}

/// Periodic housekeeping; each task ends when the stop signal fires.
fn spawn_background(
    state: &AppState,
    realtime: &Arc<dyn RealtimeHandle>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
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
    let (io, renew_state) = (realtime.clone(), state.clone());
    let renew = every(CONNECTION_RENEW, stop.clone(), move || {
        let (io, state) = (io.clone(), renew_state.clone());
        async move {
            realtime::renew_connections(io.as_ref(), &state).await;
            // Sockets connected here all along got what is older than a silent-loss margin.
            state.messages.settle_delivery(&state.local.users(), SILENT_LOSS_MARGIN).await;
        }
    });
    let presence = state.presence.clone();
    let presence_sweep = every(PRESENCE_SWEEP, stop.clone(), move || {
        let presence = presence.clone();
        async move { presence.sweep().await }
    });
    let typing = state.typing.clone();
    let typing_sweep = every(TYPING_SWEEP, stop.clone(), move || {
        let typing = typing.clone();
        async move { typing.sweep().await }
    });
    let unread = state.unread.clone();
    let unread_push = every(UNREAD_TICK, stop.clone(), move || {
        let unread = unread.clone();
        async move { unread.flush().await }
    });
    let reads = state.reads.clone();
    let read_flush = every(state.config.receipt_flush, stop.clone(), move || {
        let reads = reads.clone();
        async move { reads.flush().await }
    });
    let messages = state.messages.clone();
    let delivered_flush = every(DELIVERED_FLUSH, stop.clone(), move || {
        let messages = messages.clone();
        async move { messages.flush_delivered().await }
    });
    let handle = state.metrics.clone();
    let upkeep = every(Duration::from_secs(5), stop, move || {
        let handle = handle.clone();
        async move {
            // Leak watch for soak runs: tasks alive in the runtime (every socket holds a few).
            let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
            metrics::gauge!("parley_runtime_alive_tasks").set(tasks as f64);
            handle.run_upkeep()
        }
    });
    vec![purge, renew, presence_sweep, typing_sweep, unread_push, read_flush, delivered_flush, upkeep]
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

/// The Socket.IO adapter's driver speaks RESP3 (Redis 7); add the flag unless the URL sets it.
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

/// Socket.IO requests reach the socketioxide layer with their URI and headers copied out of
/// hyper's read buffer (see [`realtime::detach_handshake`]), and new long-polling sessions
/// get their first PING answered (see [`first_ping`]).
fn detached(router: Router) -> Router {
    first_ping::with_polling_first_ping(router)
        .layer(tower::util::MapRequestLayer::new(realtime::detach_handshake::<axum::body::Body>))
}
