//! What the state database costs: RouteDecision calls per second in memory and with SQLite,
//! and how long a start takes with 10 000 decisions held. A measurement, not a check, so it
//! is ignored by default; run it in a release build:
//!
//! ```sh
//! cargo test --release -p noxy-devrelay --test persistence_cost -- --ignored --nocapture
//! ```

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use noxy_devrelay::proto::{DeliveryStatus, RouteDecisionRequest};
use noxy_devrelay::{
    AppConfig, DevRelay, DevRelayConfig, DevicePolicy, Limits, Storage, KYBER_CT_LEN, NONCE_LEN,
};

const N: usize = 10_000;
const CONCURRENCY: usize = 64;
const TOKEN: &str = "tok-cost";
const APP: &str = "app-cost";

fn config(dir: &Path, storage: Storage) -> DevRelayConfig {
    DevRelayConfig {
        apps: vec![
            AppConfig::new(TOKEN, APP, 1_000_000).with_identity("sim", vec![DevicePolicy::Approve])
        ],
        state_dir: Some(dir.to_path_buf()),
        storage,
        limits: Limits {
            max_inbox_entries: 10 * N,
            ..Limits::default()
        },
        ..DevRelayConfig::default()
    }
}

/// Sends every request, `CONCURRENCY` at a time over one connection; returns calls per second.
async fn route_all(c: &Grpc, requests: Vec<RouteDecisionRequest>) -> f64 {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (mut c, requests, next) = (c.clone(), requests.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { return };
                let out = route(&mut c, TOKEN, req.clone()).await.expect("routed");
                assert_eq!(out.status, DeliveryStatus::Delivered as i32);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    requests.len() as f64 / started.elapsed().as_secs_f64()
}

/// `N` requests for a device registered over HTTP (the relay only stores them: the cost of
/// RouteDecision itself).
fn opaque_requests(device: &str, tag: &str) -> Vec<RouteDecisionRequest> {
    (0..N)
        .map(|i| RouteDecisionRequest {
            request_id: format!("{tag}-r{i}"),
            ciphertext: vec![7; 256],
            ttl_seconds: 600,
            target_device_id: device.into(),
            kyber_ct: vec![3; KYBER_CT_LEN],
            nonce: vec![0; NONCE_LEN],
            decision_id: format!("{tag}-d{i}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it in a release build with --ignored --nocapture"]
async fn route_throughput_and_start_time_with_and_without_the_database() {
    for (label, file) in [("in memory", false), ("SQLite", true)] {
        let dir = tempfile::tempdir().unwrap();
        let storage = if file {
            Storage::in_state_dir(dir.path())
        } else {
            Storage::InMemory
        };
        let relay = DevRelay::start(config(dir.path(), storage.clone()))
            .await
            .unwrap();
        let mut c = client(&relay).await;
        let sim = relay.device_ids(APP, "sim")[0].clone();
        let key = device_key(&mut c, TOKEN, "sim", &sim).await;
        let registered = relay.register_device(APP, "agent", &key).unwrap();

        // 1. RouteDecision alone: N decisions to a registered device, all pending.
        let stored = route_all(&c, opaque_requests(&registered, "opaque")).await;

        // 2. A simulated device that decrypts and approves each decision: RouteDecision,
        //    then the device's record and answer (three transactions with the database).
        let encrypted: Vec<_> = (0..N)
            .map(|i| {
                route_request(
                    &key,
                    &sim,
                    &format!("sim-r{i}"),
                    &format!("sim-d{i}"),
                    600,
                    PAYLOAD,
                )
            })
            .collect();
        let started = Instant::now();
        let simulated = route_all(&c, encrypted).await;
        assert!(
            relay
                .wait_for(Duration::from_secs(120), |i| i
                    .decisions
                    .iter()
                    .filter(|d| d.outcome == "APPROVED")
                    .count()
                    == N)
                .await
        );
        let all_approved = started.elapsed();
        println!(
            "{label}: RouteDecision to a registered device {stored:.0} calls/s; to a simulated \
             approving device {simulated:.0} calls/s, all {N} approved after {all_approved:.2?}"
        );
        drop(c);
        relay.shutdown().await;

        if file {
            let size = std::fs::metadata(dir.path().join("relay.db"))
                .unwrap()
                .len();
            let started = Instant::now();
            let relay = DevRelay::start(config(dir.path(), storage)).await.unwrap();
            let took = started.elapsed();
            assert_eq!(relay.decision_count(), 2 * N);
            println!(
                "{label}: start with {} decisions ({N} pending), {} MiB database: {took:.2?}",
                2 * N,
                size >> 20
            );
            relay.shutdown().await;
        }
    }
}
