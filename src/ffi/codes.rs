//! Stable error codes of the C ABI: the core's `ErrorCode` numbers, plus `NOXY_OK`.

use std::ffi::{c_char, CString};
use std::sync::LazyLock;

use crate::error::ErrorCode;

use super::util::{c_string, guard_value, static_cstr};

/// Stable error codes, equal to the core library's `ErrorCode` numbers. `NOXY_OK` (0) is what
/// `noxy_error_code(NULL)` returns (a NULL error means success). Numbers never change; a
/// retired number stays reserved. The C type is `int32_t`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum noxy_code {
    /// No error.
    NOXY_OK = 0,
    /// An argument or a configuration value is invalid; the message names it (NULL pointers,
    /// invalid UTF-8, out-of-range values, a blocking call on a thread that must not block, a
    /// client used in a forked child).
    NOXY_ERROR_INVALID_ARGUMENT = 1,
    /// The payload is not UTF-8 JSON of an object, has a duplicate key, or is larger than
    /// 64 KiB.
    NOXY_ERROR_INVALID_PAYLOAD = 2,
    /// The relay could not be reached, the connection was lost, or it answered UNAVAILABLE
    /// (after the retry budget was spent).
    NOXY_ERROR_UNAVAILABLE = 3,
    /// A call's deadline passed before the relay answered; also `noxy_client_drain` when
    /// operations were still outstanding at its timeout.
    NOXY_ERROR_DEADLINE_EXCEEDED = 4,
    /// The relay did not accept the app token.
    NOXY_ERROR_UNAUTHENTICATED = 5,
    /// The relay refused the call for this app.
    NOXY_ERROR_PERMISSION_DENIED = 6,
    /// The relay rejected the decision or the call (quota exhausted, app suspended, ...).
    NOXY_ERROR_REJECTED = 7,
    /// The relay knows no such decision for this identity.
    NOXY_ERROR_NOT_FOUND = 8,
    /// Waiting used up its whole budget (`max_wait_ms`) without a terminal outcome.
    NOXY_ERROR_WAIT_TIMED_OUT = 9,
    /// The caller cancelled the operation (`noxy_operation_cancel`) or closed the client
    /// (`noxy_client_close`, `noxy_free`). Never anything else.
    NOXY_ERROR_CANCELLED = 10,
    /// No device accepted the decision (for example the identity has no devices), so there is
    /// nothing to wait on; the per-device results are attached to the error.
    NOXY_ERROR_NO_DECISION_ID = 11,
    /// The relay's answer was malformed.
    NOXY_ERROR_PROTOCOL = 12,
    /// A bug in the library (a caught panic) or an internal relay error.
    NOXY_ERROR_INTERNAL = 13,
}

impl From<ErrorCode> for noxy_code {
    fn from(code: ErrorCode) -> Self {
        use noxy_code::*;
        match code {
            ErrorCode::InvalidArgument => NOXY_ERROR_INVALID_ARGUMENT,
            ErrorCode::InvalidPayload => NOXY_ERROR_INVALID_PAYLOAD,
            ErrorCode::Unavailable => NOXY_ERROR_UNAVAILABLE,
            ErrorCode::DeadlineExceeded => NOXY_ERROR_DEADLINE_EXCEEDED,
            ErrorCode::Unauthenticated => NOXY_ERROR_UNAUTHENTICATED,
            ErrorCode::PermissionDenied => NOXY_ERROR_PERMISSION_DENIED,
            ErrorCode::Rejected => NOXY_ERROR_REJECTED,
            ErrorCode::NotFound => NOXY_ERROR_NOT_FOUND,
            ErrorCode::WaitTimedOut => NOXY_ERROR_WAIT_TIMED_OUT,
            ErrorCode::Cancelled => NOXY_ERROR_CANCELLED,
            ErrorCode::NoDecisionId => NOXY_ERROR_NO_DECISION_ID,
            ErrorCode::Protocol => NOXY_ERROR_PROTOCOL,
            ErrorCode::Internal => NOXY_ERROR_INTERNAL,
        }
    }
}

/// A short, stable, lower-case name for a code (`"wait_timed_out"`, `"ok"`), or `"unknown"`
/// for a number this version does not know. Static storage: never freed. Any thread.
#[no_mangle]
pub extern "C" fn noxy_error_code_name(code: i32) -> *const c_char {
    // The names are the core's `ErrorCode::name()`, NUL-terminated once and kept for the life
    // of the process (one list: the C ABI never spells a name twice).
    static NAMES: LazyLock<Vec<(i32, CString)>> = LazyLock::new(|| {
        ErrorCode::ALL
            .iter()
            .map(|code| (noxy_code::from(*code) as i32, c_string(code.name())))
            .collect()
    });
    guard_value(static_cstr!("unknown"), || {
        if code == noxy_code::NOXY_OK as i32 {
            return static_cstr!("ok");
        }
        NAMES
            .iter()
            .find(|(number, _)| *number == code)
            .map_or(static_cstr!("unknown"), |(_, name)| name.as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn codes_match_the_core() {
        for code in ErrorCode::ALL {
            assert_eq!(noxy_code::from(code) as i32 as u32, code.as_u32());
            // SAFETY: static strings returned by the library.
            let name = unsafe { CStr::from_ptr(noxy_error_code_name(code.as_u32() as i32)) };
            assert_eq!(name.to_str().unwrap(), code.name());
        }
        for unknown in [-1, 14, i32::MAX, i32::MIN] {
            // SAFETY: static strings returned by the library.
            let name = unsafe { CStr::from_ptr(noxy_error_code_name(unknown)) };
            assert_eq!(name.to_str().unwrap(), "unknown");
        }
    }
}
