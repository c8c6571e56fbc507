//! libnoxy: a client of the Noxy Decision Layer relay, with a C ABI.

pub mod crypto;
pub mod error;
pub mod routing;

/// Messages and client stubs generated from `proto/agent.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("noxy.agent");
}

pub use error::{Error, ErrorCode, Result};
