package noxy

// #include "shim.h"
import "C"

import (
	"context"
	"log/slog"
	"runtime/cgo"
	"sync/atomic"
	"time"
)

// LevelTrace is the slog level of the library's TRACE events (very verbose detail, including
// the HTTP/2 and TLS layers), below slog.LevelDebug. The library's ERROR, WARN, INFO and
// DEBUG events have slog's levels of the same names.
const LevelTrace = slog.LevelDebug - 4

// The library's log levels (noxy_log_level), most severe first; 0 is "off".
var slogLevels = [...]slog.Level{
	C.NOXY_LOG_ERROR: slog.LevelError,
	C.NOXY_LOG_WARN:  slog.LevelWarn,
	C.NOXY_LOG_INFO:  slog.LevelInfo,
	C.NOXY_LOG_DEBUG: slog.LevelDebug,
	C.NOXY_LOG_TRACE: LevelTrace,
}

// logSink is the user_data of a log callback: the handler the events go to. Its
// runtime/cgo.Handle is deleted by the library's free_user_data call (noxyGoLogRelease).
type logSink struct {
	handler slog.Handler
}

// liveLogSinks counts the log sinks the library has not released yet (for the tests: every
// one is released once its clients and configuration are gone).
var liveLogSinks atomic.Int64

// newLogSink returns the handle to give the library as a log callback's user_data.
func newLogSink(handler slog.Handler) cgo.Handle {
	liveLogSinks.Add(1)
	return cgo.NewHandle(&logSink{handler: handler})
}

// releaseLogSink deletes a log sink's handle: from free_user_data, or when the library did
// not take it.
func releaseLogSink(h cgo.Handle) {
	h.Delete()
	liveLogSinks.Add(-1)
}

// log is called by the library on any thread, possibly concurrently; slog handlers are safe
// for concurrent use. The handler must not call this package (the library refuses calls from
// inside a log callback).
func (s *logSink) log(level int32, message string) {
	if level < C.NOXY_LOG_ERROR || level > C.NOXY_LOG_TRACE {
		return
	}
	lvl := slogLevels[level]
	ctx := context.Background()
	if !s.handler.Enabled(ctx, lvl) {
		return
	}
	_ = s.handler.Handle(ctx, slog.NewRecord(time.Now(), lvl, message, 0))
}

// maxLogLevel is the most verbose library level whose events handler wants, asked once (the
// library filters by it before formatting an event); NOXY_LOG_OFF when it wants none.
func maxLogLevel(handler slog.Handler) C.int32_t {
	for level := C.NOXY_LOG_TRACE; level >= C.NOXY_LOG_ERROR; level-- {
		if handler.Enabled(context.Background(), slogLevels[level]) {
			return C.int32_t(level)
		}
	}
	return C.NOXY_LOG_OFF
}

// SetLogger routes the library's log events of every client without a Config.Logger of its
// own to logger (process-wide); nil turns that logging off (the default). The most verbose
// level is taken once from logger.Enabled: with a slog.LevelVar, call SetLogger again after
// lowering the level. Events are plain messages; the token and payloads never appear in them.
// The logger's handler may be called on any thread, concurrently, and must not call this
// package.
func SetLogger(logger *slog.Logger) error {
	if logger == nil {
		return errorOrNil(C.noxy_go_set_process_logger(0, C.NOXY_LOG_OFF))
	}
	level := maxLogLevel(logger.Handler())
	if level == C.NOXY_LOG_OFF {
		return errorOrNil(C.noxy_go_set_process_logger(0, C.NOXY_LOG_OFF))
	}
	h := newLogSink(logger.Handler())
	if err := C.noxy_go_set_process_logger(C.uintptr_t(h), level); err != nil {
		releaseLogSink(h) // on failure the library took nothing
		return takeError(err)
	}
	return nil
}

// errorOrNil turns a library error into a Go error, keeping a nil error untyped.
func errorOrNil(err *C.noxy_error) error {
	if err == nil {
		return nil
	}
	return takeError(err)
}
