//! Shared set-up of the integration tests: a development relay on loopback with known apps,
//! identities and simulated devices, and clients that trust its CA.

#![allow(dead_code)] // each test binary uses a different part

use std::time::Duration;

use noxy::{Client, ClientConfig, RetryPolicy};
use noxy_devrelay::{AppConfig, DevRelay, DevRelayConfig, DevicePolicy};

pub const TOKEN: &str = "tok-main";
pub const APP: &str = "app-main";
pub const LOW_TOKEN: &str = "tok-low";
pub const LOW_APP: &str = "app-low";
pub const OTHER_TOKEN: &str = "tok-other";
pub const OTHER_APP: &str = "app-other";

/// A bound for waits in tests that should finish almost at once: generous, so that a slow CI
/// machine never fails a correct test, but finite, so that a broken one fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub async fn start_relay() -> DevRelay {
    let main = AppConfig::new(TOKEN, APP, 1000)
        .with_identity("alice", vec![DevicePolicy::Approve])
        .with_identity("bob", vec![DevicePolicy::Reject])
        .with_identity("carol", vec![DevicePolicy::Ignore])
        .with_identity(
            "team",
            vec![
                DevicePolicy::Ignore,
                DevicePolicy::Approve,
                DevicePolicy::RejectAfter(Duration::from_secs(30)),
            ],
        )
        .with_identity(
            "slow",
            vec![DevicePolicy::ApproveAfter(Duration::from_secs(300))],
        )
        .with_identity(
            "later",
            vec![DevicePolicy::ApproveAfter(Duration::from_millis(300))],
        )
        .with_identity(
            "away",
            vec![DevicePolicy::Offline(Box::new(DevicePolicy::Approve))],
        );
    let low =
        AppConfig::new(LOW_TOKEN, LOW_APP, 1).with_identity("erin", vec![DevicePolicy::Approve]);
    let other = AppConfig::new(OTHER_TOKEN, OTHER_APP, 1000)
        .with_identity("alice", vec![DevicePolicy::Approve]);
    DevRelay::start(DevRelayConfig {
        apps: vec![main, low, other],
        ..DevRelayConfig::default()
    })
    .await
    .expect("the development relay starts")
}

pub fn config(relay: &DevRelay, token: &str) -> ClientConfig {
    let mut config = ClientConfig::new(relay.endpoint(), token);
    config.ca_pem = Some(relay.ca_pem());
    config.retry = RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    config
}

pub fn client(relay: &DevRelay, token: &str) -> Client {
    Client::new(config(relay, token)).expect("a valid configuration")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fast polling, for tests: the defaults (400 ms, ×1.6) would only slow the suite down.
pub fn quick_wait() -> noxy::WaitOptions {
    noxy::WaitOptions {
        initial_interval: Duration::from_millis(20),
        multiplier: 1.5,
        max_interval: Duration::from_millis(200),
        max_wait: PATIENCE,
        ..noxy::WaitOptions::default()
    }
}
