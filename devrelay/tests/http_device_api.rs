//! The HTTP/JSON device API: a device registered with a key pair made outside the relay
//! receives a decision over gRPC, decrypts it with its own secret key and approves it.

mod common;

use base64::Engine as _;
use common::*;
use ml_kem::kem::{Kem, KeyExport};
use noxy_devrelay::proto::{DecisionOutcome, DeliveryStatus};
use noxy_devrelay::{AppConfig, DevicePolicy};
use serde_json::json;

const TOKEN: &str = "token-h";
const APP: &str = "app-h";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

#[tokio::test]
async fn external_device_decrypts_and_approves_over_http() {
    let relay = start(vec![AppConfig::new(TOKEN, APP, 10)]).await;
    let mut c = client(&relay).await;
    let base = relay.http_url();

    let (dk, ek) = ml_kem::MlKem768::generate_keypair();
    let pk = ek.to_bytes().to_vec();
    let (status, body) = http(
        &relay,
        "POST",
        &format!("{base}/v1/apps/{APP}/identities/zoe@example.com/devices"),
        Some(json!({ "pq_public_key": b64().encode(&pk), "public_key": b64().encode([5u8; 32]) })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let device_id = body["device_id"].as_str().expect("device_id").to_string();
    assert_eq!(
        relay.device_ids(APP, "zoe@example.com"),
        vec![device_id.clone()]
    );

    // The agent sees it through GetIdentityDevices, with the device's own keys.
    let devices = identity_devices(&mut c, TOKEN, "zoe@example.com")
        .await
        .unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_id, device_id);
    assert_eq!(devices[0].pq_public_key, pk);
    assert_eq!(devices[0].public_key, vec![5u8; 32]);

    let list = || {
        http(
            &relay,
            "GET",
            format!("{base}/v1/devices/{device_id}/decisions"),
            None,
        )
    };
    // Nothing delivered yet.
    let (status, list_before) = list().await;
    assert_eq!(status, 200);
    assert_eq!(list_before, json!([]));

    let req = route_request(&pk, &device_id, "req-h", "dec-h", 30, PAYLOAD);
    let out = route(&mut c, TOKEN, req.clone()).await.unwrap();
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);

    let (status, list_after) = list().await;
    assert_eq!(status, 200);
    let items = list_after.as_array().expect("array");
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["decision_id"], "dec-h");
    assert_eq!(item["request_id"], "req-h");
    assert_eq!(item["ttl_seconds"], 30);
    assert_eq!(item["outcome"], "PENDING");
    assert!(item["delivered_at_unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    let field = |k: &str| b64().decode(item[k].as_str().unwrap()).unwrap();
    assert_eq!(field("kyber_ct"), req.kyber_ct);
    assert_eq!(field("nonce"), req.nonce);
    assert_eq!(field("ciphertext"), req.ciphertext);
    let plaintext = decrypt(
        &dk,
        &field("kyber_ct"),
        &field("nonce"),
        &field("ciphertext"),
    );
    assert_eq!(plaintext, PAYLOAD);

    let answer = |answer: &'static str| {
        http(
            &relay,
            "POST",
            format!("{base}/v1/devices/{device_id}/decisions/dec-h"),
            Some(json!({ "answer": answer })),
        )
    };
    let (status, body) = answer("approve").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "APPROVED");
    let r = outcome(&mut c, TOKEN, "dec-h", "zoe@example.com")
        .await
        .unwrap();
    assert!(!r.pending);
    assert_eq!(r.outcome, DecisionOutcome::Approved as i32);

    // First answer wins.
    let (status, body) = answer("reject").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["outcome"], "APPROVED");

    // Inspection over HTTP.
    let (status, snap) = http(&relay, "GET", &format!("{base}/v1/inspect"), None).await;
    assert_eq!(status, 200);
    assert_eq!(snap["route_calls"], 1);
    assert_eq!(snap["decisions"][0]["outcome"], "APPROVED");
    assert_eq!(snap["decisions"][0]["answered_by"], device_id.as_str());
    assert_eq!(snap["deliveries"][0]["count"], 1);
    assert_eq!(snap["quota_remaining"][APP], 9);
    relay.shutdown().await;
}

#[tokio::test]
async fn http_api_errors_are_json() {
    let relay = start(vec![
        AppConfig::new(TOKEN, APP, 10).with_identity("u", vec![DevicePolicy::Ignore])
    ])
    .await;
    let base = relay.http_url();
    let (_, ek) = ml_kem::MlKem768::generate_keypair();
    let good = b64().encode(ek.to_bytes());

    let cases: Vec<(&str, String, Option<serde_json::Value>, u16)> = vec![
        (
            "POST",
            format!("{base}/v1/apps/{APP}/identities/u/devices"),
            Some(json!({ "pq_public_key": b64().encode([1u8; 100]) })),
            400,
        ),
        (
            "POST",
            format!("{base}/v1/apps/{APP}/identities/u/devices"),
            Some(json!({ "pq_public_key": b64().encode([0xffu8; 1184]) })),
            400,
        ),
        (
            "POST",
            format!("{base}/v1/apps/{APP}/identities/u/devices"),
            Some(json!({ "pq_public_key": "!!!" })),
            400,
        ),
        (
            "POST",
            format!("{base}/v1/apps/{APP}/identities/u/devices"),
            Some(json!({ "nope": 1 })),
            400,
        ),
        (
            "POST",
            format!("{base}/v1/apps/{APP}/identities/u/devices"),
            None,
            400,
        ),
        (
            "POST",
            format!("{base}/v1/apps/no-such-app/identities/u/devices"),
            Some(json!({ "pq_public_key": good })),
            404,
        ),
        (
            "GET",
            format!("{base}/v1/devices/no-such-device/decisions"),
            None,
            404,
        ),
        (
            "POST",
            format!("{base}/v1/devices/no-such-device/decisions/d"),
            Some(json!({ "answer": "approve" })),
            404,
        ),
        (
            "POST",
            format!("{base}/v1/devices/no-such-device/decisions/d"),
            Some(json!({ "answer": "maybe" })),
            400,
        ),
        ("GET", format!("{base}/v1/nothing-here"), None, 404),
        // Rejections by axum itself are JSON too.
        (
            "GET",
            format!("{base}/v1/apps/{APP}/identities/u/devices"),
            None,
            405,
        ),
        ("DELETE", format!("{base}/v1/inspect"), None, 405),
        (
            "POST",
            format!("{base}/v1/apps/{APP}/identities/%FF/devices"),
            Some(json!({ "pq_public_key": good })),
            400,
        ),
        (
            "POST",
            format!("{base}/v1/apps/{APP}/identities/u/devices"),
            Some(json!({ "pq_public_key": "A".repeat(3 << 20) })),
            413,
        ),
    ];
    for (method, url, body, expected) in cases {
        let (status, json) = http(&relay, method, &url, body).await;
        assert_eq!(status, expected, "{method} {url}: {json}");
        assert!(json["error"].is_string(), "{method} {url}: {json}");
    }

    // A simulated device can be listed and set offline/online over HTTP too.
    let sim = relay.device_ids(APP, "u")[0].clone();
    let (status, _) = http(
        &relay,
        "GET",
        &format!("{base}/v1/devices/{sim}/decisions"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = http(
        &relay,
        "POST",
        &format!("{base}/v1/devices/{sim}/online"),
        Some(json!({ "online": false })),
    )
    .await;
    assert_eq!((status, body["online"].clone()), (200, json!(false)));
    // An undelivered decision cannot be answered by this device.
    let (status, _) = http(
        &relay,
        "POST",
        &format!("{base}/v1/devices/{sim}/decisions/never-delivered"),
        Some(json!({ "answer": "approve" })),
    )
    .await;
    assert_eq!(status, 404);
}
