//! The relay's state in SQLite: a restart (in-process here; the binary killed with SIGKILL in
//! `binary_restart.rs`) loses nothing the relay had answered.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use noxy_devrelay::proto::{DecisionOutcome, DeliveryStatus};
use noxy_devrelay::{
    AppConfig, AppStatus, DevRelay, DevRelayConfig, DevRelayError, DevicePolicy, FailWhen, Limits,
    Storage, SCHEMA_VERSION, STATE_DB_FILE,
};
use tonic::Code;

const TOKEN: &str = "tok-p";
const APP: &str = "app-p";
const MAIN: (&str, &str) = (TOKEN, APP);

/// The configuration both runs of a restart use.
fn apps() -> Vec<AppConfig> {
    vec![AppConfig::new(TOKEN, APP, 10)
        .with_identity("alice", vec![DevicePolicy::Approve])
        .with_identity(
            "olivia",
            vec![DevicePolicy::Offline(Box::new(DevicePolicy::Approve))],
        )
        .with_identity("ian", vec![DevicePolicy::Ignore])
        .with_identity(
            "slow",
            vec![DevicePolicy::ApproveAfter(Duration::from_millis(4000))],
        )]
}

fn config(dir: &Path, apps: Vec<AppConfig>) -> DevRelayConfig {
    DevRelayConfig {
        apps,
        state_dir: Some(dir.to_path_buf()),
        storage: Storage::in_state_dir(dir),
        ..DevRelayConfig::default()
    }
}

async fn start_in(dir: &Path, apps: Vec<AppConfig>) -> DevRelay {
    DevRelay::start(config(dir, apps))
        .await
        .expect("relay starts")
}

fn mode(path: impl AsRef<Path>) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_answers_charges_queues_deadlines_and_device_timers() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_in(dir.path(), apps()).await;
    let mut c = client(&relay).await;
    let ids: Vec<Vec<String>> = ["alice", "olivia", "ian", "slow"]
        .iter()
        .map(|i| relay.device_ids(APP, i))
        .collect();
    let alice_key = device_key(&mut c, TOKEN, "alice", &ids[0][0]).await;

    // Approved before the restart.
    let (_, approved) = route_first(&relay, &mut c, MAIN, "alice", "r-approved", "", 60).await;
    assert_eq!(approved.status, DeliveryStatus::Delivered as i32);
    let r = wait_terminal(&mut c, TOKEN, &approved.decision_id, "alice").await;
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
    // Queued on an offline device.
    let (_, queued) = route_first(&relay, &mut c, MAIN, "olivia", "r-queued", "d-q", 60).await;
    assert_eq!(queued.status, DeliveryStatus::Queued as i32);
    // Pending, expiring 4 s after it was routed (time enough to reach the restart).
    let routed_at = Instant::now();
    let (_, expiring) = route_first(&relay, &mut c, MAIN, "ian", "r-exp", "d-exp", 4).await;
    assert_eq!(expiring.status, DeliveryStatus::Delivered as i32);
    // Pending, approved by its device 4 s after its delivery.
    let (_, slow) = route_first(&relay, &mut c, MAIN, "slow", "r-slow", "d-slow", 60).await;
    // Acted on, then UNAVAILABLE: the answer must be on disk before the failure.
    relay.fail_next("RouteDecision", 1, FailWhen::AfterActing);
    let req = route_request(&alice_key, &ids[0][0], "r-after", "d-after", 60, PAYLOAD);
    let err = route(&mut c, TOKEN, req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    // An answer that created no decision.
    let mut nobody = req.clone();
    nobody.request_id = "r-none".into();
    nobody.target_device_id = "dev-nobody".into();
    let none = route(&mut c, TOKEN, nobody.clone()).await.unwrap();
    assert_eq!(none.status, DeliveryStatus::NoDevices as i32);
    // Alice approves it, as anything she gets.
    assert_eq!(
        relay
            .wait_for_outcome(APP, "d-after", WAIT)
            .await
            .as_deref(),
        Some("APPROVED")
    );

    let before = relay.inspect();
    assert_eq!(before.quota_remaining[APP], 10 - 5);
    for d in ["d-exp", "d-slow"] {
        let pending = outcome(&mut c, TOKEN, d, if d == "d-exp" { "ian" } else { "slow" })
            .await
            .unwrap();
        assert!(pending.pending, "{d} must still be pending at the restart");
    }
    let db = dir.path().join(STATE_DB_FILE);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(dir.path().join(format!("{STATE_DB_FILE}-wal"))), 0o600);
    drop(c);
    relay.shutdown().await;

    // The same state directory and configuration.
    let relay = start_in(dir.path(), apps()).await;
    let mut c = client(&relay).await;
    for (i, identity) in ["alice", "olivia", "ian", "slow"].iter().enumerate() {
        assert_eq!(relay.device_ids(APP, identity), ids[i], "{identity}");
    }
    assert_eq!(
        device_key(&mut c, TOKEN, "alice", &ids[0][0]).await,
        alice_key,
        "the same keys"
    );
    assert_eq!(relay.decision_count(), 5);

    // The same request ids get the same answers, and nothing is charged again.
    let key = |k: &[u8]| k.to_vec();
    let again = route(
        &mut c,
        TOKEN,
        route_request(&key(&alice_key), &ids[0][0], "r-approved", "", 60, PAYLOAD),
    )
    .await
    .unwrap();
    assert_eq!(
        (again.status, again.decision_id.as_str()),
        (approved.status, approved.decision_id.as_str())
    );
    let olivia_key = device_key(&mut c, TOKEN, "olivia", &ids[1][0]).await;
    let again = route(
        &mut c,
        TOKEN,
        route_request(&olivia_key, &ids[1][0], "r-queued", "d-q", 60, PAYLOAD),
    )
    .await
    .unwrap();
    assert_eq!(again.status, DeliveryStatus::Queued as i32);
    let again = route(&mut c, TOKEN, req).await.unwrap();
    assert_eq!(
        (again.status, again.decision_id.as_str()),
        (DeliveryStatus::Delivered as i32, "d-after")
    );
    let again = route(&mut c, TOKEN, nobody).await.unwrap();
    assert_eq!(again.status, DeliveryStatus::NoDevices as i32);
    let q = quota(&mut c, TOKEN).await.unwrap();
    assert_eq!((q.quota_total, q.quota_remaining), (10, 5));
    let r = outcome(&mut c, TOKEN, &approved.decision_id, "alice")
        .await
        .unwrap();
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
    let after = relay.inspect();
    assert_eq!(after.decisions, before.decisions);
    assert_eq!(after.deliveries, before.deliveries);
    assert_eq!(after.decrypted, before.decrypted);
    assert_eq!(after.stored_bytes, before.stored_bytes);
    assert!(
        after.route_calls >= before.route_calls + 4,
        "counters go on"
    );

    // The pending decision expires at its TTL, not earlier (Unix milliseconds on disk).
    assert_eq!(
        relay
            .wait_for_outcome(APP, "d-exp", Duration::from_secs(10))
            .await
            .as_deref(),
        Some("EXPIRED")
    );
    assert!(routed_at.elapsed() >= Duration::from_millis(3990));
    // The approve-after device took its decision up again; its delay counts from delivery.
    assert_eq!(
        relay
            .wait_for_outcome(APP, &slow.decision_id, Duration::from_secs(10))
            .await
            .as_deref(),
        Some("APPROVED")
    );
    assert!(routed_at.elapsed() >= Duration::from_millis(3990));
    // The queued delivery is delivered once the device comes online.
    assert!(!relay
        .inspect()
        .decisions
        .iter()
        .any(|d| d.decision_id == "d-q" && d.outcome != "PENDING"));
    relay.set_device_online(&ids[1][0], true);
    assert_eq!(
        relay.wait_for_outcome(APP, "d-q", WAIT).await.as_deref(),
        Some("APPROVED")
    );
    let snap = relay.inspect();
    assert_eq!(snap.decrypt_failures, 0);
    assert_eq!(
        snap.deliveries
            .iter()
            .filter(|d| d.request_id == "r-queued")
            .count(),
        1
    );
    assert_eq!(snap.quota_remaining[APP], 5);
    relay.shutdown().await;

    // What happened after the restart is kept too.
    let relay = start_in(dir.path(), apps()).await;
    let snap = relay.inspect();
    let outcome_of = |id: &str| {
        snap.decisions
            .iter()
            .find(|d| d.decision_id == id)
            .map(|d| d.outcome.clone())
    };
    assert_eq!(outcome_of("d-exp").as_deref(), Some("EXPIRED"));
    assert_eq!(outcome_of("d-slow").as_deref(), Some("APPROVED"));
    assert_eq!(outcome_of("d-q").as_deref(), Some("APPROVED"));
    assert_eq!(snap.quota_remaining[APP], 5);
    relay.shutdown().await;
}

#[tokio::test]
async fn eviction_deletes_rows_and_counters_persist() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        vec![AppConfig::new(TOKEN, APP, 10).with_identity("alice", vec![DevicePolicy::Approve])],
    );
    cfg.limits = Limits {
        eviction_grace: Duration::from_millis(300),
        ..Limits::default()
    };
    let relay = DevRelay::start(cfg.clone()).await.unwrap();
    let mut c = client(&relay).await;
    let (_, out) = route_first(&relay, &mut c, MAIN, "alice", "r1", "d1", 60).await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    assert!(relay.wait_for(WAIT, |i| i.evicted_decisions == 1).await);
    drop(c);
    relay.shutdown().await;
    // Every row of the decision went: its delivery and its request id's answer too.
    {
        let db = rusqlite::Connection::open(dir.path().join(STATE_DB_FILE)).unwrap();
        for table in ["decisions", "deliveries", "requests"] {
            let rows: i64 = db
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(rows, 0, "{table}");
        }
    }

    let relay = DevRelay::start(cfg).await.unwrap();
    let snap = relay.inspect();
    assert_eq!(snap.evicted_decisions, 1);
    assert!(snap.decisions.is_empty() && snap.deliveries.is_empty());
    assert_eq!(snap.stored_bytes, 0);
    assert_eq!(snap.route_calls, 1);
    assert_eq!(snap.quota_remaining[APP], 9);
    let mut c = client(&relay).await;
    let err = outcome(&mut c, TOKEN, "d1", "alice").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_restart_maps_the_configuration_onto_what_was_kept() {
    let dir = tempfile::tempdir().unwrap();
    let first = vec![
        AppConfig::new(TOKEN, APP, 10).with_identity("alice", vec![DevicePolicy::Approve]),
        AppConfig::new("tok-gone", "app-gone", 3),
    ];
    let relay = start_in(dir.path(), first).await;
    let alice = relay.device_ids(APP, "alice");
    assert!(relay.set_quota_remaining(APP, 7));
    let mut c = client(&relay).await;
    let registered = {
        let key = device_key(&mut c, TOKEN, "alice", &alice[0]).await;
        relay.register_device(APP, "bob", &key).unwrap()
    };
    drop(c);
    relay.shutdown().await;

    // Another token and quota for the app, one more device for alice with another policy
    // first, a new app; the app missing from the configuration stays.
    let second = vec![
        AppConfig::new("tok-new", APP, 500)
            .with_identity("alice", vec![DevicePolicy::Reject, DevicePolicy::Ignore]),
        AppConfig::new("tok-other", "app-other", 2).with_status(AppStatus::Suspended),
    ];
    let relay = start_in(dir.path(), second).await;
    let ids = relay.device_ids(APP, "alice");
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], alice[0], "the first device keeps its id and keys");
    assert_eq!(relay.device_ids(APP, "bob"), vec![registered]);
    assert_eq!(relay.quota(APP), Some((10, 7, AppStatus::Active)));
    assert_eq!(relay.quota("app-other"), Some((2, 2, AppStatus::Suspended)));
    assert_eq!(relay.quota("app-gone"), Some((3, 3, AppStatus::Active)));
    let mut c = client(&relay).await;
    assert_eq!(
        quota(&mut c, TOKEN).await.unwrap_err().code(),
        Code::Unauthenticated,
        "the configuration's token replaces the old one"
    );
    assert_eq!(quota(&mut c, "tok-new").await.unwrap().quota_remaining, 7);
    assert_eq!(
        quota(&mut c, "tok-gone").await.unwrap().app_name,
        "app-gone"
    );
    // The first device now rejects, as configured.
    let key = device_key(&mut c, "tok-new", "alice", &ids[0]).await;
    let req = route_request(&key, &ids[0], "r", "d", 60, PAYLOAD);
    route(&mut c, "tok-new", req).await.unwrap();
    let r = wait_terminal(&mut c, "tok-new", "d", "alice").await;
    assert_eq!(r.outcome, DecisionOutcome::Rejected as i32);
    drop(c);
    relay.shutdown().await;

    // A token that another kept app holds is refused clearly.
    let clash = vec![AppConfig::new("tok-gone", APP, 1)];
    let err = DevRelay::start(config(dir.path(), clash))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DevRelayError::Config(m) if m.contains("app-gone")),
        "{err}"
    );
}

/// Writes a big-endian u32 into the database header (offset 60: user_version, 68:
/// application_id).
fn patch_header(db: &Path, offset: u64, value: u32) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&value.to_be_bytes()).unwrap();
}

#[tokio::test]
async fn an_incompatible_or_foreign_database_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_in(dir.path(), apps()).await;
    relay.shutdown().await;
    let db = dir.path().join(STATE_DB_FILE);
    assert!(
        !dir.path().join(format!("{STATE_DB_FILE}-wal")).exists(),
        "a clean stop checkpoints and removes the WAL"
    );
    // The first start created the schema, with its version.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let version: i64 = c
            .query_row("SELECT user_version FROM pragma_user_version", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let devices: i64 = c
            .query_row("SELECT count(*) FROM devices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(devices, 4);
    }

    patch_header(&db, 60, 99);
    let err = DevRelay::start(config(dir.path(), apps()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DevRelayError::Storage(_)), "{msg}");
    assert!(msg.contains("schema version 99"), "{msg}");
    assert!(msg.contains(&db.display().to_string()), "{msg}");
    assert!(msg.contains("delete"), "{msg}");

    patch_header(&db, 60, 1);
    patch_header(&db, 68, 0x1234);
    let msg = DevRelay::start(config(dir.path(), apps()))
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a noxy-devrelay database"), "{msg}");

    std::fs::write(
        &db,
        b"this is not a database, just a file of text long enough",
    )
    .unwrap();
    let msg = DevRelay::start(config(dir.path(), apps()))
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a noxy-devrelay database"), "{msg}");
    assert!(msg.contains("delete"), "{msg}");

    // Deleting it, as the message says, starts afresh.
    std::fs::remove_file(&db).unwrap();
    let relay = start_in(dir.path(), apps()).await;
    assert_eq!(relay.decision_count(), 0);
    relay.shutdown().await;
}

#[tokio::test]
async fn one_relay_per_database_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(STATE_DB_FILE);
    // An existing database open to others is restricted.
    {
        let relay = start_in(dir.path(), apps()).await;
        relay.shutdown().await;
    }
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let relay = start_in(dir.path(), apps()).await;
    assert_eq!(mode(&db), 0o600);

    let err = DevRelay::start(config(dir.path(), apps()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("in use by another noxy-devrelay"), "{msg}");
    // The first one still works, and once it is dropped the database is free at once.
    assert_eq!(relay.device_ids(APP, "alice").len(), 1);
    drop(relay);
    let relay = start_in(dir.path(), apps()).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn the_library_default_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = DevRelay::start(DevRelayConfig {
        apps: apps(),
        state_dir: Some(dir.path().to_path_buf()),
        ..DevRelayConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(relay.storage(), &Storage::InMemory);
    relay.shutdown().await;
    assert!(!dir.path().join(STATE_DB_FILE).exists());
}

/// A browser device added from the device page is kept like a simulated one: same id and key
/// pair after a restart, so that the page still decrypts what agents routed to it before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_device_added_from_the_page_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_in(dir.path(), apps()).await;
    let url = format!(
        "{}/v1/page/apps/{APP}/identities/pat/browser-devices",
        relay.http_url()
    );
    let (status, body) = http(&relay, "POST", url, Some(serde_json::json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let device = body["device_id"].as_str().unwrap().to_string();
    let mut c = client(&relay).await;
    let key = device_key(&mut c, TOKEN, "pat", &device).await;
    drop(c);
    relay.shutdown().await;

    let relay = start_in(dir.path(), apps()).await;
    assert_eq!(relay.device_ids(APP, "pat"), vec![device.clone()]);
    let mut c = client(&relay).await;
    assert_eq!(device_key(&mut c, TOKEN, "pat", &device).await, key);
}
