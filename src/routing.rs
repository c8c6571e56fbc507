//! Routing a decision: one encrypted copy per device, all devices concurrently.

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::cancel::Cancel;
use crate::client::{new_request_id, require_non_empty, timed, Client, IdentityDevice};
use crate::crypto;
use crate::error::{Error, Result};
use crate::payload::Payload;
use crate::proto;

/// The relay's answer for one device's `RouteDecision` (`DeliveryStatus` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DeliveryStatus {
    /// The device was online and received the decision.
    Delivered = 0,
    /// The device was offline; the relay stored the decision and woke the device.
    Queued = 1,
    /// The relay knows no device to deliver to.
    NoDevices = 2,
    /// The relay refused the decision (quota exhausted, app suspended, ...).
    Rejected = 3,
    /// A transient relay error for this delivery.
    Error = 4,
}

impl DeliveryStatus {
    /// The status for a wire value, or `None` for a value this library does not know.
    pub fn from_wire(value: i32) -> Option<DeliveryStatus> {
        match value {
            0 => Some(DeliveryStatus::Delivered),
            1 => Some(DeliveryStatus::Queued),
            2 => Some(DeliveryStatus::NoDevices),
            3 => Some(DeliveryStatus::Rejected),
            4 => Some(DeliveryStatus::Error),
            _ => None,
        }
    }

    /// Whether the relay accepted the decision for this device (DELIVERED or QUEUED), so that
    /// there is a decision to wait on.
    pub fn is_accepted(self) -> bool {
        matches!(self, DeliveryStatus::Delivered | DeliveryStatus::Queued)
    }
}

/// What the relay answered for one accepted-or-not `RouteDecision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The delivery status.
    pub status: DeliveryStatus,
    /// The decision id the relay echoed (or the one we sent, if the relay echoed none).
    pub decision_id: String,
}

/// The result of routing a decision to one device: the relay's answer or that device's error.
#[derive(Clone, Debug)]
pub struct DeviceDelivery {
    /// The device this copy was encrypted for.
    pub device_id: String,
    /// The `request_id` of this device's `RouteDecision` (kept across retries).
    pub request_id: String,
    /// The relay's answer, or the error that ended this device's delivery (a bad device key, a
    /// non-transient relay error, retries exhausted). Other devices are unaffected.
    pub outcome: Result<Delivery, Error>,
}

impl DeviceDelivery {
    /// The decision id the relay accepted for this device, if it accepted it.
    pub fn accepted_decision_id(&self) -> Option<&str> {
        match &self.outcome {
            Ok(delivery) if delivery.status.is_accepted() => Some(&delivery.decision_id),
            _ => None,
        }
    }
}

/// The result of `send_decision`: the decision id, one result per device, and the digest of the
/// exact plaintext bytes that were encrypted.
#[derive(Clone, Debug)]
pub struct SendResult {
    /// The decision id this client generated (or derived from the idempotency key) and sent.
    pub decision_id: String,
    /// SHA-256 of the exact UTF-8 JSON bytes that every device received, encrypted.
    pub plaintext_sha256: [u8; 32],
    /// One result per device, in the order the relay listed the devices.
    pub deliveries: Vec<DeviceDelivery>,
}

impl SendResult {
    /// The decision id of the first delivery the relay accepted (DELIVERED or QUEUED).
    pub fn accepted_decision_id(&self) -> Option<&str> {
        self.deliveries
            .iter()
            .find_map(DeviceDelivery::accepted_decision_id)
    }
}

/// Options of [`Client::send_decision`].
#[derive(Clone, Debug, Default)]
pub struct SendOptions {
    /// With a key, the decision id and every per-device request id are derived
    /// deterministically from (app token, identity, key, device) instead of drawn at random. An
    /// agent that crashed and re-sends the same decision with the same key gets the relay's
    /// existing decision back instead of a second prompt on the person's phone.
    pub idempotency_key: Option<String>,
    /// Overrides the client's `decision_ttl_seconds` for this decision (at least 1).
    pub ttl_seconds: Option<u32>,
    /// Ends the send early with [`ErrorCode::Cancelled`](crate::ErrorCode::Cancelled).
    pub cancel: Option<CancellationToken>,
}

/// Fixed namespace of the name-based (v5) UUIDs that idempotency keys derive.
const IDEMPOTENCY_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6e, 0x6f, 0x78, 0x79, 0x2d, 0x69, 0x44, 0x65, 0x8d, 0x70, 0x6f, 0x74, 0x65, 0x6e, 0x63, 0x79,
]);

/// The ids of one decision: derived from an idempotency key, or random.
struct DecisionIds {
    decision_id: String,
    /// Present when ids are derived: the name prefix shared by every derived id.
    derived_from: Option<String>,
}

impl DecisionIds {
    fn new(app_token: &str, identity_id: &str, idempotency_key: Option<&str>) -> DecisionIds {
        match idempotency_key {
            None => DecisionIds {
                decision_id: uuid::Uuid::new_v4().to_string(),
                derived_from: None,
            },
            Some(key) => {
                // The token is hashed so that the derivation input never holds the secret;
                // every part is length-prefixed so that no two tuples share a name.
                let app = hex_lower(&crypto::sha256(app_token.as_bytes()));
                let base = format!(
                    "{}:{app}|{}:{identity_id}|{}:{key}",
                    app.len(),
                    identity_id.len(),
                    key.len()
                );
                DecisionIds {
                    decision_id: derive_uuid(&format!("decision|{base}")),
                    derived_from: Some(base),
                }
            }
        }
    }

    fn request_id(&self, device_id: &str) -> String {
        match &self.derived_from {
            Some(base) => derive_uuid(&format!("request|{base}|{}:{device_id}", device_id.len())),
            None => new_request_id(),
        }
    }
}

fn derive_uuid(name: &str) -> String {
    uuid::Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes()).to_string()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Client {
    /// Routes a decision to every device of `identity_id`: one decision id, one encrypted copy
    /// and one `RouteDecision` per device, all devices concurrently. Returns one result per
    /// device; a device that fails (a bad key, a relay error after retries) does not affect the
    /// others. Fails as a whole only when the devices cannot be listed, the arguments are
    /// invalid, or the send is cancelled.
    pub async fn send_decision(
        &self,
        identity_id: &str,
        payload: &Payload,
        options: &SendOptions,
    ) -> Result<SendResult> {
        let cancel = self.cancel_for(options.cancel.as_ref());
        self.send_with(identity_id, payload, options, &cancel).await
    }

    pub(crate) async fn send_with(
        &self,
        identity_id: &str,
        payload: &Payload,
        options: &SendOptions,
        cancel: &Cancel,
    ) -> Result<SendResult> {
        require_non_empty("identity_id", identity_id)?;
        if let Some(key) = &options.idempotency_key {
            require_non_empty("idempotency_key", key)?;
        }
        let ttl_seconds = options
            .ttl_seconds
            .unwrap_or(self.inner.config.decision_ttl_seconds);
        if ttl_seconds == 0 {
            return Err(Error::invalid_argument("ttl_seconds", "must be at least 1"));
        }
        let devices = self.identity_devices(identity_id, cancel).await?;
        let ids = DecisionIds::new(
            &self.inner.config.app_token,
            identity_id,
            options.idempotency_key.as_deref(),
        );
        let routes = devices
            .iter()
            .map(|device| self.route_to_device(device, &ids, payload, ttl_seconds, cancel));
        // Each device's call watches `cancel` itself, so a cancelled send still returns at once;
        // the per-device results then travel with the error.
        let deliveries = join_all(routes).await;
        if let Err(error) = cancel.check() {
            return Err(error.with_deliveries(deliveries));
        }
        Ok(SendResult {
            decision_id: ids.decision_id,
            plaintext_sha256: payload.sha256(),
            deliveries,
        })
    }

    async fn route_to_device(
        &self,
        device: &IdentityDevice,
        ids: &DecisionIds,
        payload: &Payload,
        ttl_seconds: u32,
        cancel: &Cancel,
    ) -> DeviceDelivery {
        let request_id = ids.request_id(&device.device_id);
        let outcome = async {
            let encrypted = crypto::encrypt_for_device(&device.pq_public_key, payload.as_bytes())
                .map_err(|e| {
                Error::new(
                    e.code(),
                    format!("device {}: {}", device.device_id, e.message()),
                )
            })?;
            // Built once: every retry sends these exact bytes under the same request id.
            let request = proto::RouteDecisionRequest {
                request_id: request_id.clone(),
                ciphertext: encrypted.ciphertext,
                ttl_seconds,
                target_device_id: device.device_id.clone(),
                kyber_ct: encrypted.kyber_ct,
                nonce: encrypted.nonce.to_vec(),
                decision_id: ids.decision_id.clone(),
            };
            let answer = self
                .inner
                .transport
                .call("RouteDecision", cancel, true, |mut stub, timeout| {
                    let request = timed(request.clone(), timeout);
                    async move {
                        let answer = stub.route_decision(request).await?;
                        // ERROR is the relay's transient delivery failure: retry it like an
                        // UNAVAILABLE, with the same request id.
                        if answer.get_ref().status == proto::DeliveryStatus::Error as i32 {
                            return Err(tonic::Status::unavailable(
                                "the relay answered delivery status ERROR",
                            ));
                        }
                        Ok(answer)
                    }
                })
                .await?;
            let status = DeliveryStatus::from_wire(answer.status).ok_or_else(|| {
                Error::protocol(format!(
                    "RouteDecision: unknown delivery status {}",
                    answer.status
                ))
            })?;
            let decision_id = if answer.decision_id.is_empty() {
                ids.decision_id.clone()
            } else {
                answer.decision_id
            };
            Ok(Delivery {
                status,
                decision_id,
            })
        }
        .await;
        DeviceDelivery {
            device_id: device.device_id.clone(),
            request_id,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = DecisionIds::new("token", "alice", Some("transfer-42"));
        let again = DecisionIds::new("token", "alice", Some("transfer-42"));
        assert_eq!(a.decision_id, again.decision_id);
        assert_eq!(a.request_id("d1"), again.request_id("d1"));
        assert_ne!(a.request_id("d1"), a.request_id("d2"));
        assert_ne!(a.decision_id, a.request_id("d1"));
        for other in [
            DecisionIds::new("token2", "alice", Some("transfer-42")),
            DecisionIds::new("token", "alice2", Some("transfer-42")),
            DecisionIds::new("token", "alice", Some("transfer-43")),
            // Length prefixes keep the boundary: ("ab","c") is not ("a","bc").
            DecisionIds::new("token", "alice|", Some("transfer-42")),
        ] {
            assert_ne!(a.decision_id, other.decision_id);
        }
        assert!(uuid::Uuid::parse_str(&a.decision_id).is_ok());
    }

    #[test]
    fn random_ids_differ_each_time() {
        let a = DecisionIds::new("token", "alice", None);
        let b = DecisionIds::new("token", "alice", None);
        assert_ne!(a.decision_id, b.decision_id);
        assert_ne!(a.request_id("d1"), a.request_id("d1"));
        let parsed = uuid::Uuid::parse_str(&a.decision_id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn accepted_decision_id_skips_rejected_and_failed_devices() {
        let delivery = |status, id: &str| DeviceDelivery {
            device_id: "d".into(),
            request_id: "r".into(),
            outcome: Ok(Delivery {
                status,
                decision_id: id.into(),
            }),
        };
        let failed = DeviceDelivery {
            device_id: "d".into(),
            request_id: "r".into(),
            outcome: Err(Error::protocol("bad key")),
        };
        let result = SendResult {
            decision_id: "mine".into(),
            plaintext_sha256: [0; 32],
            deliveries: vec![
                failed,
                delivery(DeliveryStatus::Rejected, "x"),
                delivery(DeliveryStatus::Queued, "queued-one"),
                delivery(DeliveryStatus::Delivered, "delivered-one"),
            ],
        };
        assert_eq!(result.accepted_decision_id(), Some("queued-one"));
        let none = SendResult {
            deliveries: vec![delivery(DeliveryStatus::NoDevices, "x")],
            ..result
        };
        assert_eq!(none.accepted_decision_id(), None);
    }
}
