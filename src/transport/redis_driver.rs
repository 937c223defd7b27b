//! The pub/sub driver under the socketioxide-redis adapter. The adapter's own driver sits on
//! one connection that never reconnects: after a Redis restart every broadcast fails until
//! the process restarts. This one rides a `ConnectionManager` that reconnects by itself and
//! re-subscribes to the adapter's channels, and a keep-alive ping makes it notice a restart
//! even when this replica only listens.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
    time::Duration,
};

use redis::{FromRedisValue, PushInfo, PushKind, aio::ConnectionManager};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

/// How often an idle driver checks its connection (and so how soon it re-subscribes).
const KEEPALIVE: Duration = Duration::from_secs(1);

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

#[derive(Clone)]
pub struct ReconnectingDriver {
    conn: ConnectionManager,
    handlers: Handlers,
}

#[derive(Debug)]
pub struct DriverError(redis::RedisError);

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DriverError {}

impl From<redis::RedisError> for DriverError {
    fn from(err: redis::RedisError) -> Self {
        Self(err)
    }
}

impl ReconnectingDriver {
    pub async fn connect(client: &redis::Client) -> redis::RedisResult<Self> {
        let handlers: Handlers = Arc::default();
        let routes = handlers.clone();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_push_sender(move |message: PushInfo| {
                route(message, &routes);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        let driver = Self { conn, handlers };
        driver.keep_alive();
        Ok(driver)
    }

    /// Pings until the last handle is gone; a failed ping makes the manager reconnect (and
    /// re-subscribe) on the next one.
    fn keep_alive(&self) {
        let (conn, handlers) = (self.conn.clone(), Arc::downgrade(&self.handlers));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(KEEPALIVE);
            loop {
                ticker.tick().await;
                if handlers.strong_count() == 0 {
                    return;
                }
                let ping: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn.clone()).await;
                if let Err(err) = ping {
                    tracing::debug!(error = %err, "socket.io adapter: Redis unreachable");
                }
            }
        });
    }
}

/// Hands a pub/sub message to the stream of its channel.
fn route(message: PushInfo, handlers: &Handlers) {
    if !matches!(message.kind, PushKind::Message | PushKind::SMessage) || message.data.len() < 2 {
        return;
    }
    let mut data = message.data.into_iter();
    let (Some(channel), Some(payload)) = (data.next(), data.next()) else { return };
    let (Ok(channel), Ok(payload)) = (String::from_redis_value(channel), Vec::<u8>::from_redis_value(payload)) else {
        return;
    };
    let handlers = handlers.read().unwrap_or_else(|p| p.into_inner());
    if let Some(stream) = handlers.get(&channel)
        && stream.try_send((channel, payload)).is_err()
    {
        tracing::warn!("socket.io adapter: a channel's buffer is full, message dropped");
    }
}

impl Driver for ReconnectingDriver {
    type Error = DriverError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        let _: redis::Value = redis::cmd("PUBLISH").arg(chan).arg(val).query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn subscribe(&self, chan: String, size: usize) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (tx, rx) = mpsc::channel(size);
        self.handlers.write().unwrap_or_else(|p| p.into_inner()).insert(chan.clone(), tx);
        self.conn.clone().subscribe(chan).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.handlers.write().unwrap_or_else(|p| p.into_inner()).remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(chan).query_async(&mut self.conn.clone()).await?;
        Ok(count)
    }
}
