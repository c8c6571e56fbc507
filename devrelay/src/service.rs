//! The gRPC service `noxy.agent.AgentService`: authentication, fault injection, then the
//! relay's semantics.

use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::config::AppStatus;
use crate::faults::Failure;
use crate::grpc_server::{ConnControl, StreamControl};
use crate::proto::agent_service_server::AgentService;
use crate::proto::{
    DeliveryOutcome, GetDecisionOutcomeRequest, GetDecisionOutcomeResponse,
    GetIdentityDevicesRequest, GetIdentityDevicesResponse, GetQuotaRequest, GetQuotaResponse,
    IdentityDevice, QuotaStatus, RouteDecisionRequest,
};
use crate::state::{Outcome, Relay, RouteError};

/// The service implementation handed to tonic.
pub(crate) struct RelayService {
    pub relay: Arc<Relay>,
}

/// Extracts the token of `authorization: Bearer <token>`.
fn bearer_token(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

impl RelayService {
    /// Runs one call: faults before, authentication, the handler, faults after, logging.
    async fn call<Req, Resp>(
        &self,
        method: &'static str,
        request: Request<Req>,
        handler: impl FnOnce(&Arc<Relay>, usize, Req) -> Result<Resp, Status>,
    ) -> Result<Response<Resp>, Status>
    where
        Resp: Malformable,
    {
        if method == "RouteDecision" {
            self.relay.count_route_call();
        }
        if let Some(failure) = self.relay.failure() {
            return Err(Status::unavailable(failure.to_string()));
        }
        let action = self.relay.faults().decide(method);
        if !action.latency.is_zero() {
            tokio::select! {
                _ = self.relay.cancel.cancelled() => return Err(Status::unavailable("relay shutting down")),
                _ = tokio::time::sleep(action.latency) => {}
            }
        }
        if action.stall {
            tracing::info!(method, "fault injection: stalling call");
            self.relay.cancel.cancelled().await;
            return Err(Status::unavailable("relay shutting down"));
        }
        let conn = request.extensions().get::<ConnControl>().cloned();
        let stream = request.extensions().get::<StreamControl>().cloned();
        if let Some(failure) = action.before {
            return Err(inject(method, failure, false, conn, stream).await);
        }
        if action.delivery_error {
            tracing::info!(method, "fault injection: delivery status ERROR");
            return Resp::delivery_error()
                .map(Response::new)
                .ok_or_else(|| Status::unavailable("injected fault (before acting)"));
        }
        let Some(app) = bearer_token(request.metadata()).and_then(|t| self.relay.authenticate(t))
        else {
            tracing::info!(method, code = ?tonic::Code::Unauthenticated, "call refused");
            return Err(Status::unauthenticated(
                "missing or unknown bearer token (authorization: Bearer <token>)",
            ));
        };
        let app_name = self.relay.app_name(app);
        let mut result = handler(&self.relay, app, request.into_inner());
        if let (Ok(_), Some(failure)) = (&result, self.relay.failure()) {
            // What the handler did may not be on disk: the caller must not see it.
            result = Err(Status::unavailable(failure.to_string()));
        }
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        let result = result.map(|mut response| {
            if action.malformed {
                tracing::info!(method, app = %app_name, "fault injection: malformed answer");
                response.make_malformed();
            }
            response
        });
        if let (Some(failure), true) = (action.after, result.is_ok()) {
            return Err(inject(method, failure, true, conn, stream).await);
        }
        tracing::info!(method, app = %app_name, ?code, "call");
        result.map(Response::new)
    }
}

/// Makes a call fail as `failure` says, before or after the relay `acted`; returns the status
/// to answer (which for a connection fault nobody receives).
async fn inject(
    method: &'static str,
    failure: Failure,
    acted: bool,
    conn: Option<ConnControl>,
    stream: Option<StreamControl>,
) -> Status {
    let when = if acted {
        "after acting"
    } else {
        "before acting"
    };
    let (Failure::CloseConnection | Failure::Goaway, Some(conn)) = (failure, conn) else {
        // Plain UNAVAILABLE (also the fallback for a request without connection control,
        // which the relay's own server never produces).
        tracing::info!(method, when, "fault injection: UNAVAILABLE");
        return Status::unavailable(format!("injected fault ({when})"));
    };
    match failure {
        Failure::CloseConnection => {
            tracing::info!(
                method,
                when,
                connection = conn.id(),
                "fault injection: closing the connection"
            );
            conn.close_abruptly();
            // Answer only once the connection is gone, so that the answer never arrives.
            conn.closed().await;
            Status::unavailable(format!("injected connection close ({when})"))
        }
        _ if !acted => {
            tracing::info!(
                method,
                connection = conn.id(),
                "fault injection: GOAWAY, stream refused"
            );
            conn.goaway();
            if let Some(stream) = stream {
                stream.refuse();
            }
            Status::unavailable("injected GOAWAY (before acting): stream refused")
        }
        _ => {
            tracing::info!(
                method,
                connection = conn.id(),
                "fault injection: GOAWAY, then close without answering"
            );
            conn.goaway_then_close();
            conn.closed().await;
            Status::unavailable("injected GOAWAY (after acting)")
        }
    }
}

/// A response that fault injection can turn into a malformed one ([`FailWhen::MalformedAnswer`]).
///
/// [`FailWhen::MalformedAnswer`]: crate::FailWhen::MalformedAnswer
pub(crate) trait Malformable: Sized {
    fn make_malformed(&mut self);

    /// The answer that reports the relay's transient delivery failure, for the messages that
    /// can carry one.
    fn delivery_error() -> Option<Self> {
        None
    }
}

impl Malformable for DeliveryOutcome {
    fn make_malformed(&mut self) {
        self.status = 99;
    }

    fn delivery_error() -> Option<Self> {
        Some(DeliveryOutcome {
            status: crate::proto::DeliveryStatus::Error as i32,
            ..DeliveryOutcome::default()
        })
    }
}

impl Malformable for GetDecisionOutcomeResponse {
    fn make_malformed(&mut self) {
        self.pending = false;
        self.outcome = 42;
    }
}

impl Malformable for GetQuotaResponse {
    fn make_malformed(&mut self) {
        self.status = 7;
    }
}

impl Malformable for GetIdentityDevicesResponse {
    fn make_malformed(&mut self) {
        if let Some(device) = self.devices.first_mut() {
            device.pq_public_key.truncate(100);
        }
    }
}

#[tonic::async_trait]
impl AgentService for RelayService {
    async fn route_decision(
        &self,
        request: Request<RouteDecisionRequest>,
    ) -> Result<Response<DeliveryOutcome>, Status> {
        self.call("RouteDecision", request, |relay, app, req| {
            let request_id = req.request_id.clone();
            let (status, decision_id) = relay.route(app, req).map_err(|e| match e {
                RouteError::Invalid(msg) => Status::invalid_argument(msg),
                RouteError::Exhausted(msg) => Status::resource_exhausted(msg),
                RouteError::Unavailable(msg) => Status::unavailable(msg),
            })?;
            tracing::info!(?status, "RouteDecision outcome");
            Ok(DeliveryOutcome {
                status: status as i32,
                request_id,
                decision_id,
            })
        })
        .await
    }

    async fn get_decision_outcome(
        &self,
        request: Request<GetDecisionOutcomeRequest>,
    ) -> Result<Response<GetDecisionOutcomeResponse>, Status> {
        self.call("GetDecisionOutcome", request, |relay, app, req| {
            if req.decision_id.is_empty() {
                return Err(Status::invalid_argument("decision_id must not be empty"));
            }
            let outcome = relay
                .outcome(app, &req.decision_id, &req.identity_id)
                .ok_or_else(|| {
                    Status::not_found("no such decision for this identity in this app")
                })?;
            Ok(GetDecisionOutcomeResponse {
                request_id: req.request_id,
                pending: outcome == Outcome::Pending,
                outcome: outcome.to_proto() as i32,
            })
        })
        .await
    }

    async fn get_quota(
        &self,
        request: Request<GetQuotaRequest>,
    ) -> Result<Response<GetQuotaResponse>, Status> {
        self.call("GetQuota", request, |relay, app, req| {
            let (total, remaining, status) = relay
                .quota(app)
                .ok_or_else(|| Status::internal("app vanished"))?;
            Ok(GetQuotaResponse {
                request_id: req.request_id,
                app_name: relay.app_name(app).to_string(),
                quota_total: total,
                quota_remaining: remaining,
                status: match status {
                    AppStatus::Active => QuotaStatus::QuotaActive,
                    AppStatus::Suspended => QuotaStatus::QuotaSuspended,
                } as i32,
            })
        })
        .await
    }

    async fn get_identity_devices(
        &self,
        request: Request<GetIdentityDevicesRequest>,
    ) -> Result<Response<GetIdentityDevicesResponse>, Status> {
        self.call("GetIdentityDevices", request, |relay, app, req| {
            let devices = relay
                .identity_devices(app, &req.identity_id)
                .into_iter()
                .map(|d| IdentityDevice {
                    device_id: d.device_id,
                    public_key: d.public_key,
                    pq_public_key: d.pq_public_key,
                })
                .collect();
            Ok(GetIdentityDevicesResponse {
                request_id: req.request_id,
                devices,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_tokens() {
        let mut m = MetadataMap::new();
        assert_eq!(bearer_token(&m), None);
        m.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&m), Some("abc"));
        m.insert("authorization", "bearer  abc ".parse().unwrap());
        assert_eq!(bearer_token(&m), Some("abc"));
        m.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&m), None);
        m.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&m), None);
    }
}
