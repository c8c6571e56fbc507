//! The HTTP/JSON device API, for devices the relay did not create, and the inspection
//! endpoint.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/apps/{app_name}/identities/{identity_id}/devices` | `{"pq_public_key": b64, "public_key": b64?}` | `{"device_id"}` |
//! | `GET /v1/devices/{device_id}/decisions` | | `[{"decision_id", "request_id", "kyber_ct", "nonce", "ciphertext", "ttl_seconds", "delivered_at_unix_ms", "outcome"}]` |
//! | `POST /v1/devices/{device_id}/decisions/{decision_id}` | `{"answer": "approve"\|"reject"}` | `{"decision_id", "outcome"}` |
//! | `POST /v1/devices/{device_id}/online` | `{"online": bool}` | `{"device_id", "online"}` |
//! | `GET /v1/inspect` | | the [`crate::Inspection`] snapshot |
//!
//! Errors are JSON `{"error": "..."}` with a 4xx status. The device page (`crate::page`) adds
//! its `/v1/page/...` routes behind the same checks, and its files at `/` and `/assets/`.
//!
//! No web page may drive it. Every request must
//! 1. name the relay itself in `Host` (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, or
//!    the bound address): a DNS-rebinding page names its own host → 403;
//! 2. carry the per-run access token as `Authorization: Bearer <token>`: a browser never adds
//!    it by itself, and a cross-origin page cannot set it without a CORS preflight, which
//!    the relay never approves → 401;
//! 3. for a `POST`, have `Content-Type: application/json` (a form or `text/plain` body is
//!    what a page can send without a preflight) → 415.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::state::{AnswerResult, RegisterError, Relay};

type AppState = Arc<Relay>;

/// Who may call the HTTP API: the token and the `Host` values naming the relay.
#[derive(Clone)]
struct Gate {
    token: Arc<str>,
    hosts: Arc<[String]>,
}

/// The `Host` values a request may carry for a server bound to `addr`.
pub(crate) fn allowed_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut hosts = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    // The bound address itself (it differs from the above only with --allow-non-loopback,
    // or for another loopback address such as 127.0.0.2).
    let bound = addr.to_string();
    if !hosts.contains(&bound) {
        hosts.push(bound);
    }
    hosts
}

/// The checks of the module documentation, before any route runs.
async fn gate(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    if !host.is_some_and(|h| gate.hosts.contains(&h)) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "the Host header must name this relay (127.0.0.1, localhost or [::1] with its port)",
        )
        .into_response();
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let authorized = token.is_some_and(|t| {
        use subtle::ConstantTimeEq as _;
        bool::from(t.as_bytes().ct_eq(gate.token.as_bytes()))
    });
    if !authorized {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong access token: send `Authorization: Bearer <token>` with the \
             token the relay printed at start (also in its ready file as http_token)",
        )
        .into_response();
    }
    if req.method() == Method::POST {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// The device API router. Every error, including those of axum itself (a path segment that
/// is not UTF-8, a wrong method, a body over axum's 2 MB limit), is a JSON `{"error"}`.
pub(crate) fn router(relay: Arc<Relay>, token: &str, addr: SocketAddr) -> Router {
    let gate_state = Gate {
        token: token.into(),
        hosts: allowed_hosts(addr).into(),
    };
    Router::new()
        .route(
            "/v1/apps/{app_name}/identities/{identity_id}/devices",
            post(register_device),
        )
        .route("/v1/devices/{device_id}/decisions", get(list_decisions))
        .route(
            "/v1/devices/{device_id}/decisions/{decision_id}",
            post(resolve_decision),
        )
        .route("/v1/devices/{device_id}/online", post(set_online))
        .route("/v1/inspect", get(inspect))
        .merge(crate::page::api_routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .with_state(relay.clone())
        .layer(middleware::from_fn_with_state(relay, storage_guard))
        .layer(middleware::from_fn_with_state(gate_state, gate))
        // The device page's HTML, script and style: no token (they hold no secret).
        .merge(crate::page::page_routes(addr))
}

/// Refuses every request (503) once the relay could not write to its database, or has
/// stopped: what a route did or would show may not be on disk.
async fn storage_guard(State(relay): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(failure) = relay.failure() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, failure).into_response();
    }
    let response = next.run(req).await;
    match relay.failure() {
        Some(failure) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, failure).into_response(),
        None => response,
    }
}

/// A 4xx answer with a JSON `{"error": ...}` body.
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// Path parameters whose rejection is an [`ApiError`].
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(params)) => Ok(Params(params)),
            Err(e) => Err(ApiError::new(e.status(), e.body_text())),
        }
    }
}

/// A JSON body (its content type was checked by [`gate`]), with every rejection an
/// [`ApiError`].
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

fn decode_b64(field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| ApiError::bad_request(format!("{field} is not standard padded base64")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    pq_public_key: String,
    #[serde(default)]
    public_key: Option<String>,
}

async fn register_device(
    State(relay): State<AppState>,
    Params((app_name, identity_id)): Params<(String, String)>,
    Body(body): Body<RegisterBody>,
) -> Result<Response, ApiError> {
    let pq = decode_b64("pq_public_key", &body.pq_public_key)?;
    let pk = match &body.public_key {
        Some(pk) => Some(decode_b64("public_key", pk)?),
        None => None,
    };
    let device_id = relay
        .register_device(&app_name, &identity_id, pq, pk)
        .map_err(|e| match e {
            RegisterError::UnknownApp => ApiError::not_found(format!("no app named {app_name:?}")),
            RegisterError::Invalid(msg) => ApiError::bad_request(msg),
            RegisterError::Limit(msg) => ApiError::new(StatusCode::CONFLICT, msg),
        })?;
    tracing::info!(app = %app_name, %device_id, "device registered over HTTP");
    Ok(Json(json!({ "device_id": device_id })).into_response())
}

async fn list_decisions(
    State(relay): State<AppState>,
    Params(device_id): Params<String>,
) -> Result<Response, ApiError> {
    let items = relay
        .device_decisions(&device_id)
        .ok_or_else(|| ApiError::not_found("no such device"))?;
    // Encoded here, outside the relay's lock.
    let b64 = base64::engine::general_purpose::STANDARD;
    let views: Vec<InboxView> = items
        .iter()
        .map(|item| {
            let e = &*item.envelope;
            InboxView {
                decision_id: &e.decision_id,
                request_id: &e.request_id,
                kyber_ct: b64.encode(&e.kyber_ct),
                nonce: b64.encode(&e.nonce),
                ciphertext: b64.encode(&e.ciphertext),
                ttl_seconds: e.ttl_seconds,
                delivered_at_unix_ms: item.delivered_at_unix_ms,
                outcome: item.outcome.name(),
            }
        })
        .collect();
    Ok(Json(views).into_response())
}

/// A decision as listed for a device.
#[derive(Serialize)]
struct InboxView<'a> {
    decision_id: &'a str,
    request_id: &'a str,
    kyber_ct: String,
    nonce: String,
    ciphertext: String,
    ttl_seconds: u32,
    delivered_at_unix_ms: u64,
    outcome: &'static str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    answer: String,
}

async fn resolve_decision(
    State(relay): State<AppState>,
    Params((device_id, decision_id)): Params<(String, String)>,
    Body(body): Body<ResolveBody>,
) -> Result<Response, ApiError> {
    let approve = match body.answer.to_ascii_lowercase().as_str() {
        "approve" | "approved" => true,
        "reject" | "rejected" => false,
        _ => {
            return Err(ApiError::bad_request(
                "answer must be \"approve\" or \"reject\"",
            ))
        }
    };
    match relay.answer(&device_id, &decision_id, approve) {
        AnswerResult::Decided(outcome) => {
            tracing::info!(%device_id, %decision_id, outcome = outcome.name(), "device answered over HTTP");
            Ok(
                Json(json!({ "decision_id": decision_id, "outcome": outcome.name() }))
                    .into_response(),
            )
        }
        AnswerResult::AlreadyFinal(outcome) => Ok((
            StatusCode::CONFLICT,
            Json(json!({
                "error": "decision already decided or expired (first answer wins)",
                "decision_id": decision_id,
                "outcome": outcome.name(),
            })),
        )
            .into_response()),
        AnswerResult::NotFound => Err(ApiError::not_found(
            "no such device, or this decision was not delivered to it",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnlineBody {
    online: bool,
}

async fn set_online(
    State(relay): State<AppState>,
    Params(device_id): Params<String>,
    Body(body): Body<OnlineBody>,
) -> Result<Response, ApiError> {
    if relay.set_device_online(&device_id, body.online) {
        Ok(Json(json!({ "device_id": device_id, "online": body.online })).into_response())
    } else {
        Err(ApiError::not_found("no such device"))
    }
}

async fn inspect(State(relay): State<AppState>) -> Response {
    Json(relay.inspect()).into_response()
}
