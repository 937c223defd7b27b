//! Which connections a drain cuts (see `first_ping`'s `Sever`): one that carries an Engine.IO
//! websocket. A connection whose first request is Engine.IO is marked by `FirstPingIo` itself;
//! a proxy such as nginx reuses its keep-alive upstream connections, so an upgrade may come
//! after other requests, and the HTTP layer marks it then (the switch travels in the
//! request's `ConnectInfo`, see [`super::Peer`]).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// Set once the connection carries an Engine.IO websocket.
#[derive(Clone, Debug, Default)]
pub struct EngineSwitch(Arc<AtomicBool>);

impl EngineSwitch {
    pub fn arm(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_armed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
