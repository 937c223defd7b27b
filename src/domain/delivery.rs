//! Which users have a socket on this replica. The delivered watermark moves only on what a
//! replica can vouch for itself: a message emitted to a socket it holds (at send time, or at
//! the socket's end, minus a margin for what may still have been in flight). A replica that
//! dies vouches for nothing more, so its users get the gap replayed when they come back.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use uuid::Uuid;

/// Engine.IO ping interval + timeout (+1 s): a socket that died silently may have been gone
/// this long before anyone noticed.
pub const SILENT_LOSS_MARGIN: Duration = Duration::from_secs(46);
/// After a clean close, what may still have been on its way.
pub const CLEAN_CLOSE_MARGIN: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct LocalSockets(Mutex<HashMap<Uuid, usize>>);

impl LocalSockets {
    pub fn added(&self, user: Uuid) {
        *crate::sync::lock(&self.0).entry(user).or_insert(0) += 1;
    }

    pub fn removed(&self, user: Uuid) {
        let mut users = crate::sync::lock(&self.0);
        if let Some(count) = users.get_mut(&user) {
            *count -= 1;
            if *count == 0 {
                users.remove(&user);
            }
        }
    }

    /// Those of `users` with a socket here.
    pub fn connected(&self, users: &[Uuid]) -> Vec<Uuid> {
        let connected = crate::sync::lock(&self.0);
        users.iter().copied().filter(|u| connected.contains_key(u)).collect()
    }

    pub fn users(&self) -> Vec<Uuid> {
        crate::sync::lock(&self.0).keys().copied().collect()
    }
}
