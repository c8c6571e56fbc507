//! The client handle: one core `Client`, one Tokio runtime, and one completion thread that runs
//! every async callback of the client.
//!
//! Threads of a client:
//! - `noxy-worker` (the runtime, `worker_threads` of them): drive I/O and timers. Host code
//!   never runs on them (except the log callback, which may run anywhere).
//! - `noxy-callbacks` (one): runs the completion callbacks of async operations, one at a time,
//!   in completion order. It is not a runtime thread, so a callback may call any function of
//!   the library, blocking ones included.
//! - Blocking calls run their future on the calling host thread (`Handle::block_on`).

use std::ffi::c_void;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Runtime};

use crate::client::Client;
use crate::error::Error;

use super::config::noxy_config;
use super::error::noxy_error;
use super::results::noxy_decision_result;
use super::util::{guard, out_arg, ref_arg, same_process};

/// How long `noxy_free` waits for the callbacks of operations in flight (each reports
/// CANCELLED) before it shuts the runtime down.
const FREE_WAIT: Duration = Duration::from_secs(5);
/// How long the runtime's shutdown may take.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// The completion callback of an async operation: called exactly once per operation that was
/// started successfully, on the client's completion thread, with exactly one of `error` and
/// `result` non-NULL. The callback owns what it receives and must free it
/// (`noxy_error_free` / `noxy_decision_result_free`), on any thread. `user_data` is the
/// pointer given when the operation was started, passed back untouched.
///
/// The callback may call any function of the library, including blocking calls, starting new
/// async operations, `noxy_operation_cancel`/`_free`, and `noxy_free` of this client (see
/// `noxy_free`). It runs on the completion thread, so a slow callback delays the callbacks of
/// the same client's other operations, but never the library's I/O.
pub type noxy_decision_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        error: *mut noxy_error,
        result: *mut noxy_decision_result,
    ),
>;

/// A host pointer the library carries to the completion thread without touching it.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub(crate) *mut c_void);

// SAFETY: the library never dereferences the pointer; it only hands it back to the host's
// callback, whose documentation says that it runs on the completion thread.
unsafe impl Send for UserData {}

pub(crate) type RawCallback =
    unsafe extern "C" fn(*mut c_void, *mut noxy_error, *mut noxy_decision_result);

/// One finished operation on its way to the completion thread.
pub(crate) struct Completion {
    callback: RawCallback,
    user_data: UserData,
    result: Result<noxy_decision_result, Error>,
}

enum Message {
    Done(Completion),
    Stop,
}

/// The right to complete one operation: sends its result to the completion thread exactly
/// once, also when the operation's task is dropped unfinished (the runtime shut down), in which
/// case the operation reports CANCELLED.
pub(crate) struct CompletionSlot {
    sender: mpsc::Sender<Message>,
    target: Option<(RawCallback, UserData)>,
}

impl CompletionSlot {
    pub(crate) fn complete(mut self, result: Result<noxy_decision_result, Error>) {
        self.send(result);
    }

    fn send(&mut self, result: Result<noxy_decision_result, Error>) {
        if let Some((callback, user_data)) = self.target.take() {
            // A send fails only once the completion thread is gone, that is after noxy_free
            // returned: then the callback must not run any more.
            let _ = self.sender.send(Message::Done(Completion {
                callback,
                user_data,
                result,
            }));
        }
    }
}

impl Drop for CompletionSlot {
    fn drop(&mut self) {
        self.send(Err(Error::cancelled(
            "the operation was dropped unfinished: the client is being freed",
        )));
    }
}

/// Everything a client handle owns; shared with its completion thread.
pub(crate) struct Shared {
    pid: u32,
    pub(crate) client: Client,
    handle: Handle,
    runtime: Mutex<Option<Runtime>>,
    sender: Mutex<Option<mpsc::Sender<Message>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: OnceLock<ThreadId>,
    /// Operations started whose callback has not returned yet.
    pending: Mutex<usize>,
    idle: Condvar,
    /// The host's handle, once `noxy_free` was called from a callback of this client: the
    /// completion thread tears down, then releases it (a cycle that the teardown breaks).
    retired: Mutex<Option<RetiredHandle>>,
}

/// The host's `noxy_client` pointer while `noxy_free` tears the client down. Callbacks that run
/// meanwhile may still borrow the handle, so it stays a raw pointer, from which only shared
/// references are made, and becomes a `Box` (a unique owner) again only in `release`, once no
/// callback of the client can run any more.
pub(crate) struct RetiredHandle(*mut noxy_client);

// SAFETY: `noxy_client` is Send and Sync, and the pointer is only used for shared references
// until `release`, which consumes the only `RetiredHandle` of a client.
unsafe impl Send for RetiredHandle {}

impl RetiredHandle {
    /// The client's shared state.
    fn shared(&self) -> Arc<Shared> {
        // SAFETY: the handle is live until `release` (noxy_free's contract: not freed yet);
        // the reference does not outlive this call.
        Arc::clone(unsafe { &(*self.0).shared })
    }

    /// Frees the handle. Called once nothing can use it any more.
    fn release(self) {
        // SAFETY: the pointer came from Box::into_raw in noxy_client_new; `self` is consumed,
        // so this happens once, and no reference made from the pointer is alive any more.
        drop(unsafe { Box::from_raw(self.0) });
    }

    /// In a forked child: frees the handle's memory but leaves the state it shares with the
    /// parent's threads (which do not exist here) as is; dropping it would join them.
    fn release_in_child(self) {
        // SAFETY: as for `release`.
        let handle = unsafe { Box::from_raw(self.0) };
        let noxy_client { shared } = *handle;
        std::mem::forget(shared);
    }
}

/// Locks a mutex, ignoring poisoning (no invariant of ours spans a panic).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Fails when the client is used in a process forked after it was created: the runtime's
    /// threads do not exist there, and touching it would hang.
    pub(crate) fn check_process(&self) -> Result<(), Error> {
        same_process(self.pid, "client")
    }

    /// Runs `future` to completion on the calling thread (a blocking call).
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> Result<F::Output, Error> {
        // A closed client answers without touching the runtime, which may already be shut
        // down (a callback that runs while the client is being freed).
        if self.client.is_closed() {
            return Err(Error::cancelled("the client is closed"));
        }
        if Handle::try_current().is_ok() {
            return Err(Error::invalid_argument(
                "thread",
                "blocking calls cannot be made from a library runtime thread \
                 (for example from the log callback)",
            ));
        }
        Ok(self.handle.block_on(future))
    }

    /// Starts `future` on the runtime; its result reaches `callback` on the completion thread.
    pub(crate) fn spawn<F>(
        &self,
        future: F,
        callback: RawCallback,
        user_data: UserData,
    ) -> Result<(), Error>
    where
        F: std::future::Future<Output = Result<noxy_decision_result, Error>> + Send + 'static,
    {
        // A closed client starts nothing: the call itself reports CANCELLED (and the callback is
        // not called), so no operation can begin while `noxy_free` tears the client down.
        if self.client.is_closed() {
            return Err(Error::cancelled("the client is closed"));
        }
        let sender = lock(&self.sender)
            .clone()
            .ok_or_else(|| Error::cancelled("the client is being freed"))?;
        *lock(&self.pending) += 1;
        let slot = CompletionSlot {
            sender,
            target: Some((callback, user_data)),
        };
        self.handle.spawn(async move {
            use futures_util::FutureExt;
            let result = std::panic::AssertUnwindSafe(future)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(super::util::panic_error(&*panic)));
            slot.complete(result);
        });
        Ok(())
    }

    fn finish_one(&self) {
        let mut pending = lock(&self.pending);
        *pending = pending.saturating_sub(1);
        if *pending == 0 {
            self.idle.notify_all();
        }
    }

    fn wait_idle(&self, timeout: Duration) {
        let pending = lock(&self.pending);
        let _ = self
            .idle
            .wait_timeout_while(pending, timeout, |pending| *pending > 0);
    }

    fn on_completion_thread(&self) -> bool {
        self.thread_id.get() == Some(&std::thread::current().id())
    }

    fn free_requested(&self) -> bool {
        lock(&self.retired).is_some()
    }

    fn shutdown_runtime(&self) {
        // Taken out first: no lock of ours is held while the runtime's tasks are dropped.
        let runtime = lock(&self.runtime).take();
        if let Some(runtime) = runtime {
            runtime.shutdown_timeout(SHUTDOWN_WAIT);
        }
    }
}

/// Calls one completion callback, handing it ownership of the error or the result.
fn deliver(completion: Completion) {
    let (error, result) = match completion.result {
        Ok(result) => (std::ptr::null_mut(), Box::into_raw(Box::new(result))),
        Err(error) => (noxy_error::into_raw(error), std::ptr::null_mut()),
    };
    // SAFETY: the host registered this callback for this user_data and promised that it may
    // be called on this thread; ownership of `error`/`result` passes to it. An `extern "C"`
    // callback cannot unwind into Rust (a foreign unwind aborts).
    unsafe { (completion.callback)(completion.user_data.0, error, result) };
}

fn completion_loop(shared: Arc<Shared>, receiver: mpsc::Receiver<Message>) {
    while let Ok(message) = receiver.recv() {
        match message {
            Message::Done(completion) => {
                deliver(completion);
                shared.finish_one();
                if shared.free_requested() {
                    teardown_on_completion_thread(&shared, &receiver);
                    return;
                }
            }
            Message::Stop => return,
        }
    }
}

/// `noxy_free` was called from a callback: finish what the freeing host thread would have done,
/// here, after that callback returned. Every pending operation still gets its callback.
fn teardown_on_completion_thread(shared: &Shared, receiver: &mpsc::Receiver<Message>) {
    let deadline = Instant::now() + FREE_WAIT;
    while *lock(&shared.pending) > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match receiver.recv_timeout(deadline - now) {
            Ok(Message::Done(completion)) => {
                deliver(completion);
                shared.finish_one();
            }
            Ok(Message::Stop) | Err(_) => break,
        }
    }
    shared.shutdown_runtime();
    // Tasks dropped by the shutdown completed their slots (CANCELLED) synchronously.
    while let Ok(Message::Done(completion)) = receiver.try_recv() {
        deliver(completion);
        shared.finish_one();
    }
    drop(lock(&shared.sender).take());
    // No callback of this client runs any more: release the host's handle.
    let handle = lock(&shared.retired).take();
    if let Some(handle) = handle {
        handle.release();
    }
    tracing::debug!("noxy client freed (from a callback)");
}

/// A client of the Noxy relay: one connection, one runtime, one completion thread.
///
/// Each client owns a Tokio runtime with `worker_threads` threads (default 2, see
/// `noxy_config_set_worker_threads`) that drive its I/O, and one completion thread that runs
/// its async callbacks. Create one client per relay and app token and share it.
///
/// Thread-safe: every call taking a `const noxy_client *` may be made from any number of
/// threads at once. Created by `noxy_client_new`, released by `noxy_free`. A client does not
/// survive `fork()`: in the child, every call fails with `NOXY_ERROR_INVALID_ARGUMENT`.
pub struct noxy_client {
    pub(crate) shared: Arc<Shared>,
}

fn new_client(config: &noxy_config) -> Result<noxy_client, Error> {
    config.config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads as usize)
        .max_blocking_threads(4)
        .thread_name("noxy-worker")
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("cannot start the runtime: {e}")))?;
    let client = {
        let _entered = runtime.enter();
        Client::new(config.config.clone())?
    };
    let (sender, receiver) = mpsc::channel();
    let shared = Arc::new(Shared {
        pid: std::process::id(),
        client,
        handle: runtime.handle().clone(),
        runtime: Mutex::new(Some(runtime)),
        sender: Mutex::new(Some(sender)),
        thread: Mutex::new(None),
        thread_id: OnceLock::new(),
        pending: Mutex::new(0),
        idle: Condvar::new(),
        retired: Mutex::new(None),
    });
    let for_thread = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("noxy-callbacks".into())
        .spawn(move || completion_loop(for_thread, receiver))
        .map_err(|e| Error::internal(format!("cannot start the completion thread: {e}")))?;
    let _ = shared.thread_id.set(thread.thread().id());
    *lock(&shared.thread) = Some(thread);
    tracing::debug!(
        endpoint = %config.config.endpoint,
        worker_threads = config.worker_threads,
        "noxy client created"
    );
    Ok(noxy_client { shared })
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
        out.write(new_client(config)?);
        Ok(())
    })
}

/// Closes a client without freeing it: every call in flight (blocking or async) ends with
/// `NOXY_ERROR_CANCELLED`, and so does every later call. Idempotent. Safe to call from any
/// thread while other threads use the client, including from callbacks; use it to unblock
/// host threads before `noxy_free`.
///
/// # Safety
/// `client` is NULL or a live `noxy_client`.
#[no_mangle]
pub unsafe extern "C" fn noxy_client_close(client: *const noxy_client) -> *mut noxy_error {
    guard(|| {
        // SAFETY: forwarded contract: NULL or a live client.
        let client = unsafe { ref_arg(client, "client") }?;
        client.shared.check_process()?;
        client.shared.client.close();
        Ok(())
    })
}

/// Releases a client. NULL is a no-op.
///
/// Closes the client (everything in flight ends with `NOXY_ERROR_CANCELLED`), waits until the
/// callback of every async operation has run (exactly once each: CANCELLED unless the
/// operation had already finished), then stops the runtime and the completion thread. When
/// `noxy_free` returns, no callback of this client runs any more. Operations that have not
/// ended 5 s after the close are dropped (their callbacks report CANCELLED); a callback that
/// is running is always waited for, however long it takes. Operation handles
/// (`noxy_operation`) stay valid until freed.
///
/// Threads:
/// - Any host thread, once no other host thread uses `client` (end blocking calls running on
///   other threads with `noxy_client_close` first).
/// - From inside a completion callback of this same client it returns at once: the remaining
///   callbacks (CANCELLED) run on the completion thread right after the current one returns,
///   then the completion thread stops the runtime and exits.
/// - Callbacks of this client that run during its teardown may still pass `client` to library
///   calls, which then fail with `NOXY_ERROR_CANCELLED`: the handle is released last. Nothing
///   else may use `client` once `noxy_free` was called, and it must not be freed twice.
/// - Do not hold a lock that a callback of this client needs while calling `noxy_free`: it
///   waits for the callbacks, so that would deadlock.
/// - Not from the log callback.
/// - In a child process after `fork()`, it only releases the handle (the parent's threads do
///   not exist in the child; the memory they shared is left as is).
///
/// # Safety
/// `client` is NULL or a `noxy_client` that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_free(client: *mut noxy_client) {
    if client.is_null() {
        return;
    }
    // Non-NULL, from noxy_client_new (Box::into_raw), not freed yet (the contract).
    let handle = RetiredHandle(client);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || free_client(handle)));
}

/// Tears a client down; `handle`, the host's `noxy_client`, is released last, once no callback
/// of the client can run any more.
fn free_client(handle: RetiredHandle) {
    let shared = handle.shared();
    if shared.check_process().is_err() {
        drop(shared);
        handle.release_in_child();
        return;
    }
    shared.client.close();
    if shared.on_completion_thread() {
        // Inside a callback: the completion thread finishes the teardown after it returns.
        drop(lock(&shared.thread).take()); // detach: it cannot join itself
        *lock(&shared.retired) = Some(handle);
        return;
    }
    if Handle::try_current().is_ok() {
        // On a runtime worker (a log callback): the runtime cannot be shut down from inside
        // itself; finish on a helper thread.
        std::thread::spawn(move || {
            teardown(&shared);
            handle.release();
        });
        return;
    }
    teardown(&shared);
    handle.release();
}

fn teardown(shared: &Shared) {
    shared.wait_idle(FREE_WAIT);
    shared.shutdown_runtime();
    // Taken out of their mutexes first: no lock of ours is held while the completion thread
    // runs the last callbacks.
    let sender = lock(&shared.sender).take();
    if let Some(sender) = sender {
        let _ = sender.send(Message::Stop);
    }
    let thread = lock(&shared.thread).take();
    if let Some(thread) = thread {
        let _ = thread.join();
    }
    tracing::debug!("noxy client freed");
}

/// Checks the client argument of a call and returns its shared state.
///
/// # Safety
/// `client` is NULL or a live `noxy_client` valid for `'a`.
pub(crate) unsafe fn client_arg<'a>(client: *const noxy_client) -> Result<&'a Shared, Error> {
    // SAFETY: forwarded contract.
    let client = unsafe { ref_arg(client, "client") }?;
    client.shared.check_process()?;
    Ok(&client.shared)
}
