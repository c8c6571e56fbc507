//! The relay's own semantics, through a real gRPC client over TLS.

mod common;

use std::time::{Duration, Instant};

use common::*;
use noxy_devrelay::proto::{
    DecisionOutcome, DeliveryStatus, GetIdentityDevicesRequest, GetQuotaRequest, QuotaStatus,
    RouteDecisionRequest,
};
use noxy_devrelay::{AppConfig, AppStatus, DevicePolicy, FailWhen, FaultConfig};
use tonic::Code;

const TOKEN: &str = "token-a";
const APP: &str = "app-a";

fn app(identity: &str, devices: Vec<DevicePolicy>) -> AppConfig {
    AppConfig::new(TOKEN, APP, 100).with_identity(identity, devices)
}

const MAIN: (&str, &str) = (TOKEN, APP);

#[tokio::test]
async fn approve_device_approves_after_decrypting() {
    let relay = start(vec![app("alice", vec![DevicePolicy::Approve])]).await;
    let mut c = client(&relay).await;

    let devices = c
        .get_identity_devices(authed(
            TOKEN,
            GetIdentityDevicesRequest {
                request_id: "r0".into(),
                identity_id: "alice".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(devices.request_id, "r0");
    assert_eq!(devices.devices.len(), 1);
    assert_eq!(devices.devices[0].pq_public_key.len(), 1184);
    assert_eq!(devices.devices[0].public_key.len(), 32);
    assert_eq!(
        relay.device_ids(APP, "alice"),
        vec![devices.devices[0].device_id.clone()]
    );

    let (device, out) = route_first(&relay, &mut c, MAIN, "alice", "req-1", "dec-1", 60).await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    assert_eq!(out.request_id, "req-1");
    assert_eq!(out.decision_id, "dec-1");

    let r = wait_terminal(&mut c, TOKEN, "dec-1", "alice").await;
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
    assert_eq!(r.request_id, "poll");

    let snap = relay.inspect();
    assert_eq!(snap.decrypt_failures, 0);
    assert_eq!(snap.decrypted.len(), 1);
    assert_eq!(snap.decrypted[0].device_id, device);
    assert_eq!(snap.decrypted[0].plaintext_sha256_hex.len(), 64);
    assert_eq!(
        snap.decisions[0].answered_by.as_deref(),
        Some(device.as_str())
    );
    assert_eq!(snap.decisions[0].outcome, "APPROVED");
    assert_eq!(
        relay.wait_for_outcome(APP, "dec-1", WAIT).await.as_deref(),
        Some("APPROVED")
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn reject_device_rejects_and_empty_decision_id_is_generated() {
    let relay = start(vec![app("bob", vec![DevicePolicy::Reject])]).await;
    let mut c = client(&relay).await;
    let (_, out) = route_first(&relay, &mut c, MAIN, "bob", "req-1", "", 60).await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    assert_eq!(
        out.decision_id.len(),
        36,
        "a UUID was generated: {}",
        out.decision_id
    );
    let r = wait_terminal(&mut c, TOKEN, &out.decision_id, "bob").await;
    assert_eq!(r.outcome, DecisionOutcome::Rejected as i32);
    assert!(!r.pending);
}

#[tokio::test]
async fn repeated_request_id_returns_first_answer_without_delivering_or_charging_twice() {
    let relay = start(vec![app(
        "carol",
        vec![DevicePolicy::Ignore, DevicePolicy::Ignore],
    )])
    .await;
    let mut c = client(&relay).await;
    let ids = relay.device_ids(APP, "carol");
    let key0 = device_key(&mut c, TOKEN, "carol", &ids[0]).await;
    let key1 = device_key(&mut c, TOKEN, "carol", &ids[1]).await;

    let req = route_request(&key0, &ids[0], "req-same", "", 60, PAYLOAD);
    let first = route(&mut c, TOKEN, req.clone()).await.unwrap();
    let second = route(&mut c, TOKEN, req).await.unwrap();
    assert_eq!(
        first, second,
        "same request id, same answer (incl. generated decision id)"
    );
    // Even a different payload under the same request id changes nothing.
    let third = route(
        &mut c,
        TOKEN,
        route_request(&key0, &ids[0], "req-same", "other-decision", 60, PAYLOAD),
    )
    .await
    .unwrap();
    assert_eq!(first, third);

    // The second device of the same decision: new request id, same decision, no new charge.
    let other = route(
        &mut c,
        TOKEN,
        route_request(&key1, &ids[1], "req-other", &first.decision_id, 60, PAYLOAD),
    )
    .await
    .unwrap();
    assert_eq!(other.decision_id, first.decision_id);
    assert_eq!(other.status, DeliveryStatus::Delivered as i32);

    let snap = relay.inspect();
    assert_eq!(snap.route_calls, 4);
    assert_eq!(snap.deliveries.len(), 2);
    assert!(snap.deliveries.iter().all(|d| d.count == 1));
    assert_eq!(snap.decisions.len(), 1);
    assert_eq!(snap.quota_remaining[APP], 99);
    let q = quota(&mut c, TOKEN).await.unwrap();
    assert_eq!((q.quota_total, q.quota_remaining), (100, 99));
    assert_eq!(q.app_name, APP);
    assert_eq!(q.status, QuotaStatus::QuotaActive as i32);
}

#[tokio::test]
async fn unanswered_decision_expires_at_its_ttl() {
    let relay = start(vec![app("dave", vec![DevicePolicy::Ignore])]).await;
    let mut c = client(&relay).await;
    let started = Instant::now();
    let (_, out) = route_first(&relay, &mut c, MAIN, "dave", "req-1", "dec-exp", 1).await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    let r = outcome(&mut c, TOKEN, "dec-exp", "dave").await.unwrap();
    assert!(r.pending);
    assert_eq!(r.outcome, DecisionOutcome::Pending as i32);
    let r = wait_terminal(&mut c, TOKEN, "dec-exp", "dave").await;
    assert_eq!(r.outcome, DecisionOutcome::Expired as i32);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The ignoring device did decrypt it.
    assert_eq!(relay.inspect().decrypted.len(), 1);
}

#[tokio::test]
async fn apps_are_isolated() {
    let relay = start(vec![
        AppConfig::new("token-a", "app-a", 10).with_identity("alice", vec![DevicePolicy::Ignore]),
        AppConfig::new("token-b", "app-b", 10)
            .with_identity("alice", vec![DevicePolicy::Ignore])
            .with_identity("bob", vec![DevicePolicy::Ignore]),
    ])
    .await;
    let mut c = client(&relay).await;
    let (a_device, out) = route_first(
        &relay,
        &mut c,
        ("token-a", "app-a"),
        "alice",
        "r1",
        "dec-a",
        60,
    )
    .await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);

    // B cannot see A's decision, not even for the same identity id.
    let err = outcome(&mut c, "token-b", "dec-a", "alice")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Within A, the identity must match.
    let err = outcome(&mut c, "token-a", "dec-a", "bob")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        outcome(&mut c, "token-a", "dec-a", "alice")
            .await
            .unwrap()
            .pending
    );

    // B's "alice" is a different identity with its own devices.
    let b_alice = identity_devices(&mut c, "token-b", "alice").await.unwrap();
    assert_eq!(b_alice.len(), 1);
    assert_ne!(b_alice[0].device_id, a_device);
    // A does not see B's identity at all.
    let a_bob = identity_devices(&mut c, "token-a", "bob").await.unwrap();
    assert!(a_bob.is_empty());

    // B cannot route to A's device, and its request ids are its own.
    let key = device_key(&mut c, "token-a", "alice", &a_device).await;
    let out = route(
        &mut c,
        "token-b",
        route_request(&key, &a_device, "r1", "dec-b", 60, PAYLOAD),
    )
    .await
    .unwrap();
    assert_eq!(out.status, DeliveryStatus::NoDevices as i32);
    let snap = relay.inspect();
    assert_eq!(snap.quota_remaining["app-a"], 9);
    assert_eq!(
        snap.quota_remaining["app-b"], 10,
        "NO_DEVICES is not charged"
    );
    assert_eq!(snap.deliveries.len(), 1);
}

#[tokio::test]
async fn quota_exhaustion_and_suspension_reject() {
    let relay = start(vec![
        AppConfig::new(TOKEN, APP, 1).with_identity("erin", vec![DevicePolicy::Ignore]),
        AppConfig::new("token-s", "app-s", 10)
            .with_status(AppStatus::Suspended)
            .with_identity("sam", vec![DevicePolicy::Approve]),
    ])
    .await;
    let mut c = client(&relay).await;
    let (_, first) = route_first(&relay, &mut c, MAIN, "erin", "r1", "d1", 60).await;
    assert_eq!(first.status, DeliveryStatus::Delivered as i32);
    let (_, second) = route_first(&relay, &mut c, MAIN, "erin", "r2", "d2", 60).await;
    assert_eq!(second.status, DeliveryStatus::Rejected as i32);
    assert_eq!(second.decision_id, "d2");
    assert_eq!(
        outcome(&mut c, TOKEN, "d2", "erin")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let q = quota(&mut c, TOKEN).await.unwrap();
    assert_eq!((q.quota_total, q.quota_remaining), (1, 0));

    // Suspended app.
    let sam = relay.device_ids("app-s", "sam")[0].clone();
    let key = device_key(&mut c, "token-s", "sam", &sam).await;
    let out = route(
        &mut c,
        "token-s",
        route_request(&key, &sam, "r1", "ds", 60, PAYLOAD),
    )
    .await
    .unwrap();
    assert_eq!(out.status, DeliveryStatus::Rejected as i32);
    let q = quota(&mut c, "token-s").await.unwrap();
    assert_eq!(q.status, QuotaStatus::QuotaSuspended as i32);
    assert_eq!(q.quota_remaining, 10);

    // Reactivated at run time, a new request goes through; the rejected request id keeps its
    // first answer.
    assert!(relay.set_app_status("app-s", AppStatus::Active));
    let out = route(
        &mut c,
        "token-s",
        route_request(&key, &sam, "r2", "ds", 60, PAYLOAD),
    )
    .await
    .unwrap();
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    let out = route(
        &mut c,
        "token-s",
        route_request(&key, &sam, "r1", "ds", 60, PAYLOAD),
    )
    .await
    .unwrap();
    assert_eq!(out.status, DeliveryStatus::Rejected as i32);
    let r = wait_terminal(&mut c, "token-s", "ds", "sam").await;
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
}

#[tokio::test]
async fn first_answer_wins() {
    // The rejecting device is offline until the approving one has answered: no race on timing.
    let relay = start(vec![app(
        "fay",
        vec![
            DevicePolicy::Offline(Box::new(DevicePolicy::Reject)),
            DevicePolicy::Approve,
        ],
    )])
    .await;
    let mut c = client(&relay).await;
    let ids = relay.device_ids(APP, "fay");
    for (i, id) in ids.iter().enumerate() {
        let key = device_key(&mut c, TOKEN, "fay", id).await;
        route(
            &mut c,
            TOKEN,
            route_request(&key, id, &format!("r{i}"), "dec-faf", 60, PAYLOAD),
        )
        .await
        .unwrap();
    }
    let r = wait_terminal(&mut c, TOKEN, "dec-faf", "fay").await;
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
    // The rejecting device answers later; its answer is ignored.
    relay.set_device_online(&ids[0], true);
    assert!(relay.wait_for(WAIT, |i| i.late_answers == 1).await);
    let r = outcome(&mut c, TOKEN, "dec-faf", "fay").await.unwrap();
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
    let snap = relay.inspect();
    assert_eq!(
        snap.decisions[0].answered_by.as_deref(),
        Some(ids[1].as_str())
    );
    assert_eq!(snap.decrypted.len(), 2, "both devices decrypted it");
    assert_eq!(snap.quota_remaining[APP], 99, "one decision, one charge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_of_one_request_id_deliver_and_charge_once() {
    let relay = start(vec![app("ned", vec![DevicePolicy::Ignore])]).await;
    let mut c = client(&relay).await;
    let device = relay.device_ids(APP, "ned")[0].clone();
    let key = device_key(&mut c, TOKEN, "ned", &device).await;
    // No decision id: a racing second call must not generate a second decision either.
    let req = route_request(&key, &device, "req-race", "", 60, PAYLOAD);
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let (mut c, req) = (c.clone(), req.clone());
            tokio::spawn(async move { route(&mut c, TOKEN, req).await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].status, DeliveryStatus::Delivered as i32);
    let snap = relay.inspect();
    assert_eq!(snap.route_calls, 16);
    assert_eq!(snap.deliveries.len(), 1);
    assert_eq!(snap.deliveries[0].count, 1);
    assert_eq!(snap.decisions.len(), 1);
    assert_eq!(snap.quota_remaining[APP], 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_deliveries_of_one_decision_charge_once() {
    let relay = start(vec![app("oz", vec![DevicePolicy::Ignore; 6])]).await;
    let mut c = client(&relay).await;
    let mut calls = Vec::new();
    for (i, id) in relay.device_ids(APP, "oz").into_iter().enumerate() {
        let key = device_key(&mut c, TOKEN, "oz", &id).await;
        let req = route_request(&key, &id, &format!("r{i}"), "dec-fan", 60, PAYLOAD);
        let mut c = c.clone();
        calls.push(tokio::spawn(async move {
            route(&mut c, TOKEN, req).await.unwrap()
        }));
    }
    for call in calls {
        let out = call.await.unwrap();
        assert_eq!(out.status, DeliveryStatus::Delivered as i32);
        assert_eq!(out.decision_id, "dec-fan");
    }
    let snap = relay.inspect();
    assert_eq!(snap.deliveries.len(), 6);
    assert_eq!(snap.decisions.len(), 1);
    assert_eq!(snap.quota_remaining[APP], 99, "one decision, one charge");
    assert!(relay.wait_for(WAIT, |i| i.decrypted.len() == 6).await);
}

#[tokio::test]
async fn a_decision_id_reused_by_another_app_stays_separate() {
    let relay = start(vec![
        AppConfig::new("token-a", "app-a", 10).with_identity("alice", vec![DevicePolicy::Ignore]),
        AppConfig::new("token-b", "app-b", 10).with_identity("alice", vec![DevicePolicy::Approve]),
    ])
    .await;
    let mut c = client(&relay).await;
    for app in [("token-a", "app-a"), ("token-b", "app-b")] {
        let (_, out) = route_first(
            &relay,
            &mut c,
            app,
            "alice",
            "same-request",
            "same-decision",
            60,
        )
        .await;
        assert_eq!(out.status, DeliveryStatus::Delivered as i32, "{app:?}");
        assert_eq!(out.decision_id, "same-decision");
    }
    // B's device approves B's decision; A's stays pending.
    let r = wait_terminal(&mut c, "token-b", "same-decision", "alice").await;
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
    assert!(
        outcome(&mut c, "token-a", "same-decision", "alice")
            .await
            .unwrap()
            .pending
    );
    let snap = relay.inspect();
    assert_eq!(snap.decisions.len(), 2);
    assert_eq!(snap.deliveries.len(), 2);
    assert_eq!(
        relay
            .wait_for_outcome("app-b", "same-decision", WAIT)
            .await
            .as_deref(),
        Some("APPROVED")
    );
    let a = snap
        .decisions
        .iter()
        .find(|d| d.app_name == "app-a")
        .unwrap();
    assert_eq!(
        (a.outcome.as_str(), a.answered_by.as_ref()),
        ("PENDING", None)
    );
    assert_eq!(snap.quota_remaining["app-a"], 9);
    assert_eq!(snap.quota_remaining["app-b"], 9);
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_before_the_relay_acts() {
    let relay = start(vec![app("pam", vec![DevicePolicy::Approve])]).await;
    let mut c = client(&relay).await;
    let device = relay.device_ids(APP, "pam")[0].clone();
    let key = device_key(&mut c, TOKEN, "pam", &device).await;
    let mut req = route_request(&key, &device, "r-big", "d-big", 60, PAYLOAD);
    req.ciphertext = vec![0; noxy_devrelay::MAX_MESSAGE_BYTES];
    let err = route(&mut c, TOKEN, req).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let snap = relay.inspect();
    assert_eq!(snap.route_calls, 0);
    assert!(snap.deliveries.is_empty());
    // The connection and the relay are fine.
    let (_, out) = route_first(&relay, &mut c, MAIN, "pam", "r-small", "d-small", 60).await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
}

#[tokio::test]
async fn offline_device_queues_then_answers_when_online() {
    let relay = start(vec![app(
        "gus",
        vec![DevicePolicy::Offline(Box::new(DevicePolicy::Approve))],
    )])
    .await;
    let mut c = client(&relay).await;
    let (device, out) = route_first(&relay, &mut c, MAIN, "gus", "r1", "dec-off", 60).await;
    assert_eq!(out.status, DeliveryStatus::Queued as i32);
    assert!(
        outcome(&mut c, TOKEN, "dec-off", "gus")
            .await
            .unwrap()
            .pending
    );
    let snap = relay.inspect();
    assert!(
        snap.decrypted.is_empty(),
        "an offline device has received nothing"
    );
    assert_eq!(snap.deliveries.len(), 1);

    relay.set_device_online(&device, true);
    let r = wait_terminal(&mut c, TOKEN, "dec-off", "gus").await;
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);
    let snap = relay.inspect();
    assert_eq!(snap.decrypted.len(), 1);
    assert_eq!(snap.deliveries[0].count, 1);

    // Online now: the next one is DELIVERED at once.
    let (_, out) = route_first(&relay, &mut c, MAIN, "gus", "r2", "dec-on", 60).await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
}

#[tokio::test]
async fn missing_or_unknown_token_is_unauthenticated() {
    let relay = start(vec![app("hal", vec![DevicePolicy::Approve])]).await;
    let mut c = client(&relay).await;
    let err = c
        .get_quota(tonic::Request::new(GetQuotaRequest {
            request_id: "q".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = quota(&mut c, "wrong-token").await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(GetQuotaRequest {
        request_id: "q".into(),
    });
    req.metadata_mut()
        .insert("authorization", TOKEN.parse().unwrap());
    assert_eq!(
        c.get_quota(req).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let err = c
        .route_decision(authed("wrong-token", RouteDecisionRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = outcome(&mut c, "wrong-token", "d", "hal")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = identity_devices(&mut c, "wrong-token", "hal")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(relay.inspect().deliveries.is_empty());
}

#[tokio::test]
async fn scripted_unavailable_before_and_after_acting() {
    let relay = start(vec![app("ivy", vec![DevicePolicy::Ignore])]).await;
    let mut c = client(&relay).await;
    let device = relay.device_ids(APP, "ivy")[0].clone();
    let key = device_key(&mut c, TOKEN, "ivy", &device).await;

    // Before acting: nothing happens, the retry delivers once.
    relay.fail_next("RouteDecision", 1, FailWhen::BeforeActing);
    let req = route_request(&key, &device, "r-before", "d-before", 60, PAYLOAD);
    let err = route(&mut c, TOKEN, req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(relay.inspect().deliveries.is_empty());
    let out = route(&mut c, TOKEN, req).await.unwrap();
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);

    // After acting: the relay delivered and charged, then failed; the retry with the same
    // request id gets the stored answer and nothing is delivered twice.
    relay.fail_next("RouteDecision", 2, FailWhen::AfterActing);
    let req = route_request(&key, &device, "r-after", "", 60, PAYLOAD);
    assert_eq!(
        route(&mut c, TOKEN, req.clone()).await.unwrap_err().code(),
        Code::Unavailable
    );
    assert_eq!(
        route(&mut c, TOKEN, req.clone()).await.unwrap_err().code(),
        Code::Unavailable
    );
    let out = route(&mut c, TOKEN, req).await.unwrap();
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    assert!(!out.decision_id.is_empty());

    let snap = relay.inspect();
    assert_eq!(snap.route_calls, 5);
    let after: Vec<_> = snap
        .deliveries
        .iter()
        .filter(|d| d.request_id == "r-after")
        .collect();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].count, 1);
    assert_eq!(after[0].decision_id, out.decision_id);
    assert_eq!(snap.deliveries.len(), 2);
    assert_eq!(snap.quota_remaining[APP], 98);

    // Other methods are scripted independently.
    relay.fail_next("GetQuota", 1, FailWhen::BeforeActing);
    let err = quota(&mut c, TOKEN).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(quota(&mut c, TOKEN).await.is_ok());
}

#[tokio::test]
async fn random_faults_are_deterministic_and_latency_and_stall_apply() {
    let relay = start(vec![app("jon", vec![DevicePolicy::Approve])]).await;
    let mut c = client(&relay).await;
    let faults = FaultConfig {
        seed: 7,
        unavailable_before_fraction: 0.5,
        methods: Some(vec!["GetQuota".into()]),
        ..FaultConfig::default()
    };
    let pattern = |c: Grpc| async move {
        let mut c = c;
        let mut v = Vec::new();
        for _ in 0..16 {
            v.push(quota(&mut c, TOKEN).await.is_ok());
        }
        v
    };
    relay.set_faults(faults.clone());
    let a = pattern(c.clone()).await;
    relay.set_faults(faults);
    let b = pattern(c.clone()).await;
    assert_eq!(a, b);
    assert!(a.contains(&true) && a.contains(&false), "{a:?}");
    // Methods outside the list are untouched.
    for _ in 0..8 {
        assert!(identity_devices(&mut c, TOKEN, "jon").await.is_ok());
    }

    relay.set_faults(FaultConfig {
        latency: Duration::from_millis(150),
        ..FaultConfig::default()
    });
    let t = Instant::now();
    quota(&mut c, TOKEN).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));

    relay.set_faults(FaultConfig {
        stall_fraction: 1.0,
        ..FaultConfig::default()
    });
    let mut req = authed(
        TOKEN,
        GetQuotaRequest {
            request_id: "q".into(),
        },
    );
    req.set_timeout(Duration::from_millis(200));
    let res = tokio::time::timeout(Duration::from_secs(5), c.get_quota(req)).await;
    match res {
        Ok(Err(status)) => assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        ),
        other => panic!("a stalled call must end with the client's deadline: {other:?}"),
    }
    relay.set_faults(FaultConfig::default());
    assert!(quota(&mut c, TOKEN).await.is_ok());
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument() {
    let relay = start(vec![app("kim", vec![DevicePolicy::Approve])]).await;
    let mut c = client(&relay).await;
    let device = relay.device_ids(APP, "kim")[0].clone();
    let key = device_key(&mut c, TOKEN, "kim", &device).await;
    let good = route_request(&key, &device, "r1", "d1", 60, PAYLOAD);
    let cases = [
        RouteDecisionRequest {
            request_id: String::new(),
            ..good.clone()
        },
        RouteDecisionRequest {
            kyber_ct: vec![1; 1087],
            ..good.clone()
        },
        RouteDecisionRequest {
            kyber_ct: Vec::new(),
            ..good.clone()
        },
        RouteDecisionRequest {
            nonce: vec![0; 11],
            ..good.clone()
        },
        RouteDecisionRequest {
            ciphertext: vec![0; 15],
            ..good.clone()
        },
        RouteDecisionRequest {
            request_id: "x".repeat(1000),
            ..good.clone()
        },
    ];
    for bad in cases {
        let err = route(&mut c, TOKEN, bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    let err = outcome(&mut c, TOKEN, "", "kim").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // An unknown or empty target device is NO_DEVICES, not an error.
    let out = route(
        &mut c,
        TOKEN,
        RouteDecisionRequest {
            target_device_id: String::new(),
            ..good.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(out.status, DeliveryStatus::NoDevices as i32);
    let snap = relay.inspect();
    assert!(snap.deliveries.is_empty());
    assert_eq!(snap.quota_remaining[APP], 100);
    assert_eq!(snap.route_calls, 7);
    // A huge TTL is accepted (no overflow).
    let out = route(
        &mut c,
        TOKEN,
        RouteDecisionRequest {
            request_id: "r-ttl".into(),
            decision_id: "d-ttl".into(),
            ttl_seconds: u32::MAX,
            ..good.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    // The relay is still fine.
    let out = route(
        &mut c,
        TOKEN,
        RouteDecisionRequest {
            request_id: "r2".into(),
            ..good
        },
    )
    .await
    .unwrap();
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
}

#[tokio::test]
async fn undecryptable_decisions_are_counted_and_never_approved() {
    let relay = start(vec![app("lee", vec![DevicePolicy::Approve])]).await;
    let mut c = client(&relay).await;
    let device = relay.device_ids(APP, "lee")[0].clone();
    let key = device_key(&mut c, TOKEN, "lee", &device).await;

    // Garbage of the right sizes.
    let garbage = RouteDecisionRequest {
        request_id: "r-garbage".into(),
        ciphertext: vec![7; 64],
        ttl_seconds: 60,
        target_device_id: device.clone(),
        kyber_ct: vec![3; 1088],
        nonce: vec![9; 12],
        decision_id: "d-garbage".into(),
    };
    assert_eq!(
        route(&mut c, TOKEN, garbage).await.unwrap().status,
        DeliveryStatus::Delivered as i32
    );
    // Correctly encrypted, but not a JSON object.
    let array = route_request(&key, &device, "r-array", "d-array", 60, b"[1,2,3]");
    assert_eq!(
        route(&mut c, TOKEN, array).await.unwrap().status,
        DeliveryStatus::Delivered as i32
    );
    // Encrypted for another key.
    let (_, other_pk) = {
        use ml_kem::kem::{Kem, KeyExport};
        let (dk, ek) = ml_kem::MlKem768::generate_keypair();
        (dk, ek.to_bytes().to_vec())
    };
    let wrong = route_request(&other_pk, &device, "r-wrong", "d-wrong", 60, PAYLOAD);
    assert_eq!(
        route(&mut c, TOKEN, wrong).await.unwrap().status,
        DeliveryStatus::Delivered as i32
    );

    assert!(relay.wait_for(WAIT, |i| i.decrypt_failures == 3).await);
    let snap = relay.inspect();
    assert!(snap.decrypted.is_empty());
    assert!(snap.decisions.iter().all(|d| d.outcome == "PENDING"));
    let reasons: Vec<_> = snap
        .decrypt_failure_details
        .iter()
        .map(|f| f.reason.as_str())
        .collect();
    assert!(
        reasons.contains(&"payload is JSON but not an object"),
        "{reasons:?}"
    );
    for d in ["d-garbage", "d-array", "d-wrong"] {
        assert!(outcome(&mut c, TOKEN, d, "lee").await.unwrap().pending);
    }
}

#[test]
fn handle_and_errors_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<noxy_devrelay::DevRelay>();
    assert_send_sync::<noxy_devrelay::DevRelayError>();
    assert_send_sync::<noxy_devrelay::Inspection>();
}

/// A relay whose decisions are evicted 300 ms after they end.
async fn start_evicting(
    apps: Vec<AppConfig>,
    limits: noxy_devrelay::Limits,
) -> noxy_devrelay::DevRelay {
    noxy_devrelay::DevRelay::start(noxy_devrelay::DevRelayConfig {
        apps,
        limits,
        ..noxy_devrelay::DevRelayConfig::default()
    })
    .await
    .expect("relay starts")
}

#[tokio::test]
async fn an_ended_decision_is_evicted_after_the_grace_and_is_then_unknown() {
    let limits = noxy_devrelay::Limits {
        eviction_grace: Duration::from_millis(300),
        ..noxy_devrelay::Limits::default()
    };
    let relay = start_evicting(
        vec![app("quinn", vec![DevicePolicy::Approve])
            .with_identity("rita", vec![DevicePolicy::Ignore])],
        limits,
    )
    .await;
    let mut c = client(&relay).await;
    // Answered at once: evicted 300 ms after the answer (which comes after this instant).
    let before_answer = Instant::now();
    let (device, out) = route_first(&relay, &mut c, MAIN, "quinn", "r-ev", "d-ev", 600).await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    assert_eq!(
        relay.wait_for_outcome(APP, "d-ev", WAIT).await.as_deref(),
        Some("APPROVED")
    );
    // Expired at its 1 s TTL: evicted 300 ms later.
    let (_, out) = route_first(&relay, &mut c, MAIN, "rita", "r-exp", "d-exp", 1).await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    assert!(relay.inspect().stored_bytes > 0);

    assert!(relay.wait_for(WAIT, |i| i.evicted_decisions == 1).await);
    assert!(before_answer.elapsed() >= Duration::from_millis(300));
    let snap = relay.inspect();
    assert_eq!(snap.decisions.len(), 1, "{:?}", snap.decisions);
    assert_eq!(snap.decisions[0].decision_id, "d-exp");
    assert!(snap.decrypted.iter().all(|d| d.decision_id == "d-exp"));
    // As for an unknown decision.
    assert_eq!(
        outcome(&mut c, TOKEN, "d-ev", "quinn")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let (status, list) = http(
        &relay,
        "GET",
        format!("{}/v1/devices/{device}/decisions", relay.http_url()),
        None,
    )
    .await;
    assert_eq!((status, list), (200, serde_json::json!([])));

    assert!(relay.wait_for(WAIT, |i| i.evicted_decisions == 2).await);
    let snap = relay.inspect();
    assert!(snap.decisions.is_empty() && snap.deliveries.is_empty());
    assert_eq!(snap.stored_bytes, 0);
    // The request id is forgotten with its decision: sending it again is a new decision.
    let (_, again) = route_first(&relay, &mut c, MAIN, "quinn", "r-ev", "d-ev", 600).await;
    assert_eq!(again.status, DeliveryStatus::Delivered as i32);
    assert_eq!(
        relay.inspect().quota_remaining[APP],
        97,
        "three decisions, three charges"
    );
}

#[tokio::test]
async fn new_request_ids_for_one_decision_and_device_store_no_second_ciphertext() {
    // An offline device: nothing decrypts, the stored bytes are only what was routed.
    let relay = start(vec![app(
        "sid",
        vec![DevicePolicy::Offline(Box::new(DevicePolicy::Ignore))],
    )])
    .await;
    let mut c = client(&relay).await;
    let device = relay.device_ids(APP, "sid")[0].clone();
    let big = |request_id: &str| RouteDecisionRequest {
        request_id: request_id.into(),
        ciphertext: vec![7; 3 << 20],
        ttl_seconds: 60,
        target_device_id: device.clone(),
        kyber_ct: vec![3; 1088],
        nonce: vec![9; 12],
        decision_id: "d-big".into(),
    };
    let first = route(&mut c, TOKEN, big("r-0")).await.unwrap();
    assert_eq!(first.status, DeliveryStatus::Queued as i32);
    let stored = relay.inspect().stored_bytes;
    assert!(stored >= 3 << 20);
    for i in 1..8 {
        let again = route(&mut c, TOKEN, big(&format!("r-{i}"))).await.unwrap();
        assert_eq!(
            again,
            noxy_devrelay::proto::DeliveryOutcome {
                request_id: format!("r-{i}"),
                ..first.clone()
            }
        );
    }
    let snap = relay.inspect();
    assert_eq!(
        snap.stored_bytes, stored,
        "one ciphertext per (decision, device)"
    );
    assert_eq!(snap.deliveries.len(), 1);
    assert_eq!(snap.quota_remaining[APP], 99);
    // Once the device is online, the same request reports the delivery as it is now.
    relay.set_device_online(&device, true);
    let now = route(&mut c, TOKEN, big("r-late")).await.unwrap();
    assert_eq!(now.status, DeliveryStatus::Delivered as i32);
}

#[tokio::test]
async fn a_full_inbox_is_resource_exhausted_and_not_charged() {
    let relay = start_evicting(
        vec![app("tia", vec![DevicePolicy::Ignore])],
        noxy_devrelay::Limits {
            max_inbox_entries: 2,
            ..noxy_devrelay::Limits::default()
        },
    )
    .await;
    let mut c = client(&relay).await;
    for i in 0..2 {
        let (_, out) = route_first(
            &relay,
            &mut c,
            MAIN,
            "tia",
            &format!("r{i}"),
            &format!("d{i}"),
            60,
        )
        .await;
        assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    }
    let device = relay.device_ids(APP, "tia")[0].clone();
    let key = device_key(&mut c, TOKEN, "tia", &device).await;
    let err = route(
        &mut c,
        TOKEN,
        route_request(&key, &device, "r2", "d2", 60, PAYLOAD),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("2 deliveries"), "{err:?}");
    assert_eq!(relay.inspect().quota_remaining[APP], 98);
}
