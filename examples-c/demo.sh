#!/usr/bin/env bash
# `make demo`: starts the development relay (app token `dev-token`, identity `demo-user` with one
# simulated device that approves), runs the blocking C example against it, prints the outcome,
# and always stops the relay.
#
# `make demo-browser` (`demo.sh --browser`): the same, but demo-user's one device is a
# `browser` device: it prints the device page's URL and waits until someone approves or
# rejects the decision on the page (the example's decision expires after 2 minutes).
set -euo pipefail
browser=false
if [ "${1:-}" = --browser ]; then
  browser=true
  shift
fi
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

relay_args=(--listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --state-dir "$state/relay"
  --ready-file "$state/ready.json" --log-level warn)
if $browser; then
  relay_args+=(--identity dev-app:demo-user:browser)
fi
# The relay's own banner goes to a file: what matters is printed below.
"$release/noxy-devrelay" "${relay_args[@]}" >"$state/relay.out" &
relay_pid=$!
for _ in $(seq 1 600); do # a bounded poll for the ready file
  [ -s "$state/ready.json" ] && break
  kill -0 "$relay_pid" 2>/dev/null || { echo "the relay exited" >&2; cat "$state/relay.out" >&2; exit 1; }
  sleep 0.05
done
[ -s "$state/ready.json" ] || { echo "the relay was not ready after 30 s" >&2; exit 1; }
field() { sed -n "s/.*\"$1\" *: *\"\\([^\"]*\\)\".*/\\1/p" "$state/ready.json"; }

export NOXY_ENDPOINT NOXY_CA_PEM_PATH NOXY_APP_TOKEN=dev-token NOXY_IDENTITY=demo-user
NOXY_ENDPOINT=$(field endpoint)
NOXY_CA_PEM_PATH=$(field ca_path)
if ! $browser; then
  echo "development relay at $NOXY_ENDPOINT (identity demo-user approves)"
  "$example"
  exit
fi

# The device's id, from the relay's banner (printed before the ready file is written).
device=$(sed -n 's|.*device: *dev-app/demo-user \(dev-[^ ]*\) (browser).*|\1|p' "$state/relay.out")
page_url="$(field http_url)/#token=$(field http_token)&device=$device"
cat <<MSG
development relay at $NOXY_ENDPOINT; identity demo-user has one browser device.

Open the device page in a browser on this machine, as demo-user's browser device, and
approve or reject the decision there (it expires in 2 minutes):

    $page_url

MSG
status=0
"$example" || status=$?
# 0: approved, 3: rejected or expired; both are answers the demo waited for.
if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
  exit "$status"
fi
