//! The whole decision loop against the development relay over real TLS on loopback: routing,
//! simulated devices that decrypt, outcomes, and the failure modes a host must be able to branch on.

mod common;

use std::time::Duration;

use common::*;
use noxy::{
    CancellationToken, DecisionOutcome, DeliveryStatus, ErrorCode, Payload, QuotaStatus,
    SendOptions, WaitOptions,
};
use noxy_devrelay::FailWhen;

/// Routes the test payload to `identity` with default options, without waiting.
async fn send(
    client: &noxy::Client,
    identity: &str,
) -> Result<noxy::SendResult, noxy::DecisionError> {
    client
        .send_decision(identity, &payload(), &SendOptions::default())
        .await
}

/// Routes the test payload to `identity` and waits, with the defaults of these tests.
async fn decide(
    client: &noxy::Client,
    identity: &str,
) -> Result<noxy::DecisionResult, noxy::DecisionError> {
    client
        .send_decision_and_wait_for_outcome(
            identity,
            &payload(),
            &SendOptions::default(),
            &quick_wait(),
        )
        .await
}

fn payload() -> Payload {
    Payload::from_json_str(
        r#"{"kind":"tool","tool":"transfer","args":{"to":"0xabc","wei":123456789012345678901234567890},"title":"Send funds","summary":"Move 1 ETH"}"#,
    )
    .unwrap()
}

#[tokio::test]
async fn approve_is_seen_and_the_device_decrypted_exactly_what_was_sent() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    let result = decide(&client, "alice").await.unwrap();
    assert_eq!(result.state.outcome, DecisionOutcome::Approved);
    assert!(!result.state.pending);
    assert_eq!(result.decision_id, result.sent.decision_id);
    assert_eq!(result.sent.deliveries.len(), 1);
    let delivery = result.sent.deliveries[0].outcome.as_ref().unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    // The simulated device decrypted (with an independent ML-KEM implementation) the very
    // bytes whose digest the library reported, big integer included.
    let inspection = relay.inspect();
    assert_eq!(inspection.decrypt_failures, 0);
    let decrypted: Vec<_> = inspection
        .decrypted
        .iter()
        .filter(|d| d.decision_id == result.decision_id)
        .collect();
    assert_eq!(decrypted.len(), 1);
    assert_eq!(
        decrypted[0].plaintext_sha256_hex,
        hex(&result.sent.plaintext_sha256)
    );
    assert_eq!(result.sent.plaintext_sha256, payload().sha256());
}

#[tokio::test]
async fn reject_is_seen() {
    let relay = start_relay().await;
    let result = decide(&client(&relay, TOKEN), "bob").await.unwrap();
    assert_eq!(result.state.outcome, DecisionOutcome::Rejected);
}

#[tokio::test]
async fn an_unanswered_decision_expires_at_its_ttl() {
    let relay = start_relay().await;
    let options = SendOptions {
        ttl_seconds: Some(1),
        ..SendOptions::default()
    };
    let result = client(&relay, TOKEN)
        .send_decision_and_wait_for_outcome("carol", &payload(), &options, &quick_wait())
        .await
        .unwrap();
    assert_eq!(result.state.outcome, DecisionOutcome::Expired);
}

#[tokio::test]
async fn an_identity_without_devices_has_no_decision_to_wait_on() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    let sent = send(&client, "nobody").await.unwrap();
    assert!(sent.deliveries.is_empty());
    let err = decide(&client, "nobody").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoDecisionId);
    assert!(err.message().contains("no devices"), "{err}");
    assert!(err.deliveries.is_empty());
}

#[tokio::test]
async fn several_devices_get_one_decision_concurrently_and_the_first_answer_wins() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    let result = decide(&client, "team").await.unwrap();
    assert_eq!(result.state.outcome, DecisionOutcome::Approved);
    let devices = relay.device_ids(APP, "team");
    assert_eq!(devices.len(), 3);
    let delivered: Vec<&str> = result
        .sent
        .deliveries
        .iter()
        .map(|d| d.device_id.as_str())
        .collect();
    assert_eq!(
        delivered,
        devices.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let mut request_ids: Vec<&str> = result
        .sent
        .deliveries
        .iter()
        .map(|d| d.request_id.as_str())
        .collect();
    request_ids.sort();
    request_ids.dedup();
    assert_eq!(request_ids.len(), 3, "one request id per device");
    for delivery in &result.sent.deliveries {
        let accepted = delivery.outcome.as_ref().unwrap();
        assert_eq!(accepted.status, DeliveryStatus::Delivered);
        assert_eq!(accepted.decision_id, result.decision_id);
    }
    let inspection = relay.inspect();
    let for_decision: Vec<_> = inspection
        .deliveries
        .iter()
        .filter(|d| d.decision_id == result.decision_id)
        .collect();
    assert_eq!(for_decision.len(), 3);
    // Every simulated device decrypted its own copy.
    assert_eq!(
        inspection
            .decrypted
            .iter()
            .filter(|d| d.decision_id == result.decision_id)
            .count(),
        3
    );
    let record = inspection
        .decisions
        .iter()
        .find(|d| d.decision_id == result.decision_id)
        .unwrap();
    assert_eq!(record.answered_by.as_deref(), Some(devices[1].as_str()));
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated_and_not_retried() {
    let relay = start_relay().await;
    let err = client(&relay, "not-a-token")
        .send_decision_and_wait_for_outcome(
            "alice",
            &payload(),
            &SendOptions::default(),
            &quick_wait(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthenticated);
    assert!(err.message().starts_with("GetIdentityDevices"), "{err}");
    assert_eq!(relay.inspect().route_calls, 0);
}

#[tokio::test]
async fn an_exhausted_quota_is_reported_per_device_and_leaves_nothing_to_wait_on() {
    let relay = start_relay().await;
    let client = client(&relay, LOW_TOKEN);
    let quota = client.get_quota().await.unwrap();
    assert_eq!(quota.app_name, LOW_APP);
    assert_eq!((quota.quota_total, quota.quota_remaining), (1, 1));
    assert_eq!(quota.status, QuotaStatus::Active);
    let first = decide(&client, "erin").await.unwrap();
    assert_eq!(first.state.outcome, DecisionOutcome::Approved);
    assert_eq!(client.get_quota().await.unwrap().quota_remaining, 0);
    let err = decide(&client, "erin").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoDecisionId);
    assert_eq!(err.deliveries.len(), 1);
    let rejected = err.deliveries[0].outcome.as_ref().unwrap();
    assert_eq!(rejected.status, DeliveryStatus::Rejected);
}

#[tokio::test]
async fn a_retry_after_the_relay_acted_keeps_the_request_id_and_delivers_once() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    // The relay delivers and charges, then answers UNAVAILABLE: the retry must be recognised.
    relay.fail_next("RouteDecision", 1, FailWhen::AfterActing);
    let sent = send(&client, "alice").await.unwrap();
    let delivery = &sent.deliveries[0];
    assert_eq!(
        delivery.outcome.as_ref().unwrap().status,
        DeliveryStatus::Delivered
    );
    let inspection = relay.inspect();
    assert_eq!(
        inspection.route_calls, 2,
        "one failed attempt and one retry"
    );
    assert_eq!(inspection.deliveries.len(), 1);
    assert_eq!(inspection.deliveries[0].request_id, delivery.request_id);
    assert_eq!(inspection.deliveries[0].count, 1);
    assert_eq!(inspection.decisions.len(), 1);
    assert_eq!(inspection.quota_remaining[APP], 999, "charged once");
}

#[tokio::test]
async fn transient_failures_before_acting_are_retried_up_to_the_attempt_cap() {
    let relay = start_relay().await;
    let mut config = config(&relay, TOKEN);
    config.retry.max_attempts = Some(3);
    let client = noxy::Client::new(config).unwrap();
    relay.fail_next("RouteDecision", 2, FailWhen::BeforeActing);
    let sent = send(&client, "alice").await.unwrap();
    assert!(sent.deliveries[0].outcome.is_ok());
    assert_eq!(relay.inspect().route_calls, 3);

    relay.fail_next("RouteDecision", 3, FailWhen::BeforeActing);
    let sent = send(&client, "alice").await.unwrap();
    let err = sent.deliveries[0].outcome.as_ref().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert_eq!(relay.inspect().route_calls, 6);
}

/// The relay's ERROR delivery status is retried under the same request id while the policy
/// allows, then reported as what the relay answered (not turned into a made-up error).
#[tokio::test]
async fn a_delivery_the_relay_keeps_answering_error_is_reported_as_error() {
    let relay = start_relay().await;
    let mut config = config(&relay, TOKEN);
    config.retry.max_attempts = Some(3);
    let client = noxy::Client::new(config).unwrap();
    relay.fail_next("RouteDecision", 3, FailWhen::DeliveryError);
    let sent = send(&client, "alice").await.unwrap();
    let delivery = sent.deliveries[0].outcome.as_ref().unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Error);
    assert_eq!(sent.accepted_decision_id(), None, "nothing to wait on");
    assert_eq!(relay.inspect().route_calls, 3);
    // Retried under one request id, an ERROR answer that clears is a delivery like any other.
    relay.fail_next("RouteDecision", 2, FailWhen::DeliveryError);
    let sent = send(&client, "alice").await.unwrap();
    let delivery = sent.deliveries[0].outcome.as_ref().unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    let inspection = relay.inspect();
    assert_eq!(inspection.route_calls, 6);
    assert_eq!(inspection.deliveries.len(), 1);
    assert_eq!(
        inspection.deliveries[0].request_id,
        sent.deliveries[0].request_id
    );
}

#[tokio::test]
async fn retries_are_bounded_by_the_budget_without_an_attempt_cap() {
    let relay = start_relay().await;
    let mut config = config(&relay, TOKEN);
    config.retry.max_attempts = None;
    config.retry.initial_backoff = Duration::from_millis(10);
    config.retry.max_backoff = Duration::from_millis(40);
    config.retry.budget = Duration::from_secs(2);
    let client = noxy::Client::new(config).unwrap();
    // More failures than the budget has room for: the send gives up on that device.
    relay.fail_next("RouteDecision", 1000, FailWhen::BeforeActing);
    let sent = send(&client, "alice").await.unwrap();
    let err = sent.deliveries[0].outcome.as_ref().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable);
    let calls = relay.inspect().route_calls;
    // More than the relay SDKs' fixed 3 attempts (about budget / max_backoff when the machine
    // is idle), and far fewer than the scripted failures: the budget ended the retries.
    assert!((4..1000).contains(&calls), "{calls} attempts");
}

/// The review's reproduction: the same key with changed content must never reuse the approval.
#[tokio::test]
async fn an_idempotency_key_never_carries_an_approval_over_to_other_content() {
    let relay = start_relay().await;
    let options = SendOptions {
        idempotency_key: Some("transfer-42".into()),
        ..SendOptions::default()
    };
    let small = Payload::from_json_str(r#"{"title":"Send 1 ETH"}"#).unwrap();
    let large = Payload::from_json_str(r#"{"title":"Send 1000 ETH"}"#).unwrap();
    let first = client(&relay, TOKEN)
        .send_decision_and_wait_for_outcome("alice", &small, &options, &quick_wait())
        .await
        .unwrap();
    assert_eq!(first.state.outcome, DecisionOutcome::Approved);
    // A crashed agent re-sends with changed arguments and the same key.
    let second = client(&relay, TOKEN)
        .send_decision_and_wait_for_outcome("alice", &large, &options, &quick_wait())
        .await
        .unwrap();
    assert_ne!(second.decision_id, first.decision_id, "a new decision");
    assert_eq!(second.sent.plaintext_sha256, large.sha256());
    // The device received, decrypted and answered the new content itself.
    let inspection = relay.inspect();
    let decrypted_for = |decision_id: &str| {
        inspection
            .decrypted
            .iter()
            .filter(|d| d.decision_id == decision_id)
            .map(|d| d.plaintext_sha256_hex.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        decrypted_for(&first.decision_id),
        vec![hex(&small.sha256())]
    );
    assert_eq!(
        decrypted_for(&second.decision_id),
        vec![hex(&large.sha256())]
    );
    assert_eq!(inspection.deliveries.len(), 2);
    // And the same content with the same key is still the existing decision.
    let again = client(&relay, TOKEN)
        .send_decision_and_wait_for_outcome("alice", &large, &options, &quick_wait())
        .await
        .unwrap();
    assert_eq!(again.decision_id, second.decision_id);
    assert_eq!(relay.inspect().deliveries.len(), 2, "no third prompt");
}

#[tokio::test]
async fn an_idempotency_key_makes_a_resend_return_the_existing_decision() {
    let relay = start_relay().await;
    let options = SendOptions {
        idempotency_key: Some("transfer-42".into()),
        ..SendOptions::default()
    };
    let first = client(&relay, TOKEN)
        .send_decision("slow", &payload(), &options)
        .await
        .unwrap();
    // A new client, as after a crash and restart of the agent.
    let again = client(&relay, TOKEN)
        .send_decision("slow", &payload(), &options)
        .await
        .unwrap();
    assert_eq!(first.decision_id, again.decision_id);
    assert_eq!(
        first.deliveries[0].request_id,
        again.deliveries[0].request_id
    );
    let inspection = relay.inspect();
    assert_eq!(inspection.decisions.len(), 1);
    assert_eq!(inspection.deliveries.len(), 1);
    assert_eq!(
        inspection.deliveries[0].count, 1,
        "no second prompt on the phone"
    );
    assert_eq!(inspection.quota_remaining[APP], 999);
    // Another key is another decision.
    let other = client(&relay, TOKEN)
        .send_decision(
            "slow",
            &payload(),
            &SendOptions {
                idempotency_key: Some("transfer-43".into()),
                ..SendOptions::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(other.decision_id, first.decision_id);
}

#[tokio::test]
async fn a_wait_can_be_cancelled_while_it_waits() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    let cancel = CancellationToken::new();
    let wait = WaitOptions {
        cancel: Some(cancel.clone()),
        ..quick_wait()
    };
    let task = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .send_decision_and_wait_for_outcome(
                    "slow",
                    &payload(),
                    &SendOptions::default(),
                    &wait,
                )
                .await
        }
    });
    // Cancel once the decision is on the device, i.e. while the client waits.
    assert!(relay.wait_for(PATIENCE, |i| !i.decrypted.is_empty()).await);
    cancel.cancel();
    let err = tokio::time::timeout(PATIENCE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled);
    assert_eq!(
        err.deliveries.len(),
        1,
        "the routed decision is still reported"
    );
}

#[tokio::test]
async fn closing_the_client_ends_waits_in_flight_and_later_calls() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    let task = tokio::spawn({
        let client = client.clone();
        async move { decide(&client, "slow").await }
    });
    assert!(relay.wait_for(PATIENCE, |i| !i.decrypted.is_empty()).await);
    client.close();
    let err = tokio::time::timeout(PATIENCE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled);
    assert!(client.is_closed());
    assert_eq!(
        client.get_quota().await.unwrap_err().code(),
        ErrorCode::Cancelled
    );
}

#[tokio::test]
async fn a_stalling_relay_meets_the_request_deadline() {
    let relay = start_relay().await;
    let mut config = config(&relay, TOKEN);
    config.request_timeout = Duration::from_millis(300);
    config.retry.max_attempts = Some(2);
    let client = noxy::Client::new(config).unwrap();
    relay.set_faults(noxy_devrelay::FaultConfig {
        stall_fraction: 1.0,
        methods: Some(vec!["GetQuota".into()]),
        ..Default::default()
    });
    let err = client.get_quota().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeadlineExceeded, "{err}");
    // Other methods are unaffected, so the deadline is the call's, not the connection's.
    relay.set_faults(noxy_devrelay::FaultConfig::default());
    assert_eq!(client.get_quota().await.unwrap().app_name, APP);
}

#[tokio::test]
async fn a_wait_never_overruns_its_budget() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    let sent = send(&client, "carol").await.unwrap();
    let budget = Duration::from_millis(700);
    let wait = WaitOptions {
        initial_interval: Duration::from_millis(400),
        multiplier: 1.6,
        max_wait: budget,
        ..WaitOptions::default()
    };
    let started = std::time::Instant::now();
    let err = client
        .wait_for_decision_outcome(&sent.decision_id, "carol", &wait)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), ErrorCode::WaitTimedOut);
    assert!(err.message().contains("wait timed out"), "{err}");
    // The second pause (640 ms) would end past the budget: it is clipped, not slept whole.
    assert!(took < budget + Duration::from_millis(250), "took {took:?}");
}

#[tokio::test]
async fn transient_poll_failures_do_not_end_the_wait() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    relay.fail_next("GetDecisionOutcome", 3, FailWhen::BeforeActing);
    let result = decide(&client, "later").await.unwrap();
    assert_eq!(result.state.outcome, DecisionOutcome::Approved);
}

#[tokio::test]
async fn an_offline_device_is_queued_and_answers_once_online() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    let sent = send(&client, "away").await.unwrap();
    let delivery = sent.deliveries[0].outcome.as_ref().unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Queued);
    let state = client
        .get_decision_outcome(&sent.decision_id, "away")
        .await
        .unwrap();
    assert!(state.pending);
    relay.set_device_online(&sent.deliveries[0].device_id, true);
    let state = client
        .wait_for_decision_outcome(&sent.decision_id, "away", &quick_wait())
        .await
        .unwrap();
    assert_eq!(state.outcome, DecisionOutcome::Approved);
}

#[tokio::test]
async fn outcomes_are_private_to_the_app_and_identity() {
    let relay = start_relay().await;
    let sent = send(&client(&relay, TOKEN), "alice").await.unwrap();
    let wrong_identity = client(&relay, TOKEN)
        .get_decision_outcome(&sent.decision_id, "bob")
        .await;
    assert_eq!(wrong_identity.unwrap_err().code(), ErrorCode::NotFound);
    let other_app = client(&relay, OTHER_TOKEN)
        .get_decision_outcome(&sent.decision_id, "alice")
        .await;
    assert_eq!(other_app.unwrap_err().code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn identity_devices_are_listed_with_their_keys() {
    let relay = start_relay().await;
    let devices = client(&relay, TOKEN)
        .get_identity_devices("team")
        .await
        .unwrap();
    assert_eq!(devices.len(), 3);
    for device in devices {
        assert_eq!(device.pq_public_key.len(), noxy::crypto::PQ_PUBLIC_KEY_LEN);
        noxy::crypto::validate_pq_public_key(&device.pq_public_key).unwrap();
    }
}

#[tokio::test]
async fn a_client_is_built_without_a_relay_and_reports_it_unreachable() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = noxy::ClientConfig::new(format!("127.0.0.1:{port}"), TOKEN);
    config.connect_timeout = Duration::from_secs(2);
    config.retry = noxy::RetryPolicy::none();
    let client = noxy::Client::new(config).unwrap();
    let err = client.get_quota().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
}

/// The connect timeout covers the TLS handshake, not only the TCP connect: a peer that accepts
/// the connection and never answers the ClientHello fails the call at the connect timeout, long
/// before the request deadline.
#[tokio::test]
async fn a_stalled_tls_handshake_ends_at_the_connect_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move {
        // Accept and hold the connections without a byte of answer.
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let mut config = noxy::ClientConfig::new(format!("127.0.0.1:{port}"), TOKEN);
    config.connect_timeout = Duration::from_millis(300);
    config.request_timeout = Duration::from_secs(120);
    config.retry = noxy::RetryPolicy::none();
    let client = noxy::Client::new(config).unwrap();
    let err = tokio::time::timeout(PATIENCE, client.get_quota())
        .await
        .expect("the connect timeout ended the call, not the 120 s request deadline")
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
    assert!(err.message().contains("connect timeout"), "{err}");
    assert!(err.is_transient());
    accepted.abort();
}

#[tokio::test]
async fn a_peer_that_does_not_speak_tls_grpc_is_a_clear_error() {
    let relay = start_relay().await;
    // The relay's HTTP device API is plain HTTP/1.1: the TLS handshake fails.
    let mut config = config(&relay, TOKEN);
    config.endpoint = relay.http_url();
    config.retry = noxy::RetryPolicy::none();
    let err = noxy::Client::new(config)
        .unwrap()
        .get_quota()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
}

#[tokio::test]
async fn invalid_arguments_are_named() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    let err = send(&client, "").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.message().starts_with("identity_id"));
    let zero_ttl = SendOptions {
        ttl_seconds: Some(0),
        ..SendOptions::default()
    };
    let err = client
        .send_decision("alice", &payload(), &zero_ttl)
        .await
        .unwrap_err();
    assert!(err.message().starts_with("ttl_seconds"));
    let err = client.get_decision_outcome("", "alice").await.unwrap_err();
    assert!(err.message().starts_with("decision_id"));
    assert_eq!(relay.inspect().route_calls, 0);
}

#[tokio::test]
async fn malformed_relay_answers_are_protocol_errors_not_guesses() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);

    relay.fail_next("GetQuota", 1, FailWhen::MalformedAnswer);
    let err = client.get_quota().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Protocol);
    assert!(err.message().contains("quota status 7"), "{err}");

    relay.fail_next("RouteDecision", 1, FailWhen::MalformedAnswer);
    let err = decide(&client, "alice").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoDecisionId);
    let device_error = err.deliveries[0].outcome.as_ref().unwrap_err();
    assert_eq!(device_error.code(), ErrorCode::Protocol);
    assert!(
        device_error.message().contains("delivery status 99"),
        "{device_error}"
    );

    let sent = send(&client, "slow").await.unwrap();
    relay.fail_next("GetDecisionOutcome", 1, FailWhen::MalformedAnswer);
    let err = client
        .wait_for_decision_outcome(&sent.decision_id, "slow", &quick_wait())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Protocol);
    assert!(err.message().contains("outcome 42"), "{err}");
}

#[tokio::test]
async fn a_device_with_a_bad_key_fails_alone() {
    let relay = start_relay().await;
    let client = client(&relay, TOKEN);
    // The relay lists the first of the three devices with a truncated ML-KEM key.
    relay.fail_next("GetIdentityDevices", 1, FailWhen::MalformedAnswer);
    let result = decide(&client, "team").await.unwrap();
    let first = result.sent.deliveries[0].outcome.as_ref().unwrap_err();
    assert_eq!(first.code(), ErrorCode::InvalidArgument);
    assert!(first.message().contains("pq_public_key"), "{first}");
    for other in &result.sent.deliveries[1..] {
        assert_eq!(
            other.outcome.as_ref().unwrap().status,
            DeliveryStatus::Delivered
        );
    }
    assert_eq!(result.state.outcome, DecisionOutcome::Approved);
    assert_eq!(relay.inspect().deliveries.len(), 2);
}
