//! The relay is a local tool that no web page can drive: the HTTP API wants its access
//! token, a `Host` naming the relay and a JSON content type; non-loopback binds are refused
//! unless allowed.

mod common;

use std::net::SocketAddr;

use base64::Engine as _;
use common::*;
use ml_kem::kem::{Kem, KeyExport};
use noxy_devrelay::proto::DeliveryStatus;
use noxy_devrelay::{AppConfig, DevRelay, DevRelayConfig, DevRelayError, DevicePolicy, Limits};
use serde_json::json;

const TOKEN: &str = "dev-token";
const APP: &str = "dev-app";

async fn start_relay() -> DevRelay {
    start(vec![
        AppConfig::new(TOKEN, APP, 10).with_identity("demo-user", vec![DevicePolicy::Ignore])
    ])
    .await
}

fn new_public_key() -> String {
    let (_, ek) = ml_kem::MlKem768::generate_keypair();
    base64::engine::general_purpose::STANDARD.encode(ek.to_bytes())
}

#[tokio::test]
async fn a_cross_site_request_cannot_approve_or_register() {
    let relay = start_relay().await;
    let mut c = client(&relay).await;
    // A decision on a device whose policy is `ignore`: only a forged answer could decide it.
    let (device, out) = route_first(
        &relay,
        &mut c,
        (TOKEN, APP),
        "demo-user",
        "r-csrf",
        "d-csrf",
        60,
    )
    .await;
    assert_eq!(out.status, DeliveryStatus::Delivered as i32);
    let base = relay.http_url();
    let answer_url = format!("{base}/v1/devices/{device}/decisions/d-csrf");
    let register_url = format!("{base}/v1/apps/{APP}/identities/demo-user/devices");
    let answer = json!({ "answer": "approve" }).to_string();
    let register = json!({ "pq_public_key": new_public_key() }).to_string();

    // What a page can send without a CORS preflight, through DNS rebinding or not.
    let bearer = format!("Bearer {}", relay.http_token());
    for (host, auth, content_type, expected) in [
        // The review's request: a simple POST naming the attacker's host.
        (Some("evil.example"), None, "text/plain", 403),
        (
            Some("evil.example:80"),
            None,
            "text/plain;charset=UTF-8",
            403,
        ),
        // The relay's own host name, but no token (a plain cross-site request).
        (None, None, "text/plain", 401),
        (None, None, "application/x-www-form-urlencoded", 401),
        (None, None, "application/json", 401),
        (None, Some("Bearer wrong"), "application/json", 401),
        // Even with the token, a rebinding page's Host is refused...
        (
            Some("evil.example"),
            Some(bearer.as_str()),
            "application/json",
            403,
        ),
        // ...and so is a body type other than JSON.
        (None, Some(bearer.as_str()), "text/plain", 415),
        (None, Some(bearer.as_str()), "multipart/form-data", 415),
    ] {
        for (url, body) in [(&answer_url, &answer), (&register_url, &register)] {
            let mut headers = vec![("content-type", content_type)];
            if let Some(host) = host {
                headers.push(("host", host));
            }
            if let Some(auth) = auth {
                headers.push(("authorization", auth));
            }
            let (status, json) = http_with("POST", url, Some(body.clone()), &headers).await;
            assert_eq!(status, expected, "{headers:?} {url}: {json}");
            assert!(json["error"].is_string(), "{json}");
        }
    }
    // Nothing happened: the decision is pending, no device was registered.
    let r = outcome(&mut c, TOKEN, "d-csrf", "demo-user").await.unwrap();
    assert!(r.pending);
    assert_eq!(relay.device_ids(APP, "demo-user"), vec![device.clone()]);

    // The same requests done right work.
    let (status, json) = http(
        &relay,
        "POST",
        &answer_url,
        Some(json!({ "answer": "approve" })),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["outcome"], "APPROVED");
    relay.shutdown().await;
}

#[tokio::test]
async fn every_route_wants_the_token_and_a_host_naming_the_relay() {
    let relay = start_relay().await;
    let other = start_relay().await;
    assert_ne!(
        relay.http_token(),
        other.http_token(),
        "a new token per run"
    );
    assert_eq!(relay.http_token().len(), 64);
    let port = relay.http_addr().port();
    let url = format!("{}/v1/inspect", relay.http_url());
    let bearer = format!("Bearer {}", relay.http_token());
    let other_bearer = format!("Bearer {}", other.http_token());

    // Reading (inspection, a device's ciphertexts) needs the token too.
    let (status, _) = http_with("GET", &url, None, &[]).await;
    assert_eq!(status, 401);
    let (status, _) = http_with("GET", &url, None, &[("authorization", &other_bearer)]).await;
    assert_eq!(status, 401, "another relay's token");
    let (status, _) = http_with(
        "GET",
        &format!("{}/v1/nothing-here", relay.http_url()),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 401, "even for a route that does not exist");

    for (host, expected) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("LOCALHOST:{port}"), 200),
        (format!("[::1]:{port}"), 200),
        (format!("127.0.0.1:{}", port.wrapping_add(1)), 403),
        ("127.0.0.1".to_string(), 403),
        ("localhost".to_string(), 403),
        (format!("evil.example:{port}"), 403),
        (format!("localhost.evil.example:{port}"), 403),
    ] {
        let (status, json) = http_with(
            "GET",
            &url,
            None,
            &[("host", host.as_str()), ("authorization", &bearer)],
        )
        .await;
        assert_eq!(status, expected, "Host: {host}: {json}");
    }
    // The content type may carry parameters.
    let sim = relay.device_ids(APP, "demo-user")[0].clone();
    let (status, json) = http_with(
        "POST",
        &format!("{}/v1/devices/{sim}/online", relay.http_url()),
        Some(json!({ "online": true }).to_string()),
        &[
            ("authorization", &bearer),
            ("content-type", "Application/JSON; charset=utf-8"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{json}");
}

#[tokio::test]
async fn non_loopback_addresses_are_refused_unless_allowed() {
    for (grpc, http) in [
        ("0.0.0.0:0", "127.0.0.1:0"),
        ("127.0.0.1:0", "0.0.0.0:0"),
        ("[::]:0", "127.0.0.1:0"),
    ] {
        let err = DevRelay::start(DevRelayConfig {
            grpc_addr: grpc.parse::<SocketAddr>().unwrap(),
            http_addr: http.parse::<SocketAddr>().unwrap(),
            apps: vec![AppConfig::new(TOKEN, APP, 1)],
            ..DevRelayConfig::default()
        })
        .await
        .unwrap_err();
        assert!(matches!(err, DevRelayError::Config(_)), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("not a loopback address"), "{message}");
        assert!(message.contains("--allow-non-loopback"), "{message}");
    }
    // Another loopback address is fine.
    let relay = DevRelay::start(DevRelayConfig {
        grpc_addr: "[::1]:0".parse().unwrap(),
        apps: vec![AppConfig::new(TOKEN, APP, 1)],
        ..DevRelayConfig::default()
    })
    .await;
    // (A machine without IPv6 cannot bind ::1 at all; the point is that it is not refused.)
    if let Err(e) = &relay {
        assert!(matches!(e, DevRelayError::Io { .. }), "{e:?}");
    }
}

#[tokio::test]
async fn registrations_beyond_the_limits_are_refused_with_409() {
    let relay = DevRelay::start(DevRelayConfig {
        apps: vec![
            AppConfig::new(TOKEN, APP, 10).with_identity("demo-user", vec![DevicePolicy::Ignore])
        ],
        limits: Limits {
            max_devices_per_identity: 2,
            max_registered_devices_per_app: 3,
            ..Limits::default()
        },
        ..DevRelayConfig::default()
    })
    .await
    .unwrap();
    let base = relay.http_url();
    let register = |identity: &'static str| {
        let url = format!("{base}/v1/apps/{APP}/identities/{identity}/devices");
        let relay = &relay;
        async move {
            http(
                relay,
                "POST",
                url,
                Some(json!({ "pq_public_key": new_public_key() })),
            )
            .await
        }
    };
    assert_eq!(register("demo-user").await.0, 200);
    let (status, json) = register("demo-user").await;
    assert_eq!(status, 409, "{json}");
    assert!(json["error"].as_str().unwrap().contains("limit"), "{json}");
    assert_eq!(register("x").await.0, 200);
    assert_eq!(register("y").await.0, 200);
    let (status, json) = register("z").await;
    assert_eq!(status, 409, "{json}");
    assert_eq!(relay.device_ids(APP, "demo-user").len(), 2);
    assert!(relay.device_ids(APP, "z").is_empty());
}
