//! The composition root: builds the Socket.IO layer (with the Redis adapter when
//! configured), the [`AppState`], the REST router and the listener; then serves until told
//! to stop, with the periodic background work, and drains.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use socketioxide::{SocketIo, SocketIoBuilder, adapter::Adapter};
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    admin::{self, watch::AdminRunner},
    clock::{SharedClock, SystemClock},
    config::Config,
    domain::{delivery::SILENT_LOSS_MARGIN, messages::DELIVERED_FLUSH, unread::UNREAD_TICK},
    fanout::{Delivery, socketio::SocketIoDelivery},
    net_guard::EndpointPolicy,
    outbox::{OutboxSender, OutboxSettings, WebhookTarget},
    rawws::{self, RawGateway, RawHub, delivery::RawDelivery},
    realtime::{self, RealtimeHandle},
    shared_state::CONNECTION_RENEW,
    state::{AppState, ObserverSlot, Services},
    storage::Storage,
    transport::{self, first_ping, handshake, redis_driver::ReconnectingDriver},
};

/// How long a drain waits for the sends under way to finish their broadcasts.
const SEND_DRAIN: Duration = Duration::from_secs(5);
/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How often each replica looks for users whose devices all vanished (their replica died).
const PRESENCE_SWEEP: Duration = Duration::from_secs(5);
/// How often each replica announces typing stops that came due.
const TYPING_SWEEP: Duration = Duration::from_millis(200);
/// How often the outbox's depth and oldest row are read for the metrics.
const OUTBOX_OBSERVE: Duration = Duration::from_secs(5);

pub struct Application {
    listener: TcpListener,
    state: AppState,
    router: Router,
    realtime: Arc<dyn RealtimeHandle>,
    /// The admin UI's watch of this replica (`ADMIN_UI=true`).
    admin: Option<Arc<dyn AdminRunner>>,
    /// The raw WebSocket gateway's connections here.
    raw: Arc<RawHub>,
    /// Sends this replica's share of the outbox (pushes and webhooks).
    outbox: Arc<OutboxSender>,
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
        let raw = Arc::new(RawHub::default());
        let (state, router, realtime, admin) = match config.redis_url.clone() {
            None => {
                let (layer, io) = builder.build_layer();
                let state = build_state(config, clock, &io, &raw).await?;
                realtime::register(&io, state.clone());
                let admin = state.config.admin_ui.clone().map(|admin| {
                    let ((), watch) = admin::register(&io, &state, admin);
                    watch as Arc<dyn AdminRunner>
                });
                (state.clone(), detached(routes(&state, &raw).layer(layer)), handle(io), admin)
            }
            Some(url) => {
                // Broadcasts reach the sockets of every replica through Redis pub/sub.
                let (layer, io) = with_redis_adapter(builder, url.expose(), &config.redis_key_prefix).await?;
                let state = build_state(config, clock, &io, &raw).await?;
                realtime::register(&io, state.clone()).await.map_err(|e| anyhow::anyhow!("Socket.IO adapter: {e}"))?;
                let admin = match state.config.admin_ui.clone() {
                    Some(admin) => {
                        let (init, watch) = admin::register(&io, &state, admin);
                        init.await.map_err(|e| anyhow::anyhow!("Socket.IO adapter (/admin): {e}"))?;
                        Some(watch as Arc<dyn AdminRunner>)
                    }
                    None => None,
                };
                (state.clone(), detached(routes(&state, &raw).layer(layer)), handle(io), admin)
            }
        };
        let router = crate::http::with_edges(router, &state.config);
        let outbox = Arc::new(outbox_sender(&state)?);
        let listener = transport::listen(addr).with_context(|| format!("binding {addr}"))?;
        Ok(Self { listener, state, router, realtime, admin, raw, outbox })
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
        let mut background = spawn_background(&self.state, &self.realtime, &self.raw, stop_rx.clone());
        if let Some(admin) = &self.admin {
            background.push(tokio::spawn(admin.clone().run(stop_rx.clone())));
        }
        background.push(tokio::spawn(self.outbox.clone().run(stop_rx.clone())));
        background.push(every(OUTBOX_OBSERVE, stop_rx.clone(), self.outbox.clone(), |outbox| async move {
            outbox.observe().await
        }));
        let mut graceful = stop_rx.clone();
        let (io, raw, state) = (self.realtime.clone(), self.raw.clone(), self.state.clone());
        let sever = tokio_util::sync::CancellationToken::new();
        let listener = transport::accepting(self.listener, sever.clone());
        let server = axum::serve(listener, self.router.into_make_service_with_connect_info::<crate::transport::Peer>())
            .with_graceful_shutdown(async move {
                let _ = graceful.wait_for(|stop| *stop).await;
                tracing::info!("shutting down: finishing sends, cutting socket transports, draining requests");
                // The replica vouches for no more deliveries (its sockets are about to be cut),
                // takes no new sends, and lets each send under way finish its broadcast: a
                // message stored and never broadcast would reach nobody live.
                state.platform.local.drain();
                if tokio::time::timeout(SEND_DRAIN, state.services.messages.drain()).await.is_err() {
                    tracing::warn!("sends still under way after the drain's wait; cutting sockets anyway");
                }
                // Engine.IO connections are cut, not closed with a close packet: every client
                // (python-socketio too) takes that for a transport error and reconnects
                // elsewhere. Then the server lets go of its sockets (their disconnect handlers
                // run), and the raw gateway's clients get a 1001 close.
                sever.cancel();
                io.close().await;
                raw.close_all(1001, "server shutting down");
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
        // Batched receipts are written before the process goes (delivered watermarks gathered
        // since the drain began were dropped: see `MessageService::drain`).
        self.state.services.reads.flush().await;
        self.state.services.messages.flush_delivered().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The outbox sender of this replica, as configured.
fn outbox_sender(state: &AppState) -> anyhow::Result<OutboxSender> {
    let push = &state.config.push;
    let webhook = match (&push.webhook_url, &push.webhook_secret) {
        (Some(url), Some(secret)) => Some(WebhookTarget {
            url: url.parse().context("WEBHOOK_URL")?,
            secret: secret.expose().as_bytes().to_vec(),
        }),
        _ => None,
    };
    let settings = OutboxSettings {
        vapid: state.platform.vapid.clone(),
        webhook,
        concurrency: push.concurrency,
        timeout: push.timeout,
        public_only: state.config.push_policy() == EndpointPolicy::PublicHttps,
    };
    let platform = &state.platform;
    OutboxSender::new(platform.storage.clone(), state.clock.clone(), platform.outbox.clone(), settings)
}

/// The state, with both gateways as the way out to clients: the Socket.IO server, and the
/// raw WebSocket connections (across replicas through Redis when configured).
async fn build_state<A: Adapter>(
    config: Config,
    clock: SharedClock,
    io: &SocketIo<A>,
    raw: &Arc<RawHub>,
) -> anyhow::Result<AppState> {
    let legacy = config.legacy_events;
    let redis = config.redis_url.as_ref().map(|url| (url.expose().to_owned(), config.redis_key_prefix.clone()));
    AppState::build(config, clock, async |storage: &Arc<dyn Storage>, observer: &ObserverSlot| {
        let raw = match redis {
            None => RawDelivery::local(raw.clone(), storage.clone()),
            Some((url, prefix)) => {
                RawDelivery::redis(raw.clone(), storage.clone(), &url, &prefix, uuid::Uuid::new_v4())
                    .await
                    .context("connecting the raw WebSocket delivery to Redis")?
            }
        };
        let deliveries: Vec<Arc<dyn Delivery>> =
            vec![Arc::new(SocketIoDelivery::new(io.clone(), legacy, observer.clone())), Arc::new(raw)];
        Ok(deliveries)
    })
    .await
}

/// REST, and the raw WebSocket gateway beside it.
fn routes(state: &AppState, raw: &Arc<RawHub>) -> Router {
    let gateway = Arc::new(RawGateway::new(state.clone(), raw.clone()));
    crate::http::router(state.clone()).merge(rawws::router(gateway))
}

fn handle<A: Adapter>(io: SocketIo<A>) -> Arc<dyn RealtimeHandle> {
    Arc::new(io)
}

type RedisAdapter = CustomRedisAdapter<socketioxide::adapter::Emitter, ReconnectingDriver>;

/// The Socket.IO layer on the Redis adapter (over a driver that survives Redis restarts).
async fn with_redis_adapter(
    builder: SocketIoBuilder,
    url: &str,
    prefix: &str,
) -> anyhow::Result<(socketioxide::layer::SocketIoLayer<RedisAdapter>, SocketIo<RedisAdapter>)>
where
    RedisAdapter: DefinedAdapter,
{
    let client = redis::Client::open(with_resp3(url)).context("REDIS_URL")?;
    let driver = ReconnectingDriver::connect(&client).await.context("connecting the Socket.IO adapter to Redis")?;
    let driver =
        RedisAdapterCtr::new_with_driver(driver, RedisAdapterConfig::new().with_prefix(format!("{prefix}socket.io")));
    Ok(builder.with_adapter::<CustomRedisAdapter<_, ReconnectingDriver>>(driver).build_layer())
}

/// Periodic housekeeping; each task ends when the stop signal fires.
fn spawn_background(
    state: &AppState,
    realtime: &Arc<dyn RealtimeHandle>,
    raw: &Arc<RawHub>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let services = &state.services;
    let purge = every(PURGE_EVERY, stop.clone(), services.clone(), |services: Arc<Services>| async move {
        match services.auth.purge_expired().await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired refresh tokens deleted"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "purging refresh tokens failed"),
        }
    });
    let gateways = (realtime.clone(), raw.clone(), state.clone());
    let renew = every(CONNECTION_RENEW, stop.clone(), gateways, |(io, raw, state)| async move {
        // This replica's connections, on both gateways, stay in the shared presence registry.
        let mut live = io.local_sockets();
        live.extend(raw.local_connections());
        if let Err(err) = state.platform.shared.presence.renew(&live).await {
            tracing::warn!(error = %err, connections = live.len(), "renewing connections failed");
        }
        // Sockets connected here all along got what is older than a silent-loss margin.
        state.services.messages.settle_delivery(&state.platform.local.users(), SILENT_LOSS_MARGIN).await;
    });
    let presence_sweep =
        every(
            PRESENCE_SWEEP,
            stop.clone(),
            services.clone(),
            |services| async move { services.presence.sweep().await },
        );
    let typing_sweep =
        every(TYPING_SWEEP, stop.clone(), services.clone(), |services| async move { services.typing.sweep().await });
    let unread_push =
        every(UNREAD_TICK, stop.clone(), services.clone(), |services| async move { services.unread.flush().await });
    let read_flush = every(state.config.receipt_flush, stop.clone(), services.clone(), |services| async move {
        services.reads.flush().await
    });
    let delivered_flush = every(DELIVERED_FLUSH, stop.clone(), services.clone(), |services| async move {
        services.messages.flush_delivered().await
    });
    let uploads_sweep =
        every(state.config.uploads.cleanup_interval, stop.clone(), services.clone(), |services| async move {
            let deleted = services.uploads.sweep().await;
            if deleted > 0 {
                tracing::info!(deleted, "uploads left unattached for 24 hours deleted");
            }
        });
    let upkeep = every(Duration::from_secs(5), stop, state.platform.clone(), |platform| async move {
        // Leak watch for soak runs: tasks alive in the runtime (every socket holds a few).
        let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        metrics::gauge!("parley_runtime_alive_tasks").set(tasks as f64);
        platform.metrics.run_upkeep()
    });
    vec![purge, renew, presence_sweep, typing_sweep, unread_push, read_flush, delivered_flush, uploads_sweep, upkeep]
}

/// Runs `job` with a clone of `with` every `period` until `stop`.
fn every<T, F, Fut>(period: Duration, mut stop: watch::Receiver<bool>, with: T, job: F) -> JoinHandle<()>
where
    T: Clone + Send + 'static,
    F: Fn(T) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = ticker.tick() => job(with.clone()).await,
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
/// hyper's read buffer (see [`handshake::detach_handshake`]), and new long-polling sessions
/// get their first PING answered (see [`first_ping`]).
fn detached(router: Router) -> Router {
    first_ping::with_polling_first_ping(router)
        .layer(tower::util::MapRequestLayer::new(handshake::detach_handshake::<axum::body::Body>))
}
