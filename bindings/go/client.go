package noxy

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Config configures a Client. Endpoint and AppToken are required; every other zero value
// means the library's default. The library checks every value in NewClient, and its error
// names the first invalid one.
type Config struct {
	// Endpoint of the relay: "https://relay.noxy.network", "host:port" (always TLS; port 443
	// when none is given).
	Endpoint string
	// AppToken is the app's bearer token (visible ASCII); never logged.
	AppToken string
	// DecisionTTL is how long the relay keeps a decision open before it is EXPIRED: whole
	// seconds (rounded up), at least one. Default 600 s.
	DecisionTTL time.Duration
	// CAPEM trusts only these root certificates (PEM) instead of the public web PKI, for a
	// private or development relay. CAPEMFile reads them from a file instead; set one at most.
	CAPEM     []byte
	CAPEMFile string
	// ConnectTimeout bounds DNS, TCP and the TLS handshake together (default 10 s);
	// RequestTimeout bounds each single attempt of a relay call (default 30 s). Durations are
	// rounded up to whole milliseconds.
	ConnectTimeout time.Duration
	RequestTimeout time.Duration
	// MaxAttempts caps the attempts per relay call for transient failures, the first
	// included: 1 disables retries; 0 (the default) leaves retries bounded by RetryBudget only.
	MaxAttempts int
	// RetryBudget is how long after a call's first attempt a retry may still start (default
	// 30 s). To disable retries, set MaxAttempts to 1.
	RetryBudget time.Duration
	// RetryBackoff sets the pause between retries; nil keeps the default (100 ms, doubling,
	// at most 2 s, 20 % jitter).
	RetryBackoff *Backoff
	// MaxConcurrentRequests bounds the relay calls in flight on the connection (1 to 10 000;
	// default 100); further calls wait their turn.
	MaxConcurrentRequests int
	// WorkerThreads is the number of the client's runtime worker threads (1 to 64; default 2).
	WorkerThreads int
	// SharedRuntime makes the client use one process-wide runtime and completion thread,
	// shared by every client so configured, instead of its own.
	SharedRuntime bool
	// UserAgent is sent with every call (visible ASCII); empty keeps the library's.
	UserAgent string
	// Logger receives this client's log events (else the process-wide SetLogger one, if any).
	// The most verbose level is taken once, from Logger.Enabled, when the client is created;
	// the library's TRACE events have the level LevelTrace. The handler may be called on any
	// thread, concurrently, and must not call this package.
	Logger *slog.Logger
}

// Backoff is the pause between retries of a relay call: Initial before the second attempt,
// multiplied by Multiplier (at least 1) after each retry, at most Max (not below Initial),
// with a Jitter fraction in [0, 1] randomised away. Every field is passed as given.
type Backoff struct {
	Initial    time.Duration
	Multiplier float64
	Max        time.Duration
	Jitter     float64
}

// Client is a client of the Noxy relay. It is safe for concurrent use by any number of
// goroutines: every call runs on libnoxy's async API, so a goroutine waiting for a decision
// holds no OS thread. Close releases it; a Client that becomes unreachable without Close is
// released by the garbage collector, which is a safety net, not a substitute for Close.
type Client struct {
	// mu guards ptr: calls hold it for reading while they are inside a libnoxy function with
	// the client (only while an operation starts, never while they wait for it), and Close
	// holds it for writing while it takes ptr, so that no thread is inside a call with the
	// client when noxy_free runs, as the C ABI requires.
	mu       sync.RWMutex
	ptr      *C.noxy_client
	cleanup  runtime.Cleanup
	inFlight atomic.Int64 // started operations whose callback has not been received yet
}

// NewClient creates a client from cfg. It does not connect: the relay is contacted on the
// first call.
func NewClient(cfg Config) (*Client, error) {
	config, err := cfg.build()
	if err != nil {
		return nil, err
	}
	defer C.noxy_config_free(config)
	var ptr *C.noxy_client
	if cerr := C.noxy_client_new(config, &ptr); cerr != nil {
		return nil, takeError(cerr)
	}
	c := &Client{ptr: ptr}
	// noxy_free never blocks and is safe from the cleanup goroutine. The cleanup runs only
	// once c is unreachable, hence when no method of c is running (each ends with
	// runtime.KeepAlive(c)).
	c.cleanup = runtime.AddCleanup(c, func(p *C.noxy_client) { C.noxy_free(p) }, ptr)
	return c, nil
}

// Close releases the client. Calls in flight end at once with an error whose Code is
// CodeCancelled, and so does every later call. Close is idempotent and safe to call from any
// goroutine while other calls are in flight; it never blocks on the relay.
func (c *Client) Close() error {
	c.mu.Lock()
	p := c.ptr
	c.ptr = nil
	c.mu.Unlock()
	if p != nil {
		c.cleanup.Stop()
		// Operations still outstanding keep the native client alive until their callbacks
		// have run; those callbacks report CodeCancelled to their waiting goroutines.
		C.noxy_free(p)
	}
	return nil
}

// errClosed is returned by calls on a closed client, with the code the library itself gives
// calls on a closed client.
func errClosed() *Error { return bindingError(CodeCancelled, "the client is closed", nil) }

// starter starts one async operation on client, with handle as its user_data, writing the
// operation to *op. It is called with the client's read lock held.
type starter func(client *C.noxy_client, handle C.uintptr_t, op **C.noxy_operation) *C.noxy_error

// run starts an operation and waits for its callback or for ctx. When ctx ends first, it
// cancels the operation and still waits for its callback (which then comes at once), so that
// the operation's result or error is never lost; a cancelled operation's error then wraps
// ctx.Err().
func (c *Client) run(ctx context.Context, start starter) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, bindingError(CodeCancelled, "the context ended before the call started", err)
	}
	done := make(chan completion, 1)
	handle := cgo.NewHandle(done)
	op := new(*C.noxy_operation)

	c.mu.RLock()
	if c.ptr == nil {
		c.mu.RUnlock()
		handle.Delete()
		return nil, errClosed()
	}
	cerr := start(c.ptr, C.uintptr_t(handle), op)
	c.mu.RUnlock()
	if cerr != nil {
		handle.Delete() // the callback will never run
		return nil, takeError(cerr)
	}
	c.inFlight.Add(1)

	var result completion
	select {
	case result = <-done:
	case <-ctx.Done():
		// Any thread may cancel, also after Close; a finished operation is left as it was.
		// Cancelling fails only for a NULL operation or in a forked child, where the
		// operation belongs to the parent; the callback is awaited all the same.
		if cerr := C.noxy_operation_cancel(*op); cerr != nil {
			C.noxy_error_free(cerr)
		}
		result = <-done
		if result.err != nil && result.err.Code == CodeCancelled {
			result.err.cause = ctx.Err()
		}
	}
	c.inFlight.Add(-1)
	C.noxy_operation_free(*op)
	// Keep c, hence the native client, reachable until the operation has ended: a client
	// dropped by its user while a call waits must not be freed under that call.
	runtime.KeepAlive(c)
	if result.err != nil {
		return nil, result.err
	}
	return result.value, nil
}

// build turns cfg into a native configuration, which the caller frees.
func (cfg *Config) build() (*C.noxy_config, error) {
	config := C.noxy_config_new()
	if err := cfg.apply(config); err != nil {
		C.noxy_config_free(config)
		return nil, err
	}
	return config, nil
}

func (cfg *Config) apply(config *C.noxy_config) error {
	if cfg.Endpoint != "" {
		s, err := cString("Endpoint", cfg.Endpoint)
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_endpoint(config, s)); err != nil {
			return err
		}
	}
	if cfg.AppToken != "" {
		s, err := cString("AppToken", cfg.AppToken)
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_app_token(config, s)); err != nil {
			return err
		}
	}
	if cfg.DecisionTTL != 0 {
		secs, err := seconds("DecisionTTL", cfg.DecisionTTL)
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_decision_ttl_seconds(config, secs)); err != nil {
			return err
		}
	}
	if cfg.CAPEM != nil && cfg.CAPEMFile != "" {
		return bindingError(CodeInvalidArgument, "Config: set CAPEM or CAPEMFile, not both", nil)
	}
	if cfg.CAPEM != nil {
		s, err := cString("CAPEM", string(cfg.CAPEM))
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_ca_pem(config, s)); err != nil {
			return err
		}
	}
	if cfg.CAPEMFile != "" {
		s, err := cString("CAPEMFile", cfg.CAPEMFile)
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_ca_pem_file(config, s)); err != nil {
			return err
		}
	}
	durations := []struct {
		name   string
		value  time.Duration
		setter func(C.uint64_t) *C.noxy_error
	}{
		{"ConnectTimeout", cfg.ConnectTimeout, func(ms C.uint64_t) *C.noxy_error {
			return C.noxy_config_set_connect_timeout_ms(config, ms)
		}},
		{"RequestTimeout", cfg.RequestTimeout, func(ms C.uint64_t) *C.noxy_error {
			return C.noxy_config_set_request_timeout_ms(config, ms)
		}},
		{"RetryBudget", cfg.RetryBudget, func(ms C.uint64_t) *C.noxy_error {
			return C.noxy_config_set_retry_budget_ms(config, ms)
		}},
	}
	for _, d := range durations {
		if d.value == 0 {
			continue
		}
		ms, err := millis("Config."+d.name, d.value)
		if err != nil {
			return err
		}
		if err := errorOrNil(d.setter(ms)); err != nil {
			return err
		}
	}
	if cfg.MaxAttempts != 0 {
		n, err := uint32Of("MaxAttempts", cfg.MaxAttempts)
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_max_attempts(config, n)); err != nil {
			return err
		}
	}
	if b := cfg.RetryBackoff; b != nil {
		initial, err := millis("Config.RetryBackoff.Initial", b.Initial)
		if err != nil {
			return err
		}
		maxMs, err := millis("Config.RetryBackoff.Max", b.Max)
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_retry_backoff(config, initial, C.double(b.Multiplier),
			maxMs, C.double(b.Jitter))); err != nil {
			return err
		}
	}
	if cfg.MaxConcurrentRequests != 0 {
		n, err := uint32Of("MaxConcurrentRequests", cfg.MaxConcurrentRequests)
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_max_concurrent_requests(config, n)); err != nil {
			return err
		}
	}
	if cfg.WorkerThreads != 0 {
		n, err := uint32Of("WorkerThreads", cfg.WorkerThreads)
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_worker_threads(config, n)); err != nil {
			return err
		}
	}
	if cfg.SharedRuntime {
		if err := errorOrNil(C.noxy_config_set_shared_runtime(config, 1)); err != nil {
			return err
		}
	}
	if cfg.UserAgent != "" {
		s, err := cString("UserAgent", cfg.UserAgent)
		if err != nil {
			return err
		}
		if err := errorOrNil(C.noxy_config_set_user_agent(config, s)); err != nil {
			return err
		}
	}
	if cfg.Logger != nil {
		handler := cfg.Logger.Handler()
		if level := maxLogLevel(handler); level != C.NOXY_LOG_OFF {
			h := newLogSink(handler)
			if cerr := C.noxy_go_config_set_logger(config, C.uintptr_t(h), level); cerr != nil {
				releaseLogSink(h) // on failure the library took nothing
				return takeError(cerr)
			}
		}
	}
	return nil
}

// cString returns s as a NUL-terminated C string in Go memory, which the library copies
// during the call (the caller keeps it alive until then). A NUL byte inside s would cut it
// short in the library, so such a string is refused.
func cString(name, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, bindingError(CodeInvalidArgument, name+" contains a NUL byte", nil)
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return (*C.char)(unsafe.Pointer(&b[0])), nil
}

// millis converts d to whole milliseconds, rounded up; negative durations are refused (the
// library checks the upper bound).
func millis(name string, d time.Duration) (C.uint64_t, error) {
	if d < 0 {
		return 0, bindingError(CodeInvalidArgument, name+" is negative", nil)
	}
	ms := d / time.Millisecond
	if d%time.Millisecond != 0 {
		ms++
	}
	return C.uint64_t(ms), nil
}

// seconds converts d to whole seconds, rounded up.
func seconds(name string, d time.Duration) (C.uint32_t, error) {
	if d < 0 {
		return 0, bindingError(CodeInvalidArgument, name+" is negative", nil)
	}
	s := d / time.Second
	if d%time.Second != 0 {
		s++
	}
	if s > math.MaxUint32 {
		return 0, bindingError(CodeInvalidArgument, name+" is too long", nil)
	}
	return C.uint32_t(s), nil
}

func uint32Of(name string, n int) (C.uint32_t, error) {
	if n < 0 || uint64(n) > math.MaxUint32 {
		return 0, bindingError(CodeInvalidArgument, name+" is out of range", nil)
	}
	return C.uint32_t(n), nil
}
