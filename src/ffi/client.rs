//! The client handle: one core `Client` on an engine (a Tokio runtime and a completion thread),
//! with the count of its outstanding async operations and its optional logger.
//!
//! Threads of a client:
//! - `noxy-worker` (the runtime, `worker_threads` of them): drive I/O and timers. Host code
//!   never runs on them (except the log callback, which may run anywhere).
//! - `noxy-callbacks` (one): runs the completion callbacks of async operations, one at a time,
//!   in completion order. Blocking calls are refused there (use the `_async` forms), so that a
//!   callback can never stall the completions of other operations for the length of a wait.
//! - Blocking calls run their future on the calling host thread (`Handle::block_on`).
//!
//! The handle is reference-counted: `noxy_free` releases the host's reference, and every
//! operation in flight holds one until its callback has returned, so callbacks that run after
//! `noxy_free` still find the client (closed) and may pass it to library calls.

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tracing::Dispatch;

use crate::client::Client;
use crate::error::{Error, ErrorCode};

use super::config::noxy_config;
use super::engine::{lock, on_completion_thread, on_runtime_thread, Engine};
use super::error::noxy_error;
use super::log::client_dispatch;
use super::util::{guard, out_arg, ref_arg, same_process};

/// A client of the Noxy relay: one connection, on its own runtime and completion thread (or
/// the process-wide ones, `noxy_config_set_shared_runtime`).
///
/// Thread-safe: every call taking a `const noxy_client *` may be made from any number of
/// threads at once. Created by `noxy_client_new`, released by `noxy_free`. A client does not
/// survive `fork()`: in the child, every call fails with `NOXY_ERROR_INVALID_ARGUMENT`.
pub struct noxy_client {
    pub(crate) engine: Arc<Engine>,
    pub(crate) client: Client,
    /// Async operations started whose callback has not returned yet.
    outstanding: Mutex<usize>,
    idle: Condvar,
    /// The client's own logger, when its configuration has a log callback.
    logger: Option<Dispatch>,
}

impl noxy_client {
    /// Fails when the client is used in a process forked after it was created: the runtime's
    /// threads do not exist there, and touching it would hang.
    pub(crate) fn check_process(&self) -> Result<(), Error> {
        same_process(self.engine.pid, "client")
    }

    /// Runs `f` with the client's logger as the current one (when it has its own).
    pub(crate) fn logged<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.logger {
            Some(dispatch) => tracing::dispatcher::with_default(dispatch, f),
            None => f(),
        }
    }

    /// The client's logger, if it has its own.
    pub(crate) fn logger(&self) -> Option<&Dispatch> {
        self.logger.as_ref()
    }

    /// Runs `future` to completion on the calling thread (a blocking call).
    pub(crate) fn block_on<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        if self.client.is_closed() {
            return Err(Error::cancelled("the client is closed"));
        }
        refuse_blocking_here()?;
        Ok(self.logged(|| self.engine.handle.block_on(future)))
    }

    /// Counts a started operation (until `finish_operation`).
    pub(crate) fn start_operation(&self) {
        *lock(&self.outstanding) += 1;
    }

    /// Called on the completion thread after an operation's callback returned.
    pub(crate) fn finish_operation(&self) {
        let mut outstanding = lock(&self.outstanding);
        *outstanding = outstanding.saturating_sub(1);
        if *outstanding == 0 {
            self.idle.notify_all();
        }
    }

    /// Waits until no operation is outstanding, at most `timeout`; the count left.
    fn wait_idle(&self, timeout: Duration) -> usize {
        let outstanding = lock(&self.outstanding);
        let (outstanding, _) = self
            .idle
            .wait_timeout_while(outstanding, timeout, |n| *n > 0)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *outstanding
    }
}

/// Blocking is refused on the threads whose stall would stall others: the completion thread
/// (every other callback waits behind it) and runtime workers (the I/O of every call).
pub(crate) fn refuse_blocking_here() -> Result<(), Error> {
    if on_completion_thread() {
        return Err(Error::invalid_argument(
            "thread",
            "blocking calls are refused on the completion thread (inside a completion \
             callback): use the _async form of the call",
        ));
    }
    if on_runtime_thread() {
        return Err(Error::invalid_argument(
            "thread",
            "blocking calls cannot be made from a library runtime thread \
             (for example from the log callback)",
        ));
    }
    Ok(())
}

fn new_client(config: &noxy_config) -> Result<noxy_client, Error> {
    config.config.validate()?;
    let engine = if config.shared_runtime {
        Engine::shared(config.worker_threads)?
    } else {
        Engine::new(config.worker_threads)?
    };
    let logger = config.log_sink.clone().map(client_dispatch);
    let client = {
        let _entered = engine.handle.enter();
        let create = || Client::new(config.config.clone());
        match &logger {
            // The channel's background tasks inherit the logger current at creation.
            Some(dispatch) => tracing::dispatcher::with_default(dispatch, create),
            None => create(),
        }?
    };
    let client = noxy_client {
        engine,
        client,
        outstanding: Mutex::new(0),
        idle: Condvar::new(),
        logger,
    };
    client.logged(|| {
        tracing::debug!(
            endpoint = %config.config.endpoint,
            worker_threads = client.engine.worker_threads,
            shared_runtime = config.shared_runtime,
            "noxy client created"
        )
    });
    Ok(client)
}

/// Creates a client from `config` (copied: the config may be freed right after). Validates
/// the whole configuration first; the error names the first invalid field (`endpoint`,
/// `app_token`, `decision_ttl_seconds`, `ca_pem`, `connect_timeout`, ...). Does not connect:
/// the relay is contacted on the first call.
///
/// On success writes a new client to `*out_client`; the caller owns it and releases it with
/// `noxy_free`. On failure returns an error and leaves `*out_client` untouched. Any thread.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`; `out_client` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn noxy_client_new(
    config: *const noxy_config,
    out_client: *mut *mut noxy_client,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract: NULL or a live config.
        let config = unsafe { ref_arg(config, "config") }?;
        // SAFETY: forwarded contract: NULL or writable for the duration of the call.
        let out = unsafe { out_arg(out_client, "out_client") }?;
        let client = Arc::new(new_client(config)?);
        out.write_raw(Arc::into_raw(client).cast_mut());
        Ok(())
    })
}

/// Closes a client without freeing it: every call in flight (blocking or async) ends with
/// `NOXY_ERROR_CANCELLED`, and so does every later call. Returns at once: the callbacks of the
/// async operations still run, exactly once each, on the completion thread (use
/// `noxy_client_drain` to wait for them). Idempotent. Any thread, including callbacks.
///
/// # Safety
/// `client` is NULL or a live `noxy_client`.
#[no_mangle]
pub unsafe extern "C" fn noxy_client_close(client: *const noxy_client) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract: NULL or a live client.
        let client = unsafe { client_arg(client) }?;
        client.client.close();
        Ok(())
    })
}

/// Waits until every async operation of `client` has ended and its callback has returned, at
/// most `timeout_ms` milliseconds (0: just check). Returns NULL when none is outstanding, or
/// `NOXY_ERROR_DEADLINE_EXCEEDED` (saying how many are left) at the timeout. It does not cancel
/// anything: call `noxy_client_close` first to end the operations quickly.
///
/// The orderly C shutdown is `noxy_client_close`, `noxy_client_drain`, then `noxy_free`: after
/// a successful drain no callback of this client runs any more, so the data the callbacks use
/// may be released.
///
/// Host threads only: on the completion thread (it would wait for itself) and on runtime
/// threads it fails with `NOXY_ERROR_INVALID_ARGUMENT`.
///
/// # Safety
/// `client` is NULL or a live `noxy_client`.
#[no_mangle]
pub unsafe extern "C" fn noxy_client_drain(
    client: *const noxy_client,
    timeout_ms: u64,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract: NULL or a live client.
        let client = unsafe { client_arg(client) }?;
        refuse_blocking_here()?;
        let timeout = Duration::from_millis(timeout_ms).min(crate::config::MAX_DURATION);
        match client.wait_idle(timeout) {
            0 => Ok(()),
            left => Err(Error::new(
                ErrorCode::DeadlineExceeded,
                format!("{left} operation(s) still outstanding after {timeout_ms} ms"),
            )),
        }
    })
}

/// Releases a client. NULL is a no-op. Never blocks: safe from any thread, including
/// completion callbacks, log callbacks and garbage-collector finalizers.
///
/// It closes the client (everything in flight ends with `NOXY_ERROR_CANCELLED`) and releases
/// the caller's reference. Async operations still outstanding keep the client alive until their
/// callbacks have run, exactly once each, on the completion thread, possibly after
/// `noxy_free` returned; then the runtime and the completion thread stop. To be sure that no
/// callback runs any more, call `noxy_client_drain` before `noxy_free`.
///
/// After `noxy_free`, `client` may be used only by callbacks of its own operations that are
/// still to run (its calls then fail with `NOXY_ERROR_CANCELLED`); nothing else may use it, and
/// it must not be freed twice. No other host thread may be inside a call with `client` when
/// `noxy_free` is called. In a child process after `fork()`, it only releases the handle (the
/// parent's threads do not exist in the child; the memory they shared is left as is).
///
/// # Safety
/// `client` is NULL or a `noxy_client` that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_free(client: *mut noxy_client) {
    if client.is_null() {
        return;
    }
    // SAFETY: non-NULL, from Arc::into_raw in noxy_client_new, and the caller's reference is
    // released once (the contract: not freed yet).
    let client = unsafe { Arc::from_raw(client.cast_const()) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        if client.check_process().is_err() {
            std::mem::forget(client);
            return;
        }
        client.client.close();
        client.logged(|| tracing::debug!("noxy client released by the host"));
    }));
}

/// Checks the client argument of a call.
///
/// # Safety
/// `client` is NULL or a live `noxy_client` valid for `'a`.
pub(crate) unsafe fn client_arg<'a>(client: *const noxy_client) -> Result<&'a noxy_client, Error> {
    // SAFETY: forwarded contract.
    let client = unsafe { ref_arg(client, "client") }?;
    client.check_process()?;
    Ok(client)
}

/// A new reference to a live client, for an operation that outlives the call.
///
/// # Safety
/// `client` was created by `noxy_client_new` (an `Arc`) and is alive for the call.
pub(crate) unsafe fn client_ref(client: &noxy_client) -> Arc<noxy_client> {
    let raw: *const noxy_client = client;
    // SAFETY: the handle is an Arc's pointer (noxy_client_new) with a live reference (the
    // caller's), so adding one and rebuilding an owner for it is sound.
    unsafe {
        Arc::increment_strong_count(raw);
        Arc::from_raw(raw)
    }
}
