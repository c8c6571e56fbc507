package noxy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	noxy "github.com/noxy-network/libnoxy/bindings/go"
)

// The examples read the relay from NOXY_ENDPOINT, NOXY_APP_TOKEN and NOXY_CA_PEM_PATH (the
// tests point them at the development relay, where alice approves, bob rejects and nobody
// has no devices).

// A decision routed to a person's devices, and their answer.
func Example() {
	client, err := noxy.NewClient(noxy.Config{
		Endpoint:  os.Getenv("NOXY_ENDPOINT"),
		AppToken:  os.Getenv("NOXY_APP_TOKEN"),
		CAPEMFile: os.Getenv("NOXY_CA_PEM_PATH"), // a private relay's CA; omit for the public one
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	payload := map[string]any{"kind": "transfer", "title": "Send 1 ETH", "amount": "1"}
	result, err := client.SendDecisionAndWaitForOutcome(ctx, "alice", payload, nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if result.Outcome == noxy.OutcomeApproved {
		fmt.Println("approved: go ahead")
	}
	// Output: approved: go ahead
}

// Sending and waiting in two steps: the decision id can be stored and waited on later, for
// example by another process.
func ExampleClient_SendDecision() {
	client, err := noxy.NewClient(noxy.Config{
		Endpoint:  os.Getenv("NOXY_ENDPOINT"),
		AppToken:  os.Getenv("NOXY_APP_TOKEN"),
		CAPEMFile: os.Getenv("NOXY_CA_PEM_PATH"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	ctx := context.Background()

	type transfer struct {
		Kind   string `json:"kind"`
		Title  string `json:"title"`
		Amount string `json:"amount"`
	}
	sent, err := client.SendDecision(ctx, "bob", transfer{"transfer", "Send 1000 ETH", "1000"}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range sent.Deliveries {
		fmt.Println("device:", d.Status)
	}
	result, err := client.WaitForDecisionOutcome(ctx, sent.AcceptedDecisionID, "bob",
		&noxy.WaitOptions{InitialInterval: 100 * time.Millisecond, MaxWait: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("outcome:", result.Outcome)
	// Output:
	// device: DELIVERED
	// outcome: REJECTED
}

// Errors carry a stable code; errors.Is matches them against the sentinels, and a routed
// decision's error carries the per-device results.
func ExampleError() {
	client, err := noxy.NewClient(noxy.Config{
		Endpoint:  os.Getenv("NOXY_ENDPOINT"),
		AppToken:  os.Getenv("NOXY_APP_TOKEN"),
		CAPEMFile: os.Getenv("NOXY_CA_PEM_PATH"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	_, err = client.SendDecisionAndWaitForOutcome(context.Background(), "nobody",
		map[string]string{"kind": "note", "title": "Hello"}, nil, nil)
	var e *noxy.Error
	switch {
	case errors.Is(err, noxy.ErrNoDecisionID) && errors.As(err, &e):
		fmt.Printf("nobody to ask (code %d, %d deliveries)\n", e.Code, len(e.Deliveries))
	case err != nil:
		fmt.Println("other error:", err)
	}
	// Output: nobody to ask (code 11, 0 deliveries)
}

// A context deadline bounds a wait: the native operation is cancelled and the error wraps
// context.DeadlineExceeded.
func ExampleClient_WaitForDecisionOutcome_deadline() {
	client, err := noxy.NewClient(noxy.Config{
		Endpoint:  os.Getenv("NOXY_ENDPOINT"),
		AppToken:  os.Getenv("NOXY_APP_TOKEN"),
		CAPEMFile: os.Getenv("NOXY_CA_PEM_PATH"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	// carol's device never answers.
	sent, err := client.SendDecision(context.Background(), "carol",
		map[string]string{"kind": "tool", "title": "Restart the cluster"}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = client.WaitForDecisionOutcome(ctx, sent.AcceptedDecisionID, "carol", nil)
	fmt.Println(errors.Is(err, context.DeadlineExceeded), errors.Is(err, noxy.ErrCancelled))
	// Output: true true
}

func ExampleClient_GetQuota() {
	client, err := noxy.NewClient(noxy.Config{
		Endpoint:  os.Getenv("NOXY_ENDPOINT"),
		AppToken:  os.Getenv("NOXY_APP_TOKEN"),
		CAPEMFile: os.Getenv("NOXY_CA_PEM_PATH"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	quota, err := client.GetQuota(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(quota.Status, quota.Remaining <= quota.Total)
	// Output: ACTIVE true
}
