//! Logging: the library's `tracing` events, forwarded to one process-wide host callback.
//!
//! The library never logs the app token or a payload (the core redacts both, and the HTTP/2
//! layer marks the authorization header sensitive).

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, RwLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use crate::error::Error;

use super::error::noxy_error;
use super::util::{c_string, guard};

/// Log levels, most severe first. A callback registered with `max_level` receives the events
/// whose level is at most `max_level`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum noxy_log_level {
    /// No logging (as `max_level`).
    NOXY_LOG_OFF = 0,
    /// Errors.
    NOXY_LOG_ERROR = 1,
    /// Warnings.
    NOXY_LOG_WARN = 2,
    /// Informational events (retries, transient failures while waiting).
    NOXY_LOG_INFO = 3,
    /// Debugging detail.
    NOXY_LOG_DEBUG = 4,
    /// Very verbose detail, including the HTTP/2 and TLS layers.
    NOXY_LOG_TRACE = 5,
}

/// A log callback: `level` of the event, `message` (UTF-8, NUL-terminated, borrowed: valid only
/// during the call; copy it to keep it), and the `user_data` given at registration.
///
/// It may run on any thread, including the library's runtime threads, host threads inside a
/// library call, and the completion threads, and concurrently with itself: keep it short,
/// thread-safe and non-blocking. While it runs, the I/O of the thread that logged waits, and
/// `noxy_set_log_callback` on any thread waits for it to return (so it must never wait for a
/// thread that may be replacing the callback). It must not call functions of this library
/// other than the `noxy_error_*` accessors, `noxy_error_code_name`, `noxy_outcome_name`,
/// `noxy_delivery_status_name` and `noxy_version` (a blocking call from a runtime thread would
/// stall the runtime and fails); `noxy_set_log_callback` from inside it fails with
/// `NOXY_ERROR_INVALID_ARGUMENT`. Events the library emits while a log callback runs on the
/// same thread are dropped.
pub type noxy_log_callback = Option<
    unsafe extern "C" fn(level: noxy_log_level, message: *const c_char, user_data: *mut c_void),
>;

type RawLogCallback = unsafe extern "C" fn(noxy_log_level, *const c_char, *mut c_void);

struct Sink {
    callback: RawLogCallback,
    user_data: *mut c_void,
}

// SAFETY: the library never dereferences `user_data`; the host promised (by registering the
// callback) that the callback may be called with it from any thread.
unsafe impl Send for Sink {}
// SAFETY: as above; `Sink` is immutable once registered.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static MAX_LEVEL: AtomicU32 = AtomicU32::new(0);
static INSTALL: Once = Once::new();

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

fn level_number(level: &Level) -> u32 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn level_enum(level: &Level) -> noxy_log_level {
    match *level {
        Level::ERROR => noxy_log_level::NOXY_LOG_ERROR,
        Level::WARN => noxy_log_level::NOXY_LOG_WARN,
        Level::INFO => noxy_log_level::NOXY_LOG_INFO,
        Level::DEBUG => noxy_log_level::NOXY_LOG_DEBUG,
        Level::TRACE => noxy_log_level::NOXY_LOG_TRACE,
    }
}

/// Formats an event as `target: message key=value ...`.
struct Formatter {
    message: String,
    fields: String,
}

impl Visit for Formatter {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// The process-wide subscriber that forwards events to the registered callback.
struct Forwarder;

impl Subscriber for Forwarder {
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        // The callback and level change at run time: ask `enabled` every time.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && level_number(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
            && !IN_CALLBACK.with(Cell::get)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        Some(match MAX_LEVEL.load(Ordering::Relaxed) {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut text = Formatter {
            message: String::new(),
            fields: String::new(),
        };
        event.record(&mut text);
        let line = c_string(&format!(
            "{}: {}{}",
            metadata.target(),
            text.message,
            text.fields
        ));
        let sink = SINK.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sink) = sink.as_ref() {
            IN_CALLBACK.with(|flag| flag.set(true));
            // SAFETY: the host registered this callback with this user_data for calls from any
            // thread; `line` outlives the call. An `extern "C"` callback cannot unwind.
            unsafe { (sink.callback)(level_enum(metadata.level()), line.as_ptr(), sink.user_data) };
            IN_CALLBACK.with(|flag| flag.set(false));
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Routes the library's logs to `callback` (process-wide, for every client), for events up to
/// `max_level` (`NOXY_LOG_ERROR` .. `NOXY_LOG_TRACE`). A NULL `callback` or `NOXY_LOG_OFF`
/// disables logging (the default). Replaces any earlier registration.
///
/// When this returns, the previous callback is not running on any thread and will not be called
/// again, so its `user_data` may be released: it waits for deliveries in progress on other
/// threads to return. Any thread, including completion callbacks, except from inside a log
/// callback (`NOXY_ERROR_INVALID_ARGUMENT`). A `max_level` above `NOXY_LOG_TRACE` is
/// `NOXY_ERROR_INVALID_ARGUMENT`. `user_data` is never read by the library.
///
/// # Safety
/// `callback`, if not NULL, may be called from any thread with `user_data` until logging is
/// replaced or disabled.
#[no_mangle]
pub unsafe extern "C" fn noxy_set_log_callback(
    callback: noxy_log_callback,
    user_data: *mut c_void,
    max_level: u32,
) -> *mut noxy_error {
    guard(|| {
        if IN_CALLBACK.with(Cell::get) {
            return Err(Error::invalid_argument(
                "noxy_set_log_callback",
                "cannot be called from inside a log callback",
            ));
        }
        if max_level > noxy_log_level::NOXY_LOG_TRACE as u32 {
            return Err(Error::invalid_argument(
                "max_level",
                "must be NOXY_LOG_OFF (0) to NOXY_LOG_TRACE (5)",
            ));
        }
        INSTALL.call_once(|| {
            // Our own copy of `tracing` lives inside libnoxy: nobody else installs a global
            // subscriber into it, except a Rust program that links the rlib and did so first;
            // then that program's subscriber keeps the logs.
            let _ = tracing::subscriber::set_global_default(Forwarder);
        });
        let mut sink = SINK
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let level = if callback.is_some() { max_level } else { 0 };
        // Lower the level first so that no new event starts for the old sink.
        MAX_LEVEL.store(level, Ordering::SeqCst);
        *sink = callback.map(|callback| Sink {
            callback,
            user_data,
        });
        drop(sink);
        tracing::callsite::rebuild_interest_cache();
        Ok(())
    })
}
