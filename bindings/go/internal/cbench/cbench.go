// Package cbench is the C baseline of the Go binding's benchmark: a client made and driven
// with libnoxy's C API directly (async send-and-wait, a condition variable to wait for the
// callbacks), so that the binding's decisions/s can be compared with the C API's on the same
// relay in one run. Only the tests use it.
package cbench

// #include <stdlib.h>
// #include "cbench.h"
import "C"

import (
	"errors"
	"time"
	"unsafe"
)

// Client is a libnoxy client created through the C API.
type Client struct {
	ptr  *C.noxy_client
	wait *C.noxy_wait_options
}

// Wait is the polling of the waits (the fields of noxy_wait_options).
type Wait struct {
	InitialInterval, MaxInterval, MaxWait time.Duration
	Multiplier                            float64
}

// NewClient creates a client of endpoint with the library's defaults, trusting the CA at
// caPath; its send-and-wait decisions poll as wait says.
func NewClient(endpoint, token, caPath string, wait Wait) (*Client, error) {
	config := C.noxy_config_new()
	defer C.noxy_config_free(config)
	for _, set := range []func() *C.noxy_error{
		func() *C.noxy_error {
			s := C.CString(endpoint)
			defer C.free(unsafe.Pointer(s))
			return C.noxy_config_set_endpoint(config, s)
		},
		func() *C.noxy_error {
			s := C.CString(token)
			defer C.free(unsafe.Pointer(s))
			return C.noxy_config_set_app_token(config, s)
		},
		func() *C.noxy_error {
			s := C.CString(caPath)
			defer C.free(unsafe.Pointer(s))
			return C.noxy_config_set_ca_pem_file(config, s)
		},
	} {
		if err := check(set()); err != nil {
			return nil, err
		}
	}
	c := &Client{wait: C.noxy_wait_options_new()}
	for _, err := range []*C.noxy_error{
		C.noxy_wait_options_set_initial_interval_ms(c.wait, C.uint64_t(wait.InitialInterval.Milliseconds())),
		C.noxy_wait_options_set_multiplier(c.wait, C.double(wait.Multiplier)),
		C.noxy_wait_options_set_max_interval_ms(c.wait, C.uint64_t(wait.MaxInterval.Milliseconds())),
		C.noxy_wait_options_set_max_wait_ms(c.wait, C.uint64_t(wait.MaxWait.Milliseconds())),
	} {
		if err := check(err); err != nil {
			C.noxy_wait_options_free(c.wait)
			return nil, err
		}
	}
	if err := check(C.noxy_client_new(config, &c.ptr)); err != nil {
		C.noxy_wait_options_free(c.wait)
		return nil, err
	}
	return c, nil
}

// SendAndWait runs n send-and-wait decisions of payload to identity at once and returns when
// every callback has run, with the number that failed or were not approved.
func (c *Client) SendAndWait(identity string, payload []byte, n int) int {
	id := C.CString(identity)
	defer C.free(unsafe.Pointer(id))
	body := C.CBytes(payload)
	defer C.free(body)
	return int(C.cbench_send_and_wait(c.ptr, id, (*C.char)(body), C.size_t(len(payload)), c.wait, C.long(n)))
}

// Close releases the client.
func (c *Client) Close() {
	C.noxy_free(c.ptr)
	C.noxy_wait_options_free(c.wait)
}

func check(err *C.noxy_error) error {
	if err == nil {
		return nil
	}
	defer C.noxy_error_free(err)
	return errors.New(C.GoString(C.noxy_error_message(err)))
}
