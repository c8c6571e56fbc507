package noxy_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The tests run against one development relay that TestMain starts on free loopback ports
// (noxy-devrelay from $NOXY_DEVRELAY, else ../../target/release/noxy-devrelay) and stops at
// the end. Its app has a fresh random token and these identities:
//
//	alice  one device that approves       bob    one device that rejects
//	carol  one device that never answers  team   three devices: approve, ignore, reject after 30 s
//	nobody no devices
//
// TestMain exports NOXY_ENDPOINT, NOXY_APP_TOKEN and NOXY_CA_PEM_PATH, which the examples
// read as a program would.
const (
	appName  = "go-tests"
	appQuota = 10_000_000
)

var relay struct {
	endpoint, caPath, token, httpURL string
}

func TestMain(m *testing.M) {
	os.Exit(runWithRelay(m))
}

func runWithRelay(m *testing.M) int {
	binary := os.Getenv("NOXY_DEVRELAY")
	if binary == "" {
		binary = filepath.Join("..", "..", "target", "release", "noxy-devrelay")
	}
	if _, err := os.Stat(binary); err != nil {
		fmt.Fprintf(os.Stderr, "noxy-devrelay not found (%v): build it with `cargo build --release -p noxy-devrelay` or set NOXY_DEVRELAY\n", err)
		return 1
	}
	state, err := os.MkdirTemp("", "noxy-go-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(state)

	secret := make([]byte, 12)
	if _, err := rand.Read(secret); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	relay.token = "go-tests-" + hex.EncodeToString(secret)
	ready := filepath.Join(state, "ready.json")
	logPath := filepath.Join(state, "relay.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logFile.Close()
	cmd := exec.Command(binary,
		"--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--state-dir", filepath.Join(state, "relay"), "--ready-file", ready,
		"--log-level", "warn",
		"--app", fmt.Sprintf("%s:%s:%d", relay.token, appName, appQuota),
		"--identity", appName+":alice:approve",
		"--identity", appName+":bob:reject",
		"--identity", appName+":carol:ignore",
		"--identity", appName+":team:approve,ignore,reject-after=30000",
	)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Should the test binary die without stopping the relay, the kernel stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting the relay:", err)
		return 1
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	// A bounded poll for the relay's ready file, written atomically once it listens.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if data, err := os.ReadFile(ready); err == nil {
			var info struct {
				Endpoint string `json:"endpoint"`
				CAPath   string `json:"ca_path"`
				HTTPURL  string `json:"http_url"`
			}
			if err := json.Unmarshal(data, &info); err != nil {
				fmt.Fprintln(os.Stderr, "relay ready file:", err)
				return 1
			}
			relay.endpoint, relay.caPath, relay.httpURL = info.Endpoint, info.CAPath, info.HTTPURL
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			fmt.Fprintf(os.Stderr, "the relay exited (%v):\n%s\n", err, log)
			exited <- err
			return 1
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "the relay was not ready after 30 s")
			return 1
		}
	}
	os.Setenv("NOXY_ENDPOINT", relay.endpoint)
	os.Setenv("NOXY_APP_TOKEN", relay.token)
	os.Setenv("NOXY_CA_PEM_PATH", relay.caPath)
	return m.Run()
}
