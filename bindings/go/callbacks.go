package noxy

// The Go trampolines libnoxy's callbacks reach through shim.c. Each completion trampoline
// runs on the client's completion thread, exactly once per started operation: it takes the
// operation's runtime/cgo.Handle (deleting it), copies the result or error out of its C
// object, frees that object at once, and hands the copy to the waiting goroutine over a
// channel with room for it, so it never blocks the completion thread.

// #include <stdint.h>
// #include <noxy.h>
import "C"

import "runtime/cgo"

// completion is what an operation's callback hands to the goroutine that waits for it:
// exactly one of value and err is set.
type completion struct {
	value any
	err   *Error
}

// deliver sends c to the channel behind handle and deletes the handle.
func deliver(handle C.uintptr_t, c completion) {
	h := cgo.Handle(handle)
	done := h.Value().(chan completion)
	h.Delete()
	done <- c
}

//export noxyGoDecisionDone
func noxyGoDecisionDone(handle C.uintptr_t, err *C.noxy_error, result *C.noxy_decision_result) {
	if err != nil {
		deliver(handle, completion{err: takeError(err)})
		return
	}
	deliver(handle, completion{value: takeDecisionResult(result)})
}

//export noxyGoSendDone
func noxyGoSendDone(handle C.uintptr_t, err *C.noxy_error, result *C.noxy_send_result) {
	if err != nil {
		deliver(handle, completion{err: takeError(err)})
		return
	}
	deliver(handle, completion{value: takeSendResult(result)})
}

//export noxyGoQuotaDone
func noxyGoQuotaDone(handle C.uintptr_t, err *C.noxy_error, result *C.noxy_quota) {
	if err != nil {
		deliver(handle, completion{err: takeError(err)})
		return
	}
	deliver(handle, completion{value: takeQuota(result)})
}

//export noxyGoDevicesDone
func noxyGoDevicesDone(handle C.uintptr_t, err *C.noxy_error, result *C.noxy_devices) {
	if err != nil {
		deliver(handle, completion{err: takeError(err)})
		return
	}
	deliver(handle, completion{value: takeDevices(result)})
}

//export noxyGoLog
func noxyGoLog(level C.int32_t, message *C.char, handle C.uintptr_t) {
	cgo.Handle(handle).Value().(*logSink).log(int32(level), C.GoString(message))
}

//export noxyGoLogRelease
func noxyGoLogRelease(handle C.uintptr_t) {
	releaseLogSink(cgo.Handle(handle))
}
