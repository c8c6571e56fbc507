//! Target `c_abi`: the C ABI driven the way a host drives it, with hostile arguments: config
//! setters (strings with invalid UTF-8 and embedded NULs, CA PEM text and files, durations up
//! to `UINT64_MAX`, multipliers and jitter including NaN and infinities), `noxy_client_new`,
//! log callbacks (per client and process-wide), wait and send options, and every call, blocking
//! and `_async`, with arbitrary identity ids, decision ids and payload bytes.
//!
//! Network-free: the calls go to a client whose endpoint is loopback and that was closed with
//! `noxy_client_close`, so each call checks its arguments fully and then fails with CANCELLED
//! before anything is sent (`src/ffi/calls.rs`: every call parses and checks every argument
//! before `block_on` or `start`, which refuse a closed client). A client created from the
//! fuzzed configuration is closed and released at once, before any call; clients connect
//! lazily, so none connects.
//!
//! Checked on every input (a violation panics, or aborts inside a callback):
//! - every fallible call returns NULL or an error whose code is 1..13, with a UTF-8 message;
//!   error accessors (deliveries included, out of range too) never crash;
//! - a call on the closed client never succeeds; CANCELLED only after every argument passed
//!   the checks a host can predict (non-NULL, UTF-8, non-empty, a valid payload, non-NULL
//!   out-parameter or callback); an argument that fails them is INVALID_ARGUMENT or
//!   INVALID_PAYLOAD, never CANCELLED;
//! - outputs are untouched on failure; an async call that failed never calls back, and the
//!   closed client has no operation outstanding (`noxy_client_drain(client, 0)` is NULL);
//! - setters return INVALID_ARGUMENT for what the header says is invalid (NaN, infinities, a
//!   multiplier below 1, jitter outside 0..1, durations above 365 days, zero where "more than
//!   0" is required, bad log levels), and NULL for what it says is valid;
//! - log callbacks get a UTF-8 message at a level up to the registered one, and every
//!   `user_data` the library took is released exactly once (a bounded wait at the end of the
//!   input), never used after.
//! - accessors given NULL return the documented invalid values; name functions return static
//!   UTF-8 strings for any number.

use std::ffi::{c_char, c_void, CStr};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use noxy::ffi::*;
use noxy::Payload;

const INVALID_ARGUMENT: i32 = 1;
const INVALID_PAYLOAD: i32 = 2;
const CANCELLED: i32 = 10;
/// 365 days in milliseconds: the longest duration a setter accepts.
const MAX_MS: u64 = 365 * 24 * 60 * 60 * 1000;

// ---- fuzzed arguments ----

/// A string argument: NULL, raw bytes (invalid UTF-8 and embedded NULs included; a NUL is
/// appended, and the library reads up to the first one), or UTF-8 text.
#[derive(Debug, Arbitrary)]
enum StrArg {
    Null,
    Bytes(Vec<u8>),
    Text(String),
}

/// A NUL-terminated copy of a string argument, alive while the call runs.
struct CArg(Option<Vec<u8>>);

impl CArg {
    fn new(arg: &StrArg) -> CArg {
        let bytes = match arg {
            StrArg::Null => return CArg(None),
            StrArg::Bytes(bytes) => bytes.clone(),
            StrArg::Text(text) => text.clone().into_bytes(),
        };
        let mut bytes = bytes;
        bytes.push(0);
        CArg(Some(bytes))
    }

    fn ptr(&self) -> *const c_char {
        self.0
            .as_ref()
            .map_or(ptr::null(), |b| b.as_ptr().cast::<c_char>())
    }

    /// What the library reads: up to the first NUL, as UTF-8; None for NULL or invalid UTF-8.
    fn text(&self) -> Option<&str> {
        let bytes = self.0.as_ref()?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end]).ok()
    }

    /// Non-NULL, UTF-8 and not empty: what every id argument needs.
    fn is_plain(&self) -> bool {
        self.text().is_some_and(|t| !t.is_empty())
    }
}

/// A payload argument: NULL with a length, or bytes (often text that is nearly an object).
#[derive(Debug, Arbitrary)]
enum PayloadArg {
    Null { len: u8 },
    Bytes(Vec<u8>),
    Object { key: String, value: String },
    Text(String),
}

struct CPayload {
    bytes: Option<Vec<u8>>,
    len: usize,
}

impl CPayload {
    fn new(arg: &PayloadArg) -> CPayload {
        match arg {
            PayloadArg::Null { len } => CPayload {
                bytes: None,
                len: usize::from(*len),
            },
            PayloadArg::Bytes(bytes) => CPayload {
                len: bytes.len(),
                bytes: Some(bytes.clone()),
            },
            PayloadArg::Object { key, value } => {
                let text = format!(
                    "{{{}:{}}}",
                    serde_json::Value::from(key.as_str()),
                    serde_json::Value::from(value.as_str())
                );
                CPayload {
                    len: text.len(),
                    bytes: Some(text.into_bytes()),
                }
            }
            PayloadArg::Text(text) => CPayload {
                len: text.len(),
                bytes: Some(text.clone().into_bytes()),
            },
        }
    }

    fn ptr(&self) -> *const c_char {
        self.bytes
            .as_ref()
            .map_or(ptr::null(), |b| b.as_ptr().cast::<c_char>())
    }

    /// Whether the library must accept this payload argument (the Rust API's verdict).
    fn is_valid(&self) -> bool {
        match &self.bytes {
            Some(bytes) => Payload::from_json_bytes(bytes).is_ok(),
            None => self.len == 0 && Payload::from_json_bytes(&[]).is_ok(),
        }
    }
}

/// A duration in milliseconds, mostly near the edges.
#[derive(Debug, Arbitrary)]
enum Ms {
    Zero,
    One,
    Year,
    YearPlusOne,
    Max,
    Small(u16),
    Any(u64),
}

impl Ms {
    fn get(&self) -> u64 {
        match *self {
            Ms::Zero => 0,
            Ms::One => 1,
            Ms::Year => MAX_MS,
            Ms::YearPlusOne => MAX_MS + 1,
            Ms::Max => u64::MAX,
            Ms::Small(v) => u64::from(v),
            Ms::Any(v) => v,
        }
    }
}

/// A float, mostly special.
#[derive(Debug, Arbitrary)]
enum F64 {
    Nan,
    Inf,
    NegInf,
    NegZero,
    Zero,
    Half,
    One,
    JustBelowOne,
    Two,
    Huge,
    Subnormal,
    Bits(u64),
}

impl F64 {
    fn get(&self) -> f64 {
        match *self {
            F64::Nan => f64::NAN,
            F64::Inf => f64::INFINITY,
            F64::NegInf => f64::NEG_INFINITY,
            F64::NegZero => -0.0,
            F64::Zero => 0.0,
            F64::Half => 0.5,
            F64::One => 1.0,
            F64::JustBelowOne => 1.0 - f64::EPSILON,
            F64::Two => 2.0,
            F64::Huge => f64::MAX,
            F64::Subnormal => f64::from_bits(1),
            F64::Bits(bits) => f64::from_bits(bits),
        }
    }
}

fn multiplier_ok(m: f64) -> bool {
    m.is_finite() && m >= 1.0
}

fn jitter_ok(j: f64) -> bool {
    (0.0..=1.0).contains(&j)
}

/// Where `noxy_config_set_ca_pem_file` reads from: never an arbitrary path (a FIFO or
/// `/dev/zero` would hang or exhaust the fuzzer, not the library).
#[derive(Debug, Arbitrary)]
enum PemPath {
    Null,
    Missing,
    Directory,
    /// A file holding these bytes.
    File(Vec<u8>),
    /// A path that is not UTF-8.
    NotUtf8(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum ConfigOp {
    Endpoint(StrArg),
    AppToken(StrArg),
    DecisionTtl(u32),
    CaPem(StrArg),
    CaPemFile(PemPath),
    ConnectTimeout(Ms),
    RequestTimeout(Ms),
    MaxAttempts(u32),
    RetryBackoff {
        initial: Ms,
        multiplier: F64,
        max: Ms,
        jitter: F64,
    },
    WorkerThreads(u8),
    RetryBudget(Ms),
    MaxConcurrent(u32),
    SharedRuntime(i32),
    LogCallback {
        enabled: bool,
        max_level: i8,
    },
    UserAgent(StrArg),
    /// A setter given a NULL config.
    NullConfig(u8),
}

#[derive(Debug, Arbitrary)]
enum WaitOp {
    InitialInterval(Ms),
    Multiplier(F64),
    MaxInterval(Ms),
    MaxWait(Ms),
    Jitter(F64),
}

#[derive(Debug, Arbitrary)]
enum SendOp {
    IdempotencyKey(StrArg),
    Ttl(u32),
}

/// How a call is made.
#[derive(Debug, Arbitrary, Clone, Copy)]
enum Mode {
    /// Blocking, with an out-parameter (or NULL for it).
    Blocking { null_out: bool },
    /// `_async`, with or without an operation out-parameter, with or without a callback.
    Async {
        want_operation: bool,
        null_callback: bool,
    },
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Target {
    Closed,
    Null,
}

#[derive(Debug, Arbitrary)]
enum CallOp {
    SendDecision {
        identity: StrArg,
        payload: PayloadArg,
        options: bool,
        mode: Mode,
        target: Target,
    },
    SendAndWait {
        identity: StrArg,
        payload: PayloadArg,
        send_options: bool,
        wait_options: bool,
        mode: Mode,
        target: Target,
    },
    WaitForOutcome {
        decision: StrArg,
        identity: StrArg,
        options: bool,
        mode: Mode,
        target: Target,
    },
    GetDecisionOutcome {
        decision: StrArg,
        identity: StrArg,
        mode: Mode,
        target: Target,
    },
    GetQuota {
        mode: Mode,
        target: Target,
    },
    GetIdentityDevices {
        identity: StrArg,
        mode: Mode,
        target: Target,
    },
    Close(Target),
    Drain {
        target: Target,
        timeout_ms: u8,
    },
    CancelNullOperation,
}

#[derive(Debug, Arbitrary)]
enum GlobalLogOp {
    Keep,
    Set { max_level: i8 },
    Disable { max_level: i8 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    global_log: GlobalLogOp,
    config: Vec<ConfigOp>,
    create_client: bool,
    wait_options: Vec<WaitOp>,
    send_options: Vec<SendOp>,
    calls: Vec<CallOp>,
    names: (i32, i32, i32),
}

// ---- the invariants ----

/// Fails the input (inside a callback a panic cannot unwind into the library: abort).
fn violation(what: &str) -> ! {
    eprintln!("c_abi contract violation: {what}");
    std::process::abort();
}

/// Checks an error returned by a fallible call (every accessor, deliveries included), frees
/// it, and returns its code (0 for NULL).
fn take_error(error: *mut noxy_error) -> i32 {
    if error.is_null() {
        return 0;
    }
    // SAFETY: a non-NULL error this library just returned, owned by us until freed below.
    let code = unsafe { noxy_error_code(error) } as i32;
    if !(1..=13).contains(&code) {
        violation(&format!("an error with code {code}"));
    }
    // SAFETY: as above; the message is borrowed from the live error.
    let message = unsafe { noxy_error_message(error) };
    if message.is_null() {
        violation("an error with a NULL message");
    }
    // SAFETY: non-NULL, NUL-terminated per the header, valid until noxy_error_free.
    if unsafe { CStr::from_ptr(message) }.to_str().is_err() {
        violation("an error message that is not UTF-8");
    }
    // SAFETY: as above.
    let count = unsafe { noxy_error_delivery_count(error) };
    for index in 0..=count {
        // SAFETY: as above; out-of-range indexes are part of the contract (NULL).
        let delivery = unsafe { noxy_error_delivery(error, index) };
        if (index == count) != delivery.is_null() {
            violation("noxy_error_delivery disagrees with noxy_error_delivery_count");
        }
        if !delivery.is_null() {
            // SAFETY: a delivery borrowed from the live error.
            unsafe { read_delivery(delivery) };
        }
    }
    // SAFETY: the error was returned to us and is freed once.
    unsafe { noxy_error_free(error) };
    code
}

/// Reads every accessor of a delivery.
///
/// # Safety
/// `delivery` is a live delivery.
unsafe fn read_delivery(delivery: *const noxy_delivery) {
    // SAFETY: forwarded contract.
    unsafe {
        for text in [
            noxy_delivery_device_id(delivery),
            noxy_delivery_request_id(delivery),
            noxy_delivery_decision_id(delivery),
            noxy_delivery_error_message(delivery),
        ] {
            if !text.is_null() && CStr::from_ptr(text).to_str().is_err() {
                violation("a delivery string that is not UTF-8");
            }
        }
        let status = noxy_delivery_status(delivery) as i32;
        if !(0..=4).contains(&status) {
            violation("a delivery status out of range");
        }
        let code = noxy_delivery_error_code(delivery) as i32;
        if !(0..=13).contains(&code) {
            violation("a delivery error code out of range");
        }
    }
}

/// A setter's result: NULL when `valid`, else INVALID_ARGUMENT.
fn expect_setter(error: *mut noxy_error, valid: bool, what: &str) {
    let code = take_error(error);
    let expected = if valid { 0 } else { INVALID_ARGUMENT };
    if code != expected {
        violation(&format!("{what}: code {code}, expected {expected}"));
    }
}

/// A setter whose validity the header leaves to the library: NULL or INVALID_ARGUMENT.
fn expect_setter_any(error: *mut noxy_error, what: &str) -> bool {
    match take_error(error) {
        0 => true,
        INVALID_ARGUMENT => false,
        code => violation(&format!("{what}: code {code}")),
    }
}

// ---- log callbacks ----

/// What a log registration's `user_data` points to.
struct LogData {
    max_level: i32,
}

/// `user_data` the library owns and has not released yet.
static LOG_OWNED: AtomicI64 = AtomicI64::new(0);
static LOG_CALLS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn log_callback(
    level: noxy_log_level,
    message: *const c_char,
    user_data: *mut c_void,
) {
    // SAFETY: user_data is the LogData registered with this callback, which the library
    // releases (free_log_data) only after the last call; ASan reports any use after that.
    let data = unsafe { &*user_data.cast::<LogData>() };
    let level = level as i32;
    if !(1..=data.max_level).contains(&level) {
        violation(&format!(
            "a log event at level {level} above {}",
            data.max_level
        ));
    }
    if message.is_null() {
        violation("a NULL log message");
    }
    // SAFETY: non-NULL, NUL-terminated, valid during the call (the header).
    if unsafe { CStr::from_ptr(message) }.to_str().is_err() {
        violation("a log message that is not UTF-8");
    }
    LOG_CALLS.fetch_add(1, Ordering::Relaxed);
}

unsafe extern "C" fn free_log_data(user_data: *mut c_void) {
    // SAFETY: a LogData from Box::into_raw in `log_data`, released once by the library.
    drop(unsafe { Box::from_raw(user_data.cast::<LogData>()) });
    if LOG_OWNED.fetch_sub(1, Ordering::SeqCst) <= 0 {
        violation("free_user_data called more often than the library took user_data");
    }
}

fn log_data(max_level: i32) -> *mut c_void {
    Box::into_raw(Box::new(LogData { max_level })).cast()
}

/// After a registration call: the library took `user_data` on success with a callback and a
/// level above OFF; otherwise the data is still ours.
fn settle_log_registration(
    error: *mut noxy_error,
    user_data: *mut c_void,
    level: i32,
    enabled: bool,
    what: &str,
) {
    let valid = (0..=5).contains(&level);
    expect_setter(error, valid, what);
    if valid && enabled && level > 0 {
        LOG_OWNED.fetch_add(1, Ordering::SeqCst);
    } else {
        // SAFETY: not taken by the library: still our Box.
        drop(unsafe { Box::from_raw(user_data.cast::<LogData>()) });
    }
}

/// Waits (bounded) until the library released every `user_data` it took.
fn wait_log_data_released() {
    let deadline = Instant::now() + Duration::from_secs(20);
    while LOG_OWNED.load(Ordering::SeqCst) != 0 {
        if Instant::now() > deadline {
            violation(&format!(
                "{} log user_data never released",
                LOG_OWNED.load(Ordering::SeqCst)
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---- async callbacks: none may run (the closed client starts nothing) ----

static CALLBACKS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn on_decision(
    _: *mut c_void,
    error: *mut noxy_error,
    result: *mut noxy_decision_result,
) {
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
    take_error(error);
    // SAFETY: the callback owns the result (NULL or live) and frees it once.
    unsafe { noxy_decision_result_free(result) };
}

unsafe extern "C" fn on_send(
    _: *mut c_void,
    error: *mut noxy_error,
    result: *mut noxy_send_result,
) {
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
    take_error(error);
    // SAFETY: the callback owns the result (NULL or live) and frees it once.
    unsafe { noxy_send_result_free(result) };
}

unsafe extern "C" fn on_quota(_: *mut c_void, error: *mut noxy_error, result: *mut noxy_quota) {
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
    take_error(error);
    // SAFETY: the callback owns the result (NULL or live) and frees it once.
    unsafe { noxy_quota_free(result) };
}

unsafe extern "C" fn on_devices(_: *mut c_void, error: *mut noxy_error, result: *mut noxy_devices) {
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
    take_error(error);
    // SAFETY: the callback owns the result (NULL or live) and frees it once.
    unsafe { noxy_devices_free(result) };
}

// ---- the closed client ----

struct ClosedClient(*mut noxy_client);
// SAFETY: a noxy_client is thread-safe (the header); the pointer is only passed to the library.
unsafe impl Send for ClosedClient {}
// SAFETY: as above.
unsafe impl Sync for ClosedClient {}

/// One client for the whole run: loopback endpoint, closed before any call.
fn closed_client() -> *mut noxy_client {
    static CLIENT: OnceLock<ClosedClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let config = noxy_config_new();
            let endpoint = c"https://127.0.0.1:9";
            let token = c"fuzz-token";
            // SAFETY: a live config and NUL-terminated strings; errors are checked and freed.
            unsafe {
                assert_eq!(
                    take_error(noxy_config_set_endpoint(config, endpoint.as_ptr())),
                    0
                );
                assert_eq!(
                    take_error(noxy_config_set_app_token(config, token.as_ptr())),
                    0
                );
                assert_eq!(take_error(noxy_config_set_shared_runtime(config, 1)), 0);
            }
            let mut client = ptr::null_mut();
            // SAFETY: a live config and a writable out-parameter.
            let error = unsafe { noxy_client_new(config, &mut client) };
            assert_eq!(take_error(error), 0, "the fuzzer's own client");
            // SAFETY: the config is ours and freed once; the client is live.
            unsafe {
                noxy_config_free(config);
                assert_eq!(take_error(noxy_client_close(client)), 0);
            }
            ClosedClient(client)
        })
        .0
}

fn target_ptr(target: Target) -> *const noxy_client {
    match target {
        Target::Closed => closed_client(),
        Target::Null => ptr::null(),
    }
}

// ---- the target ----

/// The target's body.
pub fn run(data: &[u8]) {
    let input = Unstructured::new(data);
    let Ok(input) = Input::arbitrary_take_rest(input) else {
        return;
    };
    let client = closed_client();
    let callbacks_before = CALLBACKS.load(Ordering::SeqCst);

    global_log(&input.global_log);
    build_client(&input.config, input.create_client);

    let wait_options = noxy_wait_options_new();
    for op in &input.wait_options {
        // SAFETY: a live wait options object.
        unsafe { wait_op(wait_options, op) };
    }
    let send_options = noxy_send_options_new();
    for op in &input.send_options {
        // SAFETY: a live send options object.
        unsafe { send_op(send_options, op) };
    }
    for op in &input.calls {
        // SAFETY: live options objects; the closed client lives for the whole run.
        unsafe { call(op, send_options, wait_options) };
    }
    // SAFETY: ours, freed once.
    unsafe {
        noxy_wait_options_free(wait_options);
        noxy_send_options_free(send_options);
    }

    // Nothing was started on the closed client, so nothing is outstanding or called back.
    // SAFETY: the live closed client.
    let drained = take_error(unsafe { noxy_client_drain(client, 0) });
    if drained != 0 {
        violation(&format!(
            "noxy_client_drain on the closed client: code {drained}"
        ));
    }
    if CALLBACKS.load(Ordering::SeqCst) != callbacks_before {
        violation("a callback ran for a call that failed");
    }

    // Back to no process-wide logger; every user_data the library took is released.
    // SAFETY: disabling takes no callback.
    expect_setter(
        unsafe { noxy_set_log_callback(None, ptr::null_mut(), None, 0) },
        true,
        "disable logging",
    );
    wait_log_data_released();

    names(input.names);
    null_accessors();
}

fn global_log(op: &GlobalLogOp) {
    let (level, enabled) = match *op {
        GlobalLogOp::Keep => return,
        GlobalLogOp::Set { max_level } => (i32::from(max_level), true),
        GlobalLogOp::Disable { max_level } => (i32::from(max_level), false),
    };
    let data = log_data(level);
    let callback: noxy_log_callback = if enabled { Some(log_callback) } else { None };
    // SAFETY: the callback and free function may run on any thread with `data` (a LogData).
    let error = unsafe { noxy_set_log_callback(callback, data, Some(free_log_data), level) };
    settle_log_registration(error, data, level, enabled, "noxy_set_log_callback");
}

/// Applies the config operations, then (if asked) creates a client from the config, closes it
/// and releases it at once.
fn build_client(ops: &[ConfigOp], create: bool) {
    let config = noxy_config_new();
    let mut pem_file = None;
    for op in ops {
        // SAFETY: a live config.
        unsafe { config_op(config, op, &mut pem_file) };
    }
    if create {
        let sentinel = NonNull::<noxy_client>::dangling().as_ptr();
        let mut client = sentinel;
        // SAFETY: a live config and a writable out-parameter.
        let code = take_error(unsafe { noxy_client_new(config, &mut client) });
        match code {
            0 => {
                if client == sentinel || client.is_null() {
                    violation("noxy_client_new succeeded without writing the client");
                }
                // SAFETY: the client just created, ours; released once.
                unsafe {
                    expect_setter(noxy_client_close(client), true, "noxy_client_close");
                    expect_setter(noxy_client_drain(client, 0), true, "noxy_client_drain");
                    noxy_free(client);
                }
            }
            INVALID_ARGUMENT => {
                if client != sentinel {
                    violation("noxy_client_new wrote its output on failure");
                }
            }
            other => violation(&format!("noxy_client_new: code {other}")),
        }
    }
    // NULL config and NULL out-parameter.
    let mut client = ptr::null_mut();
    // SAFETY: NULL arguments are part of the contract.
    unsafe {
        expect_setter(
            noxy_client_new(ptr::null(), &mut client),
            false,
            "noxy_client_new(NULL)",
        );
        expect_setter(
            noxy_client_new(config, ptr::null_mut()),
            false,
            "noxy_client_new(.., NULL)",
        );
        noxy_config_free(config);
    }
    if let Some(path) = pem_file {
        let _ = std::fs::remove_file(path);
    }
}

/// # Safety
/// `config` is a live config.
unsafe fn config_op(
    config: *mut noxy_config,
    op: &ConfigOp,
    pem_file: &mut Option<std::path::PathBuf>,
) {
    // SAFETY (every call below): `config` is live and used by this thread only; string
    // arguments are NUL-terminated buffers alive for the call.
    unsafe {
        match op {
            ConfigOp::Endpoint(arg) => {
                let arg = CArg::new(arg);
                expect_setter(
                    noxy_config_set_endpoint(config, arg.ptr()),
                    arg.text().is_some(),
                    "endpoint",
                );
            }
            ConfigOp::AppToken(arg) => {
                let arg = CArg::new(arg);
                expect_setter(
                    noxy_config_set_app_token(config, arg.ptr()),
                    arg.text().is_some(),
                    "app_token",
                );
            }
            ConfigOp::DecisionTtl(seconds) => {
                expect_setter_any(
                    noxy_config_set_decision_ttl_seconds(config, *seconds),
                    "decision_ttl",
                );
            }
            ConfigOp::CaPem(arg) => {
                let arg = CArg::new(arg);
                let valid = arg.0.is_none() || arg.text().is_some();
                expect_setter(noxy_config_set_ca_pem(config, arg.ptr()), valid, "ca_pem");
            }
            ConfigOp::CaPemFile(path) => {
                let (arg, valid) = match path {
                    PemPath::Null => (CArg(None), false),
                    PemPath::Missing => (
                        CArg::new(&StrArg::Text("/nonexistent/noxy-fuzz.pem".into())),
                        false,
                    ),
                    PemPath::Directory => (CArg::new(&StrArg::Text("/".into())), false),
                    PemPath::NotUtf8(bytes) => {
                        let mut bytes = bytes.clone();
                        bytes.retain(|&b| b != 0);
                        bytes.insert(0, 0xff);
                        (CArg::new(&StrArg::Bytes(bytes)), false)
                    }
                    PemPath::File(contents) => {
                        let path = std::env::temp_dir()
                            .join(format!("noxy-fuzz-{}.pem", std::process::id()));
                        std::fs::write(&path, contents).expect("writing the fuzzer's PEM file");
                        let text = path.to_str().expect("a UTF-8 temporary path").to_owned();
                        *pem_file = Some(path);
                        (
                            CArg::new(&StrArg::Text(text)),
                            std::str::from_utf8(contents).is_ok(),
                        )
                    }
                };
                expect_setter(
                    noxy_config_set_ca_pem_file(config, arg.ptr()),
                    valid,
                    "ca_pem_file",
                );
            }
            ConfigOp::ConnectTimeout(ms) => {
                let ms = ms.get();
                expect_setter(
                    noxy_config_set_connect_timeout_ms(config, ms),
                    (1..=MAX_MS).contains(&ms),
                    "connect_timeout",
                );
            }
            ConfigOp::RequestTimeout(ms) => {
                let ms = ms.get();
                expect_setter(
                    noxy_config_set_request_timeout_ms(config, ms),
                    (1..=MAX_MS).contains(&ms),
                    "request_timeout",
                );
            }
            ConfigOp::MaxAttempts(n) => {
                expect_setter_any(noxy_config_set_max_attempts(config, *n), "max_attempts");
            }
            ConfigOp::RetryBackoff {
                initial,
                multiplier,
                max,
                jitter,
            } => {
                let (initial, multiplier, max, jitter) =
                    (initial.get(), multiplier.get(), max.get(), jitter.get());
                let accepted = expect_setter_any(
                    noxy_config_set_retry_backoff(config, initial, multiplier, max, jitter),
                    "retry_backoff",
                );
                let invalid = initial == 0
                    || initial > MAX_MS
                    || max > MAX_MS
                    || !multiplier_ok(multiplier)
                    || !jitter_ok(jitter);
                if accepted && invalid {
                    violation(&format!(
                        "retry_backoff accepted initial {initial} multiplier {multiplier} max {max} jitter {jitter}"
                    ));
                }
            }
            ConfigOp::WorkerThreads(n) => {
                let n = u32::from(*n);
                expect_setter(
                    noxy_config_set_worker_threads(config, n),
                    (1..=64).contains(&n),
                    "worker_threads",
                );
            }
            ConfigOp::RetryBudget(ms) => {
                let ms = ms.get();
                let accepted =
                    expect_setter_any(noxy_config_set_retry_budget_ms(config, ms), "retry_budget");
                if accepted && ms > MAX_MS {
                    violation("retry_budget accepted more than 365 days");
                }
            }
            ConfigOp::MaxConcurrent(n) => {
                let accepted = expect_setter_any(
                    noxy_config_set_max_concurrent_requests(config, *n),
                    "max_concurrent_requests",
                );
                if accepted && *n == 0 {
                    violation("max_concurrent_requests accepted 0");
                }
            }
            ConfigOp::SharedRuntime(flag) => {
                expect_setter(
                    noxy_config_set_shared_runtime(config, *flag),
                    matches!(flag, 0 | 1),
                    "shared_runtime",
                );
            }
            ConfigOp::LogCallback { enabled, max_level } => {
                let level = i32::from(*max_level);
                let data = log_data(level);
                let callback: noxy_log_callback = if *enabled { Some(log_callback) } else { None };
                let error = noxy_config_set_log_callback(
                    config,
                    callback,
                    data,
                    Some(free_log_data),
                    level,
                );
                settle_log_registration(error, data, level, *enabled, "config log callback");
            }
            ConfigOp::UserAgent(arg) => {
                let arg = CArg::new(arg);
                let accepted =
                    expect_setter_any(noxy_config_set_user_agent(config, arg.ptr()), "user_agent");
                if accepted && arg.text().is_none() {
                    violation("user_agent accepted NULL or invalid UTF-8");
                }
            }
            ConfigOp::NullConfig(which) => {
                let null = ptr::null_mut();
                let error = match which % 8 {
                    0 => noxy_config_set_endpoint(null, c"x".as_ptr()),
                    1 => noxy_config_set_app_token(null, c"x".as_ptr()),
                    2 => noxy_config_set_decision_ttl_seconds(null, 1),
                    3 => noxy_config_set_connect_timeout_ms(null, 1),
                    4 => noxy_config_set_retry_backoff(null, 1, 2.0, 2, 0.5),
                    5 => noxy_config_set_worker_threads(null, 1),
                    6 => noxy_config_set_shared_runtime(null, 1),
                    _ => noxy_config_set_log_callback(null, None, ptr::null_mut(), None, 0),
                };
                expect_setter(error, false, "a setter on a NULL config");
            }
        }
    }
}

/// # Safety
/// `options` is live.
unsafe fn wait_op(options: *mut noxy_wait_options, op: &WaitOp) {
    // SAFETY (every call): live options used by this thread only.
    unsafe {
        match op {
            WaitOp::InitialInterval(ms) => {
                let ms = ms.get();
                expect_setter(
                    noxy_wait_options_set_initial_interval_ms(options, ms),
                    (1..=MAX_MS).contains(&ms),
                    "initial_interval",
                );
            }
            WaitOp::Multiplier(m) => {
                let m = m.get();
                expect_setter(
                    noxy_wait_options_set_multiplier(options, m),
                    multiplier_ok(m),
                    "multiplier",
                );
            }
            WaitOp::MaxInterval(ms) => {
                let ms = ms.get();
                let accepted = expect_setter_any(
                    noxy_wait_options_set_max_interval_ms(options, ms),
                    "max_interval",
                );
                if accepted && ms > MAX_MS {
                    violation("max_interval accepted more than 365 days");
                }
            }
            WaitOp::MaxWait(ms) => {
                let ms = ms.get();
                let accepted =
                    expect_setter_any(noxy_wait_options_set_max_wait_ms(options, ms), "max_wait");
                if accepted && ms > MAX_MS {
                    violation("max_wait accepted more than 365 days");
                }
            }
            WaitOp::Jitter(j) => {
                let j = j.get();
                expect_setter(
                    noxy_wait_options_set_jitter(options, j),
                    jitter_ok(j),
                    "jitter",
                );
            }
        }
        // NULL options are INVALID_ARGUMENT.
        expect_setter(
            noxy_wait_options_set_jitter(ptr::null_mut(), 0.5),
            false,
            "wait options NULL",
        );
    }
}

/// # Safety
/// `options` is live.
unsafe fn send_op(options: *mut noxy_send_options, op: &SendOp) {
    // SAFETY (every call): live options used by this thread only; strings NUL-terminated.
    unsafe {
        match op {
            SendOp::IdempotencyKey(arg) => {
                let arg = CArg::new(arg);
                let valid = arg.0.is_none() || arg.is_plain();
                expect_setter(
                    noxy_send_options_set_idempotency_key(options, arg.ptr()),
                    valid,
                    "idempotency_key",
                );
            }
            SendOp::Ttl(ttl) => {
                expect_setter_any(noxy_send_options_set_ttl_seconds(options, *ttl), "ttl");
            }
        }
        expect_setter(
            noxy_send_options_set_ttl_seconds(ptr::null_mut(), 1),
            false,
            "send options NULL",
        );
    }
}

/// The result of a call on the closed (or a NULL) client: never success; CANCELLED only when
/// every predictable check passed (`checks_pass`); otherwise INVALID_ARGUMENT or
/// INVALID_PAYLOAD.
fn expect_refused(error: *mut noxy_error, checks_pass: bool, payload_ok: bool, what: &str) {
    let code = take_error(error);
    let fine = match code {
        0 => false,
        CANCELLED => checks_pass,
        INVALID_ARGUMENT => true,
        INVALID_PAYLOAD => !payload_ok,
        _ => false,
    };
    if !fine {
        violation(&format!(
            "{what}: code {code} (predictable checks pass: {checks_pass}, payload valid: {payload_ok})"
        ));
    }
}

/// Output slots preset to a sentinel: a failed call must leave them untouched.
struct Outs {
    operation: *mut noxy_operation,
}

impl Outs {
    fn sentinel() -> *mut noxy_operation {
        NonNull::<noxy_operation>::dangling().as_ptr()
    }
}

/// Calls the blocking form of a call with an output slot (NULL when `null_out`), and checks
/// that a failed call left the slot untouched.
fn blocking<T>(
    null_out: bool,
    name: &str,
    call: impl FnOnce(*mut *mut T) -> *mut noxy_error,
) -> *mut noxy_error {
    let sentinel = NonNull::<T>::dangling().as_ptr();
    let mut out = sentinel;
    let out_ptr = if null_out {
        ptr::null_mut()
    } else {
        &mut out as *mut _
    };
    let error = call(out_ptr);
    if out != sentinel {
        violation(&format!("{name} wrote its output on failure"));
    }
    error
}

/// # Safety
/// Live options objects.
unsafe fn call(
    op: &CallOp,
    send_options: *mut noxy_send_options,
    wait_options: *mut noxy_wait_options,
) {
    let mut outs = Outs {
        operation: Outs::sentinel(),
    };
    let send_opts = |on: bool| {
        if on {
            send_options.cast_const()
        } else {
            ptr::null()
        }
    };
    let wait_opts = |on: bool| {
        if on {
            wait_options.cast_const()
        } else {
            ptr::null()
        }
    };
    // The checks every form shares: the client, then the mode's out-parameter or callback.
    let mode_ok = |mode: Mode| match mode {
        Mode::Blocking { null_out } => !null_out,
        Mode::Async { null_callback, .. } => !null_callback,
    };
    let op_out = |mode: Mode, outs: &mut Outs| match mode {
        Mode::Async {
            want_operation: true,
            ..
        } => &mut outs.operation as *mut _,
        _ => ptr::null_mut(),
    };
    // SAFETY (every call below): the client is the live closed one or NULL; strings are
    // NUL-terminated buffers and payloads `len` readable bytes (or NULL), alive for the call;
    // options are live; out-parameters are NULL or writable; callbacks may run on the
    // completion thread with NULL user_data.
    unsafe {
        match op {
            CallOp::SendDecision {
                identity,
                payload,
                options,
                mode,
                target,
            } => {
                let (id, body) = (CArg::new(identity), CPayload::new(payload));
                let client = target_ptr(*target);
                let payload_ok = body.is_valid();
                let checks = !client.is_null() && id.is_plain() && payload_ok && mode_ok(*mode);
                let error = match *mode {
                    Mode::Blocking { null_out } => {
                        blocking::<noxy_send_result>(null_out, "noxy_send_decision", |out_ptr| {
                            noxy_send_decision(
                                client,
                                id.ptr(),
                                body.ptr(),
                                body.len,
                                send_opts(*options),
                                out_ptr,
                            )
                        })
                    }
                    Mode::Async { null_callback, .. } => noxy_send_decision_async(
                        client,
                        id.ptr(),
                        body.ptr(),
                        body.len,
                        send_opts(*options),
                        if null_callback { None } else { Some(on_send) },
                        ptr::null_mut(),
                        op_out(*mode, &mut outs),
                    ),
                };
                expect_refused(error, checks, payload_ok, "send_decision");
            }
            CallOp::SendAndWait {
                identity,
                payload,
                send_options,
                wait_options,
                mode,
                target,
            } => {
                let (id, body) = (CArg::new(identity), CPayload::new(payload));
                let client = target_ptr(*target);
                let payload_ok = body.is_valid();
                let checks = !client.is_null() && id.is_plain() && payload_ok && mode_ok(*mode);
                let error = match *mode {
                    Mode::Blocking { null_out } => blocking::<noxy_decision_result>(
                        null_out,
                        "noxy_send_and_wait",
                        |out_ptr| {
                            noxy_send_and_wait(
                                client,
                                id.ptr(),
                                body.ptr(),
                                body.len,
                                send_opts(*send_options),
                                wait_opts(*wait_options),
                                out_ptr,
                            )
                        },
                    ),
                    Mode::Async { null_callback, .. } => noxy_send_and_wait_async(
                        client,
                        id.ptr(),
                        body.ptr(),
                        body.len,
                        send_opts(*send_options),
                        wait_opts(*wait_options),
                        if null_callback {
                            None
                        } else {
                            Some(on_decision)
                        },
                        ptr::null_mut(),
                        op_out(*mode, &mut outs),
                    ),
                };
                expect_refused(error, checks, payload_ok, "send_and_wait");
            }
            CallOp::WaitForOutcome {
                decision,
                identity,
                options,
                mode,
                target,
            } => {
                let (decision, id) = (CArg::new(decision), CArg::new(identity));
                let client = target_ptr(*target);
                let checks =
                    !client.is_null() && decision.is_plain() && id.is_plain() && mode_ok(*mode);
                let error = match *mode {
                    Mode::Blocking { null_out } => blocking::<noxy_decision_result>(
                        null_out,
                        "noxy_wait_for_outcome",
                        |out_ptr| {
                            noxy_wait_for_outcome(
                                client,
                                decision.ptr(),
                                id.ptr(),
                                wait_opts(*options),
                                out_ptr,
                            )
                        },
                    ),
                    Mode::Async { null_callback, .. } => noxy_wait_for_outcome_async(
                        client,
                        decision.ptr(),
                        id.ptr(),
                        wait_opts(*options),
                        if null_callback {
                            None
                        } else {
                            Some(on_decision)
                        },
                        ptr::null_mut(),
                        op_out(*mode, &mut outs),
                    ),
                };
                expect_refused(error, checks, true, "wait_for_outcome");
            }
            CallOp::GetDecisionOutcome {
                decision,
                identity,
                mode,
                target,
            } => {
                let (decision, id) = (CArg::new(decision), CArg::new(identity));
                let client = target_ptr(*target);
                let checks =
                    !client.is_null() && decision.is_plain() && id.is_plain() && mode_ok(*mode);
                let error = match *mode {
                    Mode::Blocking { null_out } => blocking::<noxy_decision_result>(
                        null_out,
                        "noxy_get_decision_outcome",
                        |out_ptr| {
                            noxy_get_decision_outcome(client, decision.ptr(), id.ptr(), out_ptr)
                        },
                    ),
                    Mode::Async { null_callback, .. } => noxy_get_decision_outcome_async(
                        client,
                        decision.ptr(),
                        id.ptr(),
                        if null_callback {
                            None
                        } else {
                            Some(on_decision)
                        },
                        ptr::null_mut(),
                        op_out(*mode, &mut outs),
                    ),
                };
                expect_refused(error, checks, true, "get_decision_outcome");
            }
            CallOp::GetQuota { mode, target } => {
                let client = target_ptr(*target);
                let checks = !client.is_null() && mode_ok(*mode);
                let error = match *mode {
                    Mode::Blocking { null_out } => {
                        blocking::<noxy_quota>(null_out, "noxy_get_quota", |out_ptr| {
                            noxy_get_quota(client, out_ptr)
                        })
                    }
                    Mode::Async { null_callback, .. } => noxy_get_quota_async(
                        client,
                        if null_callback { None } else { Some(on_quota) },
                        ptr::null_mut(),
                        op_out(*mode, &mut outs),
                    ),
                };
                expect_refused(error, checks, true, "get_quota");
            }
            CallOp::GetIdentityDevices {
                identity,
                mode,
                target,
            } => {
                let id = CArg::new(identity);
                let client = target_ptr(*target);
                let checks = !client.is_null() && id.is_plain() && mode_ok(*mode);
                let error = match *mode {
                    Mode::Blocking { null_out } => {
                        blocking::<noxy_devices>(null_out, "noxy_get_identity_devices", |out_ptr| {
                            noxy_get_identity_devices(client, id.ptr(), out_ptr)
                        })
                    }
                    Mode::Async { null_callback, .. } => noxy_get_identity_devices_async(
                        client,
                        id.ptr(),
                        if null_callback {
                            None
                        } else {
                            Some(on_devices)
                        },
                        ptr::null_mut(),
                        op_out(*mode, &mut outs),
                    ),
                };
                expect_refused(error, checks, true, "get_identity_devices");
            }
            CallOp::Close(target) => {
                let client = target_ptr(*target);
                expect_setter(
                    noxy_client_close(client),
                    !client.is_null(),
                    "noxy_client_close",
                );
            }
            CallOp::Drain { target, timeout_ms } => {
                let client = target_ptr(*target);
                let error = noxy_client_drain(client, u64::from(*timeout_ms % 4));
                expect_setter(error, !client.is_null(), "noxy_client_drain");
            }
            CallOp::CancelNullOperation => {
                expect_setter(
                    noxy_operation_cancel(ptr::null()),
                    false,
                    "noxy_operation_cancel(NULL)",
                );
                noxy_operation_free(ptr::null_mut());
            }
        }
    }
    if outs.operation != Outs::sentinel() {
        violation("an async call wrote its operation handle on failure");
    }
}

/// The name functions, for any number: static UTF-8 strings, never NULL.
fn names((a, b, c): (i32, i32, i32)) {
    for name in [
        noxy_error_code_name(a),
        noxy_outcome_name(b),
        noxy_delivery_status_name(c),
        noxy_version(),
    ] {
        if name.is_null() {
            violation("a name function returned NULL");
        }
        // SAFETY: non-NULL static NUL-terminated strings (the header).
        if unsafe { CStr::from_ptr(name) }.to_str().is_err() {
            violation("a name that is not UTF-8");
        }
    }
}

/// Every accessor given NULL returns its documented invalid value.
fn null_accessors() {
    let mut digest = [0u8; 32];
    let mut len = 7usize;
    // SAFETY: NULL objects are part of every accessor's contract; out-buffers are writable.
    unsafe {
        let checks = [
            (
                noxy_error_code(ptr::null()) as i32 == 0,
                "noxy_error_code(NULL)",
            ),
            (
                CStr::from_ptr(noxy_error_message(ptr::null())).is_empty(),
                "noxy_error_message(NULL)",
            ),
            (
                noxy_error_delivery_count(ptr::null()) == 0,
                "noxy_error_delivery_count(NULL)",
            ),
            (
                noxy_error_delivery(ptr::null(), 0).is_null(),
                "noxy_error_delivery(NULL)",
            ),
            (
                noxy_delivery_status(ptr::null()) as i32 == -1,
                "noxy_delivery_status(NULL)",
            ),
            (
                noxy_delivery_error_code(ptr::null()) as i32 == INVALID_ARGUMENT,
                "noxy_delivery_error_code(NULL)",
            ),
            (
                noxy_delivery_device_id(ptr::null()).is_null(),
                "noxy_delivery_device_id(NULL)",
            ),
            (
                noxy_send_result_decision_id(ptr::null()).is_null(),
                "noxy_send_result_decision_id(NULL)",
            ),
            (
                noxy_send_result_accepted_decision_id(ptr::null()).is_null(),
                "accepted_decision_id(NULL)",
            ),
            (
                noxy_send_result_plaintext_sha256(ptr::null(), digest.as_mut_ptr()) == -1,
                "send sha256(NULL)",
            ),
            (
                noxy_send_result_delivery_count(ptr::null()) == 0,
                "noxy_send_result_delivery_count(NULL)",
            ),
            (
                noxy_send_result_delivery(ptr::null(), 0).is_null(),
                "noxy_send_result_delivery(NULL)",
            ),
            (
                noxy_decision_result_outcome(ptr::null()) as i32 == -1,
                "noxy_decision_result_outcome(NULL)",
            ),
            (
                noxy_decision_result_is_pending(ptr::null()) == -1,
                "noxy_decision_result_is_pending(NULL)",
            ),
            (
                noxy_decision_result_decision_id(ptr::null()).is_null(),
                "decision_result_decision_id(NULL)",
            ),
            (
                noxy_decision_result_plaintext_sha256(ptr::null(), digest.as_mut_ptr()) == -1,
                "decision sha256(NULL)",
            ),
            (
                noxy_decision_result_delivery_count(ptr::null()) == 0,
                "decision_result_delivery_count(NULL)",
            ),
            (
                noxy_decision_result_delivery(ptr::null(), 0).is_null(),
                "decision_result_delivery(NULL)",
            ),
            (
                noxy_quota_app_name(ptr::null()).is_null(),
                "noxy_quota_app_name(NULL)",
            ),
            (
                noxy_quota_total(ptr::null()) == u64::MAX,
                "noxy_quota_total(NULL)",
            ),
            (
                noxy_quota_remaining(ptr::null()) == u64::MAX,
                "noxy_quota_remaining(NULL)",
            ),
            (
                noxy_quota_status(ptr::null()) as i32 == -1,
                "noxy_quota_status(NULL)",
            ),
            (
                noxy_devices_count(ptr::null()) == 0,
                "noxy_devices_count(NULL)",
            ),
            (
                noxy_devices_device_id(ptr::null(), 0).is_null(),
                "noxy_devices_device_id(NULL)",
            ),
            (
                noxy_devices_public_key(ptr::null(), 0, &mut len).is_null() && len == 7,
                "noxy_devices_public_key(NULL)",
            ),
            (
                noxy_devices_pq_public_key(ptr::null(), 0, &mut len).is_null() && len == 7,
                "noxy_devices_pq_public_key(NULL)",
            ),
        ];
        for (ok, what) in checks {
            if !ok {
                violation(what);
            }
        }
        noxy_send_result_free(ptr::null_mut());
        noxy_decision_result_free(ptr::null_mut());
        noxy_quota_free(ptr::null_mut());
        noxy_devices_free(ptr::null_mut());
        noxy_error_free(ptr::null_mut());
        noxy_config_free(ptr::null_mut());
        noxy_wait_options_free(ptr::null_mut());
        noxy_send_options_free(ptr::null_mut());
        noxy_free(ptr::null_mut());
    }
}
