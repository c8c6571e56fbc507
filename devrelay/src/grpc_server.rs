//! The gRPC server, one connection at a time: accept TCP, TLS (rustls, ALPN `h2`), then
//! hyper's HTTP/2 server with deliberate settings, serving the tonic service.
//!
//! Serving each connection here (rather than through tonic's `Server`) lets the relay set
//! every HTTP/2 knob itself and lets a call act on its own connection: each request carries a
//! [`ConnControl`] (in its extensions) that can send GOAWAY on that connection or drop it, and
//! a [`StreamControl`] that can refuse that one stream with `RST_STREAM(REFUSED_STREAM)`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic::codegen::Service;

use crate::error::DevRelayError;
use crate::proto::agent_service_server::AgentServiceServer;
use crate::service::RelayService;
use crate::state::Relay;
use crate::tls::TlsMaterial;

/// The generated tonic service: it routes by path itself (UNIMPLEMENTED for others).
pub(crate) type GrpcService = AgentServiceServer<RelayService>;

/// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: calls one connection may have open at once. A
/// client queues calls beyond it (tonic does), so 10 000 concurrent calls on one connection
/// run 1 000 at a time.
pub const MAX_CONCURRENT_STREAMS: u32 = 1000;
/// HTTP/2 initial stream window (bytes a call may send before the relay reads them).
pub const STREAM_WINDOW_BYTES: u32 = 1 << 20;
/// HTTP/2 connection window. h2 (0.4.19 and later) sizes its budget for small DATA frames
/// that the application has not read yet at half of it; once spent, h2 closes the connection
/// with `GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames"`. With 8 MiB the budget (4 MiB) holds
/// 16 000 small frames, far above the one small frame each of [`MAX_CONCURRENT_STREAMS`]
/// unary calls can leave unread.
pub const CONNECTION_WINDOW_BYTES: u32 = 8 << 20;
/// HTTP/2 `SETTINGS_MAX_FRAME_SIZE` (the protocol's minimum and default).
pub const MAX_FRAME_BYTES: u32 = 16 << 10;
/// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`: request headers (gRPC metadata) larger than this
/// are refused.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 << 10;
/// The relay pings an idle connection this often...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// ...and closes it when the ping is not answered within this time.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Streams the client may reset before the relay has accepted them (h2's rapid-reset guard,
/// `too_many_resets`; h2's default is 20, which a client cancelling many queued calls at once
/// can reach).
pub const MAX_PENDING_ACCEPT_RESETS: usize = 1000;
/// Streams the relay may reset because of the client's protocol errors over a connection's
/// life before it sends GOAWAY (hyper's default).
pub const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// A TLS handshake that takes longer is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a GOAWAY-after-acting fault, how long other calls on that connection may finish
/// before the relay closes it (the faulted call itself never gets its answer).
pub const GOAWAY_DRAIN: Duration = Duration::from_millis(100);

/// A handle on one client connection, in the extensions of every request it carries.
#[derive(Clone, Debug)]
pub(crate) struct ConnControl {
    inner: Arc<ConnInner>,
}

#[derive(Debug)]
struct ConnInner {
    id: u64,
    /// Send GOAWAY and let in-flight calls finish.
    goaway: CancellationToken,
    /// Send GOAWAY, give in-flight calls [`GOAWAY_DRAIN`], then close.
    goaway_then_close: CancellationToken,
    /// Drop the TLS and TCP stream at once.
    close: CancellationToken,
    /// Cancelled once the connection is gone.
    closed: CancellationToken,
}

impl ConnControl {
    fn new(id: u64) -> Self {
        ConnControl {
            inner: Arc::new(ConnInner {
                id,
                goaway: CancellationToken::new(),
                goaway_then_close: CancellationToken::new(),
                close: CancellationToken::new(),
                closed: CancellationToken::new(),
            }),
        }
    }

    /// The connection's number (1 for the first one the relay accepted).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Starts a graceful shutdown: GOAWAY, in-flight calls finish, no new ones.
    pub fn goaway(&self) {
        self.inner.goaway.cancel();
    }

    /// GOAWAY, then close after [`GOAWAY_DRAIN`] whatever is still in flight.
    pub fn goaway_then_close(&self) {
        self.inner.goaway_then_close.cancel();
    }

    /// Drops the connection at once: no GOAWAY, no TLS close_notify.
    pub fn close_abruptly(&self) {
        self.inner.close.cancel();
    }

    /// Waits until the connection is gone.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await;
    }
}

/// Per call: set to refuse this stream with `RST_STREAM(REFUSED_STREAM)` instead of answering.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamControl {
    refuse: Arc<AtomicBool>,
}

impl StreamControl {
    /// The stream is reset with REFUSED_STREAM (HTTP/2: "not processed, safe to retry") when
    /// the handler returns.
    pub fn refuse(&self) {
        self.refuse.store(true, Ordering::Release);
    }

    fn refused(&self) -> bool {
        self.refuse.load(Ordering::Acquire)
    }
}

/// The rustls configuration of the gRPC server: the relay's certificate, ALPN `h2`, TLS 1.2
/// and 1.3, no client certificates (as tonic's server did).
pub(crate) fn tls_acceptor(material: &TlsMaterial) -> Result<TlsAcceptor, DevRelayError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls = |e: &dyn std::fmt::Display| DevRelayError::Tls(e.to_string());
    let certs = CertificateDer::pem_slice_iter(material.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let key =
        PrivateKeyDer::from_pem_slice(material.server_key_pem.as_bytes()).map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls(&e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// hyper's HTTP/2 server with the settings above.
fn http2_builder() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .adaptive_window(false)
        .max_frame_size(MAX_FRAME_BYTES)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS);
    b
}

/// The error returned to hyper for a refused stream: hyper resets the stream with the h2
/// reason found in it.
#[derive(Debug)]
struct Refused(h2::Error);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream refused by fault injection")
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Accepts connections until `cancel`, serving `routes` on each; on cancel, every connection
/// gets a GOAWAY and this returns once they have all finished.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    routes: GrpcService,
    relay: Arc<Relay>,
    cancel: CancellationToken,
) {
    let next_id = AtomicU64::new(1);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!("a gRPC connection task panicked");
                    }
                }
                continue;
            }
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: log, breathe, go on.
                tracing::warn!(error = %e, "accepting a gRPC connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        relay.count_connection();
        connections.spawn(serve_connection(
            id,
            tcp,
            peer,
            acceptor.clone(),
            routes.clone(),
            cancel.clone(),
        ));
    }
    drop(listener);
    while let Some(done) = connections.join_next().await {
        if let Err(e) = done {
            if e.is_panic() {
                tracing::error!("a gRPC connection task panicked");
            }
        }
    }
}

async fn serve_connection(
    id: u64,
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    routes: GrpcService,
    cancel: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let tls = tokio::select! {
        _ = cancel.cancelled() => return,
        tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => tls,
    };
    let tls = match tls {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(connection = id, %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(connection = id, %peer, "TLS handshake timed out");
            return;
        }
    };
    tracing::debug!(connection = id, %peer, "gRPC connection accepted");
    let control = ConnControl::new(id);
    let service = {
        let control = control.clone();
        hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let mut routes = routes.clone();
            let stream = StreamControl::default();
            req.extensions_mut().insert(control.clone());
            req.extensions_mut().insert(stream.clone());
            async move {
                std::future::poll_fn(|cx| {
                    Service::<http::Request<Incoming>>::poll_ready(&mut routes, cx)
                })
                .await
                .unwrap_or_else(|never: Infallible| match never {});
                let response = routes
                    .call(req)
                    .await
                    .unwrap_or_else(|never: Infallible| match never {});
                if stream.refused() {
                    return Err(Refused(h2::Error::from(h2::Reason::REFUSED_STREAM)));
                }
                Ok(response)
            }
        })
    };
    // Boxed (not pinned on the stack) so that it can be dropped below, before `closed`.
    let mut conn = Box::pin(http2_builder().serve_connection(TokioIo::new(tls), service));
    let inner = &control.inner;
    let mut draining = false;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let how = loop {
        // Biased, the connection last: a fault's GOAWAY is started before the connection is
        // polled again, so it goes out before the faulted stream's RST_STREAM (which the
        // handler queues only after asking for the GOAWAY) and the client never retries on
        // this connection.
        tokio::select! {
            biased;
            _ = inner.close.cancelled() => break "closed abruptly (fault injection)",
            _ = inner.goaway_then_close.cancelled(), if drain_deadline.is_none() => {
                if !draining {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                drain_deadline = Some(tokio::time::Instant::now() + GOAWAY_DRAIN);
            }
            _ = sleep_until_some(drain_deadline) => break "closed after GOAWAY (fault injection)",
            _ = inner.goaway.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = cancel.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            res = conn.as_mut() => {
                break match res {
                    Ok(()) => "finished",
                    Err(e) => {
                        tracing::debug!(connection = id, error = %e, "gRPC connection error");
                        "failed"
                    }
                };
            }
        }
    };
    // Dropping the connection drops the TLS and TCP stream.
    drop(conn);
    inner.closed.cancel();
    tracing::debug!(connection = id, %peer, how, "gRPC connection ended");
}

/// Sleeps until `deadline`, forever when there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
