//! Each replica's own sockets, as the admin UI sees them. Every [`LOOK_EVERY`] the watch
//! compares this replica's sockets and rooms with what it told last time, and broadcasts
//! the difference to `/admin` (so to the admin UIs on every replica): `socket_connected`,
//! `socket_updated`, `socket_disconnected`, `room_joined`, `room_left`. Whatever moved a
//! socket (a connect, a subscription, a membership change on another replica, an admin
//! operation), the UI is told, with no hook on the paths that move it. Every
//! [`STATS_EVERY`] it broadcasts the replica's `server_stats`.
//!
//! In the UI's production mode only the statistics go out.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::{SocketIo, adapter::Adapter};
use tokio::sync::{mpsc, watch};

use super::{
    ADMIN_NAMESPACE, NAMESPACES,
    view::{SocketView, redacted},
};
use crate::{
    clock::SharedClock,
    config::AdminUiConfig,
    fanout::{rooms::socket_room, socketio::CHAT_NAMESPACE},
    state::{AppState, SocketObserver},
};

/// How often the watch looks at this replica's sockets.
pub const LOOK_EVERY: Duration = Duration::from_millis(500);
/// How often each replica sends its `server_stats` (the npm package's period).
pub const STATS_EVERY: Duration = Duration::from_secs(2);
/// The reason told for a socket that went without one being recorded.
const GONE: &str = "transport close";
/// Socket events waiting to be told (development mode); more are dropped.
const FEED_DEPTH: usize = 4096;

/// A `/chat` socket's event, to be told as `event_received` / `event_sent`.
enum Feed {
    Received {
        sid: String,
        args: Value,
        at: String,
    },
    /// To these sockets of this replica.
    Sent {
        sids: Vec<String>,
        args: Value,
        at: String,
    },
}

/// A socket by namespace and id.
type Key = (&'static str, String);

pub struct AdminWatch<A: Adapter> {
    io: SocketIo<A>,
    clock: SharedClock,
    server_id: String,
    hostname: String,
    started: Instant,
    development: bool,
    readonly: bool,
    trust_proxy: bool,
    seen: Mutex<Seen>,
    feed: mpsc::Sender<Feed>,
    /// Admin sockets of other replicas already told this replica's sockets.
    greeted: Mutex<HashSet<String>>,
    /// Taken by [`AdminRunner::run`].
    feed_rx: Mutex<Option<mpsc::Receiver<Feed>>>,
}

#[derive(Default)]
struct Seen {
    sockets: HashMap<Key, SocketView>,
    /// Why sockets went, recorded when they did (told with their `socket_disconnected`).
    reasons: HashMap<Key, String>,
    /// `aggregatedEvents` since the last `server_stats`: (second in ms, type, sub-type).
    events: HashMap<(i64, &'static str, Option<String>), u64>,
}

/// What one look found changed.
#[derive(Default)]
struct Changes {
    connected: Vec<Value>,
    updated: Vec<Value>,
    disconnected: Vec<(&'static str, String, String)>,
    joined: Vec<(&'static str, String, String)>,
    left: Vec<(&'static str, String, String)>,
}

impl<A: Adapter> AdminWatch<A> {
    pub fn new(io: SocketIo<A>, state: &AppState, config: &AdminUiConfig) -> Arc<Self> {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "parley".into());
        let (feed, feed_rx) = mpsc::channel(FEED_DEPTH);
        Arc::new(Self {
            io,
            clock: state.clock.clone(),
            // Unique per replica even when replicas share a host.
            server_id: format!("{hostname}#{}", std::process::id()),
            hostname,
            started: Instant::now(),
            development: config.development,
            readonly: config.readonly,
            trust_proxy: state.config.trust_proxy,
            seen: Mutex::default(),
            feed,
            greeted: Mutex::default(),
            feed_rx: Mutex::new(Some(feed_rx)),
        })
    }

    pub fn development(&self) -> bool {
        self.development
    }

    /// The UI's `config.supportedFeatures`: what it may offer. Read-only offers no operation.
    pub fn features(&self) -> Vec<&'static str> {
        let mut features = if self.readonly {
            Vec::new()
        } else {
            vec!["JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
        };
        features.push("AGGREGATED_EVENTS");
        if self.development {
            features.push("ALL_EVENTS");
        }
        features
    }

    /// This replica's sockets as last told (so what follows them is exactly the changes).
    /// `/chat` first: the UI opens on the first namespace it is told of.
    pub fn all_sockets(&self) -> Vec<Value> {
        let seen = self.seen();
        let mut views: Vec<&SocketView> = seen.sockets.values().collect();
        views.sort_by_key(|view| (NAMESPACES.iter().position(|nsp| *nsp == view.nsp), view.id.clone()));
        views.into_iter().map(SocketView::serialized).collect()
    }

    /// Counts an admin socket's connection (`aggregatedEvents`).
    pub fn admin_connected(&self) {
        self.count("rawConnection", None);
    }

    /// Records why an admin socket went, for its `socket_disconnected`, and counts it.
    pub fn admin_disconnected(&self, sid: String, reason: &'static str) {
        self.gone(ADMIN_NAMESPACE, sid, reason);
    }

    fn gone(&self, nsp: &'static str, sid: String, reason: &'static str) {
        self.seen().reasons.insert((nsp, sid), reason.to_owned());
        self.count("rawDisconnection", Some(reason));
    }

    /// One more `kind` event in this second (counted when it happens, so sockets that come
    /// and go between two looks count too).
    fn count(&self, kind: &'static str, sub: Option<&'static str>) {
        let now_ms = self.clock.now_ms();
        let second = now_ms - now_ms.rem_euclid(1000);
        *self.seen().events.entry((second, kind, sub.map(str::to_owned))).or_default() += 1;
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn timestamp(&self) -> String {
        self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// One look at this replica's sockets; the changes go to the admin UIs.
    pub async fn look(&self) {
        let changes = self.changes();
        if !self.development {
            return;
        }
        let at = self.timestamp();
        for socket in changes.connected {
            self.broadcast("socket_connected", &(socket, &at)).await;
        }
        for update in changes.updated {
            self.broadcast("socket_updated", &update).await;
        }
        for (nsp, room, sid) in changes.joined {
            self.broadcast("room_joined", &(nsp, room, sid, &at)).await;
        }
        for (nsp, sid, reason) in changes.disconnected {
            self.broadcast("socket_disconnected", &(nsp, sid, reason, &at)).await;
        }
        for (nsp, room, sid) in changes.left {
            self.broadcast("room_left", &(nsp, room, sid, &at)).await;
        }
    }

    fn changes(&self) -> Changes {
        let now_ms = self.clock.now_ms();
        let mut current: HashMap<Key, SocketView> = HashMap::new();
        for nsp in NAMESPACES {
            let Some(ns) = self.io.of(nsp) else { continue };
            for socket in ns.local().sockets() {
                let key = (nsp, socket.id.to_string());
                let view = match self.seen().sockets.get(&key) {
                    // Only what may change is read again; without socket lists (production
                    // mode), only what the statistics count.
                    Some(known) if !self.development => {
                        SocketView { transport: super::view::transport_name(&socket), ..known.clone() }
                    }
                    Some(known) => SocketView {
                        transport: super::view::transport_name(&socket),
                        data: super::view::data_of(&socket),
                        rooms: super::view::rooms_of(&socket),
                        ..known.clone()
                    },
                    None if !self.development => SocketView::light(&socket, nsp),
                    None => SocketView::of(&socket, nsp, now_ms, self.trust_proxy),
                };
                current.insert(key, view);
            }
        }
        let mut seen = self.seen();
        let mut changes = Changes::default();
        for (key, view) in &current {
            let Some(known) = seen.sockets.get(key) else {
                changes.connected.push(view.serialized());
                continue;
            };
            if known.transport != view.transport {
                changes.updated.push(json!({ "id": view.id, "nsp": view.nsp, "transport": view.transport }));
            }
            if known.data != view.data {
                changes.updated.push(json!({ "id": view.id, "nsp": view.nsp, "data": view.data }));
            }
            let room_change =
                |rooms: &BTreeSet<String>, other: &BTreeSet<String>| -> Vec<(&'static str, String, String)> {
                    rooms.difference(other).map(|room| (view.nsp, room.clone(), view.id.clone())).collect()
                };
            changes.joined.extend(room_change(&view.rooms, &known.rooms));
            changes.left.extend(room_change(&known.rooms, &view.rooms));
        }
        let gone: Vec<Key> = seen.sockets.keys().filter(|key| !current.contains_key(*key)).cloned().collect();
        for key in gone {
            let reason = seen.reasons.remove(&key).unwrap_or_else(|| GONE.to_owned());
            if let Some(view) = seen.sockets.remove(&key) {
                changes.left.extend(view.rooms.iter().map(|room| (view.nsp, room.clone(), view.id.clone())));
            }
            changes.disconnected.push((key.0, key.1, reason));
        }
        seen.reasons.retain(|key, _| current.contains_key(key));
        seen.sockets = current;
        changes
    }

    /// This replica's `server_stats`.
    pub fn stats(&self) -> Value {
        let mut seen = self.seen();
        let polling = seen.sockets.values().filter(|s| s.transport == "polling").count();
        let namespaces: Vec<Value> = NAMESPACES
            .iter()
            .map(|nsp| json!({ "name": nsp, "socketsCount": seen.sockets.keys().filter(|(n, _)| n == nsp).count() }))
            .collect();
        let events: Vec<Value> = seen
            .events
            .drain()
            .map(|((timestamp, kind, sub), count)| match sub {
                Some(sub) => json!({ "timestamp": timestamp, "type": kind, "subType": sub, "count": count }),
                None => json!({ "timestamp": timestamp, "type": kind, "count": count }),
            })
            .collect();
        json!({
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": seen.sockets.len(),
            "pollingClientsCount": polling,
            "aggregatedEvents": events,
            "namespaces": namespaces,
        })
    }

    /// Tells a socket event: `event_received` for the socket that sent it, `event_sent` for
    /// each socket of this replica it went to.
    async fn tell(&self, feed: Feed) {
        match feed {
            Feed::Received { sid, args, at } => {
                self.broadcast("event_received", &(CHAT_NAMESPACE, sid, args, at)).await
            }
            Feed::Sent { sids, args, at } => {
                for sid in sids {
                    self.broadcast("event_sent", &(CHAT_NAMESPACE, sid, &args, &at)).await;
                }
            }
        }
    }

    /// An admin UI connected to another replica got that replica's `all_sockets`; this one
    /// tells it its own sockets, as `socket_connected` (which the UI takes once per socket),
    /// at its next statistics. Admin sockets are found on every replica through the adapter.
    async fn greet_remote_admins(&self) {
        let Some(admin) = self.io.of(ADMIN_NAMESPACE) else { return };
        let local: HashSet<String> = admin.clone().local().sockets().iter().map(|s| s.id.to_string()).collect();
        let everyone = match admin.fetch_sockets().await {
            Ok(sockets) => sockets,
            Err(err) => {
                tracing::debug!(error = %err, "could not list the other replicas' admin sockets");
                return;
            }
        };
        let remote: HashSet<String> =
            everyone.iter().map(|s| s.data().id.to_string()).filter(|id| !local.contains(id)).collect();
        let new: Vec<String> = {
            let mut greeted = self.greeted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let new = remote.difference(&greeted).cloned().collect();
            *greeted = remote;
            new
        };
        if new.is_empty() {
            return;
        }
        let (sockets, at) = (self.all_sockets(), self.timestamp());
        for id in new {
            let Some(admin) = self.io.of(ADMIN_NAMESPACE) else { return };
            let admin = admin.to(socket_room(&id));
            for socket in &sockets {
                if let Err(err) = admin.clone().emit("socket_connected", &(socket, &at)).await {
                    tracing::debug!(error = %err, "could not tell an admin UI on another replica");
                    break;
                }
            }
        }
    }

    fn queue(&self, feed: Feed) {
        if self.feed.try_send(feed).is_err() {
            tracing::debug!("admin UI event feed full; an event is not shown");
        }
    }

    async fn broadcast(&self, event: &'static str, data: &(impl Serialize + ?Sized)) {
        let Some(admin) = self.io.of(ADMIN_NAMESPACE) else { return };
        if let Err(err) = admin.emit(event, data).await {
            tracing::debug!(error = %err, event, "admin UI broadcast to other replicas failed; telling this one's");
            if let Some(admin) = self.io.of(ADMIN_NAMESPACE) {
                let _ = admin.local().emit(event, data).await;
            }
        }
    }
}

/// The admin UI's background work, whatever the adapter.
#[async_trait]
pub trait AdminRunner: Send + Sync {
    /// Looks and sends statistics until `stop`.
    async fn run(self: Arc<Self>, stop: watch::Receiver<bool>);
}

/// The event's arguments as the UI lists them: its name, then its payload, redacted.
fn event_args(event: &str, payload: Option<&Value>) -> Value {
    let mut args = vec![Value::from(event)];
    args.extend(payload.map(redacted));
    Value::Array(args)
}

impl<A: Adapter> SocketObserver for AdminWatch<A> {
    fn watches_events(&self) -> bool {
        self.development
    }

    fn connected(&self) {
        self.count("rawConnection", None);
    }

    fn disconnected(&self, sid: &str, reason: &'static str) {
        self.gone(CHAT_NAMESPACE, sid.to_owned(), reason);
    }

    fn event_received(&self, sid: &str, event: &str, payload: Option<&Value>) {
        if self.development {
            self.queue(Feed::Received { sid: sid.to_owned(), args: event_args(event, payload), at: self.timestamp() });
        }
    }

    fn event_sent(&self, rooms: &[String], except: &[String], event: &str, payload: &Value) {
        if !self.development {
            return;
        }
        // The recipients here as they are now, not when the feed gets to it.
        let Some(chat) = self.io.of(CHAT_NAMESPACE) else { return };
        let sids: Vec<String> = chat
            .local()
            .to(rooms.to_vec())
            .except(except.to_vec())
            .sockets()
            .iter()
            .map(|s| s.id.to_string())
            .collect();
        if !sids.is_empty() {
            self.queue(Feed::Sent { sids, args: event_args(event, Some(payload)), at: self.timestamp() });
        }
    }
}

#[async_trait]
impl<A: Adapter> AdminRunner for AdminWatch<A> {
    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(mut feed) = self.feed_rx.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let mut look = tokio::time::interval(LOOK_EVERY);
        let mut stats = tokio::time::interval(STATS_EVERY);
        for interval in [&mut look, &mut stats] {
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = look.tick() => self.look().await,
                _ = stats.tick() => {
                    let stats = self.stats();
                    self.broadcast("server_stats", &stats).await;
                    if self.development {
                        self.greet_remote_admins().await;
                    }
                }
                Some(event) = feed.recv() => self.tell(event).await,
                _ = stop.changed() => return,
            }
        }
    }
}
