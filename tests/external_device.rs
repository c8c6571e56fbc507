//! A device the relay did not create: registered over the development relay's HTTP API with a
//! key pair generated here, it receives a decision routed by the library, decrypts it with its
//! own secret key, and approves it over HTTP.

mod common;

use base64::Engine as _;
use common::*;
use noxy::crypto::device::DeviceKeyPair;
use noxy::crypto::EncryptedDecision;
use noxy::{DecisionOutcome, Payload, SendOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 exchange over loopback (the API is tiny; a client library would be overkill).
async fn http(
    base_url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let authority = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(value: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn an_http_registered_device_decrypts_and_approves_a_decision() {
    let relay = start_relay().await;
    let base = relay.http_url();
    let token = relay.http_token();
    let keys = DeviceKeyPair::generate().unwrap();
    let (status, registered) = http(
        &base,
        token,
        "POST",
        &format!("/v1/apps/{APP}/identities/dana/devices"),
        Some(serde_json::json!({ "pq_public_key": b64(keys.public_key()) })),
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let device_id = registered["device_id"].as_str().unwrap().to_owned();

    let client = client(&relay, TOKEN);
    let payload = Payload::from_json_str(r#"{"kind":"email","title":"Send the report?"}"#).unwrap();
    let sent = client
        .send_decision("dana", &payload, &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(sent.deliveries.len(), 1);
    assert_eq!(sent.deliveries[0].device_id, device_id);

    let (status, decisions) = http(
        &base,
        token,
        "GET",
        &format!("/v1/devices/{device_id}/decisions"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let decisions = decisions.as_array().unwrap();
    assert_eq!(decisions.len(), 1);
    let delivered = &decisions[0];
    assert_eq!(delivered["decision_id"], sent.decision_id.as_str());
    let encrypted = EncryptedDecision {
        kyber_ct: unb64(&delivered["kyber_ct"]),
        nonce: unb64(&delivered["nonce"]).try_into().unwrap(),
        ciphertext: unb64(&delivered["ciphertext"]),
    };
    let plaintext = keys.decrypt(&encrypted).unwrap();
    assert_eq!(plaintext, payload.as_bytes());
    assert_eq!(noxy::crypto::sha256(&plaintext), sent.plaintext_sha256);

    let (status, answered) = http(
        &base,
        token,
        "POST",
        &format!("/v1/devices/{device_id}/decisions/{}", sent.decision_id),
        Some(serde_json::json!({ "answer": "approve" })),
    )
    .await;
    assert_eq!(status, 200, "{answered}");
    let state = client
        .wait_for_decision_outcome(&sent.decision_id, "dana", &quick_wait())
        .await
        .unwrap();
    assert_eq!(state.outcome, DecisionOutcome::Approved);

    // First answer wins: a late reject is refused.
    let (status, _) = http(
        &base,
        token,
        "POST",
        &format!("/v1/devices/{device_id}/decisions/{}", sent.decision_id),
        Some(serde_json::json!({ "answer": "reject" })),
    )
    .await;
    assert_eq!(status, 409);
}
