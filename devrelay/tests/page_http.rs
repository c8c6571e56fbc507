//! The device page over plain HTTP (no browser): its files and headers, its API behind the
//! token, the `browser` policy's relay-held key, decryption for the page, long polls.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use noxy_devrelay::proto::DeliveryStatus;
use noxy_devrelay::{AppConfig, DevRelay, DevicePolicy, CONTENT_SECURITY_POLICY};
use serde_json::{json, Value};

const TOKEN: &str = "page-app-token-5b1e";
const APP: &str = "page-app";

async fn start_relay() -> DevRelay {
    start(vec![AppConfig::new(TOKEN, APP, 100).with_identity(
        "alice",
        vec![DevicePolicy::Browser, DevicePolicy::Ignore],
    )])
    .await
}

/// A GET with exactly these headers: (status, headers, body).
async fn get_raw(url: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap, Bytes) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method("GET").uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = tokio::time::timeout(WAIT, client.request(req.body(Full::default()).unwrap()))
        .await
        .expect("HTTP in time")
        .expect("HTTP response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, body)
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_page_is_served_without_the_token_with_strict_headers_and_no_secret() {
    let relay = start_relay().await;
    let base = relay.http_url();
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = get_raw(&format!("{base}{path}"), &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        assert_eq!(
            header(&headers, "content-security-policy"),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
        assert_eq!(header(&headers, "cache-control"), "no-store");
        assert!(header(&headers, "access-control-allow-origin").is_empty());
        let text = String::from_utf8(body.to_vec()).expect("UTF-8");
        assert!(!text.contains(TOKEN), "{path} holds the app token");
        assert!(
            !text.contains(relay.http_token()),
            "{path} holds the access token"
        );
        if path == "/" {
            // No inline script or style: everything comes from the page's own files.
            assert!(text.contains(r#"<script src="/assets/app.js" defer></script>"#));
            assert_eq!(text.matches("<script").count(), 1);
            assert!(!text.contains("style="));
        }
    }
    let csp = CONTENT_SECURITY_POLICY;
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    // The script builds its DOM from text only.
    let (_, _, js) = get_raw(&format!("{base}/assets/app.js"), &[]).await;
    let js = String::from_utf8(js.to_vec()).unwrap();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(sink), "app.js uses {sink}");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn the_page_and_its_api_refuse_a_foreign_host_and_the_api_wants_the_token() {
    let relay = start_relay().await;
    let base = relay.http_url();
    for path in ["/", "/assets/app.js", "/v1/page/identities"] {
        let (status, _, _) = get_raw(&format!("{base}{path}"), &[("host", "evil.example")]).await;
        assert_eq!(status, 403, "{path}");
    }
    let device = relay.device_ids(APP, "alice")[0].clone();
    for path in [
        "/v1/page/identities".to_string(),
        format!("/v1/page/devices/{device}/decisions"),
    ] {
        let (status, _, _) = get_raw(&format!("{base}{path}"), &[]).await;
        assert_eq!(status, 401, "{path}");
        let (status, _, _) = get_raw(
            &format!("{base}{path}"),
            &[("authorization", "Bearer not-the-token")],
        )
        .await;
        assert_eq!(status, 401, "{path}");
    }
    // Adding a device is a write: JSON only, as for every POST of the API.
    let url = format!("{base}/v1/page/apps/{APP}/identities/bob/browser-devices");
    let bearer = format!("Bearer {}", relay.http_token());
    let (status, _) = http_with(
        "POST",
        &url,
        Some("{}".into()),
        &[("authorization", &bearer), ("content-type", "text/plain")],
    )
    .await;
    assert_eq!(status, 415);
    let (status, _) = http_with(
        "POST",
        &url,
        Some("{}".into()),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 401);
    assert!(relay.device_ids(APP, "bob").is_empty());
    relay.shutdown().await;
}

#[tokio::test]
async fn identities_list_app_names_and_devices_never_tokens() {
    let relay = start_relay().await;
    let base = relay.http_url();
    let (status, body) = http(&relay, "GET", format!("{base}/v1/page/identities"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains(TOKEN));
    assert_eq!(body["apps"], json!([APP]));
    let ids = relay.device_ids(APP, "alice");
    assert_eq!(
        body["identities"],
        json!([{
            "app_name": APP,
            "identity_id": "alice",
            "devices": [
                { "device_id": ids[0], "policy": "browser", "online": true, "browser": true },
                { "device_id": ids[1], "policy": "ignore", "online": true, "browser": false },
            ],
        }])
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn a_browser_device_added_over_http_has_a_relay_held_key_and_limits() {
    let relay = start_relay().await;
    let mut c = client(&relay).await;
    let base = relay.http_url();
    let add = |app: &str, identity: &str| {
        http(
            &relay,
            "POST",
            format!("{base}/v1/page/apps/{app}/identities/{identity}/browser-devices"),
            Some(json!({})),
        )
    };
    let (status, body) = add(APP, "bob%40example.com").await;
    assert_eq!(status, 200, "{body}");
    let device = body["device_id"].as_str().unwrap().to_string();
    assert_eq!(
        relay.device_ids(APP, "bob@example.com"),
        vec![device.clone()]
    );
    let devices = identity_devices(&mut c, TOKEN, "bob@example.com")
        .await
        .unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].pq_public_key.len(), 1184);

    // The agent's encryption for that key is decrypted by the relay for the page.
    let req = route_request(
        &devices[0].pq_public_key,
        &device,
        "r-bob",
        "d-bob",
        60,
        PAYLOAD,
    );
    assert_eq!(
        route(&mut c, TOKEN, req).await.unwrap().status,
        DeliveryStatus::Delivered as i32
    );
    let (status, inbox) = http(
        &relay,
        "GET",
        format!("{base}/v1/page/devices/{device}/decisions"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{inbox}");
    assert_eq!(inbox["pending"][0]["decision_id"], "d-bob");
    assert_eq!(inbox["pending"][0]["title"], "List files");

    let (status, _) = add("no-such-app", "bob").await;
    assert_eq!(status, 404);
    let (status, _) = add(APP, &"x".repeat(513)).await;
    assert_eq!(status, 400);
    // alice has two devices; with the default limit of 32 per identity, 30 more fit.
    for _ in 0..30 {
        assert_eq!(add(APP, "alice").await.0, 200);
    }
    let (status, body) = add(APP, "alice").await;
    assert_eq!(status, 409, "{body}");
    relay.shutdown().await;
}

#[tokio::test]
async fn the_page_sees_the_decrypted_payload_and_its_answer_reaches_the_agent() {
    let relay = start_relay().await;
    let mut c = client(&relay).await;
    let base = relay.http_url();
    let ids = relay.device_ids(APP, "alice");
    let (browser, ignoring) = (ids[0].clone(), ids[1].clone());
    let key = device_key(&mut c, TOKEN, "alice", &browser).await;
    let payload = br#"{"amount":123456789012345678901234567890,"kind":"transfer","to":"0xabc","summary":"Send it","title":"Pay <Bob>"}"#;
    let req = route_request(&key, &browser, "r1", "d1", 90, payload);
    route(&mut c, TOKEN, req).await.unwrap();
    // The same decision on the other device, which the page cannot be.
    let other_key = device_key(&mut c, TOKEN, "alice", &ignoring).await;
    let req = route_request(&other_key, &ignoring, "r1b", "d1", 90, payload);
    route(&mut c, TOKEN, req).await.unwrap();
    // And one the browser device cannot decrypt (encrypted for the other device's key).
    let req = route_request(&other_key, &browser, "r2", "d2", 90, payload);
    route(&mut c, TOKEN, req).await.unwrap();

    let url = format!("{base}/v1/page/devices/{browser}/decisions");
    let (status, inbox) = http(&relay, "GET", &url, None).await;
    assert_eq!(status, 200, "{inbox}");
    assert_eq!(inbox["identity_id"], "alice");
    assert_eq!(inbox["app_name"], APP);
    assert_eq!(inbox["pending_total"], 2);
    let d1 = &inbox["pending"][0];
    assert_eq!(d1["decision_id"], "d1");
    assert_eq!(d1["outcome"], "PENDING");
    assert_eq!(d1["title"], "Pay <Bob>");
    assert_eq!(d1["summary"], "Send it");
    assert_eq!(d1["kind"], "transfer");
    assert_eq!(d1["ttl_seconds"], 90);
    let left = d1["expires_in_ms"].as_u64().unwrap();
    assert!(left > 60_000 && left <= 90_000, "{left}");
    assert_eq!(
        d1["payload_pretty"],
        "{\n  \"title\": \"Pay <Bob>\",\n  \"summary\": \"Send it\",\n  \"kind\": \"transfer\",\n  \
         \"amount\": 123456789012345678901234567890,\n  \"to\": \"0xabc\"\n}"
    );
    let d2 = &inbox["pending"][1];
    assert_eq!(d2["decision_id"], "d2");
    assert_eq!(d2["error"], "AES-256-GCM authentication failed");
    assert_eq!(d2["payload_pretty"], Value::Null);
    // The relay decrypted it as a device would, and counts what it could not decrypt.
    assert!(
        relay
            .wait_for(WAIT, |i| i.decrypted.iter().any(|d| d.device_id == browser)
                && i.decrypt_failures == 1)
            .await
    );
    // The other device's id, or an unknown one, is no browser device.
    for id in [&ignoring, &"dev-nope".to_string()] {
        let (status, _) = http(
            &relay,
            "GET",
            format!("{base}/v1/page/devices/{id}/decisions"),
            None,
        )
        .await;
        assert_eq!(status, 404);
    }

    // The page answers through the device API; the agent sees it.
    let (status, body) = http(
        &relay,
        "POST",
        format!("{base}/v1/devices/{browser}/decisions/d1"),
        Some(json!({ "answer": "approve" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = outcome(&mut c, TOKEN, "d1", "alice").await.unwrap();
    assert!(!r.pending);
    assert_eq!(
        r.outcome,
        noxy_devrelay::proto::DecisionOutcome::Approved as i32
    );
    let (_, inbox) = http(&relay, "GET", &url, None).await;
    assert_eq!(inbox["pending_total"], 1);
    assert_eq!(inbox["history"][0]["decision_id"], "d1");
    assert_eq!(inbox["history"][0]["outcome"], "APPROVED");
    assert_eq!(inbox["history"][0]["answered_here"], true);
    assert_eq!(inbox["history"][0]["expires_in_ms"], 0);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_long_poll_answers_when_something_changes() {
    let relay = start_relay().await;
    let mut c = client(&relay).await;
    let base = relay.http_url();
    let browser = relay.device_ids(APP, "alice")[0].clone();
    let url = format!("{base}/v1/page/devices/{browser}/decisions");
    let (_, first) = http(&relay, "GET", &url, None).await;
    let version = first["version"].as_u64().unwrap();
    assert_eq!(first["pending"], json!([]));

    // A stale version answers at once.
    if version > 0 {
        let (status, _) = http(&relay, "GET", format!("{url}?since={}", version - 1), None).await;
        assert_eq!(status, 200);
    }
    let (status, _) = http(&relay, "GET", format!("{url}?since=x"), None).await;
    assert_eq!(status, 400);

    // The current version waits for a change: a decision delivered to the device.
    let poll = {
        let auth = format!("Bearer {}", relay.http_token());
        let url = format!("{url}?since={version}");
        tokio::spawn(async move {
            http_with(
                "GET",
                url,
                None,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
            )
            .await
        })
    };
    let key = device_key(&mut c, TOKEN, "alice", &browser).await;
    route(
        &mut c,
        TOKEN,
        route_request(&key, &browser, "r-lp", "d-lp", 60, PAYLOAD),
    )
    .await
    .unwrap();
    // Whether the poll started waiting before or after the delivery, it answers with it.
    let (status, body) = tokio::time::timeout(WAIT, poll).await.unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["version"].as_u64().unwrap() > version);
    assert_eq!(body["pending"][0]["decision_id"], "d-lp");

    relay.shutdown().await;
}
