//! The relay's state and semantics: apps, identities, devices, decisions, idempotency, quota,
//! expiry, first answer wins, eviction, simulated devices and the inspection snapshot.
//!
//! Layout, with persistence in mind (plain data, one copy of each ciphertext):
//! - decisions in a map by a sequence number (creation order), indexed by `(app, decision_id)`;
//!   each holds its deliveries (one per device at most), and each delivery the one copy of
//!   its envelope (`Arc`, shared with a simulated device's work and with HTTP listings);
//! - each device an inbox of `delivery seq → decision seq` and the set of what is queued;
//! - request-id answers by `(app, request_id)`;
//! - one schedule of what is due when (a decision's expiry, its eviction, the forgetting of
//!   an answer that created no decision), served by one sweeper task.
//!
//! Every RPC takes the lock once and does work bounded by the number of devices of one
//! identity, never by history. Bearer tokens and app names never change and are read
//! without the lock.
//!
//! With a database (`persist.rs`, `store.rs`), each critical section that changes something
//! notes what it changed ([`Dirty`]) and writes it through in one transaction before it
//! releases the lock, so an answer a caller saw is on disk.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{AppStatus, DevicePolicy, Limits, DEFAULT_TTL_SECONDS};
use crate::device::{self, SecretKey, KYBER_CT_LEN, NONCE_LEN, TAG_LEN};
use crate::faults::Faults;
use crate::proto::{DeliveryStatus, RouteDecisionRequest};

mod persist;

use persist::{Dirty, Persist};

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

/// A snapshot of what the relay holds and has done, for tests (also served as JSON at
/// `GET /v1/inspect`). Lists hold what has not been evicted yet; counters count since start.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Inspection {
    /// `RouteDecision` calls received, including failed, injected-fault and repeated ones.
    pub route_calls: u64,
    /// One record per `(request_id, device_id)` actually delivered (or queued).
    pub deliveries: Vec<DeliveryRecord>,
    /// Every decision the relay holds, in creation order.
    pub decisions: Vec<DecisionRecord>,
    /// How many deliveries simulated devices could not decrypt or parse (since start).
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
    /// gRPC connections the relay has accepted (TCP), since start.
    pub connections_accepted: u64,
    /// Decisions evicted (a grace period after they became terminal), since start.
    pub evicted_decisions: u64,
    /// Ciphertext bytes the relay holds now (bounded by `Limits::max_stored_bytes`).
    pub stored_bytes: u64,
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
    /// How many times this `(request_id, device_id)` was delivered: 1, since neither a
    /// repeated request id nor another request for the same decision and device delivers
    /// again.
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

/// An encrypted decision as delivered to a device: ciphertext only. Never changes once
/// stored; shared by reference.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub decision_id: String,
    pub request_id: String,
    pub kyber_ct: Vec<u8>,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub ttl_seconds: u32,
}

impl Envelope {
    fn stored_bytes(&self) -> u64 {
        (self.kyber_ct.len() + self.nonce.len() + self.ciphertext.len()) as u64
    }
}

/// What a simulated device made of a delivery.
#[derive(Debug, Clone)]
enum SimResult {
    Decrypted { plaintext_sha256_hex: String },
    Failed { reason: Cow<'static, str> },
}

/// One decision delivered (or queued) to one device.
struct Delivery {
    /// Key in the device's inbox.
    seq: u64,
    device_id: String,
    envelope: Arc<Envelope>,
    /// False while queued on an offline device.
    delivered: bool,
    delivered_at_unix_ms: u64,
    sim: Option<SimResult>,
}

impl Delivery {
    fn status(&self) -> DeliveryStatus {
        if self.delivered {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::Queued
        }
    }
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
    /// delivery seq → decision seq, in routing order.
    inbox: BTreeMap<u64, u64>,
    /// The delivery seqs of the inbox still queued.
    queued: BTreeSet<u64>,
}

/// What never changes about an app while the relay runs: read without the lock.
struct AppMeta {
    name: String,
    token: String,
}

struct App {
    quota_total: u64,
    quota_remaining: u64,
    status: AppStatus,
    /// identity id → device ids in registration order.
    identities: BTreeMap<String, Vec<String>>,
    /// Devices registered over HTTP (or `register_device`).
    registered: usize,
}

/// The schedule's key: when, and a unique number.
type DueKey = (Instant, u64);

/// What the sweeper does at a given instant.
#[derive(Debug)]
enum Due {
    /// The decision expires unless it has been answered.
    Expire(u64),
    /// The decision and everything hanging off it go.
    Evict(u64),
    /// The answer of a request that created no decision is forgotten.
    ForgetRequest(usize, String),
}

struct Decision {
    app: usize,
    identity_id: String,
    decision_id: String,
    outcome: Outcome,
    answered_by: Option<String>,
    expires_at: Instant,
    /// When it was answered or expired (the eviction grace counts from here).
    ended_at: Option<Instant>,
    /// Its entry in the schedule (expiry while pending, eviction once terminal).
    due: DueKey,
    /// At most one per device.
    deliveries: Vec<Delivery>,
}

impl Decision {
    /// The outcome as of `now`: a pending decision past its TTL reads as expired even before
    /// the sweeper has marked it.
    fn outcome_at(&self, now: Instant) -> Outcome {
        if self.outcome == Outcome::Pending && now >= self.expires_at {
            Outcome::Expired
        } else {
            self.outcome
        }
    }
}

/// The answer given to a request id.
#[derive(Debug, Clone)]
struct RequestAnswer {
    status: DeliveryStatus,
    decision_id: String,
}

/// Counters kept as things happen (never recomputed from history).
#[derive(Default)]
struct Counters {
    late_answers: u64,
    decrypt_failures: u64,
    evicted_decisions: u64,
}

struct State {
    apps: Vec<App>,
    devices: HashMap<String, Device>,
    /// By sequence number: creation order.
    decisions: BTreeMap<u64, Decision>,
    decision_index: HashMap<(usize, String), u64>,
    requests: HashMap<(usize, String), RequestAnswer>,
    schedule: BTreeMap<DueKey, Due>,
    next_seq: u64,
    stored_bytes: u64,
    counters: Counters,
    limits: Limits,
    /// Set when the schedule's first entry became earlier: the sweeper must look again.
    wake_sweeper: bool,
    /// The database, if any, and what changed since the last transaction.
    persist: Persist,
}

/// Why a `RouteDecision` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// INVALID_ARGUMENT.
    Invalid(String),
    /// RESOURCE_EXHAUSTED: a cap of [`Limits`] is reached.
    Exhausted(String),
    /// UNAVAILABLE: the change could not be written to the relay's database (nothing was
    /// answered; the relay refuses every call until restarted).
    Unavailable(String),
}

/// A routed request: its answer, whether to remember it for the request id, and the work of
/// a simulated device.
struct Routed {
    answer: RequestAnswer,
    /// `Some(seq)`: the answer lives as long as that decision. `None`: no decision was created
    /// (NO_DEVICES, REJECTED); the answer is forgotten after the grace period.
    decision: Option<u64>,
    /// False for a further request of an existing (decision, device) delivery: its answer is
    /// given again, not stored, so repeats cost nothing.
    remember: bool,
    work: Option<SimWork>,
}

impl State {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn schedule(&mut self, at: Instant, due: Due) -> DueKey {
        let key = (at, self.seq());
        if self
            .schedule
            .first_key_value()
            .is_none_or(|(k, _)| key < *k)
        {
            self.wake_sweeper = true;
        }
        self.schedule.insert(key, due);
        key
    }

    /// Acts on a `RouteDecision` whose request id is new to the app.
    fn route_new(
        &mut self,
        app: usize,
        req: RouteDecisionRequest,
        now: Instant,
    ) -> Result<Routed, RouteError> {
        let decision_id = if req.decision_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            req.decision_id
        };
        let unattached = |status| Routed {
            answer: RequestAnswer {
                status,
                decision_id: decision_id.clone(),
            },
            decision: None,
            remember: true,
            work: None,
        };
        let Some(app_state) = self.apps.get(app) else {
            return Err(RouteError::Invalid("unknown app".into()));
        };
        if app_state.status == AppStatus::Suspended {
            return Ok(unattached(DeliveryStatus::Rejected));
        }
        let Some(device) = self
            .devices
            .get(&req.target_device_id)
            .filter(|d| d.app == app)
        else {
            return Ok(unattached(DeliveryStatus::NoDevices));
        };
        let existing = self
            .decision_index
            .get(&(app, decision_id.clone()))
            .copied();
        if let Some(seq) = existing {
            let d = &self.decisions[&seq];
            if d.identity_id != device.identity_id {
                return Err(RouteError::Invalid(format!(
                    "decision_id {decision_id:?} already belongs to another identity"
                )));
            }
            // At most one delivery per (decision, device): a further request gets the
            // existing delivery's status and stores nothing.
            if let Some(existing) = d
                .deliveries
                .iter()
                .find(|x| x.device_id == req.target_device_id)
            {
                return Ok(Routed {
                    answer: RequestAnswer {
                        status: existing.status(),
                        decision_id,
                    },
                    decision: Some(seq),
                    remember: false,
                    work: None,
                });
            }
        } else if app_state.quota_remaining == 0 {
            return Ok(unattached(DeliveryStatus::Rejected));
        }
        let envelope = Envelope {
            decision_id: decision_id.clone(),
            request_id: req.request_id,
            kyber_ct: req.kyber_ct,
            nonce: req.nonce,
            ciphertext: req.ciphertext,
            ttl_seconds: if req.ttl_seconds == 0 {
                DEFAULT_TTL_SECONDS
            } else {
                req.ttl_seconds
            },
        };
        let size = envelope.stored_bytes();
        if device.inbox.len() >= self.limits.max_inbox_entries {
            return Err(RouteError::Exhausted(format!(
                "device {} already holds {} deliveries (the relay's limit); they are evicted \
                 a grace period after their decisions end",
                req.target_device_id,
                device.inbox.len()
            )));
        }
        if self.stored_bytes + size > self.limits.max_stored_bytes {
            return Err(RouteError::Exhausted(format!(
                "the relay already holds {} bytes of ciphertext (its limit is {}); decisions \
                 are evicted a grace period after they end",
                self.stored_bytes, self.limits.max_stored_bytes
            )));
        }

        let seq = match existing {
            Some(seq) => seq,
            None => {
                // The quota is charged once per decision, at its first accepted delivery.
                self.apps[app].quota_remaining -= 1;
                self.persist.mark(Dirty::App(app));
                // u32::MAX seconds still fits an Instant on the platforms we run on; the
                // fallback only guards against an exotic clock.
                let expires_at = now
                    .checked_add(Duration::from_secs(u64::from(envelope.ttl_seconds)))
                    .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
                let seq = self.seq();
                let due = self.schedule(expires_at, Due::Expire(seq));
                self.decision_index.insert((app, decision_id.clone()), seq);
                self.decisions.insert(
                    seq,
                    Decision {
                        app,
                        identity_id: self.devices[&req.target_device_id].identity_id.clone(),
                        decision_id: decision_id.clone(),
                        outcome: Outcome::Pending,
                        answered_by: None,
                        expires_at,
                        ended_at: None,
                        due,
                        deliveries: Vec::new(),
                    },
                );
                self.persist.mark(Dirty::Decision(seq));
                seq
            }
        };

        let delivery_seq = self.seq();
        let envelope = Arc::new(envelope);
        let device = self
            .devices
            .get_mut(&req.target_device_id)
            .expect("looked up above, under the same lock");
        device.inbox.insert(delivery_seq, seq);
        let online = device.online;
        if !online {
            device.queued.insert(delivery_seq);
        }
        // A device registered over HTTP has no work: it fetches its decisions itself.
        let work = device
            .sim
            .as_ref()
            .filter(|_| online)
            .map(|sim| sim.work(seq, app, &req.target_device_id, &envelope));
        self.stored_bytes += size;
        self.persist
            .mark(Dirty::Delivery(seq, req.target_device_id.clone()));
        self.decisions
            .get_mut(&seq)
            .expect("inserted or found above")
            .deliveries
            .push(Delivery {
                seq: delivery_seq,
                device_id: req.target_device_id,
                envelope,
                delivered: online,
                delivered_at_unix_ms: now_unix_ms(),
                sim: None,
            });
        Ok(Routed {
            answer: RequestAnswer {
                status: if online {
                    DeliveryStatus::Delivered
                } else {
                    DeliveryStatus::Queued
                },
                decision_id,
            },
            decision: Some(seq),
            remember: true,
            work,
        })
    }

    /// Marks a pending decision expired when its TTL has passed, and schedules its eviction.
    /// Expiry is checked on every read as well as by the sweeper at the TTL, so an answer
    /// arriving at or after the TTL loses even if the sweeper is late.
    fn refresh(&mut self, seq: u64, now: Instant) {
        let Some(d) = self.decisions.get(&seq) else {
            return;
        };
        if d.outcome != Outcome::Pending || now < d.expires_at {
            return;
        }
        let (old_due, evict_at) = (d.due, d.expires_at + self.limits.eviction_grace);
        self.schedule.remove(&old_due);
        let due = self.schedule(evict_at, Due::Evict(seq));
        let d = self.decisions.get_mut(&seq).expect("checked above");
        d.outcome = Outcome::Expired;
        d.ended_at = Some(d.expires_at);
        d.due = due;
        self.persist.mark(Dirty::Decision(seq));
        tracing::info!(decision_id = %d.decision_id, "decision expired");
    }

    /// A device's answer to a decision: the first answer before expiry decides.
    fn answer(&mut self, seq: u64, device_id: &str, approve: bool, now: Instant) -> AnswerResult {
        self.refresh(seq, now);
        let Some(d) = self.decisions.get(&seq) else {
            return AnswerResult::NotFound;
        };
        if d.outcome != Outcome::Pending {
            let outcome = d.outcome;
            self.counters.late_answers += 1;
            self.persist.mark(Dirty::Counters);
            return AnswerResult::AlreadyFinal(outcome);
        }
        let old_due = d.due;
        self.schedule.remove(&old_due);
        let due = self.schedule(now + self.limits.eviction_grace, Due::Evict(seq));
        let d = self.decisions.get_mut(&seq).expect("checked above");
        d.outcome = if approve {
            Outcome::Approved
        } else {
            Outcome::Rejected
        };
        d.answered_by = Some(device_id.to_string());
        d.ended_at = Some(now);
        d.due = due;
        self.persist.mark(Dirty::Decision(seq));
        AnswerResult::Decided(d.outcome)
    }

    /// Removes a decision with its deliveries, inbox entries and request-id answers.
    fn evict(&mut self, seq: u64) {
        let Some(d) = self.decisions.remove(&seq) else {
            return;
        };
        self.schedule.remove(&d.due);
        if self.persist.active() {
            let deliveries = d
                .deliveries
                .iter()
                .map(|x| (x.seq, x.envelope.request_id.clone()))
                .collect();
            self.persist.mark(Dirty::Evicted {
                seq,
                app: d.app,
                deliveries,
            });
        }
        self.decision_index.remove(&(d.app, d.decision_id));
        for delivery in d.deliveries {
            self.requests
                .remove(&(d.app, delivery.envelope.request_id.clone()));
            if let Some(device) = self.devices.get_mut(&delivery.device_id) {
                device.inbox.remove(&delivery.seq);
                device.queued.remove(&delivery.seq);
            }
            self.stored_bytes -= delivery.envelope.stored_bytes();
        }
        self.counters.evicted_decisions += 1;
    }

    /// Does what is due at or before `now`; returns whether anything changed.
    fn sweep(&mut self, now: Instant) -> bool {
        let mut changed = false;
        while let Some(entry) = self.schedule.first_entry() {
            if entry.key().0 > now {
                break;
            }
            changed = true;
            match entry.remove() {
                Due::Expire(seq) => self.refresh(seq, now),
                Due::Evict(seq) => self.evict(seq),
                Due::ForgetRequest(app, request_id) => {
                    self.requests.remove(&(app, request_id.clone()));
                    self.persist.mark(Dirty::ForgetRequest(app, request_id));
                }
            }
        }
        changed
    }

    /// The decision delivered to `device_id` under `decision_id`, if it was delivered (not
    /// merely queued).
    fn delivered_to(&self, device_id: &str, decision_id: &str) -> Option<u64> {
        let device = self.devices.get(device_id)?;
        let seq = *self
            .decision_index
            .get(&(device.app, decision_id.to_string()))?;
        self.decisions[&seq]
            .deliveries
            .iter()
            .any(|x| x.device_id == device_id && x.delivered)
            .then_some(seq)
    }
}

impl SimDevice {
    /// What this simulated device has to do with an envelope it has just received.
    fn work(
        &self,
        decision: u64,
        app: usize,
        device_id: &str,
        envelope: &Arc<Envelope>,
    ) -> SimWork {
        SimWork {
            decision,
            app,
            device_id: device_id.to_string(),
            secret: self.secret.clone(),
            policy: self.policy.clone(),
            envelope: envelope.clone(),
            waited: Duration::ZERO,
            decrypted: false,
        }
    }
}

/// Work for a simulated device, done outside the lock.
struct SimWork {
    decision: u64,
    app: usize,
    device_id: String,
    secret: Arc<SecretKey>,
    policy: DevicePolicy,
    envelope: Arc<Envelope>,
    /// How much of an `-after` delay has already passed (resumed after a restart).
    waited: Duration,
    /// Already decrypted and recorded (resumed after a restart): straight to the policy.
    decrypted: bool,
}

/// Result of a device's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerResult {
    /// This answer decided the decision.
    Decided(Outcome),
    /// The decision was already terminal (first answer wins, or it expired).
    AlreadyFinal(Outcome),
    /// Unknown device, or the decision was never delivered to it (or was evicted).
    NotFound,
}

/// Why registering a device failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegisterError {
    UnknownApp,
    Invalid(String),
    /// A cap of [`Limits`] is reached.
    Limit(String),
}

/// A decision as listed for a device over HTTP (binary fields still raw: they are encoded
/// outside the lock).
pub(crate) struct InboxItem {
    pub envelope: Arc<Envelope>,
    pub delivered_at_unix_ms: u64,
    pub outcome: Outcome,
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
    /// Per app, what never changes.
    apps: Vec<AppMeta>,
    /// Bearer token → app.
    tokens: HashMap<String, usize>,
    /// App name → app.
    app_names: HashMap<String, usize>,
    faults: Mutex<Faults>,
    route_calls: AtomicU64,
    connections: AtomicU64,
    /// Bumped on every change of the state; waiters look again when it moves.
    version: watch::Sender<u64>,
    /// Wakes the sweeper when an earlier deadline was scheduled.
    sweeper_wake: Notify,
    pub cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
    /// The simulated devices' running work.
    tasks: Mutex<JoinSet<()>>,
    /// Set when a change could not be written to the database (or the relay has closed it):
    /// from then on every call is refused, since the memory may hold what the disk lacks.
    failure: OnceLock<String>,
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

/// The identity id a device is added to: 1 to 512 bytes.
fn check_identity_id(identity_id: &str) -> Result<(), RegisterError> {
    if identity_id.is_empty() || identity_id.len() > 512 {
        return Err(RegisterError::Invalid(
            "identity_id must be 1 to 512 bytes".into(),
        ));
    }
    Ok(())
}

fn new_device_id() -> String {
    format!("dev-{}", uuid::Uuid::new_v4())
}

impl Relay {
    /// Builds the relay from its apps; creates the simulated devices and their key pairs.
    /// Its state lives in memory only (the unit tests' relay; `DevRelay` calls `open`).
    #[cfg(test)]
    pub fn new(
        apps: &[crate::config::AppConfig],
        limits: Limits,
        faults: Faults,
        cancel: CancellationToken,
        runtime: tokio::runtime::Handle,
    ) -> Result<Relay, crate::error::DevRelayError> {
        Self::open(apps, limits, faults, cancel, runtime, None)
    }

    /// The fault injection state.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    /// Signals a change of the state to waiters (and, when the schedule's head moved, to
    /// the sweeper). Call after releasing the lock, with what `unlock` returned.
    fn changed(&self, wake_sweeper: bool) {
        self.version.send_modify(|v| *v += 1);
        if wake_sweeper {
            self.sweeper_wake.notify_one();
        }
    }

    /// Releases the lock; returns whether the sweeper must look at the schedule again.
    fn unlock(mut st: MutexGuard<'_, State>) -> bool {
        std::mem::take(&mut st.wake_sweeper)
    }

    /// Counts a `RouteDecision` call.
    pub fn count_route_call(&self) {
        self.route_calls.fetch_add(1, Ordering::Relaxed);
        self.changed(false);
    }

    /// Counts an accepted gRPC connection.
    pub fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.changed(false);
    }

    /// The app index of a bearer token (no lock: tokens never change).
    pub fn authenticate(&self, token: &str) -> Option<usize> {
        self.tokens.get(token).copied()
    }

    /// The name of an app (no lock: names never change).
    pub fn app_name(&self, app: usize) -> &str {
        self.apps.get(app).map(|a| a.name.as_str()).unwrap_or("")
    }

    /// Routes one encrypted copy of a decision to one device.
    ///
    /// The request-id check, the quota charge and the delivery happen under one lock, so
    /// concurrent calls with the same request id, or concurrent first deliveries of one
    /// decision to several devices, deliver once per request and charge once per decision.
    pub fn route(
        self: &Arc<Self>,
        app: usize,
        req: RouteDecisionRequest,
    ) -> Result<(DeliveryStatus, String), RouteError> {
        validate_route(&req).map_err(RouteError::Invalid)?;
        let now = Instant::now();
        let request_key = (app, req.request_id.clone());
        let mut st = lock(&self.state);
        if let Some(first) = st.requests.get(&request_key) {
            return Ok((first.status, first.decision_id.clone()));
        }
        let routed = st.route_new(app, req, now)?;
        if routed.remember {
            if routed.decision.is_none() {
                let at = now + st.limits.eviction_grace;
                st.schedule(at, Due::ForgetRequest(app, request_key.1.clone()));
            }
            st.persist.mark(Dirty::Request {
                app,
                request_id: request_key.1.clone(),
                decision: routed.decision,
                given_at: now,
            });
            st.requests.insert(request_key, routed.answer.clone());
        }
        self.commit(&mut st).map_err(RouteError::Unavailable)?;
        let wake = Self::unlock(st);
        if let Some(work) = routed.work {
            self.spawn_sim(work);
        }
        self.changed(wake);
        Ok((routed.answer.status, routed.answer.decision_id))
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

    /// Expires and evicts what is due, at its time, until the relay stops.
    pub async fn run_sweeper(self: Arc<Self>) {
        loop {
            let next = {
                let mut st = lock(&self.state);
                let changed = st.sweep(Instant::now());
                // A failure is recorded and refuses further calls.
                let _ = self.commit(&mut st);
                st.wake_sweeper = false;
                let next = st.schedule.first_key_value().map(|(k, _)| k.0);
                drop(st);
                if changed {
                    self.changed(false);
                }
                next
            };
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.sweeper_wake.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// Records what a simulated device made of a delivery (nothing when the decision has
    /// been evicted meanwhile; the failure counter counts anyway).
    fn record_sim(&self, work: &SimWork, result: SimResult) {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        if matches!(result, SimResult::Failed { .. }) {
            st.counters.decrypt_failures += 1;
            st.persist.mark(Dirty::Counters);
        }
        if let Some(delivery) = st.decisions.get_mut(&work.decision).and_then(|d| {
            d.deliveries
                .iter_mut()
                .find(|x| x.device_id == work.device_id)
        }) {
            delivery.sim = Some(result);
            st.persist
                .mark(Dirty::Delivery(work.decision, work.device_id.clone()));
        }
        let _ = self.commit(st);
        let wake = Self::unlock(guard);
        self.changed(wake);
    }

    /// A simulated device receives a decision: decrypt, then act on its policy.
    async fn run_sim(self: Arc<Self>, work: SimWork) {
        let env = &*work.envelope;
        // A delivery resumed after a restart may have been decrypted and recorded before it.
        let decrypted = if work.decrypted {
            Ok(None)
        } else {
            device::decrypt(&work.secret, &env.kyber_ct, &env.nonce, &env.ciphertext).map(Some)
        };
        match decrypted {
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(device_id = %work.device_id, decision_id = %env.decision_id, reason, "simulated device could not decrypt a decision");
                self.record_sim(
                    &work,
                    SimResult::Failed {
                        reason: reason.into(),
                    },
                );
                return;
            }
            Ok(Some(plaintext)) => {
                let plaintext_sha256_hex = device::sha256_hex(&plaintext);
                self.record_sim(
                    &work,
                    SimResult::Decrypted {
                        plaintext_sha256_hex,
                    },
                );
            }
        }
        let (approve, delay) = match work.policy {
            DevicePolicy::Approve => (true, Duration::ZERO),
            DevicePolicy::Reject => (false, Duration::ZERO),
            DevicePolicy::ApproveAfter(d) => (true, d),
            DevicePolicy::RejectAfter(d) => (false, d),
            // `Offline` never gets here: `DevicePolicy::split` removes it at start. A browser
            // device is answered by a person on the device page.
            DevicePolicy::Ignore | DevicePolicy::Offline(_) | DevicePolicy::Browser => return,
        };
        let delay = delay.saturating_sub(work.waited);
        if !delay.is_zero() {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        let mut st = lock(&self.state);
        let result = st.answer(work.decision, &work.device_id, approve, Instant::now());
        let _ = self.commit(&mut st);
        let wake = Self::unlock(st);
        self.changed(wake);
        tracing::info!(device_id = %work.device_id, decision_id = %env.decision_id, app = self.app_name(work.app), ?result, "simulated device answered");
    }

    /// A device answers a decision that was delivered to it (HTTP device API).
    pub fn answer(&self, device_id: &str, decision_id: &str, approve: bool) -> AnswerResult {
        let mut st = lock(&self.state);
        let Some(seq) = st.delivered_to(device_id, decision_id) else {
            return AnswerResult::NotFound;
        };
        let result = st.answer(seq, device_id, approve, Instant::now());
        let _ = self.commit(&mut st);
        let wake = Self::unlock(st);
        self.changed(wake);
        result
    }

    /// `GetDecisionOutcome`: `None` unless the decision exists in the app and belongs to the
    /// identity.
    pub fn outcome(&self, app: usize, decision_id: &str, identity_id: &str) -> Option<Outcome> {
        let mut st = lock(&self.state);
        let seq = *st.decision_index.get(&(app, decision_id.to_string()))?;
        if st.decisions[&seq].identity_id != identity_id {
            return None;
        }
        let was = st.decisions[&seq].outcome;
        st.refresh(seq, Instant::now());
        let outcome = st.decisions[&seq].outcome;
        if outcome != was {
            let _ = self.commit(&mut st);
        }
        let wake = Self::unlock(st);
        if outcome != was {
            self.changed(wake);
        }
        Some(outcome)
    }

    /// The outcome of a decision by app name, when it is terminal.
    fn terminal_outcome(&self, app_name: &str, decision_id: &str) -> Option<Outcome> {
        let app = *self.app_names.get(app_name)?;
        let st = lock(&self.state);
        let seq = *st.decision_index.get(&(app, decision_id.to_string()))?;
        Some(st.decisions[&seq].outcome_at(Instant::now())).filter(|o| *o != Outcome::Pending)
    }

    /// `GetQuota`: (total, remaining, status).
    pub fn quota(&self, app: usize) -> Option<(u64, u64, AppStatus)> {
        let st = lock(&self.state);
        st.apps
            .get(app)
            .map(|a| (a.quota_total, a.quota_remaining, a.status))
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
        let Some(&app) = self.app_names.get(app_name) else {
            return Vec::new();
        };
        let st = lock(&self.state);
        st.apps[app]
            .identities
            .get(identity_id)
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
        check_identity_id(identity_id)?;
        device::validate_public_key(&pq_public_key).map_err(RegisterError::Invalid)?;
        if let Some(pk) = &public_key {
            if pk.is_empty() || pk.len() > 1024 {
                return Err(RegisterError::Invalid(
                    "public_key must be 1 to 1024 bytes".into(),
                ));
            }
        }
        let public_key = public_key.unwrap_or_else(device::random_classical_key);
        self.add_counted_device(app_name, identity_id, public_key, pq_public_key, None)
    }

    /// Adds a device that counts against the app's limit of registered devices (one
    /// registered over HTTP, or a browser device) to an identity, created when new, and
    /// writes it through; returns its id.
    fn add_counted_device(
        &self,
        app_name: &str,
        identity_id: &str,
        public_key: Vec<u8>,
        pq_public_key: Vec<u8>,
        sim: Option<SimDevice>,
    ) -> Result<String, RegisterError> {
        let Some(&app) = self.app_names.get(app_name) else {
            return Err(RegisterError::UnknownApp);
        };
        let id = new_device_id();
        let mut st = lock(&self.state);
        let limits = st.limits.clone();
        let app_state = &mut st.apps[app];
        if app_state.registered >= limits.max_registered_devices_per_app {
            return Err(RegisterError::Limit(format!(
                "app {app_name:?} already has {} registered devices (the relay's limit)",
                app_state.registered
            )));
        }
        let devices = app_state
            .identities
            .get(identity_id)
            .map_or(0, |ids| ids.len());
        if devices >= limits.max_devices_per_identity {
            return Err(RegisterError::Limit(format!(
                "identity {identity_id:?} already has {devices} devices (the relay's limit)"
            )));
        }
        app_state.registered += 1;
        app_state
            .identities
            .entry(identity_id.to_string())
            .or_default()
            .push(id.clone());
        st.persist
            .mark(Dirty::Identity(app, identity_id.to_string()));
        st.persist.mark(Dirty::Device(id.clone()));
        st.devices.insert(
            id.clone(),
            Device {
                app,
                identity_id: identity_id.to_string(),
                public_key,
                pq_public_key,
                online: true,
                sim,
                inbox: BTreeMap::new(),
                queued: BTreeSet::new(),
            },
        );
        let _ = self.commit(&mut st);
        let wake = Self::unlock(st);
        self.changed(wake);
        Ok(id)
    }

    /// The decisions delivered to a device (not those still queued), in routing order;
    /// `None` for an unknown device. Only references are taken under the lock.
    pub fn device_decisions(&self, device_id: &str) -> Option<Vec<InboxItem>> {
        let st = lock(&self.state);
        let now = Instant::now();
        let device = st.devices.get(device_id)?;
        let items = device
            .inbox
            .iter()
            .filter(|(seq, _)| !device.queued.contains(seq))
            .filter_map(|(seq, decision)| {
                let d = st.decisions.get(decision)?;
                let delivery = d.deliveries.iter().find(|x| x.seq == *seq)?;
                Some(InboxItem {
                    envelope: delivery.envelope.clone(),
                    delivered_at_unix_ms: delivery.delivered_at_unix_ms,
                    outcome: d.outcome_at(now),
                })
            })
            .collect();
        Some(items)
    }

    /// Sets a device online or offline; going online delivers its queued decisions. Returns
    /// false for an unknown device.
    pub fn set_device_online(self: &Arc<Self>, device_id: &str, online: bool) -> bool {
        let mut work = Vec::new();
        let mut st = lock(&self.state);
        let st_ref = &mut *st;
        let Some(device) = st_ref.devices.get_mut(device_id) else {
            return false;
        };
        let was_online = device.online;
        device.online = online;
        if online != was_online {
            st_ref.persist.mark(Dirty::Device(device_id.to_string()));
        }
        if online && !was_online {
            let now_ms = now_unix_ms();
            for seq in std::mem::take(&mut device.queued) {
                let Some(&decision) = device.inbox.get(&seq) else {
                    continue;
                };
                let Some(d) = st_ref.decisions.get_mut(&decision) else {
                    continue;
                };
                let Some(delivery) = d.deliveries.iter_mut().find(|x| x.seq == seq) else {
                    continue;
                };
                delivery.delivered = true;
                delivery.delivered_at_unix_ms = now_ms;
                st_ref
                    .persist
                    .mark(Dirty::Delivery(decision, device_id.to_string()));
                if let Some(sim) = &device.sim {
                    work.push(sim.work(decision, d.app, device_id, &delivery.envelope));
                }
            }
        }
        let _ = self.commit(&mut st);
        let wake = Self::unlock(st);
        for w in work {
            self.spawn_sim(w);
        }
        self.changed(wake);
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
        let Some(&app) = self.app_names.get(app_name) else {
            return false;
        };
        let mut st = lock(&self.state);
        update(&mut st.apps[app]);
        st.persist.mark(Dirty::App(app));
        let _ = self.commit(&mut st);
        drop(st);
        self.changed(false);
        true
    }

    /// The inspection snapshot: counters as kept, lists built from what the relay holds
    /// (O(held records); eviction bounds them).
    pub fn inspect(&self) -> Inspection {
        let st = lock(&self.state);
        let now = Instant::now();
        let mut snap = Inspection {
            route_calls: self.route_calls.load(Ordering::Relaxed),
            connections_accepted: self.connections.load(Ordering::Relaxed),
            decrypt_failures: st.counters.decrypt_failures,
            late_answers: st.counters.late_answers,
            evicted_decisions: st.counters.evicted_decisions,
            stored_bytes: st.stored_bytes,
            quota_remaining: st
                .apps
                .iter()
                .zip(&self.apps)
                .map(|(a, meta)| (meta.name.clone(), a.quota_remaining))
                .collect(),
            ..Inspection::default()
        };
        for d in st.decisions.values() {
            let app_name = self.app_name(d.app);
            snap.decisions.push(DecisionRecord {
                app_name: app_name.to_string(),
                identity_id: d.identity_id.clone(),
                decision_id: d.decision_id.clone(),
                outcome: d.outcome_at(now).name().to_string(),
                answered_by: d.answered_by.clone(),
            });
            for x in &d.deliveries {
                snap.deliveries.push(DeliveryRecord {
                    app_name: app_name.to_string(),
                    request_id: x.envelope.request_id.clone(),
                    device_id: x.device_id.clone(),
                    decision_id: d.decision_id.clone(),
                    count: 1,
                });
                match &x.sim {
                    Some(SimResult::Decrypted {
                        plaintext_sha256_hex,
                    }) => snap.decrypted.push(DecryptedRecord {
                        device_id: x.device_id.clone(),
                        decision_id: d.decision_id.clone(),
                        plaintext_sha256_hex: plaintext_sha256_hex.clone(),
                    }),
                    Some(SimResult::Failed { reason }) => {
                        snap.decrypt_failure_details.push(DecryptFailureRecord {
                            device_id: x.device_id.clone(),
                            decision_id: d.decision_id.clone(),
                            reason: reason.to_string(),
                        })
                    }
                    None => {}
                }
            }
        }
        snap
    }

    /// Waits until `check` returns `Some`, looking again whenever the state changes (not on
    /// every change: changes made while `check` runs or while this task waits to be polled
    /// are seen together), at most `timeout`.
    async fn wait_until<T>(&self, timeout: Duration, check: impl Fn() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut version = self.version.subscribe();
        loop {
            version.borrow_and_update();
            if let Some(found) = check() {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return check(),
            }
        }
    }

    /// Waits until `pred` holds on the inspection snapshot, or the timeout passes; returns
    /// whether it holds. A snapshot is taken only when the state has changed since the last
    /// one.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Inspection) -> bool) -> bool {
        self.wait_until(timeout, || pred(&self.inspect()).then_some(()))
            .await
            .is_some()
    }

    /// Waits until a decision is terminal (one lookup per change, no snapshot).
    pub async fn wait_for_outcome(
        &self,
        app_name: &str,
        decision_id: &str,
        timeout: Duration,
    ) -> Option<Outcome> {
        self.wait_until(timeout, || self.terminal_outcome(app_name, decision_id))
            .await
    }
}

/// A device as the device page lists it.
pub(crate) struct PageDevice {
    pub device_id: String,
    /// The policy's spec string (`browser`, `approve`, ...); `None` for a device registered
    /// over HTTP with its own key.
    pub policy: Option<String>,
    pub online: bool,
}

/// An identity of an app and its devices, for the device page.
pub(crate) struct PageIdentity {
    pub app_name: String,
    pub identity_id: String,
    pub devices: Vec<PageDevice>,
}

/// A decision delivered to a browser device, with what the page needs to show it (the
/// ciphertext is decrypted outside the lock).
pub(crate) struct PageItem {
    pub envelope: Arc<Envelope>,
    pub delivered_at_unix_ms: u64,
    pub outcome: Outcome,
    /// Time left before it expires (zero once terminal).
    pub expires_in: Duration,
    pub answered_by: Option<String>,
}

/// A browser device's inbox: its key, its identity and what was delivered to it.
pub(crate) struct PageInbox {
    pub secret: Arc<SecretKey>,
    pub app_name: String,
    pub identity_id: String,
    pub items: Vec<PageItem>,
}

/// What the device page (`crate::page`) needs from the relay.
impl Relay {
    /// The state's version: it moves on every change.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Waits until the version is not `seen`, the relay stops, or `timeout` passes; returns
    /// the version then.
    pub async fn changed_since(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut version = self.version.subscribe();
        loop {
            let now = *version.borrow_and_update();
            if now != seen {
                return now;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return now,
                changed = tokio::time::timeout_at(deadline, version.changed()) => {
                    if !matches!(changed, Ok(Ok(()))) {
                        return *version.borrow();
                    }
                }
            }
        }
    }

    /// The app names, and every identity of every app with its devices, in app then
    /// identity order (names only: never a token).
    pub fn page_identities(&self) -> (Vec<String>, Vec<PageIdentity>) {
        let st = lock(&self.state);
        let mut out = Vec::new();
        for (app, meta) in st.apps.iter().zip(&self.apps) {
            for (identity_id, ids) in &app.identities {
                let devices = ids
                    .iter()
                    .filter_map(|id| {
                        let d = st.devices.get(id)?;
                        Some(PageDevice {
                            device_id: id.clone(),
                            policy: d.sim.as_ref().map(|s| s.policy.to_string()),
                            online: d.online,
                        })
                    })
                    .collect();
                out.push(PageIdentity {
                    app_name: meta.name.clone(),
                    identity_id: identity_id.clone(),
                    devices,
                });
            }
        }
        (self.apps.iter().map(|a| a.name.clone()).collect(), out)
    }

    /// Adds a `browser` device, whose key pair the relay holds, to an identity (created when
    /// new); returns its id. Counted like a device registered over HTTP, and persisted like
    /// every simulated device (its key pair's seed and its policy).
    pub fn add_browser_device(
        &self,
        app_name: &str,
        identity_id: &str,
    ) -> Result<String, RegisterError> {
        check_identity_id(identity_id)?;
        let (secret, pq_public_key) = device::generate_keypair();
        let sim = SimDevice {
            secret: Arc::new(secret),
            policy: DevicePolicy::Browser,
        };
        let public_key = device::random_classical_key();
        self.add_counted_device(app_name, identity_id, public_key, pq_public_key, Some(sim))
    }

    /// The decisions delivered to a `browser` device (not those still queued), in routing
    /// order, with its key; `None` unless `device_id` is a browser device. Only references
    /// are taken under the lock.
    pub fn page_inbox(&self, device_id: &str) -> Option<PageInbox> {
        let st = lock(&self.state);
        let now = Instant::now();
        let device = st.devices.get(device_id)?;
        let sim = device
            .sim
            .as_ref()
            .filter(|s| s.policy == DevicePolicy::Browser)?;
        let items = device
            .inbox
            .iter()
            .filter(|(seq, _)| !device.queued.contains(seq))
            .filter_map(|(seq, decision)| {
                let d = st.decisions.get(decision)?;
                let delivery = d.deliveries.iter().find(|x| x.seq == *seq)?;
                let outcome = d.outcome_at(now);
                Some(PageItem {
                    envelope: delivery.envelope.clone(),
                    delivered_at_unix_ms: delivery.delivered_at_unix_ms,
                    outcome,
                    expires_in: if outcome == Outcome::Pending {
                        d.expires_at.saturating_duration_since(now)
                    } else {
                        Duration::ZERO
                    },
                    answered_by: d.answered_by.clone(),
                })
            })
            .collect();
        Some(PageInbox {
            secret: sim.secret.clone(),
            app_name: self.app_name(device.app).to_string(),
            identity_id: device.identity_id.clone(),
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppConfig, FaultConfig};

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

    fn relay_with(devices: Vec<DevicePolicy>, limits: Limits) -> Arc<Relay> {
        let apps = [AppConfig::new("t", "a", 10).with_identity("u", devices)];
        let relay = Relay::new(
            &apps,
            limits,
            Faults::new(FaultConfig::default()),
            CancellationToken::new(),
            tokio::runtime::Handle::current(),
        );
        Arc::new(relay.expect("valid configuration"))
    }

    fn relay(devices: Vec<DevicePolicy>) -> Arc<Relay> {
        relay_with(devices, Limits::default())
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
        assert_eq!(snap.decrypt_failure_details.len(), 3);
        assert_eq!(snap.deliveries.len(), 3);
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
        let seq = lock(&relay.state).decision_index[&(0, "d".to_string())];
        assert_eq!(
            lock(&relay.state).answer(seq, &device, true, Instant::now()),
            AnswerResult::AlreadyFinal(Outcome::Expired)
        );
        assert_eq!(relay.outcome(0, "d", "u"), Some(Outcome::Expired));
        assert_eq!(relay.inspect().late_answers, 1);
    }

    #[tokio::test]
    async fn the_sweeper_expires_then_evicts_everything_a_decision_held() {
        tokio::time::pause();
        let grace = Duration::from_secs(30);
        let relay = relay_with(
            vec![DevicePolicy::Ignore],
            Limits {
                eviction_grace: grace,
                ..Limits::default()
            },
        );
        let sweeper = tokio::spawn(relay.clone().run_sweeper());
        let device = relay.device_ids("a", "u")[0].clone();
        let mut req = undecryptable("r", &device, "d");
        req.ttl_seconds = 5;
        let started = Instant::now();
        relay.route(0, req.clone()).unwrap();
        // A request that created no decision is remembered for the grace period too.
        let mut nobody = undecryptable("r-none", "no-such-device", "d-none");
        nobody.ttl_seconds = 5;
        assert_eq!(relay.route(0, nobody).unwrap().0, DeliveryStatus::NoDevices);
        assert!(relay.inspect().stored_bytes > 0);

        // Expired by the sweeper at the TTL, without anyone reading it.
        assert!(
            relay
                .wait_for(Duration::from_secs(60), |i| i.decisions[0].outcome
                    == "EXPIRED")
                .await
        );
        assert!(started.elapsed() >= Duration::from_secs(5));
        assert_eq!(lock(&relay.state).decisions.len(), 1);

        assert!(
            relay
                .wait_for(Duration::from_secs(60), |i| i.evicted_decisions == 1)
                .await
        );
        assert!(started.elapsed() >= Duration::from_secs(5) + grace);
        let snap = relay.inspect();
        assert!(snap.decisions.is_empty() && snap.deliveries.is_empty());
        assert_eq!(snap.stored_bytes, 0);
        assert_eq!(
            relay.outcome(0, "d", "u"),
            None,
            "as for an unknown decision"
        );
        assert_eq!(relay.device_decisions(&device).unwrap().len(), 0);
        {
            let st = lock(&relay.state);
            assert!(st.requests.is_empty(), "request-id answers went too");
            assert!(st.devices[&device].inbox.is_empty());
            assert!(st.schedule.is_empty());
        }
        // The request id is new again: a new decision, charged again.
        assert_eq!(relay.route(0, req).unwrap().0, DeliveryStatus::Delivered);
        assert_eq!(relay.inspect().quota_remaining["a"], 8);
        relay.cancel.cancel();
        sweeper.await.unwrap();
    }

    #[tokio::test]
    async fn an_answered_decision_is_evicted_a_grace_after_its_answer() {
        tokio::time::pause();
        let grace = Duration::from_secs(10);
        let relay = relay_with(
            vec![DevicePolicy::Ignore],
            Limits {
                eviction_grace: grace,
                ..Limits::default()
            },
        );
        let sweeper = tokio::spawn(relay.clone().run_sweeper());
        let device = relay.device_ids("a", "u")[0].clone();
        relay.route(0, undecryptable("r", &device, "d")).unwrap();
        let answered = Instant::now();
        assert_eq!(
            relay.answer(&device, "d", true),
            AnswerResult::Decided(Outcome::Approved)
        );
        assert!(
            relay
                .wait_for(Duration::from_secs(600), |i| i.evicted_decisions == 1)
                .await
        );
        let waited = answered.elapsed();
        // Well before the 60 s TTL: the answer, not the TTL, starts the grace.
        assert!(
            waited >= grace && waited < Duration::from_secs(60),
            "{waited:?}"
        );
        assert_eq!(relay.answer(&device, "d", true), AnswerResult::NotFound);
        relay.cancel.cancel();
        sweeper.await.unwrap();
    }

    #[tokio::test]
    async fn one_delivery_per_decision_and_device_whatever_the_request_ids() {
        let relay = relay(vec![DevicePolicy::Ignore]);
        let device = relay.device_ids("a", "u")[0].clone();
        let first = relay.route(0, undecryptable("r0", &device, "d")).unwrap();
        let bytes = relay.inspect().stored_bytes;
        for i in 1..50 {
            let again = relay
                .route(0, undecryptable(&format!("r{i}"), &device, "d"))
                .unwrap();
            assert_eq!(again, first);
        }
        let snap = relay.inspect();
        assert_eq!(snap.stored_bytes, bytes, "no second ciphertext");
        assert_eq!(snap.deliveries.len(), 1);
        assert_eq!(snap.quota_remaining["a"], 9);
        assert_eq!(
            lock(&relay.state).requests.len(),
            1,
            "nothing stored per repeat"
        );
    }

    #[tokio::test]
    async fn caps_refuse_clearly_and_charge_nothing() {
        let relay = relay_with(
            vec![DevicePolicy::Ignore],
            Limits {
                max_inbox_entries: 2,
                max_devices_per_identity: 2,
                max_registered_devices_per_app: 2,
                ..Limits::default()
            },
        );
        let device = relay.device_ids("a", "u")[0].clone();
        for i in 0..2 {
            relay
                .route(
                    0,
                    undecryptable(&format!("r{i}"), &device, &format!("d{i}")),
                )
                .unwrap();
        }
        let err = relay
            .route(0, undecryptable("r2", &device, "d2"))
            .unwrap_err();
        assert!(
            matches!(&err, RouteError::Exhausted(m) if m.contains("2 deliveries")),
            "{err:?}"
        );
        assert_eq!(relay.inspect().quota_remaining["a"], 8);

        let key = || device::generate_keypair().1;
        relay.register_device("a", "u", key(), None).unwrap();
        let err = relay.register_device("a", "u", key(), None).unwrap_err();
        assert!(
            matches!(&err, RegisterError::Limit(m) if m.contains("\"u\"")),
            "{err:?}"
        );
        relay.register_device("a", "v", key(), None).unwrap();
        let err = relay.register_device("a", "w", key(), None).unwrap_err();
        assert!(
            matches!(&err, RegisterError::Limit(m) if m.contains("registered")),
            "{err:?}"
        );

        let tight = relay_with(
            vec![DevicePolicy::Ignore],
            Limits {
                max_stored_bytes: 1000,
                ..Limits::default()
            },
        );
        let device = tight.device_ids("a", "u")[0].clone();
        let err = tight
            .route(0, undecryptable("r", &device, "d"))
            .unwrap_err();
        assert!(matches!(err, RouteError::Exhausted(_)), "{err:?}");
        assert_eq!(tight.inspect().stored_bytes, 0);
    }
}
