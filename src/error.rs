//! The library's one error type, with stable numeric codes that the C ABI exposes unchanged.
//!
//! It depends on nothing else in the crate: per-device results of a failed send travel in
//! [`DecisionError`](crate::routing::DecisionError), and transport types stay inside the
//! transport.

use std::fmt;

/// A stable error code. The numbers are part of the C ABI (`NOXY_ERROR_*`) and never change;
/// a retired code keeps its number reserved. `0` is reserved for "no error" on the C side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// An argument or a configuration value is invalid (the message names it).
    InvalidArgument = 1,
    /// The decision payload is not a JSON object, is not valid UTF-8, or is too large.
    InvalidPayload = 2,
    /// The relay could not be reached, the connection was lost, or the relay answered
    /// UNAVAILABLE (a transport failure).
    Unavailable = 3,
    /// A call's deadline passed before the relay answered.
    DeadlineExceeded = 4,
    /// The relay did not accept the app token.
    Unauthenticated = 5,
    /// The relay refused the call for this app.
    PermissionDenied = 6,
    /// The relay rejected the decision or the call: quota exhausted, app suspended, rate limited.
    Rejected = 7,
    /// The relay knows no such decision for this identity (or no such object).
    NotFound = 8,
    /// Waiting for an outcome used up its whole budget without a terminal outcome.
    WaitTimedOut = 9,
    /// The operation was cancelled by the caller, or the client was closed. Nothing else.
    Cancelled = 10,
    /// No delivery was accepted by the relay, so there is no decision to wait on.
    NoDecisionId = 11,
    /// The relay's answer was malformed (an unknown enum value, a missing field, bad key sizes).
    Protocol = 12,
    /// A bug in the library, or the relay reported an internal error.
    Internal = 13,
}

impl ErrorCode {
    /// Every code, in numeric order (for tests and for bindings that mirror the list).
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidPayload,
        ErrorCode::Unavailable,
        ErrorCode::DeadlineExceeded,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::Rejected,
        ErrorCode::NotFound,
        ErrorCode::WaitTimedOut,
        ErrorCode::Cancelled,
        ErrorCode::NoDecisionId,
        ErrorCode::Protocol,
        ErrorCode::Internal,
    ];

    /// The stable number of this code.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The code with this number, if there is one.
    pub fn from_u32(number: u32) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_u32() == number)
    }

    /// A short, stable, lower-case name (`"wait_timed_out"`), for logs and bindings.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Rejected => "rejected",
            ErrorCode::NotFound => "not_found",
            ErrorCode::WaitTimedOut => "wait_timed_out",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::NoDecisionId => "no_decision_id",
            ErrorCode::Protocol => "protocol",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error of the library: a stable [`ErrorCode`], a human-readable message (the relay's own
/// message is kept when the relay produced the error), and whether a retry of the same call may
/// succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
    transient: bool,
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error with a code and a message. It counts as transient when the code is
    /// [`ErrorCode::Unavailable`] or [`ErrorCode::DeadlineExceeded`].
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            transient: matches!(code, ErrorCode::Unavailable | ErrorCode::DeadlineExceeded),
        }
    }

    /// An [`ErrorCode::InvalidArgument`] error naming the offending field.
    pub fn invalid_argument(field: &str, problem: impl fmt::Display) -> Error {
        Error::new(ErrorCode::InvalidArgument, format!("{field}: {problem}"))
    }

    /// An [`ErrorCode::InvalidPayload`] error.
    pub fn invalid_payload(problem: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidPayload, problem)
    }

    /// An [`ErrorCode::Protocol`] error: the relay answered something malformed.
    pub fn protocol(problem: impl Into<String>) -> Error {
        Error::new(ErrorCode::Protocol, problem)
    }

    /// An [`ErrorCode::Internal`] error.
    pub fn internal(problem: impl Into<String>) -> Error {
        Error::new(ErrorCode::Internal, problem)
    }

    /// An [`ErrorCode::Cancelled`] error.
    pub fn cancelled(problem: impl Into<String>) -> Error {
        Error::new(ErrorCode::Cancelled, problem)
    }

    /// Overrides whether the error is transient (the transport knows better than the code:
    /// a RESOURCE_EXHAUSTED answer is REJECTED but worth a retry).
    pub(crate) fn with_transient(mut self, transient: bool) -> Error {
        self.transient = transient;
        self
    }

    /// The same error with `context: ` put before its message.
    pub(crate) fn context(mut self, context: impl fmt::Display) -> Error {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable message. It never contains the app token or a payload.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether a retry of the same call may succeed: the gRPC codes the relay's SDKs retry
    /// (UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE) and lost connections.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.code.as_u32(),
            self.message
        )
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_dense() {
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.as_u32(), index as u32 + 1, "{code}");
            assert_eq!(ErrorCode::from_u32(code.as_u32()), Some(*code));
        }
        assert_eq!(ErrorCode::from_u32(0), None);
        assert_eq!(ErrorCode::from_u32(14), None);
    }

    #[test]
    fn transience_follows_the_code_unless_overridden() {
        assert!(Error::new(ErrorCode::Unavailable, "x").is_transient());
        assert!(Error::new(ErrorCode::DeadlineExceeded, "x").is_transient());
        assert!(!Error::cancelled("x").is_transient());
        assert!(!Error::protocol("x").is_transient());
        assert!(Error::new(ErrorCode::Rejected, "x")
            .with_transient(true)
            .is_transient());
        let error = Error::invalid_argument("ttl_seconds", "must be at least 1").context("send");
        assert_eq!(error.message(), "send: ttl_seconds: must be at least 1");
        assert_eq!(
            error.to_string(),
            "invalid_argument (1): send: ttl_seconds: must be at least 1"
        );
    }
}
