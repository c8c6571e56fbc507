//! Per-device delivery results, shared by send results, decision results and errors.

use std::ffi::{c_char, CString};
use std::ptr;

use crate::routing::{DeliveryStatus, DeviceDelivery};

use super::codes::noxy_code;
use super::util::{c_string, opt_str_ptr, read, static_cstr, str_ptr};

/// The relay's answer for one device; the values are the relay's wire values. The C type is
/// `int32_t`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum noxy_delivery_state {
    /// What `noxy_delivery_status(NULL)` returns: not a delivery state.
    NOXY_DELIVERY_INVALID = -1,
    /// The device was online and received the decision.
    NOXY_DELIVERY_DELIVERED = 0,
    /// The device was offline; the relay stored the decision and woke the device.
    NOXY_DELIVERY_QUEUED = 1,
    /// The relay knows no device to deliver to.
    NOXY_DELIVERY_NO_DEVICES = 2,
    /// The relay refused the decision (quota exhausted, app suspended, ...).
    NOXY_DELIVERY_REJECTED = 3,
    /// This device's delivery failed: the relay answered ERROR after every retry
    /// (`noxy_delivery_error_code` is `NOXY_OK`), or the library could not deliver it
    /// (`noxy_delivery_error_code` says why).
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

/// The upper-case name of a delivery status (`"DELIVERED"`), `"INVALID"` for
/// `NOXY_DELIVERY_INVALID`, or `"UNKNOWN"` for a number this version does not know. Static
/// storage: never freed. Any thread.
#[no_mangle]
pub extern "C" fn noxy_delivery_status_name(status: i32) -> *const c_char {
    match status {
        -1 => static_cstr!("INVALID"),
        0 => static_cstr!("DELIVERED"),
        1 => static_cstr!("QUEUED"),
        2 => static_cstr!("NO_DEVICES"),
        3 => static_cstr!("REJECTED"),
        4 => static_cstr!("ERROR"),
        _ => static_cstr!("UNKNOWN"),
    }
}

/// The result of routing a decision to one device. Borrowed from the object that returned it
/// (`noxy_send_result`, `noxy_decision_result` or `noxy_error`); never freed on its own.
/// Immutable: any thread may read it while its owner lives.
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

    /// The list a C object carries.
    pub(crate) fn list(deliveries: &[DeviceDelivery]) -> Vec<noxy_delivery> {
        deliveries.iter().map(noxy_delivery::new).collect()
    }

    /// The element `index` of a list, or NULL.
    pub(crate) fn at(list: &[noxy_delivery], index: usize) -> *const noxy_delivery {
        list.get(index)
            .map_or(ptr::null(), |d| d as *const noxy_delivery)
    }
}

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
/// `delivery` is NULL. Any thread.
///
/// # Safety
/// `delivery` is NULL or a live delivery obtained from this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_delivery_request_id(delivery: *const noxy_delivery) -> *const c_char {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe { read(delivery, ptr::null(), |d| str_ptr(&d.request_id)) }
}

/// The relay's delivery status; `NOXY_DELIVERY_ERROR` also when this device's delivery failed
/// in the library (then `noxy_delivery_error_code` is not `NOXY_OK`); `NOXY_DELIVERY_INVALID`
/// when `delivery` is NULL. Any thread.
///
/// # Safety
/// `delivery` is NULL or a live delivery obtained from this library.
#[no_mangle]
pub unsafe extern "C" fn noxy_delivery_status(
    delivery: *const noxy_delivery,
) -> noxy_delivery_state {
    // SAFETY: forwarded contract: NULL or a live object.
    unsafe {
        read(delivery, noxy_delivery_state::NOXY_DELIVERY_INVALID, |d| {
            d.status
        })
    }
}

/// The decision id the relay answered for this device, or NULL when the delivery failed in
/// the library (or `delivery` is NULL). Borrowed. Any thread.
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
/// delivery (`NOXY_ERROR_*`: a bad device key, a relay error after every retry).
/// `NOXY_ERROR_INVALID_ARGUMENT` when `delivery` is NULL. Any thread.
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

/// The message of this device's error, or NULL when there is none. Borrowed. Any thread.
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
