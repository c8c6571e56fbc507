package noxy

// #include <noxy.h>
import "C"

import "unsafe"

// Outcome is a decision's outcome; the values are the relay's wire values (NOXY_OUTCOME_*).
type Outcome int32

// The outcomes.
const (
	OutcomePending  Outcome = 0 // not answered yet (only from GetDecisionOutcome)
	OutcomeApproved Outcome = 1 // the person approved
	OutcomeRejected Outcome = 2 // the person rejected
	OutcomeExpired  Outcome = 3 // nobody answered within the decision's TTL
)

// String is the upper-case name ("APPROVED"), or "UNKNOWN".
func (o Outcome) String() string { return C.GoString(C.noxy_outcome_name(C.int32_t(o))) }

// DeliveryStatus is the relay's answer for one device (NOXY_DELIVERY_*).
type DeliveryStatus int32

// The delivery statuses.
const (
	DeliveryDelivered DeliveryStatus = 0 // the device was online and received the decision
	DeliveryQueued    DeliveryStatus = 1 // the device was offline; the relay stored the decision
	DeliveryNoDevices DeliveryStatus = 2 // the relay knows no device to deliver to
	DeliveryRejected  DeliveryStatus = 3 // the relay refused (quota exhausted, app suspended)
	DeliveryError     DeliveryStatus = 4 // this device's delivery failed (see Delivery.Err)
)

// String is the upper-case name ("DELIVERED"), or "UNKNOWN".
func (s DeliveryStatus) String() string {
	return C.GoString(C.noxy_delivery_status_name(C.int32_t(s)))
}

// QuotaStatus says whether the app may route decisions (NOXY_QUOTA_*).
type QuotaStatus int32

// The quota statuses.
const (
	QuotaActive    QuotaStatus = 0 // the app may route decisions
	QuotaSuspended QuotaStatus = 1 // the app is suspended
	QuotaDeleted   QuotaStatus = 2 // the app was deleted
)

// String is the upper-case name ("ACTIVE"), or "UNKNOWN".
func (s QuotaStatus) String() string {
	switch s {
	case QuotaActive:
		return "ACTIVE"
	case QuotaSuspended:
		return "SUSPENDED"
	case QuotaDeleted:
		return "DELETED"
	}
	return "UNKNOWN"
}

// Delivery is the result of routing a decision to one device.
type Delivery struct {
	DeviceID   string
	RequestID  string // the RouteDecision request id, kept across retries
	Status     DeliveryStatus
	DecisionID string // the decision id the relay answered; "" when the delivery failed in the library
	// Err is nil when the relay answered for this device, else a *Error saying why this
	// device's delivery failed (a bad device key, a relay error after every retry).
	Err error
}

// SendResult is what SendDecision returns.
type SendResult struct {
	// DecisionID is the decision id this client generated and sent to every device.
	DecisionID string
	// AcceptedDecisionID is the id of the first delivery the relay accepted (DELIVERED or
	// QUEUED), the one to wait on; "" when no device accepted the decision.
	AcceptedDecisionID string
	// Deliveries has one result per device of the identity.
	Deliveries []Delivery
	// PlaintextSHA256 is the SHA-256 of the exact payload bytes every device received.
	PlaintextSHA256 [32]byte
}

// DecisionResult is a decision's state: terminal from WaitForDecisionOutcome and
// SendDecisionAndWaitForOutcome, possibly pending from GetDecisionOutcome.
type DecisionResult struct {
	DecisionID string
	Outcome    Outcome
	Pending    bool // the relay still waits for an answer
	// HasPlaintextSHA256 is true for results of SendDecisionAndWaitForOutcome, whose
	// PlaintextSHA256 is the SHA-256 of the payload bytes every device received; the calls
	// that did not send leave both zero.
	HasPlaintextSHA256 bool
	PlaintextSHA256    [32]byte
	// Deliveries are the per-device results of SendDecisionAndWaitForOutcome; nil otherwise.
	Deliveries []Delivery
}

// Quota is the app's quota.
type Quota struct {
	AppName   string
	Total     uint64 // decisions allowed in total
	Remaining uint64 // decisions left
	Status    QuotaStatus
}

// Device is a device registered for an identity.
type Device struct {
	ID          string
	PublicKey   []byte // the classical (Ed25519) public key
	PQPublicKey []byte // the ML-KEM-768 public key (1184 bytes when well-formed)
}

// The functions below copy a result out of its C object; the take* ones then free it. They
// run in the completion trampolines, so every C object is freed as soon as it arrives.

func copyDelivery(d *C.noxy_delivery) Delivery {
	out := Delivery{
		DeviceID:   C.GoString(C.noxy_delivery_device_id(d)),
		RequestID:  C.GoString(C.noxy_delivery_request_id(d)),
		Status:     DeliveryStatus(C.noxy_delivery_status(d)),
		DecisionID: C.GoString(C.noxy_delivery_decision_id(d)),
	}
	if code := Code(C.noxy_delivery_error_code(d)); code != CodeOK {
		out.Err = &Error{Code: code, Message: C.GoString(C.noxy_delivery_error_message(d))}
	}
	return out
}

func takeSendResult(r *C.noxy_send_result) *SendResult {
	out := &SendResult{
		DecisionID:         C.GoString(C.noxy_send_result_decision_id(r)),
		AcceptedDecisionID: C.GoString(C.noxy_send_result_accepted_decision_id(r)),
	}
	if n := int(C.noxy_send_result_delivery_count(r)); n > 0 {
		out.Deliveries = make([]Delivery, n)
		for i := range out.Deliveries {
			out.Deliveries[i] = copyDelivery(C.noxy_send_result_delivery(r, C.size_t(i)))
		}
	}
	var digest [32]C.uint8_t
	if C.noxy_send_result_plaintext_sha256(r, &digest[0]) == 1 {
		for i, b := range digest {
			out.PlaintextSHA256[i] = byte(b)
		}
	}
	C.noxy_send_result_free(r)
	return out
}

func takeDecisionResult(r *C.noxy_decision_result) *DecisionResult {
	out := &DecisionResult{
		DecisionID: C.GoString(C.noxy_decision_result_decision_id(r)),
		Outcome:    Outcome(C.noxy_decision_result_outcome(r)),
		Pending:    C.noxy_decision_result_is_pending(r) == 1,
	}
	var digest [32]C.uint8_t
	if C.noxy_decision_result_plaintext_sha256(r, &digest[0]) == 1 {
		out.HasPlaintextSHA256 = true
		for i, b := range digest {
			out.PlaintextSHA256[i] = byte(b)
		}
	}
	if n := int(C.noxy_decision_result_delivery_count(r)); n > 0 {
		out.Deliveries = make([]Delivery, n)
		for i := range out.Deliveries {
			out.Deliveries[i] = copyDelivery(C.noxy_decision_result_delivery(r, C.size_t(i)))
		}
	}
	C.noxy_decision_result_free(r)
	return out
}

func takeQuota(q *C.noxy_quota) *Quota {
	out := &Quota{
		AppName:   C.GoString(C.noxy_quota_app_name(q)),
		Total:     uint64(C.noxy_quota_total(q)),
		Remaining: uint64(C.noxy_quota_remaining(q)),
		Status:    QuotaStatus(C.noxy_quota_status(q)),
	}
	C.noxy_quota_free(q)
	return out
}

func takeDevices(d *C.noxy_devices) []Device {
	n := int(C.noxy_devices_count(d))
	out := make([]Device, n)
	for i := range out {
		out[i] = Device{
			ID:          C.GoString(C.noxy_devices_device_id(d, C.size_t(i))),
			PublicKey:   deviceKey(d, i, false),
			PQPublicKey: deviceKey(d, i, true),
		}
	}
	C.noxy_devices_free(d)
	return out
}

// deviceKey copies the classical (pq false) or ML-KEM (pq true) public key of device i.
func deviceKey(d *C.noxy_devices, i int, pq bool) []byte {
	var n C.size_t
	var p *C.uint8_t
	if pq {
		p = C.noxy_devices_pq_public_key(d, C.size_t(i), &n)
	} else {
		p = C.noxy_devices_public_key(d, C.size_t(i), &n)
	}
	if p == nil {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n))
}
