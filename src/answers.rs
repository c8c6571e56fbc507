//! The relay's answers turned into the library's results: the one place where what a relay
//! sends (possibly broken or hostile) is checked. Unknown enum values are protocol errors, never
//! guesses.

use crate::client::{IdentityDevice, Quota, QuotaStatus};
use crate::error::{Error, Result};
use crate::proto;
use crate::routing::{Delivery, DeliveryStatus};
use crate::waiting::{DecisionOutcome, DecisionState};

/// A RouteDecision answer. An empty decision id means the one we sent (`sent_decision_id`).
pub(crate) fn delivery(answer: proto::DeliveryOutcome, sent_decision_id: &str) -> Result<Delivery> {
    let status = DeliveryStatus::from_wire(answer.status).ok_or_else(|| {
        Error::protocol(format!(
            "RouteDecision: unknown delivery status {}",
            answer.status
        ))
    })?;
    let decision_id = if answer.decision_id.is_empty() {
        sent_decision_id.to_owned()
    } else {
        answer.decision_id
    };
    Ok(Delivery {
        status,
        decision_id,
    })
}

/// A GetDecisionOutcome answer.
pub(crate) fn decision_state(answer: proto::GetDecisionOutcomeResponse) -> Result<DecisionState> {
    let outcome = match answer.outcome {
        0 => DecisionOutcome::Pending,
        1 => DecisionOutcome::Approved,
        2 => DecisionOutcome::Rejected,
        3 => DecisionOutcome::Expired,
        other => {
            return Err(Error::protocol(format!(
                "GetDecisionOutcome: unknown decision outcome {other}"
            )))
        }
    };
    Ok(DecisionState {
        pending: answer.pending,
        outcome,
    })
}

/// A GetQuota answer.
pub(crate) fn quota(answer: proto::GetQuotaResponse) -> Result<Quota> {
    let status = match answer.status {
        0 => QuotaStatus::Active,
        1 => QuotaStatus::Suspended,
        2 => QuotaStatus::Deleted,
        // The relay's Rust SDK reads an unknown status as ACTIVE; guessing is worse than
        // saying so.
        other => {
            return Err(Error::protocol(format!(
                "GetQuota: unknown quota status {other}"
            )))
        }
    };
    Ok(Quota {
        app_name: answer.app_name,
        quota_total: answer.quota_total,
        quota_remaining: answer.quota_remaining,
        status,
    })
}

/// A GetIdentityDevices answer. Keys are checked per device when a decision is encrypted for
/// it, so that one malformed device fails alone.
pub(crate) fn devices(answer: proto::GetIdentityDevicesResponse) -> Vec<IdentityDevice> {
    answer
        .devices
        .into_iter()
        .map(|device| IdentityDevice {
            device_id: device.device_id,
            public_key: device.public_key,
            pq_public_key: device.pq_public_key,
        })
        .collect()
}

/// Entry points for fuzzing the path a relay controls: bytes decoded as each answer message the
/// way the transport decodes them, then mapped into results. Only with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use prost::Message;

    use super::*;

    /// Decodes `bytes` as each of the four answer messages and maps what decodes.
    pub fn decode_and_map_every_answer(bytes: &[u8]) {
        if let Ok(answer) = proto::DeliveryOutcome::decode(bytes) {
            let _ = delivery(answer, "sent-decision-id");
        }
        if let Ok(answer) = proto::GetDecisionOutcomeResponse::decode(bytes) {
            if let Ok(state) = decision_state(answer) {
                let _ = crate::is_terminal_outcome(&state);
            }
        }
        if let Ok(answer) = proto::GetQuotaResponse::decode(bytes) {
            let _ = quota(answer);
        }
        if let Ok(answer) = proto::GetIdentityDevicesResponse::decode(bytes) {
            for device in devices(answer) {
                let _ = crate::crypto::encrypt_for_device(&device.pq_public_key, b"{}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn unknown_enum_values_are_protocol_errors() {
        let route = proto::DeliveryOutcome {
            status: 99,
            ..Default::default()
        };
        assert_eq!(
            delivery(route, "d").unwrap_err().code(),
            ErrorCode::Protocol
        );
        let outcome = proto::GetDecisionOutcomeResponse {
            outcome: -1,
            ..Default::default()
        };
        assert_eq!(
            decision_state(outcome).unwrap_err().code(),
            ErrorCode::Protocol
        );
        let status = proto::GetQuotaResponse {
            status: 3,
            ..Default::default()
        };
        assert_eq!(quota(status).unwrap_err().code(), ErrorCode::Protocol);
    }

    #[test]
    fn an_empty_decision_id_is_the_one_sent() {
        let echoed = delivery(proto::DeliveryOutcome::default(), "mine").unwrap();
        assert_eq!(echoed.decision_id, "mine");
        assert_eq!(echoed.status, DeliveryStatus::Delivered);
        let relays = delivery(
            proto::DeliveryOutcome {
                decision_id: "theirs".into(),
                ..Default::default()
            },
            "mine",
        )
        .unwrap();
        assert_eq!(relays.decision_id, "theirs");
    }
}
