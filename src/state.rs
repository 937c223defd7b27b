//! What every REST handler and socket handler reaches, wired once: the configuration, the
//! clock, the domain [`Services`], and the [`Platform`] they run on (database, shared state,
//! the fan-out to clients, this replica's sockets, metrics). Built by [`AppState::build`];
//! the application (`crate::app`) only builds, serves and runs background work.

use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    clock::SharedClock,
    config::Config,
    domain::{
        Deps, Outbox,
        auth::{AuthService, TokenSettings},
        conversations::ConversationService,
        delivery::LocalSockets,
        groups::GroupService,
        keys::KeyService,
        messages::{MessageService, SendPipeline},
        pins::PinService,
        presence::PresenceService,
        push::PushService,
        quota::FloodCooldown,
        reactions::ReactionService,
        reads::ReadService,
        search::SearchService,
        typing::TypingService,
        unread::UnreadNotifier,
        uploads::UploadService,
        users::UserService,
    },
    fanout::{Delivery, Fanout},
    outbox::webpush::Vapid,
    shared_state::SharedState,
    storage::{self, Storage},
    telemetry,
};

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub services: Arc<Services>,
    pub platform: Arc<Platform>,
}

/// The domain services, shared by REST and the socket gateway.
pub struct Services {
    pub auth: AuthService,
    pub users: UserService,
    pub conversations: Arc<ConversationService>,
    pub groups: GroupService,
    pub keys: KeyService,
    pub messages: MessageService,
    pub pins: PinService,
    pub presence: Arc<PresenceService>,
    pub push: PushService,
    pub reactions: ReactionService,
    pub search: SearchService,
    pub typing: Arc<TypingService>,
    pub reads: ReadService,
    pub unread: Arc<UnreadNotifier>,
    pub uploads: UploadService,
    /// Who flooded, refused new connections for a while.
    pub floods: FloodCooldown,
}

/// What the services run on, for the few places that reach it directly (health checks,
/// metrics, the socket gateway's bookkeeping).
pub struct Platform {
    /// This process, among the replicas (random per start).
    pub instance: uuid::Uuid,
    pub storage: Arc<dyn Storage>,
    pub shared: SharedState,
    pub fanout: Fanout,
    /// Users with a socket on this replica.
    pub local: Arc<LocalSockets>,
    pub metrics: PrometheusHandle,
    /// The VAPID identity pushes are signed with.
    pub vapid: Arc<Vapid>,
    /// Wakes this replica's outbox sender, and tells it when sends are waiting.
    pub outbox: Outbox,
    /// Told what `/chat` sockets do (the admin UI's watch, when `ADMIN_UI=true`).
    pub observer: ObserverSlot,
}

/// Where the [`SocketObserver`] goes, once there is one (set at most once, at start).
pub type ObserverSlot = Arc<std::sync::OnceLock<Arc<dyn SocketObserver>>>;

/// Sees `/chat` sockets' traffic: the events they send and get, and why they go. Calls
/// must not wait: an observer queues what it keeps.
pub trait SocketObserver: Send + Sync {
    /// Whether it wants `event_received` / `event_sent` (serializing them costs).
    fn watches_events(&self) -> bool;
    fn connected(&self);
    fn disconnected(&self, sid: &str, reason: &'static str);
    /// A client event and its payload as sent (the observer redacts what it keeps).
    fn event_received(&self, sid: &str, event: &str, payload: Option<&serde_json::Value>);
    /// An event sent to the sockets in `rooms` less those in `except` (the observer finds
    /// which of them are on this replica).
    fn event_sent(&self, rooms: &[String], except: &[String], event: &str, payload: &serde_json::Value);
}

impl AppState {
    /// Opens the database and the shared state (Redis when configured) and wires the
    /// services; `deliveries` makes the transports that reach clients (see [`crate::fanout`])
    /// once the database is open.
    pub async fn build(
        config: Config,
        clock: SharedClock,
        deliveries: impl AsyncFnOnce(&Arc<dyn Storage>, &ObserverSlot) -> anyhow::Result<Vec<Arc<dyn Delivery>>>,
    ) -> anyhow::Result<Self> {
        let storage = storage::connect(config.database_url.expose()).await.context("opening the database")?;
        let shared = match &config.redis_url {
            Some(url) => SharedState::redis(url.expose(), &config.redis_key_prefix, clock.clone())
                .await
                .context("connecting to Redis")?,
            None => SharedState::in_process(clock.clone()),
        };
        let observer = ObserverSlot::default();
        let fanout = Fanout::new(deliveries(&storage, &observer).await?);
        let outbox = Outbox { webhooks: config.push.webhook_url.is_some(), ..Outbox::default() };
        let deps = Deps {
            storage: storage.clone(),
            shared: shared.clone(),
            fanout: fanout.clone(),
            clock: clock.clone(),
            outbox: outbox.clone(),
        };
        let local = Arc::new(LocalSockets::default());
        let vapid = Arc::new(
            Vapid::new(config.push.vapid_private_key.expose(), &config.push.vapid_subject).context("the VAPID key")?,
        );
        let services = Services::build(&deps, &config, Wiring { local: local.clone(), vapid: &vapid })?;
        let platform = Platform {
            instance: uuid::Uuid::new_v4(),
            storage,
            shared,
            fanout,
            local,
            metrics: telemetry::metrics_handle(),
            vapid,
            outbox,
            observer,
        };
        Ok(Self { config: Arc::new(config), clock, services: Arc::new(services), platform: Arc::new(platform) })
    }
}

/// What some services are built with besides [`Deps`] and the configuration.
struct Wiring<'a> {
    local: Arc<LocalSockets>,
    vapid: &'a Vapid,
}

impl Services {
    fn build(deps: &Deps, config: &Config, wiring: Wiring<'_>) -> anyhow::Result<Self> {
        let tokens = TokenSettings {
            jwt_secret: config.jwt_secret.expose(),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            registrations_per_hour: config.registrations_per_hour,
        };
        let typing = Arc::new(TypingService::new(deps));
        let unread = Arc::new(UnreadNotifier::new(deps));
        let presence = Arc::new(PresenceService::new(deps, config.presence_grace));
        let pipeline = SendPipeline { typing: typing.clone(), unread: unread.clone(), local: wiring.local };
        let conversations = Arc::new(ConversationService::new(deps, typing.clone()));
        Ok(Self {
            auth: AuthService::new(deps, tokens),
            users: UserService::new(deps, presence.clone()),
            groups: GroupService::new(deps, conversations.clone()),
            keys: KeyService::new(deps),
            conversations,
            messages: MessageService::new(deps, pipeline, config.message_rate_per_min),
            pins: PinService::new(deps),
            reactions: ReactionService::new(deps, config.message_rate_per_min),
            search: SearchService::new(deps),
            reads: ReadService::new(deps, unread.clone()),
            presence,
            push: PushService::new(deps, wiring.vapid.public_key().to_owned()),
            typing,
            unread,
            uploads: UploadService::new(deps, &config.uploads).context("the upload store")?,
            floods: FloodCooldown::new(deps.shared.clone(), config.flood_cooldown),
        })
    }
}
