//! libnoxy: a client of the Noxy Decision Layer relay, and the C ABI over it.
//!
//! An AI agent about to do something consequential routes an end-to-end encrypted *decision*
//! to the devices a person registered, and waits until that person approves, rejects, or the
//! decision expires:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use noxy::{Client, ClientConfig, Payload, SendOptions, WaitOptions, DecisionOutcome};
//!
//! let client = Client::new(ClientConfig::new("https://relay.noxy.network", "app-token"))?;
//! let payload = Payload::from_json_str(r#"{"kind":"transfer","title":"Send 5 ETH"}"#)?;
//! let result = client
//!     .send_decision_and_wait_for_outcome("0xabc…", &payload, &SendOptions::default(), &WaitOptions::default())
//!     .await?;
//! if result.state.outcome == DecisionOutcome::Approved { /* act */ }
//! # Ok(()) }
//! ```
//!
//! Per device, the payload is encrypted with ML-KEM-768 (FIPS 203) → HKDF-SHA256 →
//! AES-256-GCM, byte-compatible with Noxy devices ([`crypto`]).

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod answers;
mod backoff;
mod cancel;
pub mod client;
pub mod config;
pub mod crypto;
pub mod error;
#[allow(unsafe_code)] // the C ABI: every unsafe block there carries a SAFETY comment
pub mod ffi;
pub mod payload;
pub mod routing;
mod socket;
mod transport;
pub mod waiting;

/// Messages and client stubs generated from `proto/agent.proto`: private, so that a tonic or
/// prost upgrade never changes the library's public API.
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod proto {
    tonic::include_proto!("noxy.agent");
}

/// Fuzzing entry points (the `fuzzing` feature): not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use answers::fuzzing;
pub use client::{Client, IdentityDevice, Quota, QuotaStatus};
pub use config::{ClientConfig, RetryPolicy};
pub use error::{Error, ErrorCode, Result};
pub use payload::{Payload, MAX_PAYLOAD_BYTES};
pub use routing::{
    DecisionError, Delivery, DeliveryStatus, DeviceDelivery, SendOptions, SendResult,
};
pub use tokio_util::sync::CancellationToken;
pub use waiting::{
    is_terminal_outcome, DecisionOutcome, DecisionResult, DecisionState, WaitOptions,
};
