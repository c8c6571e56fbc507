//! The relay's state and semantics: apps, identities, devices, decisions, idempotency, quota,
//! expiry, first answer wins, simulated devices and the inspection snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{AppConfig, AppStatus, DevicePolicy, DEFAULT_TTL_SECONDS};
use crate::device::{self, SecretKey, KYBER_CT_LEN, NONCE_LEN, TAG_LEN};
use crate::error::DevRelayError;
use crate::faults::Faults;
use crate::proto::{DeliveryStatus, RouteDecisionRequest};

/// Outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    Approved,
    Rejected,
    Expired,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pending => "PENDING",
            Outcome::Approved => "APPROVED",
            Outcome::Rejected => "REJECTED",
            Outcome::Expired => "EXPIRED",
        }
    }

    pub fn to_proto(self) -> crate::proto::DecisionOutcome {
        use crate::proto::DecisionOutcome as D;
        match self {
            Outcome::Pending => D::Pending,
            Outcome::Approved => D::Approved,
            Outcome::Rejected => D::Rejected,
            Outcome::Expired => D::Expired,
        }
    }
}

/// A snapshot of what the relay has done, for tests (also served as JSON at `GET /v1/inspect`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Inspection {
    /// `RouteDecision` calls received, including failed, injected-fault and repeated ones.
    pub route_calls: u64,
    /// One record per `(request_id, device_id)` actually delivered (or queued).
    pub deliveries: Vec<DeliveryRecord>,
    /// Every decision the relay accepted, in creation order.
    pub decisions: Vec<DecisionRecord>,
    /// How many deliveries simulated devices could not decrypt or parse.
    pub decrypt_failures: u64,
    /// Details of those failures (device, decision, reason; never key material or plaintext).
    pub decrypt_failure_details: Vec<DecryptFailureRecord>,
    /// One record per successful decryption by a simulated device.
    pub decrypted: Vec<DecryptedRecord>,
    /// Device answers that came after the decision was already terminal (first answer wins:
    /// they were ignored).
    pub late_answers: u64,
    /// Remaining quota per app name.
    pub quota_remaining: BTreeMap<String, u64>,
}

/// One delivery of a decision to a device.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The app that routed it.
    pub app_name: String,
    /// The `RouteDecision` request id.
    pub request_id: String,
    /// The target device.
    pub device_id: String,
    /// The decision delivered.
    pub decision_id: String,
    /// How many times this `(request_id, device_id)` was delivered: stays 1 under retries.
    pub count: u64,
}

/// A decision and its outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DecisionRecord {
    /// The app owning the decision.
    pub app_name: String,
    /// The identity owning the decision.
    pub identity_id: String,
    /// The decision id.
    pub decision_id: String,
    /// `PENDING`, `APPROVED`, `REJECTED` or `EXPIRED`.
    pub outcome: String,
    /// The device whose answer decided it (none while pending or when expired).
    pub answered_by: Option<String>,
}

/// A successful decryption by a simulated device (a hash, never the plaintext).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DecryptedRecord {
    /// The simulated device.
    pub device_id: String,
    /// The decision it decrypted.
    pub decision_id: String,
    /// Lower-case hex SHA-256 of the plaintext.
    pub plaintext_sha256_hex: String,
}

/// A delivery a simulated device could not decrypt or parse.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DecryptFailureRecord {
    /// The simulated device.
    pub device_id: String,
    /// The decision it could not decrypt.
    pub decision_id: String,
    /// Why (e.g. "AES-256-GCM authentication failed").
    pub reason: String,
}

/// An encrypted decision as delivered to a device: ciphertext only.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub decision_id: String,
    pub request_id: String,
    pub kyber_ct: Vec<u8>,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub ttl_seconds: u32,
    pub delivered_at_unix_ms: u64,
}

struct InboxEntry {
    envelope: Envelope,
    /// False while queued on an offline device.
    delivered: bool,
}

struct SimDevice {
    secret: Arc<SecretKey>,
    policy: DevicePolicy,
}

struct Device {
    app: usize,
    identity_id: String,
    public_key: Vec<u8>,
    pq_public_key: Vec<u8>,
    online: bool,
    sim: Option<SimDevice>,
    inbox: Vec<InboxEntry>,
}

struct App {
    name: String,
    quota_total: u64,
    quota_remaining: u64,
    status: AppStatus,
    /// identity id → device ids in registration order.
    identities: BTreeMap<String, Vec<String>>,
}

struct Decision {
    app: usize,
    identity_id: String,
    decision_id: String,
    outcome: Outcome,
    answered_by: Option<String>,
    expires_at: Instant,
}

impl Decision {
    /// Marks the decision expired when its TTL has passed unanswered. Expiry is lazy: every
    /// read of a decision (a poll, an answer, an inspection) goes through here, so no timer
    /// task per decision is needed.
    fn refresh(&mut self, now: Instant) {
        if self.outcome == Outcome::Pending && now >= self.expires_at {
            self.outcome = Outcome::Expired;
            tracing::info!(decision_id = %self.decision_id, "decision expired");
        }
    }
}

#[derive(Default)]
struct State {
    apps: Vec<App>,
    tokens: HashMap<String, usize>,
    devices: HashMap<String, Device>,
    decisions: Vec<Decision>,
    decision_index: HashMap<(usize, String), usize>,
    /// (app, request_id) → the first answer.
    requests: HashMap<(usize, String), (DeliveryStatus, String)>,
    deliveries: Vec<DeliveryRecord>,
    delivery_index: HashMap<(String, String), usize>,
    decrypt_failures: Vec<DecryptFailureRecord>,
    decrypted: Vec<DecryptedRecord>,
    late_answers: u64,
}

impl State {
    /// Acts on a `RouteDecision` whose request id is new to the app: admits the decision
    /// (charging the quota) or joins the existing one of the same id, then delivers the
    /// envelope, or queues it when the device is offline. Returns the status, the decision id
    /// and the work of a simulated device; `Err` is a message for INVALID_ARGUMENT.
    fn route_new(
        &mut self,
        app: usize,
        req: RouteDecisionRequest,
    ) -> Result<(DeliveryStatus, String, Option<SimWork>), String> {
        let decision_id = if req.decision_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            req.decision_id
        };
        let Some(app_state) = self.apps.get_mut(app) else {
            return Err("unknown app".into());
        };
        if app_state.status == AppStatus::Suspended {
            return Ok((DeliveryStatus::Rejected, decision_id, None));
        }
        let Some(device) = self
            .devices
            .get_mut(&req.target_device_id)
            .filter(|d| d.app == app)
        else {
            return Ok((DeliveryStatus::NoDevices, decision_id, None));
        };
        let ttl_seconds = if req.ttl_seconds == 0 {
            DEFAULT_TTL_SECONDS
        } else {
            req.ttl_seconds
        };
        let now = Instant::now();
        let decision_key = (app, decision_id.clone());
        match self.decision_index.get(&decision_key) {
            Some(&i) => {
                if self.decisions[i].identity_id != device.identity_id {
                    return Err(format!(
                        "decision_id {decision_id:?} already belongs to another identity"
                    ));
                }
                // Another device's copy of a decision already admitted: not charged again.
            }
            None => {
                if app_state.quota_remaining == 0 {
                    return Ok((DeliveryStatus::Rejected, decision_id, None));
                }
                app_state.quota_remaining -= 1;
                // u32::MAX seconds still fits an Instant on the platforms we run on; the
                // fallback only guards against an exotic clock.
                let expires_at = now
                    .checked_add(Duration::from_secs(u64::from(ttl_seconds)))
                    .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
                self.decision_index
                    .insert(decision_key, self.decisions.len());
                self.decisions.push(Decision {
                    app,
                    identity_id: device.identity_id.clone(),
                    decision_id: decision_id.clone(),
                    outcome: Outcome::Pending,
                    answered_by: None,
                    expires_at,
                });
            }
        }

        // Counted per (request id, device): the request map answers repeats before this
        // point, so a count above 1 would expose an idempotency bug.
        let delivery_key = (req.request_id.clone(), req.target_device_id.clone());
        match self.delivery_index.get(&delivery_key) {
            Some(&i) => self.deliveries[i].count += 1,
            None => {
                self.delivery_index
                    .insert(delivery_key, self.deliveries.len());
                self.deliveries.push(DeliveryRecord {
                    app_name: app_state.name.clone(),
                    request_id: req.request_id.clone(),
                    device_id: req.target_device_id.clone(),
                    decision_id: decision_id.clone(),
                    count: 1,
                });
            }
        }
        let envelope = Envelope {
            decision_id: decision_id.clone(),
            request_id: req.request_id,
            kyber_ct: req.kyber_ct,
            nonce: req.nonce,
            ciphertext: req.ciphertext,
            ttl_seconds,
            delivered_at_unix_ms: now_unix_ms(),
        };
        // A device registered over HTTP has no work: it fetches its decisions itself.
        let (status, work) = if device.online {
            let work = device
                .sim
                .as_ref()
                .map(|sim| sim.work(app, &req.target_device_id, &envelope));
            (DeliveryStatus::Delivered, work)
        } else {
            (DeliveryStatus::Queued, None)
        };
        device.inbox.push(InboxEntry {
            envelope,
            delivered: device.online,
        });
        Ok((status, decision_id, work))
    }

    /// A device's answer to a decision of its app: the first answer before expiry decides.
    fn answer(
        &mut self,
        app: usize,
        decision_id: &str,
        device_id: &str,
        approve: bool,
    ) -> AnswerResult {
        let Some(&i) = self.decision_index.get(&(app, decision_id.to_string())) else {
            return AnswerResult::NotFound;
        };
        let d = &mut self.decisions[i];
        d.refresh(Instant::now());
        if d.outcome != Outcome::Pending {
            self.late_answers += 1;
            return AnswerResult::AlreadyFinal(d.outcome);
        }
        d.outcome = if approve {
            Outcome::Approved
        } else {
            Outcome::Rejected
        };
        d.answered_by = Some(device_id.to_string());
        AnswerResult::Decided(d.outcome)
    }
}

impl SimDevice {
    /// What this simulated device has to do with an envelope it has just received.
    fn work(&self, app: usize, device_id: &str, envelope: &Envelope) -> SimWork {
        SimWork {
            app,
            device_id: device_id.to_string(),
            secret: self.secret.clone(),
            policy: self.policy.clone(),
            envelope: envelope.clone(),
        }
    }
}

/// Work for a simulated device, done outside the lock.
struct SimWork {
    app: usize,
    device_id: String,
    secret: Arc<SecretKey>,
    policy: DevicePolicy,
    envelope: Envelope,
}

/// Result of a device's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerResult {
    /// This answer decided the decision.
    Decided(Outcome),
    /// The decision was already terminal (first answer wins, or it expired).
    AlreadyFinal(Outcome),
    /// Unknown device, or the decision was never delivered to it.
    NotFound,
}

/// Why registering a device failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegisterError {
    UnknownApp,
    Invalid(String),
}

/// A decision as listed for a device over HTTP.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InboxView {
    pub decision_id: String,
    pub request_id: String,
    pub kyber_ct: String,
    pub nonce: String,
    pub ciphertext: String,
    pub ttl_seconds: u32,
    pub delivered_at_unix_ms: u64,
    pub outcome: String,
}

/// A device of an identity as `GetIdentityDevices` lists it.
pub(crate) struct DeviceView {
    pub device_id: String,
    pub public_key: Vec<u8>,
    pub pq_public_key: Vec<u8>,
}

/// The shared relay core.
pub(crate) struct Relay {
    state: Mutex<State>,
    faults: Mutex<Faults>,
    route_calls: AtomicU64,
    changed: Notify,
    pub cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
    /// The simulated devices' running work.
    tasks: Mutex<JoinSet<()>>,
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Logs how a simulated device's task ended when it did not simply return.
fn report_task_end(result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result {
        if e.is_panic() {
            tracing::error!("a simulated device's task panicked; its decision stays unanswered");
        }
    }
}

/// Checks the shape of a `RouteDecision`; the message is for INVALID_ARGUMENT.
fn validate_route(req: &RouteDecisionRequest) -> Result<(), String> {
    if req.request_id.is_empty() {
        return Err("request_id must not be empty".into());
    }
    if req.request_id.len() > 256 || req.decision_id.len() > 256 {
        return Err("request_id and decision_id must be at most 256 bytes".into());
    }
    if req.kyber_ct.len() != KYBER_CT_LEN {
        return Err(format!(
            "kyber_ct must be {KYBER_CT_LEN} bytes (ML-KEM-768), got {}",
            req.kyber_ct.len()
        ));
    }
    if req.nonce.len() != NONCE_LEN {
        return Err(format!(
            "nonce must be {NONCE_LEN} bytes, got {}",
            req.nonce.len()
        ));
    }
    if req.ciphertext.len() < TAG_LEN {
        return Err(format!(
            "ciphertext must be at least {TAG_LEN} bytes (AES-GCM tag), got {}",
            req.ciphertext.len()
        ));
    }
    Ok(())
}

fn new_device_id() -> String {
    format!("dev-{}", uuid::Uuid::new_v4())
}

impl Relay {
    /// Builds the relay from its apps; creates the simulated devices and their key pairs.
    pub fn new(
        apps: &[AppConfig],
        faults: Faults,
        cancel: CancellationToken,
        runtime: tokio::runtime::Handle,
    ) -> Result<Relay, DevRelayError> {
        let mut state = State::default();
        for (idx, app) in apps.iter().enumerate() {
            if app.name.is_empty() || app.token.is_empty() {
                return Err(DevRelayError::Config(
                    "app token and name must not be empty".into(),
                ));
            }
            if state.apps.iter().any(|a| a.name == app.name) {
                return Err(DevRelayError::Config(format!(
                    "duplicate app name {:?}",
                    app.name
                )));
            }
            if state.tokens.insert(app.token.clone(), idx).is_some() {
                return Err(DevRelayError::Config(format!(
                    "app {:?} reuses another app's token",
                    app.name
                )));
            }
            state.apps.push(App {
                name: app.name.clone(),
                quota_total: app.quota,
                quota_remaining: app.quota,
                status: app.status,
                identities: BTreeMap::new(),
            });
            for identity in &app.identities {
                if identity.identity_id.is_empty() {
                    return Err(DevRelayError::Config("empty identity id".into()));
                }
                for policy in &identity.devices {
                    let (online, policy) = policy.split();
                    let (secret, pq_public_key) = device::generate_keypair();
                    let id = new_device_id();
                    state.devices.insert(
                        id.clone(),
                        Device {
                            app: idx,
                            identity_id: identity.identity_id.clone(),
                            public_key: device::random_classical_key(),
                            pq_public_key,
                            online,
                            sim: Some(SimDevice {
                                secret: Arc::new(secret),
                                policy,
                            }),
                            inbox: Vec::new(),
                        },
                    );
                    state.apps[idx]
                        .identities
                        .entry(identity.identity_id.clone())
                        .or_default()
                        .push(id);
                }
                // An identity listed without devices still exists (and has none).
                state.apps[idx]
                    .identities
                    .entry(identity.identity_id.clone())
                    .or_default();
            }
        }
        Ok(Relay {
            state: Mutex::new(state),
            faults: Mutex::new(faults),
            route_calls: AtomicU64::new(0),
            changed: Notify::new(),
            cancel,
            runtime,
            tasks: Mutex::new(JoinSet::new()),
        })
    }

    /// The fault injection state.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// Counts a `RouteDecision` call.
    pub fn count_route_call(&self) {
        self.route_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The app index of a bearer token.
    pub fn authenticate(&self, token: &str) -> Option<usize> {
        lock(&self.state).tokens.get(token).copied()
    }

    /// The name of an app.
    pub fn app_name(&self, app: usize) -> String {
        lock(&self.state)
            .apps
            .get(app)
            .map(|a| a.name.clone())
            .unwrap_or_default()
    }

    /// Routes one encrypted copy of a decision to one device. `Err` is a message for
    /// INVALID_ARGUMENT.
    ///
    /// The request-id check, the quota charge and the delivery happen under one lock, so
    /// concurrent calls with the same request id, or concurrent first deliveries of one
    /// decision to several devices, deliver once per request and charge once per decision.
    pub fn route(
        self: &Arc<Self>,
        app: usize,
        req: RouteDecisionRequest,
    ) -> Result<(DeliveryStatus, String), String> {
        validate_route(&req)?;
        let (result, work) = {
            let mut st = lock(&self.state);
            let request_key = (app, req.request_id.clone());
            if let Some(first) = st.requests.get(&request_key) {
                return Ok(first.clone());
            }
            let (status, decision_id, work) = st.route_new(app, req)?;
            st.requests
                .insert(request_key, (status, decision_id.clone()));
            ((status, decision_id), work)
        };
        if let Some(work) = work {
            self.spawn_sim(work);
        }
        self.notify();
        Ok(result)
    }

    /// Runs a simulated device's work on the runtime, tracked so that shutdown can wait for
    /// it and a panic is reported rather than lost.
    fn spawn_sim(self: &Arc<Self>, work: SimWork) {
        let relay = self.clone();
        let mut tasks = lock(&self.tasks);
        // Reap finished tasks so that the set holds only running ones.
        while let Some(done) = tasks.try_join_next() {
            report_task_end(done);
        }
        tasks.spawn_on(relay.run_sim(work), &self.runtime);
    }

    /// Cancels the simulated devices' work and waits for it, at most `timeout`; what is still
    /// running then is aborted.
    pub async fn stop_tasks(&self, timeout: Duration) {
        self.cancel.cancel();
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        let drain = async {
            while let Some(done) = tasks.join_next().await {
                report_task_end(done);
            }
        };
        if tokio::time::timeout(timeout, drain).await.is_err() {
            tasks.abort_all();
        }
    }

    /// A simulated device receives a decision: decrypt, then act on its policy.
    async fn run_sim(self: Arc<Self>, work: SimWork) {
        let env = &work.envelope;
        match device::decrypt(&work.secret, &env.kyber_ct, &env.nonce, &env.ciphertext) {
            Err(reason) => {
                tracing::warn!(device_id = %work.device_id, decision_id = %env.decision_id, reason, "simulated device could not decrypt a decision");
                lock(&self.state)
                    .decrypt_failures
                    .push(DecryptFailureRecord {
                        device_id: work.device_id.clone(),
                        decision_id: env.decision_id.clone(),
                        reason: reason.to_string(),
                    });
                self.notify();
                return;
            }
            Ok(plaintext) => {
                lock(&self.state).decrypted.push(DecryptedRecord {
                    device_id: work.device_id.clone(),
                    decision_id: env.decision_id.clone(),
                    plaintext_sha256_hex: device::sha256_hex(&plaintext),
                });
                self.notify();
            }
        }
        let (approve, delay) = match work.policy {
            DevicePolicy::Approve => (true, Duration::ZERO),
            DevicePolicy::Reject => (false, Duration::ZERO),
            DevicePolicy::ApproveAfter(d) => (true, d),
            DevicePolicy::RejectAfter(d) => (false, d),
            // `Offline` never gets here: `DevicePolicy::split` removes it at start.
            DevicePolicy::Ignore | DevicePolicy::Offline(_) => return,
        };
        if !delay.is_zero() {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        let result = lock(&self.state).answer(work.app, &env.decision_id, &work.device_id, approve);
        self.notify();
        tracing::info!(device_id = %work.device_id, decision_id = %env.decision_id, ?result, "simulated device answered");
    }

    /// A device answers a decision that was delivered to it (HTTP device API).
    pub fn answer(&self, device_id: &str, decision_id: &str, approve: bool) -> AnswerResult {
        let result = {
            let mut st = lock(&self.state);
            let Some(device) = st.devices.get(device_id) else {
                return AnswerResult::NotFound;
            };
            let delivered = device
                .inbox
                .iter()
                .any(|e| e.delivered && e.envelope.decision_id == decision_id);
            if !delivered {
                return AnswerResult::NotFound;
            }
            let app = device.app;
            st.answer(app, decision_id, device_id, approve)
        };
        self.notify();
        result
    }

    /// `GetDecisionOutcome`: `None` unless the decision exists in the app and belongs to the
    /// identity.
    pub fn outcome(&self, app: usize, decision_id: &str, identity_id: &str) -> Option<Outcome> {
        let mut st = lock(&self.state);
        let i = *st.decision_index.get(&(app, decision_id.to_string()))?;
        let d = &mut st.decisions[i];
        if d.identity_id != identity_id {
            return None;
        }
        d.refresh(Instant::now());
        Some(d.outcome)
    }

    /// `GetQuota`: (app name, total, remaining, status).
    pub fn quota(&self, app: usize) -> Option<(String, u64, u64, AppStatus)> {
        let st = lock(&self.state);
        st.apps
            .get(app)
            .map(|a| (a.name.clone(), a.quota_total, a.quota_remaining, a.status))
    }

    /// `GetIdentityDevices`: the identity's devices in this app (empty when unknown).
    pub fn identity_devices(&self, app: usize, identity_id: &str) -> Vec<DeviceView> {
        let st = lock(&self.state);
        let Some(ids) = st.apps.get(app).and_then(|a| a.identities.get(identity_id)) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| {
                st.devices.get(id).map(|d| DeviceView {
                    device_id: id.clone(),
                    public_key: d.public_key.clone(),
                    pq_public_key: d.pq_public_key.clone(),
                })
            })
            .collect()
    }

    /// Device ids of an identity of an app (by app name), in registration order.
    pub fn device_ids(&self, app_name: &str, identity_id: &str) -> Vec<String> {
        let st = lock(&self.state);
        st.apps
            .iter()
            .find(|a| a.name == app_name)
            .and_then(|a| a.identities.get(identity_id))
            .cloned()
            .unwrap_or_default()
    }

    /// Registers a device the relay did not create (HTTP device API); returns its id.
    pub fn register_device(
        &self,
        app_name: &str,
        identity_id: &str,
        pq_public_key: Vec<u8>,
        public_key: Option<Vec<u8>>,
    ) -> Result<String, RegisterError> {
        if identity_id.is_empty() || identity_id.len() > 512 {
            return Err(RegisterError::Invalid(
                "identity_id must be 1 to 512 bytes".into(),
            ));
        }
        device::validate_public_key(&pq_public_key).map_err(RegisterError::Invalid)?;
        if let Some(pk) = &public_key {
            if pk.is_empty() || pk.len() > 1024 {
                return Err(RegisterError::Invalid(
                    "public_key must be 1 to 1024 bytes".into(),
                ));
            }
        }
        let id = new_device_id();
        {
            let mut st = lock(&self.state);
            let Some(app) = st.apps.iter().position(|a| a.name == app_name) else {
                return Err(RegisterError::UnknownApp);
            };
            st.devices.insert(
                id.clone(),
                Device {
                    app,
                    identity_id: identity_id.to_string(),
                    public_key: public_key.unwrap_or_else(device::random_classical_key),
                    pq_public_key,
                    online: true,
                    sim: None,
                    inbox: Vec::new(),
                },
            );
            st.apps[app]
                .identities
                .entry(identity_id.to_string())
                .or_default()
                .push(id.clone());
        }
        self.notify();
        Ok(id)
    }

    /// The decisions delivered to a device (not those still queued), `None` for an unknown
    /// device.
    pub fn device_decisions(&self, device_id: &str) -> Option<Vec<InboxView>> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut st = lock(&self.state);
        let now = Instant::now();
        let st = &mut *st;
        let device = st.devices.get(device_id)?;
        let app = device.app;
        let mut views = Vec::new();
        for entry in device.inbox.iter().filter(|e| e.delivered) {
            let e = &entry.envelope;
            let outcome = match st.decision_index.get(&(app, e.decision_id.clone())) {
                Some(&i) => {
                    st.decisions[i].refresh(now);
                    st.decisions[i].outcome
                }
                None => Outcome::Pending,
            };
            views.push(InboxView {
                decision_id: e.decision_id.clone(),
                request_id: e.request_id.clone(),
                kyber_ct: b64.encode(&e.kyber_ct),
                nonce: b64.encode(&e.nonce),
                ciphertext: b64.encode(&e.ciphertext),
                ttl_seconds: e.ttl_seconds,
                delivered_at_unix_ms: e.delivered_at_unix_ms,
                outcome: outcome.name().to_string(),
            });
        }
        Some(views)
    }

    /// Sets a device online or offline; going online delivers its queued decisions. Returns
    /// false for an unknown device.
    pub fn set_device_online(self: &Arc<Self>, device_id: &str, online: bool) -> bool {
        let mut work = Vec::new();
        {
            let mut st = lock(&self.state);
            let Some(device) = st.devices.get_mut(device_id) else {
                return false;
            };
            let was_online = device.online;
            device.online = online;
            if online && !was_online {
                let now_ms = now_unix_ms();
                for entry in device.inbox.iter_mut().filter(|e| !e.delivered) {
                    entry.delivered = true;
                    entry.envelope.delivered_at_unix_ms = now_ms;
                    if let Some(sim) = &device.sim {
                        work.push(sim.work(device.app, device_id, &entry.envelope));
                    }
                }
            }
        }
        for w in work {
            self.spawn_sim(w);
        }
        self.notify();
        true
    }

    /// Changes an app's status; false for an unknown app.
    pub fn set_app_status(&self, app_name: &str, status: AppStatus) -> bool {
        self.update_app(app_name, |a| a.status = status)
    }

    /// Sets an app's remaining quota; false for an unknown app.
    pub fn set_quota_remaining(&self, app_name: &str, remaining: u64) -> bool {
        self.update_app(app_name, |a| {
            a.quota_remaining = remaining;
            a.quota_total = a.quota_total.max(remaining);
        })
    }

    fn update_app(&self, app_name: &str, update: impl FnOnce(&mut App)) -> bool {
        let found = match lock(&self.state)
            .apps
            .iter_mut()
            .find(|a| a.name == app_name)
        {
            Some(app) => {
                update(app);
                true
            }
            None => false,
        };
        self.notify();
        found
    }

    /// The inspection snapshot.
    pub fn inspect(&self) -> Inspection {
        let mut st = lock(&self.state);
        let now = Instant::now();
        let st = &mut *st;
        for d in st.decisions.iter_mut() {
            d.refresh(now);
        }
        let app_name = |i: usize| st.apps.get(i).map(|a| a.name.clone()).unwrap_or_default();
        Inspection {
            route_calls: self.route_calls.load(Ordering::Relaxed),
            deliveries: st.deliveries.clone(),
            decisions: st
                .decisions
                .iter()
                .map(|d| DecisionRecord {
                    app_name: app_name(d.app),
                    identity_id: d.identity_id.clone(),
                    decision_id: d.decision_id.clone(),
                    outcome: d.outcome.name().to_string(),
                    answered_by: d.answered_by.clone(),
                })
                .collect(),
            decrypt_failures: st.decrypt_failures.len() as u64,
            decrypt_failure_details: st.decrypt_failures.clone(),
            decrypted: st.decrypted.clone(),
            late_answers: st.late_answers,
            quota_remaining: st
                .apps
                .iter()
                .map(|a| (a.name.clone(), a.quota_remaining))
                .collect(),
        }
    }

    /// Waits until `pred` holds on the inspection snapshot, or the timeout passes; returns
    /// whether it holds.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Inspection) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(&self.inspect()) {
                return true;
            }
            // Expiry is also checked lazily by inspect(); wake at least every 50 ms for it.
            let wake = (Instant::now() + Duration::from_millis(50)).min(deadline);
            let _ = tokio::time::timeout_at(wake, notified).await;
            if Instant::now() >= deadline {
                return pred(&self.inspect());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultConfig;

    /// A request of the right shape that no device can decrypt: each delivery to a simulated
    /// device then shows up as exactly one decrypt failure.
    fn undecryptable(request_id: &str, device_id: &str, decision_id: &str) -> RouteDecisionRequest {
        RouteDecisionRequest {
            request_id: request_id.into(),
            ciphertext: vec![0; 32],
            ttl_seconds: 60,
            target_device_id: device_id.into(),
            kyber_ct: vec![3; KYBER_CT_LEN],
            nonce: vec![0; NONCE_LEN],
            decision_id: decision_id.into(),
        }
    }

    fn relay(devices: Vec<DevicePolicy>) -> Arc<Relay> {
        let apps = [AppConfig::new("t", "a", 10).with_identity("u", devices)];
        let relay = Relay::new(
            &apps,
            Faults::new(FaultConfig::default()),
            CancellationToken::new(),
            tokio::runtime::Handle::current(),
        );
        Arc::new(relay.expect("valid configuration"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn going_online_concurrently_delivers_each_queued_decision_once() {
        let relay = relay(vec![DevicePolicy::Offline(Box::new(DevicePolicy::Approve))]);
        let device = relay.device_ids("a", "u")[0].clone();
        for i in 0..3 {
            let req = undecryptable(&format!("r{i}"), &device, &format!("d{i}"));
            assert_eq!(relay.route(0, req).unwrap().0, DeliveryStatus::Queued);
        }
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| assert!(relay.set_device_online(&device, true)));
            }
        });
        // Every device task has been spawned by now; wait for all of them to finish.
        relay.stop_tasks(Duration::from_secs(10)).await;
        let snap = relay.inspect();
        assert_eq!(
            snap.decrypt_failures, 3,
            "{:?}",
            snap.decrypt_failure_details
        );
        assert!(snap.deliveries.iter().all(|d| d.count == 1));
    }

    #[tokio::test]
    async fn a_decision_expires_when_read_after_its_ttl_and_then_refuses_answers() {
        tokio::time::pause();
        let relay = relay(vec![DevicePolicy::Ignore]);
        let device = relay.device_ids("a", "u")[0].clone();
        let mut req = undecryptable("r", &device, "d");
        req.ttl_seconds = 5;
        relay.route(0, req).unwrap();
        assert_eq!(relay.outcome(0, "d", "u"), Some(Outcome::Pending));
        tokio::time::advance(Duration::from_secs(5)).await;
        // An answer arriving at the very instant of expiry loses: expiry is checked first.
        assert_eq!(
            lock(&relay.state).answer(0, "d", &device, true),
            AnswerResult::AlreadyFinal(Outcome::Expired)
        );
        assert_eq!(relay.outcome(0, "d", "u"), Some(Outcome::Expired));
        assert_eq!(relay.inspect().late_answers, 1);
    }
}
