//! The one error model of the C ABI: every fallible call returns `noxy_error *`, NULL on success.

use std::ffi::{c_char, CString};
use std::sync::LazyLock;

use crate::error::{Error, ErrorCode};

use super::results::noxy_delivery;
use super::util::{c_string, free_boxed, guard_value, static_cstr};

/// Stable error codes, equal to the core library's `ErrorCode` numbers. `NOXY_OK` (0) is what
/// `noxy_error_code(NULL)` returns. Numbers never change; a retired number stays reserved.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum noxy_code {
    /// No error.
    NOXY_OK = 0,
    /// An argument or a configuration value is invalid; the message names it (NULL pointers,
    /// invalid UTF-8, out-of-range values, a client used in a forked child).
    NOXY_ERROR_INVALID_ARGUMENT = 1,
    /// The payload is not valid UTF-8, not JSON, not a JSON object, or larger than 64 KiB.
    NOXY_ERROR_INVALID_PAYLOAD = 2,
    /// The relay could not be reached or answered UNAVAILABLE.
    NOXY_ERROR_UNAVAILABLE = 3,
    /// A call's deadline passed before the relay answered.
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
    /// The operation was cancelled (`noxy_operation_cancel`, `noxy_client_close`, `noxy_free`).
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

/// An error: a stable code, a message, and for `NOXY_ERROR_NO_DECISION_ID` (and errors of the
/// waiting phase of send-and-wait) the per-device delivery results.
///
/// Owned by whoever received it; free it with `noxy_error_free`. Immutable: it may be read
/// from any thread, and moved between threads.
pub struct noxy_error {
    code: noxy_code,
    message: CString,
    deliveries: Vec<noxy_delivery>,
}

impl noxy_error {
    pub(crate) fn new(error: &Error) -> noxy_error {
        noxy_error {
            code: error.code().into(),
            message: c_string(error.message()),
            deliveries: error.deliveries().iter().map(noxy_delivery::new).collect(),
        }
    }

    pub(crate) fn into_raw(error: Error) -> *mut noxy_error {
        Box::into_raw(Box::new(noxy_error::new(&error)))
    }
}

/// The error's stable code (`NOXY_ERROR_*`); `NOXY_OK` when `error` is NULL.
///
/// `error` is borrowed. Any thread.
///
/// # Safety
/// `error` is NULL or a live error returned by this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_error_code(error: *const noxy_error) -> noxy_code {
    guard_value(noxy_code::NOXY_ERROR_INTERNAL, || {
        // SAFETY: the caller passes NULL or a live noxy_error.
        match unsafe { error.as_ref() } {
            Some(error) => error.code,
            None => noxy_code::NOXY_OK,
        }
    })
}

/// The error's message: UTF-8, NUL-terminated, never NULL (an empty string when `error` is
/// NULL). Borrowed from `error`: valid until `noxy_error_free(error)`. Never contains the app
/// token or a payload. Any thread.
///
/// # Safety
/// `error` is NULL or a live error returned by this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_error_message(error: *const noxy_error) -> *const c_char {
    guard_value(static_cstr!(""), || {
        // SAFETY: the caller passes NULL or a live noxy_error.
        match unsafe { error.as_ref() } {
            Some(error) => error.message.as_ptr(),
            None => static_cstr!(""),
        }
    })
}

/// How many per-device delivery results the error carries (0 for most errors; the deliveries
/// of the routed decision for `NOXY_ERROR_NO_DECISION_ID` and for errors while waiting after a
/// send). 0 when `error` is NULL. Any thread.
///
/// # Safety
/// `error` is NULL or a live error returned by this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_error_delivery_count(error: *const noxy_error) -> usize {
    guard_value(0, || {
        // SAFETY: the caller passes NULL or a live noxy_error.
        unsafe { error.as_ref() }.map_or(0, |e| e.deliveries.len())
    })
}

/// The delivery result at `index` (< `noxy_error_delivery_count`), or NULL when `error` is
/// NULL or `index` is out of range. Borrowed from `error`: valid until `noxy_error_free`.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `error` is NULL or a live error returned by this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_error_delivery(
    error: *const noxy_error,
    index: usize,
) -> *const noxy_delivery {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live noxy_error.
        unsafe { error.as_ref() }
            .and_then(|e| e.deliveries.get(index))
            .map_or(std::ptr::null(), |d| d as *const noxy_delivery)
    })
}

/// A short, stable, lower-case name for a code (`"wait_timed_out"`, `"ok"`), or `"unknown"`
/// for a number this version does not know. Static storage: never freed. Any thread.
#[no_mangle]
pub extern "C" fn noxy_error_code_name(code: u32) -> *const c_char {
    // The names are the core's `ErrorCode::name()`, NUL-terminated once and kept for the life
    // of the process (one list: the C ABI never spells a name twice).
    static NAMES: LazyLock<Vec<(u32, CString)>> = LazyLock::new(|| {
        ErrorCode::ALL
            .iter()
            .map(|code| (code.as_u32(), c_string(code.name())))
            .collect()
    });
    guard_value(static_cstr!("unknown"), || {
        if code == noxy_code::NOXY_OK as u32 {
            return static_cstr!("ok");
        }
        NAMES
            .iter()
            .find(|(number, _)| *number == code)
            .map_or(static_cstr!("unknown"), |(_, name)| name.as_ptr())
    })
}

/// Frees an error. NULL is a no-op. Any thread; the error must not be used afterwards.
///
/// # Safety
/// `error` is NULL or an error returned by this library that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_error_free(error: *mut noxy_error) {
    guard_value((), || {
        // SAFETY: the caller passes NULL or an error this library returned, freed once.
        unsafe { free_boxed(error) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn codes_match_the_core() {
        for code in ErrorCode::ALL {
            assert_eq!(noxy_code::from(code) as u32, code.as_u32());
            // SAFETY: static strings returned by the library.
            let name = unsafe { CStr::from_ptr(noxy_error_code_name(code.as_u32())) };
            assert_eq!(name.to_str().unwrap(), code.name());
        }
    }
}
