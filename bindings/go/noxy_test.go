package noxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	noxy "github.com/noxy-network/libnoxy/bindings/go"
)

// action is a payload as an agent would build it.
type action struct {
	Kind  string         `json:"kind"`
	Title string         `json:"title"`
	Args  map[string]any `json:"args,omitempty"`
}

var deploy = action{Kind: "tool", Title: "Deploy to prod", Args: map[string]any{"n": 1}}

// fastWait polls quickly so that tests finish soon, within a generous budget.
var fastWait = &noxy.WaitOptions{
	InitialInterval: 25 * time.Millisecond,
	Multiplier:      1.5,
	MaxInterval:     250 * time.Millisecond,
	MaxWait:         30 * time.Second,
}

// newClient returns a client of the test relay, closed at the end of the test; edit adjusts
// its configuration.
func newClient(t testing.TB, edit ...func(*noxy.Config)) *noxy.Client {
	t.Helper()
	cfg := noxy.Config{
		Endpoint:       relay.endpoint,
		AppToken:       relay.token,
		CAPEMFile:      relay.caPath,
		RequestTimeout: 10 * time.Second,
	}
	for _, e := range edit {
		e(&cfg)
	}
	client, err := noxy.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// waitFor polls cond every few milliseconds until it holds, failing the test after limit.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventually polls cond until it holds (true) or limit passes (false).
func eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// codeOf is the Code of a *noxy.Error inside err, or -1.
func codeOf(err error) noxy.Code {
	var e *noxy.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

// threadCount is this process's number of OS threads (Linux: /proc/self/status), or -1
// when it cannot be read.
func threadCount() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "Threads:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
				return n
			}
		}
	}
	return -1
}

// libraryThreads returns the ids of this process's threads named as libnoxy names its own
// (noxy-worker, noxy-callbacks). A thread that the Go runtime creates while it runs a callback
// on a library thread inherits that name (Linux copies it to a new thread), so only threads
// seen before any callback are known to be the library's.
func libraryThreads(t testing.TB) map[string]bool {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, task := range tasks {
		comm, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "comm"))
		if err == nil && strings.HasPrefix(string(comm), "noxy-") {
			ids[task.Name()] = true
		}
	}
	return ids
}

func TestVersionAndNames(t *testing.T) {
	if v := noxy.Version(); v != "0.1.0" {
		t.Errorf("Version() = %q, want the header's 0.1.0", v)
	}
	// The names come from the library for each number: a Go constant with a wrong number
	// would get another code's name.
	names := map[noxy.Code]string{
		noxy.CodeOK: "ok", noxy.CodeInvalidArgument: "invalid_argument",
		noxy.CodeInvalidPayload: "invalid_payload", noxy.CodeUnavailable: "unavailable",
		noxy.CodeDeadlineExceeded: "deadline_exceeded", noxy.CodeUnauthenticated: "unauthenticated",
		noxy.CodePermissionDenied: "permission_denied", noxy.CodeRejected: "rejected",
		noxy.CodeNotFound: "not_found", noxy.CodeWaitTimedOut: "wait_timed_out",
		noxy.CodeCancelled: "cancelled", noxy.CodeNoDecisionID: "no_decision_id",
		noxy.CodeProtocol: "protocol", noxy.CodeInternal: "internal", noxy.Code(99): "unknown",
	}
	for code, name := range names {
		if got := code.String(); got != name {
			t.Errorf("Code(%d).String() = %q, want %q", int32(code), got, name)
		}
	}
	sentinels := map[error]noxy.Code{
		noxy.ErrInvalidArgument: 1, noxy.ErrInvalidPayload: 2, noxy.ErrUnavailable: 3,
		noxy.ErrDeadlineExceeded: 4, noxy.ErrUnauthenticated: 5, noxy.ErrPermissionDenied: 6,
		noxy.ErrRejected: 7, noxy.ErrNotFound: 8, noxy.ErrWaitTimedOut: 9, noxy.ErrCancelled: 10,
		noxy.ErrNoDecisionID: 11, noxy.ErrProtocol: 12, noxy.ErrInternal: 13,
	}
	for sentinel, code := range sentinels {
		err := error(&noxy.Error{Code: code, Message: "m"})
		if !errors.Is(err, sentinel) {
			t.Errorf("errors.Is(Error{Code: %d}, %v) = false", code, sentinel)
		}
		if errors.Is(err, noxy.Code(code+1)) {
			t.Errorf("Error{Code: %d} matches code %d", code, code+1)
		}
	}
	if s := noxy.OutcomeApproved.String(); s != "APPROVED" {
		t.Errorf("OutcomeApproved = %q", s)
	}
	if s := noxy.DeliveryQueued.String(); s != "QUEUED" {
		t.Errorf("DeliveryQueued = %q", s)
	}
	if s := noxy.QuotaSuspended.String(); s != "SUSPENDED" {
		t.Errorf("QuotaSuspended = %q", s)
	}
}

func TestApprove(t *testing.T) {
	client := newClient(t)
	res, err := client.SendDecisionAndWaitForOutcome(t.Context(), "alice", deploy, nil, fastWait)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != noxy.OutcomeApproved || res.Pending {
		t.Fatalf("outcome %v pending %v, want APPROVED, not pending", res.Outcome, res.Pending)
	}
	body, _ := json.Marshal(deploy)
	if !res.HasPlaintextSHA256 || res.PlaintextSHA256 != sha256.Sum256(body) {
		t.Errorf("digest %x (set %v), want the SHA-256 of json.Marshal(payload) %x",
			res.PlaintextSHA256, res.HasPlaintextSHA256, sha256.Sum256(body))
	}
	if len(res.Deliveries) != 1 {
		t.Fatalf("%d deliveries, want 1", len(res.Deliveries))
	}
	d := res.Deliveries[0]
	if d.Status != noxy.DeliveryDelivered || d.DecisionID != res.DecisionID || d.Err != nil ||
		d.DeviceID == "" || d.RequestID == "" {
		t.Errorf("delivery %+v, want DELIVERED for decision %s", d, res.DecisionID)
	}
}

func TestReject(t *testing.T) {
	client := newClient(t)
	res, err := client.SendDecisionAndWaitForOutcome(t.Context(), "bob", deploy, nil, fastWait)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != noxy.OutcomeRejected {
		t.Fatalf("outcome %v, want REJECTED", res.Outcome)
	}
}

func TestExpire(t *testing.T) {
	client := newClient(t)
	start := time.Now()
	res, err := client.SendDecisionAndWaitForOutcome(t.Context(), "carol", deploy,
		&noxy.SendOptions{TTL: time.Second}, fastWait)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != noxy.OutcomeExpired || res.Pending {
		t.Fatalf("outcome %v pending %v, want EXPIRED", res.Outcome, res.Pending)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("expired after %v, before its 1 s TTL", elapsed)
	}
}

func TestSendGetWait(t *testing.T) {
	client := newClient(t)
	ctx := t.Context()
	raw := json.RawMessage(`{ "kind":"transfer", "title":"Send 1 ETH",  "amount":"1" }`)
	sent, err := client.SendDecision(ctx, "alice", raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sent.AcceptedDecisionID == "" || sent.AcceptedDecisionID != sent.DecisionID {
		t.Fatalf("accepted %q, decision %q", sent.AcceptedDecisionID, sent.DecisionID)
	}
	// A json.RawMessage is sent byte for byte (not compacted): the digest is of these bytes.
	if sent.PlaintextSHA256 != sha256.Sum256(raw) {
		t.Errorf("digest %x, want %x", sent.PlaintextSHA256, sha256.Sum256(raw))
	}
	if len(sent.Deliveries) != 1 || sent.Deliveries[0].Status != noxy.DeliveryDelivered {
		t.Errorf("deliveries %+v", sent.Deliveries)
	}

	once, err := client.GetDecisionOutcome(ctx, sent.AcceptedDecisionID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if once.Outcome != noxy.OutcomePending && once.Outcome != noxy.OutcomeApproved {
		t.Errorf("first outcome %v", once.Outcome)
	}
	if once.DecisionID != sent.AcceptedDecisionID || once.HasPlaintextSHA256 || once.Deliveries != nil {
		t.Errorf("GetDecisionOutcome result %+v", once)
	}

	final, err := client.WaitForDecisionOutcome(ctx, sent.AcceptedDecisionID, "alice", fastWait)
	if err != nil {
		t.Fatal(err)
	}
	if final.Outcome != noxy.OutcomeApproved {
		t.Errorf("outcome %v, want APPROVED", final.Outcome)
	}

	_, err = client.GetDecisionOutcome(ctx, "00000000-0000-4000-8000-000000000000", "alice")
	if !errors.Is(err, noxy.ErrNotFound) {
		t.Errorf("unknown decision: %v, want ErrNotFound", err)
	}

	// Carol never answers: a short budget ends in ErrWaitTimedOut. After a send, the error of
	// the waiting phase carries the deliveries.
	short := &noxy.WaitOptions{InitialInterval: 25 * time.Millisecond, MaxWait: 300 * time.Millisecond}
	_, err = client.SendDecisionAndWaitForOutcome(ctx, "carol", deploy, nil, short)
	var e *noxy.Error
	if !errors.Is(err, noxy.ErrWaitTimedOut) || !errors.As(err, &e) || len(e.Deliveries) != 1 ||
		e.Deliveries[0].Status != noxy.DeliveryDelivered || e.Deliveries[0].DecisionID == "" {
		t.Errorf("send and a short wait on carol: %#v, want ErrWaitTimedOut with carol's delivery", err)
	}
	pending, err := client.SendDecision(ctx, "carol", deploy, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.WaitForDecisionOutcome(ctx, pending.AcceptedDecisionID, "carol", short)
	if !errors.Is(err, noxy.ErrWaitTimedOut) {
		t.Errorf("short wait on carol: %v, want ErrWaitTimedOut", err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	client := newClient(t)
	ctx := t.Context()
	opts := &noxy.SendOptions{IdempotencyKey: "go-tests-" + strconv.FormatInt(time.Now().UnixNano(), 10)}
	first, err := client.SendDecision(ctx, "carol", deploy, opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := client.SendDecision(ctx, "carol", deploy, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.DecisionID != first.DecisionID {
		t.Errorf("same key and content: decision %s, then %s", first.DecisionID, again.DecisionID)
	}
	other, err := client.SendDecision(ctx, "carol", action{Kind: "tool", Title: "Deploy to staging"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if other.DecisionID == first.DecisionID {
		t.Errorf("same key, other content: the same decision %s", other.DecisionID)
	}
}

func TestContextCancel(t *testing.T) {
	client := newClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := client.SendDecisionAndWaitForOutcome(ctx, "carol", deploy, nil, fastWait)
		errc <- err
	}()
	waitFor(t, "the wait to start", 10*time.Second, func() bool { return noxy.InFlight(client) == 1 })
	cancel()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not end within 10 s of its context's cancellation")
	}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, noxy.ErrCancelled) {
		t.Fatalf("error %v, want one wrapping context.Canceled with ErrCancelled", err)
	}
	// Cancelled while sending or while waiting: the deliveries so far, if any, are carol's one
	// device's, either delivered or cut short by this very cancellation.
	var e *noxy.Error
	if !errors.As(err, &e) || len(e.Deliveries) > 1 {
		t.Fatalf("error %#v, want at most carol's delivery", e)
	}
	if len(e.Deliveries) == 1 {
		d := e.Deliveries[0]
		delivered := d.Status == noxy.DeliveryDelivered && d.Err == nil
		cutShort := d.Status == noxy.DeliveryError && errors.Is(d.Err, noxy.ErrCancelled)
		if !delivered && !cutShort {
			t.Errorf("delivery %#v (error %v), want delivered or cancelled", d, d.Err)
		}
	}
	if noxy.InFlight(client) != 0 {
		t.Errorf("%d operations still in flight", noxy.InFlight(client))
	}

	// A context that has already ended starts nothing.
	_, err = client.GetQuota(ctx)
	if !errors.Is(err, context.Canceled) || codeOf(err) != noxy.CodeCancelled {
		t.Errorf("call with a cancelled context: %v", err)
	}
}

func TestContextDeadline(t *testing.T) {
	client := newClient(t)
	sent, err := client.SendDecision(t.Context(), "carol", deploy, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = client.WaitForDecisionOutcome(ctx, sent.AcceptedDecisionID, "carol", nil)
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, noxy.ErrCancelled) {
		t.Fatalf("error %v, want one wrapping context.DeadlineExceeded", err)
	}
	if elapsed < 300*time.Millisecond || elapsed > 10*time.Second {
		t.Errorf("the call ended after %v, want soon after its 300 ms deadline", elapsed)
	}
}

func TestWrongToken(t *testing.T) {
	client := newClient(t, func(c *noxy.Config) { c.AppToken = "not-the-token" })
	if _, err := client.GetQuota(t.Context()); !errors.Is(err, noxy.ErrUnauthenticated) {
		t.Errorf("GetQuota: %v, want ErrUnauthenticated", err)
	}
	_, err := client.SendDecisionAndWaitForOutcome(t.Context(), "alice", deploy, nil, fastWait)
	if !errors.Is(err, noxy.ErrUnauthenticated) {
		t.Errorf("SendDecisionAndWaitForOutcome: %v, want ErrUnauthenticated", err)
	}
	if err != nil && strings.Contains(err.Error(), "not-the-token") {
		t.Errorf("the error shows the token: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	// A loopback port that nothing listens on any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	client := newClient(t, func(c *noxy.Config) {
		c.Endpoint = addr
		c.MaxAttempts = 1
		c.ConnectTimeout = 2 * time.Second
	})
	if _, err := client.GetQuota(t.Context()); !errors.Is(err, noxy.ErrUnavailable) {
		t.Errorf("GetQuota: %v, want ErrUnavailable", err)
	}
}

func TestInvalidPayload(t *testing.T) {
	client := newClient(t)
	cases := []struct {
		name    string
		payload any
	}{
		{"array", []int{1, 2}},
		{"string", "a string"},
		{"nil", nil},
		{"raw array", json.RawMessage(`[{"kind":"tool"}]`)},
		{"raw bad JSON", json.RawMessage(`{"kind":`)},
		{"raw duplicate key", json.RawMessage(`{"amount":"1","amount":"1000"}`)},
		{"raw empty", json.RawMessage(nil)},
		{"raw NUL inside", json.RawMessage("{\"a\":1}\x00")},
		{"over 64 KiB", map[string]string{"big": strings.Repeat("x", 64*1024)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.SendDecision(t.Context(), "alice", tc.payload, nil)
			if !errors.Is(err, noxy.ErrInvalidPayload) {
				t.Errorf("SendDecision: %v, want ErrInvalidPayload", err)
			}
			_, err = client.SendDecisionAndWaitForOutcome(t.Context(), "alice", tc.payload, nil, fastWait)
			if !errors.Is(err, noxy.ErrInvalidPayload) {
				t.Errorf("SendDecisionAndWaitForOutcome: %v, want ErrInvalidPayload", err)
			}
		})
	}
	t.Run("not marshallable", func(t *testing.T) {
		_, err := client.SendDecision(t.Context(), "alice", map[string]any{"c": make(chan int)}, nil)
		var unsupported *json.UnsupportedTypeError
		if !errors.Is(err, noxy.ErrInvalidPayload) || !errors.As(err, &unsupported) {
			t.Errorf("error %v, want ErrInvalidPayload wrapping *json.UnsupportedTypeError", err)
		}
	})
	t.Run("NUL in identity", func(t *testing.T) {
		_, err := client.SendDecision(t.Context(), "alice\x00bob", deploy, nil)
		if !errors.Is(err, noxy.ErrInvalidArgument) {
			t.Errorf("error %v, want ErrInvalidArgument", err)
		}
		if noxy.InFlight(client) != 0 {
			t.Error("an operation started")
		}
	})
}

func TestSeveralDevices(t *testing.T) {
	client := newClient(t)
	devices, err := client.GetIdentityDevices(t.Context(), "team")
	if err != nil {
		t.Fatal(err)
	}
	if len(devices) != 3 {
		t.Fatalf("%d devices, want 3", len(devices))
	}
	ids := map[string]bool{}
	for _, d := range devices {
		if d.ID == "" || len(d.PQPublicKey) != 1184 || len(d.PublicKey) == 0 {
			t.Errorf("device %s: %d-byte ML-KEM key, %d-byte key", d.ID, len(d.PQPublicKey), len(d.PublicKey))
		}
		ids[d.ID] = true
	}
	res, err := client.SendDecisionAndWaitForOutcome(t.Context(), "team", deploy, nil, fastWait)
	if err != nil {
		t.Fatal(err)
	}
	// One device approves at once; the first answer wins.
	if res.Outcome != noxy.OutcomeApproved {
		t.Errorf("outcome %v, want APPROVED", res.Outcome)
	}
	if len(res.Deliveries) != 3 {
		t.Fatalf("%d deliveries, want one per device", len(res.Deliveries))
	}
	for _, d := range res.Deliveries {
		if !ids[d.DeviceID] || d.Status != noxy.DeliveryDelivered || d.DecisionID != res.DecisionID {
			t.Errorf("delivery %+v", d)
		}
		delete(ids, d.DeviceID)
	}
	if len(ids) != 0 {
		t.Errorf("devices without a delivery: %v", ids)
	}
}

func TestNoDevices(t *testing.T) {
	client := newClient(t)
	devices, err := client.GetIdentityDevices(t.Context(), "nobody")
	if err != nil || len(devices) != 0 {
		t.Errorf("devices of nobody: %v, %v", devices, err)
	}
	_, err = client.SendDecisionAndWaitForOutcome(t.Context(), "nobody", deploy, nil, fastWait)
	if !errors.Is(err, noxy.ErrNoDecisionID) {
		t.Errorf("error %v, want ErrNoDecisionID", err)
	}
}

func TestQuota(t *testing.T) {
	client := newClient(t)
	q, err := client.GetQuota(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if q.AppName != appName || q.Total != appQuota || q.Remaining > q.Total || q.Status != noxy.QuotaActive {
		t.Errorf("quota %+v, want app %s, %d in total, active", q, appName, appQuota)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  noxy.Config
		code noxy.Code
		says string
	}{
		{"no endpoint", noxy.Config{AppToken: "t"}, noxy.CodeInvalidArgument, "endpoint"},
		{"no token", noxy.Config{Endpoint: "127.0.0.1:1"}, noxy.CodeInvalidArgument, "token"},
		{"NUL in token", noxy.Config{Endpoint: "127.0.0.1:1", AppToken: "a\x00b"}, noxy.CodeInvalidArgument, "AppToken"},
		{"negative timeout", noxy.Config{Endpoint: "127.0.0.1:1", AppToken: "t", ConnectTimeout: -time.Second}, noxy.CodeInvalidArgument, "ConnectTimeout"},
		{"both CAs", noxy.Config{Endpoint: "127.0.0.1:1", AppToken: "t", CAPEM: []byte("x"), CAPEMFile: "y"}, noxy.CodeInvalidArgument, "CAPEM"},
		{"missing CA file", noxy.Config{Endpoint: "127.0.0.1:1", AppToken: "t", CAPEMFile: "/nonexistent/ca.pem"}, noxy.CodeInvalidArgument, "ca_pem_path"},
		{"too many workers", noxy.Config{Endpoint: "127.0.0.1:1", AppToken: "t", WorkerThreads: 65}, noxy.CodeInvalidArgument, "worker"},
		{"bad backoff", noxy.Config{Endpoint: "127.0.0.1:1", AppToken: "t", RetryBackoff: &noxy.Backoff{Initial: time.Second, Multiplier: 0.5, Max: time.Second}}, noxy.CodeInvalidArgument, "multiplier"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, err := noxy.NewClient(tc.cfg)
			if err == nil {
				client.Close()
				t.Fatal("NewClient succeeded")
			}
			if codeOf(err) != tc.code || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.says)) {
				t.Errorf("error %v, want code %v naming %q", err, tc.code, tc.says)
			}
		})
	}
	// CAPEM given as text works as well as the file.
	pem, err := os.ReadFile(relay.caPath)
	if err != nil {
		t.Fatal(err)
	}
	client := newClient(t, func(c *noxy.Config) { c.CAPEMFile = ""; c.CAPEM = pem })
	if _, err := client.GetQuota(t.Context()); err != nil {
		t.Errorf("GetQuota with CAPEM: %v", err)
	}
}

func TestManyConcurrentDecisions(t *testing.T) {
	const n = 1000
	client := newClient(t)
	var wg sync.WaitGroup
	results := make([]*noxy.DecisionResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := action{Kind: "tool", Title: "Step " + strconv.Itoa(i), Args: map[string]any{"step": i}}
			results[i], errs[i] = client.SendDecisionAndWaitForOutcome(t.Context(), "alice", payload, nil, fastWait)
		}()
	}
	wg.Wait()
	ids := make(map[string]bool, n)
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("decision %d: %v", i, errs[i])
		}
		if results[i].Outcome != noxy.OutcomeApproved {
			t.Fatalf("decision %d: %v", i, results[i].Outcome)
		}
		ids[results[i].DecisionID] = true
	}
	if len(ids) != n {
		t.Errorf("%d distinct decision ids for %d decisions", len(ids), n)
	}
}

// TestThreadsStayBounded holds 1 000 waits at once and samples the process's thread count
// the whole time: a binding that blocked one OS thread per wait would need over 1 000.
func TestThreadsStayBounded(t *testing.T) {
	const n = 1000
	const bound = 100
	client := newClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	if threadCount() <= 0 {
		t.Fatal("cannot read Threads: from /proc/self/status")
	}
	var maxThreads atomic.Int64
	sample := func() {
		if n := int64(threadCount()); n > maxThreads.Load() {
			maxThreads.Store(n)
		}
	}
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			sample()
			select {
			case <-stopSampling:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	var wg sync.WaitGroup
	var cancelled atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := client.SendDecisionAndWaitForOutcome(ctx, "carol", deploy, nil, nil)
			if errors.Is(err, context.Canceled) && errors.Is(err, noxy.ErrCancelled) {
				cancelled.Add(1)
			} else {
				t.Errorf("wait ended with %v, want a cancellation", err)
			}
		}()
	}
	waitFor(t, "1 000 waits in flight", 60*time.Second, func() bool { return noxy.InFlight(client) == n })
	sample()
	held := threadCount()
	cancel()
	wg.Wait()
	close(stopSampling)
	<-sampled
	t.Logf("%d waits in flight: %d threads; at most %d threads during the test", n, held, maxThreads.Load())
	if maxThreads.Load() >= bound {
		t.Errorf("%d threads at most, want fewer than %d", maxThreads.Load(), bound)
	}
	if cancelled.Load() != n {
		t.Errorf("%d of %d waits were cancelled", cancelled.Load(), n)
	}
}

func TestCloseDuringWaits(t *testing.T) {
	const n = 50
	client := newClient(t)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = client.SendDecisionAndWaitForOutcome(t.Context(), "carol", deploy, nil, fastWait)
		}()
	}
	waitFor(t, "the waits to start", 30*time.Second, func() bool { return noxy.InFlight(client) == n })
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the waits did not end within 10 s of Close")
	}
	for i, err := range errs {
		if !errors.Is(err, noxy.ErrCancelled) || errors.Is(err, context.Canceled) {
			t.Errorf("wait %d: %v, want ErrCancelled from Close", i, err)
		}
	}
	if _, err := client.GetQuota(t.Context()); !errors.Is(err, noxy.ErrCancelled) {
		t.Errorf("a call after Close: %v, want ErrCancelled", err)
	}
	if err := client.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// TestCloseRacesCalls closes a client while other goroutines keep calling it: every call
// either succeeds or is cancelled, and the race detector watches the client's handle.
func TestCloseRacesCalls(t *testing.T) {
	client := newClient(t)
	var wg sync.WaitGroup
	var ok, cancelled atomic.Int64
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := client.GetQuota(t.Context())
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, noxy.ErrCancelled):
					cancelled.Add(1)
				default:
					t.Errorf("GetQuota: %v", err)
					return
				}
			}
		}()
	}
	waitFor(t, "some calls to succeed", 30*time.Second, func() bool { return ok.Load() >= 20 })
	var closers sync.WaitGroup
	for range 3 {
		closers.Add(1)
		go func() { defer closers.Done(); client.Close() }()
	}
	closers.Wait()
	waitFor(t, "calls after Close to be cancelled", 10*time.Second, func() bool { return cancelled.Load() >= 20 })
	close(stop)
	wg.Wait()
	t.Logf("%d calls succeeded, %d were cancelled", ok.Load(), cancelled.Load())
}

// TestForgottenClient: a client nobody closes is released by the garbage collector (its
// threads stop), but never while one of its calls is still waiting.
func TestForgottenClient(t *testing.T) {
	before := libraryThreads(t)
	var own []string // the threads the forgotten client started
	func() {
		cfg := noxy.Config{Endpoint: relay.endpoint, AppToken: relay.token, CAPEMFile: relay.caPath,
			WorkerThreads: 2}
		client, err := noxy.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Its 2 workers and its completion thread (each names itself once it runs).
		waitFor(t, "the client's 3 threads", 10*time.Second, func() bool {
			own = own[:0]
			for id := range libraryThreads(t) {
				if !before[id] {
					own = append(own, id)
				}
			}
			return len(own) == 3
		})
		// The garbage collector runs throughout a wait whose client is referenced only by
		// the call itself: the call must still end with the person's answer.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
					runtime.GC()
				}
			}
		}()
		res, err := client.SendDecisionAndWaitForOutcome(t.Context(), "alice", deploy, nil, fastWait)
		if err != nil || res.Outcome != noxy.OutcomeApproved {
			t.Fatalf("call of a client only the call references: %v, %v", res, err)
		}
	}()
	waitFor(t, "the forgotten client's threads to stop", 20*time.Second, func() bool {
		runtime.GC()
		now := libraryThreads(t)
		for _, id := range own {
			if now[id] {
				return false
			}
		}
		return true
	})
}

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }
func (r *recorder) records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slog.Record(nil), r.recs...)
}

func TestLogger(t *testing.T) {
	before := noxy.LiveLogSinks()
	rec := &recorder{level: noxy.LevelTrace}
	quiet := &recorder{level: slog.LevelError}
	client := newClient(t, func(c *noxy.Config) { c.Logger = slog.New(rec) })
	other := newClient(t, func(c *noxy.Config) { c.Logger = slog.New(quiet) })
	if n := noxy.LiveLogSinks() - before; n != 2 {
		t.Errorf("the library holds %d log handlers of the two clients", n)
	}
	if _, err := client.SendDecisionAndWaitForOutcome(t.Context(), "alice", deploy, nil, fastWait); err != nil {
		t.Fatal(err)
	}
	if _, err := other.GetQuota(t.Context()); err != nil {
		t.Fatal(err)
	}
	recs := rec.records()
	if len(recs) == 0 {
		t.Fatal("no log record at TRACE level")
	}
	levels := map[slog.Level]int{}
	for _, r := range recs {
		levels[r.Level]++
		if strings.Contains(r.Message, relay.token) || strings.Contains(r.Message, "Deploy to prod") {
			t.Errorf("a log record shows the token or the payload: %q", r.Message)
		}
		switch r.Level {
		case slog.LevelError, slog.LevelWarn, slog.LevelInfo, slog.LevelDebug, noxy.LevelTrace:
		default:
			t.Errorf("record at level %v", r.Level)
		}
	}
	t.Logf("%d records by level: %v", len(recs), levels)
	if levels[slog.LevelDebug]+levels[noxy.LevelTrace] == 0 {
		t.Error("no DEBUG or TRACE record")
	}
	// The other client's successful call logs nothing at ERROR, and its logger gets nothing
	// of the first client's.
	if n := len(quiet.records()); n != 0 {
		t.Errorf("the ERROR-level logger got %d records", n)
	}
	// Closed clients release their handlers (the library's free_user_data), and then the
	// handlers get nothing more.
	client.Close()
	other.Close()
	waitFor(t, "the log handlers to be released", 20*time.Second, func() bool { return noxy.LiveLogSinks() == before })
	n := len(rec.records())
	if _, err := newClient(t).GetQuota(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := len(rec.records()); got != n {
		t.Errorf("%d records after the client was released", got-n)
	}
}

func TestProcessLogger(t *testing.T) {
	before := noxy.LiveLogSinks()
	rec := &recorder{level: slog.LevelDebug}
	if err := noxy.SetLogger(slog.New(rec)); err != nil {
		t.Fatal(err)
	}
	client := newClient(t)
	if _, err := client.GetQuota(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := noxy.SetLogger(nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the process-wide handler to be released", 20*time.Second, func() bool { return noxy.LiveLogSinks() == before })
	got := len(rec.records())
	if got == 0 {
		t.Fatal("the process-wide logger got no record")
	}
	for _, r := range rec.records() {
		if r.Level < slog.LevelDebug {
			t.Errorf("a record below the handler's level: %v %q", r.Level, r.Message)
		}
	}
	// Once turned off, nothing more arrives.
	if _, err := client.GetQuota(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.records()); n != got {
		t.Errorf("%d records after SetLogger(nil)", n-got)
	}
}

// TestExamplePrograms runs examples/sendandwait as make test-go built it, linked statically
// ($NOXY_GO_EXAMPLE_STATIC, -tags noxy_static: no libnoxy.so needed) and dynamically
// ($NOXY_GO_EXAMPLE_SHARED: needs libnoxy.so.0): each must get alice's approval.
func TestExamplePrograms(t *testing.T) {
	for _, linkage := range []struct {
		name, env string
		needsNoxy bool
	}{
		{"static", "NOXY_GO_EXAMPLE_STATIC", false},
		{"shared", "NOXY_GO_EXAMPLE_SHARED", true},
	} {
		t.Run(linkage.name, func(t *testing.T) {
			binary := os.Getenv(linkage.env)
			if binary == "" {
				t.Skipf("%s is not set (make test-go builds the example)", linkage.env)
			}
			dyn, err := exec.Command("readelf", "-d", binary).CombinedOutput()
			if err != nil {
				t.Fatalf("readelf: %v\n%s", err, dyn)
			}
			// Only the NEEDED entries count: a RUNPATH may name a folder called libnoxy.
			var needed [][]byte
			for _, line := range bytes.Split(dyn, []byte("\n")) {
				if bytes.Contains(line, []byte("(NEEDED)")) {
					needed = append(needed, line)
				}
			}
			neededLines := bytes.Join(needed, []byte("\n"))
			if needs := bytes.Contains(neededLines, []byte("[libnoxy.so.0]")); needs != linkage.needsNoxy {
				t.Fatalf("needs libnoxy.so.0: %v, want %v\n%s", needs, linkage.needsNoxy, dyn)
			}
			if !linkage.needsNoxy && bytes.Contains(neededLines, []byte("libnoxy")) {
				t.Fatalf("the static example needs a shared libnoxy:\n%s", dyn)
			}
			cmd := exec.Command(binary)
			cmd.Env = append(os.Environ(), "NOXY_IDENTITY=alice")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", binary, err, out)
			}
			if !approvedLine(string(out)) {
				t.Errorf("output %q, want \"decision <id>: APPROVED\"", out)
			}
		})
	}
}

// approvedLine reports whether out is the example's one line "decision <id>: APPROVED".
func approvedLine(out string) bool {
	id, ok := strings.CutPrefix(strings.TrimSpace(out), "decision ")
	if !ok {
		return false
	}
	id, ok = strings.CutSuffix(id, ": APPROVED")
	return ok && id != "" && !strings.ContainsAny(id, " \n")
}
