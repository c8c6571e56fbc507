//! Routing a decision: one encrypted copy per device, all devices concurrently.

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::answers;
use crate::cancel::Cancel;
use crate::client::{new_request_id, require_non_empty, Client, IdentityDevice};
use crate::crypto;
use crate::error::{Error, ErrorCode, Result};
use crate::payload::Payload;
use crate::proto;
use crate::transport::Rpc;

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

/// The error of a call that routed a decision: what went wrong, and what routing returned for
/// each device (empty when the call failed before routing). Send-and-wait reports
/// [`ErrorCode::NoDecisionId`] with the deliveries that explain it, and errors of its waiting
/// phase with the deliveries of the decision it waited on.
#[derive(Clone, Debug)]
pub struct DecisionError {
    /// The error.
    pub error: Error,
    /// One result per device, when routing happened.
    pub deliveries: Vec<DeviceDelivery>,
}

impl DecisionError {
    /// The error's stable code.
    pub fn code(&self) -> ErrorCode {
        self.error.code()
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        self.error.message()
    }
}

impl From<Error> for DecisionError {
    fn from(error: Error) -> DecisionError {
        DecisionError {
            error,
            deliveries: Vec::new(),
        }
    }
}

impl std::fmt::Display for DecisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        if !self.deliveries.is_empty() {
            write!(f, " ({} device results)", self.deliveries.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for DecisionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Options of [`Client::send_decision`].
#[derive(Clone, Debug, Default)]
pub struct SendOptions {
    /// With a key, the decision id and every per-device request id are derived
    /// deterministically instead of drawn at random, from: the relay endpoint (host and port),
    /// the identity, the key, the SHA-256 of the exact payload bytes and the TTL (and, for a
    /// request id, the device). An agent that crashed and re-sends the *same* decision with the
    /// same key gets the relay's existing decision back instead of a second prompt on the
    /// person's phone. The same key with a different payload or TTL derives a *different*
    /// decision, which the person sees and answers anew: an approval never covers content the
    /// person was not shown. The app token is never an input (a derived id must not help
    /// anyone guess the token, and rotating the token must not change the ids).
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

/// What a derived decision id stands for: everything that decides what the person sees.
struct Derivation<'a> {
    /// The relay, `host:port` after normalisation (the ids live in its namespace).
    scope: &'a str,
    identity_id: &'a str,
    idempotency_key: &'a str,
    payload_sha256: [u8; 32],
    ttl_seconds: u32,
}

/// The ids of one decision: derived from an idempotency key, or random.
struct DecisionIds {
    decision_id: String,
    /// Present when ids are derived: the name prefix shared by every derived id.
    derived_from: Option<String>,
}

impl DecisionIds {
    fn new(derivation: Option<Derivation<'_>>) -> DecisionIds {
        match derivation {
            None => DecisionIds {
                decision_id: uuid::Uuid::new_v4().to_string(),
                derived_from: None,
            },
            Some(d) => {
                // Every part is length-prefixed so that no two tuples share a name.
                let digest = hex_lower(&d.payload_sha256);
                let ttl = d.ttl_seconds.to_string();
                let base = [d.scope, d.identity_id, d.idempotency_key, &digest, &ttl]
                    .iter()
                    .map(|part| format!("{}:{part}", part.len()))
                    .collect::<Vec<_>>()
                    .join("|");
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

impl SendOptions {
    /// Checks the options against the client's configuration and returns the TTL to use; the
    /// error names the first invalid field.
    pub(crate) fn ttl_seconds(&self, default_ttl_seconds: u32) -> Result<u32> {
        if let Some(key) = &self.idempotency_key {
            require_non_empty("idempotency_key", key)?;
        }
        let ttl_seconds = self.ttl_seconds.unwrap_or(default_ttl_seconds);
        if ttl_seconds == 0 {
            return Err(Error::invalid_argument("ttl_seconds", "must be at least 1"));
        }
        Ok(ttl_seconds)
    }
}

impl Client {
    /// Routes a decision to every device of `identity_id`: one decision id, one encrypted copy
    /// and one `RouteDecision` per device, all devices concurrently. Returns one result per
    /// device; a device that fails (a bad key, a relay error after retries) does not affect the
    /// others. Fails as a whole only when the arguments are invalid, the devices cannot be
    /// listed, or the send is cancelled (then with the per-device results so far).
    pub async fn send_decision(
        &self,
        identity_id: &str,
        payload: &Payload,
        options: &SendOptions,
    ) -> Result<SendResult, DecisionError> {
        self.check_send(identity_id, options)?;
        let cancel = self.cancel_for(options.cancel.as_ref());
        self.send_with(identity_id, payload, options, &cancel).await
    }

    /// Every check `send_decision` makes before contacting the relay.
    pub(crate) fn check_send(&self, identity_id: &str, options: &SendOptions) -> Result<()> {
        require_non_empty("identity_id", identity_id)?;
        options.ttl_seconds(self.inner.config.decision_ttl_seconds)?;
        Ok(())
    }

    pub(crate) async fn send_with(
        &self,
        identity_id: &str,
        payload: &Payload,
        options: &SendOptions,
        cancel: &Cancel,
    ) -> Result<SendResult, DecisionError> {
        require_non_empty("identity_id", identity_id)?;
        let ttl_seconds = options.ttl_seconds(self.inner.config.decision_ttl_seconds)?;
        // At most `max_concurrent_requests` decisions are being routed at once: a burst of
        // thousands then routes in order, each holding its encrypted copies only while it is
        // routed, instead of all of them holding copies while queued for the relay.
        let _routing = tokio::select! {
            biased;
            error = cancel.cancelled() => return Err(error.into()),
            permit = self.inner.routing.acquire() => permit
                .map_err(|_| Error::cancelled("the client is closed"))?,
        };
        let devices = self.identity_devices(identity_id, cancel).await?;
        let payload_sha256 = payload.sha256();
        let ids = DecisionIds::new(options.idempotency_key.as_deref().map(|key| Derivation {
            scope: &self.inner.id_scope,
            identity_id,
            idempotency_key: key,
            payload_sha256,
            ttl_seconds,
        }));
        // Every copy is encrypted first, so that the device keys (1184 bytes each) are released
        // before routing waits for the relay.
        let copies: Vec<DeviceCopy> = devices
            .into_iter()
            .map(|device| encrypt_copy(device, &ids, payload, ttl_seconds))
            .collect();
        let routes = copies
            .into_iter()
            .map(|copy| self.route_copy(copy, &ids, cancel));
        // Each device's call watches `cancel` itself, so a cancelled send still returns at once;
        // the per-device results then travel with the error.
        let deliveries = join_all(routes).await;
        if let Err(error) = cancel.check() {
            return Err(DecisionError { error, deliveries });
        }
        Ok(SendResult {
            decision_id: ids.decision_id,
            plaintext_sha256: payload_sha256,
            deliveries,
        })
    }

    /// Routes one device's copy: retried under its request id, one result whatever happens.
    async fn route_copy(
        &self,
        copy: DeviceCopy,
        ids: &DecisionIds,
        cancel: &Cancel,
    ) -> DeviceDelivery {
        let DeviceCopy {
            device_id,
            request_id,
            request,
        } = copy;
        let outcome = async {
            let request = request?;
            // ERROR is the relay's transient delivery failure: retried with the same request id
            // while the retry policy allows, then reported as the relay answered it.
            let transient_answer = |answer: &proto::DeliveryOutcome| {
                answer.status == proto::DeliveryStatus::Error as i32
            };
            let answer: proto::DeliveryOutcome = self
                .inner
                .transport
                .call(Rpc::RouteDecision, cancel, true, transient_answer, &request)
                .await?;
            answers::delivery(answer, &ids.decision_id)
        }
        .await;
        DeviceDelivery {
            device_id,
            request_id,
            outcome,
        }
    }
}

/// One device's encrypted copy of a decision, ready to route (or why it cannot be).
struct DeviceCopy {
    device_id: String,
    request_id: String,
    /// Built once: every retry sends these exact bytes under the same request id.
    request: Result<proto::RouteDecisionRequest, Error>,
}

fn encrypt_copy(
    device: IdentityDevice,
    ids: &DecisionIds,
    payload: &Payload,
    ttl_seconds: u32,
) -> DeviceCopy {
    let request_id = ids.request_id(&device.device_id);
    let request = crypto::encrypt_for_device(&device.pq_public_key, payload.as_bytes())
        .map(|encrypted| proto::RouteDecisionRequest {
            request_id: request_id.clone(),
            ciphertext: encrypted.ciphertext,
            ttl_seconds,
            target_device_id: device.device_id.clone(),
            kyber_ct: encrypted.kyber_ct,
            nonce: encrypted.nonce.to_vec(),
            decision_id: ids.decision_id.clone(),
        })
        .map_err(|e| e.context(format_args!("device {}", device.device_id)));
    DeviceCopy {
        device_id: device.device_id,
        request_id,
        request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(
        scope: &str,
        identity_id: &str,
        key: &str,
        payload: &[u8],
        ttl_seconds: u32,
    ) -> DecisionIds {
        DecisionIds::new(Some(Derivation {
            scope,
            identity_id,
            idempotency_key: key,
            payload_sha256: crypto::sha256(payload),
            ttl_seconds,
        }))
    }

    #[test]
    fn derived_ids_are_stable_and_bind_everything_the_person_sees() {
        let send_1 = br#"{"title":"Send 1 ETH"}"#;
        let a = derived("relay:443", "alice", "transfer-42", send_1, 600);
        let again = derived("relay:443", "alice", "transfer-42", send_1, 600);
        assert_eq!(a.decision_id, again.decision_id);
        assert_eq!(a.request_id("d1"), again.request_id("d1"));
        assert_ne!(a.request_id("d1"), a.request_id("d2"));
        assert_ne!(a.decision_id, a.request_id("d1"));
        for other in [
            derived("relay:8443", "alice", "transfer-42", send_1, 600),
            derived("relay:443", "alice2", "transfer-42", send_1, 600),
            derived("relay:443", "alice", "transfer-43", send_1, 600),
            // The same key with other content is another decision.
            derived(
                "relay:443",
                "alice",
                "transfer-42",
                br#"{"title":"Send 1000 ETH"}"#,
                600,
            ),
            derived(
                "relay:443",
                "alice",
                "transfer-42",
                br#"{"title": "Send 1 ETH"}"#,
                600,
            ),
            derived("relay:443", "alice", "transfer-42", send_1, 601),
            // Length prefixes keep the boundary: ("ab","c") is not ("a","bc").
            derived("relay:443", "alice|", "transfer-42", send_1, 600),
        ] {
            assert_ne!(a.decision_id, other.decision_id);
            assert_ne!(a.request_id("d1"), other.request_id("d1"));
        }
        assert!(uuid::Uuid::parse_str(&a.decision_id).is_ok());
    }

    #[test]
    fn random_ids_differ_each_time() {
        let a = DecisionIds::new(None);
        let b = DecisionIds::new(None);
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
