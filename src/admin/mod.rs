//! The server side of the Socket.IO Admin UI (npm `@socket.io/admin-ui`) on the `/admin`
//! namespace, off unless `ADMIN_UI=true`: the unmodified UI logs in, and sees every replica's
//! statistics, sockets and rooms, live. The protocol is the npm package's `instrument()`
//! (its event names and argument lists, not Parley's); `docs/admin-ui.md` describes it.
//!
//! * [`session`]: the login (username and Argon2-hashed password, then a signed session id);
//! * [`view`]: what is shown of a socket, with nothing secret in it;
//! * [`watch`]: each replica's sockets and rooms, told as changes, and its statistics.
//!
//! Operations (`join`, `leave`, `_disconnect`) are refused in read-only mode (the default),
//! and Parley's own rooms, whose membership is authorization, cannot be joined.

pub mod session;
pub mod view;
pub mod watch;

use std::sync::Arc;

use serde::{Deserialize, Deserializer, de::SeqAccess};
use serde_json::{Value, json};
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Data, SocketRef, TryData},
    handler::ConnectHandler,
    socket::DisconnectReason,
};
use socketioxide_core::adapter::DefinedAdapter;

use crate::{
    config::AdminUiConfig,
    error::AppError,
    fanout::{
        rooms::{is_conversation_room, is_parley_room, socket_room},
        socketio::CHAT_NAMESPACE,
    },
    state::AppState,
};
use session::{AdminAuth, AdminLogin, Login};
pub use watch::AdminWatch;

pub const ADMIN_NAMESPACE: &str = "/admin";
/// The namespaces the UI is shown (and may operate on).
pub const NAMESPACES: [&str; 2] = [CHAT_NAMESPACE, ADMIN_NAMESPACE];

/// Why an admin connection is refused; the UI recognises `invalid credentials` exactly.
#[derive(Debug, thiserror::Error)]
pub enum AdminRefusal {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("RATE_LIMITED: too many admin logins from this address; try again in {0} s")]
    TooManyAttempts(u64),
}

/// Registers `/admin` and starts this replica's watch. Call once, after the state is built.
pub fn register<A: Adapter + DefinedAdapter>(
    io: &SocketIo<A>,
    state: &AppState,
    config: AdminUiConfig,
) -> (A::InitRes, Arc<AdminWatch<A>>) {
    let watch = AdminWatch::new(io.clone(), state, &config);
    if state.platform.observer.set(watch.clone()).is_err() {
        tracing::warn!("a socket observer was already set; the admin UI shows no socket events");
    }
    let services = state.services.clone();
    let login = config.credentials.clone().map(|credentials| {
        Arc::new(AdminLogin::new(credentials, state.config.jwt_secret.expose(), services.auth.password_hasher()))
    });
    let (clock, trust_proxy) = (state.clock.clone(), state.config.trust_proxy);
    let authenticate = move |socket: SocketRef<A>, TryData(auth): TryData<AdminAuth>| {
        let (login, clock, services) = (login.clone(), clock.clone(), services.clone());
        async move {
            let Some(login) = login else { return Ok(()) };
            let auth = auth.unwrap_or_default();
            // Password attempts count per address, under the REST login's limiter (each costs
            // an Argon2 verification); a good one is not counted.
            let ip = crate::transport::client_ip(socket.req_parts(), trust_proxy);
            let key = format!("admin-login:{}", ip.map(|ip| ip.to_string()).unwrap_or_default());
            let ticket = if auth.username.is_some() || auth.password.is_some() {
                match services.auth.admit_login("admin_login", &key).await {
                    Ok(ticket) => ticket,
                    Err(AppError::RateLimited { retry_after }) => {
                        return Err(AdminRefusal::TooManyAttempts(retry_after.as_secs().max(1)));
                    }
                    Err(_) => return Err(AdminRefusal::InvalidCredentials),
                }
            } else {
                None
            };
            match login.check(&auth, clock.now_ms() / 1000).await {
                Some(outcome) => {
                    services.auth.release_login(&key, ticket).await;
                    if let Login::Password(session) = outcome {
                        // Kept for the connect handler, which sends it once the UI listens.
                        socket.extensions.insert(IssuedSession(session));
                    }
                    Ok(())
                }
                None => {
                    metrics::counter!("parley_admin_logins_refused_total").increment(1);
                    Err(AdminRefusal::InvalidCredentials)
                }
            }
        }
    };
    let operations = Operations { readonly: config.readonly, io: io.clone() };
    let connected = {
        let watch = watch.clone();
        move |socket: SocketRef<A>| {
            // Addressable from every replica (their watches tell it their sockets).
            socket.join(socket_room(&socket.id.to_string()));
            watch.admin_connected();
            if let Some(IssuedSession(session)) = socket.extensions.remove::<IssuedSession>() {
                let _ = socket.emit("session", &session);
            }
            let _ = socket.emit("config", &json!({ "supportedFeatures": watch.features() }));
            if watch.development() {
                let _ = socket.emit("all_sockets", &watch.all_sockets());
            }
            operations.clone().register(&socket);
            let watch = watch.clone();
            socket.on_disconnect(move |socket: SocketRef<A>, reason: DisconnectReason| {
                watch.admin_disconnected(socket.id.to_string(), crate::transport::disconnect_reason(&reason));
                std::future::ready(())
            });
            std::future::ready(())
        }
    };
    (io.ns(ADMIN_NAMESPACE, connected.with(authenticate)), watch)
}

#[derive(Clone)]
struct IssuedSession(String);

/// The arguments of an admin UI event, however many it sent.
struct Args(Vec<Value>);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Args, S::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element()? {
                    args.push(arg);
                }
                Ok(Args(args))
            }
        }
        // As a tuple, so that socketioxide hands over every argument, not the first.
        deserializer.deserialize_tuple(usize::MAX, Visitor)
    }
}

impl Args {
    fn str(&self, i: usize) -> Option<&str> {
        self.0.get(i).and_then(Value::as_str)
    }
}

/// The UI's operations on sockets, on every replica (through the adapter).
struct Operations<A: Adapter> {
    readonly: bool,
    io: SocketIo<A>,
}

impl<A: Adapter> Clone for Operations<A> {
    fn clone(&self) -> Self {
        Self { readonly: self.readonly, io: self.io.clone() }
    }
}

/// What an operation came to, for a client that asked for an ack (the UI does not).
type Outcome = Result<(), (&'static str, String)>;

impl<A: Adapter> Operations<A> {
    fn register(self, socket: &SocketRef<A>) {
        for name in ["join", "leave", "_disconnect"] {
            let operations = self.clone();
            socket.on(name, move |Data(args): Data<Args>, ack: AckSender<A>| {
                let operations = operations.clone();
                async move {
                    let outcome = operations.run(name, &args).await;
                    if let Err((code, reason)) = &outcome {
                        tracing::info!(operation = name, code, reason, "admin UI operation refused");
                    }
                    // Only a client that asked for an ack gets one (the UI does not ask).
                    let answer = match outcome {
                        Ok(()) => json!({ "ok": true }),
                        Err((code, error)) => json!({ "error": error, "code": code }),
                    };
                    let _ = ack.send(&answer);
                }
            });
        }
    }

    async fn run(&self, name: &str, args: &Args) -> Outcome {
        if self.readonly {
            return Err(("READ_ONLY", "the admin UI is read-only here (ADMIN_UI_READONLY)".into()));
        }
        let nsp = args.str(0).ok_or(("VALIDATION_ERROR", "the namespace is missing".to_owned()))?;
        let ns = NAMESPACES
            .contains(&nsp)
            .then(|| self.io.of(nsp))
            .flatten()
            .ok_or(("NOT_FOUND", format!("no namespace {nsp}")))?;
        // `join(nsp, room, filter?)`, `leave(nsp, room, filter?)`, `_disconnect(nsp, close,
        // filter?)`. `close` (the whole Engine.IO connection) changes nothing here: each
        // Parley socket has a connection of its own.
        let target = match args.0.get(2) {
            None | Some(Value::Null) => ns,
            Some(Value::String(filter)) => ns.to(target_rooms(filter)),
            // Anything else must not widen the operation to the whole namespace.
            Some(_) => return Err(("VALIDATION_ERROR", "the filter must be a room or a socket id".to_owned())),
        };
        let failed = |err: String| ("INTERNAL_ERROR", err);
        match name {
            "_disconnect" => target.disconnect().await.map_err(|e| failed(e.to_string())),
            "join" | "leave" => {
                let room = args.str(1).ok_or(("VALIDATION_ERROR", "the room is missing".to_owned()))?;
                if name == "join" && is_parley_room(room) {
                    return Err(("FORBIDDEN", format!("{room} is one of Parley's routing rooms")));
                }
                // Leaving a conversation's room is unsubscribing; the other routing rooms
                // (user, session, own) carry delivery and stay.
                if name == "leave" && is_parley_room(room) && !is_conversation_room(room) {
                    return Err(("FORBIDDEN", format!("{room} is one of Parley's routing rooms")));
                }
                let room = room.to_owned();
                let done = if name == "join" { target.join(room).await } else { target.leave(room).await };
                done.map_err(|e| failed(format!("{e:?}")))
            }
            _ => Err(("NOT_FOUND", format!("no operation {name}"))),
        }
    }
}

/// A filter is a room, or a socket's id (its own room, as the UI names it): both are tried.
fn target_rooms(filter: &str) -> Vec<String> {
    vec![filter.to_owned(), socket_room(filter)]
}
