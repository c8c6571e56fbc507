//! The device page: a person *is* a device in a browser. It picks an identity (or adds a
//! `browser` device to one), sees each decision delivered to that device decrypted and
//! pretty-printed, and approves or rejects it.
//!
//! A `browser` device is a device whose ML-KEM-768 key pair the relay holds, like a simulated
//! device's; it never answers by itself. The relay decrypts its decisions on request, with
//! the same code (`crate::device::decrypt`) its simulated devices use, so the page shows what
//! a device sees. The plaintext lives only while a request is answered: it is never stored.
//!
//! | route | token | answer |
//! |---|---|---|
//! | `GET /`, `GET /assets/{app.js,app.css,icon.svg}` | no | the page (embedded in the binary) |
//! | `GET /v1/page/identities[?since=V]` | yes | `{"version", "apps", "identities": [{"app_name", "identity_id", "devices": [{"device_id", "policy", "online", "browser"}]}]}` |
//! | `POST /v1/page/apps/{app_name}/identities/{identity_id}/browser-devices` | yes | `{"device_id"}` |
//! | `GET /v1/page/devices/{device_id}/decisions[?since=V]` | yes | `{"version", "pending": [...], "history": [...], ...}` |
//!
//! Answers go through the device API's `POST /v1/devices/{device_id}/decisions/{decision_id}`.
//!
//! Live updates are long polls: with `?since=V`, where `V` is the `version` of the previous
//! answer, the relay answers as soon as its state has changed since then (or after
//! [`LONG_POLL`] with the same content). A long poll is an ordinary `fetch`, so it carries
//! `Authorization: Bearer <token>` like every API call; `EventSource` could not.
//!
//! The page's files need no token: they hold no secret. The token reaches the page in the
//! URL's fragment (`/#token=…`, printed at start), which browsers never send to a server;
//! the page moves it to `sessionStorage` and removes it from the address bar. Every response
//! of these routes forbids framing, sniffing and referrers, and its Content-Security-Policy
//! allows only the page's own script and style (no inline script, Trusted Types required,
//! so no HTML can be built from strings). Every API route keeps the device API's checks
//! (`Host`, token, JSON content type).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::device;
use crate::http_api::{allowed_hosts, ApiError, Body, Params};
use crate::state::{Outcome, PageInbox, PageItem, RegisterError, Relay};

/// How long a long poll waits for a change before it answers anyway.
pub(crate) const LONG_POLL: Duration = Duration::from_secs(25);
/// Pending decisions listed at most (the oldest first).
pub(crate) const MAX_PENDING: usize = 100;
/// Decided or expired decisions listed at most (the newest first).
pub(crate) const MAX_HISTORY: usize = 50;
/// Pretty-printed payload text shown at most per decision.
pub(crate) const MAX_PAYLOAD_TEXT: usize = 256 * 1024;
/// The keys shown first, and on their own, when a payload has them.
const HEADLINE_KEYS: [&str; 3] = ["title", "summary", "kind"];

/// The Content-Security-Policy of the page: its own script, style and icon only; no inline
/// script or style, no plugins, no framing, no form posts, and Trusted Types required for
/// script sinks (`innerHTML` and the like throw).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
     trusted-types 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const ICON_SVG: &str = include_str!("assets/icon.svg");

type AppState = Arc<Relay>;

/// The page's API routes; the device API's gate (`Host`, token, JSON) wraps them.
pub(crate) fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/page/identities", get(identities))
        .route(
            "/v1/page/apps/{app_name}/identities/{identity_id}/browser-devices",
            post(add_browser_device),
        )
        .route("/v1/page/devices/{device_id}/decisions", get(decisions))
}

/// The page's files: no token, but `Host` must name the relay, as for the API.
pub(crate) fn page_routes(addr: SocketAddr) -> Router {
    let hosts: Arc<[String]> = allowed_hosts(addr).into();
    Router::new()
        .route("/", get(|| async { asset("text/html", INDEX_HTML) }))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css", APP_CSS) }),
        )
        .route(
            "/assets/icon.svg",
            get(|| async { asset("image/svg+xml", ICON_SVG) }),
        )
        .layer(middleware::from_fn_with_state(hosts, host_gate))
}

/// Refuses a `Host` that does not name the relay (DNS rebinding), as the API's gate does.
async fn host_gate(State(hosts): State<Arc<[String]>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    if !host.is_some_and(|h| hosts.contains(&h)) {
        return (
            StatusCode::FORBIDDEN,
            "the Host header must name this relay (127.0.0.1, localhost or [::1] with its port)",
        )
            .into_response();
    }
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let content_type = match content_type {
        "image/svg+xml" => HeaderValue::from_static("image/svg+xml"),
        "text/html" => HeaderValue::from_static("text/html; charset=utf-8"),
        "text/css" => HeaderValue::from_static("text/css; charset=utf-8"),
        _ => HeaderValue::from_static("text/javascript; charset=utf-8"),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `since=<u64>` from the query string, if given.
fn since(uri: &Uri) -> Result<Option<u64>, ApiError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("since=") {
            return value
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request("since must be a version number"));
        }
    }
    Ok(None)
}

/// The version to answer with: now, or after a change since `since` (a long poll).
async fn wait_for_change(relay: &Relay, since: Option<u64>) -> u64 {
    match since {
        Some(seen) => relay.changed_since(seen, LONG_POLL).await,
        None => relay.version(),
    }
}

#[derive(Serialize)]
struct DeviceView {
    device_id: String,
    /// The policy's spec string; `null` for a device registered over HTTP with its own key.
    policy: Option<String>,
    online: bool,
    /// Whether the page can be this device.
    browser: bool,
}

#[derive(Serialize)]
struct IdentityView {
    app_name: String,
    identity_id: String,
    devices: Vec<DeviceView>,
}

async fn identities(State(relay): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let version = wait_for_change(&relay, since(&uri)?).await;
    let (apps, identities) = relay.page_identities();
    let identities: Vec<IdentityView> = identities
        .into_iter()
        .map(|i| IdentityView {
            app_name: i.app_name,
            identity_id: i.identity_id,
            devices: i
                .devices
                .into_iter()
                .map(|d| DeviceView {
                    browser: d.policy.as_deref() == Some("browser"),
                    device_id: d.device_id,
                    policy: d.policy,
                    online: d.online,
                })
                .collect(),
        })
        .collect();
    Ok(Json(json!({ "version": version, "apps": apps, "identities": identities })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

async fn add_browser_device(
    State(relay): State<AppState>,
    Params((app_name, identity_id)): Params<(String, String)>,
    Body(NoFields {}): Body<NoFields>,
) -> Result<Response, ApiError> {
    let device_id = relay
        .add_browser_device(&app_name, &identity_id)
        .map_err(|e| match e {
            RegisterError::UnknownApp => ApiError::not_found(format!("no app named {app_name:?}")),
            RegisterError::Invalid(msg) => ApiError::bad_request(msg),
            RegisterError::Limit(msg) => ApiError::new(StatusCode::CONFLICT, msg),
        })?;
    tracing::info!(app = %app_name, %device_id, "browser device added");
    Ok(Json(json!({ "device_id": device_id })).into_response())
}

/// A decision as the page shows it.
#[derive(Serialize, Default)]
struct DecisionView {
    decision_id: String,
    request_id: String,
    /// `PENDING`, `APPROVED`, `REJECTED` or `EXPIRED`.
    outcome: &'static str,
    delivered_at_unix_ms: u64,
    ttl_seconds: u32,
    /// Time left before it expires, in ms (0 once decided or expired).
    expires_in_ms: u64,
    answered_by: Option<String>,
    /// Whether this device's answer decided it.
    answered_here: bool,
    /// `title`, `summary`, `kind` of the payload when present (a string as is, anything else
    /// as JSON text).
    title: Option<String>,
    summary: Option<String>,
    kind: Option<String>,
    /// The payload, pretty-printed, `title`, `summary` and `kind` first.
    payload_pretty: Option<String>,
    /// The text was cut at [`MAX_PAYLOAD_TEXT`] bytes.
    payload_truncated: bool,
    /// Why the device could not decrypt it (then there is no payload).
    error: Option<&'static str>,
}

#[derive(Serialize)]
struct InboxView {
    version: u64,
    device_id: String,
    app_name: String,
    identity_id: String,
    /// Pending decisions, the oldest first, at most [`MAX_PENDING`].
    pending: Vec<DecisionView>,
    pending_total: usize,
    /// Decided and expired ones, the newest first, at most [`MAX_HISTORY`].
    history: Vec<DecisionView>,
    history_total: usize,
}

async fn decisions(
    State(relay): State<AppState>,
    Params(device_id): Params<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let since = since(&uri)?;
    let not_browser = || ApiError::not_found("no browser device with this id");
    // An unknown device fails at once, not after a long poll.
    if since.is_some() && relay.page_inbox(&device_id).is_none() {
        return Err(not_browser());
    }
    // The version is read before the inbox: a change after it is seen by the next poll.
    let version = wait_for_change(&relay, since).await;
    let inbox = relay.page_inbox(&device_id).ok_or_else(not_browser)?;
    // ML-KEM decapsulation and AES-GCM, up to MAX_PENDING + MAX_HISTORY times: off the
    // runtime's worker threads.
    let view = tokio::task::spawn_blocking(move || inbox_view(version, device_id, inbox))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "decrypting for the page failed",
            )
        })?;
    Ok(Json(view).into_response())
}

fn inbox_view(version: u64, device_id: String, inbox: PageInbox) -> InboxView {
    let PageInbox {
        secret,
        app_name,
        identity_id,
        items,
    } = inbox;
    let (pending, done): (Vec<PageItem>, Vec<PageItem>) = items
        .into_iter()
        .partition(|i| i.outcome == Outcome::Pending);
    let (pending_total, history_total) = (pending.len(), done.len());
    let show = |item: &PageItem| decision_view(&secret, &device_id, item);
    InboxView {
        version,
        pending: pending.iter().take(MAX_PENDING).map(show).collect(),
        history: done.iter().rev().take(MAX_HISTORY).map(show).collect(),
        pending_total,
        history_total,
        device_id,
        app_name,
        identity_id,
    }
}

fn decision_view(secret: &device::SecretKey, device_id: &str, item: &PageItem) -> DecisionView {
    let e = &*item.envelope;
    let mut view = DecisionView {
        decision_id: e.decision_id.clone(),
        request_id: e.request_id.clone(),
        outcome: item.outcome.name(),
        delivered_at_unix_ms: item.delivered_at_unix_ms,
        ttl_seconds: e.ttl_seconds,
        expires_in_ms: u64::try_from(item.expires_in.as_millis()).unwrap_or(u64::MAX),
        answered_here: item.answered_by.as_deref() == Some(device_id),
        answered_by: item.answered_by.clone(),
        ..DecisionView::default()
    };
    let presented = device::decrypt(secret, &e.kyber_ct, &e.nonce, &e.ciphertext)
        .and_then(|plaintext| present(&plaintext));
    match presented {
        Ok(p) => {
            view.title = p.title;
            view.summary = p.summary;
            view.kind = p.kind;
            view.payload_truncated = p.truncated;
            view.payload_pretty = Some(p.pretty);
        }
        Err(reason) => view.error = Some(reason),
    }
    view
}

/// A decrypted payload as the page shows it.
#[derive(Debug, PartialEq)]
struct Presented {
    title: Option<String>,
    summary: Option<String>,
    kind: Option<String>,
    pretty: String,
    truncated: bool,
}

/// Pretty-prints a payload (a JSON object: `decrypt` checked it) with `title`, `summary` and
/// `kind` first and the other keys in their order; numbers keep their exact digits.
fn present(plaintext: &[u8]) -> Result<Presented, &'static str> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(plaintext) else {
        return Err("payload is not a JSON object");
    };
    let headline = |key: &str| {
        map.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let (title, summary, kind) = (headline("title"), headline("summary"), headline("kind"));
    let mut ordered = Map::new();
    for key in HEADLINE_KEYS {
        if let Some(v) = map.get(key) {
            ordered.insert(key.to_string(), v.clone());
        }
    }
    for (k, v) in map {
        if !HEADLINE_KEYS.contains(&k.as_str()) {
            ordered.insert(k, v);
        }
    }
    let mut pretty = serde_json::to_string_pretty(&Value::Object(ordered))
        .map_err(|_| "payload cannot be printed")?;
    let truncated = pretty.len() > MAX_PAYLOAD_TEXT;
    if truncated {
        let mut cut = MAX_PAYLOAD_TEXT;
        while !pretty.is_char_boundary(cut) {
            cut -= 1;
        }
        pretty.truncate(cut);
    }
    Ok(Presented {
        title,
        summary,
        kind,
        pretty,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_keys_come_first_and_the_rest_keeps_its_order_and_digits() {
        let p = present(
            br#"{"z":1,"kind":"tool_call","a":123456789012345678901234567890.5,"title":"T","m":{"y":1,"b":2}}"#,
        )
        .unwrap();
        assert_eq!(p.title.as_deref(), Some("T"));
        assert_eq!(p.summary, None);
        assert_eq!(p.kind.as_deref(), Some("tool_call"));
        let keys: Vec<&str> = p
            .pretty
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        assert_eq!(keys, ["title", "kind", "z", "a", "m"]);
        assert!(p.pretty.contains("123456789012345678901234567890.5"));
        assert!(p.pretty.find("\"y\"").unwrap() < p.pretty.find("\"b\"").unwrap());
        assert!(!p.truncated);
    }

    #[test]
    fn a_headline_that_is_not_a_string_is_shown_as_json() {
        let p = present(br#"{"title":{"en":"<b>x</b>"},"summary":7,"kind":null}"#).unwrap();
        assert_eq!(p.title.as_deref(), Some(r#"{"en":"<b>x</b>"}"#));
        assert_eq!(p.summary.as_deref(), Some("7"));
        assert_eq!(p.kind.as_deref(), Some("null"));
    }

    #[test]
    fn a_huge_payload_is_cut_on_a_character_boundary() {
        let big = format!(
            r#"{{"title":"é","text":"{}"}}"#,
            "é".repeat(MAX_PAYLOAD_TEXT)
        );
        let p = present(big.as_bytes()).unwrap();
        assert!(p.truncated);
        assert!(p.pretty.len() <= MAX_PAYLOAD_TEXT && p.pretty.len() > MAX_PAYLOAD_TEXT - 4);
    }

    fn relay() -> Arc<Relay> {
        use crate::config::{AppConfig, FaultConfig, Limits};
        let apps = [AppConfig::new("t", "a", 10).with_identity("u", vec![])];
        let relay = Relay::new(
            &apps,
            Limits::default(),
            crate::faults::Faults::new(FaultConfig::default()),
            tokio_util::sync::CancellationToken::new(),
            tokio::runtime::Handle::current(),
        );
        Arc::new(relay.expect("valid configuration"))
    }

    #[tokio::test]
    async fn a_long_poll_ends_at_a_change_or_when_the_relay_stops() {
        let relay = relay();
        let seen = relay.version();
        let wait = relay.changed_since(seen, Duration::from_secs(3600));
        tokio::pin!(wait);
        tokio::select! {
            biased;
            _ = &mut wait => panic!("answered without a change"),
            _ = std::future::ready(()) => {}
        }
        relay.add_browser_device("a", "u").unwrap();
        let now = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("a change ends the wait");
        assert!(now > seen);

        let wait = relay.changed_since(now, Duration::from_secs(3600));
        tokio::pin!(wait);
        tokio::select! {
            biased;
            _ = &mut wait => panic!("answered without a change"),
            _ = std::future::ready(()) => {}
        }
        relay.cancel.cancel();
        let at_stop = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the relay's stop ends the wait");
        assert_eq!(at_stop, now);
    }

    #[tokio::test]
    async fn a_long_poll_without_a_change_answers_at_its_timeout() {
        tokio::time::pause();
        let relay = relay();
        let seen = relay.version();
        let started = tokio::time::Instant::now();
        assert_eq!(relay.changed_since(seen, LONG_POLL).await, seen);
        assert!(started.elapsed() >= LONG_POLL);
    }

    #[test]
    fn since_is_read_from_the_query() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(since(&uri("/x")).ok(), Some(None));
        assert_eq!(since(&uri("/x?a=1&since=42")).ok(), Some(Some(42)));
        assert!(since(&uri("/x?since=-1")).is_err());
    }
}
