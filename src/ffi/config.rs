//! Configuration handles: built with setters so that new settings never change a struct layout
//! that callers compiled against an older header depend on (and so that Go, C#, JVM and Swift
//! bindings need no struct mirrors). Setters check their own argument (NULL, UTF-8, range);
//! whole-configuration checks happen in `noxy_client_new` and in the calls that take options,
//! whose errors name the offending field.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{check_duration, check_jitter, check_multiplier, ClientConfig};
use crate::error::Error;
use crate::routing::SendOptions;
use crate::waiting::WaitOptions;

use super::error::noxy_error;
use super::log::{noxy_free_user_data, noxy_log_callback, Sink};
use super::util::{free_boxed, guard, guard_value, str_arg};

/// Default number of runtime worker threads per client.
pub const NOXY_DEFAULT_WORKER_THREADS: u32 = 2;

/// A client configuration under construction. Create with `noxy_config_new`, adjust with the
/// `noxy_config_set_*` setters, pass to `noxy_client_new` (which copies it), free with
/// `noxy_config_free`. Not synchronised: use one config from one thread at a time.
pub struct noxy_config {
    pub(crate) config: ClientConfig,
    pub(crate) worker_threads: u32,
    pub(crate) shared_runtime: bool,
    pub(crate) log_sink: Option<Arc<Sink>>,
}

/// How to wait for an outcome. Create with `noxy_wait_options_new` (the relay SDKs' defaults:
/// 400 ms first interval, x1.6, at most 30 s between polls, at most 15 minutes in total, no
/// jitter), adjust with setters, free with `noxy_wait_options_free`. Calls copy what they
/// need: the options may be freed or reused as soon as a call returns (async calls included).
/// Not synchronised: use one options object from one thread at a time.
pub struct noxy_wait_options {
    pub(crate) options: WaitOptions,
}

/// Options for routing a decision. Create with `noxy_send_options_new`, free with
/// `noxy_send_options_free`. Calls copy what they need. Not synchronised.
pub struct noxy_send_options {
    pub(crate) options: SendOptions,
}

/// Runs a setter: checks the handle, then applies `f`.
///
/// # Safety
/// `handle` is NULL or a live, exclusively used object of type `T`.
unsafe fn set<T>(
    handle: *mut T,
    name: &str,
    f: impl FnOnce(&mut T) -> Result<(), Error>,
) -> *mut noxy_error {
    guard(|| {
        // SAFETY: the caller promises NULL or a live T that no other thread uses right now.
        let handle =
            unsafe { handle.as_mut() }.ok_or_else(|| Error::invalid_argument(name, "is NULL"))?;
        f(handle)
    })
}

/// A duration setting in milliseconds, checked at once: at most 365 days (so `UINT64_MAX`,
/// the C idiom for "forever", is a clear error instead of an overflow later), and above zero
/// when `non_zero`.
fn millis(field: &str, value: u64, non_zero: bool) -> Result<Duration, Error> {
    let duration = Duration::from_millis(value);
    check_duration(field, duration, non_zero)?;
    Ok(duration)
}

// ---- noxy_config ----

/// A new configuration with the library's defaults (decision TTL 600 s, connect timeout
/// 10 s, request timeout 30 s, retries of transient failures for up to 30 s with backoff from
/// 100 ms doubling to 2 s with 20 % jitter and no attempt cap, at most 100 RPCs in flight, 2
/// worker threads of its own, the public web PKI roots, the process-wide log callback).
/// Endpoint and app token must be set before `noxy_client_new`. Never NULL. The caller owns it:
/// `noxy_config_free`. Any thread.
#[no_mangle]
pub extern "C" fn noxy_config_new() -> *mut noxy_config {
    Box::into_raw(Box::new(noxy_config {
        config: ClientConfig::new("", ""),
        worker_threads: NOXY_DEFAULT_WORKER_THREADS,
        shared_runtime: false,
        log_sink: None,
    }))
}

/// Frees a configuration. NULL is a no-op. Clients created from it are unaffected (a log
/// callback's `user_data` is released once neither the config nor any client uses it).
/// Any thread, once no other thread uses the object.
///
/// # Safety
/// `config` is NULL or a `noxy_config` that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_free(config: *mut noxy_config) {
    // SAFETY: forwarded contract: NULL or an unfreed object from Box::into_raw.
    guard_value((), || unsafe { free_boxed(config) })
}

/// Sets the relay endpoint: `https://relay.noxy.network`, `host:port`, `127.0.0.1:50051`
/// (always TLS; port 443 when none is given). Copied. Checked by `noxy_client_new`.
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`; `endpoint` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_endpoint(
    config: *mut noxy_config,
    endpoint: *const c_char,
) -> *mut noxy_error {
    // SAFETY: forwarded contract on both pointers.
    unsafe {
        set(config, "config", |c| {
            c.config.endpoint = str_arg(endpoint, "endpoint")?.to_owned();
            Ok(())
        })
    }
}

/// Sets the app's bearer token (visible ASCII). Copied; never logged.
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`; `app_token` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_app_token(
    config: *mut noxy_config,
    app_token: *const c_char,
) -> *mut noxy_error {
    // SAFETY: forwarded contract on both pointers.
    unsafe {
        set(config, "config", |c| {
            c.config.app_token = str_arg(app_token, "app_token")?.to_owned();
            Ok(())
        })
    }
}

/// Sets how long the relay keeps a decision open before marking it EXPIRED (at least 1).
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_decision_ttl_seconds(
    config: *mut noxy_config,
    seconds: u32,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            c.config.decision_ttl_seconds = seconds;
            Ok(())
        })
    }
}

/// Trusts only the given root certificate(s), PEM text, instead of the public web PKI (for a
/// private or development relay). NULL restores the default roots. Copied.
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`; `ca_pem` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_ca_pem(
    config: *mut noxy_config,
    ca_pem: *const c_char,
) -> *mut noxy_error {
    // SAFETY: forwarded contract on both pointers.
    unsafe {
        set(config, "config", |c| {
            c.config.ca_pem = if ca_pem.is_null() {
                None
            } else {
                Some(str_arg(ca_pem, "ca_pem")?.to_owned())
            };
            Ok(())
        })
    }
}

/// Like `noxy_config_set_ca_pem`, reading the PEM text from a file now. A file that cannot be
/// read is `NOXY_ERROR_INVALID_ARGUMENT` naming `ca_pem_path`.
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`; `ca_pem_path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_ca_pem_file(
    config: *mut noxy_config,
    ca_pem_path: *const c_char,
) -> *mut noxy_error {
    // SAFETY: forwarded contract on both pointers.
    unsafe {
        set(config, "config", |c| {
            let path = str_arg(ca_pem_path, "ca_pem_path")?;
            let pem = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid_argument("ca_pem_path", format!("cannot read {path:?}: {e}"))
            })?;
            c.config.ca_pem = Some(pem);
            Ok(())
        })
    }
}

/// Sets the time allowed to connect (DNS, TCP and the TLS handshake together), in milliseconds
/// (more than 0, at most 365 days).
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_connect_timeout_ms(
    config: *mut noxy_config,
    timeout_ms: u64,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            c.config.connect_timeout = millis("connect_timeout", timeout_ms, true)?;
            Ok(())
        })
    }
}

/// Sets the deadline of every single RPC attempt, in milliseconds (more than 0, at most 365
/// days).
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_request_timeout_ms(
    config: *mut noxy_config,
    timeout_ms: u64,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            c.config.request_timeout = millis("request_timeout", timeout_ms, true)?;
            Ok(())
        })
    }
}

/// Caps the attempts per call for transient failures, including the first: 1 disables retries,
/// 0 removes the cap (the default: only the retry budget bounds retries). A retried
/// RouteDecision keeps its request id.
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_max_attempts(
    config: *mut noxy_config,
    max_attempts: u32,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            c.config.retry.max_attempts = (max_attempts != 0).then_some(max_attempts);
            Ok(())
        })
    }
}

/// Sets the pause between retries: `initial_ms` before the second attempt, multiplied by
/// `multiplier` (at least 1) after each retry, capped at `max_ms` (not below `initial_ms`),
/// with a `jitter` fraction in [0, 1] randomised away.
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_retry_backoff(
    config: *mut noxy_config,
    initial_ms: u64,
    multiplier: f64,
    max_ms: u64,
    jitter: f64,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            let initial = millis("retry.initial_backoff", initial_ms, true)?;
            check_multiplier("retry.multiplier", multiplier)?;
            let max = millis("retry.max_backoff", max_ms, false)?;
            if max < initial {
                return Err(Error::invalid_argument(
                    "retry.max_backoff",
                    "must not be shorter than retry.initial_backoff",
                ));
            }
            check_jitter("retry.jitter", jitter)?;
            c.config.retry.initial_backoff = initial;
            c.config.retry.multiplier = multiplier;
            c.config.retry.max_backoff = max;
            c.config.retry.jitter = jitter;
            Ok(())
        })
    }
}

/// Sets the number of runtime worker threads of the client (1 to 64; default 2).
///
/// # Safety
/// `config` is NULL or a live `noxy_config`.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_worker_threads(
    config: *mut noxy_config,
    worker_threads: u32,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            if !(1..=64).contains(&worker_threads) {
                return Err(Error::invalid_argument(
                    "worker_threads",
                    "must be between 1 and 64",
                ));
            }
            c.worker_threads = worker_threads;
            Ok(())
        })
    }
}

/// Sets the retry budget, in milliseconds (at most 365 days; default 30 000): a transient
/// failure (the relay unreachable, a lost connection, UNAVAILABLE, the relay's ERROR delivery
/// status) is retried with backoff as long as the next attempt would start within this time of
/// the call's first attempt. 0 disables retries. Polls while waiting are retried within the
/// wait budget instead.
/// `config` is borrowed for the call. Any thread, one thread at a time per object.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_retry_budget_ms(
    config: *mut noxy_config,
    budget_ms: u64,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            c.config.retry.budget = millis("retry.budget", budget_ms, false)?;
            Ok(())
        })
    }
}

/// Sets how many RPCs the client keeps in flight on its connection at once (1 to 10 000;
/// default 100). Further calls wait their turn, so thousands of waiting decisions never flood
/// the relay; the relay's own limit on concurrent streams is honoured too.
/// `config` is borrowed for the call. Any thread, one thread at a time per object.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_max_concurrent_requests(
    config: *mut noxy_config,
    max_requests: u32,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            let limit = crate::config::MAX_CONCURRENT_REQUESTS_LIMIT;
            if !(1..=limit).contains(&max_requests) {
                return Err(Error::invalid_argument(
                    "max_concurrent_requests",
                    format!("must be 1 to {limit}"),
                ));
            }
            c.config.max_concurrent_requests = max_requests;
            Ok(())
        })
    }
}

/// With `shared` = 1, clients created from this configuration use one process-wide runtime and
/// completion thread instead of their own (a host with a client per tenant then has 3 library
/// threads, not 3 per client); 0 (the default) gives the client its own. The first client that
/// needs the process-wide runtime creates it with this configuration's worker count; it stops
/// when no client uses it. Clients on it share one completion thread, so a slow callback of
/// one delays the callbacks of the others. Other values are `NOXY_ERROR_INVALID_ARGUMENT`.
/// `config` is borrowed for the call. Any thread, one thread at a time per object.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_shared_runtime(
    config: *mut noxy_config,
    shared: i32,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            c.shared_runtime = match shared {
                0 => false,
                1 => true,
                _ => return Err(Error::invalid_argument("shared", "must be 0 or 1")),
            };
            Ok(())
        })
    }
}

/// Gives clients created from this configuration their own log callback: their events go to
/// `callback` (up to `max_level`) instead of the process-wide one (`noxy_set_log_callback`),
/// so that two components in one process each get their own logs. The callback rules are
/// those of `noxy_log_callback`. A NULL `callback` or `NOXY_LOG_OFF` removes it (the clients
/// then use the process-wide callback), and then the library takes nothing: `free_user_data`
/// is never called for this `user_data`. A `max_level` outside 0..5 is
/// `NOXY_ERROR_INVALID_ARGUMENT`, and then too the library takes nothing.
///
/// Ownership of `user_data`: once set, the library calls `free_user_data(user_data)` (unless
/// NULL) exactly once, on any thread, after the config has been freed or given another
/// callback and every client created with it has been released, and after the last call of
/// `callback` returned.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`; `callback` and `free_user_data`, if not NULL, may
/// be called from any thread with `user_data` as described.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_log_callback(
    config: *mut noxy_config,
    callback: noxy_log_callback,
    user_data: *mut c_void,
    free_user_data: noxy_free_user_data,
    max_level: i32,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(config, "config", |c| {
            c.log_sink = Sink::new(callback, user_data, free_user_data, max_level)?;
            Ok(())
        })
    }
}

/// Sets the `user-agent` sent with every call (visible ASCII). Copied.
/// `config` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `config` is NULL or a live `noxy_config`; `user_agent` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn noxy_config_set_user_agent(
    config: *mut noxy_config,
    user_agent: *const c_char,
) -> *mut noxy_error {
    // SAFETY: forwarded contract on both pointers.
    unsafe {
        set(config, "config", |c| {
            c.config.user_agent = str_arg(user_agent, "user_agent")?.to_owned();
            Ok(())
        })
    }
}

// ---- noxy_wait_options ----

/// New wait options with the relay SDKs' defaults. Never NULL. The caller owns them:
/// `noxy_wait_options_free`.
/// Any thread.
#[no_mangle]
pub extern "C" fn noxy_wait_options_new() -> *mut noxy_wait_options {
    Box::into_raw(Box::new(noxy_wait_options {
        options: WaitOptions::default(),
    }))
}

/// Frees wait options. NULL is a no-op.
/// Any thread, once no other thread uses the object.
///
/// # Safety
/// `options` is NULL or a `noxy_wait_options` that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_wait_options_free(options: *mut noxy_wait_options) {
    // SAFETY: forwarded contract: NULL or an unfreed object from Box::into_raw.
    guard_value((), || unsafe { free_boxed(options) })
}

/// Sets the pause after the first poll, in milliseconds (more than 0, at most 365 days).
/// `options` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `options` is NULL or a live `noxy_wait_options`.
#[no_mangle]
pub unsafe extern "C" fn noxy_wait_options_set_initial_interval_ms(
    options: *mut noxy_wait_options,
    interval_ms: u64,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(options, "options", |o| {
            o.options.initial_interval = millis("initial_interval", interval_ms, true)?;
            Ok(())
        })
    }
}

/// Sets the growth of the pause between polls (finite, at least 1).
/// `options` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `options` is NULL or a live `noxy_wait_options`.
#[no_mangle]
pub unsafe extern "C" fn noxy_wait_options_set_multiplier(
    options: *mut noxy_wait_options,
    multiplier: f64,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(options, "options", |o| {
            check_multiplier("multiplier", multiplier)?;
            o.options.multiplier = multiplier;
            Ok(())
        })
    }
}

/// Sets the longest pause between polls, in milliseconds (at most 365 days; not below the
/// initial interval, which the call checks).
/// `options` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `options` is NULL or a live `noxy_wait_options`.
#[no_mangle]
pub unsafe extern "C" fn noxy_wait_options_set_max_interval_ms(
    options: *mut noxy_wait_options,
    interval_ms: u64,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(options, "options", |o| {
            o.options.max_interval = millis("max_interval", interval_ms, false)?;
            Ok(())
        })
    }
}

/// Sets the whole wait's budget, in milliseconds (at most 365 days); then
/// `NOXY_ERROR_WAIT_TIMED_OUT`. 0 gives up at once. The budget is never overrun.
/// `options` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `options` is NULL or a live `noxy_wait_options`.
#[no_mangle]
pub unsafe extern "C" fn noxy_wait_options_set_max_wait_ms(
    options: *mut noxy_wait_options,
    max_wait_ms: u64,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(options, "options", |o| {
            o.options.max_wait = millis("max_wait", max_wait_ms, false)?;
            Ok(())
        })
    }
}

/// Sets the fraction in [0, 1] of each pause that is randomised downwards.
/// `options` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `options` is NULL or a live `noxy_wait_options`.
#[no_mangle]
pub unsafe extern "C" fn noxy_wait_options_set_jitter(
    options: *mut noxy_wait_options,
    jitter: f64,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(options, "options", |o| {
            check_jitter("jitter", jitter)?;
            o.options.jitter = jitter;
            Ok(())
        })
    }
}

// ---- noxy_send_options ----

/// New send options: random ids, the client's TTL. Never NULL. The caller owns them:
/// `noxy_send_options_free`.
/// Any thread.
#[no_mangle]
pub extern "C" fn noxy_send_options_new() -> *mut noxy_send_options {
    Box::into_raw(Box::new(noxy_send_options {
        options: SendOptions::default(),
    }))
}

/// Frees send options. NULL is a no-op.
/// Any thread, once no other thread uses the object.
///
/// # Safety
/// `options` is NULL or a `noxy_send_options` that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_options_free(options: *mut noxy_send_options) {
    // SAFETY: forwarded contract: NULL or an unfreed object from Box::into_raw.
    guard_value((), || unsafe { free_boxed(options) })
}

/// Sets an idempotency key (non-empty UTF-8; NULL removes it): the decision id and request ids
/// are then derived from the relay endpoint, the identity, the key, the SHA-256 of the exact
/// payload bytes and the TTL (never from the app token), so re-sending the same decision after
/// a crash yields the relay's existing decision instead of a second prompt, while the same key
/// with a different payload or TTL is a new decision the person sees and answers anew. Copied.
/// `options` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `options` is NULL or a live `noxy_send_options`; `key` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_options_set_idempotency_key(
    options: *mut noxy_send_options,
    key: *const c_char,
) -> *mut noxy_error {
    // SAFETY: forwarded contract on both pointers.
    unsafe {
        set(options, "options", |o| {
            o.options.idempotency_key = if key.is_null() {
                None
            } else {
                let key = str_arg(key, "idempotency_key")?;
                if key.is_empty() {
                    return Err(Error::invalid_argument("idempotency_key", "is empty"));
                }
                Some(key.to_owned())
            };
            Ok(())
        })
    }
}

/// Overrides the client's decision TTL for this decision (at least 1; 0 restores the
/// client's TTL).
/// `options` is borrowed for the call (strings are copied). Any thread, one thread at a time per
/// object: it is not synchronised.
///
/// # Safety
/// `options` is NULL or a live `noxy_send_options`.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_options_set_ttl_seconds(
    options: *mut noxy_send_options,
    ttl_seconds: u32,
) -> *mut noxy_error {
    // SAFETY: forwarded contract.
    unsafe {
        set(options, "options", |o| {
            o.options.ttl_seconds = (ttl_seconds != 0).then_some(ttl_seconds);
            Ok(())
        })
    }
}
