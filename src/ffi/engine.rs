//! What drives clients: a Tokio runtime (I/O and timers) and one completion thread that runs
//! the callbacks of async operations. Each client owns an engine, or shares the process-wide
//! one (`noxy_config_set_shared_runtime`).
//!
//! An engine lives as long as a client uses it or an operation of one of its clients is
//! outstanding (every operation holds its client, which holds the engine), so a completion can
//! always be delivered: teardown never loses a callback. When the last reference goes, the
//! runtime is shut down in the background (never blocking the thread that dropped it, which may
//! be a runtime worker or the completion thread itself) and the completion thread exits once
//! its queue is empty.

use std::cell::Cell;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::runtime::{Handle, Runtime};

use crate::error::Error;

/// A unit of work for the completion thread: one callback with its bookkeeping.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// A runtime and a completion thread.
pub(crate) struct Engine {
    /// The process that created the engine; its threads do not exist in a forked child.
    pub(crate) pid: u32,
    pub(crate) handle: Handle,
    runtime: Mutex<Option<Runtime>>,
    jobs: mpsc::Sender<Job>,
    pub(crate) worker_threads: u32,
}

thread_local! {
    static ON_COMPLETION_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Locks a mutex, ignoring poisoning (no invariant of ours spans a panic).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the current thread is a completion thread (of any engine).
pub(crate) fn on_completion_thread() -> bool {
    ON_COMPLETION_THREAD.with(Cell::get)
}

/// Whether the current thread is a runtime worker (of any engine).
pub(crate) fn on_runtime_thread() -> bool {
    Handle::try_current().is_ok()
}

impl Engine {
    /// A new engine with `worker_threads` runtime threads.
    pub(crate) fn new(worker_threads: u32) -> Result<Arc<Engine>, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads as usize)
            .max_blocking_threads(4)
            .thread_name("noxy-worker")
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start the runtime: {e}")))?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("noxy-callbacks".into())
            .spawn(move || {
                ON_COMPLETION_THREAD.with(|flag| flag.set(true));
                // Ends when every sender is gone: the engine, and with it every operation.
                for job in queue {
                    job();
                }
            })
            .map_err(|e| Error::internal(format!("cannot start the completion thread: {e}")))?;
        Ok(Arc::new(Engine {
            pid: std::process::id(),
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            jobs,
            worker_threads,
        }))
    }

    /// The process-wide engine, created on first use with `worker_threads` threads; it is
    /// released when no client uses it, and made anew after `fork()`.
    pub(crate) fn shared(worker_threads: u32) -> Result<Arc<Engine>, Error> {
        static SHARED: Mutex<Weak<Engine>> = Mutex::new(Weak::new());
        let current = lock(&SHARED).upgrade();
        match current {
            Some(engine) if engine.pid == std::process::id() => return Ok(engine),
            // Inherited through fork(): its threads are gone; leave it alone.
            Some(inherited) => std::mem::forget(inherited),
            None => {}
        }
        // Created outside the lock (it starts threads); a racing creator's engine simply
        // serves its own clients.
        let engine = Engine::new(worker_threads)?;
        *lock(&SHARED) = Arc::downgrade(&engine);
        Ok(engine)
    }

    /// Queues a job for the completion thread. It always runs: the thread outlives every
    /// sender, and callers hold the engine.
    pub(crate) fn complete(&self, job: Job) {
        let _ = self.jobs.send(job);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let runtime = lock(&self.runtime).take();
        if let Some(runtime) = runtime {
            if self.pid == std::process::id() {
                // Never blocks: the thread dropping the engine may be a runtime worker.
                runtime.shutdown_background();
            } else {
                // In a forked child the runtime's threads do not exist, and the locks they
                // shared may be held forever: leave its memory as it is.
                std::mem::forget(runtime);
            }
        }
    }
}
