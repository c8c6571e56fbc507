//! The TCP connection under TLS and HTTP/2, made so that writing to a socket the relay closed
//! never raises SIGPIPE in the host process.
//!
//! A library must not signal its host, and must not change process-wide signal state to avoid
//! it. rustls and the HTTP/2 layer write vectored (`writev`), which has no flag to suppress
//! SIGPIPE, so every write here goes through `send`/`sendmsg` with `MSG_NOSIGNAL` (Linux,
//! Android, the BSDs). Apple platforms have no `MSG_NOSIGNAL`; there the socket carries
//! `SO_NOSIGPIPE` instead, set right after it is created. Either way a write to a closed
//! connection fails with `EPIPE`, which the client treats as a lost connection and retries.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
const SEND_FLAGS: libc::c_int = 0;

/// How long an idle connection waits before TCP keep-alive probes start.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// A connected TCP stream whose writes never raise SIGPIPE.
#[derive(Debug)]
pub(crate) struct SignalFreeStream {
    tcp: TcpStream,
}

impl SignalFreeStream {
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        SockRef::from(&self.tcp).send_with_flags(buf, SEND_FLAGS)
    }

    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        SockRef::from(&self.tcp).send_vectored_with_flags(bufs, SEND_FLAGS)
    }

    /// Waits for the socket to be writable, then runs `send`; on a spurious wake-up the
    /// readiness is cleared and the wait starts over.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        send: impl Fn() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_io(Interest::WRITABLE, &send) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncRead for SignalFreeStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SignalFreeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, || self.send(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, || self.send_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here: every byte went to the kernel in `send`.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // shutdown(2) never raises SIGPIPE.
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Connects to `address`: TCP_NODELAY, keep-alive probes, and (Apple) `SO_NOSIGPIPE`.
async fn connect_one(address: SocketAddr) -> io::Result<SignalFreeStream> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "tvos",
        target_os = "watchos",
        target_os = "visionos"
    ))]
    SockRef::from(&socket).set_nosigpipe(true)?;
    let tcp = socket.connect(address).await?;
    tcp.set_nodelay(true)?;
    SockRef::from(&tcp).set_tcp_keepalive(&TcpKeepalive::new().with_time(TCP_KEEPALIVE))?;
    Ok(SignalFreeStream { tcp })
}

/// The connector the HTTP/2 channel uses: resolves the relay's host and connects to each of
/// its addresses in turn until one accepts. TLS is layered on top by the channel; the whole
/// connect (DNS, TCP, TLS) is bounded by the client's connect timeout there.
#[derive(Clone, Debug, Default)]
pub(crate) struct SignalFreeConnector;

impl tower_service::Service<http::Uri> for SignalFreeConnector {
    type Response = TokioIo<SignalFreeStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in URI"))?;
            // An IPv6 literal comes bracketed in a URI.
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let mut last_error = None;
            for address in tokio::net::lookup_host((host.as_str(), port)).await? {
                match connect_one(address).await {
                    Ok(stream) => return Ok(TokioIo::new(stream)),
                    Err(error) => last_error = Some(error),
                }
            }
            Err(last_error.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host} resolved to no address"),
                )
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Writing to a connection the peer closed fails with an error instead of a signal. Run
    /// with the default SIGPIPE disposition (a Rust test binary ignores SIGPIPE, so the C
    /// tests check the default disposition); here the error path itself is checked.
    #[tokio::test]
    async fn writes_to_a_closed_peer_fail_with_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.unwrap().0 });
        let mut stream = connect_one(address).await.unwrap();
        let peer = accept.await.unwrap();
        // RST on close: the peer discards instead of lingering.
        SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(peer);
        let chunk = vec![0u8; 64 * 1024];
        let mut failed = None;
        for _ in 0..1000 {
            let bufs = [IoSlice::new(&chunk), IoSlice::new(&chunk)];
            if let Err(error) = stream.write_vectored(&bufs).await {
                failed = Some(error);
                break;
            }
        }
        let error = failed.expect("a write to a reset connection fails");
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn the_connector_tries_every_address_and_names_the_failure() {
        let mut connector = SignalFreeConnector;
        // Port 1 on loopback: nothing listens.
        let error =
            tower_service::Service::call(&mut connector, "https://127.0.0.1:1".parse().unwrap())
                .await
                .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
