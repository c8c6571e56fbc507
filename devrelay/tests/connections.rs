//! The relay's HTTP/2 connections: heavy load on one connection, and connection-level
//! faults (abrupt close, GOAWAY) before and after the relay acts, seen by a plain tonic
//! client.

mod common;

use common::*;
use noxy_devrelay::proto::DeliveryStatus;
use noxy_devrelay::{AppConfig, DevRelay, DevicePolicy, FailWhen, FaultConfig};
use tonic::Code;

const TOKEN: &str = "token-c";
const APP: &str = "app-c";

async fn relay() -> DevRelay {
    start(vec![
        AppConfig::new(TOKEN, APP, 100).with_identity("ann", vec![DevicePolicy::Ignore])
    ])
    .await
}

/// How many concurrent calls the load test fires. 10 000 even in a debug build (about 7 s on
/// two cores): with the HTTP/2 settings of tonic's server (no stream limit, 1 MiB connection
/// window) this test fails at about 7 800 streams with `GOAWAY ENHANCE_YOUR_CALM
/// "too_many_data_frames"`, while 3 000 pass, so fewer calls would not guard the settings.
const LOAD_CALLS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_calls_on_one_connection_all_succeed() {
    let relay = relay().await;
    let c = client(&relay).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..LOAD_CALLS {
        let mut c = c.clone();
        calls.spawn(async move { quota(&mut c, TOKEN).await });
    }
    let mut ok = 0;
    while let Some(done) = calls.join_next().await {
        let answer = done.expect("task").expect("every call succeeds");
        assert_eq!(answer.app_name, APP);
        ok += 1;
    }
    assert_eq!(ok, LOAD_CALLS);
    assert_eq!(
        relay.inspect().connections_accepted,
        1,
        "one connection carried them all: the relay never closed it"
    );
    relay.shutdown().await;
}

/// Routes to ann's device with a fixed request id.
async fn route_ann(
    relay: &DevRelay,
    c: &mut Grpc,
    request_id: &str,
) -> Result<DeliveryStatus, tonic::Status> {
    let device = relay.device_ids(APP, "ann")[0].clone();
    let key = device_key(c, TOKEN, "ann", &device).await;
    let req = route_request(&key, &device, request_id, "dec-c", 60, PAYLOAD);
    route(c, TOKEN, req)
        .await
        .map(|out| DeliveryStatus::try_from(out.status).expect("a known status"))
}

/// The error a client sees when its call's connection goes away under it: tonic reports the
/// TLS stream's end (no close_notify) as an I/O error of the transport.
fn assert_connection_error(err: &tonic::Status) {
    assert!(
        matches!(err.code(), Code::Unknown | Code::Unavailable),
        "{err:?}"
    );
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let mut kind = None;
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            kind = Some(io.kind());
        }
        source = e.source();
    }
    use std::io::ErrorKind::*;
    assert!(
        matches!(
            kind,
            Some(UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted)
        ),
        "the connection ended under the call: {err:?}"
    );
}

/// One connection fault on RouteDecision: what the client sees, what the relay did, and
/// that the client's retry (same request id, new connection) gets the right answer.
async fn connection_fault(when: FailWhen, acted: bool) -> tonic::Status {
    let relay = relay().await;
    let mut c = client(&relay).await;
    // The device key is fetched before the fault is armed (it takes a call of its own).
    let device = relay.device_ids(APP, "ann")[0].clone();
    let key = device_key(&mut c, TOKEN, "ann", &device).await;
    let req = route_request(&key, &device, "req-c", "dec-c", 60, PAYLOAD);
    assert_eq!(relay.inspect().connections_accepted, 1);

    relay.fail_next("RouteDecision", 1, when);
    let err = route(&mut c, TOKEN, req.clone()).await.unwrap_err();
    let snap = relay.inspect();
    if acted {
        assert_eq!(snap.deliveries.len(), 1, "{when:?}: delivered once");
        assert_eq!(snap.quota_remaining[APP], 99, "{when:?}: charged once");
    } else {
        assert!(snap.deliveries.is_empty(), "{when:?}: nothing delivered");
        assert_eq!(snap.quota_remaining[APP], 100, "{when:?}: nothing charged");
    }

    // The retry goes over a new connection and gets the stored (or a first) answer.
    let out = route(&mut c, TOKEN, req).await.expect("the retry succeeds");
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    assert_eq!(out.decision_id, "dec-c");
    let snap = relay.inspect();
    assert_eq!(snap.deliveries.len(), 1, "{when:?}: never delivered twice");
    assert_eq!(
        snap.quota_remaining[APP], 99,
        "{when:?}: never charged twice"
    );
    assert_eq!(snap.route_calls, 2);
    assert_eq!(
        snap.connections_accepted, 2,
        "{when:?}: the first connection is gone"
    );
    assert!(route_ann(&relay, &mut c, "req-c2").await.is_ok());
    relay.shutdown().await;
    err
}

#[tokio::test]
async fn a_connection_closed_before_acting_delivers_nothing() {
    let err = connection_fault(FailWhen::CloseConnectionBeforeActing, false).await;
    assert_connection_error(&err);
}

#[tokio::test]
async fn a_connection_closed_after_acting_delivered_once() {
    let err = connection_fault(FailWhen::CloseConnectionAfterActing, true).await;
    assert_connection_error(&err);
}

#[tokio::test]
async fn a_goaway_before_acting_refuses_the_stream() {
    let err = connection_fault(FailWhen::GoawayBeforeActing, false).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(
        h2_reason(&err),
        Some(h2::Reason::REFUSED_STREAM),
        "HTTP/2's \"not processed, safe to retry\": {err:?}"
    );
}

/// The HTTP/2 reason of a stream or connection error, found in the status's sources.
fn h2_reason(err: &tonic::Status) -> Option<h2::Reason> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason();
        }
        source = e.source();
    }
    None
}

#[tokio::test]
async fn a_goaway_after_acting_delivered_once_and_lost_the_answer() {
    let err = connection_fault(FailWhen::GoawayAfterActing, true).await;
    assert_connection_error(&err);
}

#[tokio::test]
async fn a_goaway_lets_the_other_calls_of_the_connection_finish() {
    let relay = relay().await;
    let c = client(&relay).await;
    // A slow call in flight on the connection when the GOAWAY comes...
    relay.set_faults(FaultConfig {
        latency: std::time::Duration::from_millis(300),
        methods: Some(vec!["RouteDecision".into()]),
        ..FaultConfig::default()
    });
    let slow = tokio::spawn({
        let mut c = c.clone();
        let relay_device = relay.device_ids(APP, "ann")[0].clone();
        let key = device_key(&mut c.clone(), TOKEN, "ann", &relay_device).await;
        async move {
            let req = route_request(&key, &relay_device, "req-slow", "dec-slow", 60, PAYLOAD);
            route(&mut c, TOKEN, req).await
        }
    });
    // (The relay counts a RouteDecision before its injected latency.)
    assert!(relay.wait_for(WAIT, |i| i.route_calls == 1).await);
    relay.fail_next("GetQuota", 1, FailWhen::GoawayBeforeActing);
    let mut c2 = c.clone();
    let err = quota(&mut c2, TOKEN).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // ...finishes normally.
    let out = slow.await.unwrap().expect("the in-flight call finishes");
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    relay.set_faults(FaultConfig::default());
    assert!(quota(&mut c2, TOKEN).await.is_ok());
    assert_eq!(relay.inspect().connections_accepted, 2);
}

#[tokio::test]
async fn random_connection_faults_apply_from_the_fault_config() {
    let relay = relay().await;
    let mut c = client(&relay).await;
    relay.set_faults(FaultConfig {
        close_after_fraction: 1.0,
        methods: Some(vec!["GetQuota".into()]),
        ..FaultConfig::default()
    });
    for round in 1..=3 {
        let err = quota(&mut c, TOKEN).await.unwrap_err();
        assert_connection_error(&err);
        assert_eq!(relay.inspect().connections_accepted, round);
    }
    relay.set_faults(FaultConfig {
        goaway_before_fraction: 1.0,
        methods: Some(vec!["GetQuota".into()]),
        ..FaultConfig::default()
    });
    let err = quota(&mut c, TOKEN).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    relay.set_faults(FaultConfig::default());
    assert!(quota(&mut c, TOKEN).await.is_ok());
}
