//! Logging: the library's `tracing` events, forwarded to host callbacks: a process-wide one
//! (`noxy_set_log_callback`) and, optionally, one per client (`noxy_config_set_log_callback`),
//! which then receives that client's events instead.
//!
//! No lock is ever held while host code runs: a sink is reference-counted and swapped
//! atomically; an event keeps its sink alive while the callback runs, and the sink's
//! `free_user_data` runs once, after the last call of its callback returned. The library never
//! logs the app token or a payload (the core redacts both, and the HTTP/2 layer marks the
//! authorization header sensitive).

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::fmt::Write as _;
use std::sync::{Arc, Once};

use arc_swap::ArcSwapOption;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

use crate::error::Error;

use super::error::noxy_error;
use super::util::{c_string, guard};

/// Log levels, most severe first. A callback registered with `max_level` receives the events
/// whose level is at most `max_level`. The C type is `int32_t`.
#[repr(i32)]
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
/// It may run on any thread, including the library's runtime threads and host threads inside a
/// library call, and concurrently with itself: keep it short, thread-safe and non-blocking
/// (while it runs, the I/O of the thread that logged waits). It must not call functions of this
/// library other than the `noxy_error_*` accessors, the `*_name` functions and
/// `noxy_version`: blocking calls fail there, and `noxy_set_log_callback` fails with
/// `NOXY_ERROR_INVALID_ARGUMENT`. Events the library emits while a log callback runs on the
/// same thread are dropped. It must not unwind (a C++ exception, `longjmp`) into the library:
/// that is undefined behaviour.
pub type noxy_log_callback = Option<
    unsafe extern "C" fn(level: noxy_log_level, message: *const c_char, user_data: *mut c_void),
>;

/// Releases the `user_data` of a log callback, called once with it after the last call of the
/// callback returned (on any thread). NULL when the host keeps the data alive itself.
pub type noxy_free_user_data = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

type RawLogCallback = unsafe extern "C" fn(noxy_log_level, *const c_char, *mut c_void);

/// A registered host log callback with its level and data.
pub(crate) struct Sink {
    callback: RawLogCallback,
    user_data: *mut c_void,
    free_user_data: noxy_free_user_data,
    max_level: i32,
}

// SAFETY: the library never dereferences `user_data`; the host promised (by registering the
// callback) that the callback and `free_user_data` may be called with it from any thread.
unsafe impl Send for Sink {}
// SAFETY: as above; a `Sink` is immutable once registered.
unsafe impl Sync for Sink {}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(free_user_data) = self.free_user_data {
            // SAFETY: the host registered `free_user_data` for this `user_data`; the last
            // reference is gone, so the callback runs no more and this runs exactly once.
            unsafe { free_user_data(self.user_data) };
        }
    }
}

impl Sink {
    /// A sink for a registration, or `None` when the callback is NULL or the level is OFF
    /// (then `free_user_data` is not called: the library took nothing). Checks the level.
    pub(crate) fn new(
        callback: noxy_log_callback,
        user_data: *mut c_void,
        free_user_data: noxy_free_user_data,
        max_level: i32,
    ) -> Result<Option<Arc<Sink>>, Error> {
        if !(0..=noxy_log_level::NOXY_LOG_TRACE as i32).contains(&max_level) {
            return Err(Error::invalid_argument(
                "max_level",
                "must be NOXY_LOG_OFF (0) to NOXY_LOG_TRACE (5)",
            ));
        }
        Ok(match callback {
            Some(callback) if max_level > 0 => Some(Arc::new(Sink {
                callback,
                user_data,
                free_user_data,
                max_level,
            })),
            _ => None,
        })
    }

    fn deliver(&self, level: &Level, line: &std::ffi::CStr) {
        IN_CALLBACK.with(|flag| flag.set(true));
        // SAFETY: the host registered this callback with this user_data for calls from any
        // thread; `line` outlives the call. An `extern "C"` callback cannot unwind.
        unsafe { (self.callback)(level_enum(level), line.as_ptr(), self.user_data) };
        IN_CALLBACK.with(|flag| flag.set(false));
    }
}

/// The process-wide sink.
static GLOBAL: ArcSwapOption<Sink> = ArcSwapOption::const_empty();
static INSTALL: Once = Once::new();

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

fn level_number(level: &Level) -> i32 {
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

/// A subscriber that forwards events to a sink: its own (a client's), or the process-wide one.
struct Forwarder {
    own: Option<Arc<Sink>>,
}

impl Forwarder {
    fn max_level(&self) -> i32 {
        match &self.own {
            Some(sink) => sink.max_level,
            None => GLOBAL.load().as_ref().map_or(0, |sink| sink.max_level),
        }
    }
}

impl Subscriber for Forwarder {
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        // The process-wide callback and level change at run time: ask `enabled` every time.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && level_number(metadata.level()) <= self.max_level()
            && !IN_CALLBACK.with(Cell::get)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        Some(match self.max_level() {
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
        // The sink stays alive (and its user data unreleased) until the callback returned.
        let sink = match &self.own {
            Some(sink) => Arc::clone(sink),
            None => match GLOBAL.load_full() {
                Some(sink) => sink,
                None => return,
            },
        };
        let metadata = event.metadata();
        if level_number(metadata.level()) > sink.max_level {
            return;
        }
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
        sink.deliver(metadata.level(), &line);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// The dispatcher of a client with its own log callback.
pub(crate) fn client_dispatch(sink: Arc<Sink>) -> Dispatch {
    Dispatch::new(Forwarder { own: Some(sink) })
}

fn refuse_inside_log_callback(function: &str) -> Result<(), Error> {
    if IN_CALLBACK.with(Cell::get) {
        return Err(Error::invalid_argument(
            function,
            "cannot be called from inside a log callback",
        ));
    }
    Ok(())
}

/// Routes the library's logs to `callback` (process-wide: every client without a log callback
/// of its own), for events up to `max_level` (`NOXY_LOG_ERROR` .. `NOXY_LOG_TRACE`). A NULL
/// `callback` or `NOXY_LOG_OFF` disables process-wide logging (the default). Replaces any
/// earlier registration.
///
/// Ownership of `user_data`: on success with a non-NULL `callback` and a level above OFF, the
/// library calls `free_user_data(user_data)` (unless it is NULL) exactly once, after the last
/// call of `callback` returned, once a later registration replaced this one; calls already
/// running on other threads when this returns may still be finishing, so release `user_data`
/// only in `free_user_data`. On failure, or when logging is disabled by this call, the library
/// takes nothing.
///
/// Never waits for host code. Any thread, including completion callbacks, except from inside a
/// log callback (`NOXY_ERROR_INVALID_ARGUMENT`). A `max_level` outside 0..5 is
/// `NOXY_ERROR_INVALID_ARGUMENT`. `user_data` is never read by the library.
///
/// # Safety
/// `callback` and `free_user_data`, if not NULL, may be called from any thread with
/// `user_data` as described.
#[no_mangle]
pub unsafe extern "C" fn noxy_set_log_callback(
    callback: noxy_log_callback,
    user_data: *mut c_void,
    free_user_data: noxy_free_user_data,
    max_level: i32,
) -> *mut noxy_error {
    guard(|| {
        refuse_inside_log_callback("noxy_set_log_callback")?;
        let sink = Sink::new(callback, user_data, free_user_data, max_level)?;
        INSTALL.call_once(|| {
            // Our own copy of `tracing` lives inside libnoxy: nobody else installs a global
            // subscriber into it, except a Rust program that links the rlib and did so first;
            // then that program's subscriber keeps the logs.
            let _ = tracing::subscriber::set_global_default(Forwarder { own: None });
        });
        // The previous sink is released here, or by the last event still using it.
        drop(GLOBAL.swap(sink));
        tracing::callsite::rebuild_interest_cache();
        Ok(())
    })
}
