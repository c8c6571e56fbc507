//! The connection to the relay: one lazily connected TLS HTTP/2 channel shared by every call,
//! bearer authentication on every call, a deadline on every attempt, a bound on the RPCs in
//! flight, and retries of transient failures with capped exponential backoff within a time
//! budget. Every gRPC and transport type stays in this module.
//!
//! Memory per call is kept small for hosts with thousands of waiting decisions: a call waits
//! for one of `max_concurrent_requests` slots *before* its request is built, so at most that
//! many requests (with their encode and decode buffers, which are sized for the relay's small
//! messages instead of tonic's 8 KiB) exist at once, whatever the number of waiting decisions.

use std::error::Error as StdError;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tonic::codec::{BufferSettings, Codec};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tracing::instrument::WithSubscriber;

use crate::backoff::Backoff;
use crate::cancel::Cancel;
use crate::config::{normalize_endpoint, ClientConfig, RetryPolicy};
use crate::error::{Error, ErrorCode, Result};
use crate::socket::SignalFreeConnector;

/// Adds `authorization: Bearer <token>` to every call. The value is marked sensitive so that the
/// HTTP/2 layer never logs it.
#[derive(Clone)]
pub(crate) struct BearerAuth {
    header: MetadataValue<Ascii>,
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(request)
    }
}

type Grpc = tonic::client::Grpc<InterceptedService<Channel, BearerAuth>>;

/// The relay's four unary RPCs (`noxy.agent.AgentService`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rpc {
    RouteDecision,
    GetDecisionOutcome,
    GetQuota,
    GetIdentityDevices,
}

impl Rpc {
    /// The method name, for messages and logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Rpc::RouteDecision => "RouteDecision",
            Rpc::GetDecisionOutcome => "GetDecisionOutcome",
            Rpc::GetQuota => "GetQuota",
            Rpc::GetIdentityDevices => "GetIdentityDevices",
        }
    }

    fn path(self) -> PathAndQuery {
        PathAndQuery::from_static(match self {
            Rpc::RouteDecision => "/noxy.agent.AgentService/RouteDecision",
            Rpc::GetDecisionOutcome => "/noxy.agent.AgentService/GetDecisionOutcome",
            Rpc::GetQuota => "/noxy.agent.AgentService/GetQuota",
            Rpc::GetIdentityDevices => "/noxy.agent.AgentService/GetIdentityDevices",
        })
    }
}

/// The initial size of a call's encode and decode buffers. The relay's answers are a few
/// hundred bytes; a RouteDecision request (about 1.2 KiB plus the payload) grows its buffer.
const CODEC_BUFFER_BYTES: usize = 1024;
/// tonic's default: how much a streaming encoder buffers before yielding (unused by unary calls).
const CODEC_YIELD_BYTES: usize = 32 * 1024;

/// The protobuf codec with buffers sized for the relay's messages.
struct SmallBufferCodec<Req, Resp>(PhantomData<fn(Req) -> Resp>);

impl<Req, Resp> Codec for SmallBufferCodec<Req, Resp>
where
    Req: prost::Message + Send + 'static,
    Resp: prost::Message + Default + Send + 'static,
{
    type Encode = Req;
    type Decode = Resp;
    type Encoder = ProstEncoder<Req>;
    type Decoder = ProstDecoder<Resp>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<Req, Resp>::raw_encoder(BufferSettings::new(
            CODEC_BUFFER_BYTES,
            CODEC_YIELD_BYTES,
        ))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<Req, Resp>::raw_decoder(BufferSettings::new(
            CODEC_BUFFER_BYTES,
            CODEC_YIELD_BYTES,
        ))
    }
}

/// Spawns the channel's background tasks (connection, reconnects) with the `tracing`
/// dispatcher that is current where they are spawned, so that a host's per-client logger also
/// receives the HTTP/2 and TLS events of its client.
#[derive(Clone, Copy, Debug, Default)]
struct InheritDispatchExecutor;

impl<F> hyper::rt::Executor<F> for InheritDispatchExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(future.with_current_subscriber());
    }
}

/// A relay connection plus the call policy (deadline, retries, RPCs in flight).
pub(crate) struct Transport {
    grpc: Grpc,
    in_flight: Semaphore,
    request_timeout: Duration,
    retry: RetryPolicy,
}

/// What one attempt of a call produced, before the retry policy looks at it.
enum Attempt<T> {
    /// A final answer.
    Answer(T),
    /// An answer the relay marks as transient (a delivery status ERROR): retried like an
    /// error while the policy allows, returned as it is afterwards.
    RetryableAnswer(T),
    /// A failure.
    Failed(Error),
}

impl Transport {
    /// Builds the channel without connecting: the relay need not be up yet. Must run inside a
    /// Tokio runtime (the channel's worker task is spawned on it).
    pub(crate) fn new(config: &ClientConfig) -> Result<Transport> {
        let address = normalize_endpoint(&config.endpoint)?;
        let mut tls = ClientTlsConfig::new().domain_name(address.host.clone());
        tls = match &config.ca_pem {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_webpki_roots(),
        };
        let endpoint = Endpoint::from_shared(address.uri())
            .map_err(|e| Error::invalid_argument("endpoint", e))?
            .tls_config(tls)
            .map_err(|e| Error::invalid_argument("ca_pem", format!("TLS setup failed: {e}")))?
            .user_agent(config.user_agent.clone())
            .map_err(|e| Error::invalid_argument("user_agent", e))?
            // With a custom connector the timeout covers DNS, TCP and the TLS handshake.
            .connect_timeout(config.connect_timeout)
            .executor(InheritDispatchExecutor)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let mut header: MetadataValue<Ascii> = format!("Bearer {}", config.app_token)
            .parse()
            .map_err(|_| Error::invalid_argument("app_token", "is not a valid header value"))?;
        header.set_sensitive(true);
        let channel = endpoint.connect_with_connector_lazy(SignalFreeConnector);
        Ok(Transport {
            grpc: tonic::client::Grpc::new(InterceptedService::new(channel, BearerAuth { header })),
            in_flight: Semaphore::new(config.max_concurrent_requests as usize),
            request_timeout: config.request_timeout,
            retry: config.retry.clone(),
        })
    }

    /// One attempt, once the caller holds a slot: the request is built only now and sent with
    /// our deadline.
    async fn attempt<Req, Resp>(&self, rpc: Rpc, request: &Req) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::from_error(e.into()))?;
        let mut message = tonic::Request::new(request.clone());
        // Tells the relay our deadline (`grpc-timeout`).
        message.set_timeout(self.request_timeout);
        let codec = SmallBufferCodec::<Req, Resp>(PhantomData);
        Ok(grpc.unary(message, rpc.path(), codec).await?.into_inner())
    }

    /// Runs one unary RPC with the call policy: each attempt sends `request` itself, so a retry
    /// sends the same request id and the relay's idempotency holds. With `retry`, transient
    /// failures, and answers that `retry_answer` marks, are retried within the retry budget;
    /// `cancel` ends the call (and any pause, or the wait for a slot) at once with
    /// [`ErrorCode::Cancelled`].
    pub(crate) async fn call<Req, Resp>(
        &self,
        rpc: Rpc,
        cancel: &Cancel,
        retry: bool,
        retry_answer: fn(&Resp) -> bool,
        request: &Req,
    ) -> Result<Resp>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let method = rpc.name();
        let policy = &self.retry;
        let max_attempts = if retry { policy.max_attempts } else { Some(1) };
        let mut backoff = Backoff::new(
            policy.initial_backoff,
            policy.multiplier,
            policy.max_backoff,
            policy.jitter,
        );
        let first_attempt = Instant::now();
        let mut attempt_number: u32 = 0;
        loop {
            attempt_number = attempt_number.saturating_add(1);
            cancel.check()?;
            // A slot first: a call waiting for one holds nothing but its place in the queue.
            let slot = tokio::select! {
                biased;
                error = cancel.cancelled() => return Err(error),
                slot = self.in_flight.acquire() => slot,
            };
            let Ok(_slot) = slot else {
                return Err(Error::cancelled("the client is closed"));
            };
            let started = Instant::now();
            let timeout = self.request_timeout;
            // Boxed: the RPC's state is large and lives only while the attempt runs, so a
            // caller that sleeps between attempts (or between polls) stays small.
            let call = Box::pin(tokio::time::timeout(timeout, self.attempt(rpc, request)));
            let result = tokio::select! {
                biased;
                error = cancel.cancelled() => return Err(error),
                result = call => result,
            };
            drop(_slot);
            let outcome = match result {
                Ok(Ok(answer)) if retry_answer(&answer) => Attempt::RetryableAnswer(answer),
                Ok(Ok(answer)) => Attempt::Answer(answer),
                Ok(Err(status)) => Attempt::Failed(error_from_status(method, &status, timeout)),
                Err(_elapsed) => Attempt::Failed(deadline_exceeded(method, timeout)),
            };
            let latency_ms = started.elapsed().as_millis() as u64;
            let transient = match &outcome {
                Attempt::Answer(_) => {
                    tracing::debug!(
                        method,
                        status = "OK",
                        attempt = attempt_number,
                        latency_ms,
                        "relay call"
                    );
                    false
                }
                Attempt::RetryableAnswer(_) => true,
                Attempt::Failed(error) => error.is_transient(),
            };
            let pause = backoff.next_pause();
            let retrying = transient
                && max_attempts.is_none_or(|max| attempt_number < max)
                && first_attempt.elapsed() + pause <= policy.budget;
            match &outcome {
                Attempt::Answer(_) => {}
                Attempt::RetryableAnswer(_) => tracing::info!(
                    method,
                    status = "transient answer",
                    attempt = attempt_number,
                    latency_ms,
                    retry = retrying,
                    "relay answered a transient failure"
                ),
                Attempt::Failed(error) => tracing::info!(
                    method,
                    status = error.code().name(),
                    attempt = attempt_number,
                    latency_ms,
                    retry = retrying,
                    "relay call failed"
                ),
            }
            if !retrying {
                return match outcome {
                    Attempt::Answer(answer) | Attempt::RetryableAnswer(answer) => Ok(answer),
                    Attempt::Failed(error) => Err(error),
                };
            }
            tokio::select! {
                biased;
                error = cancel.cancelled() => return Err(error),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Never retry an answer.
pub(crate) fn final_answer<T>(_: &T) -> bool {
    false
}

fn deadline_exceeded(method: &str, timeout: Duration) -> Error {
    Error::new(
        ErrorCode::DeadlineExceeded,
        format!("{method}: no answer within the request timeout of {timeout:?}"),
    )
}

/// The error for a failed RPC.
///
/// - A status tonic made from a local failure (it carries a source error): our own deadline
///   (tonic's `TimeoutExpired`) is DEADLINE_EXCEEDED; a TLS certificate the relay's
///   certificate does not pass is UNAVAILABLE but not worth a retry; anything else (a refused
///   or reset connection, EOF, GOAWAY, "operation was canceled" of a request whose
///   connection died) is a lost connection: UNAVAILABLE and transient.
/// - A status the relay sent is mapped by its code. CANCELLED from the relay is UNAVAILABLE:
///   `ErrorCode::Cancelled` is reserved for the caller's own cancellation.
fn error_from_status(method: &str, status: &tonic::Status, timeout: Duration) -> Error {
    let relay_message = status.message();
    let described = |what: &str| {
        if relay_message.is_empty() {
            format!("{method}: {what}")
        } else {
            format!("{method}: {what}: {relay_message}")
        }
    };
    if let Some(source) = status.source() {
        if source_chain(source).any(|e| e.is::<tonic::TimeoutExpired>()) {
            return deadline_exceeded(method, timeout);
        }
        if source_chain(source).any(|e| e.is::<rustls::Error>()) {
            return Error::new(
                ErrorCode::Unavailable,
                described("TLS handshake with the relay failed"),
            )
            .with_transient(false);
        }
        // Only connecting is timed by tokio's timer inside the channel (DNS, TCP and TLS
        // together); the call's own deadlines are tonic's or ours, handled above and by the
        // caller.
        let timed_out = |e: &(dyn StdError + 'static)| {
            e.is::<tokio::time::error::Elapsed>()
                || e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        };
        if source_chain(source).any(timed_out) {
            return Error::new(
                ErrorCode::Unavailable,
                format!("{method}: could not connect to the relay within the connect timeout"),
            );
        }
        return Error::new(
            ErrorCode::Unavailable,
            format!(
                "{method}: connection to the relay lost or refused: {}",
                chain_text(source)
            ),
        );
    }
    let (code, transient) = code_for(status.code());
    Error::new(code, described(&format!("{:?}", status.code()))).with_transient(transient)
}

/// The library's code for a gRPC status code the relay sent, and whether a retry may succeed
/// (the codes the relay's SDKs retry, plus CANCELLED and ABORTED, which a relay sends when
/// it gave up on the call, not when the caller did).
fn code_for(code: tonic::Code) -> (ErrorCode, bool) {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            (ErrorCode::InvalidArgument, false)
        }
        Code::DeadlineExceeded => (ErrorCode::DeadlineExceeded, true),
        Code::NotFound => (ErrorCode::NotFound, false),
        Code::AlreadyExists => (ErrorCode::Rejected, false),
        Code::ResourceExhausted => (ErrorCode::Rejected, true),
        Code::PermissionDenied => (ErrorCode::PermissionDenied, false),
        Code::Unauthenticated => (ErrorCode::Unauthenticated, false),
        Code::Unavailable | Code::Unknown | Code::Aborted | Code::Cancelled => {
            (ErrorCode::Unavailable, true)
        }
        Code::Unimplemented => (ErrorCode::Protocol, false),
        Code::Internal | Code::DataLoss | Code::Ok => (ErrorCode::Internal, false),
    }
}

fn source_chain<'a>(
    first: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(first), |&error| error.source())
}

/// The messages of an error chain, joined: "transport error: connection reset by peer".
fn chain_text(first: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    for error in source_chain(first) {
        let message = error.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[test]
    fn every_code_the_relay_sends_maps() {
        let expected = [
            (Code::Ok, ErrorCode::Internal, false),
            (Code::Cancelled, ErrorCode::Unavailable, true),
            (Code::Unknown, ErrorCode::Unavailable, true),
            (Code::InvalidArgument, ErrorCode::InvalidArgument, false),
            (Code::DeadlineExceeded, ErrorCode::DeadlineExceeded, true),
            (Code::NotFound, ErrorCode::NotFound, false),
            (Code::AlreadyExists, ErrorCode::Rejected, false),
            (Code::PermissionDenied, ErrorCode::PermissionDenied, false),
            (Code::ResourceExhausted, ErrorCode::Rejected, true),
            (Code::FailedPrecondition, ErrorCode::InvalidArgument, false),
            (Code::Aborted, ErrorCode::Unavailable, true),
            (Code::OutOfRange, ErrorCode::InvalidArgument, false),
            (Code::Unimplemented, ErrorCode::Protocol, false),
            (Code::Internal, ErrorCode::Internal, false),
            (Code::Unavailable, ErrorCode::Unavailable, true),
            (Code::DataLoss, ErrorCode::Internal, false),
            (Code::Unauthenticated, ErrorCode::Unauthenticated, false),
        ];
        for (grpc, code, transient) in expected {
            let error = error_from_status("GetQuota", &tonic::Status::new(grpc, "why"), TIMEOUT);
            assert_eq!(error.code(), code, "{grpc:?}");
            assert_eq!(error.is_transient(), transient, "{grpc:?}");
            assert!(error.message().starts_with("GetQuota: "), "{error}");
            assert!(error.message().ends_with(": why"), "{error}");
        }
    }

    /// A status tonic synthesises from a local failure: code and message as tonic picks them,
    /// the failure as its source.
    fn local(code: Code, source: impl StdError + Send + Sync + 'static) -> tonic::Status {
        let mut status = tonic::Status::new(code, "local");
        status.set_source(std::sync::Arc::new(source));
        status
    }

    #[test]
    fn a_lost_connection_is_transient_unavailable_never_cancelled() {
        use std::io::{Error as IoError, ErrorKind};
        for (code, kind) in [
            // hyper's "operation was canceled" for a request whose connection died
            (Code::Cancelled, ErrorKind::ConnectionReset),
            // GOAWAY and other h2 connection errors come out as INTERNAL or UNKNOWN
            (Code::Internal, ErrorKind::BrokenPipe),
            (Code::Unknown, ErrorKind::UnexpectedEof),
            (Code::Unavailable, ErrorKind::ConnectionRefused),
        ] {
            let error = error_from_status(
                "RouteDecision",
                &local(code, IoError::new(kind, "connection gone")),
                TIMEOUT,
            );
            assert_eq!(error.code(), ErrorCode::Unavailable, "{code:?}");
            assert!(error.is_transient(), "{code:?}");
            assert!(error.message().contains("connection gone"), "{error}");
        }
    }

    #[test]
    fn our_own_deadline_is_deadline_exceeded() {
        let error = error_from_status(
            "GetQuota",
            &local(Code::Cancelled, tonic::TimeoutExpired(())),
            TIMEOUT,
        );
        assert_eq!(error.code(), ErrorCode::DeadlineExceeded);
        assert!(error.is_transient());
    }

    #[test]
    fn a_bad_certificate_is_not_retried() {
        let error = error_from_status(
            "GetQuota",
            &local(
                Code::Unavailable,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            ),
            TIMEOUT,
        );
        assert_eq!(error.code(), ErrorCode::Unavailable);
        assert!(!error.is_transient());
    }
}
