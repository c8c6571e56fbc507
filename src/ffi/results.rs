//! Result objects: immutable, owned by the caller once returned, freed by their own `_free`.
//! Strings and byte arrays their accessors return are borrowed from the object.

use std::ffi::{c_char, CString};
use std::ptr;

use crate::client::{IdentityDevice, Quota, QuotaStatus};
use crate::routing::SendResult;
use crate::waiting::{DecisionOutcome, DecisionResult, DecisionState};

use super::delivery::noxy_delivery;
use super::util::{c_string, free_boxed, guard_value, opt_str_ptr, read, static_cstr, str_ptr};

/// A decision's outcome; the values are the relay's wire values. The C type is `int32_t`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum noxy_outcome {
    /// What `noxy_decision_result_outcome(NULL)` returns: not an outcome.
    NOXY_OUTCOME_INVALID = -1,
    /// Not answered yet (only from `noxy_get_decision_outcome`).
    NOXY_OUTCOME_PENDING = 0,
    /// The person approved.
    NOXY_OUTCOME_APPROVED = 1,
    /// The person rejected.
    NOXY_OUTCOME_REJECTED = 2,
    /// Nobody answered within the decision's TTL.
    NOXY_OUTCOME_EXPIRED = 3,
}

impl From<DecisionOutcome> for noxy_outcome {
    fn from(outcome: DecisionOutcome) -> Self {
        match outcome {
            DecisionOutcome::Pending => noxy_outcome::NOXY_OUTCOME_PENDING,
            DecisionOutcome::Approved => noxy_outcome::NOXY_OUTCOME_APPROVED,
            DecisionOutcome::Rejected => noxy_outcome::NOXY_OUTCOME_REJECTED,
            DecisionOutcome::Expired => noxy_outcome::NOXY_OUTCOME_EXPIRED,
        }
    }
}

/// The upper-case name of an outcome (`"APPROVED"`), `"INVALID"` for `NOXY_OUTCOME_INVALID`,
/// or `"UNKNOWN"` for a number this version does not know. Static storage: never freed. Any
/// thread.
#[no_mangle]
pub extern "C" fn noxy_outcome_name(outcome: i32) -> *const c_char {
    match outcome {
        -1 => static_cstr!("INVALID"),
        0 => static_cstr!("PENDING"),
        1 => static_cstr!("APPROVED"),
        2 => static_cstr!("REJECTED"),
        3 => static_cstr!("EXPIRED"),
        _ => static_cstr!("UNKNOWN"),
    }
}

/// The app's quota status; the values are the relay's wire values. The C type is `int32_t`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum noxy_quota_state {
    /// What `noxy_quota_status(NULL)` returns: not a status.
    NOXY_QUOTA_INVALID = -1,
    /// The app may route decisions.
    NOXY_QUOTA_ACTIVE = 0,
    /// The app is suspended.
    NOXY_QUOTA_SUSPENDED = 1,
    /// The app was deleted.
    NOXY_QUOTA_DELETED = 2,
}

/// What `noxy_send_decision` returns: the decision id, the per-device results and the SHA-256
/// of the exact plaintext bytes every device received. Owned by the caller: free it with
/// `noxy_send_result_free`. Immutable; readable from any thread.
pub struct noxy_send_result {
    decision_id: CString,
    accepted_decision_id: Option<CString>,
    plaintext_sha256: [u8; 32],
    deliveries: Vec<noxy_delivery>,
}

impl noxy_send_result {
    pub(crate) fn new(sent: &SendResult) -> noxy_send_result {
        noxy_send_result {
            decision_id: c_string(&sent.decision_id),
            accepted_decision_id: sent.accepted_decision_id().map(c_string),
            plaintext_sha256: sent.plaintext_sha256,
            deliveries: noxy_delivery::list(&sent.deliveries),
        }
    }
}

/// A decision's state: from `noxy_send_and_wait` / `noxy_wait_for_outcome` (terminal) or from
/// `noxy_get_decision_outcome` (possibly pending). Owned by the caller: free it with
/// `noxy_decision_result_free`. Immutable; readable from any thread.
pub struct noxy_decision_result {
    decision_id: CString,
    outcome: noxy_outcome,
    pending: bool,
    /// Present for send-and-wait: what routing returned.
    sent: Option<noxy_send_result>,
}

impl noxy_decision_result {
    pub(crate) fn new(
        decision_id: &str,
        state: DecisionState,
        sent: Option<&SendResult>,
    ) -> noxy_decision_result {
        noxy_decision_result {
            decision_id: c_string(decision_id),
            outcome: state.outcome.into(),
            pending: state.pending,
            sent: sent.map(noxy_send_result::new),
        }
    }
}

impl From<&DecisionResult> for noxy_decision_result {
    fn from(done: &DecisionResult) -> Self {
        noxy_decision_result::new(&done.decision_id, done.state, Some(&done.sent))
    }
}

/// The app's quota. Owned by the caller: free it with `noxy_quota_free`.
pub struct noxy_quota {
    app_name: CString,
    total: u64,
    remaining: u64,
    status: noxy_quota_state,
}

impl noxy_quota {
    pub(crate) fn new(quota: &Quota) -> noxy_quota {
        noxy_quota {
            app_name: c_string(&quota.app_name),
            total: quota.quota_total,
            remaining: quota.quota_remaining,
            status: match quota.status {
                QuotaStatus::Active => noxy_quota_state::NOXY_QUOTA_ACTIVE,
                QuotaStatus::Suspended => noxy_quota_state::NOXY_QUOTA_SUSPENDED,
                QuotaStatus::Deleted => noxy_quota_state::NOXY_QUOTA_DELETED,
            },
        }
    }
}

struct DeviceEntry {
    device_id: CString,
    public_key: Vec<u8>,
    pq_public_key: Vec<u8>,
}

/// The devices registered for an identity. Owned by the caller: free it with
/// `noxy_devices_free`.
pub struct noxy_devices {
    devices: Vec<DeviceEntry>,
}

impl noxy_devices {
    pub(crate) fn new(devices: &[IdentityDevice]) -> noxy_devices {
        noxy_devices {
            devices: devices
                .iter()
                .map(|d| DeviceEntry {
                    device_id: c_string(&d.device_id),
                    public_key: d.public_key.clone(),
                    pq_public_key: d.pq_public_key.clone(),
                })
                .collect(),
        }
    }
}

/// Copies a digest to `out`: 1 when written, -1 (nothing written) when `out` is NULL.
///
/// # Safety
/// `out` is NULL or valid for writing 32 bytes.
unsafe fn copy_digest(digest: &[u8; 32], out: *mut u8) -> i32 {
    if out.is_null() {
        return -1;
    }
    // SAFETY: `out` is non-NULL and the caller promised 32 writable bytes; the regions cannot
    // overlap because `digest` lives inside a library-owned object.
    unsafe { ptr::copy_nonoverlapping(digest.as_ptr(), out, 32) };
    1
}

// ---- noxy_send_result ----

/// The decision id this client generated and sent to every device. Borrowed from `result`;
/// NULL when `result` is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_send_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_result_decision_id(
    result: *const noxy_send_result,
) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(result, ptr::null(), |r| str_ptr(&r.decision_id)) }
}

/// The decision id of the first delivery the relay accepted (DELIVERED or QUEUED): the one to
/// wait on. NULL when no device accepted it (or `result` is NULL). Borrowed from `result`.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_send_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_result_accepted_decision_id(
    result: *const noxy_send_result,
) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe {
        read(result, ptr::null(), |r| {
            opt_str_ptr(&r.accepted_decision_id)
        })
    }
}

/// Copies the SHA-256 of the exact payload bytes every device received (the bytes the caller
/// passed) into `out` (32 bytes) and returns 1. Returns -1, writing nothing, when `result` or
/// `out` is NULL. Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_send_result`; `out` is NULL or points to 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_result_plaintext_sha256(
    result: *const noxy_send_result,
    out: *mut u8,
) -> i32 {
    // SAFETY: forwarded contract: NULL or a live object, and NULL or 32 writable bytes.
    unsafe { read(result, -1, |r| copy_digest(&r.plaintext_sha256, out)) }
}

/// How many per-device results there are (one per device of the identity). 0 when `result`
/// is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_send_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_result_delivery_count(result: *const noxy_send_result) -> usize {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(result, 0, |r| r.deliveries.len()) }
}

/// The per-device result at `index`, or NULL when out of range. Borrowed from `result`.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_send_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_result_delivery(
    result: *const noxy_send_result,
    index: usize,
) -> *const noxy_delivery {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe {
        read(result, ptr::null(), |r| {
            noxy_delivery::at(&r.deliveries, index)
        })
    }
}

/// Frees a send result and everything borrowed from it. NULL is a no-op.
/// Any thread, once no other thread reads the object; what its accessors returned becomes invalid.
///
/// # Safety
/// `result` is NULL or a `noxy_send_result` from this library that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_result_free(result: *mut noxy_send_result) {
    // SAFETY: forwarded contract: NULL or an unfreed object from Box::into_raw.
    guard_value((), || unsafe { free_boxed(result) })
}

// ---- noxy_decision_result ----

/// The outcome: APPROVED, REJECTED or EXPIRED from the waiting calls; possibly PENDING from
/// `noxy_get_decision_outcome`. `NOXY_OUTCOME_INVALID` when `result` is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_decision_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_outcome(
    result: *const noxy_decision_result,
) -> noxy_outcome {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(result, noxy_outcome::NOXY_OUTCOME_INVALID, |r| r.outcome) }
}

/// Whether the relay still waits for an answer: 1 pending, 0 not, -1 when `result` is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_decision_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_is_pending(
    result: *const noxy_decision_result,
) -> i32 {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(result, -1, |r| i32::from(r.pending)) }
}

/// The decision id this result is about (for send-and-wait: the id that was waited on).
/// Borrowed from `result`; NULL when `result` is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_decision_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_decision_id(
    result: *const noxy_decision_result,
) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(result, ptr::null(), |r| str_ptr(&r.decision_id)) }
}

/// For send-and-wait results: copies the SHA-256 of the exact payload bytes every device
/// received into `out` (32 bytes) and returns 1. Returns 0, writing nothing, for results of the
/// calls that did not send; -1 when an argument is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_decision_result`; `out` is NULL or 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_plaintext_sha256(
    result: *const noxy_decision_result,
    out: *mut u8,
) -> i32 {
    // SAFETY: forwarded contract: NULL or a live object, and NULL or 32 writable bytes.
    unsafe {
        read(result, -1, |r| match &r.sent {
            Some(sent) => copy_digest(&sent.plaintext_sha256, out),
            None if out.is_null() => -1,
            None => 0,
        })
    }
}

/// For send-and-wait results: the number of per-device delivery results; 0 otherwise.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_decision_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_delivery_count(
    result: *const noxy_decision_result,
) -> usize {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe {
        read(result, 0, |r| {
            r.sent.as_ref().map_or(0, |s| s.deliveries.len())
        })
    }
}

/// For send-and-wait results: the per-device result at `index`, or NULL when out of range.
/// Borrowed from `result`.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_decision_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_delivery(
    result: *const noxy_decision_result,
    index: usize,
) -> *const noxy_delivery {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe {
        read(result, ptr::null(), |r| {
            r.sent
                .as_ref()
                .map_or(ptr::null(), |s| noxy_delivery::at(&s.deliveries, index))
        })
    }
}

/// Frees a decision result and everything borrowed from it. NULL is a no-op.
/// Any thread, once no other thread reads the object; what its accessors returned becomes invalid.
///
/// # Safety
/// `result` is NULL or a `noxy_decision_result` from this library that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_free(result: *mut noxy_decision_result) {
    // SAFETY: forwarded contract: NULL or an unfreed object from Box::into_raw.
    guard_value((), || unsafe { free_boxed(result) })
}

// ---- noxy_quota ----

/// The app's name. Borrowed from `quota`; NULL when `quota` is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `quota` is NULL or a live `noxy_quota`.
#[no_mangle]
pub unsafe extern "C" fn noxy_quota_app_name(quota: *const noxy_quota) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(quota, ptr::null(), |q| str_ptr(&q.app_name)) }
}

/// Decisions allowed in total (`UINT64_MAX` when `quota` is NULL).
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `quota` is NULL or a live `noxy_quota`.
#[no_mangle]
pub unsafe extern "C" fn noxy_quota_total(quota: *const noxy_quota) -> u64 {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(quota, u64::MAX, |q| q.total) }
}

/// Decisions left (`UINT64_MAX` when `quota` is NULL).
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `quota` is NULL or a live `noxy_quota`.
#[no_mangle]
pub unsafe extern "C" fn noxy_quota_remaining(quota: *const noxy_quota) -> u64 {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(quota, u64::MAX, |q| q.remaining) }
}

/// Whether the app may route decisions (`NOXY_QUOTA_INVALID` when `quota` is NULL).
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `quota` is NULL or a live `noxy_quota`.
#[no_mangle]
pub unsafe extern "C" fn noxy_quota_status(quota: *const noxy_quota) -> noxy_quota_state {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(quota, noxy_quota_state::NOXY_QUOTA_INVALID, |q| q.status) }
}

/// Frees a quota. NULL is a no-op.
/// Any thread, once no other thread reads the object; what its accessors returned becomes invalid.
///
/// # Safety
/// `quota` is NULL or a `noxy_quota` from this library that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_quota_free(quota: *mut noxy_quota) {
    // SAFETY: forwarded contract: NULL or an unfreed object from Box::into_raw.
    guard_value((), || unsafe { free_boxed(quota) })
}

// ---- noxy_devices ----

/// The number of devices (0 when `devices` is NULL).
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `devices` is NULL or a live `noxy_devices`.
#[no_mangle]
pub unsafe extern "C" fn noxy_devices_count(devices: *const noxy_devices) -> usize {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(devices, 0, |d| d.devices.len()) }
}

/// The relay's id of the device at `index`, or NULL when out of range. Borrowed from
/// `devices`.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `devices` is NULL or a live `noxy_devices`.
#[no_mangle]
pub unsafe extern "C" fn noxy_devices_device_id(
    devices: *const noxy_devices,
    index: usize,
) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe {
        read(devices, ptr::null(), |d| {
            d.devices
                .get(index)
                .map_or(ptr::null(), |e| str_ptr(&e.device_id))
        })
    }
}

/// A borrowed byte array, its length written to `*out_len` unless `out_len` is NULL.
///
/// # Safety
/// `out_len` is NULL or valid for writing one `usize`.
unsafe fn bytes_out(bytes: &[u8], out_len: *mut usize) -> *const u8 {
    if !out_len.is_null() {
        // SAFETY: non-NULL, and the caller promised it points to a writable size_t.
        unsafe { out_len.write(bytes.len()) };
    }
    bytes.as_ptr()
}

/// The device's classical (Ed25519) public key: a borrowed byte array of `*out_len` bytes
/// (`out_len` may be NULL). NULL (and `*out_len` untouched) when out of range.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `devices` is NULL or a live `noxy_devices`; `out_len` is NULL or a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn noxy_devices_public_key(
    devices: *const noxy_devices,
    index: usize,
    out_len: *mut usize,
) -> *const u8 {
    // SAFETY: forwarded contract: NULL or a live object, and NULL or a writable size_t.
    unsafe {
        read(devices, ptr::null(), |d| {
            d.devices
                .get(index)
                .map_or(ptr::null(), |e| bytes_out(&e.public_key, out_len))
        })
    }
}

/// The device's ML-KEM-768 public key (1184 bytes when well-formed): a borrowed byte array of
/// `*out_len` bytes (`out_len` may be NULL). NULL (and `*out_len` untouched) when out of range.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `devices` is NULL or a live `noxy_devices`; `out_len` is NULL or a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn noxy_devices_pq_public_key(
    devices: *const noxy_devices,
    index: usize,
    out_len: *mut usize,
) -> *const u8 {
    // SAFETY: forwarded contract: NULL or a live object, and NULL or a writable size_t.
    unsafe {
        read(devices, ptr::null(), |d| {
            d.devices
                .get(index)
                .map_or(ptr::null(), |e| bytes_out(&e.pq_public_key, out_len))
        })
    }
}

/// Frees a device list. NULL is a no-op.
/// Any thread, once no other thread reads the object; what its accessors returned becomes invalid.
///
/// # Safety
/// `devices` is NULL or a `noxy_devices` from this library that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn noxy_devices_free(devices: *mut noxy_devices) {
    // SAFETY: forwarded contract: NULL or an unfreed object from Box::into_raw.
    guard_value((), || unsafe { free_boxed(devices) })
}
