#!/usr/bin/env bash
# The fuzz part of `make test`: builds the libFuzzer binaries and runs every committed corpus
# file once through its target (-runs=0: no fuzzing). Without the nightly toolchain it says so
# and passes: the targets need nightly (sancov and AddressSanitizer flags).
set -euo pipefail
source "$(dirname "$0")/common.sh"
if ! nightly_available; then
  echo "fuzz corpus replay SKIPPED: no nightly Rust toolchain (cargo +nightly); the libFuzzer" \
    "targets need nightly for -Zsanitizer=address and sancov instrumentation"
  exit 0
fi
"$fuzz_dir/scripts/build.sh"
bins="$(bin_dir)"
passed=0
failed=0
for target in "${targets[@]}"; do
  files=$(find "$fuzz_dir/corpus/$target" -type f | wc -l)
  log="$(mktemp)"
  if "$bins/$target" -runs=0 -timeout=30 -rss_limit_mb=4096 "$fuzz_dir/corpus/$target" >"$log" 2>&1; then
    echo "fuzz replay $target: $files corpus files, ok"
    passed=$((passed + 1))
  else
    echo "fuzz replay $target: FAILED" >&2
    tail -40 "$log" >&2
    failed=$((failed + 1))
  fi
  rm -f "$log"
done
echo "fuzz-replay: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
