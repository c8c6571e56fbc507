//! `noxy-devrelay`: a development relay for Noxy decisions, with simulated devices.
//!
//! It serves `noxy.agent.AgentService` over TLS on loopback with its own CA, so the whole
//! decision loop (route an end-to-end encrypted decision, a device decrypts and answers, the
//! agent polls the outcome) runs on one machine. Simulated devices hold real ML-KEM-768 key
//! pairs and decrypt every decision they receive; devices the relay did not create take part
//! through an HTTP/JSON device API. See the crate's README for the binary and the HTTP routes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), noxy_devrelay::DevRelayError> {
//! use noxy_devrelay::{AppConfig, DevRelay, DevRelayConfig, DevicePolicy};
//! let relay = DevRelay::start(DevRelayConfig {
//!     apps: vec![AppConfig::new("dev-token", "dev-app", 100)
//!         .with_identity("alice", vec![DevicePolicy::Approve])],
//!     ..DevRelayConfig::default()
//! })
//! .await?;
//! println!("{} (trust {})", relay.endpoint(), relay.ca_path().display());
//! relay.shutdown().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub mod config;
mod device;
mod error;
mod faults;
mod http_api;
mod service;
mod state;
mod tls;

pub use config::{
    AppConfig, AppStatus, DevRelayConfig, DevicePolicy, FailWhen, FaultConfig, FileConfig,
    IdentityConfig, DEFAULT_TTL_SECONDS,
};
pub use device::{KYBER_CT_LEN, NONCE_LEN, PQ_PUBLIC_KEY_LEN, TAG_LEN};
pub use error::DevRelayError;
pub use state::{
    DecisionRecord, DecryptFailureRecord, DecryptedRecord, DeliveryRecord, Inspection,
};

/// The largest gRPC request the relay decodes (tonic's default, made explicit). A bigger one,
/// e.g. a 100 MB ciphertext, is refused with OUT_OF_RANGE before the relay acts on it.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Messages, server and client stubs generated from `proto/agent.proto` (package
/// `noxy.agent`).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("noxy.agent");
}

/// A running development relay. Dropping it, or calling [`DevRelay::shutdown`], stops both
/// servers.
pub struct DevRelay {
    relay: Arc<state::Relay>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    ca_pem: String,
    ca_path: PathBuf,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    // Removed when the relay is dropped (only when no state directory was given).
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for DevRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevRelay")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

fn check_fraction(name: &str, v: f64) -> Result<(), DevRelayError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(DevRelayError::Config(format!(
            "{name} must be between 0 and 1, got {v}"
        )))
    }
}

fn check_faults(f: &FaultConfig) -> Result<(), DevRelayError> {
    check_fraction("unavailable_before_fraction", f.unavailable_before_fraction)?;
    check_fraction("unavailable_after_fraction", f.unavailable_after_fraction)?;
    check_fraction("stall_fraction", f.stall_fraction)
}

impl DevRelay {
    /// Creates (or reuses) the TLS material, the apps and simulated devices, and starts the
    /// gRPC server (TLS) and the HTTP device API. Both are listening when this returns.
    pub async fn start(config: DevRelayConfig) -> Result<DevRelay, DevRelayError> {
        check_faults(&config.faults)?;
        let (material, temp_dir) = match &config.state_dir {
            Some(dir) => (tls::load_or_create(dir)?, None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("noxy-devrelay-")
                    .tempdir()
                    .map_err(|e| DevRelayError::io("creating a temporary directory", e))?;
                (tls::load_or_create(dir.path())?, Some(dir))
            }
        };
        let cancel = CancellationToken::new();
        let relay = Arc::new(state::Relay::new(
            &config.apps,
            faults::Faults::new(config.faults.clone()),
            cancel.clone(),
            tokio::runtime::Handle::current(),
        )?);

        let grpc_listener = tokio::net::TcpListener::bind(config.grpc_addr)
            .await
            .map_err(|e| DevRelayError::io(format!("binding gRPC to {}", config.grpc_addr), e))?;
        let grpc_addr = grpc_listener
            .local_addr()
            .map_err(|e| DevRelayError::io("reading the gRPC address", e))?;
        let http_listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(|e| DevRelayError::io(format!("binding HTTP to {}", config.http_addr), e))?;
        let http_addr = http_listener
            .local_addr()
            .map_err(|e| DevRelayError::io("reading the HTTP address", e))?;

        let identity = Identity::from_pem(&material.server_cert_pem, &material.server_key_pem);
        let server = Server::builder().tls_config(ServerTlsConfig::new().identity(identity))?;
        let svc = proto::agent_service_server::AgentServiceServer::new(service::RelayService {
            relay: relay.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let incoming = TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
        let grpc_cancel = cancel.clone();
        let grpc_task = tokio::spawn(async move {
            if let Err(e) = server
                .serve_with_incoming_shutdown(svc, incoming, grpc_cancel.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "gRPC server stopped");
            }
        });

        let app = http_api::router(relay.clone());
        let http_cancel = cancel.clone();
        let http_task = tokio::spawn(async move {
            if let Err(e) = axum::serve(http_listener, app)
                .with_graceful_shutdown(http_cancel.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "HTTP device API stopped");
            }
        });

        tracing::info!(%grpc_addr, %http_addr, "noxy-devrelay started");
        Ok(DevRelay {
            relay,
            grpc_addr,
            http_addr,
            ca_pem: material.ca_pem,
            ca_path: material.ca_path,
            cancel,
            tasks: vec![grpc_task, http_task],
            _temp_dir: temp_dir,
        })
    }

    /// The gRPC endpoint, `https://127.0.0.1:PORT` (the port actually bound).
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.grpc_addr)
    }

    /// The address the gRPC server is bound to.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The HTTP device API's base URL, `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The address the HTTP device API is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The CA certificate (PEM) that signed the server certificate: trust it to connect.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Where the CA certificate is written (inside the state directory, or a temporary
    /// directory removed when the relay is dropped).
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The device ids of an identity of an app (by app name): configured simulated devices in
    /// configuration order, then devices registered over HTTP. Empty when unknown.
    pub fn device_ids(&self, app_name: &str, identity_id: &str) -> Vec<String> {
        self.relay.device_ids(app_name, identity_id)
    }

    /// Sets a device online or offline. Going online delivers its queued decisions (a simulated
    /// device then decrypts them and acts on its inner policy). Unknown ids are ignored.
    pub fn set_device_online(&self, device_id: &str, online: bool) {
        if !self.relay.set_device_online(device_id, online) {
            tracing::warn!(%device_id, "set_device_online: no such device");
        }
    }

    /// Registers a device with its own ML-KEM-768 public key (1184 bytes) for an identity of
    /// an app, as `POST /v1/apps/{app}/identities/{identity}/devices` does; returns its id.
    pub fn register_device(
        &self,
        app_name: &str,
        identity_id: &str,
        pq_public_key: &[u8],
    ) -> Result<String, String> {
        self.relay
            .register_device(app_name, identity_id, pq_public_key.to_vec(), None)
            .map_err(|e| match e {
                state::RegisterError::UnknownApp => format!("no app named {app_name:?}"),
                state::RegisterError::Invalid(msg) => msg,
            })
    }

    /// Replaces the random fault configuration at run time (reseeding the generator).
    /// Scripted failures from [`DevRelay::fail_next`] are kept. Fractions are clamped to 0..=1.
    pub fn set_faults(&self, mut faults: FaultConfig) {
        let clamp = |v: f64| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        faults.unavailable_before_fraction = clamp(faults.unavailable_before_fraction);
        faults.unavailable_after_fraction = clamp(faults.unavailable_after_fraction);
        faults.stall_fraction = clamp(faults.stall_fraction);
        self.relay.faults().set(faults);
    }

    /// Makes the next `count` calls of `method` (e.g. `"RouteDecision"`) fail with
    /// UNAVAILABLE, before or after the relay acts on them. Deterministic; takes precedence
    /// over random faults.
    pub fn fail_next(&self, method: &str, count: u32, when: FailWhen) {
        self.relay.faults().fail_next(method, count, when);
    }

    /// Suspends or reactivates an app by name; false when there is no such app.
    pub fn set_app_status(&self, app_name: &str, status: AppStatus) -> bool {
        self.relay.set_app_status(app_name, status)
    }

    /// Sets an app's remaining quota by name; false when there is no such app.
    pub fn set_quota_remaining(&self, app_name: &str, remaining: u64) -> bool {
        self.relay.set_quota_remaining(app_name, remaining)
    }

    /// A snapshot of deliveries, decisions, decryptions and quotas.
    pub fn inspect(&self) -> Inspection {
        self.relay.inspect()
    }

    /// Waits until `pred` holds on the inspection snapshot (re-checked on every change of the
    /// relay's state), at most `timeout`; returns whether it holds. Use it instead of sleeping.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Inspection) -> bool) -> bool {
        self.relay.wait_for(timeout, pred).await
    }

    /// Waits until the decision `decision_id` of app `app_name` is terminal, at most `timeout`;
    /// returns its outcome (`APPROVED`, `REJECTED`, `EXPIRED`) or `None` on timeout.
    pub async fn wait_for_outcome(
        &self,
        app_name: &str,
        decision_id: &str,
        timeout: Duration,
    ) -> Option<String> {
        let find = |i: &Inspection| {
            i.decisions
                .iter()
                .find(|d| {
                    d.app_name == app_name && d.decision_id == decision_id && d.outcome != "PENDING"
                })
                .map(|d| d.outcome.clone())
        };
        if self.relay.wait_for(timeout, |i| find(i).is_some()).await {
            find(&self.relay.inspect())
        } else {
            None
        }
    }

    /// Stops both servers and the simulated devices, and waits (at most a few seconds each)
    /// for them to finish; what is still running then is aborted.
    pub async fn shutdown(mut self) {
        const GRACE: Duration = Duration::from_secs(5);
        self.cancel.cancel();
        for task in self.tasks.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout(GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        self.relay.stop_tasks(GRACE).await;
    }
}

impl Drop for DevRelay {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
