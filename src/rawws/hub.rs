//! This replica's raw WebSocket connections, by user: where a delivery finds the connections
//! it must write to. Each connection drains its own bounded queue of frames; one that cannot
//! keep up is closed rather than slowing everyone else down.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use super::envelope::Frame;
use crate::sync::lock;

/// Frames a connection may have waiting (seed 002's send buffer).
pub const SEND_QUEUE: usize = 256;

/// What a connection is told to do.
#[derive(Debug)]
pub enum Outbound {
    Frames(Arc<Vec<Frame>>),
    /// Close with this code and reason (after the frames queued before it).
    Close(u16, &'static str),
}

/// One live, authenticated connection.
#[derive(Clone)]
pub struct Conn {
    pub id: String,
    pub user: Uuid,
    pub session: Uuid,
    tx: mpsc::Sender<Outbound>,
    /// Woken when the connection must go at once (its queue overflowed).
    kill: Arc<Notify>,
}

impl Conn {
    pub fn new(id: String, user: Uuid, session: Uuid) -> (Self, mpsc::Receiver<Outbound>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        let kill = Arc::new(Notify::new());
        (Self { id, user, session, tx, kill: kill.clone() }, rx, kill)
    }

    /// Queues `out`; a connection whose queue is full is killed.
    pub fn push(&self, out: Outbound) {
        if self.tx.try_send(out).is_err() {
            metrics::counter!("parley_raw_ws_overflows_total").increment(1);
            self.kill.notify_one();
        }
    }
}

/// Who a delivery is for, as concrete users and sessions (conversation subscribers already
/// resolved to its participants).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Targets {
    pub users: Vec<Uuid>,
    pub sessions: Vec<Uuid>,
    pub except_users: Vec<Uuid>,
    pub except_connection: Option<String>,
}

#[derive(Default)]
pub struct RawHub {
    by_user: Mutex<HashMap<Uuid, Vec<Conn>>>,
}

impl RawHub {
    pub fn register(&self, conn: Conn) {
        lock(&self.by_user).entry(conn.user).or_default().push(conn);
        metrics::gauge!("parley_raw_ws_connections").increment(1.0);
    }

    pub fn unregister(&self, user: Uuid, id: &str) {
        let mut by_user = lock(&self.by_user);
        if let Some(conns) = by_user.get_mut(&user) {
            let before = conns.len();
            conns.retain(|c| c.id != id);
            if conns.len() < before {
                metrics::gauge!("parley_raw_ws_connections").decrement(1.0);
            }
            if conns.is_empty() {
                by_user.remove(&user);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.by_user).is_empty()
    }

    /// The connections `targets` names, on this replica.
    fn matching(&self, targets: &Targets) -> Vec<Conn> {
        let by_user = lock(&self.by_user);
        let mut found: Vec<Conn> = Vec::new();
        let wanted = |conn: &Conn| {
            !targets.except_users.contains(&conn.user) && targets.except_connection.as_deref() != Some(conn.id.as_str())
        };
        for user in &targets.users {
            found.extend(by_user.get(user).into_iter().flatten().filter(|c| wanted(c)).cloned());
        }
        if !targets.sessions.is_empty() {
            let in_session = by_user.values().flatten().filter(|c| targets.sessions.contains(&c.session));
            for conn in in_session.filter(|c| wanted(c)) {
                if !found.iter().any(|f| f.id == conn.id) {
                    found.push(conn.clone());
                }
            }
        }
        found
    }

    /// Queues `frames` for every connection `targets` names here.
    pub fn deliver(&self, targets: &Targets, frames: &Arc<Vec<Frame>>) {
        for conn in self.matching(targets) {
            conn.push(Outbound::Frames(frames.clone()));
        }
    }

    /// Closes every connection here of one of `sessions`.
    pub fn close_sessions(&self, sessions: &[Uuid], code: u16, reason: &'static str) {
        let targets = Targets { sessions: sessions.to_vec(), ..Targets::default() };
        for conn in self.matching(&targets) {
            conn.push(Outbound::Close(code, reason));
        }
    }

    /// Every connection here goes (shutdown: clients reconnect elsewhere).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        let all: Vec<Conn> = lock(&self.by_user).values().flatten().cloned().collect();
        for conn in all {
            conn.push(Outbound::Close(code, reason));
        }
    }

    /// This replica's connections, as (user, connection id), for the presence registry.
    pub fn local_connections(&self) -> Vec<(Uuid, String)> {
        lock(&self.by_user).values().flatten().map(|c| (c.user, c.id.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_reach_the_named_users_and_sessions_minus_the_exceptions() {
        let hub = RawHub::default();
        let (ann, bob, session) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (a1, mut a1_rx, _) = Conn::new("a1".into(), ann, session);
        let (a2, mut a2_rx, _) = Conn::new("a2".into(), ann, Uuid::now_v7());
        let (b1, mut b1_rx, _) = Conn::new("b1".into(), bob, Uuid::now_v7());
        for conn in [a1, a2, b1] {
            hub.register(conn);
        }
        let frames = Arc::new(vec!["x".to_owned()]);
        let targets = Targets { users: vec![ann, bob], except_connection: Some("a2".into()), ..Targets::default() };
        hub.deliver(&targets, &frames);
        assert!(a1_rx.try_recv().is_ok() && b1_rx.try_recv().is_ok());
        assert!(a2_rx.try_recv().is_err(), "the origin is skipped");
        hub.close_sessions(&[session], 1008, "signed out");
        assert!(matches!(a1_rx.try_recv(), Ok(Outbound::Close(1008, _))));
        assert!(b1_rx.try_recv().is_err());
        hub.unregister(ann, "a1");
        hub.unregister(ann, "a2");
        hub.unregister(bob, "b1");
        assert!(hub.is_empty());
    }
}
