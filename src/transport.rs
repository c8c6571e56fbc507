//! The connection to the relay: one lazily connected TLS HTTP/2 channel shared by every call,
//! bearer authentication on every call, a deadline on every attempt, and retries of transient
//! failures with capped exponential backoff.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::backoff::Backoff;
use crate::cancel::Cancel;
use crate::config::{normalize_endpoint, ClientConfig, RetryPolicy};
use crate::error::{Error, ErrorCode, Result};
use crate::proto::agent_service_client::AgentServiceClient;

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

/// The generated client, authenticated.
pub(crate) type RelayStub = AgentServiceClient<InterceptedService<Channel, BearerAuth>>;

/// A relay connection plus the call policy (deadline, retries).
pub(crate) struct Transport {
    stub: RelayStub,
    request_timeout: Duration,
    retry: RetryPolicy,
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
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let mut header: MetadataValue<Ascii> = format!("Bearer {}", config.app_token)
            .parse()
            .map_err(|_| Error::invalid_argument("app_token", "is not a valid header value"))?;
        header.set_sensitive(true);
        let channel = endpoint.connect_lazy();
        Ok(Transport {
            stub: AgentServiceClient::with_interceptor(channel, BearerAuth { header }),
            request_timeout: config.request_timeout,
            retry: config.retry.clone(),
        })
    }

    /// Runs one unary RPC with the call policy. `attempt` builds and sends the request; it is
    /// called again for each retry and must send the same request (the same `request_id`), so
    /// that the relay's idempotency holds. Transient failures are retried when `retry` is set;
    /// `cancel` ends the call (and any pause) at once with [`ErrorCode::Cancelled`].
    pub(crate) async fn call<T, F, Fut>(
        &self,
        method: &'static str,
        cancel: &Cancel,
        retry: bool,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(RelayStub, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let policy = &self.retry;
        let max_attempts = if retry { policy.max_attempts } else { 1 };
        let mut backoff = Backoff::new(
            policy.initial_backoff,
            policy.multiplier,
            policy.max_backoff,
            policy.jitter,
        );
        let mut attempt_number = 0;
        loop {
            attempt_number += 1;
            cancel.check()?;
            let started = Instant::now();
            let timeout = self.request_timeout;
            let call = tokio::time::timeout(timeout, attempt(self.stub.clone(), timeout));
            let result = tokio::select! {
                biased;
                error = cancel.cancelled() => return Err(error),
                result = call => result,
            };
            let error = match result {
                Ok(Ok(response)) => {
                    tracing::debug!(
                        method,
                        status = "OK",
                        attempt = attempt_number,
                        latency_ms = started.elapsed().as_millis() as u64,
                        "relay call"
                    );
                    return Ok(response.into_inner());
                }
                // tonic enforces the `grpc-timeout` we send by failing the call with CANCELLED
                // ("Timeout expired"); that is our deadline passing, not a cancellation.
                Ok(Err(status))
                    if status.code() == tonic::Code::Cancelled && started.elapsed() >= timeout =>
                {
                    deadline_exceeded(method, timeout)
                }
                Ok(Err(status)) => Error::from_status(method, &status),
                Err(_elapsed) => deadline_exceeded(method, timeout),
            };
            let retry = error.is_transient() && attempt_number < max_attempts;
            tracing::info!(
                method,
                status = error.code().name(),
                attempt = attempt_number,
                latency_ms = started.elapsed().as_millis() as u64,
                retry,
                "relay call failed"
            );
            if !retry {
                return Err(error);
            }
            let pause = backoff.next_pause();
            tokio::select! {
                biased;
                error = cancel.cancelled() => return Err(error),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

fn deadline_exceeded(method: &str, timeout: Duration) -> Error {
    Error::new(
        ErrorCode::DeadlineExceeded,
        format!("{method}: no answer within the request timeout of {timeout:?}"),
    )
    .with_grpc_code(tonic::Code::DeadlineExceeded)
}
