//! The `noxy-devrelay` binary killed with SIGKILL (then stopped with SIGTERM) and restarted on
//! the same ports and state directory: every answered request id keeps its answer, every
//! decision its charge and outcome, queued stays queued, deadlines and device timers go on.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use noxy_devrelay::proto::{DecisionOutcome, DeliveryStatus};

const BIN: &str = env!("CARGO_BIN_EXE_noxy-devrelay");
const TOKEN: &str = "tok-b";

fn spawn(state: &Path, ready: &Path, listen: &str, http_listen: &str) -> Child {
    let child = Command::new(BIN)
        .args(["--listen", listen, "--http-listen", http_listen])
        .arg("--state-dir")
        .arg(state)
        .arg("--ready-file")
        .arg(ready)
        .args([
            "--app",
            "tok-b:app-b:10",
            "--identity",
            "app-b:alice:approve",
            "--identity",
            "app-b:olivia:offline",
            "--identity",
            "app-b:ian:ignore",
            "--identity",
            "app-b:slow:approve-after=4000",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    Child(child)
}

/// Every device of `identity`: (device id, ML-KEM public key).
async fn devices(c: &mut Grpc, identity: &str) -> Vec<(String, Vec<u8>)> {
    identity_devices(c, TOKEN, identity)
        .await
        .expect("GetIdentityDevices")
        .into_iter()
        .map(|d| (d.device_id, d.pq_public_key))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_sigkill_and_restarted_on_the_same_port_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ready = dir.path().join("ready.json");
    let mut child = spawn(&state, &ready, "127.0.0.1:0", "127.0.0.1:0");
    let info = wait_for_ready_file(&ready, None);
    let endpoint = info["endpoint"].as_str().unwrap().to_string();
    let http_url = info["http_url"].as_str().unwrap().to_string();
    let token = info["http_token"].as_str().unwrap().to_string();
    let ca = std::fs::read_to_string(info["ca_path"].as_str().unwrap()).unwrap();
    let mut c = client_for(&endpoint, &ca).await;

    let mut keys = Vec::new();
    for identity in ["alice", "olivia", "ian", "slow"] {
        let d = devices(&mut c, identity).await;
        assert_eq!(d.len(), 1);
        keys.push(d[0].clone());
    }
    let req = |i: usize, request_id: &str, decision_id: &str, ttl: u32| {
        route_request(
            &keys[i].1,
            &keys[i].0,
            request_id,
            decision_id,
            ttl,
            PAYLOAD,
        )
    };
    let approved = route(&mut c, TOKEN, req(0, "r-approved", "", 60))
        .await
        .unwrap();
    let r = wait_terminal(&mut c, TOKEN, &approved.decision_id, "alice").await;
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
    let queued = route(&mut c, TOKEN, req(1, "r-queued", "d-q", 60))
        .await
        .unwrap();
    assert_eq!(queued.status, DeliveryStatus::Queued as i32);
    let routed_at = Instant::now();
    let expiring = route(&mut c, TOKEN, req(2, "r-exp", "d-exp", 4))
        .await
        .unwrap();
    assert_eq!(expiring.status, DeliveryStatus::Delivered as i32);
    let slow = route(&mut c, TOKEN, req(3, "r-slow", "d-slow", 60))
        .await
        .unwrap();
    assert_eq!(slow.status, DeliveryStatus::Delivered as i32);
    assert!(
        outcome(&mut c, TOKEN, "d-slow", "slow")
            .await
            .unwrap()
            .pending
    );
    assert_eq!(quota(&mut c, TOKEN).await.unwrap().quota_remaining, 6);
    drop(c);

    // SIGKILL: no shutdown, no final write.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let grpc_port = endpoint.rsplit(':').next().unwrap().to_string();
    let http_port = http_url.rsplit(':').next().unwrap().to_string();
    let listen = format!("127.0.0.1:{grpc_port}");
    let http_listen = format!("127.0.0.1:{http_port}");
    let mut child = spawn(&state, &ready, &listen, &http_listen);
    let info = wait_for_ready_file(&ready, Some(&token));
    assert_eq!(
        info["endpoint"].as_str().unwrap(),
        endpoint,
        "the same port"
    );
    let token = info["http_token"].as_str().unwrap().to_string();
    let mut c = client_for(&endpoint, &ca).await;

    for (i, identity) in ["alice", "olivia", "ian", "slow"].iter().enumerate() {
        assert_eq!(devices(&mut c, identity).await, vec![keys[i].clone()]);
    }
    // The same request ids, the same answers; nothing charged again.
    let again = route(&mut c, TOKEN, req(0, "r-approved", "", 60))
        .await
        .unwrap();
    assert_eq!(
        (again.status, again.decision_id),
        (approved.status, approved.decision_id.clone())
    );
    let again = route(&mut c, TOKEN, req(1, "r-queued", "d-q", 60))
        .await
        .unwrap();
    assert_eq!(again.status, DeliveryStatus::Queued as i32);
    let again = route(&mut c, TOKEN, req(2, "r-exp", "d-exp", 4))
        .await
        .unwrap();
    assert_eq!(again.status, DeliveryStatus::Delivered as i32);
    assert_eq!(quota(&mut c, TOKEN).await.unwrap().quota_remaining, 6);
    let r = outcome(&mut c, TOKEN, &approved.decision_id, "alice")
        .await
        .unwrap();
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);

    // The TTL and the device's timer go on from where they were.
    let r = wait_terminal(&mut c, TOKEN, "d-exp", "ian").await;
    assert_eq!(r.outcome, DecisionOutcome::Expired as i32);
    assert!(routed_at.elapsed() >= Duration::from_millis(3990));
    let r = wait_terminal(&mut c, TOKEN, "d-slow", "slow").await;
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);

    // Still queued; delivered (and approved) once the device comes online.
    assert!(
        outcome(&mut c, TOKEN, "d-q", "olivia")
            .await
            .unwrap()
            .pending
    );
    let auth = format!("Bearer {token}");
    let (status, _) = http_with(
        "POST",
        format!("{http_url}/v1/devices/{}/online", keys[1].0),
        Some(r#"{"online":true}"#.into()),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let r = wait_terminal(&mut c, TOKEN, "d-q", "olivia").await;
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
    let (status, inspection) = http_with(
        "GET",
        format!("{http_url}/v1/inspect"),
        None,
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(inspection["decrypt_failures"], 0);
    assert_eq!(inspection["quota_remaining"]["app-b"], 6);
    assert_eq!(inspection["deliveries"].as_array().unwrap().len(), 4);
    drop(c);

    // SIGTERM: an orderly stop, which closes the database (and removes its WAL file).
    let pid = rustix::process::Pid::from_child(&child.0);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert!(child.0.wait().unwrap().success());
    assert!(state.join("relay.db").exists());
    assert!(!state.join("relay.db-wal").exists());
    let _child = spawn(&state, &ready, &listen, &http_listen);
    wait_for_ready_file(&ready, Some(&token));
    let mut c = client_for(&endpoint, &ca).await;
    assert_eq!(quota(&mut c, TOKEN).await.unwrap().quota_remaining, 6);
    let r = outcome(&mut c, TOKEN, "d-q", "olivia").await.unwrap();
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
}
