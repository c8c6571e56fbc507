#!/usr/bin/env bash
# `make test-cpp`: builds the C++ binding's tests (bindings/cpp/CMakeLists.txt: GoogleTest,
# AddressSanitizer + UndefinedBehaviorSanitizer, C++17, C++20 and -fno-exceptions) against the
# CMake package `make lib` wrote (target/release/cmake/noxy), starts the development relay on
# loopback, runs them with ctest, and always stops the relay.
#
#   bindings/cpp/run.sh [ctest arguments...]     e.g. -R Async  or  --repeat until-fail:3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
release=${CARGO_TARGET_DIR:-$root/target}/release
build=${CARGO_TARGET_DIR:-$root/target}/cpp-tests
CARGO=${CARGO:-cargo}
# shellcheck source=bindings/cpp/relay.sh
. "$here/relay.sh"

if [ ! -f "$release/cmake/noxy/noxy-config.cmake" ] || [ ! -e "$release/libnoxy.so.0" ]; then
  echo "run \`make lib\` first (or \`make test-cpp\`)" >&2
  exit 2
fi
echo "== building noxy-devrelay (release)"
"$CARGO" build --release -p noxy-devrelay

echo "== building the C++ tests"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_COMPILER="${CXX:-c++}" \
  -Dnoxy_DIR="$release/cmake/noxy" >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log" >&2; exit 1; }
grep -E "^-- noxy " "$build.configure.log" || true
cmake --build "$build" -j "$(nproc)"

state=$(mktemp -d "${TMPDIR:-/tmp}/noxy-cpp-tests.XXXXXX")
cleanup() {
  relay_stop
  rm -rf "$state"
}
trap cleanup EXIT INT TERM
relay_start "$release" "$state" "cpp-tests-token-$$-$RANDOM"

echo "== ctest"
# LeakSanitizer on; the first UBSan report fails the test (-fno-sanitize-recover).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
