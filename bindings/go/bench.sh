#!/usr/bin/env bash
# Runs the binding's benchmark (bench_test.go) for ROUNDS rounds. Each round runs every variant
# (c-async, go-binding, go-struct) once, each against a fresh relay, in an order that is
# reversed every other round so that neither side always goes first. Prints the median of
# each variant's decisions/s and CPU time per decision, and the binding's overhead.
#
#   bindings/go/bench.sh [ROUNDS=7] [DECISIONS=2000]
#
# Needs `make lib` and noxy-devrelay (cargo build --release -p noxy-devrelay).
set -euo pipefail
rounds=${1:-7}
decisions=${2:-2000}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
release=${CARGO_TARGET_DIR:-$root/target}/release
export PKG_CONFIG_PATH=$release/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export CGO_LDFLAGS="-Wl,-rpath,$release${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
export NOXY_DEVRELAY=${NOXY_DEVRELAY:-$release/noxy-devrelay}
out=$(mktemp -d "${TMPDIR:-/tmp}/noxy-go-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT
cd "$here"
go test -c -o "$out/noxy.test" .
variants=(c-async go-binding go-struct)
for round in $(seq 1 "$rounds"); do
  order=("${variants[@]}")
  if [ $((round % 2)) -eq 0 ]; then order=(go-struct go-binding c-async); fi
  for variant in "${order[@]}"; do
    "$out/noxy.test" -test.run '^$' -test.bench "SendAndWait/^$variant\$" \
      -test.benchtime "${decisions}x" -test.count 1 |
      grep '^BenchmarkSendAndWait' | tee -a "$out/results.txt"
  done
  echo "-- round $round of $rounds done" >&2
done
awk '
  { name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkSendAndWait\//, "", name)
    for (i = 4; i < NF; i++) {
      if ($(i + 1) == "decisions/s") rate[name] = rate[name] " " $i
      if ($(i + 1) == "cpu-us/decision") cpu[name] = cpu[name] " " $i
    } }
  function median(list,   v, n, i, j, t) {
    n = split(list, v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  END {
    for (name in rate) {
      r[name] = median(rate[name]); c[name] = median(cpu[name])
      printf "%-12s median %8.1f decisions/s  %8.1f cpu-us/decision\n", name, r[name], c[name]
    }
    if (("c-async" in r) && ("go-binding" in r)) {
      printf "go-binding vs c-async: %+.1f %% decisions/s, %+.1f %% CPU per decision\n",
        (r["go-binding"] / r["c-async"] - 1) * 100, (c["go-binding"] / c["c-async"] - 1) * 100
    }
  }' "$out/results.txt"
