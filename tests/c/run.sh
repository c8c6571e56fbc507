#!/usr/bin/env bash
# Builds libnoxy and the development relay, compiles the C tests against include/noxy.h (linked
# statically and dynamically), starts the relay on loopback, runs the tests and always stops the
# relay.
#
#   tests/c/run.sh [plain|valgrind|asan]
#
# plain     header checks (C99 and C++), the pkg-config file and the CMake package config
#           (skipped without cmake), exported symbols, then every test, static and dynamic
#           (8 threads x 100)
# valgrind  the same tests under valgrind: 0 errors and 0 bytes definitely lost required
#           (time limits x10; NOXY_TEST_DECISIONS_PER_THREAD can lower the 8 x 100 load)
# asan      the same tests built with -fsanitize=address (LeakSanitizer on)
set -euo pipefail

mode=${1:-plain}
case "$mode" in plain | valgrind | asan) ;; *)
  echo "usage: $0 [plain|valgrind|asan]" >&2
  exit 2
  ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
release=$target_dir/release
out=$target_dir/c-tests/$mode
CC=${CC:-cc}
CXX=${CXX:-c++}
CARGO=${CARGO:-cargo}
# The native libraries the Rust static library needs (see README / `make lib`).
NOXY_STATIC_LIBS=${NOXY_STATIC_LIBS:--lgcc_s -lutil -lrt -lpthread -lm -ldl -lc}

echo "== building libnoxy and noxy-devrelay (release)"
"$CARGO" build --release --lib -p noxy
"$CARGO" build --release -p noxy-devrelay
ln -sf libnoxy.so "$release/libnoxy.so.0"
mkdir -p "$out"

if [ "$mode" = plain ]; then
  echo "== header: C99 and C++17, -Wall -Wextra -Werror"
  "$CC" -std=c99 -Wall -Wextra -Werror -pedantic -I include -c tests/c/header_check.c \
    -o "$out/header_c99.o"
  "$CXX" -std=c++17 -Wall -Wextra -Werror -I include -x c++ -c tests/c/header_check.c \
    -o "$out/header_cxx.o"
  echo "header compiles as C99 and C++17"
  if git -C "$root" rev-parse --git-dir >/dev/null 2>&1 &&
    git -C "$root" ls-files --error-unmatch include/noxy.h >/dev/null 2>&1; then
    git -C "$root" diff --exit-code --stat include/noxy.h ||
      { echo "include/noxy.h differs from the committed header: commit the regenerated one" >&2; exit 1; }
  fi
  echo "== pkg-config"
  pkg/generate.sh "$out/pkgconfig/noxy.pc" "$root" "$release" "$root/include"
  if command -v pkg-config >/dev/null 2>&1; then
    # shellcheck disable=SC2046
    "$CC" -std=c99 -Wall -Wextra -Werror tests/c/header_check.c \
      $(PKG_CONFIG_PATH="$out/pkgconfig" pkg-config --cflags --libs noxy) -o "$out/pc_check"
    echo "pkg-config noxy $(PKG_CONFIG_PATH="$out/pkgconfig" pkg-config --modversion noxy): builds and links"
    # shellcheck disable=SC2046
    "$CC" -std=c99 -Wall -Wextra -Werror tests/c/header_check.c \
      $(PKG_CONFIG_PATH="$out/pkgconfig" pkg-config --cflags --libs noxy-static) -o "$out/pc_static_check"
    if readelf -d "$out/pc_static_check" | grep -q 'NEEDED.*libnoxy'; then
      echo "pkg-config noxy-static links a shared libnoxy" >&2
      exit 1
    fi
    "$out/pc_static_check"
    echo "pkg-config noxy-static: links libnoxy.a, needs no libnoxy.so"
  else
    echo "pkg-config not installed: skipped"
  fi
  echo "== CMake package config"
  pkg/generate.sh "$out/cmake/noxy/noxy-config.cmake" "$root" "$release" "$root/include"
  if command -v cmake >/dev/null 2>&1; then
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
    rm -rf "$out/cmake-build"
    if ! { cmake -S tests/c/cmake -B "$out/cmake-build" -DCMAKE_C_COMPILER="$CC" \
      -Dnoxy_DIR="$out/cmake/noxy" -DNOXY_EXPECTED_VERSION="$version" &&
      cmake --build "$out/cmake-build"; } >"$out/cmake.log" 2>&1; then
      cat "$out/cmake.log" >&2
      echo "the CMake package config does not build" >&2
      exit 1
    fi
    # Both programs run; the shared one loads libnoxy.so.0, the static one needs no libnoxy.
    "$out/cmake-build/header_check_shared"
    "$out/cmake-build/header_check_static"
    readelf -d "$out/cmake-build/header_check_shared" | grep -q 'NEEDED.*libnoxy.so.0' ||
      { echo "noxy::shared does not link libnoxy.so.0" >&2; exit 1; }
    if readelf -d "$out/cmake-build/header_check_static" | grep -q 'NEEDED.*libnoxy'; then
      echo "noxy::static links a shared libnoxy" >&2
      exit 1
    fi
    echo "find_package(noxy $version): noxy::shared and noxy::static build, link and run"
  else
    echo "cmake not installed: CMake package config check skipped"
  fi
  echo "== exported symbols of libnoxy.so"
  tests/c/check_exports.sh "$release/libnoxy.so"
fi

cflags=(-std=c11 -Wall -Wextra -Werror -g -O1 -I include -I tests/c)
if [ "$mode" = asan ]; then
  cflags+=(-fsanitize=address -fno-omit-frame-pointer)
fi
echo "== compiling the C tests ($mode)"
"$CC" "${cflags[@]}" tests/c/test_api.c "$release/libnoxy.a" $NOXY_STATIC_LIBS \
  -o "$out/test_api_static"
"$CC" "${cflags[@]}" tests/c/test_api.c -L "$release" -lnoxy -Wl,-rpath,"$release" -lpthread \
  -o "$out/test_api_dynamic"
# The dynamic test must really load libnoxy.so.0 (the soname), not a static copy.
readelf -d "$out/test_api_dynamic" | grep -q 'NEEDED.*libnoxy.so.0' ||
  { echo "test_api_dynamic does not need libnoxy.so.0" >&2; exit 1; }

# ---- the development relays ----
# One well-behaved relay for most tests, and one that drops connections (abrupt closes and
# GOAWAYs, before and after acting) for the test that the host survives them.
state=$(mktemp -d "${TMPDIR:-/tmp}/noxy-c-tests.XXXXXX")
relay_pids=()
stop_relay() {
  for pid in "${relay_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$state"
}
trap stop_relay EXIT INT TERM

token="c-tests-token-$$-$RANDOM"
start_relay() { # name extra-flags...
  local name=$1
  shift
  "$release/noxy-devrelay" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    --state-dir "$state/$name" --ready-file "$state/$name.json" --log-level warn \
    --app "$token:tests:10000000" "$@" >"$state/$name.log" 2>&1 &
  relay_pids+=($!)
  # Wait for the relay's ready file (a bounded poll for a condition, not a sleep for timing).
  for _ in $(seq 1 600); do
    [ -s "$state/$name.json" ] && return 0
    kill -0 "$!" 2>/dev/null || { cat "$state/$name.log" >&2; echo "relay $name died" >&2; exit 1; }
    sleep 0.05
  done
  echo "relay $name not ready after 30 s" >&2
  exit 1
}
json_field() { sed -n "s/.*\"$2\" *: *\"\\([^\"]*\\)\".*/\\1/p" "$state/$1.json"; }
start_relay relay \
  --identity tests:alice:approve --identity tests:bob:reject --identity tests:carol:ignore \
  --identity tests:steps:approve-after=300
start_relay faulty --identity tests:alice:approve --fault-seed 11 \
  --fault-close-before 0.05 --fault-close-after 0.05 \
  --fault-goaway-before 0.05 --fault-goaway-after 0.05
export NOXY_TEST_ENDPOINT NOXY_TEST_CA_PATH NOXY_TEST_TOKEN NOXY_TEST_FAULTY_ENDPOINT
export NOXY_TEST_FAULTY_CA_PATH
NOXY_TEST_ENDPOINT=$(json_field relay endpoint)
NOXY_TEST_CA_PATH=$(json_field relay ca_path)
NOXY_TEST_FAULTY_ENDPOINT=$(json_field faulty endpoint)
NOXY_TEST_FAULTY_CA_PATH=$(json_field faulty ca_path)
NOXY_TEST_TOKEN=$token
echo "relay: $NOXY_TEST_ENDPOINT (CA $NOXY_TEST_CA_PATH)"

# ---- run ----
total_passed=0
total_failed=0
run_one() { # label binary
  local label=$1 binary=$2 log=$out/$1.out status=0
  echo "== $label"
  case "$mode" in
  valgrind)
    rm -f "$out/$label".valgrind.*.log
    NOXY_TEST_LABEL=$label NOXY_TEST_SLOW=${NOXY_TEST_SLOW:-10} NOXY_TEST_FAST_FAILS=${NOXY_TEST_FAST_FAILS:-300} \
      NOXY_TEST_FAULTY_DECISIONS=${NOXY_TEST_FAULTY_DECISIONS:-60} \
      valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      --show-leak-kinds=definite --child-silent-after-fork=yes \
      --suppressions="$root/tests/c/valgrind.supp" \
      --log-file="$out/$label.valgrind.%p.log" "$binary" | tee "$log" || status=$?
    for vlog in "$out/$label".valgrind.*.log; do
      # A forked child runs with --child-silent-after-fork: its log stays empty.
      [ -s "$vlog" ] || continue
      echo "  valgrind $(basename "$vlog"):"
      grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable" "$vlog" |
        sed 's/^==[0-9]*== /    /' || true
      if ! grep -q "ERROR SUMMARY: 0 errors" "$vlog"; then
        cat "$vlog" >&2
        status=1
      fi
    done
    ;;
  asan)
    NOXY_TEST_LABEL=$label NOXY_TEST_SLOW=${NOXY_TEST_SLOW:-3} \
      ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1} \
      LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/c/lsan.supp:print_suppressions=0} \
      "$binary" 2>&1 | tee "$log" || status=$?
    if grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer" "$log"; then status=1; fi
    ;;
  *)
    NOXY_TEST_LABEL=$label "$binary" | tee "$log" || status=$?
    ;;
  esac
  local passed failed
  passed=$(sed -n 's/^RESULT passed=\([0-9]*\) failed=\([0-9]*\)$/\1/p' "$log" | tail -1)
  failed=$(sed -n 's/^RESULT passed=\([0-9]*\) failed=\([0-9]*\)$/\2/p' "$log" | tail -1)
  passed=${passed:-0}
  failed=${failed:-1}
  if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
}

run_one "static" "$out/test_api_static"
run_one "dynamic" "$out/test_api_dynamic"

# The examples the README points to must run as they claim (plain mode only).
example_ok() { # name: counts one passed or failed example
  echo "  example $1: ok"
  total_passed=$((total_passed + 1))
}
example_failed() {
  echo "  example $1: FAILED" >&2
  total_failed=$((total_failed + 1))
}
if [ "$mode" = plain ]; then
  echo "== examples-c"
  make -s -C examples-c NOXY_LIBDIR="$release" OUT="$out/examples" all static
  export NOXY_ENDPOINT=$NOXY_TEST_ENDPOINT NOXY_CA_PEM_PATH=$NOXY_TEST_CA_PATH NOXY_APP_TOKEN=$token
  for linkage in "" "-static"; do
    # blocking: one decision, approved, exit status 0.
    if NOXY_IDENTITY=alice "$out/examples/blocking$linkage" >"$out/blocking.out" 2>&1 &&
      grep -q "^decision .*: APPROVED$" "$out/blocking.out"; then
      example_ok "blocking$linkage"
    else
      cat "$out/blocking.out" >&2
      example_failed "blocking$linkage"
    fi
    # async: 8 in flight against a device that answers after 300 ms; #3 is cancelled.
    if NOXY_IDENTITY=steps "$out/examples/async$linkage" >"$out/async.out" 2>&1 &&
      [ "$(grep -c ": APPROVED$" "$out/async.out")" -eq 7 ] &&
      grep -q "^decision #3: cancelled" "$out/async.out" &&
      grep -q "^all 8 callbacks ran$" "$out/async.out"; then
      example_ok "async$linkage"
    else
      cat "$out/async.out" >&2
      example_failed "async$linkage"
    fi
  done
fi

suite="C tests"
[ "$mode" = plain ] || suite="C tests ($mode)"
echo "$suite: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
