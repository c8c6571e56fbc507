package noxy_test

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	noxy "github.com/noxy-network/libnoxy/bindings/go"
	"github.com/noxy-network/libnoxy/bindings/go/internal/cbench"
)

// The benchmarks route b.N decisions to alice (who approves at once) and wait for each,
// all in flight together, on the tests' relay:
//
//	c-async      libnoxy's C API directly: noxy_send_and_wait_async in a loop, a condition
//	             variable until every callback ran (internal/cbench)
//	go-binding   the binding: one goroutine per decision, SendDecisionAndWaitForOutcome with
//	             the same payload bytes (a json.RawMessage) and the same polling
//	go-struct    the same, with a Go struct that the binding marshals
//
// decisions/s is the figure to compare; cpu-us/decision is this process's CPU time (user +
// system, so the library's threads as well as Go's, not the relay's) per decision, which
// other load on the machine disturbs less. bench.sh runs the benchmark several times,
// alternating, and prints the medians.
var benchPayload = json.RawMessage(`{"kind":"tool","tool":"deploy","title":"Deploy to prod","args":{"n":1}}`)

var benchWait = &noxy.WaitOptions{
	InitialInterval: 25 * time.Millisecond,
	Multiplier:      1.5,
	MaxInterval:     250 * time.Millisecond,
	MaxWait:         60 * time.Second,
}

func BenchmarkSendAndWait(b *testing.B) {
	b.Run("c-async", func(b *testing.B) {
		client, err := cbench.NewClient(relay.endpoint, relay.token, relay.caPath, cbench.Wait{
			InitialInterval: benchWait.InitialInterval, Multiplier: benchWait.Multiplier,
			MaxInterval: benchWait.MaxInterval, MaxWait: benchWait.MaxWait,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer client.Close()
		warmUp(b, func(n int) int { return client.SendAndWait("alice", benchPayload, n) })
		b.ResetTimer()
		cpu := cpuTime()
		if failed := client.SendAndWait("alice", benchPayload, b.N); failed != 0 {
			b.Fatalf("%d of %d decisions failed", failed, b.N)
		}
		report(b, cpuTime()-cpu)
	})
	for _, variant := range []struct {
		name    string
		payload any
	}{
		{"go-binding", benchPayload},
		{"go-struct", action{Kind: "tool", Title: "Deploy to prod", Args: map[string]any{"n": 1}}},
	} {
		b.Run(variant.name, func(b *testing.B) {
			client := newClient(b, func(c *noxy.Config) { c.RequestTimeout = 0 })
			run := func(n int) int {
				var wg sync.WaitGroup
				var failed atomic.Int64
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := client.SendDecisionAndWaitForOutcome(b.Context(), "alice", variant.payload, nil, benchWait)
						if err != nil || res.Outcome != noxy.OutcomeApproved {
							failed.Add(1)
						}
					}()
				}
				wg.Wait()
				return int(failed.Load())
			}
			warmUp(b, run)
			b.ResetTimer()
			cpu := cpuTime()
			if failed := run(b.N); failed != 0 {
				b.Fatalf("%d of %d decisions failed", failed, b.N)
			}
			report(b, cpuTime()-cpu)
		})
	}
}

// warmUp connects the client and runs a few decisions before the timer starts.
func warmUp(b *testing.B, run func(n int) int) {
	b.Helper()
	if failed := run(10); failed != 0 {
		b.Fatalf("warm-up: %d of 10 decisions failed", failed)
	}
}

func report(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/decision")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
