//! The relay's state on disk: one SQLite database (`relay.db` in the state directory).
//!
//! The in-memory state (`state.rs`) stays the structure every read uses; each change is
//! written through to this database in one transaction, committed under the relay's lock
//! before the call that made it answers. This module knows tables and rows only; turning
//! rows into the relay's state and back is `state/persist.rs`.
//!
//! - **One writer.** The database is opened with `locking_mode=EXCLUSIVE`: the relay holds
//!   its lock from start to stop, so a second relay on the same state directory is refused,
//!   and the operating system releases the lock when the process dies (SIGKILL included).
//! - **Durability.** `journal_mode=WAL`, `synchronous=NORMAL`: a committed transaction is in
//!   the WAL file (written, not yet synced) before the call answers, so it survives the
//!   process being killed; a power loss or an operating-system crash may lose the last
//!   transactions (the database stays consistent).
//! - **Versions.** `PRAGMA application_id` marks the file as the relay's and `PRAGMA
//!   user_version` holds [`SCHEMA_VERSION`]; any other value is refused at start with a
//!   message naming the file.
//! - **Privacy.** The file holds the simulated devices' ML-KEM-768 secret seeds and every
//!   ciphertext: it is created 0600 (SQLite gives its WAL file the database's mode), an
//!   existing one must be a regular file of this user and is set to 0600 if it was not.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, TransactionBehavior};

use crate::error::DevRelayError;

/// The database file's name inside the state directory.
pub const STATE_DB_FILE: &str = "relay.db";

/// The schema this relay reads and writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// `PRAGMA application_id` of the relay's database: "NoxR".
const APPLICATION_ID: i64 = 0x4e6f_7852;

/// How long opening waits for another connection to release the database (an in-process
/// relay being dropped) before calling it in use.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

const SCHEMA: &str = "
CREATE TABLE apps (
    idx             INTEGER PRIMARY KEY,  -- the app's index, in creation order
    name            TEXT NOT NULL UNIQUE,
    token           TEXT NOT NULL,
    quota_total     INTEGER NOT NULL,
    quota_remaining INTEGER NOT NULL,
    status          TEXT NOT NULL         -- 'active' | 'suspended'
) STRICT;
CREATE TABLE identities (
    app         INTEGER NOT NULL,
    identity_id TEXT NOT NULL,
    PRIMARY KEY (app, identity_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE devices (
    device_id     TEXT PRIMARY KEY,
    app           INTEGER NOT NULL,
    identity_id   TEXT NOT NULL,
    position      INTEGER NOT NULL,       -- order among the identity's devices
    public_key    BLOB NOT NULL,
    pq_public_key BLOB NOT NULL,
    online        INTEGER NOT NULL,
    policy        TEXT,                   -- simulated: its policy once online, as on the
                                          -- command line; NULL: registered over HTTP
    secret_seed   BLOB                    -- simulated: the 64-byte ML-KEM-768 seed (d || z)
) STRICT;
CREATE TABLE decisions (
    seq           INTEGER PRIMARY KEY,    -- creation order
    app           INTEGER NOT NULL,
    identity_id   TEXT NOT NULL,
    decision_id   TEXT NOT NULL,
    outcome       TEXT NOT NULL,          -- 'PENDING' | 'APPROVED' | 'REJECTED' | 'EXPIRED'
    answered_by   TEXT,
    expires_at_ms INTEGER NOT NULL,       -- Unix time, ms
    ended_at_ms   INTEGER                 -- answered or expired (Unix ms); eviction counts
                                          -- the grace from here
) STRICT;
CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY,  -- the device's inbox key
    decision_seq    INTEGER NOT NULL,
    device_id       TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    kyber_ct        BLOB NOT NULL,
    nonce           BLOB NOT NULL,
    ciphertext      BLOB NOT NULL,
    ttl_seconds     INTEGER NOT NULL,
    delivered       INTEGER NOT NULL,     -- 0 while queued
    delivered_at_ms INTEGER NOT NULL,
    sim_result      TEXT,                 -- 'decrypted' | 'failed' | NULL
    sim_detail      TEXT                  -- plaintext SHA-256 (hex) | failure reason
) STRICT;
CREATE TABLE requests (
    app          INTEGER NOT NULL,
    request_id   TEXT NOT NULL,
    status       INTEGER NOT NULL,        -- the DeliveryStatus answered
    decision_id  TEXT NOT NULL,
    decision_seq INTEGER,                 -- lives as long as that decision; NULL: no decision
                                          -- (forgotten a grace after given_at_ms)
    given_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (app, request_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
";

/// A row of `apps`.
#[derive(Debug, Clone)]
pub(crate) struct AppRow<'a> {
    pub idx: usize,
    pub name: Cow<'a, str>,
    pub token: Cow<'a, str>,
    pub quota_total: u64,
    pub quota_remaining: u64,
    pub status: Cow<'a, str>,
}

/// A row of `devices`.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRow<'a> {
    pub device_id: Cow<'a, str>,
    pub app: usize,
    pub identity_id: Cow<'a, str>,
    pub position: usize,
    pub public_key: Cow<'a, [u8]>,
    pub pq_public_key: Cow<'a, [u8]>,
    pub online: bool,
    /// `Some((policy, seed))` for a simulated device.
    pub sim: Option<(String, zeroize::Zeroizing<Vec<u8>>)>,
}

/// A row of `decisions`.
#[derive(Debug, Clone)]
pub(crate) struct DecisionRow<'a> {
    pub seq: u64,
    pub app: usize,
    pub identity_id: Cow<'a, str>,
    pub decision_id: Cow<'a, str>,
    pub outcome: Cow<'a, str>,
    pub answered_by: Option<Cow<'a, str>>,
    pub expires_at_ms: u64,
    pub ended_at_ms: Option<u64>,
}

/// A row of `deliveries`.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryRow<'a> {
    pub seq: u64,
    pub decision_seq: u64,
    pub device_id: Cow<'a, str>,
    pub request_id: Cow<'a, str>,
    pub kyber_ct: Cow<'a, [u8]>,
    pub nonce: Cow<'a, [u8]>,
    pub ciphertext: Cow<'a, [u8]>,
    pub ttl_seconds: u32,
    pub delivered: bool,
    pub delivered_at_ms: u64,
    /// `("decrypted", sha256 hex)` or `("failed", reason)`.
    pub sim: Option<(Cow<'a, str>, Cow<'a, str>)>,
}

/// A row of `requests`.
#[derive(Debug, Clone)]
pub(crate) struct RequestRow<'a> {
    pub app: usize,
    pub request_id: Cow<'a, str>,
    pub status: i32,
    pub decision_id: Cow<'a, str>,
    pub decision_seq: Option<u64>,
    pub given_at_ms: u64,
}

/// Everything the database holds, read at start.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// By `idx`.
    pub apps: Vec<AppRow<'static>>,
    pub identities: Vec<(usize, String)>,
    /// By app, identity and position.
    pub devices: Vec<DeviceRow<'static>>,
    /// By `seq`.
    pub decisions: Vec<DecisionRow<'static>>,
    /// By `seq`.
    pub deliveries: Vec<DeliveryRow<'static>>,
    pub requests: Vec<RequestRow<'static>>,
    pub counters: HashMap<String, u64>,
}

/// The open database: the relay holds it, under its lock, from start to stop.
pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// SQLite integers are signed: values above `i64::MAX` are stored as `i64::MAX`.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// And back (a negative value, which the relay never writes, reads as 0).
fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn idx(v: i64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn storage_err(path: &Path, what: &str, e: impl std::fmt::Display) -> DevRelayError {
    DevRelayError::Storage(format!("{what} {}: {e}", path.display()))
}

/// Advice for a database the relay cannot use.
fn delete_advice(path: &Path) -> String {
    format!(
        "stop the relay and delete {p} (and {p}-wal if present) to start with an empty \
         state, or run the relay version that wrote it",
        p = path.display()
    )
}

/// Creates the file 0600 when missing; checks an existing one (a regular file of this user,
/// not a symlink) and sets it to 0600 when it was open to others.
fn prepare_file(path: &Path) -> Result<(), DevRelayError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let file = options
        .open(path)
        .map_err(|e| storage_err(path, "opening", e))?;
    let meta = file
        .metadata()
        .map_err(|e| storage_err(path, "reading", e))?;
    if !meta.is_file() {
        return Err(DevRelayError::Storage(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if meta.uid() != rustix::process::getuid().as_raw() {
            return Err(DevRelayError::Storage(format!(
                "{} belongs to another user (uid {}); refusing to use it",
                path.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.mode() & 0o777), "the state database was open to other users; setting it to 0600");
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| storage_err(path, "restricting", e))?;
        }
    }
    Ok(())
}

/// What opening failed of, in the user's terms.
fn open_error(p: &Path, e: rusqlite::Error) -> DevRelayError {
    let path = p.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            DevRelayError::Storage(format!(
                "{path} is in use by another noxy-devrelay (one relay per state \
                 directory): stop it, or give this one another --state-dir"
            ))
        }
        Some(ErrorCode::NotADatabase) => DevRelayError::Storage(format!(
            "{path} is not a noxy-devrelay database ({e}); {}",
            delete_advice(p)
        )),
        _ => DevRelayError::Storage(format!("opening {path}: {e}")),
    }
}

impl Store {
    /// Opens (creating when missing) the database at `path`, takes its lock, checks or creates
    /// the schema and reads everything it holds.
    pub fn open(path: &Path) -> Result<(Store, Snapshot), DevRelayError> {
        prepare_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| storage_err(path, "opening", e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure().map_err(|e| store.open_error(e))?;
        store.check_schema()?;
        let snapshot = store.load().map_err(|e| {
            DevRelayError::Storage(format!(
                "reading {}: {e}; {}",
                path.display(),
                delete_advice(path)
            ))
        })?;
        Ok((store, snapshot))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_error(&self, e: rusqlite::Error) -> DevRelayError {
        open_error(&self.path, e)
    }

    fn configure(&mut self) -> rusqlite::Result<()> {
        let c = &self.conn;
        c.busy_timeout(BUSY_TIMEOUT)?;
        // Before the first access: the lock is then taken and kept (and WAL needs no shared
        // memory file).
        c.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::InvalidQuery);
        }
        // A commit is written to the WAL (not synced): it survives the process, not the machine.
        // The WAL is synced, then copied into the database, every 1000 pages (SQLite's
        // automatic checkpoint, about every 200 RouteDecisions: a pause of tens of ms).
        c.pragma_update(None, "synchronous", "NORMAL")?;
        c.set_prepared_statement_cache_capacity(32);
        Ok(())
    }

    /// Creates the schema in an empty database; refuses anything but the relay's own
    /// database of this version.
    fn check_schema(&mut self) -> Result<(), DevRelayError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| open_error(&path, e))?;
        let read = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<(i64, i64, i64)> {
            let app_id = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
            let version = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            let tables = tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
            Ok((app_id, version, tables))
        };
        let (app_id, version, tables) = read(&tx).map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => DevRelayError::Storage(format!(
                "{} is not a noxy-devrelay database ({e}); {}",
                path.display(),
                delete_advice(&path)
            )),
            _ => storage_err(&path, "reading", e),
        })?;
        if app_id == 0 && version == 0 && tables == 0 {
            tx.execute_batch(SCHEMA)
                .and_then(|()| tx.pragma_update(None, "application_id", APPLICATION_ID))
                .and_then(|()| tx.pragma_update(None, "user_version", SCHEMA_VERSION))
                .and_then(|()| tx.commit())
                .map_err(|e| storage_err(&path, "creating the schema in", e))?;
            tracing::info!(path = %path.display(), "created the state database");
            return Ok(());
        }
        if app_id != APPLICATION_ID {
            return Err(DevRelayError::Storage(format!(
                "{} is not a noxy-devrelay database (application_id {app_id:#x}); {}",
                path.display(),
                delete_advice(&path)
            )));
        }
        if version != SCHEMA_VERSION {
            return Err(DevRelayError::Storage(format!(
                "{} was written by an incompatible noxy-devrelay (schema version {version}; \
                 this relay reads version {SCHEMA_VERSION}); {}",
                path.display(),
                delete_advice(&path)
            )));
        }
        tx.commit().map_err(|e| storage_err(&path, "reading", e))
    }

    fn load(&self) -> rusqlite::Result<Snapshot> {
        let c = &self.conn;
        let mut snap = Snapshot::default();
        let mut stmt = c.prepare(
            "SELECT idx, name, token, quota_total, quota_remaining, status FROM apps ORDER BY idx",
        )?;
        snap.apps = stmt
            .query_map([], |r| {
                Ok(AppRow {
                    idx: idx(r.get(0)?),
                    name: Cow::Owned(r.get(1)?),
                    token: Cow::Owned(r.get(2)?),
                    quota_total: uint(r.get(3)?),
                    quota_remaining: uint(r.get(4)?),
                    status: Cow::Owned(r.get(5)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = c.prepare("SELECT app, identity_id FROM identities")?;
        snap.identities = stmt
            .query_map([], |r| Ok((idx(r.get(0)?), r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = c.prepare(
            "SELECT device_id, app, identity_id, position, public_key, pq_public_key, online, \
             policy, secret_seed FROM devices ORDER BY app, identity_id, position",
        )?;
        snap.devices = stmt
            .query_map([], |r| {
                let policy: Option<String> = r.get(7)?;
                let seed: Option<Vec<u8>> = r.get(8)?;
                Ok(DeviceRow {
                    device_id: Cow::Owned(r.get(0)?),
                    app: idx(r.get(1)?),
                    identity_id: Cow::Owned(r.get(2)?),
                    position: idx(r.get(3)?),
                    public_key: Cow::Owned(r.get(4)?),
                    pq_public_key: Cow::Owned(r.get(5)?),
                    online: r.get(6)?,
                    sim: policy.map(|p| (p, zeroize::Zeroizing::new(seed.unwrap_or_default()))),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = c.prepare(
            "SELECT seq, app, identity_id, decision_id, outcome, answered_by, expires_at_ms, \
             ended_at_ms FROM decisions ORDER BY seq",
        )?;
        snap.decisions = stmt
            .query_map([], |r| {
                Ok(DecisionRow {
                    seq: uint(r.get(0)?),
                    app: idx(r.get(1)?),
                    identity_id: Cow::Owned(r.get(2)?),
                    decision_id: Cow::Owned(r.get(3)?),
                    outcome: Cow::Owned(r.get(4)?),
                    answered_by: r.get::<_, Option<String>>(5)?.map(Cow::Owned),
                    expires_at_ms: uint(r.get(6)?),
                    ended_at_ms: r.get::<_, Option<i64>>(7)?.map(uint),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = c.prepare(
            "SELECT seq, decision_seq, device_id, request_id, kyber_ct, nonce, ciphertext, \
             ttl_seconds, delivered, delivered_at_ms, sim_result, sim_detail FROM deliveries \
             ORDER BY seq",
        )?;
        snap.deliveries = stmt
            .query_map([], |r| {
                let result: Option<String> = r.get(10)?;
                let detail: Option<String> = r.get(11)?;
                Ok(DeliveryRow {
                    seq: uint(r.get(0)?),
                    decision_seq: uint(r.get(1)?),
                    device_id: Cow::Owned(r.get(2)?),
                    request_id: Cow::Owned(r.get(3)?),
                    kyber_ct: Cow::Owned(r.get(4)?),
                    nonce: Cow::Owned(r.get(5)?),
                    ciphertext: Cow::Owned(r.get(6)?),
                    ttl_seconds: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(u32::MAX),
                    delivered: r.get(8)?,
                    delivered_at_ms: uint(r.get(9)?),
                    sim: result.map(|k| (Cow::Owned(k), Cow::Owned(detail.unwrap_or_default()))),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = c.prepare(
            "SELECT app, request_id, status, decision_id, decision_seq, given_at_ms FROM requests",
        )?;
        snap.requests = stmt
            .query_map([], |r| {
                Ok(RequestRow {
                    app: idx(r.get(0)?),
                    request_id: Cow::Owned(r.get(1)?),
                    status: r.get(2)?,
                    decision_id: Cow::Owned(r.get(3)?),
                    decision_seq: r.get::<_, Option<i64>>(4)?.map(uint),
                    given_at_ms: uint(r.get(5)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = c.prepare("SELECT name, value FROM counters")?;
        snap.counters = stmt
            .query_map([], |r| Ok((r.get(0)?, uint(r.get(1)?))))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(snap)
    }

    /// Runs `f` in one transaction and commits it: all of it is written, or none.
    pub fn write(
        &mut self,
        f: impl FnOnce(&Writer<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), String> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        let writer = Writer { tx };
        f(&writer).map_err(|e| e.to_string())?;
        writer.tx.commit().map_err(|e| e.to_string())
    }
}

/// The statements of one write transaction (each prepared once per connection).
pub(crate) struct Writer<'c> {
    tx: rusqlite::Transaction<'c>,
}

impl Writer<'_> {
    pub fn put_app(&self, a: &AppRow<'_>) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO apps (idx, name, token, quota_total, quota_remaining, status) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (idx) DO UPDATE SET \
                 name = excluded.name, token = excluded.token, \
                 quota_total = excluded.quota_total, quota_remaining = excluded.quota_remaining, \
                 status = excluded.status",
            )?
            .execute(params![
                int(a.idx as u64),
                a.name.as_ref(),
                a.token.as_ref(),
                int(a.quota_total),
                int(a.quota_remaining),
                a.status.as_ref()
            ])
            .map(drop)
    }

    pub fn put_identity(&self, app: usize, identity_id: &str) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("INSERT OR IGNORE INTO identities (app, identity_id) VALUES (?1, ?2)")?
            .execute(params![int(app as u64), identity_id])
            .map(drop)
    }

    pub fn put_device(&self, d: &DeviceRow<'_>) -> rusqlite::Result<()> {
        let (policy, seed) = match &d.sim {
            Some((policy, seed)) => (Some(policy.as_str()), Some(seed.as_slice())),
            None => (None, None),
        };
        self.tx
            .prepare_cached(
                "INSERT INTO devices (device_id, app, identity_id, position, public_key, \
                 pq_public_key, online, policy, secret_seed) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (device_id) DO UPDATE \
                 SET position = excluded.position, online = excluded.online, \
                 policy = excluded.policy",
            )?
            .execute(params![
                d.device_id.as_ref(),
                int(d.app as u64),
                d.identity_id.as_ref(),
                int(d.position as u64),
                d.public_key.as_ref(),
                d.pq_public_key.as_ref(),
                d.online,
                policy,
                seed
            ])
            .map(drop)
    }

    pub fn put_decision(&self, d: &DecisionRow<'_>) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO decisions (seq, app, identity_id, decision_id, outcome, \
                 answered_by, expires_at_ms, ended_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (seq) DO UPDATE SET outcome = excluded.outcome, \
                 answered_by = excluded.answered_by, ended_at_ms = excluded.ended_at_ms",
            )?
            .execute(params![
                int(d.seq),
                int(d.app as u64),
                d.identity_id.as_ref(),
                d.decision_id.as_ref(),
                d.outcome.as_ref(),
                d.answered_by.as_deref(),
                int(d.expires_at_ms),
                d.ended_at_ms.map(int)
            ])
            .map(drop)
    }

    pub fn delete_decision(&self, seq: u64) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("DELETE FROM decisions WHERE seq = ?1")?
            .execute([int(seq)])
            .map(drop)
    }

    pub fn delete_delivery(&self, seq: u64) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("DELETE FROM deliveries WHERE seq = ?1")?
            .execute([int(seq)])
            .map(drop)
    }

    pub fn put_delivery(&self, d: &DeliveryRow<'_>) -> rusqlite::Result<()> {
        let (result, detail) = match &d.sim {
            Some((result, detail)) => (Some(result.as_ref()), Some(detail.as_ref())),
            None => (None, None),
        };
        self.tx
            .prepare_cached(
                "INSERT INTO deliveries (seq, decision_seq, device_id, request_id, kyber_ct, \
                 nonce, ciphertext, ttl_seconds, delivered, delivered_at_ms, sim_result, \
                 sim_detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (seq) DO UPDATE SET delivered = excluded.delivered, \
                 delivered_at_ms = excluded.delivered_at_ms, sim_result = excluded.sim_result, \
                 sim_detail = excluded.sim_detail",
            )?
            .execute(params![
                int(d.seq),
                int(d.decision_seq),
                d.device_id.as_ref(),
                d.request_id.as_ref(),
                d.kyber_ct.as_ref(),
                d.nonce.as_ref(),
                d.ciphertext.as_ref(),
                d.ttl_seconds,
                d.delivered,
                int(d.delivered_at_ms),
                result,
                detail
            ])
            .map(drop)
    }

    pub fn put_request(&self, r: &RequestRow<'_>) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO requests (app, request_id, status, decision_id, \
                 decision_seq, given_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                int(r.app as u64),
                r.request_id.as_ref(),
                r.status,
                r.decision_id.as_ref(),
                r.decision_seq.map(int),
                int(r.given_at_ms)
            ])
            .map(drop)
    }

    pub fn delete_request(&self, app: usize, request_id: &str) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("DELETE FROM requests WHERE app = ?1 AND request_id = ?2")?
            .execute(params![int(app as u64), request_id])
            .map(drop)
    }

    pub fn put_counter(&self, name: &str, value: u64) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![name, int(value)])
            .map(drop)
    }
}

#[cfg(test)]
impl Store {
    /// Makes every later write fail (SQLITE_READONLY), as a full disk or a lost file would.
    pub fn fail_writes(&self) {
        self.conn
            .pragma_update(None, "query_only", true)
            .expect("query_only");
    }
}
