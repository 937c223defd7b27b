//! Services used by both REST handlers and socket handlers, plus the validated input types
//! and wire views they speak. Dependencies point one way: http/realtime → domain →
//! storage, shared_state, fanout. Services say what happened to whom through
//! [`crate::fanout::Fanout`]; no service knows a transport. Membership checks are in
//! [`access`], wire views in [`views`]; services are built from [`Deps`].

pub mod access;
pub mod auth;
pub mod conversations;
pub mod cursor;
pub mod delivery;
pub mod groups;
pub mod input;
pub mod json_text;
pub mod keys;
pub mod mentions;
pub mod message_input;
pub mod message_writer;
pub mod messages;
pub mod password;
pub mod payloads;
pub mod pins;
pub mod presence;
pub mod public_key;
pub mod push;
pub mod quota;
pub mod reactions;
pub mod reads;
pub mod search;
pub mod send_checks;
pub mod time;
pub mod tokens;
pub mod typing;
pub mod unread;
pub mod uploads;
pub mod users;
pub mod views;

use std::sync::Arc;

use crate::{clock::SharedClock, fanout::Fanout, shared_state::SharedState, storage::Storage};

pub use push::Outbox;

/// What every service is built from: the database, the shared (cross-replica) state, the
/// way out to clients (live, and through the outbox to people who are offline), and the clock. Services take what they need of it plus their own
/// collaborators, so no constructor grows a long positional list.
#[derive(Clone)]
pub struct Deps {
    pub storage: Arc<dyn Storage>,
    pub shared: SharedState,
    pub fanout: Fanout,
    pub clock: SharedClock,
    /// Pushes and webhooks to be sent (SPEC §4.4).
    pub outbox: Outbox,
}
