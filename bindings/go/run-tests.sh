#!/usr/bin/env bash
# make test-go: checks and tests of the Go binding, against the library and the development
# relay that `make lib` and `cargo build --release -p noxy-devrelay` built.
#
#   gofmt -l (nothing to report), go vet (default and noxy_static builds), examples/sendandwait
#   built statically (-tags noxy_static) and dynamically, then go test -race of every package
#   against one development relay (TestMain starts and stops it), which also runs both example
#   binaries and checks their linkage with readelf, and the benchmark briefly (20 decisions per
#   variant: that it runs, not its figures; bench.sh measures).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
release=${CARGO_TARGET_DIR:-$root/target}/release
out=$release/go
mkdir -p "$out"
export PKG_CONFIG_PATH=$release/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export NOXY_DEVRELAY=$release/noxy-devrelay
# The binaries find libnoxy.so.0 in the build tree through their rpath.
export CGO_LDFLAGS="-Wl,-rpath,$release${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
cd "$here"
echo "== Go binding: $(go version)"

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted:" >&2
  echo "$unformatted" >&2
  exit 1
fi
echo "== go vet (shared, static)"
go vet ./...
go vet -tags noxy_static ./...

echo "== examples/sendandwait: static and shared"
go build -buildvcs=false -tags noxy_static -o "$out/sendandwait-static" ./examples/sendandwait
go build -buildvcs=false -o "$out/sendandwait" ./examples/sendandwait
echo "static: $(readelf -d "$out/sendandwait-static" | grep -c NEEDED) shared libraries needed," \
  "none of them libnoxy ($(du -h "$out/sendandwait-static" | cut -f1))"

echo "== go test -race"
export NOXY_GO_EXAMPLE_STATIC=$out/sendandwait-static NOXY_GO_EXAMPLE_SHARED=$out/sendandwait
log=$out/go-test.log
status=0
go test -race -count=1 -v -bench . -benchtime 20x ./... >"$log" 2>&1 || status=$?
# The top-level results, and everything when something failed.
grep -E '^(--- |ok |FAIL|PASS$|panic|Benchmark)' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "== go test failed; its whole output:" >&2
  cat "$log" >&2
fi
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "Go tests: $passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ]
