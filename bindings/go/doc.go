// Package noxy is the Go binding of libnoxy: it puts a person in the loop through the Noxy
// relay. An agent about to do something consequential routes an end-to-end encrypted
// decision (a JSON object) to the devices a person registered and waits until the person
// approves, rejects, or the decision expires.
//
// The package is a thin layer over libnoxy's C ABI (noxy.h). Every call runs on the C
// library's async API: a goroutine that waits for a decision waits on a channel, not in a
// blocked OS thread, so thousands of concurrent waits cost thousands of goroutines and a
// handful of threads. Every call takes a context.Context, whose cancellation or deadline
// cancels the native operation; the error then has Code CodeCancelled and wraps ctx.Err().
// Results are plain Go values copied out of the library's objects, which are freed at once.
//
// Errors are *Error values with the library's stable Code, its Message and, for errors of a
// routed decision, the per-device Deliveries; errors.Is matches them against the Err*
// sentinels (errors.Is(err, noxy.ErrWaitTimedOut)).
//
// Linking: by default through pkg-config (package noxy, the shared libnoxy.so); with the
// build tag noxy_static, libnoxy.a is linked into the binary. The repository's README has
// the commands.
package noxy
