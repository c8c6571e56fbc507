#!/usr/bin/env bash
# The fuzz part of `make test`: builds the libFuzzer binaries and runs every committed corpus
# file once through its target (-runs=0: no fuzzing). Without the nightly toolchain it says so
# (the targets need nightly: sancov and AddressSanitizer flags) and replays the corpora through
# the same target functions on stable instead (`cargo test` in fuzz/, no libFuzzer).
set -euo pipefail
source "$(dirname "$0")/common.sh"
if ! nightly_available; then
  echo "fuzz corpus replay under libFuzzer SKIPPED: no nightly Rust toolchain (cargo +nightly);" \
    "the libFuzzer targets need nightly for -Zsanitizer=address and sancov instrumentation."
  echo "Replaying the corpora through the same target functions on stable instead (no sanitizer)."
  exec cargo test --manifest-path "$fuzz_dir/Cargo.toml" --no-default-features
fi
# The replay profile: the same instrumented targets, built in a few minutes less.
export FUZZ_PROFILE=replay
"$fuzz_dir/scripts/build.sh"
bins="$(bin_dir)"
passed=0
failed=0
for target in "${targets[@]}"; do
  files=$(find "$fuzz_dir/corpus/$target" -type f | wc -l)
  log="$(mktemp)"
  if "$bins/$target" $(target_options "$target") -runs=0 -timeout=30 -rss_limit_mb=4096 "$fuzz_dir/corpus/$target" >"$log" 2>&1; then
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
