//! Async operations: one path, generic over the result type, that every `_async` call uses.
//!
//! Order of `start`, which makes the callback's guarantees hold on every path:
//! 1. every check that can fail (arguments were checked by the caller; here the callback and
//!    the client's state), so that a failed call starts nothing and calls back never;
//! 2. the operation handle is created and written to `*out_operation`, before anything can
//!    complete, so a callback that frees the memory holding that pointer cannot race the write;
//! 3. the operation is counted and spawned. From then on its result reaches the completion
//!    thread exactly once: on completion, on cancellation, on a panic, or (if the runtime drops
//!    the task) as CANCELLED from the slot's destructor.

use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::instrument::WithSubscriber;

use crate::error::Error;

use super::client::{client_ref, noxy_client};
use super::error::noxy_error;
use super::util::{guard, guard_value, panic_error, ref_arg, same_process};

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

/// A completion callback as the C ABI declares it, for a result object of type `T`.
pub(crate) type RawCallback<T> = unsafe extern "C" fn(*mut c_void, *mut noxy_error, *mut T);

/// A host pointer the library carries to the completion thread without touching it.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);

impl UserData {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: the library never dereferences the pointer; it only hands it back to the host's
// callback, whose documentation says that it runs on the completion thread.
unsafe impl Send for UserData {}

/// The right to complete one operation: delivers its result to the completion thread exactly
/// once, also when the operation's task is dropped unfinished (then as CANCELLED).
struct CompletionSlot<T: Send + 'static> {
    target: Option<(Arc<noxy_client>, RawCallback<T>, UserData)>,
}

impl<T: Send + 'static> CompletionSlot<T> {
    fn complete(mut self, result: Result<T, noxy_error>) {
        self.send(result);
    }

    fn send(&mut self, result: Result<T, noxy_error>) {
        let Some((client, callback, user_data)) = self.target.take() else {
            return;
        };
        let engine = Arc::clone(&client.engine);
        engine.complete(Box::new(move || {
            let (error, result) = match result {
                Ok(result) => (std::ptr::null_mut(), Box::into_raw(Box::new(result))),
                Err(error) => (Box::into_raw(Box::new(error)), std::ptr::null_mut()),
            };
            // SAFETY: the host registered this callback for this user_data and promised that
            // it may be called on the completion thread; ownership of `error`/`result` passes
            // to it. An `extern "C"` callback cannot unwind into Rust (a foreign unwind aborts).
            unsafe { callback(user_data.get(), error, result) };
            client.finish_operation();
            // `client` is released here, after the callback: this may be its last reference.
        }));
    }
}

impl<T: Send + 'static> Drop for CompletionSlot<T> {
    fn drop(&mut self) {
        self.send(Err(noxy_error::from(Error::cancelled(
            "the operation was dropped unfinished: the client is being released",
        ))));
    }
}

pin_project_lite::pin_project! {
    /// An operation's future that ends with CANCELLED once its token fires (after giving the
    /// work the chance to finish first, and to report what it did before the cancel).
    struct UntilCancelled<F> {
        #[pin]
        work: F,
        #[pin]
        cancelled: WaitForCancellationFutureOwned,
    }
}

impl<T, F: Future<Output = Result<T, noxy_error>>> Future for UntilCancelled<F> {
    type Output = Result<T, noxy_error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.work.poll(cx) {
            return Poll::Ready(result);
        }
        match this.cancelled.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(noxy_error::from(Error::cancelled(
                "cancelled by the caller",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Starts an async operation of `client` (see the module documentation for the order).
/// `future` is built from the operation's cancellation token, so that calls whose core
/// function watches a token (send, send-and-wait) report what they did before the cancel.
///
/// # Safety
/// `out_operation` is NULL or valid for writing one pointer; `callback` may be called on the
/// completion thread with `user_data`.
pub(crate) unsafe fn start<T, F>(
    client: &noxy_client,
    make_future: impl FnOnce(CancellationToken) -> F,
    callback: Option<RawCallback<T>>,
    user_data: *mut c_void,
    out_operation: *mut *mut noxy_operation,
) -> Result<(), Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, noxy_error>> + Send + 'static,
{
    let callback = callback.ok_or_else(|| Error::invalid_argument("callback", "is NULL"))?;
    // A closed client starts nothing: the call reports CANCELLED and never calls back.
    if client.client.is_closed() {
        return Err(Error::cancelled("the client is closed"));
    }
    let token = CancellationToken::new();
    if !out_operation.is_null() {
        let operation = Box::into_raw(Box::new(noxy_operation {
            pid: std::process::id(),
            token: token.clone(),
        }));
        // SAFETY: non-NULL, and the caller promised it is writable. Written before the
        // operation exists, so no callback can run before it.
        unsafe { out_operation.write(operation) };
    }
    client.start_operation();
    let slot = CompletionSlot {
        // SAFETY: `client` came from `client_arg` on a handle made by noxy_client_new.
        target: Some((unsafe { client_ref(client) }, callback, UserData(user_data))),
    };
    let cancellable = UntilCancelled {
        cancelled: token.clone().cancelled_owned(),
        work: make_future(token),
    };
    // Combinators around the one future, so the spawned task holds a single copy of it.
    let task = std::panic::AssertUnwindSafe(cancellable)
        .catch_unwind()
        .map(move |outcome| {
            slot.complete(
                outcome.unwrap_or_else(|panic| Err(noxy_error::from(panic_error(&*panic)))),
            )
        });
    match client.logger() {
        Some(dispatch) => drop(
            client
                .engine
                .handle
                .spawn(task.with_subscriber(dispatch.clone())),
        ),
        None => drop(client.engine.handle.spawn(task)),
    }
    Ok(())
}

/// Cancels an operation: its callback then reports `NOXY_ERROR_CANCELLED` (a cancelled send
/// still carries the per-device results so far), unless the operation had already finished
/// (then nothing changes). Idempotent. Any thread, including the operation's own callback and
/// any other callback, also after `noxy_free` of the client; `operation` is borrowed for the
/// call. Fails only for a NULL `operation`, or in a child process forked after the operation
/// started (`NOXY_ERROR_INVALID_ARGUMENT`; the operation belongs to the parent).
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
/// NULL is a no-op. Any thread, before or after the callback ran and the client was freed,
/// including from the operation's own callback. In a child process after `fork()` it only
/// releases the handle's memory.
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
