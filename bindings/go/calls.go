package noxy

// #include "shim.h"
import "C"

import (
	"context"
	"encoding/json"
	"time"
	"unsafe"
)

// SendOptions adjusts how a decision is routed. A nil *SendOptions means the defaults.
type SendOptions struct {
	// IdempotencyKey, when not empty, derives the decision id and request ids from the relay
	// endpoint, the identity, this key, the SHA-256 of the exact payload bytes and the TTL
	// (never from the app token): re-sending the same decision after a crash returns the
	// relay's existing decision instead of prompting the person twice, while the same key with
	// other content is a new decision.
	IdempotencyKey string
	// TTL overrides the client's DecisionTTL for this decision (whole seconds, rounded up);
	// 0 keeps the client's.
	TTL time.Duration
}

// WaitOptions adjusts how a decision is waited for: polls with a growing pause in between,
// within a total budget. A nil *WaitOptions, and every zero field, means the default of the
// relay's SDKs. The context bounds the wait as well: its end cancels the wait.
type WaitOptions struct {
	InitialInterval time.Duration // pause after the first poll (default 400 ms)
	Multiplier      float64       // growth of the pause, at least 1 (default 1.6)
	MaxInterval     time.Duration // longest pause (default 30 s)
	// MaxWait is the whole wait's budget (default 15 minutes), then the call fails with
	// CodeWaitTimedOut; it is never overrun.
	MaxWait time.Duration
	Jitter  float64 // fraction in [0, 1] of each pause randomised away (default 0)
}

// SendDecision routes a decision to every device of identityID (one encrypted copy per
// device, all devices concurrently) and returns without waiting for an answer. It succeeds
// when the devices could be listed, even if some or all deliveries failed: see
// SendResult.Deliveries and SendResult.AcceptedDecisionID.
//
// payload is a json.RawMessage, whose bytes are sent exactly as given, or any value that
// encoding/json marshals to a JSON object (the bytes of json.Marshal are sent). Either way
// the library checks them (a UTF-8 JSON object without duplicate keys, at most 64 KiB: else
// CodeInvalidPayload) and the result's PlaintextSHA256 is the SHA-256 of those bytes.
func (c *Client) SendDecision(ctx context.Context, identityID string, payload any, opts *SendOptions) (*SendResult, error) {
	id, err := cString("identityID", identityID)
	if err != nil {
		return nil, err
	}
	body, err := marshalPayload(payload)
	if err != nil {
		return nil, err
	}
	send, err := opts.build()
	if err != nil {
		return nil, err
	}
	defer C.noxy_send_options_free(send)
	return call[*SendResult](ctx, c, func(client *C.noxy_client, h C.uintptr_t, op **C.noxy_operation) *C.noxy_error {
		p, n := payloadRef(body)
		return C.noxy_go_send(client, id, p, n, send, h, op)
	})
}

// SendDecisionAndWaitForOutcome routes a decision to every device of identityID, as
// SendDecision, then waits on the first delivery the relay accepted until the decision is
// APPROVED, REJECTED or EXPIRED. It fails with CodeNoDecisionID, and the per-device results
// in Error.Deliveries, when no device accepted the decision; errors while waiting carry the
// per-device results too. send and wait may be nil.
func (c *Client) SendDecisionAndWaitForOutcome(ctx context.Context, identityID string, payload any, send *SendOptions, wait *WaitOptions) (*DecisionResult, error) {
	id, err := cString("identityID", identityID)
	if err != nil {
		return nil, err
	}
	body, err := marshalPayload(payload)
	if err != nil {
		return nil, err
	}
	sendOpts, err := send.build()
	if err != nil {
		return nil, err
	}
	defer C.noxy_send_options_free(sendOpts)
	waitOpts, err := wait.build()
	if err != nil {
		return nil, err
	}
	defer C.noxy_wait_options_free(waitOpts)
	return call[*DecisionResult](ctx, c, func(client *C.noxy_client, h C.uintptr_t, op **C.noxy_operation) *C.noxy_error {
		p, n := payloadRef(body)
		return C.noxy_go_send_and_wait(client, id, p, n, sendOpts, waitOpts, h, op)
	})
}

// GetDecisionOutcome asks the relay once for the state of decisionID of identityID; the
// outcome may be OutcomePending. An unknown decision is CodeNotFound.
func (c *Client) GetDecisionOutcome(ctx context.Context, decisionID, identityID string) (*DecisionResult, error) {
	decision, err := cString("decisionID", decisionID)
	if err != nil {
		return nil, err
	}
	id, err := cString("identityID", identityID)
	if err != nil {
		return nil, err
	}
	return call[*DecisionResult](ctx, c, func(client *C.noxy_client, h C.uintptr_t, op **C.noxy_operation) *C.noxy_error {
		return C.noxy_go_get_outcome(client, decision, id, h, op)
	})
}

// WaitForDecisionOutcome polls until decisionID of identityID is APPROVED, REJECTED or
// EXPIRED, within the budget of wait (nil: 15 minutes), then fails with CodeWaitTimedOut.
func (c *Client) WaitForDecisionOutcome(ctx context.Context, decisionID, identityID string, wait *WaitOptions) (*DecisionResult, error) {
	decision, err := cString("decisionID", decisionID)
	if err != nil {
		return nil, err
	}
	id, err := cString("identityID", identityID)
	if err != nil {
		return nil, err
	}
	waitOpts, err := wait.build()
	if err != nil {
		return nil, err
	}
	defer C.noxy_wait_options_free(waitOpts)
	return call[*DecisionResult](ctx, c, func(client *C.noxy_client, h C.uintptr_t, op **C.noxy_operation) *C.noxy_error {
		return C.noxy_go_wait(client, decision, id, waitOpts, h, op)
	})
}

// GetQuota returns the app's quota.
func (c *Client) GetQuota(ctx context.Context) (*Quota, error) {
	return call[*Quota](ctx, c, func(client *C.noxy_client, h C.uintptr_t, op **C.noxy_operation) *C.noxy_error {
		return C.noxy_go_get_quota(client, h, op)
	})
}

// GetIdentityDevices returns the devices registered for identityID (none for an identity
// the relay does not know).
func (c *Client) GetIdentityDevices(ctx context.Context, identityID string) ([]Device, error) {
	id, err := cString("identityID", identityID)
	if err != nil {
		return nil, err
	}
	return call[[]Device](ctx, c, func(client *C.noxy_client, h C.uintptr_t, op **C.noxy_operation) *C.noxy_error {
		return C.noxy_go_get_devices(client, id, h, op)
	})
}

// Version is the version of the linked libnoxy, "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.noxy_version()) }

// call runs an operation and gives its result its type.
func call[T any](ctx context.Context, c *Client, start starter) (T, error) {
	v, err := c.run(ctx, start)
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}

// marshalPayload returns the payload's bytes: a json.RawMessage as is, anything else through
// json.Marshal. The library validates them.
func marshalPayload(payload any) ([]byte, error) {
	switch p := payload.(type) {
	case json.RawMessage:
		return p, nil
	case *json.RawMessage:
		if p != nil {
			return *p, nil
		}
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, bindingError(CodeInvalidPayload, "the payload cannot be marshalled to JSON", err)
	}
	return b, nil
}

// emptyPayload gives an empty payload a valid address, so that the library judges it as a
// payload (not JSON: CodeInvalidPayload) rather than as a NULL argument.
var emptyPayload [1]byte

// payloadRef is the (pointer, length) pair of body, in Go memory the library copies during
// the call.
func payloadRef(body []byte) (*C.char, C.size_t) {
	if len(body) == 0 {
		return (*C.char)(unsafe.Pointer(&emptyPayload[0])), 0
	}
	return (*C.char)(unsafe.Pointer(&body[0])), C.size_t(len(body))
}

// build returns native send options for o (nil for defaults), which the caller frees.
func (o *SendOptions) build() (*C.noxy_send_options, error) {
	if o == nil {
		return nil, nil
	}
	opts := C.noxy_send_options_new()
	fail := func(err error) (*C.noxy_send_options, error) {
		C.noxy_send_options_free(opts)
		return nil, err
	}
	if o.IdempotencyKey != "" {
		key, err := cString("SendOptions.IdempotencyKey", o.IdempotencyKey)
		if err != nil {
			return fail(err)
		}
		if err := errorOrNil(C.noxy_send_options_set_idempotency_key(opts, key)); err != nil {
			return fail(err)
		}
	}
	if o.TTL != 0 {
		secs, err := seconds("SendOptions.TTL", o.TTL)
		if err != nil {
			return fail(err)
		}
		if err := errorOrNil(C.noxy_send_options_set_ttl_seconds(opts, secs)); err != nil {
			return fail(err)
		}
	}
	return opts, nil
}

// build returns native wait options for o (nil for defaults), which the caller frees.
func (o *WaitOptions) build() (*C.noxy_wait_options, error) {
	if o == nil {
		return nil, nil
	}
	opts := C.noxy_wait_options_new()
	fail := func(err error) (*C.noxy_wait_options, error) {
		C.noxy_wait_options_free(opts)
		return nil, err
	}
	durations := []struct {
		name   string
		value  time.Duration
		setter func(C.uint64_t) *C.noxy_error
	}{
		{"InitialInterval", o.InitialInterval, func(ms C.uint64_t) *C.noxy_error {
			return C.noxy_wait_options_set_initial_interval_ms(opts, ms)
		}},
		{"MaxInterval", o.MaxInterval, func(ms C.uint64_t) *C.noxy_error {
			return C.noxy_wait_options_set_max_interval_ms(opts, ms)
		}},
		{"MaxWait", o.MaxWait, func(ms C.uint64_t) *C.noxy_error {
			return C.noxy_wait_options_set_max_wait_ms(opts, ms)
		}},
	}
	for _, d := range durations {
		if d.value == 0 {
			continue
		}
		ms, err := millis("WaitOptions."+d.name, d.value)
		if err != nil {
			return fail(err)
		}
		if err := errorOrNil(d.setter(ms)); err != nil {
			return fail(err)
		}
	}
	if o.Multiplier != 0 {
		if err := errorOrNil(C.noxy_wait_options_set_multiplier(opts, C.double(o.Multiplier))); err != nil {
			return fail(err)
		}
	}
	if o.Jitter != 0 {
		if err := errorOrNil(C.noxy_wait_options_set_jitter(opts, C.double(o.Jitter))); err != nil {
			return fail(err)
		}
	}
	return opts, nil
}
