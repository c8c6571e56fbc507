#!/usr/bin/env bash
# Builds the libFuzzer binaries of fuzz/ the way `cargo fuzz build --strip-dead-code` does (same
# RUSTFLAGS, same output folder: fuzz/target/<triple>/release/<target>), without needing
# cargo-fuzz installed. Dead code is stripped: with it kept, every binary carries the whole
# library, dev relay and runtime (1.45 million coverage counters), and libFuzzer's per-input
# scan of them made the cheap targets about 2 000 executions/s.
# Needs the nightly toolchain (sanitizer and sancov flags) and a C++ compiler (libfuzzer-sys
# builds libFuzzer). Prints the build's wall time.
set -euo pipefail
fuzz_dir="$(cd "$(dirname "$0")/.." && pwd)"
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
  --cfg fuzzing
  -Zsanitizer=address
  -Cllvm-args=-sanitizer-coverage-stack-depth
  -Cdebug-assertions
)
# FUZZ_PROFILE=replay (replay.sh): the lighter profile of fuzz/Cargo.toml, in its own folder.
profile="${FUZZ_PROFILE:-release}"
if [ "$profile" = release ]; then
  flags+=(-Ccodegen-units=1)
  profile_args=(--release --config profile.release.debug=true)
else
  profile_args=(--profile "$profile")
fi
start=$(date +%s)
RUSTFLAGS="${flags[*]} ${RUSTFLAGS:-}" cargo +nightly build \
  --manifest-path "$fuzz_dir/Cargo.toml" --target "$triple" \
  "${profile_args[@]}" --bins "$@"
echo "fuzz build ($profile): $(( $(date +%s) - start )) s wall; binaries in $fuzz_dir/target/$triple/$profile"
echo "fuzz build: CPU time of its processes (user, system):"
times
