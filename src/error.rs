//! The library's one error type, with stable numeric codes that the C ABI exposes unchanged.

use std::fmt;

use crate::routing::DeviceDelivery;

/// A stable error code. The numbers are part of the C ABI (`NOXY_ERROR_*`) and never change;
/// a retired code keeps its number reserved. `0` is reserved for "no error" on the C side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// An argument or a configuration value is invalid (the message names it).
    InvalidArgument = 1,
    /// The decision payload is not a JSON object, is not valid UTF-8, or is too large.
    InvalidPayload = 2,
    /// The relay could not be reached or answered UNAVAILABLE (a transport failure).
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
    /// The operation was cancelled by the caller, or the client was closed.
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

    /// Maps a gRPC status code onto the library's codes. `Ok` has no error code and maps to
    /// `Internal`, because a successful status never reaches this function in practice.
    pub fn from_grpc(code: tonic::Code) -> ErrorCode {
        use tonic::Code;
        match code {
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                ErrorCode::InvalidArgument
            }
            Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            Code::NotFound => ErrorCode::NotFound,
            Code::AlreadyExists | Code::ResourceExhausted => ErrorCode::Rejected,
            Code::PermissionDenied => ErrorCode::PermissionDenied,
            Code::Unauthenticated => ErrorCode::Unauthenticated,
            Code::Unavailable | Code::Aborted | Code::Unknown => ErrorCode::Unavailable,
            Code::Cancelled => ErrorCode::Cancelled,
            Code::Unimplemented => ErrorCode::Protocol,
            Code::Internal | Code::DataLoss | Code::Ok => ErrorCode::Internal,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error of the library: a stable [`ErrorCode`], a human-readable message (the relay's own
/// message is kept when the relay produced the error), the gRPC status code when there was one,
/// and, for [`ErrorCode::NoDecisionId`], the per-device delivery results that explain it.
#[derive(Clone, Debug)]
pub struct Error {
    code: ErrorCode,
    message: String,
    grpc_code: Option<tonic::Code>,
    deliveries: Vec<DeviceDelivery>,
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            grpc_code: None,
            deliveries: Vec::new(),
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

    /// The error for a gRPC status returned by (or synthesised for) RPC `method`. The relay's
    /// message is kept verbatim after the method name.
    pub fn from_status(method: &str, status: &tonic::Status) -> Error {
        let code = ErrorCode::from_grpc(status.code());
        let relay_message = status.message();
        let message = if relay_message.is_empty() {
            format!("{method}: {:?}", status.code())
        } else {
            format!("{method}: {:?}: {relay_message}", status.code())
        };
        Error {
            code,
            message,
            grpc_code: Some(status.code()),
            deliveries: Vec::new(),
        }
    }

    /// Records the gRPC status code this error stands for (for synthesised statuses such as a
    /// local deadline), which also makes transience follow the gRPC code.
    pub fn with_grpc_code(mut self, code: tonic::Code) -> Error {
        self.grpc_code = Some(code);
        self
    }

    /// Attaches per-device delivery results (used by [`ErrorCode::NoDecisionId`]).
    pub fn with_deliveries(mut self, deliveries: Vec<DeviceDelivery>) -> Error {
        self.deliveries = deliveries;
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

    /// The gRPC status code the relay (or the transport) reported, if the error came from one.
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        self.grpc_code
    }

    /// Per-device delivery results attached to a [`ErrorCode::NoDecisionId`] error; empty
    /// otherwise.
    pub fn deliveries(&self) -> &[DeviceDelivery] {
        &self.deliveries
    }

    /// Whether a retry of the same call may succeed: the gRPC codes the relay's SDKs retry
    /// (UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE) and transport failures.
    pub fn is_transient(&self) -> bool {
        match self.grpc_code {
            Some(code) => matches!(
                code,
                tonic::Code::Unknown
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Unavailable
            ),
            None => matches!(
                self.code,
                ErrorCode::Unavailable | ErrorCode::DeadlineExceeded
            ),
        }
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
    use tonic::Code;

    #[test]
    fn codes_are_stable_and_dense() {
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.as_u32(), index as u32 + 1, "{code}");
        }
    }

    #[test]
    fn every_grpc_code_maps() {
        let expected = [
            (Code::Ok, ErrorCode::Internal),
            (Code::Cancelled, ErrorCode::Cancelled),
            (Code::Unknown, ErrorCode::Unavailable),
            (Code::InvalidArgument, ErrorCode::InvalidArgument),
            (Code::DeadlineExceeded, ErrorCode::DeadlineExceeded),
            (Code::NotFound, ErrorCode::NotFound),
            (Code::AlreadyExists, ErrorCode::Rejected),
            (Code::PermissionDenied, ErrorCode::PermissionDenied),
            (Code::ResourceExhausted, ErrorCode::Rejected),
            (Code::FailedPrecondition, ErrorCode::InvalidArgument),
            (Code::Aborted, ErrorCode::Unavailable),
            (Code::OutOfRange, ErrorCode::InvalidArgument),
            (Code::Unimplemented, ErrorCode::Protocol),
            (Code::Internal, ErrorCode::Internal),
            (Code::Unavailable, ErrorCode::Unavailable),
            (Code::DataLoss, ErrorCode::Internal),
            (Code::Unauthenticated, ErrorCode::Unauthenticated),
        ];
        for (grpc, ours) in expected {
            assert_eq!(ErrorCode::from_grpc(grpc), ours, "{grpc:?}");
        }
    }

    #[test]
    fn status_keeps_relay_message_and_transience() {
        let error = Error::from_status("GetQuota", &tonic::Status::unavailable("relay draining"));
        assert_eq!(error.code(), ErrorCode::Unavailable);
        assert!(error.message().contains("relay draining"));
        assert!(error.message().starts_with("GetQuota"));
        assert!(error.is_transient());
        let denied = Error::from_status("GetQuota", &tonic::Status::permission_denied("no"));
        assert!(!denied.is_transient());
        let exhausted = Error::from_status("RouteDecision", &tonic::Status::resource_exhausted(""));
        assert!(exhausted.is_transient());
        assert_eq!(exhausted.code(), ErrorCode::Rejected);
    }
}
