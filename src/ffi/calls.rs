//! The calls on a client: blocking ones (run on the calling thread) and async ones (return at
//! once; a callback on the completion thread reports the result).

use std::ffi::{c_char, c_void};

use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::routing::SendOptions;
use crate::waiting::WaitOptions;

use super::client::{client_arg, noxy_client, noxy_decision_callback, Shared, UserData};
use super::config::{noxy_send_options, noxy_wait_options};
use super::error::noxy_error;
use super::results::{noxy_decision_result, noxy_devices, noxy_quota, noxy_send_result};
use super::util::{
    guard, guard_value, opt_arg, out_arg, payload_arg, ref_arg, same_process, str_arg,
};

/// A started async operation. Cancel it with `noxy_operation_cancel` from any thread; release
/// the handle with `noxy_operation_free` (which does not cancel). The handle is independent of
/// the client's lifetime: it may be cancelled or freed before or after the callback ran, and
/// after `noxy_free` of the client. Thread-safe. It does not cross `fork()`: in a child,
/// `noxy_operation_cancel` fails and `noxy_operation_free` only releases the handle.
pub struct noxy_operation {
    /// The process that started the operation (see `fork()` above).
    pid: u32,
    token: CancellationToken,
}

/// A copy of the send options, or the defaults for NULL.
///
/// # Safety
/// `options` is NULL or live `noxy_send_options` not mutated during the call.
unsafe fn send_options(options: *const noxy_send_options) -> SendOptions {
    // SAFETY: forwarded contract: NULL or live options.
    unsafe { opt_arg(options) }.map_or_else(SendOptions::default, |o| o.options.clone())
}

/// A copy of the wait options, or the defaults for NULL.
///
/// # Safety
/// `options` is NULL or live `noxy_wait_options` not mutated during the call.
unsafe fn wait_options(options: *const noxy_wait_options) -> WaitOptions {
    // SAFETY: forwarded contract: NULL or live options.
    unsafe { opt_arg(options) }.map_or_else(WaitOptions::default, |o| o.options.clone())
}

// ---- blocking calls ----

/// Routes a decision to every device of `identity_id` and blocks until it is APPROVED,
/// REJECTED or EXPIRED, or an error ends it (`NOXY_ERROR_WAIT_TIMED_OUT` after the wait budget,
/// `NOXY_ERROR_NO_DECISION_ID` when no device accepted it, `NOXY_ERROR_CANCELLED` when the
/// client is closed, transport and relay errors).
///
/// - `identity_id`: UTF-8, NUL-terminated; borrowed for the call.
/// - `payload_json`: UTF-8 JSON text of an object (at most 64 KiB compact), NUL-terminated;
///   borrowed for the call. Anything else is `NOXY_ERROR_INVALID_PAYLOAD`.
/// - `send_options`, `wait_options`: NULL for defaults; borrowed for the call.
/// - On success writes a new result to `*out_result` (the caller frees it with
///   `noxy_decision_result_free`); on failure `*out_result` is untouched.
///
/// Blocks the calling thread: any host thread, any number of them at once, also a completion
/// callback (which delays that client's other callbacks meanwhile); not the log callback.
/// `noxy_client_close` on another thread ends it with `NOXY_ERROR_CANCELLED`.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_and_wait(
    client: *const noxy_client,
    identity_id: *const c_char,
    payload_json: *const c_char,
    send_options: *const noxy_send_options,
    wait_options: *const noxy_wait_options,
    out_result: *mut *mut noxy_decision_result,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract on every pointer.
        let shared = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let identity = unsafe { str_arg(identity_id, "identity_id") }?;
        // SAFETY: forwarded contract.
        let payload = unsafe { payload_arg(payload_json, "payload_json") }?;
        // SAFETY: forwarded contract: NULL or live options.
        let send = unsafe { self::send_options(send_options) };
        // SAFETY: forwarded contract: NULL or live options.
        let wait = unsafe { self::wait_options(wait_options) };
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_result, "out_result") }?;
        let done = shared.block_on(
            shared
                .client
                .send_decision_and_wait_for_outcome(identity, &payload, &send, &wait),
        )??;
        out.write(noxy_decision_result::from(&done));
        Ok(())
    })
}

/// Routes a decision to every device of `identity_id` (one encrypted copy per device, all
/// devices concurrently) and returns without waiting for an answer. Succeeds when the devices
/// could be listed, even if some or all deliveries failed: inspect the per-device results and
/// `noxy_send_result_accepted_decision_id`.
///
/// Arguments as for `noxy_send_and_wait`. On success writes a new result to `*out_result`
/// (free it with `noxy_send_result_free`). Blocks the calling thread, as for
/// `noxy_send_and_wait`.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_decision(
    client: *const noxy_client,
    identity_id: *const c_char,
    payload_json: *const c_char,
    send_options: *const noxy_send_options,
    out_result: *mut *mut noxy_send_result,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract on every pointer.
        let shared = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let identity = unsafe { str_arg(identity_id, "identity_id") }?;
        // SAFETY: forwarded contract.
        let payload = unsafe { payload_arg(payload_json, "payload_json") }?;
        // SAFETY: forwarded contract: NULL or live options.
        let send = unsafe { self::send_options(send_options) };
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_result, "out_result") }?;
        let sent = shared.block_on(shared.client.send_decision(identity, &payload, &send))??;
        out.write(noxy_send_result::new(&sent));
        Ok(())
    })
}

/// Asks the relay once for the state of `decision_id` of `identity_id` (both UTF-8,
/// NUL-terminated, borrowed). On success writes a new result to `*out_result` (free it with
/// `noxy_decision_result_free`); its outcome may be `NOXY_OUTCOME_PENDING`. Blocks the calling
/// thread, as for `noxy_send_and_wait`.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn noxy_get_decision_outcome(
    client: *const noxy_client,
    decision_id: *const c_char,
    identity_id: *const c_char,
    out_result: *mut *mut noxy_decision_result,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract on every pointer.
        let shared = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let decision = unsafe { str_arg(decision_id, "decision_id") }?;
        // SAFETY: forwarded contract.
        let identity = unsafe { str_arg(identity_id, "identity_id") }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_result, "out_result") }?;
        let state = shared.block_on(shared.client.get_decision_outcome(decision, identity))??;
        out.write(noxy_decision_result::new(decision, state, None));
        Ok(())
    })
}

/// Polls until `decision_id` of `identity_id` is APPROVED, REJECTED or EXPIRED, within the
/// budget of `wait_options` (NULL: defaults, 15 minutes), then `NOXY_ERROR_WAIT_TIMED_OUT`.
/// On success writes a new result to `*out_result` (free it with
/// `noxy_decision_result_free`). Blocks the calling thread, as for `noxy_send_and_wait`.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn noxy_wait_for_outcome(
    client: *const noxy_client,
    decision_id: *const c_char,
    identity_id: *const c_char,
    wait_options: *const noxy_wait_options,
    out_result: *mut *mut noxy_decision_result,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract on every pointer.
        let shared = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let decision = unsafe { str_arg(decision_id, "decision_id") }?;
        // SAFETY: forwarded contract.
        let identity = unsafe { str_arg(identity_id, "identity_id") }?;
        // SAFETY: forwarded contract: NULL or live options.
        let wait = unsafe { self::wait_options(wait_options) };
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_result, "out_result") }?;
        let state = shared.block_on(
            shared
                .client
                .wait_for_decision_outcome(decision, identity, &wait),
        )??;
        out.write(noxy_decision_result::new(decision, state, None));
        Ok(())
    })
}

/// The app's quota. On success writes a new object to `*out_quota` (free it with
/// `noxy_quota_free`). Blocks the calling thread, as for `noxy_send_and_wait`.
///
/// # Safety
/// `client` is NULL or a live client; `out_quota` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn noxy_get_quota(
    client: *const noxy_client,
    out_quota: *mut *mut noxy_quota,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract.
        let shared = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_quota, "out_quota") }?;
        let quota = shared.block_on(shared.client.get_quota())??;
        out.write(noxy_quota::new(&quota));
        Ok(())
    })
}

/// The devices registered for `identity_id` (UTF-8, NUL-terminated, borrowed). On success
/// writes a new list to `*out_devices` (free it with `noxy_devices_free`). Blocks the calling
/// thread, as for `noxy_send_and_wait`.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn noxy_get_identity_devices(
    client: *const noxy_client,
    identity_id: *const c_char,
    out_devices: *mut *mut noxy_devices,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract.
        let shared = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let identity = unsafe { str_arg(identity_id, "identity_id") }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_devices, "out_devices") }?;
        let devices = shared.block_on(shared.client.get_identity_devices(identity))??;
        out.write(noxy_devices::new(&devices));
        Ok(())
    })
}

// ---- async calls ----

/// The common tail of the async calls: checks the callback, starts `future` (cancelled through
/// `token`) and hands a new operation handle to the caller, unless `out_operation` is NULL.
///
/// # Safety
/// `out_operation` is NULL or valid for writing one pointer.
unsafe fn start<F>(
    shared: &Shared,
    token: CancellationToken,
    future: F,
    callback: noxy_decision_callback,
    user_data: *mut c_void,
    out_operation: *mut *mut noxy_operation,
) -> Result<(), Error>
where
    F: std::future::Future<Output = Result<noxy_decision_result, Error>> + Send + 'static,
{
    let callback = callback.ok_or_else(|| Error::invalid_argument("callback", "is NULL"))?;
    shared.spawn(future, callback, UserData(user_data))?;
    if !out_operation.is_null() {
        let raw = Box::into_raw(Box::new(noxy_operation {
            pid: std::process::id(),
            token,
        }));
        // SAFETY: non-NULL, and the caller promised it is writable.
        unsafe { out_operation.write(raw) };
    }
    Ok(())
}

/// Like `noxy_send_and_wait`, without blocking: checks the arguments, starts the operation and
/// returns at once. On success, `callback(user_data, error, result)` is later called exactly
/// once on the client's completion thread (possibly before this function returns), and a new
/// operation handle is written to `*out_operation` unless it is NULL (the caller frees it with
/// `noxy_operation_free`). On failure nothing is started, the callback is never called and
/// `*out_operation` is untouched. On a closed client (`noxy_client_close`) the call fails with
/// `NOXY_ERROR_CANCELLED`.
///
/// Everything is copied: the strings and options may be freed as soon as this returns.
/// `user_data` is passed to the callback untouched (the library never reads it). Any thread.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated; `callback` may be
/// called on another thread with `user_data`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn noxy_send_and_wait_async(
    client: *const noxy_client,
    identity_id: *const c_char,
    payload_json: *const c_char,
    send_options: *const noxy_send_options,
    wait_options: *const noxy_wait_options,
    callback: noxy_decision_callback,
    user_data: *mut c_void,
    out_operation: *mut *mut noxy_operation,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract on every pointer.
        let shared = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let identity = unsafe { str_arg(identity_id, "identity_id") }?.to_owned();
        // SAFETY: forwarded contract.
        let payload = unsafe { payload_arg(payload_json, "payload_json") }?;
        let token = CancellationToken::new();
        // SAFETY: forwarded contract: NULL or live options.
        let mut send = unsafe { self::send_options(send_options) };
        // SAFETY: forwarded contract: NULL or live options.
        let mut wait = unsafe { self::wait_options(wait_options) };
        wait.validate()?;
        send.cancel = Some(token.clone());
        wait.cancel = Some(token.clone());
        let client = shared.client.clone();
        let future = async move {
            let done = client
                .send_decision_and_wait_for_outcome(&identity, &payload, &send, &wait)
                .await?;
            Ok(noxy_decision_result::from(&done))
        };
        // SAFETY: forwarded contract: NULL or writable.
        unsafe { start(shared, token, future, callback, user_data, out_operation) }
    })
}

/// Like `noxy_wait_for_outcome`, without blocking; the callback, `user_data` and
/// `out_operation` behave as for `noxy_send_and_wait_async`. Any thread.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated; `callback` may be
/// called on another thread with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn noxy_wait_for_outcome_async(
    client: *const noxy_client,
    decision_id: *const c_char,
    identity_id: *const c_char,
    wait_options: *const noxy_wait_options,
    callback: noxy_decision_callback,
    user_data: *mut c_void,
    out_operation: *mut *mut noxy_operation,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract on every pointer.
        let shared = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let decision = unsafe { str_arg(decision_id, "decision_id") }?.to_owned();
        // SAFETY: forwarded contract.
        let identity = unsafe { str_arg(identity_id, "identity_id") }?.to_owned();
        let token = CancellationToken::new();
        // SAFETY: forwarded contract: NULL or live options.
        let mut wait = unsafe { self::wait_options(wait_options) };
        wait.validate()?;
        wait.cancel = Some(token.clone());
        let client = shared.client.clone();
        let future = async move {
            let state = client
                .wait_for_decision_outcome(&decision, &identity, &wait)
                .await?;
            Ok(noxy_decision_result::new(&decision, state, None))
        };
        // SAFETY: forwarded contract: NULL or writable.
        unsafe { start(shared, token, future, callback, user_data, out_operation) }
    })
}

/// Cancels an operation: its callback then reports `NOXY_ERROR_CANCELLED`, unless the
/// operation had already finished (then nothing changes). Idempotent. Any thread, including
/// the operation's own callback and any other callback, also after `noxy_free` of the client;
/// `operation` is borrowed for the call. Fails only for a NULL `operation`, or in a child
/// process forked after the operation started (`NOXY_ERROR_INVALID_ARGUMENT`; the operation
/// belongs to the parent).
///
/// # Safety
/// `operation` is NULL or a live `noxy_operation`.
#[no_mangle]
pub unsafe extern "C" fn noxy_operation_cancel(
    operation: *const noxy_operation,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract.
        let operation = unsafe { ref_arg(operation, "operation") }?;
        same_process(operation.pid, "operation")?;
        operation.token.cancel();
        Ok(())
    })
}

/// Releases an operation handle without cancelling the operation (its callback still runs).
/// NULL is a no-op. Any thread, before or after the callback ran and the client was freed.
/// In a child process after `fork()` it only releases the handle's memory.
///
/// # Safety
/// `operation` is NULL or a `noxy_operation` that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_operation_free(operation: *mut noxy_operation) {
    guard_value((), || {
        if operation.is_null() {
            return;
        }
        // SAFETY: forwarded contract: an unfreed object from Box::into_raw, freed once.
        let operation = unsafe { Box::from_raw(operation) };
        if same_process(operation.pid, "operation").is_err() {
            // The token is shared with the parent's tasks: dropping it takes a lock that a
            // parent thread, which does not exist here, may have held at fork().
            let noxy_operation { token, .. } = *operation;
            std::mem::forget(token);
        }
    })
}
