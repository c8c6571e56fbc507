//! An entry point for fuzzing the HTTP device API (feature `fuzzing`; used by `fuzz/` at the
//! top of the repository, not part of the relay's API): the router the relay serves, called
//! in process as a service (no socket), over a relay whose state is in memory.
//!
//! Each [`HttpApiSession`] is a fresh relay with one app, one device registered over the
//! device API's own path (`Relay::register_device`), one browser device (the device page's)
//! and one decision delivered to both, so a request can reach every route with ids that exist.
//! Time is paused and advances by itself when the relay is idle, so the page's long poll ends
//! at once instead of after its real 25 s.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use hyper::service::Service as _;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

use crate::config::{AppConfig, FaultConfig, Limits};
use crate::proto::RouteDecisionRequest;
use crate::{device, faults, http_api, state};

/// The app of every session.
pub const APP_NAME: &str = "fuzz-app";
/// Its gRPC bearer token.
const APP_TOKEN: &str = "fuzz-token";
/// The HTTP API's access token of every session.
pub const ACCESS_TOKEN: &str = "fuzz-access-token";
/// The identity the session's device is registered for.
pub const IDENTITY_ID: &str = "fuzz-identity";
/// The decision delivered to the session's device.
pub const DECISION_ID: &str = "fuzz-decision";
/// The address the router believes it is bound to (nothing listens there).
const BOUND: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    50099,
));
/// The `Host` header that names the relay.
pub const HOST: &str = "127.0.0.1:50099";

/// What lives as long as the fuzzer: a runtime and a valid ML-KEM-768 public key.
pub struct HttpApiFuzzer {
    runtime: tokio::runtime::Runtime,
    pq_public_key: Vec<u8>,
}

impl Default for HttpApiFuzzer {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpApiFuzzer {
    /// A current-thread runtime (requests run to completion on the calling thread).
    pub fn new() -> HttpApiFuzzer {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime for the fuzzer");
        HttpApiFuzzer {
            runtime,
            pq_public_key: device::generate_keypair().1,
        }
    }

    /// A fresh relay with one app, one registered device and one decision delivered to it.
    pub fn session(&self) -> HttpApiSession<'_> {
        let _entered = self.runtime.enter();
        let cancel = CancellationToken::new();
        let relay = Arc::new(
            state::Relay::open(
                &[AppConfig::new(APP_TOKEN, APP_NAME, 1_000)],
                Limits::default(),
                faults::Faults::new(FaultConfig::default()),
                cancel.clone(),
                self.runtime.handle().clone(),
                None,
            )
            .expect("the fuzzer's relay"),
        );
        let device_id = relay
            .register_device(APP_NAME, IDENTITY_ID, self.pq_public_key.clone(), None)
            .expect("registering the fuzzer's device");
        let browser_device_id = relay
            .add_browser_device(APP_NAME, IDENTITY_ID)
            .map_err(|_| "adding a browser device failed")
            .expect("adding the fuzzer's browser device");
        for (request_id, target) in [
            ("fuzz-request", &device_id),
            ("fuzz-request-browser", &browser_device_id),
        ] {
            relay
                .route(
                    0,
                    RouteDecisionRequest {
                        request_id: request_id.into(),
                        ciphertext: vec![0; device::TAG_LEN + 2],
                        ttl_seconds: 600,
                        target_device_id: target.clone(),
                        kyber_ct: vec![0; device::KYBER_CT_LEN],
                        nonce: vec![0; device::NONCE_LEN],
                        decision_id: DECISION_ID.into(),
                    },
                )
                .map_err(|_| "routing failed")
                .expect("routing the fuzzer's decision");
        }
        let router = http_api::router(relay.clone(), ACCESS_TOKEN, BOUND);
        HttpApiSession {
            fuzzer: self,
            service: TowerToHyperService::new(router),
            device_id,
            browser_device_id,
            cancel,
            _relay: relay,
        }
    }
}

/// One relay's HTTP API.
pub struct HttpApiSession<'a> {
    fuzzer: &'a HttpApiFuzzer,
    service: TowerToHyperService<axum::Router>,
    device_id: String,
    browser_device_id: String,
    cancel: CancellationToken,
    _relay: Arc<state::Relay>,
}

/// An answer of the API.
#[derive(Debug)]
pub struct HttpApiResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<Vec<u8>>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl HttpApiSession<'_> {
    /// The id of the session's registered device.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The id of the session's browser device (the device page's).
    pub fn browser_device_id(&self) -> &str {
        &self.browser_device_id
    }

    /// Serves one request built from raw parts. `None` when the parts do not make an HTTP
    /// request at all (a method, URI or header that `http` refuses: hyper never hands such a
    /// request to the router).
    pub fn request(
        &self,
        method: &[u8],
        uri: &[u8],
        headers: &[(&[u8], &[u8])],
        body: Vec<u8>,
    ) -> Option<HttpApiResponse> {
        let mut request = Request::new(Body::from(body));
        *request.method_mut() = Method::from_bytes(method).ok()?;
        *request.uri_mut() = Uri::try_from(uri).ok()?;
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            );
        }
        let response = self.fuzzer.runtime.block_on(async {
            let response = self
                .service
                .call(request)
                .await
                .unwrap_or_else(|never| match never {});
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .map(|v| v.as_bytes().to_vec());
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("reading a response body");
            HttpApiResponse {
                status,
                content_type,
                body: body.to_vec(),
            }
        });
        Some(response)
    }
}

impl Drop for HttpApiSession<'_> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
