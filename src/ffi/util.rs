//! Helpers shared by every exported function: panic containment, argument checks, C strings.

use std::any::Any;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::error::Error;
use crate::payload::Payload;

use super::error::noxy_error;

/// Runs the body of a fallible exported function: a panic becomes an INTERNAL error, an error
/// becomes an owned `noxy_error *`, success becomes NULL. Nothing unwinds into the host.
pub(crate) fn guard<F>(body: F) -> *mut noxy_error
where
    F: FnOnce() -> Result<(), Error>,
{
    guard_call(|| body().map_err(noxy_error::from))
}

/// [`guard`] for bodies whose errors may carry per-device results.
pub(crate) fn guard_call<F>(body: F) -> *mut noxy_error
where
    F: FnOnce() -> Result<(), noxy_error>,
{
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ptr::null_mut(),
        Ok(Err(error)) => noxy_error::into_raw(error),
        Err(panic) => noxy_error::into_raw(panic_error(&*panic)),
    }
}

/// Runs the body of an infallible exported function (an accessor): a panic yields `fallback`.
pub(crate) fn guard_value<T, F>(fallback: T, body: F) -> T
where
    F: FnOnce() -> T,
{
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The INTERNAL error that reports a caught panic.
pub(crate) fn panic_error(panic: &(dyn Any + Send)) -> Error {
    let detail = if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic payload".to_owned()
    };
    Error::internal(format!(
        "libnoxy bug: a panic was caught at the C boundary: {detail}"
    ))
}

/// Borrows a NUL-terminated UTF-8 string argument; NULL or invalid UTF-8 is INVALID_ARGUMENT
/// naming `name`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(Error::invalid_argument(name, "is NULL"));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string valid for 'a.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map_err(|e| Error::invalid_argument(name, format!("is not valid UTF-8 ({e})")))
}

/// Validates the payload argument, `len` bytes at `ptr` (NUL bytes included: they are not
/// JSON, so they fail validation instead of cutting the text short). NULL with a non-zero
/// length is INVALID_ARGUMENT; text that is not UTF-8 JSON of an object without duplicate keys,
/// or over 64 KiB, is INVALID_PAYLOAD.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes, valid for the duration of the call.
pub(crate) unsafe fn payload_arg(
    ptr: *const c_char,
    len: usize,
    name: &str,
) -> Result<Payload, Error> {
    if len == 0 {
        return Payload::from_json_bytes(&[]);
    }
    if ptr.is_null() {
        return Err(Error::invalid_argument(name, "is NULL"));
    }
    if len > isize::MAX as usize {
        return Err(Error::invalid_argument(
            name,
            "length is larger than isize::MAX",
        ));
    }
    // SAFETY: non-NULL, at most isize::MAX bytes, and the caller promises `len` readable bytes
    // that stay valid (and unmodified) for the call.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    Payload::from_json_bytes(bytes)
}

/// Fails when an object created in process `pid` (a client, an operation) is used in a child
/// forked from it: the threads behind the object do not exist there, and the locks they shared
/// may be held forever, so touching its state could hang.
pub(crate) fn same_process(pid: u32, name: &str) -> Result<(), Error> {
    if std::process::id() == pid {
        return Ok(());
    }
    Err(Error::invalid_argument(
        name,
        "used in a forked child process: clients and operations cannot cross fork(); \
         create a new client in the child",
    ))
}

/// Borrows a handle argument; NULL is INVALID_ARGUMENT naming `name`.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` created by this library, valid for `'a`.
pub(crate) unsafe fn ref_arg<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller promises that a non-NULL pointer is a live T valid for 'a.
    unsafe { ptr.as_ref() }.ok_or_else(|| Error::invalid_argument(name, "is NULL"))
}

/// Borrows an optional handle argument: NULL means "defaults".
///
/// # Safety
/// `ptr` is NULL or points to a live `T` created by this library, valid for `'a`.
pub(crate) unsafe fn opt_arg<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: the caller promises that a non-NULL pointer is a live T valid for 'a.
    unsafe { ptr.as_ref() }
}

/// Checks an out-parameter before any work is done; NULL is INVALID_ARGUMENT naming `name`.
///
/// # Safety
/// `ptr` is NULL or valid for writing one pointer for as long as the returned `OutPtr` lives.
pub(crate) unsafe fn out_arg<T>(ptr: *mut *mut T, name: &str) -> Result<OutPtr<T>, Error> {
    if ptr.is_null() {
        return Err(Error::invalid_argument(name, "is NULL"));
    }
    Ok(OutPtr(ptr))
}

/// A checked, non-NULL out-parameter. Written at most once, and only on success. Only
/// `out_arg` creates one, under its safety contract.
pub(crate) struct OutPtr<T>(*mut *mut T);

impl<T> OutPtr<T> {
    /// Moves `value` to the heap and hands it to the caller.
    pub(crate) fn write(self, value: T) {
        self.write_raw(Box::into_raw(Box::new(value)));
    }

    /// Hands an already allocated object to the caller.
    pub(crate) fn write_raw(self, raw: *mut T) {
        // SAFETY: `out_arg` checked that the pointer is non-NULL, and its caller promised that
        // it is valid for writing one pointer while this `OutPtr` lives.
        unsafe { self.0.write(raw) };
    }
}

/// A C string from text that may contain NUL bytes (a relay's message): NULs become U+FFFD.
pub(crate) fn c_string(text: &str) -> CString {
    match CString::new(text) {
        Ok(c) => c,
        Err(_) => CString::new(text.replace('\0', "\u{FFFD}")).unwrap_or_default(),
    }
}

/// Frees a heap object handed out with [`OutPtr::write`]; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or was produced by `Box::into_raw` for a `T` and not freed yet.
pub(crate) unsafe fn free_boxed<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller promises the pointer came from Box::into_raw and is freed once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// A pointer to a static, NUL-terminated string literal.
macro_rules! static_cstr {
    ($text:expr) => {
        concat!($text, "\0").as_ptr().cast::<std::ffi::c_char>()
    };
}
pub(crate) use static_cstr;

/// Reads through a possibly-NULL object pointer for an accessor; NULL (or a panic) yields
/// `fallback`, the accessor's documented invalid value.
///
/// # Safety
/// `object` is NULL or a live `T` for the duration of the call.
pub(crate) unsafe fn read<T, R: Copy>(object: *const T, fallback: R, f: impl FnOnce(&T) -> R) -> R {
    // SAFETY: forwarded contract: NULL or a live T; the reference does not outlive this call.
    match unsafe { object.as_ref() } {
        Some(object) => guard_value(fallback, || f(object)),
        None => fallback,
    }
}

/// A borrowed C string of an object.
pub(crate) fn str_ptr(text: &CString) -> *const c_char {
    text.as_ptr()
}

/// A borrowed C string of an object, or NULL.
pub(crate) fn opt_str_ptr(text: &Option<CString>) -> *const c_char {
    text.as_ref().map_or(ptr::null(), |t| t.as_ptr())
}
