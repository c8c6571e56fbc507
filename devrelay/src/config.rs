//! Configuration of a development relay: apps, identities, simulated devices and faults.
//!
//! The same content can be given in code ([`DevRelayConfig`]), on the command line
//! (`--app`, `--identity`, fault flags) or in a JSON file ([`FileConfig`]).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default time to live of a decision whose `RouteDecision` carries `ttl_seconds == 0`.
pub const DEFAULT_TTL_SECONDS: u32 = 600;

/// Everything a [`crate::DevRelay`] needs to start.
#[derive(Debug, Clone)]
pub struct DevRelayConfig {
    /// Address of the gRPC (TLS) server. Default `127.0.0.1:0` (an ephemeral port).
    pub grpc_addr: SocketAddr,
    /// Address of the HTTP/JSON device API. Default `127.0.0.1:0` (an ephemeral port).
    pub http_addr: SocketAddr,
    /// Directory holding `ca.pem`, `ca.key`, `server.pem` and `server.key`; they are reused
    /// when present and created otherwise. `None`: fresh material in a temporary directory
    /// that is removed when the relay stops.
    pub state_dir: Option<PathBuf>,
    /// The apps (bearer tokens) the relay accepts.
    pub apps: Vec<AppConfig>,
    /// Fault injection; all zero (the default) means off.
    pub faults: FaultConfig,
    /// Allow `grpc_addr` and `http_addr` to be other than loopback addresses. Off by default:
    /// the relay then refuses to start on `0.0.0.0` or a network interface, because its
    /// HTTP API lets whoever reaches it (with the access token) answer decisions.
    pub allow_non_loopback: bool,
    /// Memory bounds: eviction, inbox and registration caps.
    pub limits: Limits,
    /// Where the relay keeps its state: in memory (the default here) or in a SQLite
    /// database that survives restarts (the binary's default, `relay.db` in its state
    /// directory).
    pub storage: Storage,
}

/// Where a relay keeps its apps, devices, decisions, deliveries and request-id answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Storage {
    /// In memory only: everything is gone when the relay stops.
    #[default]
    InMemory,
    /// In a SQLite database at this path, created (mode 0600) when missing and restored
    /// from at start: every change is committed to it before the call that made it
    /// answers, so a restart, even after SIGKILL, loses nothing the relay had answered.
    /// One relay at a time may use it.
    File(PathBuf),
}

impl Storage {
    /// The database `relay.db` in a state directory (as the binary uses by default).
    pub fn in_state_dir(dir: impl Into<PathBuf>) -> Storage {
        Storage::File(dir.into().join(crate::store::STATE_DB_FILE))
    }
}

impl Default for DevRelayConfig {
    fn default() -> Self {
        DevRelayConfig {
            grpc_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            state_dir: None,
            apps: Vec::new(),
            faults: FaultConfig::default(),
            allow_non_loopback: false,
            limits: Limits::default(),
            storage: Storage::InMemory,
        }
    }
}

/// What the relay keeps, and for how long: everything it stores is bounded by these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A decision (its deliveries, ciphertexts, inbox entries, request-id answers and
    /// decryption records) is evicted this long after it became terminal (answered, or
    /// expired at its TTL). The answer to a request that created no decision (NO_DEVICES,
    /// REJECTED) is kept as long after it was given. Afterwards the relay answers as for an
    /// unknown decision or request. Default 10 minutes.
    pub eviction_grace: Duration,
    /// Deliveries a device may hold (queued or delivered, until evicted). A RouteDecision
    /// beyond it is refused with RESOURCE_EXHAUSTED, not stored nor charged. Default 10 000.
    pub max_inbox_entries: usize,
    /// Ciphertext bytes (`kyber_ct` + `nonce` + `ciphertext`) the relay holds in all. A
    /// RouteDecision beyond it is refused with RESOURCE_EXHAUSTED. Default 512 MiB.
    pub max_stored_bytes: u64,
    /// Devices an identity may have; a registration beyond it is refused. Default 32.
    pub max_devices_per_identity: usize,
    /// Devices an app may get registered over the HTTP API (or `register_device`); a
    /// registration beyond it is refused. Default 1 000.
    pub max_registered_devices_per_app: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            eviction_grace: Duration::from_secs(600),
            max_inbox_entries: 10_000,
            max_stored_bytes: 512 << 20,
            max_devices_per_identity: 32,
            max_registered_devices_per_app: 1000,
        }
    }
}

/// One app: a bearer token with a name, a quota and a status.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// The bearer token clients send as `authorization: Bearer <token>`.
    pub token: String,
    /// The app's name (unique within the relay), reported by `GetQuota`.
    pub name: String,
    /// How many decisions the app may route in total.
    pub quota: u64,
    /// Active or suspended.
    pub status: AppStatus,
    /// Identities with simulated devices created at start.
    pub identities: Vec<IdentityConfig>,
}

impl AppConfig {
    /// An active app with the given token, name and quota and no identities.
    pub fn new(token: impl Into<String>, name: impl Into<String>, quota: u64) -> Self {
        AppConfig {
            token: token.into(),
            name: name.into(),
            quota,
            status: AppStatus::Active,
            identities: Vec::new(),
        }
    }

    /// Adds an identity with simulated devices (builder style).
    pub fn with_identity(
        mut self,
        identity_id: impl Into<String>,
        devices: Vec<DevicePolicy>,
    ) -> Self {
        self.identities.push(IdentityConfig {
            identity_id: identity_id.into(),
            devices,
        });
        self
    }

    /// Sets the status (builder style).
    pub fn with_status(mut self, status: AppStatus) -> Self {
        self.status = status;
        self
    }
}

impl FromStr for AppConfig {
    type Err = String;

    /// Parses `<token>:<name>[:<quota>[:suspended|active]]` (the `--app` flag).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() < 2 || parts.len() > 4 {
            return Err(format!(
                "expected <token>:<name>[:<quota>[:suspended]], got {} field(s)",
                parts.len()
            ));
        }
        let token = parts[0];
        let name = parts[1];
        if token.is_empty() || name.is_empty() {
            return Err("token and name must not be empty".into());
        }
        let quota = match parts.get(2) {
            Some(q) => q
                .parse::<u64>()
                .map_err(|_| format!("quota must be a non-negative integer, got {q:?}"))?,
            None => 1000,
        };
        let status = match parts.get(3) {
            Some(st) => st.parse::<AppStatus>()?,
            None => AppStatus::Active,
        };
        Ok(AppConfig {
            token: token.to_string(),
            name: name.to_string(),
            quota,
            status,
            identities: Vec::new(),
        })
    }
}

/// Status of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AppStatus {
    /// Routes decisions while quota remains.
    #[default]
    Active,
    /// Every `RouteDecision` answers REJECTED; `GetQuota` reports `QUOTA_SUSPENDED`.
    Suspended,
}

impl FromStr for AppStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Ok(AppStatus::Active),
            "suspended" => Ok(AppStatus::Suspended),
            other => Err(format!("unknown app status {other:?} (active, suspended)")),
        }
    }
}

impl fmt::Display for AppStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppStatus::Active => "active",
            AppStatus::Suspended => "suspended",
        })
    }
}

/// An identity and its simulated devices, one per policy.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityConfig {
    /// Any string the app links devices to (an address, an email, a user id).
    pub identity_id: String,
    /// One simulated device per entry, in this order.
    pub devices: Vec<DevicePolicy>,
}

/// What a simulated device does with a decision it has decrypted.
///
/// A simulated device that cannot decrypt a decision never answers it, whatever its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePolicy {
    /// Approves at once.
    Approve,
    /// Rejects at once.
    Reject,
    /// Never answers: the decision expires at its TTL.
    Ignore,
    /// Approves after the delay.
    ApproveAfter(Duration),
    /// Rejects after the delay.
    RejectAfter(Duration),
    /// Offline: deliveries are QUEUED until the device is set online, then it behaves as the
    /// inner policy.
    Offline(Box<DevicePolicy>),
    /// A person answers in a browser: the relay holds this device's key pair, decrypts its
    /// decisions for the device page (`GET /` of the HTTP address) and never answers itself.
    Browser,
}

impl DevicePolicy {
    /// Splits a policy into (starts online, policy once online); nested `Offline` collapse.
    pub(crate) fn split(&self) -> (bool, DevicePolicy) {
        match self {
            DevicePolicy::Offline(inner) => (false, inner.split().1),
            other => (true, other.clone()),
        }
    }
}

impl FromStr for DevicePolicy {
    type Err = String;

    /// Parses `approve`, `reject`, `ignore`, `approve-after=<ms>`, `reject-after=<ms>`,
    /// `offline` (offline, then approve), `offline:<policy>` or `browser`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(inner) = s.strip_prefix("offline:") {
            return Ok(DevicePolicy::Offline(Box::new(inner.parse()?)));
        }
        let parse_ms = |v: &str| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("delay must be milliseconds, got {v:?}"))
        };
        if let Some(ms) = s.strip_prefix("approve-after=") {
            return Ok(DevicePolicy::ApproveAfter(parse_ms(ms)?));
        }
        if let Some(ms) = s.strip_prefix("reject-after=") {
            return Ok(DevicePolicy::RejectAfter(parse_ms(ms)?));
        }
        match s {
            "approve" => Ok(DevicePolicy::Approve),
            "reject" => Ok(DevicePolicy::Reject),
            "ignore" => Ok(DevicePolicy::Ignore),
            "offline" => Ok(DevicePolicy::Offline(Box::new(DevicePolicy::Approve))),
            "browser" => Ok(DevicePolicy::Browser),
            other => Err(format!(
                "unknown device policy {other:?} (approve, reject, ignore, approve-after=<ms>, \
                 reject-after=<ms>, offline, offline:<policy>, browser)"
            )),
        }
    }
}

impl fmt::Display for DevicePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevicePolicy::Approve => f.write_str("approve"),
            DevicePolicy::Reject => f.write_str("reject"),
            DevicePolicy::Ignore => f.write_str("ignore"),
            DevicePolicy::ApproveAfter(d) => write!(f, "approve-after={}", d.as_millis()),
            DevicePolicy::RejectAfter(d) => write!(f, "reject-after={}", d.as_millis()),
            DevicePolicy::Offline(inner) => write!(f, "offline:{inner}"),
            DevicePolicy::Browser => f.write_str("browser"),
        }
    }
}

/// Parses `<app name>:<identity_id>:<policy>[,<policy>...]` (the `--identity` flag) into the
/// app name and the identity.
pub fn parse_identity_spec(s: &str) -> Result<(String, IdentityConfig), String> {
    let mut parts = s.splitn(3, ':');
    let app = parts.next().unwrap_or_default();
    let identity = parts.next().unwrap_or_default();
    let policies = parts.next().unwrap_or_default();
    if app.is_empty() || identity.is_empty() || policies.is_empty() {
        return Err("expected <app name>:<identity_id>:<policy>[,<policy>...]".into());
    }
    let devices = policies
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<DevicePolicy>, String>>()?;
    Ok((
        app.to_string(),
        IdentityConfig {
            identity_id: identity.to_string(),
            devices,
        },
    ))
}

/// Fault injection. All zero (the [`Default`]) means off. Random faults are drawn from a
/// deterministic generator seeded with `seed`, so a run with the same seed and the same calls
/// fails the same calls.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Seed of the fault generator.
    pub seed: u64,
    /// Fraction (0..=1) of calls failed with UNAVAILABLE before the relay acts on them.
    pub unavailable_before_fraction: f64,
    /// Fraction (0..=1) of calls failed with UNAVAILABLE after the relay has acted on them.
    pub unavailable_after_fraction: f64,
    /// Latency added to every affected call.
    #[serde(with = "duration_ms", rename = "latency_ms")]
    pub latency: Duration,
    /// Fraction (0..=1) of calls that never answer (until the client gives up).
    pub stall_fraction: f64,
    /// Fraction (0..=1) of calls whose connection the relay drops (no GOAWAY, no TLS
    /// close_notify) before acting on them.
    pub close_before_fraction: f64,
    /// Fraction (0..=1) of calls whose connection the relay drops after acting on them.
    pub close_after_fraction: f64,
    /// Fraction (0..=1) of calls refused with GOAWAY on their connection and
    /// `RST_STREAM(REFUSED_STREAM)` on their stream, before the relay acts.
    pub goaway_before_fraction: f64,
    /// Fraction (0..=1) of calls the relay acts on, then sends GOAWAY and closes the
    /// connection (after [`crate::GOAWAY_DRAIN`]) without answering them.
    pub goaway_after_fraction: f64,
    /// RPC method names the faults apply to (e.g. `["RouteDecision"]`); `None` means all.
    pub methods: Option<Vec<String>>,
}

impl FaultConfig {
    /// True when no fault is configured.
    pub fn is_off(&self) -> bool {
        self.fractions().iter().all(|(_, f)| *f <= 0.0) && self.latency.is_zero()
    }

    /// Every fraction with its field name.
    pub(crate) fn fractions(&self) -> [(&'static str, f64); 7] {
        [
            (
                "unavailable_before_fraction",
                self.unavailable_before_fraction,
            ),
            (
                "unavailable_after_fraction",
                self.unavailable_after_fraction,
            ),
            ("stall_fraction", self.stall_fraction),
            ("close_before_fraction", self.close_before_fraction),
            ("close_after_fraction", self.close_after_fraction),
            ("goaway_before_fraction", self.goaway_before_fraction),
            ("goaway_after_fraction", self.goaway_after_fraction),
        ]
    }

    /// Clamps every fraction to 0..=1 (NaN to 0).
    pub(crate) fn clamp(&mut self) {
        for f in [
            &mut self.unavailable_before_fraction,
            &mut self.unavailable_after_fraction,
            &mut self.stall_fraction,
            &mut self.close_before_fraction,
            &mut self.close_after_fraction,
            &mut self.goaway_before_fraction,
            &mut self.goaway_after_fraction,
        ] {
            *f = if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) };
        }
    }
}

/// When a scripted failure ([`crate::DevRelay::fail_next`]) strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailWhen {
    /// The call fails with UNAVAILABLE and the relay does nothing.
    BeforeActing,
    /// The relay acts on the call (delivers, charges, records) and then answers UNAVAILABLE.
    AfterActing,
    /// The relay acts on the call and then answers a malformed message, as a buggy or newer
    /// relay might: unknown enum values (delivery status 99, decision outcome 42, quota status
    /// 7), or for `GetIdentityDevices` the first device's `pq_public_key` cut to 100 bytes.
    MalformedAnswer,
    /// The relay drops the call's connection (TLS and TCP, without GOAWAY or close_notify)
    /// and does nothing: the client sees the connection end (EOF or RST), as when a relay
    /// process dies.
    CloseConnectionBeforeActing,
    /// The relay acts on the call (delivers, charges, stores the answer of the request id),
    /// then drops the connection without answering.
    CloseConnectionAfterActing,
    /// The relay sends GOAWAY on the call's connection and resets the call's stream with
    /// `REFUSED_STREAM` (HTTP/2: not processed, safe to retry) without acting; the
    /// connection's other calls finish, then it closes. The client sees UNAVAILABLE.
    GoawayBeforeActing,
    /// The relay acts on the call, sends GOAWAY, and closes the connection
    /// [`crate::GOAWAY_DRAIN`] later without answering the call: a graceful shutdown whose
    /// drain time ran out.
    GoawayAfterActing,
    /// A `RouteDecision` is answered with delivery status ERROR (the relay's transient delivery
    /// failure, to be retried with the same request id) without acting; any other call fails
    /// with UNAVAILABLE without acting.
    DeliveryError,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// The JSON configuration file (`--config`).
///
/// ```json
/// {
///   "apps": [
///     { "token": "dev-token", "name": "dev-app", "quota": 1000, "status": "active",
///       "identities": [ { "identity_id": "demo-user", "devices": ["approve", "offline:reject"] } ] }
///   ],
///   "faults": { "seed": 7, "unavailable_before_fraction": 0.1, "latency_ms": 50 }
/// }
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The apps.
    #[serde(default)]
    pub apps: Vec<FileApp>,
    /// Fault injection (optional).
    #[serde(default)]
    pub faults: Option<FaultConfig>,
}

/// An app in the JSON configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileApp {
    /// Bearer token.
    pub token: String,
    /// App name.
    pub name: String,
    /// Quota (default 1000).
    #[serde(default = "default_quota")]
    pub quota: u64,
    /// `active` (default) or `suspended`.
    #[serde(default)]
    pub status: AppStatus,
    /// Identities with simulated devices.
    #[serde(default)]
    pub identities: Vec<FileIdentity>,
}

/// An identity in the JSON configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIdentity {
    /// The identity id.
    pub identity_id: String,
    /// Device policies, in the `--identity` syntax (`approve`, `reject-after=500`, ...).
    #[serde(default)]
    pub devices: Vec<String>,
}

fn default_quota() -> u64 {
    1000
}

impl FileConfig {
    /// Parses the JSON text of a configuration file.
    pub fn from_json(text: &str) -> Result<FileConfig, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid configuration file: {e}"))
    }

    /// Converts the file's apps into [`AppConfig`]s.
    pub fn app_configs(&self) -> Result<Vec<AppConfig>, String> {
        self.apps
            .iter()
            .map(|a| {
                let identities = a
                    .identities
                    .iter()
                    .map(|i| {
                        Ok(IdentityConfig {
                            identity_id: i.identity_id.clone(),
                            devices: i
                                .devices
                                .iter()
                                .map(|p| p.parse())
                                .collect::<Result<Vec<_>, String>>()?,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok(AppConfig {
                    token: a.token.clone(),
                    name: a.name.clone(),
                    quota: a.quota,
                    status: a.status,
                    identities,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_app_specs() {
        let a: AppConfig = "tok:app".parse().unwrap();
        assert_eq!(
            (a.token.as_str(), a.name.as_str(), a.quota),
            ("tok", "app", 1000)
        );
        let a: AppConfig = "tok:app:5:suspended".parse().unwrap();
        assert_eq!(a.quota, 5);
        assert_eq!(a.status, AppStatus::Suspended);
        assert!("tok".parse::<AppConfig>().is_err());
        assert!("tok:app:x".parse::<AppConfig>().is_err());
        assert!("tok:app:1:bogus".parse::<AppConfig>().is_err());
    }

    #[test]
    fn parses_policies_and_identities() {
        let (app, id) = parse_identity_spec(
            "dev-app:alice@example.com:approve,reject-after=200,offline:ignore,offline",
        )
        .unwrap();
        assert_eq!(app, "dev-app");
        assert_eq!(id.identity_id, "alice@example.com");
        assert_eq!(
            id.devices,
            vec![
                DevicePolicy::Approve,
                DevicePolicy::RejectAfter(Duration::from_millis(200)),
                DevicePolicy::Offline(Box::new(DevicePolicy::Ignore)),
                DevicePolicy::Offline(Box::new(DevicePolicy::Approve)),
            ]
        );
        for p in &id.devices {
            assert_eq!(&p.to_string().parse::<DevicePolicy>().unwrap(), p);
        }
        assert!(parse_identity_spec("a:b").is_err());
        assert!(parse_identity_spec("a:b:maybe").is_err());
    }

    #[test]
    fn parses_file_config() {
        let f = FileConfig::from_json(
            r#"{"apps":[{"token":"t","name":"n","identities":[{"identity_id":"i","devices":["approve-after=10"]}]}],
                "faults":{"seed":3,"latency_ms":5,"methods":["GetQuota"]}}"#,
        )
        .unwrap();
        let apps = f.app_configs().unwrap();
        assert_eq!(apps[0].quota, 1000);
        assert_eq!(
            apps[0].identities[0].devices,
            vec![DevicePolicy::ApproveAfter(Duration::from_millis(10))]
        );
        let faults = f.faults.unwrap();
        assert_eq!(faults.latency, Duration::from_millis(5));
        assert_eq!(faults.seed, 3);
        assert!(FileConfig::from_json(r#"{"apps":[],"bogus":1}"#).is_err());
    }

    #[test]
    fn the_browser_policy_has_a_spec_string() {
        let (_, id) = parse_identity_spec("dev-app:me:browser,offline:browser").unwrap();
        assert_eq!(
            id.devices,
            vec![
                DevicePolicy::Browser,
                DevicePolicy::Offline(Box::new(DevicePolicy::Browser)),
            ]
        );
        for p in &id.devices {
            assert_eq!(&p.to_string().parse::<DevicePolicy>().unwrap(), p);
        }
        assert_eq!(DevicePolicy::Browser.to_string(), "browser");
        assert!(" browser ".parse::<DevicePolicy>().is_ok());
        assert!("browser=1".parse::<DevicePolicy>().is_err());
    }
}
