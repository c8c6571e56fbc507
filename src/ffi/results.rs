//! Result objects: immutable, owned by the caller once returned, freed by their own `_free`.
//! Strings and byte arrays their accessors return are borrowed from the object.

use std::ffi::{c_char, CString};
use std::ptr;

use crate::client::{IdentityDevice, Quota, QuotaStatus};
use crate::routing::{DeliveryStatus, DeviceDelivery, SendResult};
use crate::waiting::{DecisionOutcome, DecisionResult, DecisionState};

use super::error::noxy_code;
use super::util::{c_string, free_boxed, guard_value, static_cstr};

/// A decision's outcome; the values are the relay's wire values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum noxy_outcome {
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

/// The upper-case name of an outcome (`"APPROVED"`), or `"UNKNOWN"` for a number this version
/// does not know. Static storage: never freed. Any thread.
#[no_mangle]
pub extern "C" fn noxy_outcome_name(outcome: u32) -> *const c_char {
    match outcome {
        0 => static_cstr!("PENDING"),
        1 => static_cstr!("APPROVED"),
        2 => static_cstr!("REJECTED"),
        3 => static_cstr!("EXPIRED"),
        _ => static_cstr!("UNKNOWN"),
    }
}

/// The upper-case name of a delivery status (`"DELIVERED"`), or `"UNKNOWN"` for a number this
/// version does not know. Static storage: never freed. Any thread.
#[no_mangle]
pub extern "C" fn noxy_delivery_status_name(status: u32) -> *const c_char {
    match status {
        0 => static_cstr!("DELIVERED"),
        1 => static_cstr!("QUEUED"),
        2 => static_cstr!("NO_DEVICES"),
        3 => static_cstr!("REJECTED"),
        4 => static_cstr!("ERROR"),
        _ => static_cstr!("UNKNOWN"),
    }
}

/// The relay's answer for one device; the values are the relay's wire values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum noxy_delivery_state {
    /// The device was online and received the decision.
    NOXY_DELIVERY_DELIVERED = 0,
    /// The device was offline; the relay stored the decision and woke the device.
    NOXY_DELIVERY_QUEUED = 1,
    /// The relay knows no device to deliver to.
    NOXY_DELIVERY_NO_DEVICES = 2,
    /// The relay refused the decision (quota exhausted, app suspended, ...).
    NOXY_DELIVERY_REJECTED = 3,
    /// This device's delivery failed; `noxy_delivery_error_code` says why.
    NOXY_DELIVERY_ERROR = 4,
}

impl From<DeliveryStatus> for noxy_delivery_state {
    fn from(status: DeliveryStatus) -> Self {
        match status {
            DeliveryStatus::Delivered => noxy_delivery_state::NOXY_DELIVERY_DELIVERED,
            DeliveryStatus::Queued => noxy_delivery_state::NOXY_DELIVERY_QUEUED,
            DeliveryStatus::NoDevices => noxy_delivery_state::NOXY_DELIVERY_NO_DEVICES,
            DeliveryStatus::Rejected => noxy_delivery_state::NOXY_DELIVERY_REJECTED,
            DeliveryStatus::Error => noxy_delivery_state::NOXY_DELIVERY_ERROR,
        }
    }
}

/// The app's quota status; the values are the relay's wire values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum noxy_quota_state {
    /// The app may route decisions.
    NOXY_QUOTA_ACTIVE = 0,
    /// The app is suspended.
    NOXY_QUOTA_SUSPENDED = 1,
    /// The app was deleted.
    NOXY_QUOTA_DELETED = 2,
}

/// The result of routing a decision to one device. Borrowed from the object that returned it
/// (`noxy_send_result`, `noxy_decision_result` or `noxy_error`); never freed on its own.
pub struct noxy_delivery {
    device_id: CString,
    request_id: CString,
    status: noxy_delivery_state,
    decision_id: Option<CString>,
    error_code: noxy_code,
    error_message: Option<CString>,
}

impl noxy_delivery {
    pub(crate) fn new(delivery: &DeviceDelivery) -> noxy_delivery {
        let (status, decision_id, error_code, error_message) = match &delivery.outcome {
            Ok(ok) => (
                ok.status.into(),
                Some(c_string(&ok.decision_id)),
                noxy_code::NOXY_OK,
                None,
            ),
            Err(error) => (
                noxy_delivery_state::NOXY_DELIVERY_ERROR,
                None,
                error.code().into(),
                Some(c_string(error.message())),
            ),
        };
        noxy_delivery {
            device_id: c_string(&delivery.device_id),
            request_id: c_string(&delivery.request_id),
            status,
            decision_id,
            error_code,
            error_message,
        }
    }
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
            deliveries: sent.deliveries.iter().map(noxy_delivery::new).collect(),
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

/// Reads through a possibly-NULL object pointer; NULL (or a panic) yields `fallback`.
///
/// # Safety
/// `object` is NULL or a live `T` for the duration of the call.
unsafe fn read<T, R: Copy>(object: *const T, fallback: R, f: impl FnOnce(&T) -> R) -> R {
    // SAFETY: forwarded contract: NULL or a live T; the reference does not outlive this call.
    match unsafe { object.as_ref() } {
        Some(object) => guard_value(fallback, || f(object)),
        None => fallback,
    }
}

fn str_ptr(text: &CString) -> *const c_char {
    text.as_ptr()
}

fn opt_str_ptr(text: &Option<CString>) -> *const c_char {
    text.as_ref().map_or(ptr::null(), |t| t.as_ptr())
}

/// Copies a digest to `out`; false (nothing written) when `out` is NULL.
///
/// # Safety
/// `out` is NULL or valid for writing 32 bytes.
unsafe fn copy_digest(digest: &[u8; 32], out: *mut u8) -> bool {
    if out.is_null() {
        return false;
    }
    // SAFETY: `out` is non-NULL and the caller promised 32 writable bytes; the regions cannot
    // overlap because `digest` lives inside a library-owned object.
    unsafe { ptr::copy_nonoverlapping(digest.as_ptr(), out, 32) };
    true
}

// ---- noxy_delivery ----

/// The device this delivery was for. Borrowed; NULL when `delivery` is NULL. Any thread.
///
/// # Safety
/// `delivery` is NULL or a live delivery obtained from this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_delivery_device_id(delivery: *const noxy_delivery) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(delivery, ptr::null(), |d| str_ptr(&d.device_id)) }
}

/// The `request_id` of this device's RouteDecision (kept across retries). Borrowed; NULL when
/// `delivery` is NULL.
/// Any thread (deliveries are immutable); strings are borrowed from the object the delivery belongs
/// to.
///
/// # Safety
/// `delivery` is NULL or a live delivery obtained from this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_delivery_request_id(delivery: *const noxy_delivery) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(delivery, ptr::null(), |d| str_ptr(&d.request_id)) }
}

/// The relay's delivery status, or `NOXY_DELIVERY_ERROR` when this device's delivery failed in
/// the library (then `noxy_delivery_error_code` is non-zero) or `delivery` is NULL.
/// Any thread (deliveries are immutable); strings are borrowed from the object the delivery belongs
/// to.
///
/// # Safety
/// `delivery` is NULL or a live delivery obtained from this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_delivery_status(
    delivery: *const noxy_delivery,
) -> noxy_delivery_state {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe {
        read(delivery, noxy_delivery_state::NOXY_DELIVERY_ERROR, |d| {
            d.status
        })
    }
}

/// The decision id the relay answered for this device, or NULL when the delivery failed.
/// Borrowed.
/// Any thread (deliveries are immutable); strings are borrowed from the object the delivery belongs
/// to.
///
/// # Safety
/// `delivery` is NULL or a live delivery obtained from this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_delivery_decision_id(
    delivery: *const noxy_delivery,
) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(delivery, ptr::null(), |d| opt_str_ptr(&d.decision_id)) }
}

/// `NOXY_OK` when the relay answered for this device, else the error that ended this device's
/// delivery (`NOXY_ERROR_*`). `NOXY_ERROR_INVALID_ARGUMENT` when `delivery` is NULL.
/// Any thread (deliveries are immutable); strings are borrowed from the object the delivery belongs
/// to.
///
/// # Safety
/// `delivery` is NULL or a live delivery obtained from this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_delivery_error_code(delivery: *const noxy_delivery) -> noxy_code {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe {
        read(delivery, noxy_code::NOXY_ERROR_INVALID_ARGUMENT, |d| {
            d.error_code
        })
    }
}

/// The message of this device's error, or NULL when there is none. Borrowed.
/// Any thread (deliveries are immutable); strings are borrowed from the object the delivery belongs
/// to.
///
/// # Safety
/// `delivery` is NULL or a live delivery obtained from this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_delivery_error_message(
    delivery: *const noxy_delivery,
) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(delivery, ptr::null(), |d| opt_str_ptr(&d.error_message)) }
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

/// Copies the SHA-256 of the exact plaintext bytes every device received into `out` (32
/// bytes). Returns false (and writes nothing) when `result` or `out` is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_send_result`; `out` is NULL or points to 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn noxy_send_result_plaintext_sha256(
    result: *const noxy_send_result,
    out: *mut u8,
) -> bool {
    // SAFETY: forwarded contract: NULL or a live object, and NULL or 32 writable bytes.
    unsafe { read(result, false, |r| copy_digest(&r.plaintext_sha256, out)) }
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
            r.deliveries
                .get(index)
                .map_or(ptr::null(), |d| d as *const noxy_delivery)
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
/// `noxy_get_decision_outcome`. `NOXY_OUTCOME_PENDING` when `result` is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_decision_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_outcome(
    result: *const noxy_decision_result,
) -> noxy_outcome {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(result, noxy_outcome::NOXY_OUTCOME_PENDING, |r| r.outcome) }
}

/// Whether the relay still waits for an answer (false when `result` is NULL).
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_decision_result`.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_is_pending(
    result: *const noxy_decision_result,
) -> bool {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(result, false, |r| r.pending) }
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

/// For send-and-wait results: copies the SHA-256 of the plaintext every device received into
/// `out` (32 bytes) and returns true. Returns false (writing nothing) for results of the calls
/// that did not send, or when an argument is NULL.
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `result` is NULL or a live `noxy_decision_result`; `out` is NULL or 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn noxy_decision_result_plaintext_sha256(
    result: *const noxy_decision_result,
    out: *mut u8,
) -> bool {
    // SAFETY: forwarded contract: NULL or a live object, and NULL or 32 writable bytes.
    unsafe {
        read(result, false, |r| {
            r.sent
                .as_ref()
                .is_some_and(|sent| copy_digest(&sent.plaintext_sha256, out))
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
                .and_then(|s| s.deliveries.get(index))
                .map_or(ptr::null(), |d| d as *const noxy_delivery)
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

/// Decisions allowed in total (0 when `quota` is NULL).
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `quota` is NULL or a live `noxy_quota`.
#[no_mangle]
pub unsafe extern "C" fn noxy_quota_total(quota: *const noxy_quota) -> u64 {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(quota, 0, |q| q.total) }
}

/// Decisions left (0 when `quota` is NULL).
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `quota` is NULL or a live `noxy_quota`.
#[no_mangle]
pub unsafe extern "C" fn noxy_quota_remaining(quota: *const noxy_quota) -> u64 {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(quota, 0, |q| q.remaining) }
}

/// Whether the app may route decisions (`NOXY_QUOTA_DELETED` when `quota` is NULL).
/// Any thread: the object is immutable, so concurrent reads are fine.
///
/// # Safety
/// `quota` is NULL or a live `noxy_quota`.
#[no_mangle]
pub unsafe extern "C" fn noxy_quota_status(quota: *const noxy_quota) -> noxy_quota_state {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(quota, noxy_quota_state::NOXY_QUOTA_DELETED, |q| q.status) }
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
