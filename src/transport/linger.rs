//! A lingering close, as nginx's `lingering_close`: when the server is done with a
//! connection while the client is still sending (a flooding socket the server disconnects,
//! a long-polling POST over the size limit answered 413), closing the TCP socket with unread
//! bytes in its receive queue makes the kernel send a reset, and a reset makes the client's
//! kernel throw away what it had received and not yet read: the namespace `disconnect`
//! packet, the last acks, the 413. The client then sees a dropped connection (a websocket
//! 1006, `EPIPE` on its upload) and socket.io-client reconnects as from any network error.
//!
//! So a connection the server drops is not closed at once: its write side is shut down
//! (a FIN after everything written, which the client reads as the end of the stream) and
//! what the client still sends is read and thrown away until it closes its side, for at most
//! [`LINGER_TIME`] and [`LINGER_BYTES`]. A client that closed first costs one read.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
};

/// How long a dropped connection is read from, at most, after the server is done with it.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// How much is read (and thrown away) from a dropped connection, at most.
pub const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// The read buffer of a lingering connection (it lives only while the connection lingers).
const LINGER_BUFFER: usize = 4096;

/// A TCP connection that lingers when dropped (see the module docs).
#[derive(Debug)]
pub struct LingeringTcp {
    /// Always `Some` until dropped.
    stream: Option<TcpStream>,
}

impl LingeringTcp {
    pub fn new(stream: TcpStream) -> Self {
        Self { stream: Some(stream) }
    }

    pub fn get_mut(&mut self) -> &mut TcpStream {
        self.stream.as_mut().expect("a LingeringTcp holds its stream until dropped")
    }

    fn stream(self: Pin<&mut Self>) -> Pin<&mut TcpStream> {
        Pin::new(Pin::into_inner(self).get_mut())
    }
}

impl Drop for LingeringTcp {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else { return };
        // Outside a runtime (a shutdown already under way) there is no one left to read.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

/// Shuts the write side, then reads until the client closes, [`LINGER_TIME`] passes or
/// [`LINGER_BYTES`] were read; dropping the stream then closes it.
async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut buffer = vec![0; LINGER_BUFFER];
    let mut read = 0;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while read < LINGER_BYTES {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

impl AsyncRead for LingeringTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// The server answers and drops the connection while the client is still sending: the
    /// client reads the whole answer and an orderly end, never a reset.
    #[tokio::test]
    async fn a_client_still_sending_reads_the_answer_then_the_end() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut conn = LingeringTcp::new(tcp);
            let mut first = [0; 1024];
            conn.read_exact(&mut first).await.unwrap();
            conn.write_all(b"answer").await.unwrap();
            // Dropped with most of the upload unread.
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let upload = vec![b'x'; 8 * 1024 * 1024];
        let (mut reader, mut writer) = client.split();
        let (written, answer) = tokio::join!(writer.write_all(&upload), async {
            let mut answer = Vec::new();
            reader.read_to_end(&mut answer).await.map(|_| answer)
        });
        server.await.unwrap();
        written.expect("the whole upload was taken (no reset)");
        assert_eq!(answer.expect("an orderly end, not a reset"), b"answer");
    }
}
