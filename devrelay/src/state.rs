//! The relay's state and semantics: apps, identities, devices, decisions, idempotency, quota,
//! expiry, first answer wins, simulated devices and the inspection snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{AppConfig, AppStatus, DevicePolicy, DEFAULT_TTL_SECONDS};
use crate::device::{self, SecretKey, KYBER_CT_LEN, NONCE_LEN, TAG_LEN};
use crate::error::DevRelayError;
use crate::faults::Faults;
use crate::proto::DeliveryStatus;

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
    /// Marks the decision expired when its TTL has passed unanswered.
    fn refresh(&mut self, now: Instant) -> bool {
        if self.outcome == Outcome::Pending && now >= self.expires_at {
            self.outcome = Outcome::Expired;
            return true;
        }
        false
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
    /// Records the delivery and puts the envelope in the device's inbox (queued when the
    /// device is offline); returns the status and the work of a simulated device.
    fn deliver(
        &mut self,
        app: usize,
        device_id: &str,
        envelope: Envelope,
    ) -> (DeliveryStatus, Option<SimWork>) {
        let key = (envelope.request_id.clone(), device_id.to_string());
        match self.delivery_index.get(&key) {
            Some(&i) => self.deliveries[i].count += 1,
            None => {
                self.deliveries.push(DeliveryRecord {
                    app_name: self
                        .apps
                        .get(app)
                        .map(|a| a.name.clone())
                        .unwrap_or_default(),
                    request_id: envelope.request_id.clone(),
                    device_id: device_id.to_string(),
                    decision_id: envelope.decision_id.clone(),
                    count: 1,
                });
                self.delivery_index.insert(key, self.deliveries.len() - 1);
            }
        }
        let Some(device) = self.devices.get_mut(device_id) else {
            return (DeliveryStatus::Error, None);
        };
        let online = device.online;
        let work = match (&device.sim, online) {
            (Some(sim), true) => Some(SimWork {
                app,
                device_id: device_id.to_string(),
                secret: sim.secret.clone(),
                policy: sim.policy.clone(),
                envelope: envelope.clone(),
            }),
            _ => None,
        };
        device.inbox.push(InboxEntry {
            envelope,
            delivered: online,
        });
        if online {
            (DeliveryStatus::Delivered, work)
        } else {
            (DeliveryStatus::Queued, work)
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
    pub faults: Mutex<Faults>,
    route_calls: AtomicU64,
    changed: Notify,
    pub cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
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
        })
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
    pub fn route(
        self: &Arc<Self>,
        app: usize,
        req: crate::proto::RouteDecisionRequest,
    ) -> Result<(DeliveryStatus, String), String> {
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
        let now = Instant::now();
        let mut work = None;
        let mut new_decision = None;
        let result = {
            let mut st = lock(&self.state);
            let st = &mut *st;
            let key = (app, req.request_id.clone());
            if let Some(first) = st.requests.get(&key) {
                return Ok(first.clone());
            }
            let decision_id = if req.decision_id.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                req.decision_id.clone()
            };
            let Some(app_state) = st.apps.get(app) else {
                return Err("unknown app".into());
            };
            let suspended = app_state.status == AppStatus::Suspended;
            let quota_remaining = app_state.quota_remaining;
            let target_identity = st
                .devices
                .get(&req.target_device_id)
                .filter(|d| d.app == app && !req.target_device_id.is_empty())
                .map(|d| d.identity_id.clone());
            let ttl_seconds = if req.ttl_seconds == 0 {
                DEFAULT_TTL_SECONDS
            } else {
                req.ttl_seconds
            };
            let status = match target_identity {
                _ if suspended => DeliveryStatus::Rejected,
                None => DeliveryStatus::NoDevices,
                Some(identity_id) => {
                    let dkey = (app, decision_id.clone());
                    let rejected = match st.decision_index.get(&dkey).copied() {
                        Some(i) if st.decisions[i].identity_id != identity_id => {
                            return Err(format!(
                                "decision_id {decision_id:?} already belongs to another identity"
                            ));
                        }
                        Some(_) => false,
                        None if quota_remaining == 0 => true,
                        None => {
                            let expires_at = now
                                .checked_add(Duration::from_secs(u64::from(ttl_seconds)))
                                .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
                            st.decisions.push(Decision {
                                app,
                                identity_id,
                                decision_id: decision_id.clone(),
                                outcome: Outcome::Pending,
                                answered_by: None,
                                expires_at,
                            });
                            st.decision_index
                                .insert(dkey.clone(), st.decisions.len() - 1);
                            if let Some(a) = st.apps.get_mut(app) {
                                a.quota_remaining = a.quota_remaining.saturating_sub(1);
                            }
                            new_decision = Some((dkey, expires_at));
                            false
                        }
                    };
                    if rejected {
                        DeliveryStatus::Rejected
                    } else {
                        let envelope = Envelope {
                            decision_id: decision_id.clone(),
                            request_id: req.request_id.clone(),
                            kyber_ct: req.kyber_ct,
                            nonce: req.nonce,
                            ciphertext: req.ciphertext,
                            ttl_seconds,
                            delivered_at_unix_ms: now_unix_ms(),
                        };
                        let (status, w) = st.deliver(app, &req.target_device_id, envelope);
                        work = w;
                        status
                    }
                }
            };
            let result = (status, decision_id);
            st.requests.insert(key, result.clone());
            result
        };
        if let Some((dkey, expires_at)) = new_decision {
            let relay = self.clone();
            let cancel = self.cancel.clone();
            self.runtime.spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep_until(expires_at) => relay.expire(&dkey),
                }
            });
        }
        if let Some(work) = work {
            self.spawn_sim(work);
        }
        self.notify();
        Ok(result)
    }

    fn expire(&self, key: &(usize, String)) {
        let changed = {
            let mut st = lock(&self.state);
            match st.decision_index.get(key).copied() {
                Some(i) => st.decisions[i].refresh(Instant::now()),
                None => false,
            }
        };
        if changed {
            tracing::info!(decision_id = %key.1, "decision expired");
            self.notify();
        }
    }

    fn spawn_sim(self: &Arc<Self>, work: SimWork) {
        let relay = self.clone();
        self.runtime.spawn(async move { relay.run_sim(work).await });
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
            Ok(mut plaintext) => {
                let hash = device::sha256_hex(&plaintext);
                zeroize::Zeroize::zeroize(&mut plaintext);
                lock(&self.state).decrypted.push(DecryptedRecord {
                    device_id: work.device_id.clone(),
                    decision_id: env.decision_id.clone(),
                    plaintext_sha256_hex: hash,
                });
                self.notify();
            }
        }
        let (approve, delay) = match work.policy {
            DevicePolicy::Approve => (true, Duration::ZERO),
            DevicePolicy::Reject => (false, Duration::ZERO),
            DevicePolicy::ApproveAfter(d) => (true, d),
            DevicePolicy::RejectAfter(d) => (false, d),
            DevicePolicy::Ignore | DevicePolicy::Offline(_) => return,
        };
        if !delay.is_zero() {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        let result = self.answer_internal(work.app, &env.decision_id, &work.device_id, approve);
        tracing::info!(device_id = %work.device_id, decision_id = %env.decision_id, ?result, "simulated device answered");
    }

    fn answer_internal(
        &self,
        app: usize,
        decision_id: &str,
        device_id: &str,
        approve: bool,
    ) -> AnswerResult {
        let result = {
            let mut st = lock(&self.state);
            let Some(&i) = st.decision_index.get(&(app, decision_id.to_string())) else {
                return AnswerResult::NotFound;
            };
            let d = &mut st.decisions[i];
            d.refresh(Instant::now());
            if d.outcome != Outcome::Pending {
                let outcome = d.outcome;
                st.late_answers += 1;
                AnswerResult::AlreadyFinal(outcome)
            } else {
                d.outcome = if approve {
                    Outcome::Approved
                } else {
                    Outcome::Rejected
                };
                d.answered_by = Some(device_id.to_string());
                AnswerResult::Decided(d.outcome)
            }
        };
        self.notify();
        result
    }

    /// A device answers a decision that was delivered to it (HTTP device API).
    pub fn answer(&self, device_id: &str, decision_id: &str, approve: bool) -> AnswerResult {
        let app = {
            let st = lock(&self.state);
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
            device.app
        };
        self.answer_internal(app, decision_id, device_id, approve)
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
                        work.push(SimWork {
                            app: device.app,
                            device_id: device_id.to_string(),
                            secret: sim.secret.clone(),
                            policy: sim.policy.clone(),
                            envelope: entry.envelope.clone(),
                        });
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
        let found = {
            let mut st = lock(&self.state);
            match st.apps.iter_mut().find(|a| a.name == app_name) {
                Some(a) => {
                    a.status = status;
                    true
                }
                None => false,
            }
        };
        self.notify();
        found
    }

    /// Sets an app's remaining quota; false for an unknown app.
    pub fn set_quota_remaining(&self, app_name: &str, remaining: u64) -> bool {
        let found = {
            let mut st = lock(&self.state);
            match st.apps.iter_mut().find(|a| a.name == app_name) {
                Some(a) => {
                    a.quota_remaining = remaining;
                    a.quota_total = a.quota_total.max(remaining);
                    true
                }
                None => false,
            }
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
