//! The `noxy-devrelay` binary: documented flags, port 0 and the ready file.

mod common;

use common::{wait_for_ready_file, Child};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

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
        "--in-memory",
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
        "--fault-close-before",
        "--fault-close-after",
        "--fault-goaway-before",
        "--fault-goaway-after",
        "--allow-non-loopback",
        "--eviction-grace",
        "--max-inbox",
        "--max-stored-mib",
        "--max-devices-per-identity",
        "--max-registered-devices",
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

/// Starts the binary on port 0 and waits (bounded) for its ready file; returns the child
/// (its stdout piped), the ready file's JSON and the token line the binary printed.
fn spawn(state: &std::path::Path, ready: &std::path::Path) -> (Child, serde_json::Value, String) {
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
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let mut child = Child(child);
    let json = wait_for_ready_file(ready, None);
    // The banner is printed before the ready file is written, so these lines are there.
    let stdout = child.0.stdout.take().expect("piped");
    let token_line = BufReader::new(stdout)
        .lines()
        .map(|l| l.expect("stdout"))
        .find(|l| l.trim_start().starts_with("token:"))
        .expect("the banner shows the token");
    (child, json, token_line)
}

fn mode(path: impl AsRef<std::path::Path>) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn starts_on_port_zero_writes_ready_file_and_reuses_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ready = dir.path().join("ready.json");
    let (child, info, token_line) = spawn(&state, &ready);
    let endpoint = info["endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("https://127.0.0.1:"));
    assert!(!endpoint.ends_with(":0"));
    let http_url = info["http_url"].as_str().unwrap().to_string();
    assert!(http_url.starts_with("http://127.0.0.1:"));
    let token = info["http_token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert!(token_line.contains(&token), "{token_line}");
    let ca_path = info["ca_path"].as_str().unwrap().to_string();
    let ca = std::fs::read_to_string(&ca_path).unwrap();
    assert!(ca.contains("BEGIN CERTIFICATE"));

    // Who may read what: the ready file holds the token, the directory a CA key.
    assert_eq!(mode(&ready), 0o600, "ready file");
    assert_eq!(mode(&state), 0o700, "state directory");
    assert_eq!(mode(state.join("ca.key")), 0o600);
    assert_eq!(mode(state.join("server.key")), 0o600);
    assert_eq!(mode(state.join("ca.pem")), 0o644);
    assert_eq!(
        std::fs::read_to_string(state.join(".gitignore"))
            .unwrap()
            .lines()
            .last(),
        Some("*")
    );
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let mut c = common::client_for(&endpoint, &ca).await;
    let q = common::quota(&mut c, "tok-1").await.unwrap();
    assert_eq!((q.app_name.as_str(), q.quota_total), ("bin-app", 5));
    // The HTTP API takes the ready file's token.
    let (status, _) = common::http_with(
        "GET",
        format!("{http_url}/v1/inspect"),
        None,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(status, 200);
    drop(c);
    drop(child);

    // A second start with the same state directory reuses the CA, with a new token.
    std::fs::remove_file(&ready).unwrap();
    let (_child, info, _) = spawn(&state, &ready);
    let ca2 = std::fs::read_to_string(info["ca_path"].as_str().unwrap()).unwrap();
    assert_eq!(ca, ca2);
    assert_ne!(info["http_token"].as_str().unwrap(), token);
    let mut c = common::client_for(info["endpoint"].as_str().unwrap(), &ca2).await;
    assert!(common::quota(&mut c, "tok-1").await.is_ok());
}

#[test]
fn a_non_loopback_address_needs_the_flag_and_then_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--listen", "0.0.0.0:0", "--http-listen", "0.0.0.0:0"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("--allow-non-loopback"), "{stderr}");

    // Allowed explicitly: it starts (nothing connects to it here) and says so loudly.
    let ready = dir.path().join("ready.json");
    let child = Command::new(BIN)
        .args([
            "--allow-non-loopback",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "0.0.0.0:0",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut child = Child(child);
    let info = wait_for_ready_file(&ready, None);
    assert!(info["http_url"]
        .as_str()
        .unwrap()
        .starts_with("http://0.0.0.0:"));
    // Stop it, then read everything it wrote to stderr.
    let mut stderr = child.0.stderr.take().unwrap();
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
    assert!(
        text.contains("WARNING: noxy-devrelay listens on a non-loopback address"),
        "{text}"
    );
}
