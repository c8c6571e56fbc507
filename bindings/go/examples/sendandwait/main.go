// Command sendandwait routes one decision to the devices of an identity, waits for the
// person's answer and prints it as "decision <id>: APPROVED". It reads the relay from the
// environment, as the C examples do:
//
//	NOXY_ENDPOINT=https://127.0.0.1:50051 NOXY_APP_TOKEN=dev-token \
//	NOXY_CA_PEM_PATH=.noxy-devrelay/ca.pem NOXY_IDENTITY=demo-user ./sendandwait
//
// It exits with status 1 unless the decision was approved.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	noxy "github.com/noxy-network/libnoxy/bindings/go"
)

func main() {
	os.Exit(run())
}

func run() int {
	client, err := noxy.NewClient(noxy.Config{
		Endpoint:  getenv("NOXY_ENDPOINT", "127.0.0.1:50051"),
		AppToken:  getenv("NOXY_APP_TOKEN", "dev-token"),
		CAPEMFile: os.Getenv("NOXY_CA_PEM_PATH"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer client.Close()

	// Ctrl-C cancels the wait; so does the two-minute deadline.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	payload := map[string]any{
		"kind":  "transfer",
		"title": "Send 1 ETH",
		"args":  map[string]string{"to": "0xabc", "amount": "1"},
	}
	result, err := client.SendDecisionAndWaitForOutcome(ctx, getenv("NOXY_IDENTITY", "demo-user"),
		payload, nil, &noxy.WaitOptions{InitialInterval: 100 * time.Millisecond})
	switch {
	case errors.Is(err, noxy.ErrNoDecisionID):
		fmt.Fprintln(os.Stderr, "no device accepted the decision:", err)
		return 1
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintln(os.Stderr, "nobody answered in time:", err)
		return 1
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("decision %s: %s\n", result.DecisionID, result.Outcome)
	if result.Outcome != noxy.OutcomeApproved {
		return 1
	}
	return 0
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
