//! Helpers shared by the integration tests: a TLS gRPC client trusting the relay's CA, the
//! agent-side encryption (ML-KEM-768 encapsulation, HKDF-SHA256, AES-256-GCM), polling, HTTP.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit};
use bytes::Bytes;
use hkdf::Hkdf;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ml_kem::kem::Encapsulate;
use noxy_devrelay::proto::agent_service_client::AgentServiceClient;
use noxy_devrelay::proto::{
    DeliveryOutcome, GetDecisionOutcomeRequest, GetDecisionOutcomeResponse,
    GetIdentityDevicesRequest, GetQuotaRequest, GetQuotaResponse, IdentityDevice,
    RouteDecisionRequest,
};
use noxy_devrelay::{DevRelay, DevRelayConfig};
use sha2::Sha256;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Request, Status};

pub type Grpc = AgentServiceClient<Channel>;

/// Hard bound on every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(10);

pub async fn start(apps: Vec<noxy_devrelay::AppConfig>) -> DevRelay {
    DevRelay::start(DevRelayConfig {
        apps,
        ..DevRelayConfig::default()
    })
    .await
    .expect("relay starts")
}

/// A gRPC client over TLS trusting only the relay's CA.
pub async fn client(relay: &DevRelay) -> Grpc {
    client_for(&relay.endpoint(), &relay.ca_pem()).await
}

pub async fn client_for(endpoint: &str, ca_pem: &str) -> Grpc {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(endpoint.to_string())
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .expect("TLS connection to the relay");
    AgentServiceClient::new(channel)
}

/// A request with `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    req
}

/// Encrypts `plaintext` for a device's ML-KEM-768 public key as the agent side does:
/// returns (kyber_ct, nonce, ciphertext‖tag).
pub fn encrypt(pq_public_key: &[u8], plaintext: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let key = ml_kem::array::Array::try_from(pq_public_key).expect("1184-byte key");
    let ek = ml_kem::ml_kem_768::EncapsulationKey::new(&key).expect("valid key");
    let (ct, shared) = ek.encapsulate();
    let mut aes_key = [0u8; 32];
    Hkdf::<Sha256>::new(None, shared.as_slice())
        .expand(&[], &mut aes_key)
        .expect("hkdf");
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).expect("random");
    let cipher = Aes256Gcm::new_from_slice(&aes_key).expect("key");
    let ciphertext = cipher
        .encrypt(&aes_gcm::Nonce::from(nonce), plaintext)
        .expect("encrypt");
    (ct.to_vec(), nonce.to_vec(), ciphertext)
}

/// The opposite, with a device's secret key.
pub fn decrypt(
    dk: &ml_kem::ml_kem_768::DecapsulationKey,
    kyber_ct: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
) -> Vec<u8> {
    use ml_kem::kem::Decapsulate;
    let ct = ml_kem::ml_kem_768::Ciphertext::try_from(kyber_ct).expect("1088 bytes");
    let shared = dk.decapsulate(&ct);
    let mut aes_key = [0u8; 32];
    Hkdf::<Sha256>::new(None, shared.as_slice())
        .expand(&[], &mut aes_key)
        .expect("hkdf");
    let cipher = Aes256Gcm::new_from_slice(&aes_key).expect("key");
    let nonce = aes_gcm::Nonce::try_from(nonce).expect("12 bytes");
    cipher.decrypt(&nonce, ciphertext).expect("decrypts")
}

pub const PAYLOAD: &[u8] =
    br#"{"kind":"tool_call","tool":"shell","args":{"cmd":"ls"},"title":"List files","summary":"ls"}"#;

pub async fn quota(c: &mut Grpc, token: &str) -> Result<GetQuotaResponse, Status> {
    c.get_quota(authed(
        token,
        GetQuotaRequest {
            request_id: "q".into(),
        },
    ))
    .await
    .map(|r| r.into_inner())
}

pub async fn identity_devices(
    c: &mut Grpc,
    token: &str,
    identity: &str,
) -> Result<Vec<IdentityDevice>, Status> {
    c.get_identity_devices(authed(
        token,
        GetIdentityDevicesRequest {
            request_id: "devices".into(),
            identity_id: identity.into(),
        },
    ))
    .await
    .map(|r| r.into_inner().devices)
}

/// The pq public key of a device, through GetIdentityDevices.
pub async fn device_key(c: &mut Grpc, token: &str, identity: &str, device_id: &str) -> Vec<u8> {
    identity_devices(c, token, identity)
        .await
        .expect("GetIdentityDevices")
        .into_iter()
        .find(|d| d.device_id == device_id)
        .expect("device listed")
        .pq_public_key
}

/// A well-formed RouteDecision carrying `plaintext` encrypted for `pq_public_key`.
pub fn route_request(
    pq_public_key: &[u8],
    device_id: &str,
    request_id: &str,
    decision_id: &str,
    ttl_seconds: u32,
    plaintext: &[u8],
) -> RouteDecisionRequest {
    let (kyber_ct, nonce, ciphertext) = encrypt(pq_public_key, plaintext);
    RouteDecisionRequest {
        request_id: request_id.into(),
        ciphertext,
        ttl_seconds,
        target_device_id: device_id.into(),
        kyber_ct,
        nonce,
        decision_id: decision_id.into(),
    }
}

/// Routes PAYLOAD to the first device of `identity` in the app `(token, app name)`:
/// (device id, outcome).
pub async fn route_first(
    relay: &DevRelay,
    c: &mut Grpc,
    (token, app): (&str, &str),
    identity: &str,
    request_id: &str,
    decision_id: &str,
    ttl: u32,
) -> (String, DeliveryOutcome) {
    let device = relay.device_ids(app, identity)[0].clone();
    let key = device_key(c, token, identity, &device).await;
    let req = route_request(&key, &device, request_id, decision_id, ttl, PAYLOAD);
    let out = route(c, token, req).await.expect("RouteDecision");
    (device, out)
}

pub async fn route(
    c: &mut Grpc,
    token: &str,
    req: RouteDecisionRequest,
) -> Result<DeliveryOutcome, Status> {
    c.route_decision(authed(token, req))
        .await
        .map(|r| r.into_inner())
}

pub async fn outcome(
    c: &mut Grpc,
    token: &str,
    decision_id: &str,
    identity_id: &str,
) -> Result<GetDecisionOutcomeResponse, Status> {
    c.get_decision_outcome(authed(
        token,
        GetDecisionOutcomeRequest {
            request_id: "poll".into(),
            decision_id: decision_id.into(),
            identity_id: identity_id.into(),
        },
    ))
    .await
    .map(|r| r.into_inner())
}

/// Polls GetDecisionOutcome (20 ms apart, bounded by WAIT) until it is terminal.
pub async fn wait_terminal(
    c: &mut Grpc,
    token: &str,
    decision_id: &str,
    identity_id: &str,
) -> GetDecisionOutcomeResponse {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = outcome(c, token, decision_id, identity_id)
            .await
            .expect("GetDecisionOutcome");
        if !r.pending {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "decision {decision_id} still pending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A minimal HTTP/1 client for the relay's HTTP API, with its access token and a JSON
/// content type: (status, JSON body).
pub async fn http(
    relay: &DevRelay,
    method: &str,
    url: impl AsRef<str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {}", relay.http_token());
    http_with(
        method,
        url,
        body.map(|b| b.to_string()),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
    )
    .await
}

/// The same with exactly the given headers (hyper adds `Host` from the URL unless one is
/// given).
pub async fn http_with(
    method: &str,
    url: impl AsRef<str>,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url.as_ref());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("HTTP in time")
        .expect("HTTP response");
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("HTTP body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// A child process (the relay binary) killed and reaped when dropped, so that a failing test
/// leaves no relay behind.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) for the binary's ready file, skipping one whose `http_token` is `stale` (the
/// file a killed run left behind).
pub fn wait_for_ready_file(ready: &std::path::Path, stale: Option<&str>) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(json) = std::fs::read_to_string(ready)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        {
            if json["http_token"].as_str() != stale {
                return json;
            }
        }
        assert!(Instant::now() < deadline, "no fresh ready file");
        std::thread::sleep(Duration::from_millis(20));
    }
}
