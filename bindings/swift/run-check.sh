#!/usr/bin/env bash
# The Swift package's check (`make test-swift`). This machine has no Swift toolchain, so what
# can be checked is checked with clang: check/cnoxy_check.m is compiled with clang modules
# through Sources/CNoxy/module.modulemap (`@import CNoxy;`), with the include path and libraries
# from pkg-config, as SwiftPM's `pkgConfig: "noxy"` gives them, and run against the development
# relay: one blocking decision, one through the callback API. The relay is always stopped.
#
# Needs: clang, pkg-config (Debian); `.ci/run` installs them.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
release=$target_dir/release
out=$target_dir/swift
CARGO=${CARGO:-cargo}
CLANG=${CLANG:-clang}

for tool in "$CLANG" pkg-config; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is missing: apt-get install clang pkg-config" >&2; exit 1; }
done

echo "== building libnoxy and noxy-devrelay (release)"
"$CARGO" build --release --lib -p noxy
"$CARGO" build --release -p noxy-devrelay
ln -sf libnoxy.so "$release/libnoxy.so.0"
rm -rf "$out"
mkdir -p "$out"
pkg/generate.sh "$out/pkgconfig/noxy.pc" "$root" "$release" "$root/include"
export PKG_CONFIG_PATH=$out/pkgconfig

modulemap=bindings/swift/Sources/CNoxy/module.modulemap
echo "== compiling check/cnoxy_check.m with clang modules ($("$CLANG" --version | head -1))"
# shellcheck disable=SC2046 # pkg-config's flags are words
"$CLANG" -x objective-c -fmodules -fmodules-cache-path="$out/module-cache" -fmodule-map-file="$modulemap" \
  $(pkg-config --cflags noxy) -Wall -Wextra -Werror bindings/swift/check/cnoxy_check.m \
  $(pkg-config --libs noxy) -Wl,-rpath,"$release" -lpthread -o "$out/cnoxy_check"
readelf -d "$out/cnoxy_check" | grep -q 'NEEDED.*libnoxy.so.0' ||
  { echo "cnoxy_check does not load libnoxy.so.0" >&2; exit 1; }
# The module map is what provides CNoxy: without it the same file does not compile.
# shellcheck disable=SC2046
if "$CLANG" -x objective-c -fmodules -fmodules-cache-path="$out/module-cache" $(pkg-config --cflags noxy) \
  -fsyntax-only bindings/swift/check/cnoxy_check.m 2>"$out/without-map.log" ||
  ! grep -q "module 'CNoxy' not found" "$out/without-map.log"; then
  cat "$out/without-map.log" >&2
  echo "cnoxy_check.m does not depend on the module map as expected" >&2
  exit 1
fi
echo "compiled through $modulemap (and fails to compile without it)"

# ---- the development relay ----
state=$(mktemp -d "${TMPDIR:-/tmp}/noxy-swift-check.XXXXXX")
relay_pid=
stop_relay() {
  if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
  fi
  rm -rf "$state"
}
trap stop_relay EXIT INT TERM

token="swift-check-token-$$-$RANDOM"
"$release/noxy-devrelay" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
  --state-dir "$state/relay" --ready-file "$state/ready.json" --log-level warn \
  --app "$token:swift:1000" --identity swift:alice:approve --identity swift:bob:reject \
  >"$state/relay.log" 2>&1 &
relay_pid=$!
# Wait for the relay's ready file (a bounded poll for a condition, not a sleep for timing).
for _ in $(seq 1 600); do
  [ -s "$state/ready.json" ] && break
  kill -0 "$relay_pid" 2>/dev/null || { cat "$state/relay.log" >&2; echo "relay died" >&2; exit 1; }
  sleep 0.05
done
[ -s "$state/ready.json" ] || { echo "relay not ready after 30 s" >&2; exit 1; }
json_field() { sed -n "s/.*\"$1\" *: *\"\\([^\"]*\\)\".*/\\1/p" "$state/ready.json"; }
export NOXY_TEST_ENDPOINT NOXY_TEST_CA_PATH NOXY_TEST_TOKEN=$token
NOXY_TEST_ENDPOINT=$(json_field endpoint)
NOXY_TEST_CA_PATH=$(json_field ca_path)
echo "relay: $NOXY_TEST_ENDPOINT"

echo "== cnoxy_check"
"$out/cnoxy_check"
