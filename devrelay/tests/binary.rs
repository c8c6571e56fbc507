//! The `noxy-devrelay` binary: documented flags, port 0 and the ready file.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_noxy-devrelay");

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--http-listen",
        "--state-dir",
        "--app",
        "--identity",
        "--config",
        "--ready-file",
        "--fault-seed",
        "--fault-unavailable-before",
        "--fault-unavailable-after",
        "--fault-latency-ms",
        "--fault-stall",
        "--fault-methods",
        "--log-level",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn bad_flags_fail_cleanly() {
    let out = Command::new(BIN)
        .args([
            "--app",
            "only-a-token",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--app"));
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on port 0 and waits (bounded) for its ready file.
fn spawn(state: &std::path::Path, ready: &std::path::Path) -> (Child, serde_json::Value) {
    let child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state)
        .arg("--ready-file")
        .arg(ready)
        .args([
            "--app",
            "tok-1:bin-app:5",
            "--identity",
            "bin-app:bin-user:approve",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let child = Child(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(ready) {
            let json: serde_json::Value = serde_json::from_str(&text).expect("ready file is JSON");
            return (child, json);
        }
        assert!(Instant::now() < deadline, "no ready file");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn starts_on_port_zero_writes_ready_file_and_reuses_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ready = dir.path().join("ready.json");
    let (child, info) = spawn(&state, &ready);
    let endpoint = info["endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("https://127.0.0.1:"));
    assert!(!endpoint.ends_with(":0"));
    assert!(info["http_url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    let ca_path = info["ca_path"].as_str().unwrap().to_string();
    let ca = std::fs::read_to_string(&ca_path).unwrap();
    assert!(ca.contains("BEGIN CERTIFICATE"));

    let mut c = common::client_for(&endpoint, &ca).await;
    let q = common::quota(&mut c, "tok-1").await.unwrap();
    assert_eq!((q.app_name.as_str(), q.quota_total), ("bin-app", 5));
    drop(c);
    drop(child);

    // A second start with the same state directory reuses the CA.
    std::fs::remove_file(&ready).unwrap();
    let (_child, info) = spawn(&state, &ready);
    let ca2 = std::fs::read_to_string(info["ca_path"].as_str().unwrap()).unwrap();
    assert_eq!(ca, ca2);
    let mut c = common::client_for(info["endpoint"].as_str().unwrap(), &ca2).await;
    assert!(common::quota(&mut c, "tok-1").await.is_ok());
}
