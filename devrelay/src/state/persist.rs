//! The relay's state and its database: restoring the state at start, merging the
//! configuration into it, and writing each change through.
//!
//! Every critical section of `state.rs` that changes something notes it ([`Dirty`]); before it
//! releases the lock, [`Relay::commit`] writes what the notes name, as it is in memory now,
//! in one transaction. So the request-id answer, the charge and the delivery of one
//! `RouteDecision` are one transaction, and so is an answer with its outcome: a crash keeps
//! all of it or none, and the caller hears the answer only once it is committed.
//!
//! Deadlines live in memory as monotonic instants (the sweeper sleeps on them) and on disk as
//! Unix times in milliseconds; [`Clock`] converts with an anchor taken at start, so a
//! decision's TTL and its eviction keep their wall-clock time across a restart.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    lock, new_device_id, now_unix_ms, App, AppMeta, Counters, Decision, Delivery, Device, Due,
    Envelope, Outcome, Relay, RequestAnswer, SimDevice, SimResult, State,
};
use crate::config::{AppConfig, AppStatus, DevicePolicy, Limits};
use crate::device;
use crate::error::DevRelayError;
use crate::faults::Faults;
use crate::proto::DeliveryStatus;
use crate::store::{
    AppRow, DecisionRow, DeliveryRow, DeviceRow, RequestRow, Snapshot, Store, Writer,
};

/// Something a critical section changed, to be written before it releases the lock. Each
/// names a record; the transaction writes the record as it is then (or deletes it when it
/// is gone).
#[derive(Debug)]
pub(super) enum Dirty {
    /// An app's quota or status.
    App(usize),
    /// An identity exists.
    Identity(usize, String),
    /// A device (new, online state, policy).
    Device(String),
    /// A decision (new, answered, expired).
    Decision(u64),
    /// A decision was evicted: its row, its deliveries' rows and its request ids' answers go.
    Evicted {
        seq: u64,
        app: usize,
        /// (delivery seq, request id) of each delivery.
        deliveries: Vec<(u64, String)>,
    },
    /// The delivery of a decision to a device (new, delivered, decrypted).
    Delivery(u64, String),
    /// The answer given to a request id.
    Request {
        app: usize,
        request_id: String,
        /// The decision it lives as long as; `None`: it is forgotten a grace after `given_at`.
        decision: Option<u64>,
        given_at: Instant,
    },
    /// The answer of a request that created no decision is forgotten.
    ForgetRequest(usize, String),
    /// Counters changed (and all of them are to be written now: see [`COUNT_EVERY`]).
    Counters,
}

/// Converts between the state's instants and Unix times (ms), from an anchor taken at start.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    instant: Instant,
    unix_ms: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Clock {
    fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            unix_ms: now_unix_ms(),
        }
    }

    /// The Unix time (ms) of an instant.
    pub fn unix_ms(&self, at: Instant) -> u64 {
        if at >= self.instant {
            self.unix_ms.saturating_add(millis(at - self.instant))
        } else {
            self.unix_ms.saturating_sub(millis(self.instant - at))
        }
    }

    /// The instant of a Unix time (ms). A time too far in the past to be an instant is the
    /// anchor (due now); one too far ahead is a year from the anchor.
    pub fn instant(&self, unix_ms: u64) -> Instant {
        if unix_ms >= self.unix_ms {
            self.instant
                .checked_add(Duration::from_millis(unix_ms - self.unix_ms))
                .unwrap_or(self.instant + Duration::from_secs(365 * 24 * 3600))
        } else {
            self.instant
                .checked_sub(Duration::from_millis(self.unix_ms - unix_ms))
                .unwrap_or(self.instant)
        }
    }
}

/// Where the state goes.
enum Slot {
    /// Nowhere: the relay keeps its state in memory only.
    Memory,
    /// Written through to this database.
    Open(Store),
    /// The relay has stopped and closed its database: a change now cannot be kept.
    Closed,
}

/// The counters the inspection shows, by their names in the `counters` table.
const COUNTERS: [&str; 5] = [
    "route_calls",
    "connections_accepted",
    "late_answers",
    "decrypt_failures",
    "evicted_decisions",
];

/// `route_calls` and `connections_accepted` change on every call: a transaction writes them
/// when this much time has passed since they were last written (or with [`Dirty::Counters`],
/// e.g. at shutdown), not in every transaction. The other counters are written as they
/// change.
const COUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The persistence part of the state.
pub(super) struct Persist {
    slot: Slot,
    dirty: Vec<Dirty>,
    clock: Clock,
    /// The counters as last written, and when the call counters were.
    written: [u64; 5],
    calls_written_at: std::time::Instant,
}

impl Persist {
    /// Notes a change (nothing in memory-only mode).
    pub fn mark(&mut self, dirty: Dirty) {
        if self.active() {
            self.dirty.push(dirty);
        }
    }

    /// Whether changes are noted (false in memory-only mode).
    pub fn active(&self) -> bool {
        !matches!(self.slot, Slot::Memory)
    }
}

fn outcome_from_name(name: &str) -> Option<Outcome> {
    [
        Outcome::Pending,
        Outcome::Approved,
        Outcome::Rejected,
        Outcome::Expired,
    ]
    .into_iter()
    .find(|o| o.name() == name)
}

/// The app row of an app, as it is in memory.
fn app_row<'a>(meta: &'a AppMeta, app: &App, idx: usize) -> AppRow<'a> {
    AppRow {
        idx,
        name: Cow::Borrowed(&meta.name),
        token: Cow::Borrowed(&meta.token),
        quota_total: app.quota_total,
        quota_remaining: app.quota_remaining,
        status: Cow::Owned(app.status.to_string()),
    }
}

impl Relay {
    /// Builds the relay: from the database's snapshot when there is one, then the
    /// configuration's apps, identities and simulated devices merged into it (see the
    /// README's "Restarts"); what the merge added or changed is written at once.
    pub fn open(
        apps: &[AppConfig],
        limits: Limits,
        faults: Faults,
        cancel: CancellationToken,
        runtime: tokio::runtime::Handle,
        storage: Option<(Store, Snapshot)>,
    ) -> Result<Relay, DevRelayError> {
        let (slot, snapshot) = match storage {
            Some((store, snapshot)) => (Slot::Open(store), Some(snapshot)),
            None => (Slot::Memory, None),
        };
        let mut state = State {
            apps: Vec::new(),
            devices: HashMap::new(),
            decisions: BTreeMap::new(),
            decision_index: HashMap::new(),
            requests: HashMap::new(),
            schedule: BTreeMap::new(),
            next_seq: 0,
            stored_bytes: 0,
            counters: Counters::default(),
            limits,
            wake_sweeper: false,
            persist: Persist {
                slot,
                dirty: Vec::new(),
                clock: Clock::now(),
                written: [0; 5],
                calls_written_at: std::time::Instant::now(),
            },
        };
        let mut metas = Vec::new();
        let mut counts = (0, 0);
        if let Some(snapshot) = snapshot {
            counts = state.restore(&mut metas, snapshot)?;
        }
        state.add_config(&mut metas, apps)?;
        let tokens = metas
            .iter()
            .enumerate()
            .map(|(i, m)| (m.token.clone(), i))
            .collect();
        let app_names = metas
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let relay = Relay {
            state: Mutex::new(state),
            apps: metas,
            tokens,
            app_names,
            faults: Mutex::new(faults),
            route_calls: AtomicU64::new(counts.0),
            connections: AtomicU64::new(counts.1),
            version: watch::Sender::new(0),
            sweeper_wake: Notify::new(),
            cancel,
            runtime,
            tasks: Mutex::new(JoinSet::new()),
            failure: OnceLock::new(),
        };
        {
            let mut st = lock(&relay.state);
            st.persist.mark(Dirty::Counters);
            relay.commit(&mut st).map_err(|e| {
                DevRelayError::Storage(format!("writing the configuration's apps and devices: {e}"))
            })?;
        }
        Ok(relay)
    }

    /// Writes what the critical section changed in one transaction, before the lock is
    /// released. Once a write has failed (or the database is closed), every later one fails
    /// too and the relay refuses calls ([`Relay::failure`]): its memory may hold what the
    /// database lacks, and a restart reads the database.
    pub(super) fn commit(&self, st: &mut State) -> Result<(), String> {
        if st.persist.dirty.is_empty() {
            return Ok(());
        }
        let dirty = std::mem::take(&mut st.persist.dirty);
        if let Some(failure) = self.failure.get() {
            return Err(failure.clone());
        }
        let counters = [
            self.route_calls.load(std::sync::atomic::Ordering::Relaxed),
            self.connections.load(std::sync::atomic::Ordering::Relaxed),
            st.counters.late_answers,
            st.counters.decrypt_failures,
            st.counters.evicted_decisions,
        ];
        let State {
            apps,
            devices,
            decisions,
            requests,
            persist,
            ..
        } = st;
        let clock = persist.clock;
        let mut written = persist.written;
        let all_counters = dirty.iter().any(|d| matches!(d, Dirty::Counters))
            || persist.calls_written_at.elapsed() >= COUNT_EVERY;
        if !all_counters {
            // The call counters wait for a later transaction.
            written[0] = counters[0];
            written[1] = counters[1];
        }
        let store = match &mut persist.slot {
            Slot::Memory => return Ok(()),
            Slot::Closed => {
                let failure = "the relay has stopped".to_string();
                let _ = self.failure.set(failure.clone());
                return Err(failure);
            }
            Slot::Open(store) => store,
        };
        let view = View {
            metas: &self.apps,
            apps,
            devices,
            decisions,
            requests,
            clock,
        };
        let result = store.write(|w| {
            for d in &dirty {
                view.write(w, d)?;
            }
            for (i, name) in COUNTERS.iter().enumerate() {
                if counters[i] != written[i] {
                    w.put_counter(name, counters[i])?;
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                if all_counters {
                    persist.written = counters;
                    persist.calls_written_at = std::time::Instant::now();
                } else {
                    persist.written[2..].copy_from_slice(&counters[2..]);
                }
                Ok(())
            }
            Err(e) => {
                let failure = format!(
                    "the relay could not write its state to {} ({e}); it refuses every call \
                     until restarted",
                    store.path().display()
                );
                tracing::error!("{failure}");
                let _ = self.failure.set(failure.clone());
                Err(failure)
            }
        }
    }

    /// Why the relay refuses every call, once a write to its database failed or it stopped
    /// (never in memory-only mode while running).
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Writes the counters and closes the database; later changes are refused.
    pub fn close_store(&self) {
        let mut st = lock(&self.state);
        if matches!(st.persist.slot, Slot::Memory | Slot::Closed) {
            return;
        }
        st.persist.mark(Dirty::Counters);
        let _ = self.commit(&mut st);
        st.persist.slot = Slot::Closed;
        let _ = self.failure.set("the relay has stopped".into());
    }

    /// After a restart: simulated devices take up the pending decisions delivered to them
    /// that they had not answered (decrypting again; an `-after` delay counts from the
    /// delivery). A delivery they could not decrypt stays unanswered.
    pub fn resume(self: &Arc<Self>) {
        let mut work = Vec::new();
        {
            let st = lock(&self.state);
            let now = Instant::now();
            let now_ms = now_unix_ms();
            for (&seq, d) in &st.decisions {
                if d.outcome_at(now) != Outcome::Pending {
                    continue;
                }
                for x in &d.deliveries {
                    if !x.delivered || matches!(x.sim, Some(SimResult::Failed { .. })) {
                        continue;
                    }
                    let Some(sim) = st.devices.get(&x.device_id).and_then(|v| v.sim.as_ref())
                    else {
                        continue;
                    };
                    let mut w = sim.work(seq, d.app, &x.device_id, &x.envelope);
                    w.waited = Duration::from_millis(now_ms.saturating_sub(x.delivered_at_unix_ms));
                    w.decrypted = matches!(x.sim, Some(SimResult::Decrypted { .. }));
                    work.push(w);
                }
            }
        }
        if !work.is_empty() {
            tracing::info!(
                deliveries = work.len(),
                "simulated devices resume the pending decisions delivered to them"
            );
        }
        for w in work {
            self.spawn_sim(w);
        }
    }

    /// How many decisions the relay holds (for the start-up summary).
    pub fn decision_count(&self) -> usize {
        lock(&self.state).decisions.len()
    }

    /// An app's (total, remaining, status) by name.
    pub fn quota_by_name(&self, app_name: &str) -> Option<(u64, u64, AppStatus)> {
        self.quota(*self.app_names.get(app_name)?)
    }
}

/// What a transaction reads from the state (borrowed field by field, beside the store).
struct View<'a> {
    metas: &'a [AppMeta],
    apps: &'a [App],
    devices: &'a HashMap<String, Device>,
    decisions: &'a BTreeMap<u64, Decision>,
    requests: &'a HashMap<(usize, String), RequestAnswer>,
    clock: Clock,
}

impl View<'_> {
    fn write(&self, w: &Writer<'_>, dirty: &Dirty) -> rusqlite::Result<()> {
        match dirty {
            Dirty::App(idx) => {
                if let (Some(meta), Some(app)) = (self.metas.get(*idx), self.apps.get(*idx)) {
                    w.put_app(&app_row(meta, app, *idx))?;
                }
            }
            Dirty::Identity(app, identity_id) => w.put_identity(*app, identity_id)?,
            Dirty::Device(id) => {
                if let Some(d) = self.devices.get(id) {
                    let position = self
                        .apps
                        .get(d.app)
                        .and_then(|a| a.identities.get(&d.identity_id))
                        .and_then(|ids| ids.iter().position(|x| x == id))
                        .unwrap_or(0);
                    w.put_device(&DeviceRow {
                        device_id: Cow::Borrowed(id),
                        app: d.app,
                        identity_id: Cow::Borrowed(&d.identity_id),
                        position,
                        public_key: Cow::Borrowed(&d.public_key),
                        pq_public_key: Cow::Borrowed(&d.pq_public_key),
                        online: d.online,
                        sim: d.sim.as_ref().map(|s| {
                            (
                                s.policy.to_string(),
                                device::secret_seed(&s.secret).unwrap_or_default(),
                            )
                        }),
                    })?;
                }
            }
            Dirty::Decision(seq) => {
                let Some(d) = self.decisions.get(seq) else {
                    // Evicted in the same critical section: see `Dirty::Evicted`.
                    return Ok(());
                };
                w.put_decision(&DecisionRow {
                    seq: *seq,
                    app: d.app,
                    identity_id: Cow::Borrowed(&d.identity_id),
                    decision_id: Cow::Borrowed(&d.decision_id),
                    outcome: Cow::Borrowed(d.outcome.name()),
                    answered_by: d.answered_by.as_deref().map(Cow::Borrowed),
                    expires_at_ms: self.clock.unix_ms(d.expires_at),
                    ended_at_ms: d.ended_at.map(|at| self.clock.unix_ms(at)),
                })?;
            }
            Dirty::Evicted {
                seq,
                app,
                deliveries,
            } => {
                w.delete_decision(*seq)?;
                for (delivery, request_id) in deliveries {
                    w.delete_delivery(*delivery)?;
                    w.delete_request(*app, request_id)?;
                }
            }
            Dirty::Delivery(seq, device_id) => {
                let Some(x) = self
                    .decisions
                    .get(seq)
                    .and_then(|d| d.deliveries.iter().find(|x| &x.device_id == device_id))
                else {
                    // Evicted in the same critical section: see `Dirty::Evicted`.
                    return Ok(());
                };
                let e = &*x.envelope;
                w.put_delivery(&DeliveryRow {
                    seq: x.seq,
                    decision_seq: *seq,
                    device_id: Cow::Borrowed(&x.device_id),
                    request_id: Cow::Borrowed(&e.request_id),
                    kyber_ct: Cow::Borrowed(&e.kyber_ct),
                    nonce: Cow::Borrowed(&e.nonce),
                    ciphertext: Cow::Borrowed(&e.ciphertext),
                    ttl_seconds: e.ttl_seconds,
                    delivered: x.delivered,
                    delivered_at_ms: x.delivered_at_unix_ms,
                    sim: x.sim.as_ref().map(|r| match r {
                        SimResult::Decrypted {
                            plaintext_sha256_hex,
                        } => (
                            Cow::Borrowed("decrypted"),
                            Cow::Borrowed(plaintext_sha256_hex.as_str()),
                        ),
                        SimResult::Failed { reason } => {
                            (Cow::Borrowed("failed"), Cow::Borrowed(reason.as_ref()))
                        }
                    }),
                })?;
            }
            Dirty::Request {
                app,
                request_id,
                decision,
                given_at,
            } => {
                if let Some(answer) = self.requests.get(&(*app, request_id.clone())) {
                    w.put_request(&RequestRow {
                        app: *app,
                        request_id: Cow::Borrowed(request_id),
                        status: answer.status as i32,
                        decision_id: Cow::Borrowed(&answer.decision_id),
                        decision_seq: *decision,
                        given_at_ms: self.clock.unix_ms(*given_at),
                    })?;
                }
            }
            Dirty::ForgetRequest(app, request_id) => w.delete_request(*app, request_id)?,
            Dirty::Counters => {}
        }
        Ok(())
    }
}

impl State {
    /// Rebuilds the state from the database; returns the persisted (route calls,
    /// connections) counters.
    fn restore(
        &mut self,
        metas: &mut Vec<AppMeta>,
        snap: Snapshot,
    ) -> Result<(u64, u64), DevRelayError> {
        let bad = |what: String| {
            DevRelayError::Storage(format!(
                "the state database is inconsistent ({what}); stop the relay and delete it to \
                 start with an empty state"
            ))
        };
        let clock = self.persist.clock;
        let grace_ms = millis(self.limits.eviction_grace);
        for row in snap.apps {
            if row.idx != metas.len() {
                return Err(bad(format!("app index {} out of order", row.idx)));
            }
            let status: AppStatus = row
                .status
                .parse()
                .map_err(|e| bad(format!("app {:?}: {e}", row.name)))?;
            metas.push(AppMeta {
                name: row.name.into_owned(),
                token: row.token.into_owned(),
            });
            self.apps.push(App {
                quota_total: row.quota_total,
                quota_remaining: row.quota_remaining,
                status,
                identities: BTreeMap::new(),
                registered: 0,
            });
        }
        for (app, identity_id) in snap.identities {
            let a = self
                .apps
                .get_mut(app)
                .ok_or_else(|| bad(format!("identity of unknown app {app}")))?;
            a.identities.entry(identity_id).or_default();
        }
        for row in snap.devices {
            let id = row.device_id.into_owned();
            let app = self
                .apps
                .get_mut(row.app)
                .ok_or_else(|| bad(format!("device {id} of unknown app {}", row.app)))?;
            let sim = match row.sim {
                None => {
                    app.registered += 1;
                    None
                }
                Some((policy, seed)) => {
                    let policy: DevicePolicy = policy.parse().map_err(|e| {
                        DevRelayError::Storage(format!(
                            "device {id} has a policy this relay does not know ({e}); it was \
                             written by another version: stop the relay and delete the state \
                             database to start afresh"
                        ))
                    })?;
                    let (secret, public) = device::secret_from_seed(&seed)
                        .map_err(|e| bad(format!("device {id}: {e}")))?;
                    if public != *row.pq_public_key {
                        return Err(bad(format!(
                            "device {id}: its secret key does not match its public key"
                        )));
                    }
                    Some(SimDevice {
                        secret: Arc::new(secret),
                        policy,
                    })
                }
            };
            app.identities
                .entry(row.identity_id.to_string())
                .or_default()
                .push(id.clone());
            self.devices.insert(
                id,
                Device {
                    app: row.app,
                    identity_id: row.identity_id.into_owned(),
                    public_key: row.public_key.into_owned(),
                    pq_public_key: row.pq_public_key.into_owned(),
                    online: row.online,
                    sim,
                    inbox: BTreeMap::new(),
                    queued: BTreeSet::new(),
                },
            );
        }
        // New sequence numbers (and the schedule's keys) come after every persisted one.
        self.next_seq = snap
            .decisions
            .iter()
            .map(|d| d.seq)
            .chain(snap.deliveries.iter().map(|d| d.seq))
            .max()
            .unwrap_or(0);
        for row in snap.decisions {
            if row.app >= self.apps.len() {
                return Err(bad(format!("decision of unknown app {}", row.app)));
            }
            let outcome = outcome_from_name(&row.outcome)
                .ok_or_else(|| bad(format!("outcome {:?}", row.outcome)))?;
            let expires_at = clock.instant(row.expires_at_ms);
            let due = if outcome == Outcome::Pending {
                self.schedule(expires_at, Due::Expire(row.seq))
            } else {
                let ended = row.ended_at_ms.unwrap_or(row.expires_at_ms);
                let at = clock.instant(ended.saturating_add(grace_ms));
                self.schedule(at, Due::Evict(row.seq))
            };
            let decision_id = row.decision_id.into_owned();
            self.decision_index
                .insert((row.app, decision_id.clone()), row.seq);
            self.decisions.insert(
                row.seq,
                Decision {
                    app: row.app,
                    identity_id: row.identity_id.into_owned(),
                    decision_id,
                    outcome,
                    answered_by: row.answered_by.map(Cow::into_owned),
                    expires_at,
                    ended_at: row.ended_at_ms.map(|ms| clock.instant(ms)),
                    due,
                    deliveries: Vec::new(),
                },
            );
        }
        for row in snap.deliveries {
            let Some(d) = self.decisions.get_mut(&row.decision_seq) else {
                return Err(bad(format!("delivery {} of an unknown decision", row.seq)));
            };
            let envelope = Envelope {
                decision_id: d.decision_id.clone(),
                request_id: row.request_id.into_owned(),
                kyber_ct: row.kyber_ct.into_owned(),
                nonce: row.nonce.into_owned(),
                ciphertext: row.ciphertext.into_owned(),
                ttl_seconds: row.ttl_seconds,
            };
            self.stored_bytes += envelope.stored_bytes();
            let device_id = row.device_id.into_owned();
            if let Some(device) = self.devices.get_mut(&device_id) {
                device.inbox.insert(row.seq, row.decision_seq);
                if !row.delivered {
                    device.queued.insert(row.seq);
                }
            }
            let sim = row.sim.map(|(kind, detail)| match kind.as_ref() {
                "decrypted" => SimResult::Decrypted {
                    plaintext_sha256_hex: detail.into_owned(),
                },
                _ => SimResult::Failed {
                    reason: Cow::Owned(detail.into_owned()),
                },
            });
            d.deliveries.push(Delivery {
                seq: row.seq,
                device_id,
                envelope: Arc::new(envelope),
                delivered: row.delivered,
                delivered_at_unix_ms: row.delivered_at_ms,
                sim,
            });
        }
        for row in snap.requests {
            if row
                .decision_seq
                .is_some_and(|s| !self.decisions.contains_key(&s))
            {
                continue;
            }
            let status = DeliveryStatus::try_from(row.status)
                .map_err(|_| bad(format!("delivery status {}", row.status)))?;
            let request_id = row.request_id.into_owned();
            if row.decision_seq.is_none() {
                let at = clock.instant(row.given_at_ms.saturating_add(grace_ms));
                self.schedule(at, Due::ForgetRequest(row.app, request_id.clone()));
            }
            self.requests.insert(
                (row.app, request_id),
                RequestAnswer {
                    status,
                    decision_id: row.decision_id.into_owned(),
                },
            );
        }
        let counter = |name: &str| snap.counters.get(name).copied().unwrap_or(0);
        self.counters = Counters {
            late_answers: counter("late_answers"),
            decrypt_failures: counter("decrypt_failures"),
            evicted_decisions: counter("evicted_decisions"),
        };
        self.persist.written = COUNTERS.map(counter);
        tracing::info!(
            apps = self.apps.len(),
            devices = self.devices.len(),
            decisions = self.decisions.len(),
            "restored the relay's state"
        );
        Ok((counter("route_calls"), counter("connections_accepted")))
    }

    /// Adds the configuration's apps, identities and simulated devices to the state: an app
    /// is matched by name (keeping its persisted quota and status; its token is the
    /// configuration's), the k-th device of an identity in the configuration is its k-th
    /// persisted simulated device (keeping its id, keys and online state; its policy is the
    /// configuration's), and what is new is created.
    fn add_config(
        &mut self,
        metas: &mut Vec<AppMeta>,
        apps: &[AppConfig],
    ) -> Result<(), DevRelayError> {
        let mut names = HashSet::new();
        let mut tokens = HashSet::new();
        for app in apps {
            if app.name.is_empty() || app.token.is_empty() {
                return Err(DevRelayError::Config(
                    "app token and name must not be empty".into(),
                ));
            }
            if !names.insert(app.name.as_str()) {
                return Err(DevRelayError::Config(format!(
                    "duplicate app name {:?}",
                    app.name
                )));
            }
            if !tokens.insert(app.token.as_str()) {
                return Err(DevRelayError::Config(format!(
                    "app {:?} reuses another app's token",
                    app.name
                )));
            }
        }
        for app in apps {
            let idx = match metas.iter().position(|m| m.name == app.name) {
                Some(idx) => {
                    let a = &self.apps[idx];
                    if (a.quota_total, a.status) != (app.quota, app.status) {
                        tracing::info!(
                            app = %app.name,
                            quota_remaining = a.quota_remaining,
                            quota_total = a.quota_total,
                            status = %a.status,
                            "app restored with its persisted quota and status (the \
                             configuration's are for a new app)"
                        );
                    }
                    if metas[idx].token != app.token {
                        tracing::info!(app = %app.name, "app token changed by the configuration");
                        metas[idx].token = app.token.clone();
                        self.persist.mark(Dirty::App(idx));
                    }
                    idx
                }
                None => {
                    metas.push(AppMeta {
                        name: app.name.clone(),
                        token: app.token.clone(),
                    });
                    self.apps.push(App {
                        quota_total: app.quota,
                        quota_remaining: app.quota,
                        status: app.status,
                        identities: BTreeMap::new(),
                        registered: 0,
                    });
                    self.persist.mark(Dirty::App(metas.len() - 1));
                    metas.len() - 1
                }
            };
            for identity in &app.identities {
                if identity.identity_id.is_empty() {
                    return Err(DevRelayError::Config("empty identity id".into()));
                }
                let persisted: Vec<String> = self.apps[idx]
                    .identities
                    .get(&identity.identity_id)
                    .map(|ids| {
                        ids.iter()
                            .filter(|id| self.devices.get(*id).is_some_and(|d| d.sim.is_some()))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                for (k, policy) in identity.devices.iter().enumerate() {
                    let (online, policy) = policy.split();
                    if let Some(id) = persisted.get(k) {
                        let sim = self
                            .devices
                            .get_mut(id)
                            .and_then(|d| d.sim.as_mut())
                            .expect("a persisted simulated device");
                        if sim.policy != policy {
                            tracing::info!(
                                device_id = %id,
                                from = %sim.policy,
                                to = %policy,
                                "simulated device: policy changed by the configuration"
                            );
                            sim.policy = policy;
                            self.persist.mark(Dirty::Device(id.clone()));
                        }
                        continue;
                    }
                    let (secret, pq_public_key) = device::generate_keypair();
                    let id = new_device_id();
                    self.devices.insert(
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
                            inbox: BTreeMap::new(),
                            queued: BTreeSet::new(),
                        },
                    );
                    self.apps[idx]
                        .identities
                        .entry(identity.identity_id.clone())
                        .or_default()
                        .push(id.clone());
                    self.persist.mark(Dirty::Device(id));
                }
                if persisted.len() > identity.devices.len() {
                    tracing::warn!(
                        app = %app.name,
                        identity = %identity.identity_id,
                        kept = persisted.len() - identity.devices.len(),
                        "the state database has more simulated devices for this identity than \
                         the configuration names; the extra ones are kept as they were"
                    );
                }
                // An identity listed without devices still exists (and has none).
                self.apps[idx]
                    .identities
                    .entry(identity.identity_id.clone())
                    .or_default();
                self.persist
                    .mark(Dirty::Identity(idx, identity.identity_id.clone()));
            }
        }
        // The configuration's tokens are distinct; one may still be a kept app's.
        let mut holders: HashMap<&str, &str> = HashMap::new();
        for m in metas.iter() {
            if let Some(other) = holders.insert(&m.token, &m.name) {
                let (configured, kept) = if names.contains(m.name.as_str()) {
                    (&m.name, other)
                } else {
                    (&other.to_string(), m.name.as_str())
                };
                return Err(DevRelayError::Config(format!(
                    "app {configured:?} reuses the token of app {kept:?} (kept in the state \
                     database)"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::config::FaultConfig;
    use crate::proto::RouteDecisionRequest;

    fn relay(storage: Option<(Store, Snapshot)>) -> Arc<Relay> {
        let apps =
            [AppConfig::new("t", "a", 1_000_000).with_identity("u", vec![DevicePolicy::Ignore])];
        let limits = Limits {
            max_inbox_entries: 1_000_000,
            ..Limits::default()
        };
        Arc::new(
            Relay::open(
                &apps,
                limits,
                Faults::new(FaultConfig::default()),
                CancellationToken::new(),
                tokio::runtime::Handle::current(),
                storage,
            )
            .expect("relay"),
        )
    }

    /// A relay on the database at `path` (one app "a", identity "u" with an ignoring device).
    pub fn open(path: &std::path::Path) -> Arc<Relay> {
        relay(Some(Store::open(path).expect("database opens")))
    }

    /// The same in memory.
    pub fn memory() -> Arc<Relay> {
        relay(None)
    }

    /// A request of the right shape (not decryptable).
    pub fn request(request_id: &str, device_id: &str) -> RouteDecisionRequest {
        RouteDecisionRequest {
            request_id: request_id.into(),
            ciphertext: vec![0; 32],
            ttl_seconds: 60,
            target_device_id: device_id.into(),
            kyber_ct: vec![3; device::KYBER_CT_LEN],
            nonce: vec![0; device::NONCE_LEN],
            decision_id: format!("d-{request_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;
    use crate::state::RouteError;

    #[tokio::test]
    async fn a_failed_write_answers_unavailable_refuses_from_then_on_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let relay = open(&path);
        let device = relay.device_ids("a", "u")[0].clone();
        assert!(relay.route(0, request("r1", &device)).is_ok());
        assert!(relay.failure().is_none());

        match &lock(&relay.state).persist.slot {
            Slot::Open(store) => store.fail_writes(),
            _ => unreachable!("a database is open"),
        }
        let err = relay.route(0, request("r2", &device)).unwrap_err();
        let RouteError::Unavailable(msg) = err else {
            panic!("{err:?}")
        };
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert_eq!(relay.failure(), Some(msg.as_str()));
        // Whatever changes next is not written either.
        assert!(relay.set_device_online(&device, false));
        assert!(relay.failure().is_some());
        relay.close_store();
        drop(relay);

        // The database holds what was committed, and nothing of the failed call.
        let relay = open(&path);
        let snap = relay.inspect();
        assert_eq!(snap.decisions.len(), 1);
        assert_eq!(snap.decisions[0].decision_id, "d-r1");
        assert_eq!(snap.quota_remaining["a"], 999_999);
        assert_eq!(
            relay.device_ids("a", "u"),
            vec![device.clone()],
            "the same device"
        );
        assert!(lock(&relay.state).devices[&device].online);
        // r2 was never answered: routing it now is new, and charged once.
        let (status, _) = relay.route(0, request("r2", &device)).unwrap();
        assert_eq!(status, DeliveryStatus::Delivered);
        assert_eq!(relay.inspect().quota_remaining["a"], 999_998);
    }

    #[test]
    fn the_clock_converts_both_ways_to_the_millisecond() {
        let clock = Clock::now();
        for offset in [0u64, 1, 999, 3_600_000, 86_400_000] {
            let later = clock.instant + Duration::from_millis(offset);
            assert_eq!(clock.unix_ms(later), clock.unix_ms + offset);
            assert_eq!(clock.instant(clock.unix_ms + offset), later);
            let earlier = clock.unix_ms - offset;
            assert_eq!(clock.unix_ms(clock.instant(earlier)), earlier);
        }
    }
}

#[cfg(test)]
mod cost {
    use super::tests_support::*;
    use super::*;

    /// Time per `Relay::route` (no gRPC), in memory and written through; run with
    /// `cargo test --release -p noxy-devrelay --lib route_cost -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement"]
    async fn route_cost() {
        let dir = tempfile::tempdir().unwrap();
        for file in [false, true] {
            let relay = if file {
                open(&dir.path().join("relay.db"))
            } else {
                memory()
            };
            let key = device::generate_keypair().1;
            let device = relay.register_device("a", "x", key, None).unwrap();
            let n = 10_000;
            let mut longest = Duration::ZERO;
            let started = std::time::Instant::now();
            for i in 0..n {
                let one = std::time::Instant::now();
                relay.route(0, request(&format!("r{i}"), &device)).unwrap();
                longest = longest.max(one.elapsed());
            }
            let took = started.elapsed();
            println!(
                "{}: {:.1} µs per RouteDecision ({:.0}/s), the longest {longest:.1?}",
                if file { "SQLite" } else { "memory" },
                took.as_secs_f64() * 1e6 / n as f64,
                n as f64 / took.as_secs_f64()
            );
        }
    }
}
