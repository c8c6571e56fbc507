//! The device page in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver) with the fantoccini client, while libnoxy (the `noxy` crate)
//! sends the decisions and waits for their outcomes.
//!
//! These tests need `chromium` and `chromium-driver`, so a plain `cargo test` skips them
//! (`#[ignore]`); `make test-browser` runs them (`cargo test -p noxy-devrelay --test browser
//! -- --ignored`). `CHROMIUM` and `CHROMEDRIVER` override the programs' paths. Screenshots
//! go to `NOXY_BROWSER_TEST_OUT`, by default `target/tmp/browser/`.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use noxy::{DecisionOutcome, DecisionResult, Payload, SendOptions, WaitOptions};
use noxy_devrelay::{AppConfig, DevRelay, DevRelayConfig, DevicePolicy};
use serde_json::{json, Value};

const APP_TOKEN: &str = "browser-test-app-token-7f3a";
const APP: &str = "browser-app";
/// Bound of every wait on the page.
const WAIT: Duration = Duration::from_secs(30);

/// A relay whose identity `alice` has one `browser` device.
async fn start_relay() -> Arc<DevRelay> {
    let relay = DevRelay::start(DevRelayConfig {
        apps: vec![
            AppConfig::new(APP_TOKEN, APP, 100).with_identity("alice", vec![DevicePolicy::Browser])
        ],
        ..DevRelayConfig::default()
    })
    .await
    .expect("relay starts");
    Arc::new(relay)
}

/// Stops the relay once the test's tasks have let it go.
async fn stop(relay: Arc<DevRelay>) {
    match Arc::try_unwrap(relay) {
        Ok(relay) => relay.shutdown().await,
        Err(_) => panic!("the relay is still shared"),
    }
}

fn output_dir() -> PathBuf {
    let dir = std::env::var_os("NOXY_BROWSER_TEST_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser"));
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

/// chromedriver (and the chromium it starts) for one test; ended when dropped, also when
/// the test fails.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let mut child = Command::new(&program)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} (apt-get install chromium-driver): {e}")
            });
        // chromedriver picks a free port and says which; the reader keeps draining its
        // output afterwards so that it never blocks on a full pipe.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let port = rest.trim_end_matches('.').trim().parse::<u16>();
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(WAIT) {
            Ok(Ok(port)) => port,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromedriver did not say its port: {other:?}");
            }
        };
        let profile = tempfile::Builder::new()
            .prefix("noxy-chromium-")
            .tempdir()
            .expect("profile directory");
        Driver {
            child,
            port,
            profile,
        }
    }

    /// A WebDriver session with headless chromium, a fresh profile and a viewport of the
    /// given size: a window from 500 pixels wide up, an emulated phone below (headless
    /// chromium's windows are at least 500 pixels wide).
    async fn session(&self, width: u32, height: u32) -> Client {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={},{}", width.max(500), height),
            format!("--user-data-dir={}", self.profile.path().display()),
        ];
        let mut options = json!({ "binary": binary, "args": args });
        if width < 500 {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0, "touch": true },
            });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session with chromium")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A chromium left behind by a failed test (its session never closed): find it by its
        // profile directory, which is this test's own, and end it by its id.
        let marker = format!("--user-data-dir={}", self.profile.path().display());
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                if cmdline
                    .split(|b| *b == 0)
                    .any(|arg| arg == marker.as_bytes())
                {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
        }
    }
}

/// Runs `test` with a browser session; the session is closed whatever happens, then a
/// failure of the test is passed on.
async fn with_browser<F, Fut>(width: u32, height: u32, test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let driver = Driver::start();
    let page = driver.session(width, height).await;
    let outcome = tokio::spawn(test(page.clone())).await;
    let _ = page.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// libnoxy's client for the relay, as an agent would configure it.
fn agent(relay: &DevRelay) -> noxy::Client {
    let mut config = noxy::ClientConfig::new(relay.endpoint(), APP_TOKEN);
    config.ca_pem = Some(relay.ca_pem());
    noxy::Client::new(config).expect("libnoxy client")
}

/// Sends `payload` to `identity` with libnoxy and waits for the outcome, in a task.
fn send_and_wait(
    relay: &DevRelay,
    identity: &str,
    payload: Value,
    ttl_seconds: u32,
) -> tokio::task::JoinHandle<DecisionResult> {
    let client = agent(relay);
    let identity = identity.to_string();
    tokio::spawn(async move {
        let payload = Payload::from_value(&payload).expect("payload");
        let send = SendOptions {
            ttl_seconds: Some(ttl_seconds),
            ..SendOptions::default()
        };
        let wait = WaitOptions {
            initial_interval: Duration::from_millis(50),
            max_interval: Duration::from_millis(250),
            max_wait: Duration::from_secs(120),
            ..WaitOptions::default()
        };
        client
            .send_decision_and_wait_for_outcome(&identity, &payload, &send, &wait)
            .await
            .expect("libnoxy send and wait")
    })
}

/// The id of the first decision of `identity` the relay holds that is not in `known`.
async fn new_decision(relay: &DevRelay, identity: &str, known: &[String]) -> String {
    let found = |i: &noxy_devrelay::Inspection| {
        i.decisions
            .iter()
            .find(|d| d.identity_id == identity && !known.contains(&d.decision_id))
            .map(|d| d.decision_id.clone())
    };
    assert!(
        relay.wait_for(WAIT, |i| found(i).is_some()).await,
        "no new decision for {identity}"
    );
    found(&relay.inspect()).expect("found above")
}

/// Polls `check` (50 ms apart, at most WAIT) until it returns `Some`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn element(page: &Client, css: &str) -> fantoccini::elements::Element {
    page.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

async fn text(page: &Client, css: &str) -> String {
    element(page, css).await.text().await.expect("text")
}

async fn js(page: &Client, script: &str) -> Value {
    page.execute(script, vec![]).await.expect("script runs")
}

/// Opens the page with the URL the relay prints and becomes `device`.
async fn open_as(page: &Client, relay_url: &str, device: &str) {
    page.goto(relay_url).await.expect("page loads");
    element(
        page,
        &format!("#picker-view button[data-device='{device}']"),
    )
    .await
    .click()
    .await
    .expect("click");
    element(page, "#device-view:not([hidden])").await;
}

fn pending_card(decision: &str) -> String {
    format!("#pending-list li[data-decision='{decision}']")
}

fn history_card(decision: &str) -> String {
    format!("#history-list li[data-decision='{decision}']")
}

fn enter() -> String {
    char::from(Key::Enter).to_string()
}

fn tab() -> String {
    char::from(Key::Tab).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver: make test-browser"]
async fn approve_and_reject_in_the_page_reach_libnoxy() {
    let relay = start_relay().await;
    let shared = relay.clone();
    with_browser(900, 1300, move |page| async move {
        let relay = shared;
        let device = relay.device_ids(APP, "alice")[0].clone();
        open_as(&page, &relay.page_url(), &device).await;
        // The token left the address bar (and the history) at once.
        let current = page.current_url().await.unwrap();
        assert_eq!(current.fragment(), None, "{current}");
        assert!(!current.as_str().contains("token"), "{current}");
        assert_eq!(text(&page, "#device-heading").await, "alice");

        // Approve, with a click.
        let agent = send_and_wait(
            &relay,
            "alice",
            json!({
                "kind": "tool_call",
                "title": "Rotate the API keys",
                "summary": "The agent wants to revoke the old keys of the billing service",
                "tool": "vault",
                "args": { "path": "billing/api-keys", "action": "rotate" },
            }),
            600,
        );
        let first = new_decision(&relay, "alice", &[]).await;
        let card = pending_card(&first);
        element(&page, &card).await;
        assert_eq!(
            text(&page, &format!("{card} .title")).await,
            "Rotate the API keys"
        );
        assert_eq!(
            text(&page, &format!("{card} .summary")).await,
            "The agent wants to revoke the old keys of the billing service"
        );
        assert_eq!(text(&page, &format!("{card} .kind")).await, "tool_call");
        let timer = text(&page, &format!("{card} .timer")).await;
        assert!(
            timer.starts_with("Expires in 9:") || timer == "Expires in 10:00",
            "{timer}"
        );
        // The decrypted JSON, pretty-printed, title, summary and kind first.
        let payload = text(&page, &format!("{card} pre.payload")).await;
        let keys: Vec<&str> = payload
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        assert_eq!(keys, ["title", "summary", "kind", "tool", "args"], "{payload}");
        assert!(payload.contains("\"action\": \"rotate\""), "{payload}");
        assert_eq!(text(&page, "#pending-count").await, "(1)");

        let approve = element(&page, &format!("{card} button.approve")).await;
        assert_eq!(approve.tag_name().await.unwrap().to_lowercase(), "button");
        approve.click().await.expect("click Approve");
        let result = tokio::time::timeout(WAIT, agent)
            .await
            .expect("libnoxy's wait ends")
            .expect("agent task");
        assert_eq!(result.decision_id, first);
        assert_eq!(result.state.outcome, DecisionOutcome::Approved);
        let done = history_card(&first);
        assert_eq!(text(&page, &format!("{done} .badge")).await, "APPROVED");
        assert!(text(&page, &done).await.contains("answered on this device"));
        until("the card to leave the pending list", || async {
            page.find(Locator::Css(&card)).await.is_err().then_some(())
        })
        .await;

        // Reject, by keyboard: Tab from Approve reaches Reject, Enter presses it.
        let agent = send_and_wait(
            &relay,
            "alice",
            json!({
                "kind": "tool_call",
                "title": "Run database migration",
                "summary": "The agent wants to run `migrate up` on production",
                "tool": "shell",
                "args": { "command": "migrate up", "env": "production", "dry_run": false },
            }),
            600,
        );
        let second = new_decision(&relay, "alice", std::slice::from_ref(&first)).await;
        let card = pending_card(&second);
        let approve = element(&page, &format!("{card} button.approve")).await;
        let reject = element(&page, &format!("{card} button.reject")).await;
        assert_eq!(reject.tag_name().await.unwrap().to_lowercase(), "button");
        // The screenshot: a pending decision, one in the history.
        let png = page.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(output_dir().join("pending.png"), &png).expect("screenshot saved");

        js(&page, &format!("document.querySelector(\"{card} button.approve\").focus()")).await;
        approve.send_keys(&tab()).await.expect("Tab");
        assert_eq!(
            js(&page, "return document.activeElement.className").await,
            json!("reject")
        );
        reject.send_keys(&enter()).await.expect("Enter");
        let result = tokio::time::timeout(WAIT, agent)
            .await
            .expect("libnoxy's wait ends")
            .expect("agent task");
        assert_eq!(result.decision_id, second);
        assert_eq!(result.state.outcome, DecisionOutcome::Rejected);
        let done = history_card(&second);
        assert_eq!(text(&page, &format!("{done} .badge")).await, "REJECTED");
        // The newest first in the history.
        let order = js(
            &page,
            "return Array.from(document.querySelectorAll('#history-list > li'), li => li.dataset.decision)",
        )
        .await;
        assert_eq!(order, json!([second, first]));
        assert_eq!(text(&page, "#pending-count").await, "");
    })
    .await;
    stop(relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver: make test-browser"]
async fn an_unanswered_decision_shows_as_expired() {
    let relay = start_relay().await;
    let shared = relay.clone();
    with_browser(1000, 1000, move |page| async move {
        let relay = shared;
        let device = relay.device_ids(APP, "alice")[0].clone();
        // A URL naming the device opens it without the picker.
        let url = format!("{}&device={device}", relay.page_url());
        page.goto(&url).await.expect("page loads");
        element(&page, "#device-view:not([hidden])").await;
        assert_eq!(page.current_url().await.unwrap().fragment(), None);
        assert!(text(&page, "#device-sub").await.contains(&device));
        let agent = send_and_wait(
            &relay,
            "alice",
            json!({ "title": "Short-lived", "kind": "test" }),
            2,
        );
        let decision = new_decision(&relay, "alice", &[]).await;
        let result = tokio::time::timeout(WAIT, agent)
            .await
            .expect("libnoxy's wait ends")
            .expect("agent task");
        assert_eq!(result.state.outcome, DecisionOutcome::Expired);
        let done = history_card(&decision);
        assert_eq!(text(&page, &format!("{done} .badge")).await, "EXPIRED");
        assert_eq!(
            element(&page, &done)
                .await
                .attr("data-outcome")
                .await
                .unwrap(),
            Some("EXPIRED".into())
        );
        assert!(text(&page, &done).await.contains("nobody answered in time"));
        assert!(page
            .find(Locator::Css(&pending_card(&decision)))
            .await
            .is_err());
        // An expired decision has nothing to press.
        assert!(page
            .find(Locator::Css(&format!("{done} button")))
            .await
            .is_err());
    })
    .await;
    stop(relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver: make test-browser"]
async fn a_hostile_payload_renders_as_text() {
    let relay = start_relay().await;
    let shared = relay.clone();
    with_browser(1000, 1000, move |page| async move {
        let relay = shared;
        let device = relay.device_ids(APP, "alice")[0].clone();
        open_as(&page, &relay.page_url(), &device).await;
        let title = "<script>window.__pwned = 'title'</script>";
        let summary = "<img src=x onerror=\"window.__pwned = 'summary'\">";
        let kind = "<b>bold</b>";
        let nested = "</pre><img src=x onerror=\"window.__pwned = 'payload'\"><pre>";
        let agent = send_and_wait(
            &relay,
            "alice",
            json!({
                "title": title,
                "summary": summary,
                "kind": kind,
                "note": nested,
                "<svg onload=alert(1)>": "key",
            }),
            600,
        );
        let decision = new_decision(&relay, "alice", &[]).await;
        let card = pending_card(&decision);
        element(&page, &card).await;
        assert_eq!(text(&page, &format!("{card} .title")).await, title);
        assert_eq!(text(&page, &format!("{card} .summary")).await, summary);
        assert_eq!(text(&page, &format!("{card} .kind")).await, kind);
        let payload = text(&page, &format!("{card} pre.payload")).await;
        // JSON text: the quotes inside strings are escaped, the markup is not interpreted.
        assert!(
            payload.contains(
                r#""note": "</pre><img src=x onerror=\"window.__pwned = 'payload'\"><pre>""#
            ),
            "{payload}"
        );
        assert!(
            payload.contains(r#""<svg onload=alert(1)>": "key""#),
            "{payload}"
        );
        // No element came out of the payload, and none of its code ran.
        let found = js(
            &page,
            "return document.querySelectorAll('#device-view img, #device-view script, \
             #device-view svg, #device-view b, #device-view iframe').length",
        )
        .await;
        assert_eq!(found, json!(0));
        let children = js(
            &page,
            &format!(
                "return ['.title', '.summary', '.kind', 'pre.payload'].map(s => \
                 document.querySelector(\"{card} \" + s).childElementCount)"
            ),
        )
        .await;
        assert_eq!(children, json!([0, 0, 0, 0]));
        assert_eq!(
            js(&page, "return typeof window.__pwned").await,
            json!("undefined")
        );

        element(&page, &format!("{card} button.reject"))
            .await
            .click()
            .await
            .expect("click Reject");
        let result = tokio::time::timeout(WAIT, agent)
            .await
            .expect("libnoxy's wait ends")
            .expect("agent task");
        assert_eq!(result.state.outcome, DecisionOutcome::Rejected);
        // In the history too, it stays text.
        let done = history_card(&decision);
        assert_eq!(text(&page, &format!("{done} .title")).await, title);
        assert_eq!(
            js(
                &page,
                "return document.querySelectorAll('#device-view img, #device-view script').length"
            )
            .await,
            json!(0)
        );
        assert_eq!(
            js(&page, "return typeof window.__pwned").await,
            json!("undefined")
        );
    })
    .await;
    stop(relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver: make test-browser"]
async fn at_phone_width_a_pasted_token_and_an_added_browser_device_work() {
    let relay = start_relay().await;
    let shared = relay.clone();
    with_browser(390, 844, move |page| async move {
        let relay = shared;
        // Without the token in the URL, the page asks for it.
        page.goto(&relay.http_url()).await.expect("page loads");
        element(&page, "#token-view:not([hidden])").await;
        let input = element(&page, "#token-input").await;
        input.send_keys(relay.http_token()).await.expect("type");
        input.send_keys(&enter()).await.expect("Enter submits");
        element(&page, "#picker-view:not([hidden])").await;

        // A new identity gets a browser device from the page.
        let identity = "carol@example.com";
        let field = element(&page, "#add-identity").await;
        field.send_keys(identity).await.expect("type");
        field.send_keys(&enter()).await.expect("Enter submits");
        element(&page, "#device-view:not([hidden])").await;
        let added = until("the new device", || async {
            relay.device_ids(APP, identity).first().cloned()
        })
        .await;
        until("the device view of the new identity", || async {
            let heading = page
                .find(Locator::Css("#device-heading"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (heading == identity).then_some(())
        })
        .await;
        assert!(text(&page, "#device-sub").await.contains(&added));

        let agent = send_and_wait(
            &relay,
            identity,
            json!({
                "kind": "payment",
                "title": "Pay invoice #4411",
                "summary": "4 200.00 EUR to ACME GmbH, IBAN DE89 3704 0044 0532 0130 00",
                "amount": { "value": "4200.00", "currency": "EUR" },
                "reference": "a-very-long-reference-without-any-space-that-must-wrap-at-phone-width-0123456789",
            }),
            600,
        );
        let decision = new_decision(&relay, identity, &[]).await;
        let card = pending_card(&decision);
        element(&page, &card).await;
        // Readable at phone width: nothing wider than the screen, touch-sized buttons.
        let widths = js(
            &page,
            "return [document.documentElement.scrollWidth, window.innerWidth]",
        )
        .await;
        let (scroll, inner) = (widths[0].as_f64().unwrap(), widths[1].as_f64().unwrap());
        assert!(inner <= 400.0, "{widths}");
        assert!(scroll <= inner, "horizontal overflow at phone width: {widths}");
        let approve = element(&page, &format!("{card} button.approve")).await;
        let (_, _, width, height) = approve.rectangle().await.unwrap();
        assert!(width >= 44.0 && height >= 44.0, "{width}x{height}");
        let png = page.screenshot().await.expect("screenshot");
        std::fs::write(output_dir().join("pending-phone.png"), &png).expect("screenshot saved");

        // A reload keeps the token (sessionStorage) and the device.
        page.refresh().await.expect("reload");
        element(&page, &card).await;
        let stored = js(
            &page,
            "return [location.hash, document.documentElement.outerHTML.includes(sessionStorage.getItem('noxy-devrelay-token'))]",
        )
        .await;
        assert_eq!(stored, json!(["", false]), "the token is not in the page");
        let html = js(&page, "return document.documentElement.outerHTML").await;
        assert!(!html.as_str().unwrap().contains(APP_TOKEN));

        element(&page, &format!("{card} button.approve"))
            .await
            .click()
            .await
            .expect("click Approve");
        let result = tokio::time::timeout(WAIT, agent)
            .await
            .expect("libnoxy's wait ends")
            .expect("agent task");
        assert_eq!(result.state.outcome, DecisionOutcome::Approved);
        assert_eq!(
            text(&page, &format!("{} .badge", history_card(&decision))).await,
            "APPROVED"
        );
    })
    .await;
    stop(relay).await;
}
