//! The one error model of the C ABI: every fallible call returns `noxy_error *`, NULL on success.

use std::ffi::{c_char, CString};

use crate::error::Error;
use crate::routing::DecisionError;

use super::codes::noxy_code;
use super::delivery::noxy_delivery;
use super::util::{c_string, free_boxed, guard_value, static_cstr};

/// An error: a stable code, a message, and for `NOXY_ERROR_NO_DECISION_ID` (and errors of the
/// waiting phase of send-and-wait, and a cancelled send) the per-device delivery results.
///
/// Owned by whoever received it; free it with `noxy_error_free`. Immutable: it may be read
/// from any thread, and moved between threads.
pub struct noxy_error {
    code: noxy_code,
    message: CString,
    deliveries: Vec<noxy_delivery>,
}

impl From<Error> for noxy_error {
    fn from(error: Error) -> noxy_error {
        noxy_error {
            code: error.code().into(),
            message: c_string(error.message()),
            deliveries: Vec::new(),
        }
    }
}

impl From<DecisionError> for noxy_error {
    fn from(failure: DecisionError) -> noxy_error {
        noxy_error {
            deliveries: noxy_delivery::list(&failure.deliveries),
            ..noxy_error::from(failure.error)
        }
    }
}

impl noxy_error {
    /// Hands an error to the caller.
    pub(crate) fn into_raw(error: impl Into<noxy_error>) -> *mut noxy_error {
        Box::into_raw(Box::new(error.into()))
    }
}

/// The error's stable code (`NOXY_ERROR_*`); `NOXY_OK` when `error` is NULL (a NULL error means
/// success).
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

/// How many per-device delivery results the error carries: the deliveries of the routed
/// decision for `NOXY_ERROR_NO_DECISION_ID`, for errors while waiting after a send, and for a
/// send cancelled midway; 0 for other errors and when `error` is NULL. Any thread.
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
/// Any thread.
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
        unsafe { error.as_ref() }.map_or(std::ptr::null(), |e| {
            noxy_delivery::at(&e.deliveries, index)
        })
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
