//! Target `devrelay_http`: the development relay's HTTP device API, in process (the router as
//! a service, no socket), over a fresh in-memory relay per input
//! (`noxy_devrelay::fuzzing`). Each input is a few requests: methods, paths (every route of the
//! device API and of the device page, with ids that exist, arbitrary text, or raw bytes
//! percent-encoded; the page's long poll included), the `Host`, `Authorization` and
//! `Content-Type` headers right or wrong, extra headers, and bodies (raw bytes, or JSON near
//! what each route expects).
//!
//! Checked on every answer: the status is 2xx or 4xx (never 5xx: no handler fails, nothing
//! panics); an API answer is JSON with a JSON content type; a 4xx API body is an object with
//! an `"error"` string; the gate holds (a `Host` that does not name the relay is 403, then a
//! missing or wrong token 401, then a POST that is not `application/json` 415) and nothing
//! gets a 2xx past a failed gate. The page's own files (`/`, `/assets/...`) need no token but
//! the same `Host`, and a GET of one with the right `Host` is 200.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use noxy_devrelay::fuzzing::{
    HttpApiFuzzer, ACCESS_TOKEN, APP_NAME, DECISION_ID, HOST, IDENTITY_ID,
};

/// A path segment.
#[derive(Debug, Arbitrary)]
enum Segment {
    /// The id that exists in the session for this position.
    Known,
    /// The known id with a suffix.
    KnownPlus(String),
    Text(String),
    /// Raw bytes, percent-encoded (so invalid UTF-8 reaches the router).
    Bytes(Vec<u8>),
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

impl Segment {
    fn render(&self, known: &str) -> String {
        match self {
            Segment::Known => known.to_owned(),
            Segment::KnownPlus(extra) => format!("{known}{}", percent_encode(extra.as_bytes())),
            Segment::Text(text) => percent_encode(text.as_bytes()),
            Segment::Bytes(bytes) => percent_encode(bytes),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum PathArg {
    Register {
        app: Segment,
        identity: Segment,
    },
    List {
        device: Segment,
    },
    Resolve {
        device: Segment,
        decision: Segment,
    },
    Online {
        device: Segment,
    },
    Inspect,
    PageIdentities,
    PageAddBrowser {
        app: Segment,
        identity: Segment,
    },
    /// The page's inbox of a device (known: the browser device), a long poll with `since`.
    PageDecisions {
        device: Segment,
        since: Option<u64>,
    },
    Asset(AssetArg),
    Raw(Vec<u8>),
}

/// The device page's files (no token; `Host` checked).
#[derive(Debug, Arbitrary)]
enum AssetArg {
    Index,
    Script,
    Style,
    Icon,
}

const ASSET_PATHS: [&[u8]; 4] = [
    b"/",
    b"/assets/app.js",
    b"/assets/app.css",
    b"/assets/icon.svg",
];

#[derive(Debug, Arbitrary)]
enum MethodArg {
    Get,
    Post,
    Put,
    Delete,
    Head,
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum HostArg {
    Right,
    Localhost,
    Upper,
    Missing,
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum AuthArg {
    Right,
    LowerScheme,
    Padded,
    Missing,
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum ContentTypeArg {
    Json,
    JsonCharset,
    Missing,
    Other(Vec<u8>),
}

/// A JSON value for a body field.
#[derive(Debug, Arbitrary)]
enum JsonArg {
    Null,
    Bool(bool),
    Number(i64),
    Text(String),
    Base64Key,
    Base64(Vec<u8>),
}

impl JsonArg {
    fn value(&self) -> serde_json::Value {
        match self {
            JsonArg::Null => serde_json::Value::Null,
            JsonArg::Bool(b) => (*b).into(),
            JsonArg::Number(n) => (*n).into(),
            JsonArg::Text(t) => t.as_str().into(),
            JsonArg::Base64Key => base64_of(&vec![7u8; 1184]).into(),
            JsonArg::Base64(bytes) => base64_of(bytes).into(),
        }
    }
}

/// Standard padded base64, written here (the fuzz crate needs no base64 dependency).
fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Debug, Arbitrary)]
enum BodyArg {
    Empty,
    Raw(Vec<u8>),
    /// An object with these fields (names near the routes' own).
    Object(Vec<(FieldName, JsonArg)>),
}

#[derive(Debug, Arbitrary)]
enum FieldName {
    PqPublicKey,
    PublicKey,
    Answer,
    Online,
    Other(String),
}

impl FieldName {
    fn name(&self) -> &str {
        match self {
            FieldName::PqPublicKey => "pq_public_key",
            FieldName::PublicKey => "public_key",
            FieldName::Answer => "answer",
            FieldName::Online => "online",
            FieldName::Other(name) => name,
        }
    }
}

impl BodyArg {
    fn bytes(&self) -> Vec<u8> {
        match self {
            BodyArg::Empty => Vec::new(),
            BodyArg::Raw(bytes) => bytes.clone(),
            BodyArg::Object(fields) => {
                let map: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(name, value)| (name.name().to_owned(), value.value()))
                    .collect();
                serde_json::to_vec(&map).expect("a JSON object")
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
struct RequestArg {
    method: MethodArg,
    path: PathArg,
    query: Option<String>,
    host: HostArg,
    auth: AuthArg,
    content_type: ContentTypeArg,
    extra_headers: Vec<(String, Vec<u8>)>,
    body: BodyArg,
}

fn fuzzer() -> &'static HttpApiFuzzer {
    static FUZZER: OnceLock<HttpApiFuzzer> = OnceLock::new();
    FUZZER.get_or_init(HttpApiFuzzer::new)
}

/// The target's body.
pub fn run(data: &[u8]) {
    let input = Unstructured::new(data);
    let Ok(requests) = Vec::<RequestArg>::arbitrary_take_rest(input) else {
        return;
    };
    if requests.is_empty() {
        return;
    }
    let session = fuzzer().session();
    for request in requests.iter().take(8) {
        send(&session, request);
    }
}

fn send(session: &noxy_devrelay::fuzzing::HttpApiSession<'_>, arg: &RequestArg) {
    let method: Vec<u8> = match &arg.method {
        MethodArg::Get => b"GET".to_vec(),
        MethodArg::Post => b"POST".to_vec(),
        MethodArg::Put => b"PUT".to_vec(),
        MethodArg::Delete => b"DELETE".to_vec(),
        MethodArg::Head => b"HEAD".to_vec(),
        MethodArg::Other(bytes) => bytes.clone(),
    };
    let device = session.device_id();
    let mut path: Vec<u8> = match &arg.path {
        PathArg::Register { app, identity } => format!(
            "/v1/apps/{}/identities/{}/devices",
            app.render(APP_NAME),
            identity.render(IDENTITY_ID)
        )
        .into_bytes(),
        PathArg::List { device: d } => {
            format!("/v1/devices/{}/decisions", d.render(device)).into_bytes()
        }
        PathArg::Resolve {
            device: d,
            decision,
        } => format!(
            "/v1/devices/{}/decisions/{}",
            d.render(device),
            decision.render(DECISION_ID)
        )
        .into_bytes(),
        PathArg::Online { device: d } => {
            format!("/v1/devices/{}/online", d.render(device)).into_bytes()
        }
        PathArg::Inspect => b"/v1/inspect".to_vec(),
        PathArg::PageIdentities => b"/v1/page/identities".to_vec(),
        PathArg::PageAddBrowser { app, identity } => format!(
            "/v1/page/apps/{}/identities/{}/browser-devices",
            app.render(APP_NAME),
            identity.render(IDENTITY_ID)
        )
        .into_bytes(),
        PathArg::PageDecisions { device: d, since } => {
            let mut path = format!(
                "/v1/page/devices/{}/decisions",
                d.render(session.browser_device_id())
            );
            if let Some(since) = since {
                path.push_str(&format!("?since={since}"));
            }
            path.into_bytes()
        }
        PathArg::Asset(asset) => ASSET_PATHS[match asset {
            AssetArg::Index => 0,
            AssetArg::Script => 1,
            AssetArg::Style => 2,
            AssetArg::Icon => 3,
        }]
        .to_vec(),
        PathArg::Raw(bytes) => bytes.clone(),
    };
    if let Some(query) = &arg.query {
        path.push(if path.contains(&b'?') { b'&' } else { b'?' });
        path.extend_from_slice(percent_encode(query.as_bytes()).as_bytes());
    }
    let path_only = path.split(|&b| b == b'?').next().unwrap_or_default();
    let is_asset = ASSET_PATHS.contains(&path_only);

    let mut headers: Vec<(&[u8], Vec<u8>)> = Vec::new();
    let host = match &arg.host {
        HostArg::Right => Some(HOST.as_bytes().to_vec()),
        HostArg::Localhost => Some(HOST.replace("127.0.0.1", "localhost").into_bytes()),
        HostArg::Upper => Some(HOST.replace("127.0.0.1", "LOCALHOST").into_bytes()),
        HostArg::Missing => None,
        HostArg::Other(bytes) => Some(bytes.clone()),
    };
    if let Some(host) = &host {
        headers.push((b"host", host.clone()));
    }
    let auth = match &arg.auth {
        AuthArg::Right => Some(format!("Bearer {ACCESS_TOKEN}").into_bytes()),
        AuthArg::LowerScheme => Some(format!("bearer {ACCESS_TOKEN}").into_bytes()),
        AuthArg::Padded => Some(format!("  Bearer   {ACCESS_TOKEN}  ").into_bytes()),
        AuthArg::Missing => None,
        AuthArg::Other(bytes) => Some(bytes.clone()),
    };
    if let Some(auth) = &auth {
        headers.push((b"authorization", auth.clone()));
    }
    let content_type = match &arg.content_type {
        ContentTypeArg::Json => Some(b"application/json".to_vec()),
        ContentTypeArg::JsonCharset => Some(b"Application/JSON; charset=utf-8".to_vec()),
        ContentTypeArg::Missing => None,
        ContentTypeArg::Other(bytes) => Some(bytes.clone()),
    };
    if let Some(content_type) = &content_type {
        headers.push((b"content-type", content_type.clone()));
    }
    // Extra headers; one that repeats a gate header makes the gate's verdict unpredictable
    // here (which value is read first is the router's business), so the gate is then not
    // checked.
    let mut gate_predictable = true;
    for (name, value) in &arg.extra_headers {
        let lower = name.to_ascii_lowercase();
        if ["host", "authorization", "content-type"].contains(&lower.as_str()) {
            gate_predictable = false;
        }
        headers.push((name.as_bytes(), value.clone()));
    }
    let header_refs: Vec<(&[u8], &[u8])> =
        headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();

    let Some(response) = session.request(&method, &path, &header_refs, arg.body.bytes()) else {
        return;
    };

    assert!(
        (200..300).contains(&response.status) || (400..500).contains(&response.status),
        "status {} for {:?} {:?}",
        response.status,
        String::from_utf8_lossy(&method),
        String::from_utf8_lossy(&path)
    );
    let is_head = method == b"HEAD";
    // The page's files are not JSON; their refusals are checked below.
    if !is_head && !is_asset {
        let content_type = response.content_type.as_deref().unwrap_or_default();
        assert!(
            content_type.starts_with(b"application/json"),
            "content type {:?} (status {})",
            String::from_utf8_lossy(content_type),
            response.status
        );
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
            panic!(
                "a body that is not JSON ({e}), status {}: {:?}",
                response.status,
                String::from_utf8_lossy(&response.body)
            )
        });
        if response.status >= 400 {
            assert!(
                body.get("error").is_some_and(serde_json::Value::is_string),
                "a {} without an error string: {body}",
                response.status
            );
        }
    }

    if gate_predictable {
        let host_ok = host
            .as_deref()
            .and_then(|h| std::str::from_utf8(h).ok())
            .map(str::to_ascii_lowercase)
            .is_some_and(|h| {
                let port = HOST.rsplit(':').next().unwrap_or_default();
                [
                    format!("127.0.0.1:{port}"),
                    format!("localhost:{port}"),
                    format!("[::1]:{port}"),
                ]
                .contains(&h)
            });
        let auth_ok = auth
            .as_deref()
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|a| {
                let (scheme, token) = a.trim().split_once(' ')?;
                Some(scheme.eq_ignore_ascii_case("bearer") && token.trim() == ACCESS_TOKEN)
            })
            .unwrap_or(false);
        let json_ok = content_type
            .as_deref()
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        let expected = if !host_ok {
            Some(403)
        } else if is_asset {
            (method == b"GET").then_some(200)
        } else if !auth_ok {
            Some(401)
        } else if method == b"POST" && !json_ok {
            Some(415)
        } else {
            None
        };
        if let Some(expected) = expected {
            assert_eq!(
                response.status, expected,
                "the gate: host ok {host_ok}, token ok {auth_ok}, json {json_ok}"
            );
        }
    }
}
