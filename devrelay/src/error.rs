//! The error type of starting a development relay.

/// Why a [`crate::DevRelay`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevRelayError {
    /// The configuration is invalid (duplicate app names or tokens, bad values...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Creating or loading the TLS material failed.
    #[error("TLS material: {0}")]
    Tls(String),
    /// The state database cannot be used: another relay holds it, it was written by an
    /// incompatible version, or reading or writing it failed. The message names the file and
    /// what to do.
    #[error("state database: {0}")]
    Storage(String),
    /// The gRPC server could not be configured.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl DevRelayError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DevRelayError::Io {
            context: context.into(),
            source,
        }
    }
}
