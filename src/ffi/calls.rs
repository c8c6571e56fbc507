//! The calls on a client, each in two forms: blocking (runs on the calling thread) and `_async`
//! (returns at once; a callback on the completion thread reports the result). Both forms parse
//! and check their arguments with the same functions, before anything starts: an invalid
//! argument fails the call itself, never its callback.

use std::ffi::{c_char, c_void};

use futures_util::FutureExt;

use crate::client::require_non_empty;
use crate::payload::Payload;
use crate::routing::SendOptions;
use crate::waiting::{check_outcome_query, check_wait, WaitOptions};

use super::client::{client_arg, noxy_client};
use super::config::{noxy_send_options, noxy_wait_options};
use super::error::noxy_error;
use super::operation::{noxy_operation, start};
use super::results::{noxy_decision_result, noxy_devices, noxy_quota, noxy_send_result};
use super::util::{guard, guard_call, opt_arg, out_arg, payload_arg, str_arg};

/// The completion callback of the calls whose result is a `noxy_decision_result`
/// (`noxy_send_and_wait_async`, `noxy_wait_for_outcome_async`,
/// `noxy_get_decision_outcome_async`).
///
/// Every completion callback is called exactly once per operation that was started
/// successfully (never when the starting call failed), on the client's completion thread, with
/// exactly one of `error` and `result` non-NULL. The callback owns what it receives and must
/// free it (`noxy_error_free` / the result's `_free`), on any thread. `user_data` is the
/// pointer given when the operation was started, passed back untouched.
///
/// A callback may start async operations, cancel and free operation handles, read and free
/// results, and call `noxy_client_close` and `noxy_free` (also of its own client). Blocking
/// calls and `noxy_client_drain` fail there with `NOXY_ERROR_INVALID_ARGUMENT` (one callback
/// must not stall the completions of every other operation). Callbacks of one client run one
/// at a time, in completion order. A callback must not unwind (a C++ exception, `longjmp`)
/// into the library: that is undefined behaviour.
pub type noxy_decision_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        error: *mut noxy_error,
        result: *mut noxy_decision_result,
    ),
>;

/// The completion callback of `noxy_send_decision_async`; as `noxy_decision_callback`, with a
/// `noxy_send_result` (free it with `noxy_send_result_free`).
pub type noxy_send_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        error: *mut noxy_error,
        result: *mut noxy_send_result,
    ),
>;

/// The completion callback of `noxy_get_quota_async`; as `noxy_decision_callback`, with a
/// `noxy_quota` (free it with `noxy_quota_free`).
pub type noxy_quota_callback = Option<
    unsafe extern "C" fn(user_data: *mut c_void, error: *mut noxy_error, result: *mut noxy_quota),
>;

/// The completion callback of `noxy_get_identity_devices_async`; as `noxy_decision_callback`,
/// with a `noxy_devices` (free it with `noxy_devices_free`).
pub type noxy_devices_callback = Option<
    unsafe extern "C" fn(user_data: *mut c_void, error: *mut noxy_error, result: *mut noxy_devices),
>;

// ---- arguments: parsed and checked once, the same way for both forms ----

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

struct SendArgs {
    identity_id: String,
    payload: Payload,
    options: SendOptions,
}

/// # Safety
/// As for `noxy_send_decision`.
unsafe fn send_args(
    client: &noxy_client,
    identity_id: *const c_char,
    payload_json: *const c_char,
    payload_len: usize,
    options: *const noxy_send_options,
) -> Result<SendArgs, crate::Error> {
    // SAFETY: forwarded contract on every pointer.
    let identity_id = unsafe { str_arg(identity_id, "identity_id") }?.to_owned();
    // SAFETY: forwarded contract.
    let payload = unsafe { payload_arg(payload_json, payload_len, "payload_json") }?;
    // SAFETY: forwarded contract.
    let options = unsafe { send_options(options) };
    client.client.check_send(&identity_id, &options)?;
    Ok(SendArgs {
        identity_id,
        payload,
        options,
    })
}

/// # Safety
/// As for `noxy_send_and_wait`.
unsafe fn send_and_wait_args(
    client: &noxy_client,
    identity_id: *const c_char,
    payload_json: *const c_char,
    payload_len: usize,
    send_options: *const noxy_send_options,
    wait_options: *const noxy_wait_options,
) -> Result<(SendArgs, WaitOptions), crate::Error> {
    // SAFETY: forwarded contract on every pointer.
    let send = unsafe { send_args(client, identity_id, payload_json, payload_len, send_options) }?;
    // SAFETY: forwarded contract.
    let wait = unsafe { self::wait_options(wait_options) };
    wait.validate()?;
    Ok((send, wait))
}

struct WaitArgs {
    decision_id: String,
    identity_id: String,
    options: WaitOptions,
}

/// # Safety
/// As for `noxy_wait_for_outcome`.
unsafe fn wait_args(
    decision_id: *const c_char,
    identity_id: *const c_char,
    options: *const noxy_wait_options,
) -> Result<WaitArgs, crate::Error> {
    // SAFETY: forwarded contract on every pointer.
    let decision_id = unsafe { str_arg(decision_id, "decision_id") }?.to_owned();
    // SAFETY: forwarded contract.
    let identity_id = unsafe { str_arg(identity_id, "identity_id") }?.to_owned();
    // SAFETY: forwarded contract.
    let options = unsafe { wait_options(options) };
    check_wait(&decision_id, &identity_id, &options)?;
    Ok(WaitArgs {
        decision_id,
        identity_id,
        options,
    })
}

/// # Safety
/// As for `noxy_get_decision_outcome`.
unsafe fn outcome_args(
    decision_id: *const c_char,
    identity_id: *const c_char,
) -> Result<(String, String), crate::Error> {
    // SAFETY: forwarded contract on every pointer.
    let decision_id = unsafe { str_arg(decision_id, "decision_id") }?.to_owned();
    // SAFETY: forwarded contract.
    let identity_id = unsafe { str_arg(identity_id, "identity_id") }?.to_owned();
    check_outcome_query(&decision_id, &identity_id)?;
    Ok((decision_id, identity_id))
}

/// # Safety
/// As for `noxy_get_identity_devices`.
unsafe fn identity_arg(identity_id: *const c_char) -> Result<String, crate::Error> {
    // SAFETY: forwarded contract.
    let identity_id = unsafe { str_arg(identity_id, "identity_id") }?.to_owned();
    require_non_empty("identity_id", &identity_id)?;
    Ok(identity_id)
}

// ---- send and wait ----

/// Routes a decision to every device of `identity_id` and blocks until it is APPROVED,
/// REJECTED or EXPIRED, or an error ends it (`NOXY_ERROR_WAIT_TIMED_OUT` after the wait budget,
/// `NOXY_ERROR_NO_DECISION_ID` when no device accepted it, `NOXY_ERROR_CANCELLED` when the
/// client is closed, transport and relay errors). Errors after routing carry the per-device
/// results (`noxy_error_delivery`).
///
/// - `identity_id`: UTF-8, NUL-terminated (the library reads up to the first NUL; bindings
///   must refuse strings with embedded NULs); borrowed for the call.
/// - `payload_json`, `payload_len`: `payload_len` bytes of UTF-8 JSON text of an object,
///   without duplicate keys, at most 64 KiB; no terminating NUL is needed (a NUL byte inside the
///   length is invalid JSON); borrowed for the call. Anything else is
///   `NOXY_ERROR_INVALID_PAYLOAD`. These exact bytes are encrypted for every device, and the
///   result's SHA-256 is theirs.
/// - `send_options`, `wait_options`: NULL for defaults; borrowed for the call.
/// - On success writes a new result to `*out_result` (the caller frees it with
///   `noxy_decision_result_free`); on failure `*out_result` is untouched.
///
/// Blocks the calling thread: any host thread, any number of them at once; refused on the
/// completion thread and runtime threads (`NOXY_ERROR_INVALID_ARGUMENT`). `noxy_client_close`
/// on another thread ends it with `NOXY_ERROR_CANCELLED`.
///
/// # Safety
/// Every pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_and_wait(
    client: *const noxy_client,
    identity_id: *const c_char,
    payload_json: *const c_char,
    payload_len: usize,
    send_options: *const noxy_send_options,
    wait_options: *const noxy_wait_options,
    out_result: *mut *mut noxy_decision_result,
) -> *mut noxy_error {
    guard_call(|| {
        // SAFETY: forwarded contract on every pointer.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let (send, wait) = unsafe {
            send_and_wait_args(
                client,
                identity_id,
                payload_json,
                payload_len,
                send_options,
                wait_options,
            )
        }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_result, "out_result") }?;
        let done = client.block_on(client.client.clone().send_and_wait_owned(
            send.identity_id,
            send.payload,
            send.options,
            wait,
        ))??;
        out.write(noxy_decision_result::from(&done));
        Ok(())
    })
}

/// Like `noxy_send_and_wait`, without blocking: checks every argument, starts the operation and
/// returns at once. On success, a new operation handle is written to `*out_operation` first,
/// unless it is NULL (the caller frees it with `noxy_operation_free`); then
/// `callback(user_data, error, result)` is called exactly once on the client's completion
/// thread (see `noxy_decision_callback`), possibly before this function returns. On failure
/// nothing is started, the callback is never called and `*out_operation` is untouched. On a
/// closed client the call fails with `NOXY_ERROR_CANCELLED`.
///
/// Everything is copied: the strings, payload and options may be freed as soon as this
/// returns. `user_data` is passed to the callback untouched (the library never reads it). Any
/// thread, including completion callbacks.
///
/// # Safety
/// Every pointer is NULL or valid as described; `callback` may be called on another thread
/// with `user_data`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn noxy_send_and_wait_async(
    client: *const noxy_client,
    identity_id: *const c_char,
    payload_json: *const c_char,
    payload_len: usize,
    send_options: *const noxy_send_options,
    wait_options: *const noxy_wait_options,
    callback: noxy_decision_callback,
    user_data: *mut c_void,
    out_operation: *mut *mut noxy_operation,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract on every pointer.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let (send, mut wait) = unsafe {
            send_and_wait_args(
                client,
                identity_id,
                payload_json,
                payload_len,
                send_options,
                wait_options,
            )
        }?;
        let core = client.client.clone();
        // Combinators, not an async block: the operation's task then holds one copy of the
        // long-lived wait state, not a second one of its captured inputs.
        let start_send_and_wait = move |token| {
            let mut options = send.options;
            options.cancel = Some(token);
            wait.cancel = options.cancel.clone();
            core.send_and_wait_owned(send.identity_id, send.payload, options, wait)
                .map(|done| {
                    done.map(|done| noxy_decision_result::from(&done))
                        .map_err(noxy_error::from)
                })
        };
        // SAFETY: forwarded contract on `out_operation`, `callback` and `user_data`.
        unsafe {
            start(
                client,
                start_send_and_wait,
                callback,
                user_data,
                out_operation,
            )
        }
    })
}

// ---- send ----

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
/// Every pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_decision(
    client: *const noxy_client,
    identity_id: *const c_char,
    payload_json: *const c_char,
    payload_len: usize,
    send_options: *const noxy_send_options,
    out_result: *mut *mut noxy_send_result,
) -> *mut noxy_error {
    guard_call(|| {
        // SAFETY: forwarded contract on every pointer.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let send =
            unsafe { send_args(client, identity_id, payload_json, payload_len, send_options) }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_result, "out_result") }?;
        let sent = client.block_on(client.client.send_decision(
            &send.identity_id,
            &send.payload,
            &send.options,
        ))??;
        out.write(noxy_send_result::new(&sent));
        Ok(())
    })
}

/// Like `noxy_send_decision`, without blocking; the callback (`noxy_send_callback`),
/// `user_data` and `out_operation` behave as for `noxy_send_and_wait_async`. A cancelled send
/// reports `NOXY_ERROR_CANCELLED` with the per-device results so far. Any thread.
///
/// # Safety
/// Every pointer is NULL or valid as described; `callback` may be called on another thread
/// with `user_data`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn noxy_send_decision_async(
    client: *const noxy_client,
    identity_id: *const c_char,
    payload_json: *const c_char,
    payload_len: usize,
    send_options: *const noxy_send_options,
    callback: noxy_send_callback,
    user_data: *mut c_void,
    out_operation: *mut *mut noxy_operation,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract on every pointer.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let send =
            unsafe { send_args(client, identity_id, payload_json, payload_len, send_options) }?;
        let core = client.client.clone();
        let start_send = move |token| {
            let mut options = send.options;
            options.cancel = Some(token);
            async move {
                let sent = core
                    .send_decision(&send.identity_id, &send.payload, &options)
                    .await?;
                Ok(noxy_send_result::new(&sent))
            }
        };
        // SAFETY: forwarded contract on `out_operation`, `callback` and `user_data`.
        unsafe { start(client, start_send, callback, user_data, out_operation) }
    })
}

// ---- wait ----

/// Polls until `decision_id` of `identity_id` is APPROVED, REJECTED or EXPIRED, within the
/// budget of `wait_options` (NULL: defaults, 15 minutes), then `NOXY_ERROR_WAIT_TIMED_OUT`.
/// Strings as for `noxy_send_and_wait`. On success writes a new result to `*out_result` (free
/// it with `noxy_decision_result_free`). Blocks the calling thread, as for
/// `noxy_send_and_wait`.
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
    guard_call(|| {
        // SAFETY: forwarded contract on every pointer.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let args = unsafe { wait_args(decision_id, identity_id, wait_options) }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_result, "out_result") }?;
        let state = client.block_on(client.client.wait_for_decision_outcome(
            &args.decision_id,
            &args.identity_id,
            &args.options,
        ))??;
        out.write(noxy_decision_result::new(&args.decision_id, state, None));
        Ok(())
    })
}

/// Like `noxy_wait_for_outcome`, without blocking; the callback (`noxy_decision_callback`),
/// `user_data` and `out_operation` behave as for `noxy_send_and_wait_async`. Any thread.
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
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let mut args = unsafe { wait_args(decision_id, identity_id, wait_options) }?;
        let core = client.client.clone();
        let start_wait = move |token| {
            args.options.cancel = Some(token);
            core.wait_owned(args.decision_id, args.identity_id, args.options)
                .map(|waited| {
                    waited
                        .map(|(decision_id, state)| {
                            noxy_decision_result::new(&decision_id, state, None)
                        })
                        .map_err(noxy_error::from)
                })
        };
        // SAFETY: forwarded contract on `out_operation`, `callback` and `user_data`.
        unsafe { start(client, start_wait, callback, user_data, out_operation) }
    })
}

// ---- one outcome query ----

/// Asks the relay once for the state of `decision_id` of `identity_id` (strings as for
/// `noxy_send_and_wait`). On success writes a new result to `*out_result` (free it with
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
    guard_call(|| {
        // SAFETY: forwarded contract on every pointer.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let (decision, identity) = unsafe { outcome_args(decision_id, identity_id) }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_result, "out_result") }?;
        let state = client.block_on(client.client.get_decision_outcome(&decision, &identity))??;
        out.write(noxy_decision_result::new(&decision, state, None));
        Ok(())
    })
}

/// Like `noxy_get_decision_outcome`, without blocking; the callback (`noxy_decision_callback`),
/// `user_data` and `out_operation` behave as for `noxy_send_and_wait_async`. Any thread.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated; `callback` may be
/// called on another thread with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn noxy_get_decision_outcome_async(
    client: *const noxy_client,
    decision_id: *const c_char,
    identity_id: *const c_char,
    callback: noxy_decision_callback,
    user_data: *mut c_void,
    out_operation: *mut *mut noxy_operation,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract on every pointer.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let (decision, identity) = unsafe { outcome_args(decision_id, identity_id) }?;
        let core = client.client.clone();
        let start_query = move |_token| async move {
            let state = core.get_decision_outcome(&decision, &identity).await?;
            Ok(noxy_decision_result::new(&decision, state, None))
        };
        // SAFETY: forwarded contract on `out_operation`, `callback` and `user_data`.
        unsafe { start(client, start_query, callback, user_data, out_operation) }
    })
}

// ---- quota ----

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
    guard_call(|| {
        // SAFETY: forwarded contract.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_quota, "out_quota") }?;
        let quota = client.block_on(client.client.get_quota())??;
        out.write(noxy_quota::new(&quota));
        Ok(())
    })
}

/// Like `noxy_get_quota`, without blocking; the callback (`noxy_quota_callback`),
/// `user_data` and `out_operation` behave as for `noxy_send_and_wait_async`. Any thread.
///
/// # Safety
/// Every pointer is NULL or valid as described; `callback` may be called on another thread
/// with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn noxy_get_quota_async(
    client: *const noxy_client,
    callback: noxy_quota_callback,
    user_data: *mut c_void,
    out_operation: *mut *mut noxy_operation,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract.
        let client = unsafe { client_arg(client) }?;
        let core = client.client.clone();
        let start_quota =
            move |_token| async move { Ok(noxy_quota::new(&core.get_quota().await?)) };
        // SAFETY: forwarded contract on `out_operation`, `callback` and `user_data`.
        unsafe { start(client, start_quota, callback, user_data, out_operation) }
    })
}

// ---- devices ----

/// The devices registered for `identity_id` (as for `noxy_send_and_wait`). On success writes a
/// new list to `*out_devices` (free it with `noxy_devices_free`). Blocks the calling thread, as
/// for `noxy_send_and_wait`.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn noxy_get_identity_devices(
    client: *const noxy_client,
    identity_id: *const c_char,
    out_devices: *mut *mut noxy_devices,
) -> *mut noxy_error {
    guard_call(|| {
        // SAFETY: forwarded contract.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let identity = unsafe { identity_arg(identity_id) }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_devices, "out_devices") }?;
        let devices = client.block_on(client.client.get_identity_devices(&identity))??;
        out.write(noxy_devices::new(&devices));
        Ok(())
    })
}

/// Like `noxy_get_identity_devices`, without blocking; the callback (`noxy_devices_callback`),
/// `user_data` and `out_operation` behave as for `noxy_send_and_wait_async`. Any thread.
///
/// # Safety
/// Every pointer is NULL or valid as described; strings are NUL-terminated; `callback` may be
/// called on another thread with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn noxy_get_identity_devices_async(
    client: *const noxy_client,
    identity_id: *const c_char,
    callback: noxy_devices_callback,
    user_data: *mut c_void,
    out_operation: *mut *mut noxy_operation,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract.
        let client = unsafe { client_arg(client) }?;
        // SAFETY: forwarded contract.
        let identity = unsafe { identity_arg(identity_id) }?;
        let core = client.client.clone();
        let start_devices = move |_token| async move {
            Ok(noxy_devices::new(
                &core.get_identity_devices(&identity).await?,
            ))
        };
        // SAFETY: forwarded contract on `out_operation`, `callback` and `user_data`.
        unsafe { start(client, start_devices, callback, user_data, out_operation) }
    })
}
