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

pub mod config;
mod device;
mod error;
mod faults;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod grpc_server;
mod http_api;
mod page;
mod service;
mod state;
mod store;
mod tls;

pub use config::{
    AppConfig, AppStatus, DevRelayConfig, DevicePolicy, FailWhen, FaultConfig, FileConfig,
    IdentityConfig, Limits, Storage, DEFAULT_TTL_SECONDS,
};
pub use device::{KYBER_CT_LEN, NONCE_LEN, PQ_PUBLIC_KEY_LEN, TAG_LEN};
pub use error::DevRelayError;
pub use grpc_server::{
    CONNECTION_WINDOW_BYTES, GOAWAY_DRAIN, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT,
    MAX_CONCURRENT_STREAMS, MAX_FRAME_BYTES, MAX_HEADER_LIST_BYTES, MAX_LOCAL_ERROR_RESETS,
    MAX_PENDING_ACCEPT_RESETS, STREAM_WINDOW_BYTES, TLS_HANDSHAKE_TIMEOUT,
};
pub use page::CONTENT_SECURITY_POLICY;
pub use state::{
    DecisionRecord, DecryptFailureRecord, DecryptedRecord, DeliveryRecord, Inspection,
};
pub use store::{SCHEMA_VERSION, STATE_DB_FILE};
pub use tls::{RENEW_BEFORE_DAYS, VALIDITY_DAYS};

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
    http_token: String,
    ca_pem: String,
    ca_path: PathBuf,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    storage: Storage,
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

fn check_faults(f: &FaultConfig) -> Result<(), DevRelayError> {
    for (name, v) in f.fractions() {
        if !(0.0..=1.0).contains(&v) {
            return Err(DevRelayError::Config(format!(
                "{name} must be between 0 and 1, got {v}"
            )));
        }
    }
    Ok(())
}

/// Refuses addresses other than loopback unless allowed; warns loudly when allowed.
fn check_bind(config: &DevRelayConfig) -> Result<(), DevRelayError> {
    for (what, addr) in [("gRPC", config.grpc_addr), ("HTTP", config.http_addr)] {
        if addr.ip().is_loopback() {
            continue;
        }
        if !config.allow_non_loopback {
            return Err(DevRelayError::Config(format!(
                "refusing to listen for {what} on {addr}: not a loopback address. Anyone who \
                 reaches the relay could try its app tokens and, with its HTTP access token, \
                 answer decisions; use 127.0.0.1 or ::1, or allow it explicitly \
                 (--allow-non-loopback, DevRelayConfig::allow_non_loopback)"
            )));
        }
        tracing::warn!(
            %addr,
            "the {what} server listens on a non-loopback address (allowed explicitly): other \
             machines can reach this development relay"
        );
    }
    Ok(())
}

/// A random access token for the HTTP API: 32 bytes from the OS, in hex.
fn new_http_token() -> Result<String, DevRelayError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| DevRelayError::Config(format!("no randomness for the access token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl DevRelay {
    /// Creates (or reuses) the TLS material, the apps and simulated devices, and starts the
    /// gRPC server (TLS) and the HTTP device API. Both are listening when this returns.
    ///
    /// Refuses addresses other than loopback unless `allow_non_loopback` is set.
    pub async fn start(config: DevRelayConfig) -> Result<DevRelay, DevRelayError> {
        check_faults(&config.faults)?;
        check_bind(&config)?;
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
        let http_token = new_http_token()?;
        let cancel = CancellationToken::new();
        let storage = match &config.storage {
            Storage::InMemory => None,
            Storage::File(path) => Some(store::Store::open(path)?),
        };
        let relay = Arc::new(state::Relay::open(
            &config.apps,
            config.limits.clone(),
            faults::Faults::new(config.faults.clone()),
            cancel.clone(),
            tokio::runtime::Handle::current(),
            storage,
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

        let acceptor = grpc_server::tls_acceptor(&material)?;
        let svc = proto::agent_service_server::AgentServiceServer::new(service::RelayService {
            relay: relay.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let grpc_task = tokio::spawn(grpc_server::serve(
            grpc_listener,
            acceptor,
            svc,
            relay.clone(),
            cancel.clone(),
        ));

        let app = http_api::router(relay.clone(), &http_token, http_addr);
        let http_cancel = cancel.clone();
        let http_task = tokio::spawn(async move {
            if let Err(e) = axum::serve(http_listener, app)
                .with_graceful_shutdown(http_cancel.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "HTTP device API stopped");
            }
        });
        let sweeper_task = tokio::spawn(relay.clone().run_sweeper());
        relay.resume();

        tracing::info!(%grpc_addr, %http_addr, "noxy-devrelay started");
        Ok(DevRelay {
            relay,
            grpc_addr,
            http_addr,
            http_token,
            ca_pem: material.ca_pem,
            ca_path: material.ca_path,
            cancel,
            tasks: vec![grpc_task, http_task, sweeper_task],
            storage: config.storage.clone(),
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

    /// The device page's URL with the access token in its fragment,
    /// `http://127.0.0.1:PORT/#token=…`: a browser never sends a fragment to a server (nor in
    /// `Referer`); the page reads it, keeps it in `sessionStorage` and sends it as
    /// `Authorization: Bearer` on its API calls.
    pub fn page_url(&self) -> String {
        format!("http://{}/#token={}", self.http_addr, self.http_token)
    }

    /// The HTTP API's access token, new at every start: send it as
    /// `Authorization: Bearer <token>` on every HTTP request.
    pub fn http_token(&self) -> &str {
        &self.http_token
    }

    /// Writes the ready file: `{"endpoint", "ca_path", "http_url", "http_token"}` as JSON,
    /// atomically (a new temporary file beside it, then a rename) and readable by this user
    /// only (0600), since it holds the access token.
    pub fn write_ready_file(&self, path: &Path) -> Result<(), DevRelayError> {
        let ca_path = std::fs::canonicalize(&self.ca_path).unwrap_or_else(|_| self.ca_path.clone());
        let body = serde_json::json!({
            "endpoint": self.endpoint(),
            "ca_path": ca_path,
            "http_url": self.http_url(),
            "http_token": self.http_token,
        });
        tls::write_file(path, &format!("{body}\n"), true)
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
                state::RegisterError::Invalid(msg) | state::RegisterError::Limit(msg) => msg,
            })
    }

    /// Replaces the random fault configuration at run time (reseeding the generator).
    /// Scripted failures from [`DevRelay::fail_next`] are kept. Fractions are clamped to 0..=1.
    pub fn set_faults(&self, mut faults: FaultConfig) {
        faults.clamp();
        self.relay.faults().set(faults);
    }

    /// Makes the next `count` calls of `method` (e.g. `"RouteDecision"`) fail as `when`
    /// says: UNAVAILABLE, a dropped connection or a GOAWAY, before or after the relay acts on
    /// them, or a malformed answer. Deterministic; takes precedence over random faults.
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

    /// A snapshot of deliveries, decisions, decryptions, quotas and counters. Its lists are
    /// built from what the relay holds (eviction bounds them); prefer [`DevRelay::wait_for`]
    /// to polling it.
    pub fn inspect(&self) -> Inspection {
        self.relay.inspect()
    }

    /// Waits until `pred` holds on the inspection snapshot, at most `timeout`; returns whether
    /// it holds. Use it instead of sleeping. A new snapshot is taken only when the relay's
    /// state has changed since the last one, and changes that happen while the waiter is busy
    /// are seen together, so a waiter never costs one snapshot per change under load.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Inspection) -> bool) -> bool {
        self.relay.wait_for(timeout, pred).await
    }

    /// Waits until the decision `decision_id` of app `app_name` is terminal, at most `timeout`;
    /// returns its outcome (`APPROVED`, `REJECTED`, `EXPIRED`) or `None` on timeout (or when
    /// there is no such decision). Looks the decision up directly, without a snapshot.
    pub async fn wait_for_outcome(
        &self,
        app_name: &str,
        decision_id: &str,
        timeout: Duration,
    ) -> Option<String> {
        self.relay
            .wait_for_outcome(app_name, decision_id, timeout)
            .await
            .map(|o| o.name().to_string())
    }

    /// Stops both servers (each gRPC connection gets a GOAWAY), the sweeper and the simulated
    /// devices, and waits (at most a few seconds each) for them to finish; what is still
    /// running then is aborted. With a database, the counters are written and the database
    /// is closed last (a new relay may then open it at once).
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
        self.relay.close_store();
    }

    /// Where the relay keeps its state, as configured.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// How many decisions the relay holds now (restored ones included).
    pub fn decision_count(&self) -> usize {
        self.relay.decision_count()
    }

    /// An app's quota by name: (total, remaining, status), as `GetQuota` reports it.
    pub fn quota(&self, app_name: &str) -> Option<(u64, u64, AppStatus)> {
        self.relay.quota_by_name(app_name)
    }
}

impl Drop for DevRelay {
    /// Signals everything to stop and closes the database at once: a call still in flight
    /// then gets UNAVAILABLE rather than an answer the database would not keep.
    fn drop(&mut self) {
        self.cancel.cancel();
        self.relay.close_store();
    }
}
