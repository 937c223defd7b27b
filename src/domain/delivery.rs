//! Which users have a socket on this replica. The delivered watermark moves only on what a
//! replica can vouch for itself: a message emitted to a socket it holds (at send time, or at
//! the socket's end, minus a margin for what may still have been in flight). A replica that
//! dies vouches for nothing more, so its users get the gap replayed when they come back.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use uuid::Uuid;

/// Engine.IO ping interval + timeout (+1 s): a socket that died silently may have been gone
/// this long before anyone noticed.
pub const SILENT_LOSS_MARGIN: Duration = Duration::from_secs(46);
/// After a clean close, what may still have been on its way.
pub const CLEAN_CLOSE_MARGIN: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct LocalSockets {
    users: Mutex<HashMap<Uuid, usize>>,
    /// The replica is draining: its sockets are being cut, so it vouches for nothing more.
    draining: AtomicBool,
}

impl LocalSockets {
    /// From now on no user counts as connected here (see [`Self::connected`]).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn added(&self, user: Uuid) {
        *crate::sync::lock(&self.users).entry(user).or_insert(0) += 1;
    }

    pub fn removed(&self, user: Uuid) {
        let mut users = crate::sync::lock(&self.users);
        if let Some(count) = users.get_mut(&user) {
            *count -= 1;
            if *count == 0 {
                users.remove(&user);
            }
        }
    }

    /// Those of `users` with a socket here (none once draining).
    pub fn connected(&self, users: &[Uuid]) -> Vec<Uuid> {
        if self.is_draining() {
            return Vec::new();
        }
        let connected = crate::sync::lock(&self.users);
        users.iter().copied().filter(|u| connected.contains_key(u)).collect()
    }

    /// The users with a socket here (none once draining).
    pub fn users(&self) -> Vec<Uuid> {
        if self.is_draining() {
            return Vec::new();
        }
        crate::sync::lock(&self.users).keys().copied().collect()
    }
}
