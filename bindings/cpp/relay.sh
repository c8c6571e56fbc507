# Sourced by bindings/cpp/run.sh and bindings/cpp/test_install.sh: starts the development
# relay on free loopback ports and stops it.
#
#   relay_start RELEASE_DIR STATE_DIR TOKEN   starts it (app "tests", identities below), waits
#                                             for its ready file (a bounded poll for a
#                                             condition), exports NOXY_TEST_ENDPOINT,
#                                             NOXY_TEST_CA_PATH, NOXY_TEST_TOKEN
#   relay_stop                                stops it (idempotent; call it from a trap)
#
# Identities: alice approves, bob rejects, carol never answers, steps approves after 300 ms,
# team has three devices (approve, ignore, reject after 30 s); nobody has no devices.
relay_pid=

relay_start() {
  local release=$1 state=$2 token=$3
  mkdir -p "$state"
  "$release/noxy-devrelay" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --state-dir "$state/relay" --ready-file "$state/ready.json" --log-level warn \
    --app "$token:tests:10000000" \
    --identity tests:alice:approve --identity tests:bob:reject --identity tests:carol:ignore \
    --identity tests:steps:approve-after=300 \
    --identity tests:team:approve,ignore,reject-after=30000 \
    >"$state/relay.log" 2>&1 &
  relay_pid=$!
  local _
  for _ in $(seq 1 600); do
    [ -s "$state/ready.json" ] && break
    if ! kill -0 "$relay_pid" 2>/dev/null; then
      cat "$state/relay.log" >&2
      echo "the development relay exited" >&2
      return 1
    fi
    sleep 0.05
  done
  if [ ! -s "$state/ready.json" ]; then
    echo "the development relay was not ready after 30 s" >&2
    return 1
  fi
  json_field() { sed -n "s/.*\"$1\" *: *\"\\([^\"]*\\)\".*/\\1/p" "$state/ready.json"; }
  NOXY_TEST_ENDPOINT=$(json_field endpoint)
  NOXY_TEST_CA_PATH=$(json_field ca_path)
  NOXY_TEST_TOKEN=$token
  export NOXY_TEST_ENDPOINT NOXY_TEST_CA_PATH NOXY_TEST_TOKEN
  echo "relay: $NOXY_TEST_ENDPOINT (CA $NOXY_TEST_CA_PATH)"
}

relay_stop() {
  if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
  fi
  relay_pid=
}
