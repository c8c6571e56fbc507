#!/usr/bin/env bash
# `make demo`: starts the development relay (app token `dev-token`, identity `demo-user` with one
# simulated device that approves), runs the blocking C example against it, prints the outcome,
# and always stops the relay.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
release=${CARGO_TARGET_DIR:-$root/target}/release
example=${1:-$root/examples-c/build/blocking}

state=$(mktemp -d "${TMPDIR:-/tmp}/noxy-demo.XXXXXX")
relay_pid=
cleanup() {
  if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
    echo "relay stopped"
  fi
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

"$release/noxy-devrelay" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
  --state-dir "$state/relay" --ready-file "$state/ready.json" --log-level warn &
relay_pid=$!
for _ in $(seq 1 600); do # a bounded poll for the ready file
  [ -s "$state/ready.json" ] && break
  kill -0 "$relay_pid" 2>/dev/null || { echo "the relay exited" >&2; exit 1; }
  sleep 0.05
done
[ -s "$state/ready.json" ] || { echo "the relay was not ready after 30 s" >&2; exit 1; }
field() { sed -n "s/.*\"$1\" *: *\"\\([^\"]*\\)\".*/\\1/p" "$state/ready.json"; }

export NOXY_ENDPOINT NOXY_CA_PEM_PATH NOXY_APP_TOKEN=dev-token NOXY_IDENTITY=demo-user
NOXY_ENDPOINT=$(field endpoint)
NOXY_CA_PEM_PATH=$(field ca_path)
echo "development relay at $NOXY_ENDPOINT (identity demo-user approves)"
"$example"
