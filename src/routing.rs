//! Routing a decision: one encrypted copy per device, all devices concurrently.

use crate::error::Error;

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
