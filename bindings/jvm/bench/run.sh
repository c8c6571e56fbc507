#!/usr/bin/env bash
# The JVM binding's benchmark: decisions/s through the binding against the C async API on the
# same development relay (see src/test/kotlin/network/noxy/BenchmarkTest.kt).
#
#   bindings/jvm/bench/run.sh [TOTAL [WINDOW [POLL_MS [ROUNDS]]]]     (defaults 3000 200 10 5)
#
# Builds libnoxy and the relay (release), compiles bench/c_async_bench.c against include/noxy.h,
# then runs BenchmarkTest, which starts the relay, alternates the variants and prints the
# medians (also written to bindings/jvm/target/benchmark.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
release=${CARGO_TARGET_DIR:-$root/target}/release
make -s -C "$root" lib
cargo build --release -p noxy-devrelay --manifest-path "$root/Cargo.toml"
mkdir -p "$here/target"
cc -std=c11 -O2 -Wall -Wextra -Werror -I "$root/include" "$here/bench/c_async_bench.c" \
  -L "$release" -lnoxy -Wl,-rpath,"$release" -lpthread -o "$here/target/c_async_bench"
cd "$here"
mvn -B -q -ntp test-compile surefire:test -Dtest=BenchmarkTest -Dsurefire.failIfNoSpecifiedTests=false \
  -Dnoxy.bench=true -Dnoxy.bench.c="$here/target/c_async_bench" \
  -Dnoxy.bench.total="${1:-3000}" -Dnoxy.bench.window="${2:-200}" -Dnoxy.bench.pollMs="${3:-10}" \
  -Dnoxy.bench.rounds="${4:-5}" \
  -Dnoxy.native.dir="$release" -Dnoxy.devrelay="$release/noxy-devrelay" -Dnoxy.library.path="$release"
cat "$here/target/benchmark.txt"
