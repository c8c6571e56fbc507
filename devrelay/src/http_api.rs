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
//! Errors are JSON `{"error": "..."}` with a 4xx status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use crate::state::{AnswerResult, RegisterError, Relay};

type AppState = Arc<Relay>;

/// The device API router.
pub(crate) fn router(relay: Arc<Relay>) -> Router {
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
        .fallback(not_found)
        .with_state(relay)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError::new(status, message).into_response()
}

/// A 4xx answer with a JSON `{"error": ...}` body.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

/// Parses a JSON body ourselves so that bad bodies get a JSON error too.
fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn decode_b64(field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{field} is not standard padded base64"),
            )
        })
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
    Path((app_name, identity_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let body: RegisterBody = parse_body(&body)?;
        let pq = decode_b64("pq_public_key", &body.pq_public_key)?;
        let pk = match &body.public_key {
            Some(pk) => Some(decode_b64("public_key", pk)?),
            None => None,
        };
        relay
            .register_device(&app_name, &identity_id, pq, pk)
            .map_err(|e| match e {
                RegisterError::UnknownApp => {
                    ApiError::new(StatusCode::NOT_FOUND, format!("no app named {app_name:?}"))
                }
                RegisterError::Invalid(msg) => ApiError::new(StatusCode::BAD_REQUEST, msg),
            })
    })();
    match result {
        Ok(device_id) => {
            tracing::info!(app = %app_name, %device_id, "device registered over HTTP");
            Json(json!({ "device_id": device_id })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn list_decisions(State(relay): State<AppState>, Path(device_id): Path<String>) -> Response {
    match relay.device_decisions(&device_id) {
        Some(list) => Json(list).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such device"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    answer: String,
}

async fn resolve_decision(
    State(relay): State<AppState>,
    Path((device_id, decision_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: ResolveBody = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let approve = match body.answer.to_ascii_lowercase().as_str() {
        "approve" | "approved" => true,
        "reject" | "rejected" => false,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "answer must be \"approve\" or \"reject\"",
            )
        }
    };
    match relay.answer(&device_id, &decision_id, approve) {
        AnswerResult::Decided(outcome) => {
            tracing::info!(%device_id, %decision_id, outcome = outcome.name(), "device answered over HTTP");
            Json(json!({ "decision_id": decision_id, "outcome": outcome.name() })).into_response()
        }
        AnswerResult::AlreadyFinal(outcome) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "decision already decided or expired (first answer wins)",
                "decision_id": decision_id,
                "outcome": outcome.name(),
            })),
        )
            .into_response(),
        AnswerResult::NotFound => error(
            StatusCode::NOT_FOUND,
            "no such device, or this decision was not delivered to it",
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnlineBody {
    online: bool,
}

async fn set_online(
    State(relay): State<AppState>,
    Path(device_id): Path<String>,
    body: Bytes,
) -> Response {
    let body: OnlineBody = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if relay.set_device_online(&device_id, body.online) {
        Json(json!({ "device_id": device_id, "online": body.online })).into_response()
    } else {
        error(StatusCode::NOT_FOUND, "no such device")
    }
}

async fn inspect(State(relay): State<AppState>) -> Response {
    Json(relay.inspect()).into_response()
}
