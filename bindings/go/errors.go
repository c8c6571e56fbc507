package noxy

// #include <noxy.h>
import "C"

// Code is one of libnoxy's stable error codes: the numbers of the C header's NOXY_ERROR_*
// (and of the Rust core's ErrorCode). A Code is itself an error, so that the sentinels below
// work with errors.Is, as syscall.Errno does.
type Code int32

// The error codes, equal to the C header's NOXY_OK and NOXY_ERROR_* values.
const (
	CodeOK               Code = 0  // NOXY_OK: no error
	CodeInvalidArgument  Code = 1  // an argument or configuration value is invalid
	CodeInvalidPayload   Code = 2  // not a UTF-8 JSON object, a duplicate key, or over 64 KiB
	CodeUnavailable      Code = 3  // the relay could not be reached (after the retry budget)
	CodeDeadlineExceeded Code = 4  // a relay call's own deadline (RequestTimeout) passed
	CodeUnauthenticated  Code = 5  // the relay did not accept the app token
	CodePermissionDenied Code = 6  // the relay refused the call for this app
	CodeRejected         Code = 7  // quota exhausted, app suspended, rate limited
	CodeNotFound         Code = 8  // no such decision for this identity in this app
	CodeWaitTimedOut     Code = 9  // the wait budget (WaitOptions.MaxWait) ran out
	CodeCancelled        Code = 10 // cancelled by the context, or the client was closed
	CodeNoDecisionID     Code = 11 // no device accepted the decision: nothing to wait on
	CodeProtocol         Code = 12 // the relay's answer was malformed
	CodeInternal         Code = 13 // a bug in the library, or the relay's internal error
)

// Sentinel errors for errors.Is: errors.Is(err, noxy.ErrWaitTimedOut) is true when err is (or
// wraps) a *Error whose Code is CodeWaitTimedOut. Each sentinel is its Code.
var (
	ErrInvalidArgument  error = CodeInvalidArgument
	ErrInvalidPayload   error = CodeInvalidPayload
	ErrUnavailable      error = CodeUnavailable
	ErrDeadlineExceeded error = CodeDeadlineExceeded
	ErrUnauthenticated  error = CodeUnauthenticated
	ErrPermissionDenied error = CodePermissionDenied
	ErrRejected         error = CodeRejected
	ErrNotFound         error = CodeNotFound
	ErrWaitTimedOut     error = CodeWaitTimedOut
	ErrCancelled        error = CodeCancelled
	ErrNoDecisionID     error = CodeNoDecisionID
	ErrProtocol         error = CodeProtocol
	ErrInternal         error = CodeInternal
)

// String is the code's stable lower-case name ("wait_timed_out"), from the library;
// "unknown" for a number this version does not know.
func (c Code) String() string {
	return C.GoString(C.noxy_error_code_name(C.int32_t(c)))
}

// Error makes a Code usable as a sentinel error.
func (c Code) Error() string { return "noxy: " + c.String() }

// Error is what every failing call returns: the library's stable code and message, and for
// CodeNoDecisionID, errors while waiting after a send, and a cancelled send, the per-device
// results of the routed decision.
//
// When a call ended because its context was cancelled or passed its deadline, Code is
// CodeCancelled and the error wraps ctx.Err(): errors.Is(err, context.DeadlineExceeded)
// holds. An error made by the binding before reaching the library (a string with a NUL byte, a
// value encoding/json cannot marshal) wraps its cause in the same way.
type Error struct {
	Code       Code
	Message    string
	Deliveries []Delivery
	cause      error
}

// Error formats the error as "noxy: <code name>: <message>[: <cause>]".
func (e *Error) Error() string {
	s := "noxy: " + e.Code.String() + ": " + e.Message
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Is reports whether target is this error's Code (one of the Err* sentinels).
func (e *Error) Is(target error) bool {
	c, ok := target.(Code)
	return ok && c == e.Code
}

// Unwrap returns the cause: ctx.Err() for a call ended by its context, the encoding/json
// error for a payload that could not be marshalled, otherwise nil.
func (e *Error) Unwrap() error { return e.cause }

// takeError copies a library error into a *Error and frees it. err must not be NULL.
func takeError(err *C.noxy_error) *Error {
	e := &Error{
		Code:    Code(C.noxy_error_code(err)),
		Message: C.GoString(C.noxy_error_message(err)),
	}
	if n := int(C.noxy_error_delivery_count(err)); n > 0 {
		e.Deliveries = make([]Delivery, n)
		for i := range e.Deliveries {
			e.Deliveries[i] = copyDelivery(C.noxy_error_delivery(err, C.size_t(i)))
		}
	}
	C.noxy_error_free(err)
	return e
}

// bindingError is an error the binding reports itself, before calling the library.
func bindingError(code Code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, cause: cause}
}
