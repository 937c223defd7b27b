//! Abuse limits of the realtime gateways: concurrent connections per client address (counted
//! in this process, so per replica) and each connection's event budget (two token buckets
//! kept with the connection). Subscriptions per socket are checked by `subscribe`.

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

/// A socket sending more than this many times its event rate, beyond this many times its
/// burst, is disconnected.
pub const FLOOD_FACTOR: f32 = 10.0;

/// Live `/chat` connections per client address on this replica.
pub struct ConnectionCounts {
    limit: u32,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

/// One counted connection; dropping it (on disconnect, or with a socket that never finished
/// connecting) gives the place back.
pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

/// The refusal of a connection over the limit: the `connect_error` packet's `message`
/// (socketioxide sends only `{message}`, so the code leads the text).
#[derive(Debug)]
pub struct TooManyConnections {
    pub limit: u32,
}

impl fmt::Display for TooManyConnections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RATE_LIMITED: too many connections from this address ({} at most)", self.limit)
    }
}

impl ConnectionCounts {
    /// `limit` 0: no limit (nothing is counted).
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self { limit, counts: Mutex::default() })
    }

    /// Takes a place for `ip`; `Ok(None)` when nothing is counted (no limit, or no address).
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Option<Arc<ConnectionSlot>>, TooManyConnections> {
        let Some(ip) = ip.filter(|_| self.limit > 0) else { return Ok(None) };
        let mut counts = crate::sync::lock(&self.counts);
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.limit {
            return Err(TooManyConnections { limit: self.limit });
        }
        *count += 1;
        Ok(Some(Arc::new(ConnectionSlot { counts: self.clone(), ip })))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = crate::sync::lock(&self.counts.counts);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Where an Engine.IO connection keeps its place in its address's count between `/chat`
/// connects. A namespace disconnect (by the client, or by the server) leaves the Engine.IO
/// connection open for as long as the client answers pings, so the socket's place moves here
/// and stays counted until the connection ends; a new `/chat` connect on the same connection
/// takes it back instead of a second place. It lives in the handshake request's extensions
/// (engineioxide keeps the handshake's parts for the connection's lifetime; see
/// [`super::handshake::detach_handshake`]), so dropping the connection drops the place.
#[derive(Clone, Default)]
pub struct EngineSlot(Arc<Mutex<Option<Arc<ConnectionSlot>>>>);

impl EngineSlot {
    pub fn keep(&self, slot: Arc<ConnectionSlot>) {
        *crate::sync::lock(&self.0) = Some(slot);
    }

    pub fn take(&self) -> Option<Arc<ConnectionSlot>> {
        crate::sync::lock(&self.0).take()
    }
}

/// The event rate of every socket: `per_sec` sustained (0: no limit), `burst` above it.
#[derive(Clone, Copy, Debug)]
pub struct EventRate {
    pub per_sec: f32,
    pub burst: f32,
}

impl EventRate {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self { per_sec: per_sec as f32, burst: burst.max(1) as f32 }
    }
}

/// What the budget says of one event.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Run,
    /// Refused; a token is back after this long.
    Refused(Duration),
    /// The socket floods: disconnect it (said once; later events are [`Verdict::Dropped`]).
    Flood,
    Dropped,
}

/// One socket's two token buckets, as what was spent of each (0: full): the event budget
/// (`burst`, refilled at `per_sec`) and the flood budget (10× both), which every event,
/// refused or not, spends. 16 bytes.
#[derive(Default)]
pub struct EventBudget {
    at_ms: u64,
    spent: f32,
    flood_spent: f32,
}

/// Milliseconds since this process first asked.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl EventBudget {
    pub fn take(&mut self, rate: EventRate) -> Verdict {
        self.take_at(rate, now_ms())
    }

    fn take_at(&mut self, rate: EventRate, now_ms: u64) -> Verdict {
        if rate.per_sec <= 0.0 {
            return Verdict::Run;
        }
        if self.flood_spent.is_infinite() {
            return Verdict::Dropped;
        }
        let elapsed = now_ms.saturating_sub(self.at_ms) as f32 / 1000.0;
        self.at_ms = now_ms;
        self.spent = (self.spent - elapsed * rate.per_sec).max(0.0);
        self.flood_spent = (self.flood_spent - elapsed * rate.per_sec * FLOOD_FACTOR).max(0.0) + 1.0;
        if self.flood_spent > rate.burst * FLOOD_FACTOR {
            self.flood_spent = f32::INFINITY;
            return Verdict::Flood;
        }
        if self.spent + 1.0 <= rate.burst {
            self.spent += 1.0;
            return Verdict::Run;
        }
        let wait = (self.spent + 1.0 - rate.burst) / rate.per_sec;
        Verdict::Refused(Duration::from_millis((wait * 1000.0).ceil().max(1.0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_then_the_rate_then_the_flood() {
        let rate = EventRate::new(2, 3);
        let mut budget = EventBudget::default();
        for _ in 0..3 {
            assert_eq!(budget.take_at(rate, 0), Verdict::Run);
        }
        assert_eq!(budget.take_at(rate, 0), Verdict::Refused(Duration::from_millis(500)));
        assert_eq!(budget.take_at(rate, 500), Verdict::Run, "a token is back after 1/rate");
        assert!(matches!(budget.take_at(rate, 500), Verdict::Refused(_)));
        // The flood budget is 30 (10 × the burst): the 31st event since it was last full floods.
        let mut verdict = Verdict::Run;
        for _ in 0..28 {
            verdict = budget.take_at(rate, 500);
        }
        assert!(matches!(verdict, Verdict::Refused(_)), "{verdict:?}");
        assert_eq!(budget.take_at(rate, 500), Verdict::Flood);
        assert_eq!(budget.take_at(rate, 100_000), Verdict::Dropped);
    }

    #[test]
    fn sending_at_the_rate_is_never_refused_and_zero_is_no_limit() {
        let rate = EventRate::new(20, 2);
        let mut budget = EventBudget::default();
        for i in 0..1000 {
            assert_eq!(budget.take_at(rate, i * 50), Verdict::Run);
        }
        let mut off = EventBudget::default();
        for _ in 0..10_000 {
            assert_eq!(off.take_at(EventRate::new(0, 0), 0), Verdict::Run);
        }
    }

    #[test]
    fn connection_places_are_counted_per_address_and_given_back() {
        let counts = ConnectionCounts::new(2);
        let (a, b): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        let first = counts.acquire(Some(a)).unwrap();
        let _second = counts.acquire(Some(a)).unwrap();
        assert!(counts.acquire(Some(a)).is_err());
        assert!(counts.acquire(Some(b)).unwrap().is_some(), "another address has its own count");
        drop(first);
        assert!(counts.acquire(Some(a)).is_ok());
        assert!(ConnectionCounts::new(0).acquire(Some(a)).unwrap().is_none());
    }
}
